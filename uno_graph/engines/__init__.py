"""Generation engines behind `UnoChatModel` (``backend=``): one base model plus named LoRA adapters.

* ``"transformers"`` — `TransformersEngine`: PyTorch + PEFT, the reference (training uses it; mixed-adapter
  batches through PEFT's ``adapter_names``; `uno_graph.engines.transformers`).
* ``"llamacpp"`` — `LlamaCppEngine` (`uno_graph.engines.llamacpp`): llama.cpp in-process via
  ``xllamacpp``, the base model's GGUF with every adapter converted to a GGUF LoRA
  (`uno_graph.engines.gguf_lora`, cached by content hash), parallel slots for concurrent requests;
  with ``merge_adapters`` each adapter is merged into a copy of the base GGUF
  (`uno_graph.engines.gguf_merge`) and served by a llama.cpp server of its own.

Both implement `Engine` (`uno_graph.engines.base`). Importing this package is cheap: the engines are
imported on first attribute access.

    >>> from uno_graph.chat_model import UnoChatModel
    >>> fast = UnoChatModel.from_workdir("runs/demo", backend="llamacpp")        # doctest: +SKIP
    >>> fast.generate_batch(["hi", "What is 2+2?"], adapters=["geography/expert", None])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from uno_graph.engines.base import BACKENDS, Engine, GenParams, Row, adapter_key

_LAZY = {
    "TransformersEngine": ("uno_graph.engines.transformers", "TransformersEngine"),
    "LlamaCppEngine": ("uno_graph.engines.llamacpp", "LlamaCppEngine"),
    "engine_for_model": ("uno_graph.engines.llamacpp", "engine_for_model"),
    "ensure_gguf_lora": ("uno_graph.engines.gguf_lora", "ensure_gguf_lora"),
    "convert_peft_lora": ("uno_graph.engines.gguf_lora", "convert_peft_lora"),
    "ensure_merged_gguf": ("uno_graph.engines.gguf_merge", "ensure_merged_gguf"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "Engine", "GenParams", "LlamaCppEngine", "Row", "TransformersEngine", "adapter_key",
           "convert_peft_lora", "engine_for_model", "ensure_gguf_lora", "ensure_merged_gguf"]
