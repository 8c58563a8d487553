"""What `UnoChatModel` needs from the thing that generates: the `Engine` protocol and its data.

An engine holds one base model and the LoRA adapters loaded onto it, and generates from token ids
(the chat model renders the chat template and tokenizes with the Hugging Face tokenizer, so every
engine sees the same prompt tokens). Adapters are referred to by the handle `acquire` returns;
`None` means the base model.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from uno_graph.errors import ArtifactError

BACKENDS = ("transformers", "llamacpp")
"""`UnoChatModel(backend=...)` values: the reference transformers + PEFT path, or llama.cpp."""


@dataclass(frozen=True)
class GenParams:
    """Decoding settings of one request (temperature 0 = greedy)."""

    max_new_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float
    seed: int | None


@dataclass
class Row:
    """One generated answer.

    The transformers engine fills `ids` (generated ids, up to and including EOS / the token completing
    a stop string) and the chat model decodes them; an engine that produces text itself (llama.cpp)
    sets `text` (already cut before any stop string) and `n_tokens` and may leave `ids` empty.
    """

    ids: list[int]
    reason: str  # "eos" | "stop_string" | "stop" | "cancel" | "length"
    text: str | None = None
    n_tokens: int | None = None

    @property
    def output_tokens(self) -> int:
        return self.n_tokens if self.n_tokens is not None else len(self.ids)


def free_name(preferred: str, taken, *, allowed: str, reserved: str) -> str:
    """A handle for a new adapter: `preferred` with characters outside the class `allowed` replaced by
    "_", never `reserved` (the base model's name), made unique against `taken` with "_2", "_3", ..."""
    base = re.sub(f"[^{allowed}]", "_", preferred) or "adapter"
    if base == reserved:
        base = "adapter"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def adapter_key(path: Path) -> tuple[str, int, int]:
    """(resolved dir, weights mtime_ns, weights size) of a PEFT adapter directory: two loads of the same
    files share one copy, and a retrained adapter (new files) loads anew."""
    if not (path / "adapter_config.json").is_file():
        raise ArtifactError(f"{str(path)!r} is not a PEFT LoRA adapter directory (no adapter_config.json in it)")
    for fname in ("adapter_model.safetensors", "adapter_model.bin"):
        weights = path / fname
        if weights.is_file():
            st = weights.stat()
            return (str(path.resolve()), st.st_mtime_ns, st.st_size)
    raise ArtifactError(f"the adapter directory {str(path)!r} has no adapter_model.safetensors or adapter_model.bin")


class LiveUsers:
    """The `UnoChatModel`s built on one engine, held weakly (pydantic models are unhashable, so by id),
    and the adapter handles they hold: an engine's `collect` frees what no live model names. Not
    thread-safe on its own: the engine calls it under its lock."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}

    def add(self, user: Any) -> None:
        key, refs = id(user), self._refs

        def forget(ref: weakref.ref[Any], key: int = key) -> None:  # a new model may reuse a dead one's id
            if refs.get(key) is ref:
                refs.pop(key, None)

        refs[key] = weakref.ref(user, forget)

    def handles(self) -> set[str]:
        """The adapter handles (`UnoChatModel._handles` values) some live model refers to."""
        used: set[str] = set()
        for ref in list(self._refs.values()):
            user = ref()
            if user is not None:
                used.update(user._handles.values())  # noqa: SLF001
        return used


@runtime_checkable
class Engine(Protocol):
    """A base model plus named LoRA adapters, shared by every `UnoChatModel` built on it.

    Implementations: `uno_graph.engines.transformers.TransformersEngine` (transformers + PEFT; training's reference, also
    exported as `uno_graph.engines.TransformersEngine`) and `uno_graph.engines.llamacpp.LlamaCppEngine`.
    """

    backend: str
    """One of `BACKENDS`."""
    tokenizer: Any
    """The Hugging Face tokenizer: chat template, token counts, decoding `Row.ids`."""

    @property
    def model_id(self) -> str:
        """The base model's id as written in adapter manifests."""
        ...

    def acquire(self, path: Path, preferred: str) -> str:
        """Load the PEFT adapter directory `path` (unless the same files are loaded) and return its handle."""
        ...

    def add_user(self, user: Any) -> None:
        """Register a live `UnoChatModel` (weakly): `collect` keeps the adapters its `_handles` name."""
        ...

    def collect(self) -> None:
        """Unload the adapters no live user refers to."""
        ...

    def generate(self, prompts: list[list[int]], internals: list[str | None],
                 params: GenParams | Sequence[GenParams], stops: list[tuple[str, ...]], *,
                 cancel: threading.Event | None = None) -> list[Row]:
        """Answer every prompt (token ids) with its adapter handle (None = base), its params (one for all,
        or one per prompt) and its stop strings; greedy when temperature is 0."""
        ...

    def stream(self, prompt: list[int], internal: str | None, params: GenParams, stops: tuple[str, ...],
               cancel: threading.Event) -> Iterator[str | Row]:
        """Yield text pieces as they are generated, then the finished `Row` last. Closing the iterator
        (or setting `cancel`) stops generation."""
        ...


__all__ = ["BACKENDS", "Engine", "GenParams", "LiveUsers", "Row", "adapter_key"]
