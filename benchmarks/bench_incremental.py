"""Incremental `learn`: the example logs, then the same logs plus 10 new logs of one topic (geography).

    .venv/bin/python benchmarks/bench_incremental.py [--workdir benchmarks/.work/incremental]
        [--out benchmarks/results/incremental.json] [-- EXTRA LEARN FLAGS]

Run 1 learns `examples/logs.jsonl` from an empty work directory; run 2 learns it plus
`benchmarks/.work/incremental-new.jsonl` (10 geography logs written by this script: questions that are
in neither `examples/logs.jsonl` nor `examples/test.jsonl`, the users asking for one short sentence
as the geography users of the example logs do) on the same work directory. The result holds both
runs' wall time and per-stage seconds (`summary.json` `timings_s`), what run 2 reused per stage, and
per cluster its status (new / retrained / unchanged), route, adapter and promotion. Flags after
`--` go to both `uno-graph learn` calls (e.g. `-- --base-model DIR --epochs 1` for a quick check on
a small model).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "uno-graph")

LONG = ("That is a great question about geography! {fact} There is a lot of history behind this, and many "
        "travellers find the region fascinating for its culture, its landscapes and its food. If you are planning "
        "a trip, it is worth reading about the local customs and the best time of year to visit")
NEW_LOGS = [  # (question, the fact, what the user did next)
    ("What is the capital of Egypt?", "Cairo is the capital of Egypt.", "edit"),
    ("What is the capital of Chile?", "Santiago is the capital of Chile.", "edit"),
    ("Which river flows through Vienna?", "The Danube flows through Vienna.", "edit"),
    ("Which ocean is the deepest?", "The Pacific is the deepest ocean.", "edit"),
    ("What is the capital of Turkey?", "Ankara is the capital of Turkey.", "edit"),
    ("What is the highest mountain in Africa?", "Kilimanjaro is the highest mountain in Africa.", "edit"),
    ("Which sea lies between Europe and Africa?", "The Mediterranean Sea lies between Europe and Africa.", "edit"),
    ("What is the capital of Vietnam?", "Hanoi is the capital of Vietnam.", "complaint"),
    ("Which river flows through Baghdad?", "The Tigris flows through Baghdad.", "complaint"),
    ("What is the largest lake in Africa?", "Lake Victoria is the largest lake in Africa.", "approval"),
]
COMPLAINTS = ["Too long. I just wanted a one-sentence answer.", "Can you keep it to one line? I'm studying for a quiz.",
              "Just the fact please, in one short sentence.", "Shorter please, one sentence max.",
              "I only needed a quick answer, not an essay."]
USERS = ["u3", "u5", "u6", "u7", "u10", "u12", "g1", "g2", "g3", "g4"]


def new_logs() -> list[dict]:
    out = []
    for k, ((question, fact, kind), user) in enumerate(zip(NEW_LOGS, USERS)):
        answer = fact if kind == "approval" else LONG.format(fact=fact)
        follow = "Perfect, thanks!" if kind == "approval" else COMPLAINTS[k % len(COMPLAINTS)]
        feedback = {"rating": 1} if kind == "approval" else {"edited_response": fact} if kind == "edit" else {"rating": -1}
        out.append({"id": f"geography-new-{k + 1:02d}", "user_id": user,
                    "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer},
                                 {"role": "user", "content": follow}],
                    "feedback": feedback, "metadata": {"topic": "geography"}})
    return out


def learn(logs: list[str], workdir: str, extra: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    subprocess.run([CLI, "learn", *logs, "--workdir", workdir, "-q", *extra], check=True, cwd=HERE)
    return round(time.perf_counter() - t, 1), json.loads((Path(workdir) / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="benchmarks/.work/incremental")
    parser.add_argument("--logs", default="examples/logs.jsonl")
    parser.add_argument("--out", default="benchmarks/results/incremental.json")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    added = workdir.parent / f"{workdir.name}-new.jsonl"
    added.parent.mkdir(parents=True, exist_ok=True)
    added.write_text("".join(json.dumps(x) + "\n" for x in new_logs()))

    first_s, first = learn([args.logs], str(workdir), extra)
    second_s, second = learn([args.logs, str(added)], str(workdir), extra)
    result = {
        "runs": {"first": {"logs": first["logs_kept"], "wall_s": first_s, "stages_s": first["timings_s"]},
                 "second": {"logs": second["logs_kept"], "wall_s": second_s, "stages_s": second["timings_s"],
                            "reused": second.get("reuse", {})}},
        "clusters": [{k: c.get(k) for k in ("id", "status", "size", "topics", "route", "win_rate", "lower_bound",
                                            "adapter", "promotion", "capped")} for c in second["clusters"]],
        "retrained": [c["id"] for c in second["clusters"] if c.get("status") == "retrained"],
        "new": [c["id"] for c in second["clusters"] if c.get("status") == "new"],
        "learn_flags": extra,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    stages = sorted(set(first["timings_s"]) | set(second["timings_s"]))
    print(f"{'stage':<10}{'first s':>10}{'second s':>10}")
    for stage in stages:
        print(f"{stage:<10}{first['timings_s'].get(stage, 0):>10.1f}{second['timings_s'].get(stage, 0):>10.1f}")
    print(f"{'wall':<10}{first_s:>10.1f}{second_s:>10.1f}")
    for c in result["clusters"]:
        print(f"{c['id']:<12}{c['status'] or '-':<10}{c['size']:>4}  {c['route']:<7} {c['promotion'] or ''}  "
              f"{','.join(c['topics'] or {})}")
    print(f"result: {args.out}")


if __name__ == "__main__":
    main()
