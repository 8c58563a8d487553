"""Run every benchmark in sequence (never two at once: they share the 2 cores) and write benchmarks/results/*.json.

    .venv/bin/python benchmarks/run_all.py
"""

import subprocess
import sys

for script in ("bench_load.py", "bench_trainer.py", "bench_learn.py", "bench_serve.py"):  # serve needs the learned workdir
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, f"benchmarks/{script}"], check=True)
