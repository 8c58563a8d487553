"""OpenAI's chat-completions API as plain data: requests read into LangChain calls, answers written back.

Kept apart from the routes (`uno_graph.openai_app`) so the shapes can be read, and tested, without a
server: what a request may contain and what each refusal says, the completion and chunk objects,
tool calls in both directions, and OpenAI's error JSON.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from uno_graph.errors import AdapterNotFoundError, ConfigError

log = logging.getLogger(__name__)

THREAD_HEADER = "X-Uno-Thread-Id"  # the conversation a request continues (or `metadata.thread_id`)
LOG_ID_HEADER = "X-Uno-Log-Id"  # sent with a recorded completion (its id is the log id too)
DONE = "[DONE]"


class APIError(Exception):
    """A refusal the client gets as OpenAI's error JSON, with the HTTP status that goes with it."""

    def __init__(self, status: int, message: str, *, code: str | int | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = int(status), message, code, param
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param,
                          "code": self.code if self.code is not None else self.status}}


def model_error(exc: Exception) -> APIError:
    """What a model's own refusal (bad sampling parameters, a vanished adapter) means to the client."""
    if isinstance(exc, AdapterNotFoundError):
        return APIError(HTTPStatus.NOT_FOUND, str(exc), code="model_not_found", param="model")
    return APIError(HTTPStatus.BAD_REQUEST, str(exc))


MODEL_ERRORS = (ConfigError, AdapterNotFoundError)
"""Exceptions a model raises for a bad request rather than a failure of its own."""


# -- requests --------------------------------------------------------------------------------------------


@dataclass
class ChatRequest:
    """A checked `POST /v1/chat/completions` body, ready for `model.invoke(messages, **call)`."""

    model: str
    adapter: str | None  # None: the base model
    messages: list[Any]  # LangChain messages
    call: dict[str, Any]  # adapter and sampling kwargs of `invoke`
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    thread: str | None = None
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")  # the log id when recorded

    def runnable(self, model: Any) -> Any:
        """`model`, with the request's tools bound (`bind_tools`) when it has any."""
        if not self.tools:
            return model
        kwargs: dict[str, Any] = {"tool_choice": self.tool_choice}
        if self.parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = self.parallel_tool_calls
        try:
            return model.bind_tools(self.tools, **kwargs)
        except NotImplementedError:
            raise APIError(HTTPStatus.BAD_REQUEST, f"the model behind this server ({type(model).__name__}) "
                           "does not take tools", param="tools") from None
        except ConfigError as exc:
            raise APIError(HTTPStatus.BAD_REQUEST, str(exc), param="tool_choice") from exc


