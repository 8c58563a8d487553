"""Do a few users with another want take a cluster over? One topic learned twice: as logged, and with
10 % of its users (at least one) turned into dissenters who ask for the opposite.

    .venv/bin/python benchmarks/bench_dissent.py [--topic geography] [--share 0.1] \
        [--logs examples/logs.jsonl --test examples/test.jsonl --check examples/checks.py:check] \
        [--workdir runs/dissent] [--out benchmarks/results/dissent.json]

The dissenters are the topic's users with the most logs (ties by id): the worst case, since they
bring the most examples. Each of their logs keeps its question and logged answer; the user's reaction
becomes a complaint that the answer is too short, a thumbs-down, and an edit that keeps the logged
answer and adds a paragraph of background: the opposite of a "short answer" want. Only the topic's logs
are learned (one or two clusters, so the run takes minutes, not the whole set's ~40), once as logged
(`<workdir>/logged`) and once with the dissenters (`<workdir>/dissent`), with the same defaults;
`max_user_share` (default 0.25) is what should keep the dissenters' share of a cluster's training
examples small. Both are evaluated with `uno-graph eval` on the topic's test questions.

Reported: each run's routes and capped examples, the check rate of both UNOs (and base) with 95 %
intervals, how many test answers are identical between the two, and the answers' mean length in
words. "Unchanged" means the same check rate within one answer and most answers identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "uno-graph")

COMPLAINT = "Way too short. I want the full picture: background and details, a few paragraphs please."
MORE = ("To give you the fuller picture: this has a long history, shaped by the region's climate, trade routes "
        "and politics over many centuries. Travellers and geographers have described it in detail, and its "
        "role in the surrounding region is still important today. If you want to go deeper, look at how its "
        "geography influenced where people settled, what they farmed and where the borders were drawn.")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def dissenters(logs: list[dict], share: float) -> list[str]:
    counts = Counter(str(r["user_id"]) for r in logs if r.get("user_id") is not None)
    k = max(1, round(share * len(counts)))
    return [u for u, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def dissent(log: dict) -> dict:
    """The log with its reaction replaced by the opposite want: longer, with background."""
    first_answer = next(i for i, m in enumerate(log["messages"]) if m["role"] == "assistant")
    answer = log["messages"][first_answer]["content"].strip()
    messages = [*log["messages"][: first_answer + 1], {"role": "user", "content": COMPLAINT}]
    return {**log, "messages": messages, "feedback": {"rating": -1, "edited_response": f"{answer}\n\n{MORE}"},
            "metadata": {**log.get("metadata", {}), "dissent": True}}


def run(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([CLI, *args], check=True, cwd=HERE)
    return round(time.perf_counter() - t, 1)


def predictions(path: Path, system: str) -> dict[str, dict]:
    return {p["id"]: p for p in read_jsonl(path) if p["system"] == system}


def main() -> None:
    from uno_graph.verify import wilson_bounds

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--topic", default="geography")
    ap.add_argument("--share", type=float, default=0.1, help="share of the topic's users who dissent (at least one)")
    ap.add_argument("--logs", type=Path, default=Path("examples/logs.jsonl"))
    ap.add_argument("--test", type=Path, default=Path("examples/test.jsonl"))
    ap.add_argument("--check", default="examples/checks.py:check")
    ap.add_argument("--workdir", type=Path, default=Path("runs/dissent"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dissent.json"))
    args = ap.parse_args()

    logs = [r for r in read_jsonl(args.logs) if r.get("metadata", {}).get("topic") == args.topic]
    test = [t for t in read_jsonl(args.test) if t.get("metadata", {}).get("topic") == args.topic]
    if not logs or not test:
        raise SystemExit(f"no logs or test items of topic {args.topic!r} in {args.logs} / {args.test}")
    who = dissenters(logs, args.share)
    sets = {"logged": logs, "dissent": [dissent(r) if str(r.get("user_id")) in who else r for r in logs]}
    write_jsonl(args.workdir / "test.jsonl", test)
    result: dict = {"command": "benchmarks/bench_dissent.py " + " ".join(sys.argv[1:]), "topic": args.topic,
                    "users": len({r.get("user_id") for r in logs}), "logs": len(logs), "dissenters": who,
                    "dissenting_logs": sum(str(r.get("user_id")) in who for r in logs), "runs": {}}
    for name, rows in sets.items():
        wd = args.workdir / name
        write_jsonl(wd.parent / f"{name}.jsonl", rows)
        seconds = {}
        if not (wd / "stages" / "train.done").exists():
            seconds["learn"] = run("learn", str(wd.parent / f"{name}.jsonl"), "--workdir", str(wd), "-q")
        pred = wd / "eval" / "predictions.jsonl"
        if not pred.exists():
            systems = "base,uno" if name == "logged" else "uno"
            seconds["eval"] = run("eval", str(args.workdir / "test.jsonl"), "--workdir", str(wd), "--out", str(pred),
                                  "--check", args.check, "--systems", systems, "-q")
        summary = json.loads((wd / "summary.json").read_text())
        trained = read_jsonl(wd / "stages" / "train.jsonl") if (wd / "stages" / "train.jsonl").exists() else []
        result["runs"][name] = {"seconds": seconds, "clusters": [
            {k: c.get(k) for k in ("id", "size", "route", "win_rate", "lower_bound", "reason")} for c in summary["clusters"]],
            "capped_examples": {t["cluster_id"]: t.get("capped", 0) for t in trained}}
    answers = {name: predictions(args.workdir / name / "eval" / "predictions.jsonl", "uno") for name in sets}
    answers["base"] = predictions(args.workdir / "logged" / "eval" / "predictions.jsonl", "base")
    for name, preds in answers.items():
        passed = sum(float(p["check"]) for p in preds.values())
        lo, hi = wilson_bounds(passed, len(preds), 0.975)
        words = sum(len(p["answer"].split()) for p in preds.values()) / max(len(preds), 1)
        result[f"check_{name}"] = {"n": len(preds), "check": round(passed / len(preds), 4),
                                   "ci95": [round(lo, 4), round(hi, 4)], "mean_words": round(words, 1)}
    same = sum(answers["logged"][i]["answer"] == answers["dissent"][i]["answer"] for i in answers["logged"])
    result["identical_answers"] = f"{same}/{len(answers['logged'])}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
