"""Load: the cold load of the default model, and concurrent requests over mixed clusters.

    .venv/bin/python benchmarks/bench_load.py [--part all|cold|concurrent] [--out benchmarks/results/load.json]
    .venv/bin/python benchmarks/bench_load.py --part concurrent [--n 20] [--concurrency 4] [--tokens 32] [--threads 1]
    .venv/bin/python benchmarks/bench_load.py --part concurrent --workdir runs/unseen-dev2 \
        --queries examples/unseen/test.jsonl --key concurrent_learned        # a learned system's adapters

Each part updates its own keys of the results file and keeps the other part's.

**cold** (the top-level keys): each load runs in a fresh subprocess (a true cold start of the Python
process's model state); the first call also converts the wheel's GGUF if the cache is empty (reported
separately). `import_s` is importing torch / transformers / sentence-transformers (paid once per
process by any program using them); `model_load_s` is the cached model's files to a ready model, which
the target is about; `process_s` is the whole subprocess, interpreter start included.

**concurrent** (the key `concurrent`, or `--key`): `--n` requests, the queries of `--queries` taken in
turn from each topic, sent by `--concurrency` threads at once, and the same requests sent one at a
time. Checked: no request fails, and every answer under load equals the answer the same request got
alone (greedy decoding). Reported: requests/s and answer tokens/s both ways, latency median and p90.

- Through the graph (`UnoSystem.graph()`, mode `uno`), its table in a `chroma run` server when the
  `chroma` CLI is next to this Python (else the work directory's persistent store; the output says
  which), with `watch` polling the store every second as a server does.
- Through the OpenAI-compatible server (`OpenAIServer.from_workdir`, HTTP on 127.0.0.1), each request
  naming its cluster's adapter (or the base model), `--concurrency` generation slots.

The work directory is `--workdir` when it holds a learned system, else one built here without
training: one cluster per topic of examples/logs.jsonl (centroid and radius from its logs' queries,
as `learn` computes them), recipes / python / geography routed to an Expert, travel to a Critic and
small talk to the base model, each adapter a random LoRA (`bench_engines.random_adapters`: r 16 on
all projections). A speed and consistency measurement needs no trained weights; the routes make the
mix of one-call (Expert, base) and three-call (Critic: draft, critique, revision) requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("UNO_GRAPH_GGUF_ON_PUBLISH", "0")  # no llama.cpp copy of the random adapters
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

ROUTES = {"recipes": "expert", "python": "expert", "geography": "expert", "travel": "critic",
          "smalltalk-noisy": "base"}  # of the work directory built here


# -- cold load --------------------------------------------------------------------------------------------

def cold_load(runs: int) -> dict[str, Any]:
    rows = []
    for _ in range(runs + 1):  # the first run may convert the GGUF; it is reported, not averaged
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True)
        imp, model, emb, first = map(float, out.stdout.split()[-4:])
        rows.append({"process_s": round(time.perf_counter() - t, 2), "import_s": round(imp, 2),
                     "model_load_s": round(model, 2), "embedder_load_s": round(emb, 2),
                     "first_token_s": round(first, 3)})
    warm = rows[1:]
    return {"first_run": rows[0], "cached_runs": warm,
            "model_load_s_median": sorted(r["model_load_s"] for r in warm)[len(warm) // 2],
            "target": "cold load of the cached default model <= 3 s"}


# -- concurrent requests ------------------------------------------------------------------------------------

def topic_queries(path: Path) -> dict[str, list[str]]:
    """The user queries of a log or test file, by `metadata.topic`."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            query = next(m["content"] for m in row["messages"] if m["role"] == "user")
            out.setdefault(row.get("metadata", {}).get("topic", "?"), []).append(query)
    return out


def mixed_requests(path: Path, n: int) -> list[tuple[str, str]]:
    """`n` (topic, query) pairs taking each topic's queries in turn, so neighbours hit different clusters."""
    by_topic = topic_queries(path)
    rounds = max(len(q) for q in by_topic.values())
    order = [(topic, queries[i]) for i in range(rounds) for topic, queries in by_topic.items() if i < len(queries)]
    return [order[i % len(order)] for i in range(n)]


