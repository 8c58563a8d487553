"""Best of n by the cluster's own want model: does picking among sampled Expert answers help? (a development probe)

    .venv/bin/python benchmarks/probe_rerank.py --workdir runs/cellar --test examples/cellar/test.jsonl \\
        --check examples/cellar/checks.py:check [--samples 4] [--temperature 0.8] [--out runs/probe_rerank.jsonl]

Reads a finished `learn` + `eval` work directory (the `uno` rows of `eval/predictions.jsonl`). For
every test question that UNO sent to an Expert, the same adapter writes `--samples` more answers by
sampling; the cluster's want model (`want.WantModel`, fitted on all of the cluster's labelled
answers, as the validation judge is on a fold's) scores the greedy answer and the samples, and the
best-scored one is the reranked answer. Each answer is checked with the set's check. Reported: the
greedy answer's pass rate, the reranked one's, the paired difference with a 95 % bootstrap interval,
and an oracle (any candidate passes) — the most a perfect picker could get. Development sets only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def cluster_want_models(workdir: Path) -> dict:
    """cluster id -> the want model `learn` keeps in an Expert's manifest (`pipeline.want_model`), fitted
    on the cluster's labelled answers (None: one label only)."""
    from uno_graph.adapters.validate import ClusterData
    from uno_graph.pipeline import want_model
    from uno_graph.want import WantScorer

    stages = workdir / "stages"
    read = lambda name: [json.loads(line) for line in (stages / name).read_text().splitlines() if line.strip()]
    pairs = {p["id"]: p for p in read("pairs.jsonl")}
    rows = {r["id"]: r for r in read("distill.jsonl")}
    models = {}
    for cluster in read("clusters.jsonl"):
        ids = cluster["members"]
        fitted = want_model(ClusterData(pairs=[pairs[i] for i in ids if i in pairs and pairs[i]["chosen"]],
                                        rows=[rows[i] for i in ids if i in rows]))
        models[cluster["id"]] = WantScorer.from_dict(fitted) if fitted else None
    return models


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--check", required=True)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from uno_graph.budget import end_at_sentence
    from uno_graph.evaluate import load_callable, read_testset
    from uno_graph.graph import UnoSystem
    from benchmarks.probe_recipe import paired_interval

    workdir = Path(args.workdir)
    check = load_callable(args.check)
    items = {it.id: it for it in read_testset(args.test)[0]}
    predictions = [json.loads(line) for line in (workdir / "eval" / "predictions.jsonl").read_text().splitlines()]
    routed = [p for p in predictions if p["system"] == "uno" and p["route"] == "expert"]
    models = cluster_want_models(workdir)
    system = UnoSystem.load(workdir)
    budgets = {row["id"]: row.get("max_new_tokens") for row in system.router.table.rows}

    rows = []
    by_cluster = defaultdict(list)
    for p in routed:
        by_cluster[(p["cluster"], p["adapter"])].append(p)
    for (cluster_id, adapter), group in sorted(by_cluster.items()):
        budget = budgets.get(cluster_id) or None
        conversations = [list(items[p["id"]].messages) for p in group]
        samples = [[] for _ in group]
        for s in range(args.samples):
            replies = system.model.generate_batch(conversations, adapters=adapter, temperature=args.temperature,
                                                  seed=1000 + s, **({"max_new_tokens": budget} if budget else {}))
            for j, reply in enumerate(replies):
                samples[j].append(end_at_sentence(str(reply.content), reply.response_metadata.get("finish_reason"))[0])
        model = models.get(cluster_id)
        for p, extra in zip(group, samples):
            candidates = [p["answer"], *extra]
            scores = model.score(candidates) if model is not None else [0.0] * len(candidates)
            best = max(range(len(candidates)), key=lambda k: (scores[k], -k))  # ties: the greedy answer
            item = items[p["id"]]
            passed = [int(bool(check(item.to_dict(), c))) for c in candidates]
            rows.append({"id": p["id"], "topic": p.get("topic"), "cluster": cluster_id, "greedy": passed[0],
                         "reranked": passed[best], "oracle": int(any(passed)), "picked": best,
                         "scores": [round(x, 3) for x in scores], "passed": passed})
        print(cluster_id, "greedy", sum(r["greedy"] for r in rows if r["cluster"] == cluster_id),
              "reranked", sum(r["reranked"] for r in rows if r["cluster"] == cluster_id), "of", len(group), flush=True)

    topics = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        t = topics[r["topic"]]
        t[0] += r["greedy"]; t[1] += r["reranked"]; t[2] += r["oracle"]; t[3] += 1
    mean, lo, hi = paired_interval([r["greedy"] for r in rows], [r["reranked"] for r in rows]) if rows else (0, 0, 0)
    summary = {"workdir": str(workdir), "samples": args.samples, "temperature": args.temperature, "n": len(rows),
               "greedy": sum(r["greedy"] for r in rows), "reranked": sum(r["reranked"] for r in rows),
               "oracle": sum(r["oracle"] for r in rows), "paired_diff": [round(mean, 3), round(lo, 3), round(hi, 3)],
               "topics": {k: dict(zip(("greedy", "reranked", "oracle", "n"), v)) for k, v in sorted(topics.items())}}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({**summary, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