def parse_chat_request(body: dict[str, Any], headers: Any, adapter_for: Callable[[Any], str | None],
                       served: Callable[[], list[str]]) -> ChatRequest:
    """Check a chat-completions body. `adapter_for(model)` raises KeyError for a model not served."""
    from langchain_core.messages import convert_to_messages

    name = body.get("model")
    try:
        adapter = adapter_for(name)
    except KeyError:
        raise APIError(HTTPStatus.NOT_FOUND, f"The model `{name}` does not exist. Served models: {served()}",
                       code="model_not_found", param="model") from None
    if body.get("functions") or body.get("function_call"):
        raise APIError(HTTPStatus.BAD_REQUEST, "`functions` is OpenAI's deprecated form; send `tools` "
                       "(and `tool_choice`) instead", param="functions")
    if body.get("n", 1) != 1:
        raise APIError(HTTPStatus.BAD_REQUEST, "only n=1 is supported", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(HTTPStatus.BAD_REQUEST, "`messages` must be a non-empty list", param="messages")
    try:
        converted = convert_to_messages(messages)
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise APIError(HTTPStatus.BAD_REQUEST, f"invalid messages: {exc}", param="messages") from exc
    call: dict[str, Any] = {"adapter": adapter}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        call["max_new_tokens"] = max_tokens
    for key in ("temperature", "top_p", "seed", "stop"):
        if body.get(key) is not None:
            call[key] = body[key]
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise APIError(HTTPStatus.BAD_REQUEST, "`parallel_tool_calls` must be true or false",
                       param="parallel_tool_calls")
    user, thread = _request_ids(body, headers)
    return ChatRequest(model=name, adapter=adapter, messages=converted, call=call, tools=_tools(body.get("tools")),
                       tool_choice=body.get("tool_choice"), parallel_tool_calls=parallel,
                       stream=bool(body.get("stream")),
                       include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
                       user=user, thread=thread)


def _tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI's `tools`: a list of `{"type": "function", "function": {"name", "parameters", ...}}`."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise APIError(HTTPStatus.BAD_REQUEST, "`tools` must be a list", param="tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict) \
                or not isinstance(function.get("name"), str) or not function["name"]:
            raise APIError(HTTPStatus.BAD_REQUEST, f"tools[{i}] must be {{\"type\": \"function\", \"function\": "
                           "{\"name\": ..., \"parameters\": {...}}}", param="tools")
    return tools


def _request_ids(body: dict[str, Any], headers: Any) -> tuple[str | None, str | None]:
    """(user id, thread id) of a request: `user`, and the thread header or `metadata.thread_id`."""
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise APIError(HTTPStatus.BAD_REQUEST, f"`user` must be a string, got {type(user).__name__}", param="user")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise APIError(HTTPStatus.BAD_REQUEST, "`metadata` must be an object of strings", param="metadata")
    thread = headers.get(THREAD_HEADER) or (metadata or {}).get("thread_id")
    if thread is not None and not isinstance(thread, str):
        raise APIError(HTTPStatus.BAD_REQUEST, "`metadata.thread_id` must be a string", param="metadata")
    return user or None, thread or None


def parse_json(data: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object."""
    try:
        body = json.loads(data or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise APIError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
    return body


# -- answers ---------------------------------------------------------------------------------------------


def usage(message: Any) -> dict[str, int]:
    counts = message.usage_metadata or {}
    prompt, completion = int(counts.get("input_tokens", 0)), int(counts.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_calls_of(reply: Any) -> list[dict[str, Any]]:
    """A LangChain answer's calls in OpenAI's form; unparseable ones keep their raw argument text, as
    OpenAI's own `arguments` (a string) may be invalid JSON too."""
    calls = [(c["id"], c["name"], json.dumps(c["args"], ensure_ascii=False)) for c in getattr(reply, "tool_calls", [])]
    calls += [(c.get("id"), c.get("name"), c.get("args") or "") for c in getattr(reply, "invalid_tool_calls", [])]
    return [{"id": cid, "type": "function", "function": {"name": name, "arguments": args}} for cid, name, args in calls]


def completion(name: str, reply: Any, cid: str) -> dict[str, Any]:
    """The `chat.completion` object of a finished answer."""
    calls = tool_calls_of(reply)
    message: dict[str, Any] = {"role": "assistant", "content": str(reply.content) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": name,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": reply.response_metadata.get("finish_reason", "stop")}],
            "usage": usage(reply)}


def _delta(piece: Any) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if piece.content:
        delta["content"] = str(piece.content)
    calls = [{"index": c.get("index") or 0, "id": c.get("id"), "type": "function",
              "function": {"name": c.get("name"), "arguments": c.get("args") or ""}}
             for c in getattr(piece, "tool_call_chunks", [])]
    if calls:
        delta["tool_calls"] = calls
    return delta


def chunk_payloads(name: str, cid: str, first: Any, chunks: Iterator[Any], *, include_usage: bool,
                   on_done: Callable[[Any], Any] | None = None) -> Iterator[str]:
    """OpenAI's `chat.completion.chunk` sequence as SSE data: role, content and tool-call deltas, the
    finish reason, an optional usage chunk, then `[DONE]`.

    `first` is the answer's first chunk (None for none), read before the response started so that a
    bad parameter could still get a JSON error; `chunks` the rest. `on_done(total)` gets the whole
    answer once generation has finished, before the last events (the recorder: feedback sent after
    [DONE] then finds the log). A failure after the first event can no longer change the HTTP status,
    so it is reported as a last error event. Closing this generator closes `chunks`, which stops
    generation early when the client has left.
    """
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                           "choices": choices, **extra})

    try:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])
        total = None
        try:
            for piece in itertools.chain([first] if first is not None else [], chunks):
                total = piece if total is None else total + piece
                delta = _delta(piece)
                if delta:
                    yield event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        except Exception as exc:
            log.exception("generation failed mid-stream")
            yield json.dumps(APIError(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)).payload())
            yield DONE
            return
        if on_done is not None and total is not None:
            on_done(total)
        finish = (total.response_metadata.get("finish_reason") if total is not None else None) or "stop"
        yield event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        if include_usage and total is not None:
            yield event([], usage=usage(total))
        yield DONE
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


__all__ = ["APIError", "ChatRequest", "DONE", "LOG_ID_HEADER", "MODEL_ERRORS", "THREAD_HEADER", "chunk_payloads",
           "completion", "model_error", "parse_chat_request", "parse_json", "tool_calls_of", "usage"]
