"""Do clusters follow the topics, and does the router send each test question to its topic's cluster?

A diagnostic without a language model: it runs `learn`'s first stages (read, distill without a
teacher, verify, pairs, cluster) into a scratch work directory and routes every test question with
the same `RouteTable` the graph uses. Reported per topic of the test set: questions routed to a
cluster whose majority topic is theirs (`own`), to another topic's cluster (`wrong`) and to the base
model (`base`), apart for questions on a subject the logs mention and on one they never mention.

    .venv/bin/python benchmarks/cluster_check.py examples/heldout/logs.jsonl examples/heldout/test.jsonl \
        [--set cluster_threshold=1.2 --set route_margin=1.0]

Use it on development sets only: a set it is run on is no longer unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uno_graph.config import UnoConfig  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def check(logs: str, test: str, config: UnoConfig, embedder=None) -> dict:
    from uno_graph import pipeline
    from uno_graph.logs import read_logs
    from uno_graph.router import Router
    from uno_graph.store import UnoStore
    from uno_graph.workdir import Workdir, fingerprint

    with tempfile.TemporaryDirectory() as tmp:
        wd = Workdir(tmp).create()
        run = pipeline._Run(wd, config, None, None, progress=False)
        if embedder is not None:
            run._embedder = embedder
        records = sorted(read_logs(logs).records, key=lambda r: r.id)
        rows = pipeline._distill(run, records, fingerprint([r.to_dict() for r in records]))
        pairs = pipeline._pairs(run, rows, pipeline._verify(run, rows))
        store = UnoStore.persistent(wd.chroma)
        clusters = pipeline._cluster(run, rows, pairs, store)
        gates = consistency(clusters, rows, pairs, config)
        # which cluster each question reaches, as if every eligible cluster had an adapter
        router = Router(store, run.embedder, config)
        table = router.table
        majority = {c["id"]: max(c["topics"], key=c["topics"].get) for c in clusters}
        logged = {str(r.metadata.get("subject")) for r in records}
        items = [json.loads(line) for line in Path(test).read_text().splitlines() if line.strip()]
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for item in items:
            meta = item.get("metadata", {})
            query = item["messages"][-1]["content"]
            found = table.nearest(run.embedder.encode([query])[0])
            where = "base"
            if found is not None:
                row, distance = found
                if distance <= router.reach(row):
                    where = "own" if majority.get(row["id"]) == meta.get("topic") else "wrong"
            part = "logged" if str(meta.get("subject")) in logged else "new"
            cell = counts.setdefault(str(meta.get("topic")), {}).setdefault(part, {"own": 0, "wrong": 0, "base": 0})
            cell[where] += 1
        return {"purity": pipeline.cluster_purity(clusters),
                "clusters": [{"id": c["id"], "size": c["size"], "eligible": c["eligible"], "topics": c["topics"],
                              "radius": c["radius"], "want_auc": gates.get(c["id"])} for c in clusters],
                "routing": counts}


def consistency(clusters, rows, pairs, config: UnoConfig) -> dict[str, float]:
    """Each eligible cluster's out-of-fold want-model AUC: the number the consistency gate compares
    with `min_want_auc` (adapters/validate.py) before any training."""
    from uno_graph.adapters.validate import ClusterData, make_folds
    from uno_graph.want import WantJudge

    row_by_id, pair_by_id = {r["id"]: r for r in rows}, {p["id"]: p for p in pairs}
    judge = WantJudge(min_auc=config.min_want_auc)
    out = {}
    for c in clusters:
        if not c["eligible"]:
            continue
        data = ClusterData(pairs=[pair_by_id[m] for m in c["members"] if m in pair_by_id and pair_by_id[m]["chosen"]],
                           rows=[row_by_id[m] for m in c["members"]])
        labelled = data.labelled()
        folds = make_folds(sorted({x.log_id for x in labelled}), judge.gate_folds)
        out[c["id"]] = round(judge.consistency(labelled, folds).auc, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs")
    ap.add_argument("test")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a UnoConfig field")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    config = UnoConfig(**{k: parse_value(v) for k, v in overrides.items()})
    result = check(args.logs, args.test, config)
    print(json.dumps(result["purity"]))
    for c in result["clusters"]:
        gate = f"want AUC {c['want_auc']:.2f}" if c["want_auc"] is not None else "             "
        print(f"  {c['id']} size {c['size']:3d} {'eligible' if c['eligible'] else 'small   '} r={c['radius']:.3f} {gate} {c['topics']}")
    own = sum(cell["own"] for per in result["routing"].values() for part, cell in per.items() if part == "logged")
    total = sum(sum(cell.values()) for per in result["routing"].values() for part, cell in per.items() if part == "logged")
    for topic, per in sorted(result["routing"].items()):
        print(f"  {topic:14s} " + "  ".join(f"{part}: own {c['own']} wrong {c['wrong']} base {c['base']}"
                                          for part, c in sorted(per.items())))
    print(f"logged-subject questions routed to their own topic's cluster: {own}/{total}")


if __name__ == "__main__":
    main()
