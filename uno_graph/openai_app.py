"""The routes of `uno-graph serve-openai`: a FastAPI app over an `OpenAIServer`'s model and adapters.

Generation is blocking (a transformers forward pass, or a wait on llama.cpp), so it runs in the
threadpool: the event loop stays free for `GET /health`, `GET /v1/models` and feedback while answers
are being written, and a streamed answer's chunks are pulled from the model one threadpool call at a
time. Two limits protect the machine (`uno_graph.openai_server.Limits`): a request body larger than
`max_body_bytes` is refused with 413 before it is parsed, and at most `max_concurrency` generations
run at once while up to `max_queue` more wait for a slot in arrival order; a request beyond that gets
429 at once (with `Retry-After`), rather than joining an unbounded queue whose latency nobody can
predict. A streamed answer holds its slot until its last event, or until the client leaves, which
also stops its generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from uno_graph.openai_protocol import (
    LOG_ID_HEADER,
    MODEL_ERRORS,
    APIError,
    ChatRequest,
    chunk_payloads,
    completion,
    model_error,
    parse_chat_request,
    parse_json,
)

if TYPE_CHECKING:
    from uno_graph.openai_server import Limits, OpenAIServer

log = logging.getLogger(__name__)


class Slots:
    """At most `running` generations at once and `waiting` more queued (FIFO); beyond that, 429.

    Used from the event loop only, so plain counters suffice.
    """

    def __init__(self, running: int, waiting: int) -> None:
        self.capacity, self.queue = running, waiting
        self.running = self.waiting = 0
        self._free = asyncio.Semaphore(running)

    async def acquire(self) -> Callable[[], None]:
        """Wait for a slot; returns its release (safe to call more than once). Raises a 429 APIError."""
        if self.running + self.waiting >= self.capacity + self.queue:
            raise APIError(HTTPStatus.TOO_MANY_REQUESTS,
                           f"the server is busy: {self.running} generation(s) running and {self.waiting} waiting "
                           f"(at most {self.capacity} run at once and {self.queue} wait); retry shortly",
                           code="rate_limit_exceeded", headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.running -= 1
                self._free.release()

        return release


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as one JSON object, refused with 413 past `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{int(declared)} bytes", limit)
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise _too_large(f"over {limit} bytes", limit)
    return parse_json(bytes(data))


def _too_large(size: str, limit: int) -> APIError:
    return APIError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body is {size}; this server takes at most "
                    f"{limit} bytes (serve-openai --max-body-bytes)", code="request_too_large")


def create_app(server: OpenAIServer, limits: Limits) -> FastAPI:
    """The app serving `server` (its model, adapters, recorder) within `limits`."""
    app = FastAPI(title="uno-graph", docs_url=None, redoc_url=None, openapi_url=None)
    slots = Slots(limits.max_concurrency, limits.max_queue)
    app.state.slots = slots

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return JSONResponse(exc.payload(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:  # unknown route, wrong method
        message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return JSONResponse(APIError(exc.status_code, message).payload(), status_code=exc.status_code)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": server.base_name, "adapters": len(server.model.adapter_names),
                "running": slots.running, "waiting": slots.waiting}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return server.models_payload()

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        body = await read_json(request, limits.max_body_bytes)
        return await run_in_threadpool(server.feedback, body)  # the recorder writes (and fsyncs)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await read_json(request, limits.max_body_bytes)
        chat = parse_chat_request(body, request.headers, server.adapter_for, server.served_names)
        server.check_owner(chat)
        runnable = chat.runnable(server.model)
        release = await slots.acquire()
        if chat.stream:
            return await _stream(server, runnable, chat, release)
        try:
            reply, recorded = await run_in_threadpool(_answer, server, runnable, chat)
        finally:
            release()
        return JSONResponse(completion(chat.model, reply, chat.id),
                            headers={LOG_ID_HEADER: recorded} if recorded else None)

    return app


def _answer(server: OpenAIServer, runnable: Any, chat: ChatRequest) -> tuple[Any, str | None]:
    """Generate (and record) one answer; runs in the threadpool."""
    try:
        reply = runnable.invoke(chat.messages, **chat.call)
    except MODEL_ERRORS as exc:
        raise model_error(exc) from exc
    except Exception as exc:  # the client gets a 500, the server keeps serving
        log.exception("chat completion failed")
        raise APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}") from exc
    return reply, server.record(chat, reply)


def _first(chunks: Iterator[Any]) -> Any:
    try:
        return next(chunks, None)
    except MODEL_ERRORS as exc:
        raise model_error(exc) from exc


async def _stream(server: OpenAIServer, runnable: Any, chat: ChatRequest, release: Callable[[], None]) -> Response:
    """An SSE response; it owns the slot (`release`) until the stream ends or the client leaves."""
    chunks = runnable.stream(chat.messages, **chat.call)
    try:  # the first chunk surfaces bad parameters while a JSON error can still be sent
        first = await run_in_threadpool(_first, chunks)
    except BaseException:
        chunks.close()
        release()
        raise
    payloads = chunk_payloads(chat.model, chat.id, first, chunks, include_usage=chat.include_usage,
                              on_done=lambda total: server.record(chat, total))
    headers = {LOG_ID_HEADER: chat.id} if server.recorder is not None else {}
    return EventSourceResponse(_events(payloads, chunks, release), headers=headers, sep="\n",
                               background=BackgroundTask(release))


def _close(*generators: Any) -> None:
    for generator in generators:
        generator.close()


async def _events(payloads: Iterator[str], chunks: Iterator[Any],
                  release: Callable[[], None]) -> AsyncIterator[dict[str, str]]:
    """Pull each event from the threadpool. A threadpool call is not abandoned on cancellation, so
    when the client leaves, the pending chunk finishes and closing then stops the generation (the
    model's chunks too, in case the client left before the first event was pulled)."""
    try:
        while (data := await run_in_threadpool(next, payloads, None)) is not None:
            yield {"data": data}
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_close, payloads, chunks)
        release()


__all__ = ["Slots", "create_app", "read_json"]
