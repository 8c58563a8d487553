"""Cold load of the default model once cached, and of the embedder.

    .venv/bin/python benchmarks/bench_load.py [--out benchmarks/results/load.json]

Each load runs in a fresh subprocess (a true cold start of the Python process's model state);
the first call also converts the wheel's GGUF if the cache is empty (reported separately).
`import_s` is importing torch / transformers / sentence-transformers (paid once per process by any
program using them); `model_load_s` is the cached model's files to a ready model, which the
target is about; `process_s` is the whole subprocess, interpreter start included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SNIPPET = """
import time, sys
t = time.perf_counter()
# Library imports, timed apart: transformers imports most of itself lazily on the first load, so
# the modules a Llama load touches are imported here (that cost is Python's, not the model's).
import torch, transformers, sentence_transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
import transformers.core_model_loading, transformers.integrations.hub_kernels
from uno_graph.models import load_model, load_embedder
t_import = time.perf_counter() - t
t = time.perf_counter(); lm = load_model(); t_model = time.perf_counter() - t
t = time.perf_counter(); load_embedder(); t_emb = time.perf_counter() - t
t = time.perf_counter()
from uno_graph.chat_model import UnoChatModel
m = UnoChatModel(loaded=lm, max_new_tokens=1)
first = None
for chunk in m.stream("Hello"):
    first = time.perf_counter() - t
    break
print(f"{t_import} {t_model} {t_emb} {first}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/load.json")
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs + 1):  # the first run may convert the GGUF; it is reported, not averaged
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True)
        imp, model, emb, first = map(float, out.stdout.split()[-4:])
        rows.append({"process_s": round(time.perf_counter() - t, 2), "import_s": round(imp, 2),
                     "model_load_s": round(model, 2), "embedder_load_s": round(emb, 2),
                     "first_token_s": round(first, 3)})
    warm = rows[1:]
    result = {"first_run": rows[0], "cached_runs": warm,
              "model_load_s_median": sorted(r["model_load_s"] for r in warm)[len(warm) // 2],
              "target": "cold load of the cached default model <= 3 s"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
