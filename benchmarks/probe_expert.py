"""Probe one topic's Expert on a development split of the training logs, to choose training settings.

    .venv/bin/python benchmarks/probe_expert.py --workdir runs/demo --topic recipes \\
        [--epochs 3 --batch-size 4 --lr 2e-3 --sft-weight 0.8 --max-new-tokens 128] [--out FILE]

The topic's cluster's pairs (from a learned work directory) are split in half, by the pipeline's own
seeded split: the Expert trains on one half with the given settings, and its answers to the other
half's queries are checked with `examples/checks.py`, per epoch. The test queries
(`examples/test.jsonl`) are not used, so settings chosen here leave the evaluation held out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def main() -> None:
    from checks import check

    from uno_graph.adapters.train import TrainExample, train_adapter
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.config import UnoConfig
    from uno_graph.models import resolve_model_path
    from uno_graph.pipeline import split_members
    from uno_graph.workdir import read_jsonl

    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--dev-fraction", type=float, default=0.5)
    p.add_argument("--out", default=None, help="append a JSON line with the per-epoch results")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--sft-weight", type=float, default=None)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--show", type=int, default=2, help="answers to print per epoch")
    args = p.parse_args()

    cfg = UnoConfig()
    settings = dataclasses.replace(cfg.train, **{k: v for k, v in {
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
        "sft_weight": args.sft_weight}.items() if v is not None})
    wd = Path(args.workdir)
    clusters = read_jsonl(wd / "stages" / "clusters.jsonl")
    cluster = max(clusters, key=lambda c: c["topics"].get(args.topic, 0))
    pairs = {p["id"]: p for p in read_jsonl(wd / "stages" / "pairs.jsonl")}
    usable = [i for i in cluster["members"] if i in pairs and pairs[i]["chosen"]]
    train_ids, dev_ids = split_members(usable, args.dev_fraction, settings.seed)
    examples = [TrainExample(prompt=pairs[i]["prompt"], chosen=pairs[i]["chosen"], rejected=pairs[i]["rejected"], id=i)
                for i in train_ids]
    items = [{"messages": [m for m in pairs[i]["prompt"]], "metadata": {"topic": args.topic}} for i in dev_ids]
    print(f"cluster {cluster['id']} {cluster['topics']}: {len(examples)} training pairs, {len(items)} dev logs; {settings}")
    results = []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_adapter(resolve_model_path(cfg.base_model), examples, "dpo_sft", Path(tmp),
                                lora=cfg.lora, settings=settings, progress=False)
        print(f"trained in {time.perf_counter() - t:.0f} s, losses {[round(x, 3) for x in trained.losses]}")
        model = UnoChatModel.from_pretrained(cfg.base_model, max_new_tokens=args.max_new_tokens)
        for k, epoch_dir in [(0, None), *enumerate(trained.epoch_dirs, start=1)]:
            if epoch_dir is not None:
                model.load_adapter(f"e{k}", epoch_dir)
            replies = model.generate_batch([i["messages"] for i in items], adapters=f"e{k}" if epoch_dir else None)
            texts = [str(r.content) for r in replies]
            passed = sum(bool(check(i, a)) for i, a in zip(items, texts))
            tokens = sum(r.usage_metadata["output_tokens"] for r in replies) / len(replies)
            print(f"epoch {k}: {passed}/{len(items)} pass, {tokens:.0f} tokens on average")
            results.append({"epoch": k, "passed": passed, "n": len(items), "tokens": round(tokens, 1)})
            for a in texts[: args.show]:
                print("   |", a[:300].replace("\n", "\n   | "))

    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"topic": args.topic, "settings": dataclasses.asdict(settings),
                                "max_new_tokens": args.max_new_tokens, "train_seconds": round(trained.train_seconds, 1),
                                "epochs": results}) + "\n")


if __name__ == "__main__":
    main()