def build_workdir(root: Path, tokens: int) -> Path:
    """A work directory that serves like a learned one, built without training (see the module)."""
    import numpy as np

    from bench_engines import random_adapters
    from uno_graph.adapters.registry import build_manifest
    from uno_graph.adapters.versions import publish_version
    from uno_graph.config import UnoConfig
    from uno_graph.embeddings import shared_embedder
    from uno_graph.store import UnoStore

    config = UnoConfig(max_new_tokens=tokens)
    root.mkdir(parents=True)
    (root / "system.json").write_text(json.dumps({"base_model": config.base_model, "config": config.to_dict()}))
    routed = [topic for topic, route in ROUTES.items() if route != "base"]
    sources = random_adapters(len(routed), root / "sources")
    embedder, store = shared_embedder(config.embedder), UnoStore.persistent(root / "chroma")
    for topic, queries in topic_queries(Path("examples/logs.jsonl")).items():
        vectors = embedder.encode(queries)
        centroid = vectors.mean(axis=0)
        centroid /= np.linalg.norm(centroid)
        radius = float(np.percentile(np.linalg.norm(vectors - centroid, axis=1), 95))
        route, adapter = ROUTES[topic], ""
        if route != "base":
            source = Path(sources[f"random-{routed.index(topic)}"])
            manifest = build_manifest(role=route, cluster_id=topic, base_model=config.base_model, objective="random",
                                      lora={"r": 16}, train={}, data_hash=topic)
            adapter = str(publish_version(root / "adapters", topic, route, source, manifest).relative_to(root))
        store.put_cluster(topic, centroid, {"size": len(queries), "radius": round(radius, 4), "route": route,
                                            "adapter": adapter, "status": "ready"})
    shutil.rmtree(root / "sources")
    return root


@contextlib.contextmanager
def chroma_server(root: Path) -> Iterator[str | None]:
    """A `chroma run` server on a free port (its URL), or None when the CLI is not installed."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (root / "chroma-server.log").open("wb") as log:
        proc = subprocess.Popen([str(exe), "run", "--path", str(root / "chroma-server"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start: {(root / 'chroma-server.log').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


Answer = tuple[str, ...]  # what must not change under load (text, and route/adapter where known)


def timed_run(ask: Callable[[Any], tuple[Answer, int]], items: list[Any],
              concurrency: int) -> tuple[list[tuple[Answer, int] | Exception], list[float], float]:
    """Every item through `ask` from `concurrency` threads: results (or the exception), latencies, wall time."""
    def one(item: Any) -> tuple[tuple[Answer, int] | Exception, float]:
        t = time.perf_counter()
        try:
            return ask(item), time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - counted and reported
            return exc, time.perf_counter() - t

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        done = list(pool.map(one, items))
    return [r for r, _ in done], [s for _, s in done], time.perf_counter() - t


def measure(ask: Callable[[Any], tuple[Answer, int]], items: list[Any], concurrency: int) -> dict[str, Any]:
    """`items` one at a time, then `concurrency` at once: errors, answers equal to alone, throughput."""
    ask(items[0])  # warm-up: first-call costs are not load
    runs = {"alone": timed_run(ask, items, 1), "concurrent": timed_run(ask, items, concurrency)}
    errors = [f"{type(r).__name__}: {r}" for results, _, _ in runs.values()
              for r in results if isinstance(r, Exception)]
    alone, together = runs["alone"][0], runs["concurrent"][0]
    equal = sum(1 for a, b in zip(alone, together)
                if not isinstance(a, Exception) and not isinstance(b, Exception) and a[0] == b[0])
    out: dict[str, Any] = {"requests": len(items), "errors": len(errors), "error_examples": errors[:3],
                           "answers_equal_to_alone": equal}
    for label, (results, latencies, wall) in runs.items():
        tokens = sum(r[1] for r in results if not isinstance(r, Exception))
        out[label] = {"threads": 1 if label == "alone" else concurrency, "seconds": round(wall, 2),
                      "requests_per_s": round(len(items) / wall, 3), "answer_tokens_per_s": round(tokens / wall, 1),
                      "latency_median_s": round(statistics.median(latencies), 2),
                      "latency_p90_s": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 2)}
    out["throughput_ratio"] = round(out["concurrent"]["requests_per_s"] / out["alone"]["requests_per_s"], 2)
    return out


def through_graph(workdir: Path, requests: list[tuple[str, str]], concurrency: int,
                  chroma_url: str | None) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The graph's measurement, and the adapter each query was routed to (None = the base model)."""
    from uno_graph.graph import UnoSystem
    from uno_graph.store import UnoStore

    if chroma_url:
        UnoStore.persistent(workdir / "chroma").copy_to(UnoStore.connect(chroma_url))
    system = UnoSystem.load(workdir, chroma_url=chroma_url)
    graph, routes, adapters = system.graph(), {}, {}
    watcher = system.watch(1.0)

    def ask(request: tuple[str, str]) -> tuple[Answer, int]:
        reply = graph.invoke({"messages": [("user", request[1])]})["messages"][-1]
        meta = reply.response_metadata
        routes[request[1]], adapters[request[1]] = meta.get("uno_route"), meta.get("uno_adapter")
        return (str(reply.content), str(meta.get("uno_route")), str(meta.get("uno_adapter"))), \
            (reply.usage_metadata or {}).get("output_tokens", 0)

    try:
        result = measure(ask, requests, concurrency)
    finally:
        watcher.stop()
    result["routes"] = dict(Counter(routes[query] for _, query in requests))
    return result, adapters


