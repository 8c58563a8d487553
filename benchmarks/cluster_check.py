"""Do clusters follow the topics, and does the router send each test question to its topic's cluster?

A diagnostic without a language model: it runs `learn`'s first stages (read, distill without a
teacher, verify, pairs, cluster) into a scratch work directory and routes every test question with
the same `RouteTable` the graph uses. Reported per topic of the test set: questions routed to a
cluster whose majority topic is theirs (`own`), to another topic's cluster (`wrong`) and to the base
model (`base`), apart for questions on a subject the logs mention and on one they never mention. A
test item's `user_id` counts as it does when serving (`route_by_user`); `--random-users` gives each
item a random user of the logs instead (on sets whose users write in every topic, where the user
prior must leave the query to decide).

    .venv/bin/python benchmarks/cluster_check.py examples/heldout/logs.jsonl examples/heldout/test.jsonl \
        [--set cluster_threshold=1.2 --set route_margin=1.0] [--cross]

`--cross` also prints, for every pair of clusters, two candidate signals that two clusters share one
want: the AUC of one cluster's want model (adapters/validate.py's gate, fitted on all its labelled
answers) on the other's labelled answers, and how many users gave feedback in both.

`--all` runs it on every example log set in `examples/` (each with its own test set) and writes each
set's purity, completeness, cluster sizes and routing to `--out` (a JSON file):

    .venv/bin/python benchmarks/cluster_check.py --all --out benchmarks/results/cluster_check.json

Use it on development sets only: a set it is run on is no longer unseen.
"""

from __future__ import annotations

import argparse
import json
import random
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


