"""`UnoChatModel`: one local causal LM plus any number of named LoRA adapters, as a LangChain chat model.

The base model is loaded once per process (a cache keyed by model path, so building many
`UnoChatModel`s on the same path is cheap) and every adapter is loaded once onto it with PEFT.
Choosing an adapter is per call and costs a pointer flip on each LoRA layer, never a reload; a batch whose items
want different adapters runs as one PEFT mixed-adapter batch.

`backend="llamacpp"` serves the same model and adapters from llama.cpp instead (the base model's GGUF,
each adapter converted to a GGUF LoRA, concurrent requests in parallel slots; `uno_graph.engines`), with
the same public behaviour: adapters by name per call, `generate_batch`, streaming, finish reasons, usage.

Example (runs offline with the embedded default model; adapters come from `uno-graph learn`):

    >>> from uno_graph.chat_model import UnoChatModel
    >>> llm = UnoChatModel.from_pretrained(                      # doctest: +SKIP
    ...     "smollm2-135m-instruct",
    ...     adapters={"expert-c1": "runs/demo/adapters/c1/expert"},
    ...     max_new_tokens=64,
    ... )
    >>> llm.invoke("How do I boil an egg?").content              # doctest: +SKIP
    'Put the egg in boiling water ...'
    >>> expert = llm.bind(adapter="expert-c1")                   # doctest: +SKIP
    >>> expert.invoke("How do I boil an egg?").response_metadata["adapter"]   # doctest: +SKIP
    'expert-c1'
    >>> for chunk in expert.stream("Explain recursion"):          # doctest: +SKIP
    ...     print(chunk.content, end="")
    >>> llm.generate_batch(["hi", "hello"], adapters=["expert-c1", None])     # doctest: +SKIP
    [AIMessage(...), AIMessage(...)]
    >>> fast = UnoChatModel.from_workdir("runs/demo", backend="llamacpp")    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from uno_graph.config import DEFAULT_MODEL
from uno_graph.engines.base import BACKENDS, GenParams, Row, adapter_key
from uno_graph.engines.transformers import BASE_ADAPTER, clear_model_cache, engine_for_loaded, engine_for_path
from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError
from uno_graph.models import LoadedModel
from uno_graph.tool_calls import ToolSetup, chunks_of, convert_tools, limit_calls, parse_tool_calls, render_prompt
from uno_graph.tool_calls import resolve_tool_choice, streamable_span, tool_names

log = logging.getLogger(__name__)


_CALL_KWARGS = frozenset({
    "adapter", "max_new_tokens", "max_tokens", "temperature", "top_p", "repetition_penalty", "seed", "model",
    "stream",  # read by langchain-core's streaming switch; nothing to do here
    "tools", "tool_choice", "parallel_tool_calls",  # set by bind_tools (uno_graph.tool_calls)
    "ls_structured_output_format",  # tracing metadata from with_structured_output
})
_TEXT_BLOCKS = {"text"}
_SKIPPED_BLOCKS = {"reasoning", "thinking", "tool_call", "tool_call_chunk", "tool_use", "function_call"}


# --------------------------------------------------------------------------------------------------
# Adapters registered lazily (the engines are in uno_graph.engines: transformers, llamacpp)
# --------------------------------------------------------------------------------------------------


_Params = GenParams  # decoding settings of one call (uno_graph.engines.base)
_Row = Row  # one generated answer (uno_graph.engines.base)
_adapter_key = adapter_key


@dataclass(frozen=True)
class _Pending:
    """An adapter registered with `lazy=True`, whose weights load on the first call that names it."""

    path: Path
    base_model: str | None  # from its manifest.json, if it has one: the files are checked again before loading
    served: str | None  # the path of the version loaded under the same name before, which answers if this fails

    @classmethod
    def register(cls, path: Path, served: str | None) -> _Pending:
        from uno_graph.adapters.registry import MANIFEST, load_manifest

        _adapter_key(path)  # the files must be there now
        manifest = load_manifest(path) if (path / MANIFEST).is_file() else {}
        return cls(path, manifest.get("base_model"), served)




# --------------------------------------------------------------------------------------------------
# Helpers: messages -> chat-template dicts, stop strings, batch prefill
# --------------------------------------------------------------------------------------------------


def _text_of(content: Any, role: str) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in _TEXT_BLOCKS:
            parts.append(str(block.get("text", "")))
        elif kind in _SKIPPED_BLOCKS:
            continue
        else:
            raise ConfigError(f"UnoChatModel is text-only: a {role} message has a {kind!r} content block")
    return "".join(parts)


def messages_to_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> the `[{"role", "content"}, ...]` list chat templates take."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if isinstance(msg, SystemMessage):
            role = "system"
        elif isinstance(msg, HumanMessage):
            role = "user"
        elif isinstance(msg, AIMessage):
            role = "assistant"
        elif isinstance(msg, (ToolMessage, FunctionMessage)):
            role = "tool"
        elif isinstance(msg, ChatMessage):
            role = msg.role
        else:
            raise ConfigError(f"UnoChatModel cannot render a message of type {type(msg).__name__}")
        entry: dict[str, Any] = {"role": role, "content": _text_of(msg.content, role)}
        if isinstance(msg, AIMessage) and msg.tool_calls:
            entry["tool_calls"] = [
                {"id": tc.get("id"), "type": "function", "function": {"name": tc["name"], "arguments": tc["args"]}}
                for tc in msg.tool_calls
            ]
        if isinstance(msg, ToolMessage):
            entry["tool_call_id"] = msg.tool_call_id
        if isinstance(msg, (ToolMessage, FunctionMessage)) and msg.name:
            entry["name"] = msg.name
        out.append(entry)
    return out


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _safe_len(buffer: str, stops: tuple[str, ...]) -> int:
    """How much of streamed text can be emitted without ever emitting (part of) a stop string."""
    if not stops:
        return len(buffer)
    safe = len(buffer) - (max(len(s) for s in stops) - 1)
    hit = _first_stop(buffer, stops)
    if hit is not None:
        safe = min(safe, hit)
    return max(safe, 0)


@dataclass
class _Job:
    prompt: str
    ids: list[int]
    adapter: str | None  # public name, None = base
    internal: str | None  # PEFT name
    params: _Params
    stops: tuple[str, ...]
    tools: ToolSetup | None = None  # tools bound: the answer is parsed for tool calls

    def key(self, owner: int) -> tuple[Any, ...]:
        return (owner, self.prompt, self.internal, self.params, self.stops)


class _Prefill:
    """Results of one batched generate, handed to the per-item `_generate`/`_stream` calls of `batch()`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: dict[tuple[Any, ...], deque[AIMessage]] = {}

    def put(self, key: tuple[Any, ...], message: AIMessage) -> None:
        self.results.setdefault(key, deque()).append(message)

    def take(self, key: tuple[Any, ...]) -> AIMessage | None:
        with self.lock:
            queue = self.results.get(key)
            return queue.popleft() if queue else None


