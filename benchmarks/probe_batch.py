"""Compare Expert training settings on a development set: SFT on a few edits of one topic, checked on others.

    .venv/bin/python benchmarks/probe_batch.py --set examples/unseen --topics lowercase,summary-line,three-lines \\
        --variant '{"batch_size": 2}' --variant '{"batch_size": 1}' [--out benchmarks/results/probe_batch.jsonl]

Per topic, the topic's logs are shuffled (seed 1); the Expert is trained with TRL's SFT on the user
edits of the first `--train` of them (a cluster's worth), with the default `TrainSettings` changed by
each `--variant` (JSON), and answers `--test` other logged questions of the topic, greedily, ending at
a complete sentence as served answers do. Reported: how many pass the set's check (`checks.py`) at
epoch 3 and at the last epoch. Use development sets only: the test questions of the set are not used,
but a set probed here is no longer unseen.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from uno_graph.adapters.train import TrainExample, train_adapter
    from uno_graph.budget import end_at_sentence
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.config import UnoConfig
    from uno_graph.evaluate import load_callable
    from uno_graph.models import resolve_model_path

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", default="examples/unseen", help="a directory with logs.jsonl and checks.py")
    p.add_argument("--topics", required=True, help="comma-separated metadata.topic values")
    p.add_argument("--variant", action="append", default=[], help="JSON of TrainSettings fields to change")
    p.add_argument("--train", type=int, default=7, help="edits to train on")
    p.add_argument("--test", type=int, default=10, help="other logged questions to check")
    p.add_argument("--out", default=None, help="append one JSON line per topic and variant")
    args = p.parse_args()
    check = load_callable(f"{Path(args.set) / 'checks.py'}:check")

    cfg = UnoConfig()
    logs = [json.loads(line) for line in (Path(args.set) / "logs.jsonl").read_text().splitlines() if line.strip()]
    model = UnoChatModel.from_pretrained(cfg.base_model, max_new_tokens=cfg.max_new_tokens)
    for topic in args.topics.split(","):
        mine = [r for r in logs if r["metadata"]["topic"] == topic]
        random.Random(1).shuffle(mine)
        train = [r for r in mine if r.get("feedback", {}).get("edited_response")][: args.train]
        test = [r for r in mine if r not in train][: args.test]
        examples = [TrainExample(prompt=r["messages"][:-1], chosen=r["feedback"]["edited_response"], id=r["id"])
                    for r in train]
        items = [{"messages": r["messages"][:-1], "metadata": r["metadata"]} for r in test]
        for n, variant in enumerate(json.loads(v) for v in (args.variant or ["{}"])):
            settings = dataclasses.replace(cfg.train, **variant)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                trained = train_adapter(resolve_model_path(cfg.base_model), examples, "sft", Path(tmp),
                                        lora=cfg.lora, settings=settings, progress=False)
                seconds = time.perf_counter() - start
                passed = []
                for k in sorted({min(3, settings.epochs), settings.epochs}):
                    name = f"probe-{topic}-{n}-{k}"
                    model.load_adapter(name, trained.epoch_dirs[k - 1])
                    replies = model.generate_batch([i["messages"] for i in items], adapters=name)
                    model.unload_adapter(name)
                    texts = [end_at_sentence(str(r.content), r.response_metadata.get("finish_reason"))[0] for r in replies]
                    passed.append([k, sum(bool(check(i, a)) for i, a in zip(items, texts))])
            row = {"set": args.set, "topic": topic, "variant": variant, "n_train": len(examples), "n": len(items),
                   "train_s": round(seconds), "pass_by_epoch": passed}
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
