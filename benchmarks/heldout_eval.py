"""The held-out evaluation: learn on `examples/heldout/logs.jsonl`, judge on `examples/heldout/test.jsonl`.

    .venv/bin/python benchmarks/heldout_eval.py [--workdir runs/heldout] [--out benchmarks/results/heldout_eval.json]

That log set was made by another procedure than the example logs, its checks
(`examples/heldout/checks.py`) were written before any training, and nothing was tuned on it
(`examples/heldout/README.md`). Steps, each resumable: `uno-graph learn` (timed per stage, target
<= 20 min), `uno-graph baseline` (the naive per-topic SFT LoRA, 4 epochs on each topic's edits),
`uno-graph eval` with base, UNO, UNO-Single, rules in context and the naive baseline. The result
file holds per topic and system n, the check rate and its 95 % Wilson interval, and the learn
summary (clusters, routes and why, purity, gap calibration, stage times).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "uno-graph")


def run(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([CLI, *args], check=True, cwd=HERE)
    return round(time.perf_counter() - t, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/heldout")
    parser.add_argument("--logs", default="examples/heldout/logs.jsonl")
    parser.add_argument("--test", default="examples/heldout/test.jsonl")
    parser.add_argument("--check", default="examples/heldout/checks.py:check")
    parser.add_argument("--out", default="benchmarks/results/heldout_eval.json")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems to evaluate")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not train the naive per-topic baseline (a development run of UNO alone)")
    args = parser.parse_args()
    wd = Path(args.workdir)
    seconds = {}
    if not (wd / "stages" / "train.done").exists():  # a finished learn keeps its summary's stage times
        seconds["learn"] = run("learn", args.logs, "--workdir", args.workdir, "-q")
    systems = [s for s in args.systems.split(",") if s and not (args.no_baseline and s == "topic_sft")]
    if "topic_sft" in systems:
        seconds["baseline"] = run("baseline", args.logs, "--workdir", args.workdir, "-q")
    pred = wd / "eval" / "predictions.jsonl"
    seconds["eval"] = run("eval", args.test, "--workdir", args.workdir, "--out", str(pred), "--check", args.check,
                          "--systems", ",".join(systems), "--plot", str(wd / "eval"), "-q")
    learn = json.loads((wd / "summary.json").read_text())
    evaluation = json.loads(Path(f"{pred}.summary.json").read_text())
    command = ["benchmarks/heldout_eval.py", *sys.argv[1:]]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    result = {"command": " ".join(command), "commit": commit, "systems_evaluated": systems,
              "seconds_this_run": seconds, "learn_timings_s": learn["timings_s"],
              "clusters": learn["clusters"], "cluster_purity": learn.get("cluster_purity"),
              "gap_calibration": learn.get("gap_calibration"), "pair_reasons": learn["pair_reasons"],
              "topics": {t: {s: {k: v[k] for k in ("n", "check", "ci95")} for s, v in per.items()}
                         for t, per in evaluation["topics"].items()},
              "systems": {s: {k: v[k] for k in ("n", "check", "ci95", "extra_input_tokens")}
                          for s, v in evaluation["systems"].items()}}
    result["by_subject"] = subject_split(pred, Path(args.test), Path(args.logs))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result))
    print(subject_table(result["by_subject"]))


def subject_split(pred: Path, test: Path, logs: Path) -> dict:
    """Check rates per topic and system, apart for test questions on a subject the logs mention and on one
    they never mention. No query router can tell from a question on a new subject which topic's want it has;
    `uno` routes an item that carries a user id by its query and that user's logs; the naive baseline is
    told each item's topic."""
    from uno_graph.verify import wilson_bounds

    logged = {json.loads(line).get("metadata", {}).get("subject") for line in logs.read_text().splitlines() if line.strip()}
    items = {d["id"]: d for d in map(json.loads, test.read_text().splitlines()) if d}
    counts: dict = {}
    for line in pred.read_text().splitlines():
        p = json.loads(line)
        item = items.get(p["id"])
        if item is None or p.get("check") is None:
            continue
        meta = item.get("metadata", {})
        part = "logged subjects" if meta.get("subject") in logged else "new subject"
        cell = counts.setdefault(meta.get("topic", "-"), {}).setdefault(part, {}).setdefault(p["system"], [0.0, 0])
        cell[0] += float(p["check"])
        cell[1] += 1
    out: dict = {}
    for topic, parts in sorted(counts.items()):
        for part, systems in parts.items():
            for system, (passed, n) in systems.items():
                lo, hi = wilson_bounds(passed, n, 0.975)
                out.setdefault(topic, {}).setdefault(part, {})[system] = {
                    "n": n, "check": round(passed / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    return out


# `uno` routes an item that carries a user id by its query and that user's logs (the default); `uno_query` by the query alone
SYSTEMS = ["base", "uno", "uno_greedy", "uno_single", "uno_query", "rules_in_context", "topic_sft"]


def subject_table(split: dict) -> str:
    systems = SYSTEMS
    lines = ["| topic, questions (n) | " + " | ".join(systems) + " |", "|---" * (len(systems) + 1) + "|"]
    for topic, parts in split.items():
        for part in ("logged subjects", "new subject"):
            per = parts.get(part)
            if not per:
                continue
            n = next(iter(per.values()))["n"]
            cells = [f"{per[s]['check']:.0%}" if s in per else "-" for s in systems]
            lines.append(f"| {topic}, {part} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(result: dict) -> str:
    """Per topic and system: the check rate with its 95 % interval and n (the README's table)."""
    systems = SYSTEMS
    lines = ["| topic (n) | " + " | ".join(systems) + " |", "|---" * (len(systems) + 1) + "|"]
    rows = list(result["topics"].items()) + [("all", result["systems"])]
    for topic, per in rows:
        n = next(iter(per.values()))["n"]
        cells = []
        for name in systems:
            v = per.get(name)
            cells.append("-" if not v or v["check"] is None else
                         f"{v['check']:.0%} [{v['ci95'][0]:.0%}–{v['ci95'][1]:.0%}]")
        lines.append(f"| {topic} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