_PREFILL: contextvars.ContextVar[_Prefill | None] = contextvars.ContextVar("uno_graph_prefill", default=None)


# --------------------------------------------------------------------------------------------------
# The chat model
# --------------------------------------------------------------------------------------------------


class UnoChatModel(BaseChatModel):
    """A local causal LM serving any number of named LoRA adapters, as a LangChain chat model.

    The base model is held once per process (cache keyed by model path; constructing another
    `UnoChatModel` on the same path reuses it) and each adapter is loaded once onto it with PEFT.
    The adapter is chosen per call, and switching costs only a pointer flip per LoRA layer:

    * `adapter=None` (the default field value) answers with the base model (adapters disabled);
    * `llm.bind(adapter="expert-c1")`, `llm.invoke(msgs, adapter="expert-c1")`, or the `adapter` field
      pick a LoRA; `adapter="__base__"` forces the base model; an unknown name raises
      `AdapterNotFoundError` (a `KeyError`) listing the loaded names.

    Supported: `invoke`/`stream`/`batch` and their async twins (async work runs in a thread, never on
    the event loop), token streaming (`on_llm_new_token` fires, so LangGraph `stream_mode="messages"`
    streams tokens), stop sequences, `usage_metadata`, and real batching: `batch()` and
    `generate_batch()` run one left-padded `generate` (PEFT mixed-adapter batch when items need
    different adapters) whose greedy results equal one-at-a-time calls. `bind_tools` renders tools into
    the prompt and parses the answer into `tool_calls` (`uno_graph.tool_calls`), so `with_structured_output`
    and LangChain agents work too (the embedded 135M model calls a tool only when the call is forced).

    Example:
        >>> from uno_graph.chat_model import UnoChatModel
        >>> llm = UnoChatModel.from_pretrained(                         # doctest: +SKIP
        ...     adapters={"expert-c1": "runs/demo/adapters/c1/expert"}, max_new_tokens=64)
        >>> base_answer = llm.invoke("How do I boil an egg?")           # doctest: +SKIP
        >>> expert_answer = llm.bind(adapter="expert-c1").invoke("How do I boil an egg?")  # doctest: +SKIP
        >>> expert_answer.response_metadata["adapter"], expert_answer.usage_metadata["output_tokens"]  # doctest: +SKIP
        ('expert-c1', 41)
        >>> llm.batch(["hi", "What is 2+2?"])                           # one batched generate  # doctest: +SKIP
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_name: str = Field(default=DEFAULT_MODEL, alias="model")
    """`"smollm2-135m-instruct"` (embedded default) or a local Hugging Face model directory."""
    loaded: Any = Field(default=None, exclude=True, repr=False)
    """An already loaded `uno_graph.models.LoadedModel` to serve instead of loading `model`.
    The chat model takes it over: PEFT injects the adapters' LoRA layers into `loaded.model` in place
    (disabled between calls, so the object still answers as the base model)."""
    adapters: dict[str, str] = Field(default_factory=dict)
    """Adapters to load at construction: name -> PEFT adapter directory."""
    adapter: str | None = None
    """Default adapter for calls that don't name one; None = the base model."""
    max_new_tokens: int = Field(default=160, alias="max_tokens", ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    """0 = greedy decoding."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.2, gt=0.0)
    """1.2 by default: the 135M default model loops without it."""
    seed: int | None = 42
    """Seed for sampling (temperature > 0); the global torch RNG is restored afterwards."""
    stop: list[str] | None = None
    """Default stop sequences; a call's `stop=` replaces them."""
    streaming: bool = False
    """If True, `invoke` goes through `_stream` (callbacks then see tokens)."""
    batch_size: int = Field(default=8, ge=1)
    """Largest number of sequences per batched `generate` in `batch()` / `generate_batch()` (transformers)."""
    backend: str = "transformers"
    """What generates: `"transformers"` (PEFT; the reference, and what training uses) or `"llamacpp"`
    (llama.cpp through `xllamacpp`: the base model's GGUF plus each adapter converted to a GGUF LoRA,
    concurrent requests in parallel slots; see `uno_graph.engines.llamacpp`)."""
    backend_options: dict[str, Any] = Field(default_factory=dict)
    """Engine settings, for llama.cpp: `n_threads`, `n_parallel`, `ctx_per_slot`, `gguf` (the base GGUF
    path when `model` is not the embedded default). One engine is shared per model and options."""

    _engine: Any = PrivateAttr(default=None)
    _handles: dict[str, str] = PrivateAttr(default_factory=dict)  # public adapter name -> PEFT name
    _lazy: dict[str, _Pending] = PrivateAttr(default_factory=dict)  # registered, loaded on first use
    _lazy_lock: Any = PrivateAttr(default_factory=threading.Lock)

    # -- construction --------------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _model_name_from_loaded(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("loaded") is not None and "model" not in data and "model_name" not in data:
            data = {**data, "model": getattr(data["loaded"], "model_id", DEFAULT_MODEL)}
        return data

    @field_validator("loaded")
    @classmethod
    def _check_loaded(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, LoadedModel):
            raise ConfigError(f"loaded must be a uno_graph.models.LoadedModel, got {type(value).__name__}")
        return value

    @field_validator("adapters", mode="before")
    @classmethod
    def _adapter_paths(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for name in value:
                cls._check_name(name)
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ConfigError(f"backend {value!r} is not known; expected one of {list(BACKENDS)}")
        return value

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if self.backend != "transformers":
            if self.loaded is not None:
                raise ConfigError(f"loaded= holds a transformers model; backend={self.backend!r} loads its own "
                                  "(pass model= instead)")
            from uno_graph.engines.llamacpp import engine_for_model

            engine = engine_for_model(self.model_name, **self.backend_options)
        elif self.backend_options:
            raise ConfigError(f"backend_options {sorted(self.backend_options)} apply to backend='llamacpp' only")
        else:
            engine = engine_for_loaded(self.loaded) if self.loaded is not None else engine_for_path(self.model_name)
        self._engine = engine
        engine.add_user(self)
        for name, path in self.adapters.items():
            self._handles[name] = engine.acquire(Path(path), name)

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, adapters: dict[str, str | Path] | None = None,
                        **params: Any) -> UnoChatModel:
        """Load (or reuse from the process cache) `model` and load `adapters` (name -> directory) onto it."""
        return cls(model=model, adapters=adapters or {}, **params)

    @classmethod
    def from_workdir(cls, workdir: str | Path, *, backend: str = "transformers", **params: Any) -> UnoChatModel:
        """The base model of a learned work directory (its `system.json`) with every published adapter
        loaded as `<cluster>/<role>` (each validated against its manifest first), answering with the
        work directory's `max_new_tokens` unless `params` says otherwise.

            >>> llm = UnoChatModel.from_workdir("runs/demo", backend="llamacpp")   # doctest: +SKIP
            >>> llm.adapter_names                                                # doctest: +SKIP
            ['geography/expert', ...]
        """
        from uno_graph.adapters.registry import list_adapters, validate_adapter
        from uno_graph.graph import load_config
        from uno_graph.router import adapter_name

        root = Path(workdir)
        config = load_config(root)
        adapters = {adapter_name(m["cluster_id"], m["role"]): m["path"] for m in list_adapters(root / "adapters")}
        for path in adapters.values():
            validate_adapter(Path(path), config.base_model)
        params.setdefault("max_new_tokens", config.max_new_tokens)
        return cls(model=config.base_model, adapters=adapters, backend=backend, **params)

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str) or not name or name == BASE_ADAPTER:
            raise ConfigError(f"adapter name must be a non-empty string other than {BASE_ADAPTER!r}, got {name!r}")

    # -- adapters ------------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str | Path, *, lazy: bool = False) -> None:
        """Load the PEFT adapter in `path` under `name` (replacing a previous `name`). An adapter directory
        already loaded on this base model (same files) is shared, not loaded twice.

        If the weights cannot be loaded (`ArtifactError` naming `path`), nothing changes: a previous
        `name` keeps answering. Calls already waiting for the previous `name` when it is replaced answer
        with the new one.

        `lazy=True` checks the directory now and loads the weights on the first call that names the
        adapter (a process that serves a few of many adapters starts faster; that first call waits).
        An adapter with a `manifest.json` is checked against it again right before its weights load,
        since its files may have changed in between; if that check or the load fails, a version loaded
        under `name` before keeps answering (with a warning), else the call raises the error.
        """
        self.load_adapters({name: path}, lazy=lazy)

    def load_adapters(self, adapters: Mapping[str, str | Path], *, lazy: bool = False) -> None:
        """`load_adapter` for several adapters, all or nothing: if one fails to load, none of them
        replaces what was served under its name (a reload of many adapters switches them together)."""
        paths = {name: Path(path) for name, path in adapters.items()}
        for name in paths:
            self._check_name(name)
        if lazy:
            with self._lazy_lock:
                pending = {name: _Pending.register(path, self._loaded_path(name)) for name, path in paths.items()}
                self._lazy.update(pending)
        else:
            self._acquire(paths)
            with self._lazy_lock:
                for name in paths:
                    self._lazy.pop(name, None)
        self.adapters = {**self.adapters, **{name: str(path) for name, path in paths.items()}}

    def _loaded_path(self, name: str) -> str | None:
        """The directory of the version whose weights answer for `name` now (None if none is loaded)."""
        earlier = self._lazy.get(name)
        if earlier is not None:
            return earlier.served
        return self.adapters.get(name) if name in self._handles else None

    def _acquire(self, paths: dict[str, Path]) -> None:
        """Load every adapter in `paths` onto the engine, then point their names at them in one step."""
        internals: dict[str, str] = {}
        try:
            for name, path in paths.items():
                internals[name] = self._engine.acquire(path, name)
        except BaseException:
            self._engine.collect()  # frees what this call loaded: no name points at it yet
            raise
        replaced = [name for name, internal in internals.items() if self._handles.get(name, internal) != internal]
        self._handles.update(internals)
        if replaced:
            self._engine.collect()

    def unload_adapter(self, name: str) -> None:
        """Forget `name`; its weights are freed once no `UnoChatModel` in the process uses them."""
        with self._lazy_lock:
            pending = self._lazy.pop(name, None)
        if pending is not None and name not in self._handles:
            self.adapters = {k: v for k, v in self.adapters.items() if k != name}
            return
        if name not in self._handles:
            raise self._not_found(name)
        del self._handles[name]
        self.adapters = {k: v for k, v in self.adapters.items() if k != name}
        self._engine.collect()

    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters this model can serve (besides the base model), lazily registered ones included."""
        return list(self._handles) + [n for n in self._lazy if n not in self._handles]

    def _load_pending(self, name: str) -> None:
        """Load the weights of the lazily registered `name`, its files checked against its manifest first."""
        from uno_graph.adapters.registry import validate_adapter

        with self._lazy_lock:
            pending = self._lazy.get(name)
            if pending is None:
                return
            try:
                if pending.base_model is not None:
                    validate_adapter(pending.path, pending.base_model)
                self._acquire({name: pending.path})
            except ArtifactError as exc:
                if pending.served is None:
                    raise  # stays registered: every call says why until the files are fixed or replaced
                log.warning("adapter %r: %s; the version from %s keeps answering", name, exc, pending.served)
                self.adapters = {**self.adapters, name: pending.served}
            del self._lazy[name]

    def _refresh(self, jobs: Sequence[_Job]) -> bool:
        """Point jobs whose adapter was replaced while they waited (a reload) at its new version; whether any was."""
        changed = False
        for job in jobs:
            current = self._handles.get(job.adapter) if job.adapter is not None else None
            if current is not None and current != job.internal:
                job.internal, changed = current, True
        return changed

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer."""
        return self._engine.tokenizer

    @property
    def hf_model(self) -> Any:
        """The model that generates: the `PeftModel` when adapters are loaded, else the base model."""
        engine = self._engine
        if engine.backend != "transformers":
            raise ConfigError(f"backend={engine.backend!r} holds no Hugging Face model; use backend='transformers'")
        return engine.peft if engine.peft is not None else engine.base

    def _not_found(self, name: str) -> AdapterNotFoundError:
        loaded = ", ".join(repr(n) for n in self._handles) or "none"
        return AdapterNotFoundError(
            f"no LoRA adapter named {name!r} is loaded on this UnoChatModel; loaded adapters: {loaded} "
            f"(use adapter=None or {BASE_ADAPTER!r} for the base model, load_adapter(name, path) to add one)"
        )

    # -- LangChain metadata --------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "uno-graph"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "backend": self.backend,
            "adapter": self.adapter,
            "adapters": sorted(self.adapters),
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        model = kwargs.get("model")
        params: dict[str, Any] = {
            "ls_provider": "uno-graph",
            "ls_model_name": model if isinstance(model, str) else self.model_name,
            "ls_model_type": "chat",
            "ls_temperature": kwargs.get("temperature", self.temperature),
            "ls_max_tokens": kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens)),
        }
        stops = stop if stop is not None else self.stop
        if stops:
            params["ls_stop"] = list(stops)
        params["uno_adapter"] = kwargs["adapter"] if "adapter" in kwargs else self.adapter
        return params

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of `text` with this model's tokenizer (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Prompt length in tokens once the chat template (with the generation prompt, and `tools` shown
        as a call would show them) is applied."""
        prompt, _ = self._render_call(messages, convert_tools(tools) if tools else None)
        return len(self.get_token_ids(prompt))

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | bool | dict[str, Any] | None = None,
                   parallel_tool_calls: bool | None = None, strict: bool | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Show `tools` to the model and read its tool calls into `AIMessage.tool_calls` (`uno_graph.tool_calls`).

        `tools`: anything `convert_to_openai_tool` takes (BaseTool, function, pydantic model, TypedDict,
        JSON schema). `tool_choice`: `"auto"` (default), `"none"`, `"any"`/`"required"`/`True` (the answer
        is prefilled with the opening of a call, so the model must call one), or a tool's name (prefilled
        up to the value of its first required argument; `"any"` with one tool does the same).
        A forced call decodes without the repetition penalty unless the model or the call sets one
        explicitly (JSON repeats quotes and braces). `parallel_tool_calls=False` keeps the first call
        only. `strict` is accepted for compatibility and ignored: nothing constrains decoding to the
        schema. The embedded SmolLM2-135M does not call tools on its own; forced, it fills in a
        one-argument call (`{"city": "Paris"}`) but not a two-field schema.
        """
        del strict  # no constrained decoding
        formatted = convert_tools(tools)
        if tool_choice is not None and formatted:  # fail at bind time for an unknown name
            resolve_tool_choice(tool_choice, tool_names(formatted))
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- preparing a call ----------------------------------------------------------------------------

    def _render(self, messages: Sequence[BaseMessage]) -> str:
        return self._render_call(messages)[0]

    def _render_call(self, messages: Sequence[BaseMessage], tools: list[dict[str, Any]] | None = None,
                     tool_choice: Any = None, parallel: bool = True) -> tuple[str, ToolSetup | None]:
        """The prompt text (chat template, generation prompt, tools and any prefilled call opening)."""
        tokenizer = self.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"the tokenizer of {self.model_name!r} has no chat template; UnoChatModel needs one")
        return render_prompt(tokenizer, messages_to_dicts(messages), tools, tool_choice, parallel=parallel)

    def _prepare(self, messages: Sequence[BaseMessage], stop: list[str] | str | None, kwargs: dict[str, Any]) -> _Job:
        unknown = sorted(set(kwargs) - _CALL_KWARGS)
        if unknown:
            hint = " (bind tools with bind_tools)" if "functions" in unknown else ""
            raise ConfigError(
                f"unsupported call argument(s) {unknown}{hint}; accepted: {sorted(_CALL_KWARGS - {'stream'})}"
            )
        model = kwargs.get("model")
        if model is not None and model not in (self.model_name, self._engine.model_id):
            raise ConfigError(
                f"this UnoChatModel serves {self.model_name!r}, not {model!r}; choose a LoRA with adapter=..., "
                "or build another UnoChatModel for a different base model"
            )
        adapter = kwargs["adapter"] if "adapter" in kwargs else self.adapter
        if adapter == BASE_ADAPTER:
            adapter = None
        if adapter is not None and adapter in self._lazy:
            self._load_pending(adapter)
        if adapter is None:
            internal = None
        elif adapter in self._handles:
            internal = self._handles[adapter]
        else:
            raise self._not_found(adapter)
        prompt, tools = self._render_call(messages, kwargs.get("tools"), kwargs.get("tool_choice"),
                                          parallel=kwargs.get("parallel_tool_calls") is not False)
        penalty = self.repetition_penalty
        if tools is not None and tools.prefix and "repetition_penalty" not in self.model_fields_set:
            penalty = 1.0  # a forced call is JSON: the default penalty punishes its repeated quotes and braces
        max_new = kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens))
        params = _Params(
            max_new_tokens=int(max_new),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            repetition_penalty=float(kwargs.get("repetition_penalty", penalty)),
            seed=kwargs.get("seed", self.seed),
        )
        if params.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {params.max_new_tokens}")
        if params.temperature < 0 or not 0 < params.top_p <= 1 or params.repetition_penalty <= 0:
            raise ConfigError(
                f"need temperature >= 0, 0 < top_p <= 1, repetition_penalty > 0; got {params.temperature}, "
                f"{params.top_p}, {params.repetition_penalty}"
            )
        if stop is None:
            stop = self.stop
        if isinstance(stop, str):
            stop = [stop]
        stops = tuple(s for s in (stop or []) if s)
        if tools is not None and tools.stop and tools.stop not in stops:
            stops += (tools.stop,)
        return _Job(prompt=prompt, ids=self.get_token_ids(prompt), adapter=adapter, internal=internal,
                    params=params, stops=stops, tools=tools)

    def _message(self, job: _Job, row: _Row) -> AIMessage:
        text = row.text if row.text is not None else self.tokenizer.decode(row.ids, skip_special_tokens=True)
        cut = _first_stop(text, job.stops)
        if cut is not None:
            text = text[:cut]
        finish = "length" if row.reason == "length" and cut is None else "stop"
        if job.tools is None:
            return AIMessage(content=text, usage_metadata=self._usage(job, row),
                             response_metadata=self._meta(job, finish))
        parsed = limit_calls(parse_tool_calls(job.tools.prefix + text, job.tools.names), job.tools)
        if parsed.tool_calls and finish == "stop":
            finish = "tool_calls"
        return AIMessage(content=parsed.content, tool_calls=parsed.tool_calls,
                         invalid_tool_calls=parsed.invalid_tool_calls, usage_metadata=self._usage(job, row),
                         response_metadata=self._meta(job, finish))

    def _usage(self, job: _Job, row: _Row) -> UsageMetadata:
        return UsageMetadata(input_tokens=len(job.ids), output_tokens=row.output_tokens,
                             total_tokens=len(job.ids) + row.output_tokens)

    def _meta(self, job: _Job, finish: str) -> dict[str, Any]:
        return {"model_name": self.model_name, "adapter": job.adapter, "finish_reason": finish}

    def _run_jobs(self, jobs: list[_Job]) -> list[AIMessage]:
        """Generate for every job: same-params jobs share batched `generate` calls of <= batch_size rows."""
        if self._engine.backend != "transformers":  # all at once: the engine schedules its own slots
            rows = self._rows(jobs, [j.params for j in jobs])
            return [self._message(job, row) for job, row in zip(jobs, rows)]
        results: list[AIMessage | None] = [None] * len(jobs)
        groups: dict[_Params, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.params, []).append(i)
        for params, members in groups.items():
            members.sort(key=lambda i: len(jobs[i].ids))  # similar lengths together: less padding
            for start in range(0, len(members), self.batch_size):
                part = members[start:start + self.batch_size]
                rows = self._rows([jobs[i] for i in part], params)
                for i, row in zip(part, rows):
                    results[i] = self._message(jobs[i], row)
        return results  # type: ignore[return-value]

    def _rows(self, jobs: list[_Job], params: _Params | list[_Params]) -> list[_Row]:
        """The engine's answers to `jobs`. A job whose adapter a reload replaced while it waited for the
        engine (which frees the old version) runs with the new version: always a whole adapter."""
        while True:
            try:
                return self._engine.generate([j.ids for j in jobs], [j.internal for j in jobs], params,
                                             [j.stops for j in jobs])
            except AdapterNotFoundError:
                if not self._refresh(jobs):
                    raise

    def _pieces(self, job: _Job, cancel: threading.Event) -> Iterator[str | _Row]:
        """`engine.stream` for `job` (text pieces, then the row), re-pointed like `_rows` when its adapter
        was replaced before the first piece. Setting `cancel` or closing it stops the generation; the
        caller sets `cancel` itself too, since a generator cannot be closed while another thread runs it."""
        while True:
            pieces = self._engine.stream(job.ids, job.internal, job.params, job.stops, cancel)
            try:
                first = next(pieces, None)
                while first == "":  # the streamer's empty flush when generate failed before any token
                    first = next(pieces, None)
            except AdapterNotFoundError:
                pieces.close()
                cancel.clear()  # an engine sets it when its stream is closed; the retry starts afresh
                if self._refresh([job]):
                    continue
                raise
            try:
                if first is not None:
                    yield first
                    yield from pieces
            finally:
                cancel.set()  # stops generation early if the consumer went away
                pieces.close()
            return

    # -- BaseChatModel hooks -------------------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        job = self._prepare(messages, stop, kwargs)
        message = self._take_prefilled(job) or self._run_jobs([job])[0]
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        job = self._prepare(messages, stop, kwargs)
        prefilled = self._take_prefilled(job)
        if prefilled is not None:  # inside batch(): the batched generate already ran
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=prefilled.content, usage_metadata=prefilled.usage_metadata,
                response_metadata=prefilled.response_metadata, tool_call_chunks=chunks_of(prefilled),
                chunk_position="last"))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return

        cancel = threading.Event()
        pieces = self._pieces(job, cancel)
        # With tools bound, text that may open a tool call is held back for the last chunk, which then
        # carries the rest of the text and the parsed calls as tool_call_chunks (uno_graph.tool_calls).
        prefix = job.tools.prefix if job.tools is not None else ""
        buffer = emitted = ""
        row: _Row | None = None
        try:
            for piece in pieces:
                if isinstance(piece, _Row):
                    row = piece
                    break
                buffer += piece
                start, safe = 0, _safe_len(buffer, job.stops)
                if job.tools is not None:
                    start, end = streamable_span(prefix + buffer)
                    start, safe = start - len(prefix), min(safe, end - len(prefix))
                if safe > start + len(emitted):
                    text = buffer[start + len(emitted):safe]
                    emitted += text
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            if row is None:  # pragma: no cover - an engine must end its stream with the row
                raise RuntimeError(f"the {self.backend} engine's stream ended without its result")
            final = self._message(job, row)
            full = str(final.content)
            if full.startswith(emitted):
                rest = full[len(emitted):]
            else:  # pragma: no cover - the streamer's text disagreed with a full decode
                log.warning("streamed text diverged from the decoded answer; the final chunk carries no text")
                rest = ""
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=rest, usage_metadata=final.usage_metadata, response_metadata=final.response_metadata,
                tool_call_chunks=chunks_of(final), chunk_position="last"))
            if run_manager:
                run_manager.on_llm_new_token(rest, chunk=chunk)
            yield chunk
        finally:
            cancel.set()  # stops generation early if the consumer went away
            pieces.close()

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        closed = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone
                closed.set()

        def produce() -> None:
            chunks = self._stream(messages, stop=stop, run_manager=None, **kwargs)
            try:
                for chunk in chunks:
                    if closed.is_set():
                        break
                    put(("chunk", chunk))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                put(("error", exc))
                return
            finally:
                chunks.close()
            put(("done", None))

        ctx = contextvars.copy_context()
        loop.run_in_executor(None, ctx.run, produce)
        try:
            while True:
                kind, item = await queue.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise item
                if run_manager:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            closed.set()

    # -- batching ------------------------------------------------------------------------------------

    def generate_batch(self, messages_batch: Sequence[LanguageModelInput], *,
                       adapters: Sequence[str | None] | str | None = None, max_new_tokens: int | None = None,
                       stop: list[str] | None = None, **kwargs: Any) -> list[AIMessage]:
        """Answer every conversation with batched, left-padded `generate` calls (no callbacks fire).

        `adapters`: one name for all items, or one entry per item (`None` / `"__base__"` = base model);
        omitted = the model's default `adapter`. Items needing different adapters share a PEFT
        mixed-adapter batch. Other keyword arguments are the per-call ones of `invoke` (temperature, ...).
        """
        n = len(messages_batch)
        if adapters is None:
            per_item: list[str | None] = [kwargs.pop("adapter", self.adapter)] * n
        elif isinstance(adapters, str):
            per_item = [adapters] * n
        else:
            per_item = list(adapters)
            if len(per_item) != n:
                raise ConfigError(f"adapters has {len(per_item)} entries for {n} conversations")
        kwargs.pop("adapter", None)
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        jobs = [self._prepare(self._convert_input(item).to_messages(), stop, {**kwargs, "adapter": name})
                for item, name in zip(messages_batch, per_item)]
        return self._run_jobs(jobs) if jobs else []

    def _cache_active(self) -> bool:
        from langchain_core.caches import BaseCache
        from langchain_core.globals import get_llm_cache

        if self.cache is False:
            return False
        return isinstance(self.cache, BaseCache) or get_llm_cache() is not None

    def _prefill(self, inputs: list[LanguageModelInput], kwargs: dict[str, Any]) -> _Prefill | None:
        """Run the whole batch at once; None when it should take the default one-call-per-item path."""
        if len(inputs) < 2 or self._cache_active():
            return None
        call = dict(kwargs)
        stop = call.pop("stop", None)
        try:
            jobs = [self._prepare(self._convert_input(x).to_messages(), stop, call) for x in inputs]
            messages = self._run_jobs(jobs)
        except Exception:  # noqa: BLE001 - the per-item path raises (or returns) each item's own error
            log.debug("batched generate not possible; falling back to one call per item", exc_info=True)
            return None
        prefill = _Prefill()
        for job, message in zip(jobs, messages):
            prefill.put(job.key(id(self)), message)
        return prefill

    def _take_prefilled(self, job: _Job) -> AIMessage | None:
        prefill = _PREFILL.get()
        return prefill.take(job.key(id(self))) if prefill is not None else None

    def batch(self, inputs: list[LanguageModelInput], config: RunnableConfig | list[RunnableConfig] | None = None,
              *, return_exceptions: bool = False, **kwargs: Any) -> list[BaseMessage]:
        """Like `Runnable.batch` (callbacks, tracing and config per item), but generation is one batched call."""
        prefill = self._prefill(list(inputs), kwargs)
        if prefill is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        token = _PREFILL.set(prefill)
        try:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        finally:
            _PREFILL.reset(token)

    async def abatch(self, inputs: list[LanguageModelInput],
                     config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[BaseMessage]:
        """Async `batch`: the batched generate runs in a worker thread."""
        prefill = await asyncio.to_thread(self._prefill, list(inputs), kwargs)
        if prefill is None:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        token = _PREFILL.set(prefill)
        try:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        finally:
            _PREFILL.reset(token)


__all__ = ["BASE_ADAPTER", "UnoChatModel", "clear_model_cache", "messages_to_dicts"]