def check(logs: str, test: str, config: UnoConfig, embedder=None, *, random_users: bool = False) -> dict:
    from uno_graph import pipeline
    from uno_graph.logs import read_logs, user_message
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
        majority = {c["id"]: max(c["topics"], key=c["topics"].get) for c in clusters}
        logged = {str(r.metadata.get("subject")) for r in records}
        items = [json.loads(line) for line in Path(test).read_text().splitlines() if line.strip()]
        if random_users:  # each item asked by a random user of the logs (seeded)
            rng = random.Random(0)
            users = sorted({str(r.user_id) for r in records if r.user_id is not None})
            items = [{**item, "user_id": rng.choice(users)} for item in items] if users else items
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for item in items:
            meta = item.get("metadata", {})
            query = user_message([(m["role"], m["content"]) for m in item["messages"]])
            found = router.locate(query, item.get("user_id"))  # by the user too, as served (route_by_user)
            where = "base"
            if found is not None:
                row, distance, reach = found
                if distance <= reach:
                    where = "own" if majority.get(row["id"]) == meta.get("topic") else "wrong"
            part = "logged" if str(meta.get("subject")) in logged else "new"
            cell = counts.setdefault(str(meta.get("topic")), {}).setdefault(part, {"own": 0, "wrong": 0, "base": 0})
            cell[where] += 1
        cross = cross_signals(clusters, rows, pairs)
        return {"purity": pipeline.cluster_purity(clusters), "cross": cross,
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


def _cluster_data(c, row_by_id, pair_by_id):
    from uno_graph.adapters.validate import ClusterData

    return ClusterData(pairs=[pair_by_id[m] for m in c["members"] if m in pair_by_id and pair_by_id[m]["chosen"]],
                       rows=[row_by_id[m] for m in c["members"]])


def cross_signals(clusters, rows, pairs) -> dict:
    """For each ordered pair of clusters (a, b): the AUC of a's want model on b's labelled answers, and
    the users who gave feedback (rules or an edit) in both, of those in either."""
    from uno_graph.want import WantModel, auc

    row_by_id, pair_by_id = {r["id"]: r for r in rows}, {p["id"]: p for p in pairs}
    labelled = {c["id"]: _cluster_data(c, row_by_id, pair_by_id).labelled() for c in clusters}
    users = {c["id"]: {row_by_id[m].get("user_id") for m in c["members"]
                       if row_by_id[m].get("user_id") is not None and (row_by_id[m]["rules"] or row_by_id[m].get("edited"))}
             for c in clusters}
    out = {}
    for a in clusters:
        mine = labelled[a["id"]]
        model = (WantModel().fit([x.text for x in mine], [x.label for x in mine])
                 if len({x.label for x in mine}) == 2 else None)
        for b in clusters:
            if a is b:
                continue
            theirs = labelled[b["id"]]
            value = auc(model.score([x.text for x in theirs]), [x.label for x in theirs]) if model else float("nan")
            ua, ub = users[a["id"]], users[b["id"]]
            out[f"{a['id']}>{b['id']}"] = {"auc": None if value != value else round(value, 3),
                                           "shared_users": len(ua & ub), "users": len(ua | ub)}
    return out


def print_cross(result: dict) -> None:
    clusters = result["clusters"]
    name = {c["id"]: f"{max(c['topics'], key=c['topics'].get)[:9]}/{c['size']}" for c in clusters}
    for title, cell in (("want model of the row's cluster: AUC on the column's labelled answers",
                         lambda x: "  -  " if x["auc"] is None else f"{x['auc']:.2f} "),
                        ("users who gave feedback in both / in either",
                         lambda x: f"{x['shared_users']:>2d}/{x['users']:<2d}")):
        print(title)
        print(" " * 14 + "".join(f"{name[c['id']][:11]:>12s}" for c in clusters))
        for a in clusters:
            print(f"{name[a['id']]:14s}" + "".join(f"{'-' if a is b else cell(result['cross'][a['id'] + '>' + b['id']]):>12s}"
                                                 for b in clusters))


ROOT = Path(__file__).resolve().parents[1]


def example_sets() -> dict[str, tuple[Path, Path]]:
    """Every example log set with its test set: the top-level one and each `examples/<name>/`."""
    sets = {"examples": (ROOT / "examples/logs.jsonl", ROOT / "examples/test.jsonl")}
    for logs in sorted(ROOT.glob("examples/*/logs.jsonl")):
        if (logs.parent / "test.jsonl").exists():
            sets[logs.parent.name] = (logs, logs.parent / "test.jsonl")
    return sets


def check_all(config: UnoConfig, out: Path) -> None:
    from uno_graph.embeddings import shared_embedder

    embedder = shared_embedder(config.embedder)
    results = {}
    for name, (logs, test) in example_sets().items():
        result = check(str(logs), str(test), config, embedder)
        routed = [cell for per in result["routing"].values() for cell in per.values()]
        results[name] = {**result["purity"], "eligible_sizes": [c["size"] for c in result["clusters"] if c["eligible"]],
                         "majority_topics": [max(c["topics"], key=c["topics"].get) for c in result["clusters"] if c["eligible"]],
                         "questions_to_own_cluster": sum(c["own"] for c in routed),
                         "questions": sum(sum(c.values()) for c in routed)}
        r = results[name]
        print(f"{name:10s} purity {r['purity']:.0%}  completeness {r['completeness']:.0%}  eligible clusters "
              f"{r['eligible_sizes']}  questions to their topic's cluster {r['questions_to_own_cluster']}/{r['questions']}")
    mean = {k: round(sum(r[k] for r in results.values()) / len(results), 4) for k in ("purity", "completeness")}
    print(f"mean over {len(results)} sets: purity {mean['purity']:.1%}, completeness {mean['completeness']:.1%}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": {k: v for k, v in config.to_dict().items() if "cluster" in k or k in
                                          ("want_similarity", "merge_similarity", "join_similarity", "route_margin")},
                               "sets": results, "mean": mean}, indent=2) + "\n")
    print(f"results: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="?")
    ap.add_argument("test", nargs="?")
    ap.add_argument("--all", action="store_true", help="every example log set; results to --out")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cluster_check.json")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a UnoConfig field")
    ap.add_argument("--cross", action="store_true", help="print the cross-cluster want signals")
    ap.add_argument("--random-users", action="store_true", help="give each test item a random user of the logs")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    config = UnoConfig(**{k: parse_value(v) for k, v in overrides.items()})
    if args.all:
        return check_all(config, args.out)
    if not (args.logs and args.test):
        ap.error("give LOGS and TEST, or --all")
    result = check(args.logs, args.test, config, random_users=args.random_users)
    print(json.dumps(result["purity"]))
    for c in result["clusters"]:
        gate = f"want AUC {c['want_auc']:.2f}" if c["want_auc"] is not None else "             "
        print(f"  {c['id']} size {c['size']:3d} {'eligible' if c['eligible'] else 'small   '} r={c['radius']:.3f} {gate} {c['topics']}")
    own = sum(cell["own"] for per in result["routing"].values() for part, cell in per.items() if part == "logged")
    total = sum(sum(cell.values()) for per in result["routing"].values() for part, cell in per.items() if part == "logged")
    for topic, per in sorted(result["routing"].items()):
        print(f"  {topic:14s} " + "  ".join(f"{part}: own {c['own']} wrong {c['wrong']} base {c['base']}"
                                          for part, c in sorted(per.items())))
    every = sum(cell["own"] for per in result["routing"].values() for cell in per.values())
    n = sum(sum(cell.values()) for per in result["routing"].values() for cell in per.values())
    print(f"logged-subject questions routed to their own topic's cluster: {own}/{total}; all questions: {every}/{n}")
    if args.cross:
        print_cross(result)


if __name__ == "__main__":
    main()
