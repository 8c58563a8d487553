"""Does the late ensemble move to the variant users prefer? Simulated users, no language model involved.

Each cluster offers several Expert variants (arms, named by learner); each variant has a true
approval rate: the chance that a user who reacts at all gives its answer a thumbs up (else a thumbs
down or an edit, both reward 0). A round sends one request to every cluster; the `LateEnsemble`
(the same class serving uses, `uno_graph.learners`) picks the variant, and with probability
`feedback_rate` the user reacts and the reward goes back through `LateEnsemble.on_feedback`, as a
recorded answer's feedback does. Reported per policy and cluster, averaged over `runs` seeds:

* `best_share_window` at checkpoints: the share of runs whose request went to the best variant, over
  the 10 rounds ending at each checkpoint, and
  `cumulative_regret` (sum over rounds of best rate − chosen variant's rate: the approvals lost to
  exploring, in expectation);
* `pulls_first_rounds`: how often each variant answered in the first `early` rounds (exploration).

The rates are a scenario, not measurements: a clear winner, a close call (0.60 vs 0.55) and a
four-way cluster whose best variant is the least obvious one. They show how fast the bandit settles
for gaps of that size with feedback on a third of the answers; a real deployment's gaps are whatever
its users make them.

    PYTHONPATH=. .venv/bin/python benchmarks/bandit_convergence.py            # writes benchmarks/results/bandit_convergence.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uno_graph.learners import LateEnsemble  # noqa: E402

SCENARIO: dict[str, dict[str, float]] = {
    "c-clear": {"sft": 0.45, "dpo_sft": 0.70, "kto": 0.50},
    "c-close": {"sft": 0.60, "dpo_sft": 0.55, "kto": 0.50},
    "c-four": {"sft": 0.30, "edit_dpo": 0.35, "dpo_sft": 0.40, "kto": 0.65},
}
CHECKPOINTS = (10, 50, 100, 200, 400, 800)


def simulate(clusters: dict[str, dict[str, float]], *, rounds: int, runs: int, policy: str = "thompson",
             feedback_rate: float = 1 / 3, seed: int = 0, early: int = 20) -> dict[str, dict]:
    """Per cluster: best-variant share by round (over runs), cumulative regret, early pulls per variant."""
    best_hits = {c: np.zeros(rounds) for c in clusters}
    regret = {c: np.zeros(rounds) for c in clusters}
    early_pulls = {c: dict.fromkeys(arms, 0) for c, arms in clusters.items()}
    for run in range(runs):
        ensemble = LateEnsemble(None, policy=policy, seed=seed + run)
        users = np.random.default_rng(10_000 + seed + run)
        arms = {c: [f"adapters/{c}/expert@{learner}/v1" for learner in rates] for c, rates in clusters.items()}
        for t in range(rounds):
            for cluster, rates in clusters.items():
                learners = list(rates)
                arm = ensemble.choose(cluster, arms[cluster])
                learner = learners[arms[cluster].index(arm)]
                best = max(rates.values())
                best_hits[cluster][t] += rates[learner] == best
                regret[cluster][t] += best - rates[learner]
                if t < early:
                    early_pulls[cluster][learner] += 1
                if users.random() >= feedback_rate:
                    continue  # no reaction: nothing to learn from this answer
                approved = users.random() < rates[learner]
                record = {"metadata": {"cluster": cluster, "arm": arm}, "feedback": {}}
                ensemble.on_feedback(record, {"rating": 1.0} if approved else {"rating": -1.0})
    out = {}
    for cluster, rates in clusters.items():
        share = best_hits[cluster] / runs
        cumulative = np.cumsum(regret[cluster] / runs)
        out[cluster] = {
            "rates": rates,
            "best": max(rates, key=rates.get),
            "best_share_by_round": [round(float(x), 3) for x in share],  # for tests; not written to the file
            "best_share_window": {str(k): round(float(share[max(0, k - 10):k].mean()), 3)
                                  for k in CHECKPOINTS if k <= rounds},
            "cumulative_regret": {str(k): round(float(cumulative[k - 1]), 2) for k in CHECKPOINTS if k <= rounds},
            "pulls_first_rounds": {"rounds": early, "runs": runs, "by_learner": early_pulls[cluster]},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=800)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--feedback-rate", type=float, default=1 / 3)
    ap.add_argument("--policies", default="thompson,ucb")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bandit_convergence.json"))
    args = ap.parse_args()
    result: dict = {"command": "benchmarks/bandit_convergence.py " + " ".join(sys.argv[1:]), "scenario": SCENARIO, "rounds": args.rounds, "runs": args.runs,
                    "feedback_rate": round(args.feedback_rate, 3), "policies": {}}
    for policy in args.policies.split(","):
        start = time.perf_counter()
        found = simulate(SCENARIO, rounds=args.rounds, runs=args.runs, policy=policy,
                         feedback_rate=args.feedback_rate)
        result["policies"][policy] = {"seconds": round(time.perf_counter() - start, 1), "clusters": {
            cluster: {k: v for k, v in row.items() if k != "best_share_by_round"} for cluster, row in found.items()}}
        for cluster, row in found.items():
            print(f"{policy:8s} {cluster:8s} best={row['best']:8s} share(window ending at round) "
                  f"{row['best_share_window']}  regret {row['cumulative_regret']}  "
                  f"first {row['pulls_first_rounds']['rounds']} rounds x {args.runs} runs: "
                  f"{row['pulls_first_rounds']['by_learner']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
