"""Serving targets on a learned work directory: routing cost, adapter switch, first token after a cold
start, and throughput when consecutive requests need different adapters.

    .venv/bin/python benchmarks/bench_serve.py [--workdir benchmarks/.work/learn] [--out benchmarks/results/serve.json] [--n 8]

The work directory comes from `benchmarks/bench_learn.py` (the real default model, SmolLM2-135M).
Everything is measured in one run and compared as ratios inside it: the machine is shared, so
absolute times move with its load (recorded at start and end); every figure is a median.

1. Routing: `Router.route` (embed + nearest centroid + adapter select) on the 40 queries of
   examples/test.jsonl, warm embedder, against a base answer (`invoke` with the config's
   max_new_tokens). Target: routing <= 3 % of the base answer.
2. Adapter switch: what `UnoChatModel` runs when a call names an adapter, with adapters loaded:
   the engine's `_switch` (points every LoRA layer at the adapter), and the whole per-call
   activation (switch + enable before generating, disable after); PEFT's own `set_adapter` as a
   reference; plus a 1-token `invoke` alternating two adapters vs one adapter vs the base model.
   Target: switch <= 1 ms.
3. Cold start, in fresh subprocesses (model cached on disk): (a) library imports, (b) loading
   model + embedder + store + adapters (`UnoSystem.load`), (c) compiling the graph and streaming
   to its first token. Target: (b) + (c) <= 3 s; (a) is Python's cost, reported apart as in
   bench_load.py. Measured twice: adapters loaded up front, and `lazy_adapters=True` (validated up
   front, weights loaded by the first call that needs them: the first token then includes one load).
4. Throughput: output tokens/s for n requests (greedy, fixed max_new_tokens) all on one adapter vs
   cycling through the adapters, served one at a time (`invoke`) and as one `generate_batch`
   (a PEFT mixed-adapter batch when the adapters differ); the base model is the reference.

`--threads 1` when another job keeps the cores busy: torch's default of one thread per core then
stalls at every parallel region waiting for a descheduled thread (measured: a 16-token answer took
8.6 s with 2 threads, 1.4 s with 1, while a training job used both cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLD_START = """
import json, os, sys, time
started = float(sys.argv[1])
t = time.perf_counter()
# Library imports, timed apart (as in bench_load.py): transformers, peft and chromadb import most of
# themselves lazily on first use, so the modules a load touches are imported here.
import torch, transformers, sentence_transformers, peft, chromadb, langgraph
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
import transformers.core_model_loading, transformers.integrations.hub_kernels
from peft import PeftModel
import peft.tuners.lora
from uno_graph.graph import UnoSystem, load_config
from uno_graph.chat_model import UnoChatModel
from uno_graph.embeddings import shared_embedder
from uno_graph.store import UnoStore
from uno_graph.adapters.registry import validate_adapter
t_import = time.perf_counter() - t
before = set(sys.modules)

workdir, query = sys.argv[2], sys.argv[3]
config = load_config(workdir)
# UnoSystem.load, split in three: the base model and the embedder are process-wide caches that
# UnoSystem.load then reuses, and the store is passed in; the rest is adapter validation and loading.
t = time.perf_counter()
UnoChatModel.from_pretrained(config.base_model, max_new_tokens=config.max_new_tokens)
t_model = time.perf_counter() - t
t = time.perf_counter(); shared_embedder(config.embedder); t_embedder = time.perf_counter() - t
t = time.perf_counter(); store = UnoStore.persistent(os.path.join(workdir, "chroma")); t_store = time.perf_counter() - t
lazy = sys.argv[4] == "lazy"  # lazy: adapters validated now, weights loaded by the first call that needs them
t = time.perf_counter(); system = UnoSystem.load(workdir, store=store, lazy_adapters=lazy); t_rest = time.perf_counter() - t
late = sorted(set(sys.modules) - before)
t = time.perf_counter()  # the sha256 checks UnoSystem.load ran, again: their share of adapters_s
for _, path in system.served.values():
    validate_adapter(path, config.base_model)
t_validate = time.perf_counter() - t

t = time.perf_counter()
graph = system.graph()
t_compile = time.perf_counter() - t
for chunk, meta in graph.stream({"messages": [("user", query)]}, stream_mode="messages"):
    if chunk.content:
        t_first, t_process = time.perf_counter() - t, time.time() - started
        print("RESULT", json.dumps({
            "import_s": t_import, "model_s": t_model, "embedder_s": t_embedder, "store_s": t_store,
            "adapters_s": t_rest, "validate_s": t_validate, "compile_s": t_compile, "first_token_s": t_first,
            "node": meta.get("langgraph_node"), "process_to_first_token_s": t_process,
            "torch_threads": torch.get_num_threads(), "modules_imported_during_load": late}), flush=True)
        # Leaving the loop would close the stream, which waits for the rest of the answer: exit at once.
        os._exit(0)
