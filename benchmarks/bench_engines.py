"""The two engines behind `UnoChatModel` on the same model and adapters: transformers + PEFT against
llama.cpp (the base GGUF with each adapter as a GGUF LoRA).

    .venv/bin/python benchmarks/bench_engines.py [--workdir benchmarks/.work/learn] [--threads 2] [--parallel 8]
        [--n 8] [--tokens 64] [--out benchmarks/results/engines.json]

Adapters: the published adapters of `--workdir` (a learned work directory) when it holds any, else
`--random-adapters` PEFT LoRAs on all seven projections with random B (no training; they change
answers the way a small fine-tune does, which is all a speed measurement needs).

Every figure is greedy decoding with a fixed `max_new_tokens`; output tokens are what each engine
reports (an answer that ends early counts its own tokens). The machine is shared, so the load average
is recorded at start and end and the comparisons that matter are ratios inside one run.

1. single_stream: one request at a time, base model vs an adapter, tokens/s per engine; plus the time
   to the first streamed token.
2. concurrent: 8 requests at once over mixed adapters (cycling adapters and the base model), and 8 on
   one adapter: aggregate tokens/s. llama.cpp serves them in `--parallel` slots (threads calling
   `invoke` concurrently); transformers serializes `invoke`s behind its lock, so it is also measured
   as one `generate_batch` (a PEFT mixed-adapter batch), its best case.
3. adapter_switch: a 1-token `invoke` alternating two adapters vs staying on one, per engine (the
   per-request switch); for llama.cpp also what loading one more adapter costs: the GGUF conversion
   (cold cache) and the server restart that picks it up, and the first answer after it.
4. agreement: how often both engines' greedy answers to the single-stream requests start with the
   same 5 words (base and adapter).
5. llamacpp_merged: llama.cpp with ``merge_adapters`` (each adapter merged into a copy of the base
   GGUF, served by a server of its own): the same single-stream and concurrent rows, plus the cold
   merge time of one adapter, the merged file's size, the time to merge and start every adapter's
   server, and the process's resident memory per merged server (model copy + KV cache). Merged files
   go to a temporary cache, so the merges are measured cold. `merged_vs_runtime` sums it up: adapter
   speed as a share of llama.cpp's base speed, and 8 concurrent mixed requests over one adapter stream.

Conditions are recorded with the results: the load average at start, at each section and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def load_queries(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    queries = []
    for row in rows:
        if row.get("query"):
            queries.append(row["query"])
        elif row.get("messages"):
            queries.append(next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user"))
    while len(queries) < n:
        queries = queries + queries
    return queries[:n]


def random_adapters(count: int, root: Path) -> dict[str, str]:
    """`count` PEFT LoRAs (r 16, alpha 32, all seven projections, B ~ N(0, 0.06)) on the default model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from uno_graph.engines.gguf_lora import PROJECTIONS
    from uno_graph.models import load_model, quiet_checkpointing_deprecation

    lm = load_model()
    torch.manual_seed(0)
    with quiet_checkpointing_deprecation():
        peft = get_peft_model(lm.model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                   target_modules=list(PROJECTIONS)))
    out = {}
    for i in range(count):
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.06)
        peft.save_pretrained(root / f"random-{i}")
        out[f"random-{i}"] = str(root / f"random-{i}")
    return out


def workdir_adapters(workdir: Path) -> tuple[dict[str, str], str]:
    from uno_graph.adapters.registry import list_adapters
    from uno_graph.graph import load_config
    from uno_graph.router import adapter_name

    config = load_config(workdir)
    found = {adapter_name(m["cluster_id"], m["role"]): m["path"] for m in list_adapters(workdir / "adapters")}
    return found, config.base_model


def tokens_of(messages) -> int:
    return sum((m.usage_metadata or {}).get("output_tokens", 0) for m in messages)