def through_openai_server(workdir: Path, requests: list[tuple[str, str]], concurrency: int, tokens: int,
                          adapters: dict[str, str | None]) -> dict[str, Any]:
    """The OpenAI-compatible server's measurement; each request names the adapter the graph routed its query to."""
    from uno_graph.openai_server import Limits, OpenAIServer

    limits = Limits(max_concurrency=concurrency, max_queue=len(requests))
    with OpenAIServer.from_workdir(workdir, port=0, limits=limits).start() as server:
        def ask(request: tuple[str, str]) -> tuple[Answer, int]:
            body = {"model": adapters.get(request[1]) or server.base_name, "max_tokens": tokens, "temperature": 0,
                    "messages": [{"role": "user", "content": request[1]}]}
            req = urllib.request.Request(f"{server.url}/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as resp:
                reply = json.loads(resp.read())
            return (reply["choices"][0]["message"]["content"], body["model"]), reply["usage"]["completion_tokens"]

        result = measure(ask, requests, concurrency)
        result["models"] = dict(Counter(adapters.get(query) or server.base_name for _, query in requests))
    return result


def concurrent_load(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    requests = mixed_requests(args.queries, args.n)
    result: dict[str, Any] = {
        "command": "benchmarks/bench_load.py " + " ".join(sys.argv[1:]), "n": args.n,
        "queries": str(args.queries), "concurrency": args.concurrency, "tokens": args.tokens, "torch_threads": args.threads or "default",
        "cpu_count": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "requests_per_topic": dict(Counter(topic for topic, _ in requests))}
    with tempfile.TemporaryDirectory() as tmp:
        if args.workdir and (args.workdir / "system.json").is_file():
            workdir = args.workdir
            result["workdir"] = str(workdir)
        else:
            workdir = build_workdir(Path(tmp) / "work", args.tokens)
            result["workdir"] = f"built without training: clusters {ROUTES}, random r16 LoRAs"
        with chroma_server(Path(tmp)) as url:
            result["store"] = "chroma run server" if url else (
                f"persistent store: no `chroma` CLI at {Path(sys.executable).with_name('chroma')}")
            print(f"graph: {args.n} requests, {args.concurrency} at once; store: {result['store']}", flush=True)
            result["graph"], adapters = through_graph(workdir, requests, args.concurrency, url)
        print(json.dumps(result["graph"]), flush=True)
        result["openai_server"] = through_openai_server(workdir, requests, args.concurrency, args.tokens, adapters)
        print(json.dumps(result["openai_server"]), flush=True)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "cold", "concurrent"), default="all")
    parser.add_argument("--runs", type=int, default=3, help="cold: cached loads after the first")
    parser.add_argument("--n", type=int, default=20, help="concurrent: requests")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent: requests sent at once")
    parser.add_argument("--tokens", type=int, default=32, help="concurrent: max_new_tokens of every answer")
    parser.add_argument("--threads", type=int, default=None, help="concurrent: torch threads (default: torch's)")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work/learn"),
                        help="concurrent: a learned work directory (built without training when absent)")
    parser.add_argument("--queries", type=Path, default=Path("examples/test.jsonl"),
                        help="concurrent: the test or log file whose queries are sent (by metadata.topic)")
    parser.add_argument("--key", default="concurrent", help="concurrent: the results file's key to write")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load.json"))
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.part in ("all", "cold"):
        result.update(cold_load(args.runs))
    if args.part in ("all", "concurrent"):
        result[args.key] = concurrent_load(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