"""


def median(values) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def load_queries(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [next(m["content"] for m in reversed(r["messages"]) if m["role"] == "user") for r in rows]


def distinct_adapters(system) -> list[str]:
    """Names of distinct loaded adapters; with fewer than 2, copies of one are loaded so switching is real.

    The chat model shares identical adapter files under one PEFT name, so a copy lives in its own directory.
    """
    model = system.model
    names = list(model.adapter_names)
    if not names:
        raise SystemExit(f"{system.root} serves no adapter; run benchmarks/bench_learn.py first")
    scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    k = 1
    while len(names) < 2:
        copy = scratch / f"copy{k}"
        shutil.copytree(model.adapters[names[0]], copy)
        model.load_adapter(f"{names[0]}-copy{k}", copy)
        names.append(f"{names[0]}-copy{k}")
        k += 1
    return names


# --------------------------------------------------------------------------------------------------
# 1. Routing vs a base answer
# --------------------------------------------------------------------------------------------------


def bench_routing(system, queries: list[str], n: int, reps: int = 3) -> dict:
    router = system.router
    for q in queries:  # warm-up: first encode calls allocate and pick kernels
        router.route(q)
    route_s, embed_s, select_s, routes = [], [], [], {}
    for _ in range(reps):
        for q in queries:
            t = time.perf_counter()
            decision = router.route(q)
            route_s.append(time.perf_counter() - t)
            routes[decision.route] = routes.get(decision.route, 0) + 1
            t = time.perf_counter()
            vector = router.embedder.encode([q])[0]
            embed_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            router.table.nearest(vector)
            select_s.append(time.perf_counter() - t)

    model = system.model
    few = queries[:: max(1, len(queries) // 4)][:4]  # one per topic of the test set
    model.invoke(few[0], adapter=None, max_new_tokens=4)  # warm-up
    answer_s, answer_tokens = [], []
    for i in range(n):
        t = time.perf_counter()
        reply = model.invoke(few[i % len(few)], adapter=None)
        answer_s.append(time.perf_counter() - t)
        answer_tokens.append(reply.usage_metadata["output_tokens"])
    ratio = median(route_s) / median(answer_s)
    return {
        "queries": len(queries), "reps": reps, "routes": {k: v // reps for k, v in routes.items()},
        "route_ms_median": ms(median(route_s)), "route_ms_p90": ms(statistics.quantiles(route_s, n=10)[-1]),
        "embed_ms_median": ms(median(embed_s)), "nearest_ms_median": ms(median(select_s)),
        "base_answer": {"calls": n, "queries": few, "max_new_tokens": model.max_new_tokens,
                        "s_median": round(median(answer_s), 3), "output_tokens_median": median(answer_tokens)},
        "route_over_base_answer_pct": round(100 * ratio, 3),
        "target": "routing <= 3 % of a base answer", "met": ratio <= 0.03,
    }


# --------------------------------------------------------------------------------------------------
# 2. Adapter switch
# --------------------------------------------------------------------------------------------------


def bench_switch(system, names: list[str], query: str, reps: int, calls: int) -> dict:
    model = system.model
    engine = model._engine  # timing exactly what TransformersEngine.generate runs per call
    peft = engine.peft
    a, b = (model._handles[n] for n in names[:2])  # PEFT's names for the two adapters

    def timed(fn, count: int) -> list[float]:
        out = []
        for i in range(count):
            t = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t)
        return out

    def switch(i: int) -> None:  # the chat model's switch: point every LoRA layer at the adapter
        engine._switch(a if i % 2 else b, enabled=False)

    def activate(name):  # what TransformersEngine.generate does around every call that names an adapter
        def run(i: int) -> None:
            engine._switch(name if isinstance(name, str) else name[i % 2], enabled=True)
            engine._switch(None, enabled=False)
        return run

    def peft_switch(i: int) -> None:  # reference: PEFT's own set_adapter (walks the module tree)
        peft.set_adapter(a if i % 2 else b, inference_mode=True)

    with engine.lock:
        switch_s = timed(switch, reps)
        activate_alt_s = timed(activate((a, b)), max(reps // 20, 50))
        activate_same_s = timed(activate(a), max(reps // 20, 50))
        peft_s = timed(peft_switch, max(reps // 10, 50))
        peft.base_model.disable_adapter_layers()
        engine._active = None  # PEFT moved the pointers; the engine re-points on its next call

    # End to end: a 1-token answer (prefill + one decode step) per call.
    one = {"base": [], "same": [], "alternating": []}
    for name in (None, names[0]):
        model.invoke(query, adapter=name, max_new_tokens=1)  # warm-up
    for _ in range(3):  # blocks interleaved, so load drifts hit all three alike
        for i in range(calls):
            t = time.perf_counter(); model.invoke(query, adapter=None, max_new_tokens=1)
            one["base"].append(time.perf_counter() - t)
        for i in range(calls):
            t = time.perf_counter(); model.invoke(query, adapter=names[0], max_new_tokens=1)
            one["same"].append(time.perf_counter() - t)
        for i in range(calls):
            t = time.perf_counter(); model.invoke(query, adapter=names[i % 2], max_new_tokens=1)
            one["alternating"].append(time.perf_counter() - t)
    one_ms = {k: ms(median(v)) for k, v in one.items()}
    switch_ms = ms(median(switch_s))
    return {
        "adapters_loaded": len(engine.slots), "lora_layers": len(engine._layers or []), "reps": reps,
        "switch_ms_median": switch_ms,
        "switch_ms_p90": ms(statistics.quantiles(switch_s, n=10)[-1]),
        "per_call_activation_ms_median": {"alternating": ms(median(activate_alt_s)),
                                          "same": ms(median(activate_same_s))},
        "reference_peft_set_adapter_ms_median": ms(median(peft_s)),
        "one_token_invoke_ms_median": {**one_ms,
                                       "alternating_minus_same": round(one_ms["alternating"] - one_ms["same"], 3),
                                       "same_minus_base": round(one_ms["same"] - one_ms["base"], 3)},
        "one_token_calls_each": 3 * calls,
        "target": "adapter switch <= 1 ms with adapters preloaded", "met": switch_ms <= 1.0,
    }


# --------------------------------------------------------------------------------------------------
# 3. First token after a cold start
# --------------------------------------------------------------------------------------------------


def bench_cold_start(workdir: str, query: str, runs: int, lazy: bool = False) -> dict:
    rows = []
    for _ in range(runs):
        started = time.time()
        out = subprocess.run([sys.executable, "-c", COLD_START, repr(started), workdir, query,
                              "lazy" if lazy else "eager"],
                             check=False, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            raise SystemExit(f"cold-start subprocess failed ({out.returncode}):\n{out.stderr[-3000:]}")
        r = json.loads(line[len("RESULT "):])
        load = r["model_s"] + r["embedder_s"] + r["store_s"] + r["adapters_s"]
        first = r["compile_s"] + r["first_token_s"]
        rows.append({"import_s": round(r["import_s"], 2), "load_s": round(load, 2),
                     "load_parts_s": {**{k: round(r[k], 2) for k in ("model_s", "embedder_s", "store_s", "adapters_s")},
                                      "adapters_of_which_sha256_checks_s": round(r["validate_s"], 2)},
                     "first_token_after_load_s": round(first, 3), "compile_s": round(r["compile_s"], 3),
                     "load_plus_first_token_s": round(load + first, 2),
                     "process_to_first_token_s": round(r["process_to_first_token_s"], 2),
                     "first_token_node": r["node"], "torch_threads": r["torch_threads"],
                     "modules_imported_during_load": len(r["modules_imported_during_load"])})
        late = Counter(m.split(".")[0] for m in r["modules_imported_during_load"])
    target = median(r["load_plus_first_token_s"] for r in rows)
    return {
        "query": query, "lazy_adapters": lazy, "runs": rows,
        "import_s_median": median(r["import_s"] for r in rows),
        "load_s_median": median(r["load_s"] for r in rows),
        "first_token_after_load_s_median": median(r["first_token_after_load_s"] for r in rows),
        "load_plus_first_token_s_median": target,
        "process_to_first_token_s_median": median(r["process_to_first_token_s"] for r in rows),
        "modules_imported_during_load_by_package": dict(late.most_common()),  # lazy imports the load paid for
        "target": "load + first token <= 3 s after a cold start (model cached; library imports apart)",
        "met": target <= 3.0,
    }


# --------------------------------------------------------------------------------------------------
# 4. Throughput: one adapter vs different adapters, one at a time vs one batch
# --------------------------------------------------------------------------------------------------


def bench_throughput(system, names: list[str], queries: list[str], n: int, tokens: int, rounds: int) -> dict:
    model = system.model
    picked = [queries[i * len(queries) // n] for i in range(n)] if n <= len(queries) else \
        [queries[i % len(queries)] for i in range(n)]
    plans = {"base": [None] * n, "same": [names[0]] * n, "different": [names[i % len(names)] for i in range(n)]}
    call = {"max_new_tokens": tokens, "temperature": 0.0}

    def one_at_a_time(adapters):
        return [model.invoke(q, adapter=a, **call) for q, a in zip(picked, adapters)]

    def batched(adapters):
        return model.generate_batch(picked, adapters=adapters, **call)

    model.generate_batch(picked[:2], adapters=names[:2], max_new_tokens=2)  # warm-up (mixed path too)
    runs: dict[str, list[dict]] = {}
    for _ in range(rounds):  # configurations interleaved, so load drifts hit all alike
        for plan, adapters in plans.items():
            for serve, fn in (("one_at_a_time", one_at_a_time), ("batch", batched)):
                if plan == "base" and serve == "one_at_a_time":
                    continue  # the base model is the reference for batches only (saves a minute)
                t = time.perf_counter()
                replies = fn(adapters)
                wall = time.perf_counter() - t
                lengths = [r.usage_metadata["output_tokens"] for r in replies]
                # A batch runs until its longest row ends (rows that hit EOS early idle along), so
                # ms per decode step compares the cost of a step apart from how long the answers were.
                steps = max(lengths) if serve == "batch" else sum(lengths)
                runs.setdefault(f"{serve}/{plan}", []).append(
                    {"s": round(wall, 2), "output_tokens": sum(lengths), "decode_steps": steps,
                     "tokens_per_s": round(sum(lengths) / wall, 2), "ms_per_decode_step": ms(wall / steps)})
    tps = {k: round(median(r["tokens_per_s"] for r in v), 2) for k, v in runs.items()}
    return {
        "n": n, "max_new_tokens": tokens, "greedy": True, "rounds": rounds, "batch_size": model.batch_size,
        "adapters_cycled": names[:n], "runs": runs, "tokens_per_s_median": tps,
        "ms_per_decode_step_median": {k: round(median(r["ms_per_decode_step"] for r in v), 1) for k, v in runs.items()},
        "ratios": {
            "one_at_a_time_different_over_same": round(tps["one_at_a_time/different"] / tps["one_at_a_time/same"], 3),
            "batch_different_over_same": round(tps["batch/different"] / tps["batch/same"], 3),
            "batch_over_one_at_a_time_same": round(tps["batch/same"] / tps["one_at_a_time/same"], 3),
            "batch_over_one_at_a_time_different": round(
                tps["batch/different"] / tps["one_at_a_time/different"], 3),
            "same_adapter_over_base_batch": round(tps["batch/same"] / tps["batch/base"], 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="benchmarks/.work/learn")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    parser.add_argument("--n", type=int, default=8, help="base answers timed, and requests per throughput stream")
    parser.add_argument("--queries", type=Path, default=Path("examples/test.jsonl"))
    parser.add_argument("--switch-reps", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=48, help="max_new_tokens of the throughput requests")
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of each throughput configuration")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads here and in the cold-start subprocesses (default: torch's, one per "
                             "core); 1 when another job keeps the cores busy, see the module docstring")
    args = parser.parse_args(argv)
    if not (Path(args.workdir) / "system.json").is_file():
        parser.error(f"{args.workdir} holds no learned system; run benchmarks/bench_learn.py first")
    if args.n < 2:
        parser.error("--n must be >= 2 (the throughput streams cycle adapters)")

    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read when torch is imported; subprocesses inherit it
    import torch
    from transformers.utils import logging as hf_logging

    from uno_graph.graph import UnoSystem

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    started = time.time()
    result: dict = {"workdir": args.workdir, "torch_threads": torch.get_num_threads(),
                    "loadavg_start": os.getloadavg()}
    t = time.perf_counter()
    system = UnoSystem.load(args.workdir)
    result["warm_process_load_s"] = round(time.perf_counter() - t, 2)
    names = distinct_adapters(system)
    queries = load_queries(args.queries)
    result.update(base_model=system.config.base_model, adapters=names)

    sections = (
        ("routing", lambda: bench_routing(system, queries, args.n)),
        ("adapter_switch", lambda: bench_switch(system, names, queries[0], args.switch_reps, calls=8)),
        ("throughput", lambda: bench_throughput(system, names, queries, args.n, args.tokens, args.rounds)),
    )
    for key, run in sections:
        t = time.perf_counter()
        result[key] = run()
        result[key]["section_s"] = round(time.perf_counter() - t, 1)
        print(f"{key}: {time.perf_counter() - t:.0f} s", flush=True)

    # The cold start streams a query the router sends to an Expert (its first token is the user's answer;
    # on a Critic cluster it would be the hidden draft's), else a base-routed one.
    by_route = {system.router.route(q).route: q for q in reversed(queries)}
    query = by_route.get("expert") or by_route.get("base") or queries[0]
    for key, lazy in (("cold_start", False), ("cold_start_lazy_adapters", True)):
        t = time.perf_counter()
        result[key] = bench_cold_start(args.workdir, query, args.cold_runs, lazy=lazy)
        result[key]["section_s"] = round(time.perf_counter() - t, 1)
        print(f"{key}: {time.perf_counter() - t:.0f} s", flush=True)

    result["targets_met"] = {k: result[k]["met"] for k in ("routing", "adapter_switch", "cold_start",
                                                           "cold_start_lazy_adapters")}
    result["loadavg_end"] = os.getloadavg()
    result["wall_s"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