def single_stream(model, queries: list[str], adapter: str | None, tokens: int) -> dict:
    replies, seconds = [], []
    for query in queries:
        t = time.perf_counter()
        replies.append(model.invoke(query, adapter=adapter, max_new_tokens=tokens))
        seconds.append(time.perf_counter() - t)
    first = []
    for query in queries[:3]:
        t = time.perf_counter()
        stream = model.stream(query, adapter=adapter, max_new_tokens=tokens)
        for chunk in stream:
            if chunk.content:
                first.append(time.perf_counter() - t)
                break
        stream.close()
    n_tokens = tokens_of(replies)
    return {"requests": len(queries), "output_tokens": n_tokens, "seconds": round(sum(seconds), 2),
            "tokens_per_s": round(n_tokens / sum(seconds), 1), "median_request_s": round(median(seconds), 3),
            "first_token_s": round(median(first), 3), "answers": [str(r.content) for r in replies]}


def concurrent(model, queries: list[str], adapters: list[str | None], tokens: int, how: str) -> dict:
    t = time.perf_counter()
    if how == "threads":  # independent callers, as an HTTP server's handler threads
        with ThreadPoolExecutor(max_workers=len(queries)) as pool:
            replies = list(pool.map(lambda qa: model.invoke(qa[0], adapter=qa[1], max_new_tokens=tokens),
                                    zip(queries, adapters)))
    else:  # one batched call
        replies = model.generate_batch(queries, adapters=adapters, max_new_tokens=tokens)
    seconds = time.perf_counter() - t
    n_tokens = tokens_of(replies)
    return {"requests": len(queries), "how": how, "output_tokens": n_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(n_tokens / seconds, 1)}


def switch_cost(model, query: str, names: list[str], calls: int) -> dict:
    def run(sequence) -> float:
        times = []
        for name in sequence:
            t = time.perf_counter()
            model.invoke(query, adapter=name, max_new_tokens=1)
            times.append(time.perf_counter() - t)
        return median(times)

    model.invoke(query, adapter=names[0], max_new_tokens=1)  # warm
    same = run([names[0]] * calls)
    alternating = run([names[i % 2] for i in range(calls)])
    base = run([None] * calls)
    return {"one_token_same_adapter_ms": round(same * 1000, 2), "one_token_alternating_ms": round(alternating * 1000, 2),
            "one_token_base_ms": round(base * 1000, 2), "switch_overhead_ms": round((alternating - same) * 1000, 2)}


def llamacpp_load_cost(model, name: str, path: str, query: str) -> dict:
    """Loading one more adapter: conversion from a cold cache, then (as after a publish, which converts)
    registering it with its GGUF already cached, and the restart at the next request."""
    from uno_graph.engines.gguf_lora import ensure_gguf_lora

    engine = model._engine
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        ensure_gguf_lora(path, engine.heads, cache=cache)
        convert = time.perf_counter() - t
        copy = Path(cache) / "copy"  # other files, same content: a new adapter for the engine, a cached GGUF
        shutil.copytree(path, copy)
        restarts = engine.restarts
        t = time.perf_counter()
        model.load_adapter(name, copy)
        register = time.perf_counter() - t
        t = time.perf_counter()
        engine.warm()
        restart = time.perf_counter() - t
        t = time.perf_counter()
        model.invoke(query, adapter=name, max_new_tokens=1)
        first = time.perf_counter() - t
        model.unload_adapter(name)
    return {"convert_cold_s": round(convert, 3), "load_adapter_s": round(register, 3),
            "server_restart_s": round(restart, 3), "first_answer_after_s": round(first, 3),
            "restarts": engine.restarts - restarts}


