"""How much a topic's Expert gains from the examples `learn` left out of its cluster (a development probe).

    .venv/bin/python benchmarks/probe_data.py --workdir runs/sealed-q --logs examples/sealed/logs.jsonl \\
        --test examples/sealed/test.jsonl --check examples/sealed/checks.py:check --topic heading [--out FILE]

Trains two SFT adapters with the work directory's settings, one after the other: (a) on the examples
the topic's cluster's published Expert learned from (its manifest's `log_ids`: after the per-user cap
and without the topic's edits that `learn` put in other clusters), (b) on every edit of the topic (what
the naive per-topic baseline learns from, but with the Expert's epochs). Each answers the topic's test
questions (greedy, the cluster's answer budget) and is checked. Use a development set only: the
test questions of a set used here are no longer held out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    from uno_graph.adapters.registry import adapter_path
    from uno_graph.adapters.train import TrainExample, train_adapter
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.evaluate import load_callable, read_testset
    from uno_graph.graph import load_config
    from uno_graph.logs import read_logs
    from uno_graph.models import resolve_model_path
    from uno_graph.workdir import read_jsonl

    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--check", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--out", default=None, help="append a JSON line with the results")
    args = p.parse_args()

    check = load_callable(args.check)
    wd = Path(args.workdir)
    cfg = load_config(args.workdir)
    clusters = read_jsonl(wd / "stages" / "clusters.jsonl")
    cluster = max(clusters, key=lambda c: c["topics"].get(args.topic, 0))
    served = adapter_path(wd / "adapters", cluster["id"], "expert") / "manifest.json"
    manifest = json.loads(served.read_text()) if served.exists() else None
    pairs = {p["id"]: p for p in read_jsonl(wd / "stages" / "pairs.jsonl")}
    records = [r for r in read_logs(args.logs).records if r.metadata.get("topic") == args.topic]
    edits = [TrainExample(prompt=list(r.prompt_messages), chosen=r.feedback.edited_response, id=r.id)
             for r in records if r.feedback.edited_response]
    learned = manifest["log_ids"] if manifest else [e.id for e in edits if e.id in cluster["members"]]
    in_cluster = [TrainExample(prompt=pairs[i]["prompt"], chosen=pairs[i]["chosen"], id=i) for i in learned if i in pairs]
    items = [i for i in read_testset(args.test)[0] if i.metadata.get("topic") == args.topic]
    budget = (manifest or {}).get("max_new_tokens") or cfg.max_new_tokens
    print(f"topic {args.topic}: cluster {cluster['id']} {cluster['topics']}, the Expert learned from "
          f"{len(in_cluster)} examples, the topic has {len(edits)} edits; {len(items)} test questions, budget {budget}")
    model = UnoChatModel.from_pretrained(cfg.base_model, max_new_tokens=budget)
    results = {}
    for name, examples in (("cluster", in_cluster), ("all_edits", edits)):
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            trained = train_adapter(resolve_model_path(cfg.base_model), examples, cfg.expert_objective, Path(tmp),
                                    lora=cfg.lora, settings=cfg.train, progress=False)
            model.load_adapter(name, trained.epoch_dirs[-1])
            replies = model.generate_batch([list(i.messages) for i in items], adapters=name)
            model.unload_adapter(name)
        passed = sum(bool(check(i.to_dict(), str(r.content))) for i, r in zip(items, replies))
        results[name] = {"n_examples": len(examples), "passed": passed, "n": len(items),
                         "seconds": round(time.perf_counter() - t, 1)}
        print(f"{name}: {len(examples)} examples -> {passed}/{len(items)} pass ({results[name]['seconds']} s)")
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"workdir": args.workdir, "topic": args.topic, "train": vars(cfg.train),
                                "budget": budget, **results}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
