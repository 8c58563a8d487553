"""`EndpointChatModel`: the UNO graph's chat model over an OpenAI-compatible server serving LoRA adapters.

The convention is vLLM's `--enable-lora` (also followed by `uno-graph serve-openai`): `GET /v1/models`
lists the base model and one model per adapter; a request with `model=<adapter's name>` runs that
adapter, `model=<base name>` the base model. The graph's nodes call this model exactly like
`UnoChatModel` — `invoke(messages, adapter=name_or_None)`, `adapter_names` — so any step of the graph
can be sent to the server while the others stay local (`build_graph(..., models={"expert": remote})`).

Requests go through `langchain-openai`'s `ChatOpenAI` (`pip install 'uno-graph[endpoint]'`), used as a
transport: one call is one LangChain run (this model's), so a streamed answer's tokens are reported
once and a call tagged ``nostream`` stays out of LangGraph's messages stream.

Example:

    >>> from uno_graph.endpoint import EndpointChatModel
    >>> remote = EndpointChatModel(base_url="http://127.0.0.1:8001/v1",        # doctest: +SKIP
    ...                            model="smollm2-135m-instruct")
    >>> remote.invoke("How do I boil an egg?", adapter="c3/expert").content     # doctest: +SKIP
    'Put the egg in boiling water ...'

vLLM serving the same adapters (names must match the work directory's `<cluster>/<role>`, or map
them with `adapter_models`):

    vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora \\
        --lora-modules c3/expert=runs/demo/adapters/c3/expert c5/critic=runs/demo/adapters/c5/critic
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError, require

BASE_ADAPTER = "__base__"  # same meaning as in `uno_graph.chat_model` (that module imports torch)


class EndpointChatModel(BaseChatModel):
    """A chat model whose adapters are served by an OpenAI-compatible LoRA server.

    `adapter=None` (or `"__base__"`) asks for the base model (`model`); `adapter="c3/expert"` asks for
    the model named `adapter_models.get("c3/expert", "c3/expert")`. A name the server does not list
    raises `AdapterNotFoundError`. Adapter weights live on the server: `load_adapter` only checks that
    the server serves the adapter, and `unload_adapter` frees nothing here.

    Example:
        >>> remote = EndpointChatModel(base_url="http://127.0.0.1:8001/v1", model="smollm2-135m-instruct",  # doctest: +SKIP
        ...                            adapter_models={"c3/expert": "pancakes-lora"})
        >>> remote.bind(adapter="c3/expert").invoke("How do I make pancakes?")                   # doctest: +SKIP
    """

    model_config = ConfigDict(populate_by_name=True)

    base_url: str
    """The server's OpenAI API root, e.g. `http://127.0.0.1:8001/v1`."""
    model_name: str = Field(alias="model")
    """The base model's name on the server."""
    adapter_models: dict[str, str] = Field(default_factory=dict)
    """Adapter name -> the server's model name for it; an adapter not listed keeps its own name."""
    adapter: str | None = None
    """Default adapter for calls that don't name one; None = the base model."""
    api_key: SecretStr = Field(default=SecretStr("EMPTY"))
    """vLLM accepts any key unless started with `--api-key`."""
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    """None = the server's default (greedy on `uno-graph serve-openai`)."""
    timeout: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=2, ge=0)

    _client: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        openai_chat = require("langchain_openai", "endpoint").ChatOpenAI
        self._client = openai_chat(model=self.model_name, base_url=self.base_url, api_key=self.api_key,
                                   max_tokens=self.max_tokens, temperature=self.temperature, timeout=self.timeout,
                                   max_retries=self.max_retries, use_responses_api=False, stream_usage=True)

    # -- adapters ------------------------------------------------------------------------------------

    def served_name(self, adapter: str | None) -> str:
        """The server's model name for `adapter` (None / "__base__" = the base model)."""
        if adapter is None or adapter == BASE_ADAPTER:
            return self.model_name
        return self.adapter_models.get(adapter, adapter)

    def served_models(self) -> list[str]:
        """Every model name the server lists at `GET /v1/models`."""
        return [m.id for m in self._client.root_client.models.list()]

    @property
    def adapter_names(self) -> list[str]:
        """Adapters the server serves (every listed model but the base), by their adapter names."""
        by_served = {served: name for name, served in self.adapter_models.items()}
        return [by_served.get(m, m) for m in self.served_models() if m != self.model_name]

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Check that the server serves adapter `name` (it loads the weights itself; `path` is not read)."""
        served = self.served_name(name)
        listed = self.served_models()
        if served not in listed:
            raise ArtifactError(
                f"the endpoint {self.base_url} serves no model {served!r} for adapter {name!r} (it lists {listed}); "
                f"start it with that adapter: `uno-graph serve-openai --workdir WORKDIR`, or vLLM "
                f"`--enable-lora --lora-modules {served}={path}`"
            )

    def unload_adapter(self, name: str) -> None:
        """Nothing to free here: the server holds the adapter's weights."""

    def _not_found(self, adapter: str | None, exc: Exception) -> AdapterNotFoundError:
        return AdapterNotFoundError(
            f"the endpoint {self.base_url} has no model {self.served_name(adapter)!r} for adapter {adapter!r}: {exc}"
        )

    # -- LangChain hooks -----------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "uno-graph-endpoint"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model_name": self.model_name, "adapter": self.adapter,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        adapter = kwargs.get("adapter", self.adapter)
        return {"ls_provider": "openai-compatible", "ls_model_name": self.served_name(adapter),
                "ls_model_type": "chat", "ls_temperature": kwargs.get("temperature", self.temperature),
                "uno_adapter": adapter}

    def _call(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The adapter, and the arguments of the inner `ChatOpenAI`'s hooks, for one call's kwargs."""
        adapter = kwargs.pop("adapter", self.adapter)
        if "max_new_tokens" in kwargs:  # UnoChatModel's name for it
            kwargs["max_tokens"] = kwargs.pop("max_new_tokens")
        if {"tools", "tool_choice", "functions"} & set(kwargs):
            raise ConfigError("EndpointChatModel does not pass tools: the graph's steps call the model without them")
        kwargs.pop("stream", None)
        return adapter, {**kwargs, "model": self.served_name(adapter), "stop": stop}

    # The inner `ChatOpenAI` is used as a transport only: its `_generate` / `_stream` hooks are called
    # directly, so no second LangChain run starts inside this one. Its public `invoke` / `stream` would
    # pick up the caller's callbacks from the run context (a LangGraph node's), and then
    #   - `stream_mode="messages"` would get every token twice (the inner run's and this run's), and
    #   - a call tagged `nostream` would still stream (the inner run does not carry the tag).
    # This run alone reports: `on_llm_new_token` once per chunk, when a run manager is passed in.

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        adapter, call = self._call(stop, kwargs)
        with self._translate_not_found(adapter):
            result = self._client._generate(messages, **call)
        return _result_with_adapter(result, adapter)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        adapter, call = self._call(stop, kwargs)
        with self._translate_not_found(adapter):
            result = await self._client._agenerate(messages, **call)
        return _result_with_adapter(result, adapter)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        adapter, call = self._call(stop, kwargs)
        first = True
        with self._translate_not_found(adapter):
            for chunk in self._client._stream(messages, **call):
                if first:
                    chunk = _chunk_with_adapter(chunk, adapter)
                    first = False
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        adapter, call = self._call(stop, kwargs)
        first = True
        with self._translate_not_found(adapter):
            async for chunk in self._client._astream(messages, **call):
                if first:
                    chunk = _chunk_with_adapter(chunk, adapter)
                    first = False
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    @contextlib.contextmanager
    def _translate_not_found(self, adapter: str | None) -> Iterator[None]:
        """An unknown model on the server (OpenAI's 404) becomes `AdapterNotFoundError`."""
        import openai

        try:
            yield
        except openai.NotFoundError as exc:
            raise self._not_found(adapter, exc) from exc


def _with_adapter(message: AIMessage, adapter: str | None) -> AIMessage:
    """`message` with the adapter recorded in `response_metadata` (as `UnoChatModel` does)."""
    return message.model_copy(update={"response_metadata": {**message.response_metadata, "adapter": adapter}})


def _result_with_adapter(result: ChatResult, adapter: str | None) -> ChatResult:
    """`result` (the inner client's) with the adapter on its message; finish reason and usage kept."""
    generations = [ChatGeneration(message=_with_adapter(g.message, adapter), generation_info=g.generation_info)
                   for g in result.generations]
    return ChatResult(generations=generations, llm_output=result.llm_output)


def _chunk_with_adapter(chunk: ChatGenerationChunk, adapter: str | None) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=_with_adapter(chunk.message, adapter), generation_info=chunk.generation_info)


__all__ = ["EndpointChatModel"]
