"""Compare Expert training recipes across the development log sets (a development probe).

    .venv/bin/python benchmarks/probe_recipe.py --sets examples/reserve examples/sealed examples/unseen \\
        --recipe epochs=6 --recipe epochs=4 [--cap 0.25] [--out benchmarks/results/probe_recipe.jsonl]

For every want topic of every set (`inconsistent` and `smalltalk-noisy` are left out: no form to
learn), one SFT adapter per recipe is trained on that topic's edits — the naive per-topic baseline's
data, with the per-user cap of `--cap` applied as `learn` applies it — and answers the set's test
questions of that topic (greedy, `max_new_tokens` of the default config). Each answer is checked
with the set's `checks.py`. A recipe is a list of `TrainSettings` fields and `lora.`-prefixed `LoraSettings` fields
(`epochs=4,learning_rate=1e-3`, `lora.top_layers=15`).

With `--average K`, the first recipe is also trained K times more, each time on the topic's edits
less one of K folds (the validator's folds, `adapters/validate.make_folds`), and `average` answers
(the one adapter that averages the K, `adapters/average.py`): can the validator's fold adapters
stand in for the final adapter that `learn` trains after them on all the data? With
`--fold-answers`, `folds` answers too (each fold adapter answers every question; a question passes
when most of them pass).

The output pools every topic: passes per recipe, and the paired difference between the first recipe
and each other one (answers to the same questions) with a 95 % bootstrap interval over questions.
Use development sets only: a set whose test questions are used here is no longer held out.
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

NO_WANT = {"inconsistent", "smalltalk-noisy"}


def parse_recipe(text: str) -> tuple[dict, dict]:
    """`TrainSettings` and `LoraSettings` overrides of a recipe: `epochs=4,lora.top_layers=15`."""
    from uno_graph.config import LoraSettings, TrainSettings

    known = {"": {f.name for f in dataclasses.fields(TrainSettings)},
             "lora.": {f.name for f in dataclasses.fields(LoraSettings)}}
    out: dict[str, dict] = {"": {}, "lora.": {}}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        prefix = "lora." if key.startswith("lora.") else ""
        name = key[len(prefix):]
        if name not in known[prefix]:
            raise SystemExit(f"--recipe {text!r}: {key!r} is not a TrainSettings field ({', '.join(sorted(known['']))}) "
                             f"or lora.<LoraSettings field> ({', '.join(sorted(known['lora.']))})")
        out[prefix][name] = None if value == "None" else float(value) if "." in value or "e" in value else int(value)
    return out[""], out["lora."]


def paired_interval(a: list[int], b: list[int], rounds: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of b - a and its 95 % bootstrap interval over the paired questions."""
    rng = random.Random(seed)
    diffs = [y - x for x, y in zip(a, b)]
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(rounds))
    return sum(diffs) / len(diffs), means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def main() -> None:
    from uno_graph.adapters.train import TrainExample, train_adapter
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.config import TrainSettings, UnoConfig
    from uno_graph.evaluate import load_callable, read_testset
    from uno_graph.logs import read_logs
    from uno_graph.models import resolve_model_path
    from uno_graph.scope import cap_user_share

    p = argparse.ArgumentParser()
    p.add_argument("--sets", nargs="+", required=True, help="directories with logs.jsonl, test.jsonl, checks.py")
    p.add_argument("--recipe", action="append", required=True, help="TrainSettings overrides, e.g. epochs=4")
    p.add_argument("--cap", type=float, default=None, help="max_user_share (default: the config's)")
    p.add_argument("--topics", nargs="*", default=None, help="only these topics")
    p.add_argument("--average", type=int, default=0, metavar="K",
                   help="also train the first recipe on K folds and answer with their average")
    p.add_argument("--fold-answers", action="store_true", help="with --average: each fold adapter answers too")
    p.add_argument("--out", default=None, help="append one JSON line per (set, topic, recipe) and a summary")
    args = p.parse_args()

    cfg = UnoConfig()
    cap = cfg.max_user_share if args.cap is None else args.cap
    recipes = []  # (name, train settings, lora settings)
    for r in args.recipe:
        train_over, lora_over = parse_recipe(r)
        recipes.append((r, TrainSettings(**{**vars(cfg.train), **train_over}),
                        dataclasses.replace(cfg.lora, **lora_over)))
    model = UnoChatModel.from_pretrained(cfg.base_model, max_new_tokens=cfg.max_new_tokens)
    base_path = resolve_model_path(cfg.base_model)
    passes: dict[str, list[int]] = {r: [] for r, *_ in recipes}
    if args.average:
        passes.update({"average": [], **({"folds": []} if args.fold_answers else {})})
    started = time.perf_counter()
    for set_dir in map(Path, args.sets):
        logs = set_dir / "logs.jsonl" if (set_dir / "logs.jsonl").exists() else None
        if logs is None:
            raise SystemExit(f"{set_dir}: no logs.jsonl")
        check = load_callable(f"{set_dir / 'checks.py'}:check")
        items = read_testset(set_dir / "test.jsonl")[0]
        records = read_logs(logs).records
        topics = sorted({str(i.metadata.get("topic")) for i in items} - NO_WANT)
        for topic in topics:
            if args.topics and topic not in args.topics:
                continue
            rows = [r for r in records if r.metadata.get("topic") == topic and r.feedback.edited_response]
            dropped = cap_user_share([{"id": r.id, "user_id": r.user_id} for r in rows], cap)
            examples = [TrainExample(prompt=list(r.prompt_messages), chosen=r.feedback.edited_response, id=r.id)
                        for r in rows if r.id not in dropped]
            questions = [i for i in items if i.metadata.get("topic") == topic]

            def answer(adapter_dir) -> list[int]:
                model.load_adapter("probe", adapter_dir)
                replies = model.generate_batch([list(i.messages) for i in questions], adapters="probe")
                model.unload_adapter("probe")
                return [int(bool(check(i.to_dict(), str(r.content)))) for i, r in zip(questions, replies)]

            def report(row: dict) -> None:
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")

            if args.average:
                from uno_graph.adapters.average import average_adapters
                from uno_graph.adapters.validate import make_folds

                t = time.perf_counter()
                folds = make_folds([e.id for e in examples], args.average, cfg.train.seed)
                with tempfile.TemporaryDirectory() as tmp:
                    dirs, fold_ok = [], []
                    for k, fold in enumerate(folds):
                        part = [e for e in examples if e.id not in set(fold)]
                        trained = train_adapter(base_path, part, "sft", Path(tmp) / f"fold-{k}", lora=recipes[0][2],
                                                settings=recipes[0][1], progress=False)
                        dirs.append(trained.epoch_dirs[-1])
                        if args.fold_answers:
                            fold_ok.append(answer(dirs[-1]))
                    trained_s = time.perf_counter() - t
                    ok = answer(average_adapters(base_path, dirs, Path(tmp) / "average"))
                # per question: the share of fold adapters whose answer passed, rounded to a pass or not
                folds_ok = [int(2 * sum(col) > len(col)) for col in zip(*fold_ok)]
                passes["average"].extend(ok)
                if args.fold_answers:
                    passes["folds"].extend(folds_ok)
                report({"set": str(set_dir), "topic": topic, "recipe": "average", "of": recipes[0][0], "k": args.average,
                        "n_examples": len(examples), "passed": sum(ok), "n": len(ok), "ok": ok,
                        "fold_passed": [sum(x) for x in fold_ok], "folds_majority_ok": folds_ok,
                        "fold_training_seconds": round(trained_s, 1)})
            for name, settings, lora in recipes:
                t = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    trained = train_adapter(base_path, examples, "sft", Path(tmp), lora=lora,
                                            settings=settings, progress=False)
                    ok = answer(trained.epoch_dirs[-1])
                passes[name].extend(ok)
                report({"set": str(set_dir), "topic": topic, "recipe": name, "n_examples": len(examples),
                        "capped": len(dropped), "passed": sum(ok), "n": len(ok), "ok": ok, "final_loss": trained.final_loss,
                        "seconds": round(time.perf_counter() - t, 1)})
    first = recipes[0][0]
    summary = {"summary": True, "sets": args.sets, "cap": cap, "seconds": round(time.perf_counter() - started),
               "recipes": {r: {"passed": sum(v), "n": len(v)} for r, v in passes.items()},
               "paired_vs_first": {}}
    for name in [r for r, *_ in recipes[1:]] + [k for k in ("average", "folds") if k in passes]:
        mean, lo, hi = paired_interval(passes[first], passes[name])
        summary["paired_vs_first"][name] = {"mean_diff": round(mean, 3), "ci95": [round(lo, 3), round(hi, 3)]}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    sys.exit(main())
