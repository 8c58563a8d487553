"""Choosing a LoRA adapter on any chat model: by keyword where the model takes one, else by model name.

uno-graph's own models (`UnoChatModel`, `EndpointChatModel`) take ``adapter=<name>`` per call. A
hosted model such as `langchain_openai.ChatOpenAI` pointed at an OpenAI-compatible LoRA server
(vLLM ``--enable-lora``, `uno-graph serve-openai`) has no such keyword: the server picks the adapter
from the request's ``model`` field, and an unknown ``adapter`` keyword would be sent along in the
request body, which such servers refuse or ignore. For those models the adapter is chosen by
copying the model with its model name set to the adapter's served name (the adapter's own name, or
``adapter_models[name]``), which leaves its HTTP client, tools and settings as they were.

    >>> model, kwargs = choose_adapter(ChatOpenAI(model="base", base_url=url), "c-egg/expert")   # doctest: +SKIP
    >>> model.model_name, kwargs                                                               # doctest: +SKIP
    ('c-egg/expert', {})
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from uno_graph.errors import ConfigError

MODEL_NAME_FIELDS = ("model_name", "model", "model_id")  # where LangChain chat models keep the model's name


def takes_adapter_keyword(model: Any) -> bool:
    """True when `model.invoke(..., adapter=name)` chooses a LoRA adapter: uno-graph's chat models (they load
    adapters: `load_adapter`) and chat models whose `_generate` names an ``adapter`` parameter."""
    if callable(getattr(model, "load_adapter", None)):
        return True
    generate = getattr(model, "_generate", None)
    if generate is None:
        return False
    try:
        return "adapter" in inspect.signature(generate).parameters
    except (TypeError, ValueError):
        return False


def model_name_field(model: Any) -> str | None:
    """The pydantic field that holds a chat model's model name (``model_name`` on ChatOpenAI), if any."""
    fields = getattr(type(model), "model_fields", {}) or {}
    return next((name for name in MODEL_NAME_FIELDS if name in fields), None)


def served_name(adapter: str, adapter_models: Mapping[str, str] | None = None) -> str:
    """The model name an OpenAI-compatible LoRA server serves `adapter` under (vLLM: its LoRA module name)."""
    return (adapter_models or {}).get(adapter, adapter)


def choose_adapter(model: Any, adapter: str | None,
                   adapter_models: Mapping[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    """(model, call keywords) that answer with `adapter` (None: the base model).

    A model that takes the keyword is returned as is with ``{"adapter": adapter}``; a hosted model is
    returned unchanged for the base model, or as a copy naming the adapter's served model, with no
    keywords. A hosted model without a model-name field cannot choose an adapter: `ConfigError`.
    """
    if takes_adapter_keyword(model):
        return model, {"adapter": adapter}
    if adapter is None:
        return model, {}
    field = model_name_field(model)
    if field is None:
        raise ConfigError(
            f"cannot choose adapter {adapter!r} on {type(model).__name__}: it takes no adapter= keyword and has no "
            f"model name field ({', '.join(MODEL_NAME_FIELDS)}); use UnoChatModel, EndpointChatModel, or a chat model "
            "pointed at an OpenAI-compatible LoRA server (ChatOpenAI(base_url=..., model=...))")
    return model.model_copy(update={field: served_name(adapter, adapter_models)}), {}


__all__ = ["choose_adapter", "model_name_field", "served_name", "takes_adapter_keyword"]