def rss_mb() -> float:
    """This process's resident memory (VmRSS), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def merged_costs(model, adapters: dict[str, str]) -> dict:
    """The merged mode's one-off costs: one cold merge, the file, starting every adapter's server."""
    from uno_graph.engines.gguf_merge import ensure_merged_gguf

    engine = model._engine
    lora = next(iter(engine.slots.values()))
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        path = ensure_merged_gguf(engine.gguf_path, lora.gguf, qtype=engine.merged_type, cache=cache)
        merge = time.perf_counter() - t
        size = path.stat().st_size
    rss = rss_mb()
    t = time.perf_counter()
    engine.warm()  # merges (cold cache) and starts the server of every adapter, up to max_merged
    warm = time.perf_counter() - t
    servers = len(engine._instances)
    return {"merge_one_cold_s": round(merge, 2), "merged_file_mb": round(size / 1e6, 1),
            "base_file_mb": round(engine.gguf_path.stat().st_size / 1e6, 1),
            "merge_and_start_all_s": round(warm, 2), "merged_servers": servers,
            "rss_before_mb": round(rss, 1), "rss_after_mb": round(rss_mb(), 1),
            "rss_per_merged_server_mb": round((rss_mb() - rss) / max(1, servers), 1),
            "slots_per_merged_server": engine.merged_parallel, "ctx_per_slot": engine.ctx_per_slot,
            "merged_type": engine.merged_type or "auto"}


def agreement(a: list[str], b: list[str], words: int = 5) -> dict:
    same = [x.split()[:words] == y.split()[:words] for x, y in zip(a, b)]
    return {"first_words": words, "agree": sum(same), "of": len(same)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work/learn"),
                        help="a learned work directory whose adapters are used (random ones when it has none)")
    parser.add_argument("--random-adapters", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engines.json"))
    parser.add_argument("--queries", type=Path, default=Path("examples/test.jsonl"))
    parser.add_argument("--n", type=int, default=8, help="requests per measurement (and concurrent requests)")
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens of every request")
    parser.add_argument("--threads", type=int, default=None, help="torch and llama.cpp threads (default: all cores)")
    parser.add_argument("--parallel", type=int, default=8, help="llama.cpp slots")
    parser.add_argument("--switch-calls", type=int, default=16)
    parser.add_argument("--skip", default="", help="comma-separated: transformers, llamacpp, llamacpp_merged")
    parser.add_argument("--merged-type", default=None, help="merge_adapters' merged_type (default: auto, Q8_0 here)")
    parser.add_argument("--merged-parallel", type=int, default=None, help="slots per merged server (default --parallel)")
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import xllamacpp

    from uno_graph.chat_model import UnoChatModel
    from uno_graph.config import DEFAULT_MODEL

    started = time.time()
    result: dict = {"threads": threads, "llamacpp_parallel": args.parallel, "tokens": args.tokens, "n": args.n,
                    "cpu_count": os.cpu_count(), "xllamacpp": getattr(xllamacpp, "__version__", "?"),
                    "loadavg_start": os.getloadavg()}
    tmp = tempfile.TemporaryDirectory()
    adapters, base_model = {}, DEFAULT_MODEL
    if (args.workdir / "system.json").is_file():
        adapters, base_model = workdir_adapters(args.workdir)
        result["adapters_from"] = str(args.workdir)
    if not adapters:
        adapters = random_adapters(args.random_adapters, Path(tmp.name))
        result["adapters_from"] = f"{args.random_adapters} random LoRAs (r16, all projections)"
    names = sorted(adapters)
    if len(names) < 2:
        parser.error("need at least two adapters (the switch measurement alternates two)")
    queries = load_queries(args.queries, args.n)
    mixed = [([None] + names)[i % (len(names) + 1)] for i in range(args.n)]
    result.update(base_model=base_model, adapters=names, mixed_adapters=mixed)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    engines = {}
    merged_cache = tempfile.TemporaryDirectory()
    for backend in ("transformers", "llamacpp", "llamacpp_merged"):
        if backend in skip:
            continue
        options = {"n_threads": threads, "n_parallel": args.parallel} if backend != "transformers" else {}
        section: dict = {"loadavg_start": os.getloadavg()}
        result[backend] = section
        if backend == "llamacpp_merged":
            import uno_graph.engines.gguf_merge as gguf_merge

            gguf_merge.merged_cache_dir = lambda: Path(merged_cache.name)  # merges measured cold
            options.update(merge_adapters=True, max_merged=len(names), merged_type=args.merged_type,
                           merged_parallel=args.merged_parallel)
        t = time.perf_counter()
        model = UnoChatModel.from_pretrained(base_model, adapters=adapters, backend=backend.split("_")[0],
                                             backend_options=options, max_new_tokens=args.tokens)
        merged = backend == "llamacpp_merged"  # its first adapter request merges: measured apart
        model.invoke(queries[0], adapter=None if merged else names[0], max_new_tokens=1)  # llama.cpp starts here
        engines[backend] = model
        section["load_s"] = round(time.perf_counter() - t, 2)
        if merged:
            section["merged"] = merged_costs(model, adapters)
            print(f"{backend}: {section['merged']}", flush=True)
        for label, adapter in (("base", None), ("adapter", names[0])):
            t = time.perf_counter()
            section[f"single_stream_{label}"] = single_stream(model, queries, adapter, args.tokens)
            print(f"{backend} single stream {label}: {section[f'single_stream_{label}']['tokens_per_s']} tok/s "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        how = ("threads", "batch") if backend == "transformers" else ("threads",)
        section["loadavg_concurrent"] = os.getloadavg()
        for h in how:
            section[f"concurrent_mixed_{h}"] = concurrent(model, queries, mixed, args.tokens, h)
            section[f"concurrent_same_{h}"] = concurrent(model, queries, [names[0]] * args.n, args.tokens, h)
            print(f"{backend} {args.n} concurrent ({h}): mixed {section[f'concurrent_mixed_{h}']['tokens_per_s']} "
                  f"tok/s, same adapter {section[f'concurrent_same_{h}']['tokens_per_s']} tok/s", flush=True)
        section["adapter_switch"] = switch_cost(model, queries[0], names[:2], args.switch_calls)
        if backend == "llamacpp_merged":
            engine = model._engine
            section.update(merged_server_starts=engine.merged_starts, runtime_fallbacks=engine.fallbacks,
                           base_server_starts=engine.restarts)
        if backend == "llamacpp":
            section["adapter_load"] = llamacpp_load_cost(model, "extra", adapters[names[-1]], queries[0])
        print(f"{backend} switch: {section['adapter_switch']}", flush=True)

    if "transformers" in engines and "llamacpp" in engines:
        hf, lc = result["transformers"], result["llamacpp"]
        result["agreement"] = {label: agreement(hf[f"single_stream_{label}"]["answers"],
                                                lc[f"single_stream_{label}"]["answers"]) for label in ("base", "adapter")}
        result["speedup"] = {
            "single_stream_base": round(lc["single_stream_base"]["tokens_per_s"] / hf["single_stream_base"]["tokens_per_s"], 2),
            "single_stream_adapter": round(lc["single_stream_adapter"]["tokens_per_s"]
                                           / hf["single_stream_adapter"]["tokens_per_s"], 2),
            "concurrent_mixed_vs_hf_batch": round(lc["concurrent_mixed_threads"]["tokens_per_s"]
                                                  / hf["concurrent_mixed_batch"]["tokens_per_s"], 2),
        }
    if "llamacpp" in result and "llamacpp_merged" in result:
        lc, mg = result["llamacpp"], result["llamacpp_merged"]
        base = lc["single_stream_base"]["tokens_per_s"]
        result["merged_vs_runtime"] = {
            "base_tok_s": base,
            "runtime_lora_tok_s": lc["single_stream_adapter"]["tokens_per_s"],
            "merged_tok_s": mg["single_stream_adapter"]["tokens_per_s"],
            "merged_base_tok_s": mg["single_stream_base"]["tokens_per_s"],
            "runtime_lora_share_of_base": round(lc["single_stream_adapter"]["tokens_per_s"] / base, 2),
            "merged_share_of_base": round(mg["single_stream_adapter"]["tokens_per_s"] / base, 2),
            "runtime_concurrent_mixed_tok_s": lc["concurrent_mixed_threads"]["tokens_per_s"],
            "merged_concurrent_mixed_tok_s": mg["concurrent_mixed_threads"]["tokens_per_s"],
            "runtime_mixed_over_one_stream": round(lc["concurrent_mixed_threads"]["tokens_per_s"]
                                                   / lc["single_stream_adapter"]["tokens_per_s"], 2),
            "merged_mixed_over_one_stream": round(mg["concurrent_mixed_threads"]["tokens_per_s"]
                                                  / mg["single_stream_adapter"]["tokens_per_s"], 2),
            "merged_mixed_over_runtime_one_stream": round(mg["concurrent_mixed_threads"]["tokens_per_s"]
                                                          / lc["single_stream_adapter"]["tokens_per_s"], 2),
            "agreement_adapter": agreement(lc["single_stream_adapter"]["answers"], mg["single_stream_adapter"]["answers"]),
        }
    result["loadavg_end"] = os.getloadavg()
    result["wall_s"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("transformers", "llamacpp", "llamacpp_merged")},
                     indent=2))
    print(f"wrote {args.out}")
    for model in engines.values():
        if model.backend == "llamacpp":
            model._engine.close()
    tmp.cleanup()
    merged_cache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
