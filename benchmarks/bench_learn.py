"""Time `uno-graph learn` on the example logs, per stage, from an empty work directory.

    .venv/bin/python benchmarks/bench_learn.py [--workdir benchmarks/.work/learn] [--out benchmarks/results/learn.json]

Target: the whole run within 20 minutes on 2 cores. Stage times come from the run's summary.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="benchmarks/.work/learn")
    parser.add_argument("--logs", default="examples/logs.jsonl")
    parser.add_argument("--out", default="benchmarks/results/learn.json")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "uno-graph"), "learn", args.logs, "--workdir", args.workdir, "-q"],
                   check=True)
    total = time.perf_counter() - t
    summary = json.loads((Path(args.workdir) / "summary.json").read_text())
    result = {"total_s": round(total, 1), "stages_s": summary["timings_s"], "logs": summary["logs_kept"],
              "clusters": [{k: c[k] for k in ("id", "size", "route", "win_rate")} for c in summary["clusters"]],
              "target": "learn on the example logs <= 1200 s"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
