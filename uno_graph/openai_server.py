"""A small OpenAI-compatible server over `UnoChatModel` and its LoRA adapters (vLLM's `--enable-lora` shape).

    uno-graph serve-openai --workdir runs/demo --port 8001
    curl -s localhost:8001/v1/models
    curl -s localhost:8001/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "c3/expert", "messages": [{"role": "user", "content": "How do I boil an egg?"}]}'

`GET /v1/models` lists the base model and one model per adapter (its `parent` is the base);
`POST /v1/chat/completions` takes `model` (the base or an adapter name), `messages`, `max_tokens` /
`max_completion_tokens`, `temperature`, `top_p`, `seed`, `stop` and `stream` (server-sent events;
`stream_options.include_usage` adds a usage chunk). An unknown model gets OpenAI's 404 error JSON.
`EndpointChatModel` (or any OpenAI client) talks to it as it would to vLLM.

It is meant for machines without vLLM and for tests: one generation runs at a time (the model's
lock), it has no authentication (it binds to 127.0.0.1 unless told otherwise), and tool calls are
refused. Served from a work directory, it serves every published adapter and, with `watch`, picks
up adapters that `uno-graph learn` publishes later without a restart.

Recording (``recorder=``, ``--record EVENTS.jsonl``; see `uno_graph.capture`): every completion is
recorded as a log whose id is the completion's ``id`` (``chatcmpl-...``, also sent as the
``X-Uno-Log-Id`` header), with the request's ``user`` as user id and the ``X-Uno-Thread-Id`` header
(or ``metadata.thread_id``) as thread id. The next request of the thread, or one that resends the
conversation with the recorded answer in it, is recorded as that answer's follow-up. A chat UI's
thumbs and edits go to ``POST /v1/feedback``:

    curl -s localhost:8001/v1/feedback -H 'Content-Type: application/json' \\
         -d '{"log_id": "chatcmpl-...", "rating": -1, "edited_response": "1. Boil water. 2. ..."}'

(``completion_id`` is accepted for ``log_id``; an unknown id is a 404, a rating outside [-1, 1] a 400.)
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from uno_graph.capture.feedback import FIELDS, FeedbackError
from uno_graph.capture.recorder import as_recorder
from uno_graph.capture.store import UnknownLogError
from uno_graph.errors import AdapterNotFoundError, ConfigError, UnoGraphError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8001  # vLLM's default 8000 is also `chroma run`'s
THREAD_HEADER = "X-Uno-Thread-Id"  # the conversation a request continues (or `metadata.thread_id`)
LOG_ID_HEADER = "X-Uno-Log-Id"  # sent with a recorded completion (its id is the log id too)


class OpenAIServer(ThreadingHTTPServer):
    """Serves `model` (a `UnoChatModel`) and its adapters over the OpenAI chat-completions API.

    Example:
        >>> server = OpenAIServer(llm, port=0).start()        # doctest: +SKIP
        >>> server.url                                        # doctest: +SKIP
        'http://127.0.0.1:40123/v1'
        >>> server.close()                                    # doctest: +SKIP
    """

    daemon_threads = True

    def __init__(self, model: Any, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 served_model_name: str | None = None, workdir: str | Path | None = None,
                 recorder: Any = None) -> None:
        super().__init__((host, port), _Handler)
        self.model = model
        self.recorder = as_recorder(recorder)  # records completions; enables POST /v1/feedback
        self.base_name = served_model_name or model.model_name
        self.workdir = Path(workdir) if workdir is not None else None
        self.created = int(time.time())
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_watch = threading.Event()

    @classmethod
    def from_workdir(cls, workdir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                     served_model_name: str | None = None, max_new_tokens: int | None = None,
                     recorder: Any = None) -> OpenAIServer:
        """A server for a learned work directory: its base model plus every published adapter."""
        from uno_graph.chat_model import UnoChatModel
        from uno_graph.graph import load_config

        config = load_config(Path(workdir))
        model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=max_new_tokens or config.max_new_tokens)
        server = cls(model, host=host, port=port, served_model_name=served_model_name or config.base_model,
                     workdir=workdir, recorder=recorder)
        try:
            server.reload()
        except BaseException:
            server.server_close()
            raise
        return server

    @property
    def url(self) -> str:
        """The OpenAI API root (`base_url` for OpenAI clients)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        """Serve in a background thread; returns the server."""
        self._thread = threading.Thread(target=self.serve_forever, name="uno-graph-openai", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (and watching) and release the port."""
        self._stop_watch.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models --------------------------------------------------------------------------------------

    def adapter_for(self, name: Any) -> str | None:
        """The adapter a request's `model` names (None = the base model); KeyError if none."""
        if name == self.base_name:
            return None
        if isinstance(name, str) and name in self.model.adapter_names:
            return name
        raise KeyError(name)

    def models_payload(self) -> dict[str, Any]:
        base = {"id": self.base_name, "object": "model", "created": self.created, "owned_by": "uno-graph",
                "root": self.base_name, "parent": None}
        adapters = [{**base, "id": name, "parent": self.base_name} for name in self.model.adapter_names]
        return {"object": "list", "data": [base, *adapters]}

    def reload(self) -> list[str]:
        """Serve exactly the adapters published in the work directory, as `<cluster>/<role>`.

        All are validated against their manifests before any is loaded; on a bad one `ArtifactError`
        is raised and the adapters served so far stay. A retrained adapter (new files) is reloaded.
        """
        from uno_graph.adapters.registry import list_adapters, validate_adapter
        from uno_graph.graph import load_config
        from uno_graph.router import adapter_name

        if self.workdir is None:
            raise ConfigError("this server was not started from a work directory; use load_adapter on its model")
        base_model = load_config(self.workdir).base_model
        with self._lock:
            wanted = {adapter_name(m["cluster_id"], m["role"]): Path(m["path"])
                      for m in list_adapters(self.workdir / "adapters")}
            for path in wanted.values():
                validate_adapter(path, base_model)
            for name, path in wanted.items():
                self.model.load_adapter(name, path)
            for name in set(self.model.adapter_names) - set(wanted):
                self.model.unload_adapter(name)
            log.info("serving %s with adapters %s", self.base_name, sorted(wanted))
            return sorted(wanted)

    def watch(self, interval_s: float = 10.0) -> threading.Thread:
        """Reload in a background thread whenever an adapter is published, replaced or removed."""
        if self.workdir is None or interval_s <= 0:
            raise ConfigError(f"watch needs a work directory and interval_s > 0 (got {interval_s})")

        def run() -> None:
            seen = _adapters_stamp(self.workdir / "adapters")
            while not self._stop_watch.wait(interval_s):
                stamp = _adapters_stamp(self.workdir / "adapters")
                if stamp == seen:
                    continue
                seen = stamp
                try:
                    self.reload()
                except UnoGraphError as exc:
                    log.error("reload refused, the previous adapters keep serving: %s", exc)

        thread = threading.Thread(target=run, name="uno-graph-openai-watch", daemon=True)
        thread.start()
        return thread

    # -- chat completions ----------------------------------------------------------------------------

    def complete(self, body: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check a chat-completions request: (LangChain messages, `invoke` kwargs incl. adapter). Raises _HTTPError."""
        from langchain_core.messages import convert_to_messages

        name = body.get("model")
        try:
            adapter = self.adapter_for(name)
        except KeyError:
            raise _HTTPError(HTTPStatus.NOT_FOUND, f"The model `{name}` does not exist. Served models: "
                             f"{[m['id'] for m in self.models_payload()['data']]}", code="model_not_found",
                             param="model") from None
        if body.get("tools") or body.get("functions"):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "tool calling is not supported by this server", param="tools")
        if body.get("n", 1) != 1:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "only n=1 is supported", param="n")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "`messages` must be a non-empty list", param="messages")
        try:
            converted = convert_to_messages(messages)
        except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"invalid messages: {exc}", param="messages") from exc
        call: dict[str, Any] = {"adapter": adapter}
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None:
            call["max_new_tokens"] = max_tokens
        for key in ("temperature", "top_p", "seed", "stop"):
            if body.get(key) is not None:
                call[key] = body[key]
        return converted, call

    # -- recording and feedback ----------------------------------------------------------------------

    def request_ids(self, body: dict[str, Any], headers: Any) -> tuple[str | None, str | None]:
        """(user id, thread id) of a request: `user`, and the thread header or `metadata.thread_id`. Raises _HTTPError."""
        user = body.get("user")
        if user is not None and not isinstance(user, str):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"`user` must be a string, got {type(user).__name__}", param="user")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "`metadata` must be an object of strings", param="metadata")
        thread = headers.get(THREAD_HEADER) or (metadata or {}).get("thread_id")
        if thread is not None and not isinstance(thread, str):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "`metadata.thread_id` must be a string", param="metadata")
        return user or None, thread or None

    def record(self, log_id: str, body: dict[str, Any], messages: list[Any], reply: Any, adapter: str | None,
               ids: tuple[str | None, str | None]) -> str | None:
        """Record a completion as log `log_id` (None without a recorder or when the store fails)."""
        if self.recorder is None:
            return None
        cluster, role = adapter.rsplit("/", 1) if adapter and "/" in adapter else (None, None)
        return self.recorder.record_turn(
            messages, reply, user_id=ids[0], thread_id=ids[1], log_id=log_id, source="openai",
            metadata={"route": role if adapter else "base", "cluster": cluster, "adapter": adapter,
                      "model": body.get("model")})

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle `POST /v1/feedback`: {"log_id" | "completion_id", "rating", "edited_response", "comment"}."""
        if self.recorder is None:
            raise _HTTPError(HTTPStatus.NOT_FOUND, "this server does not record answers, so it takes no feedback; "
                             "start it with `uno-graph serve-openai --record EVENTS.jsonl`", code="feedback_not_enabled")
        allowed = ("log_id", "completion_id", *FIELDS)
        for key in body:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                raise _HTTPError(HTTPStatus.BAD_REQUEST, f"unknown field `{key}`; {hint}allowed: {', '.join(allowed)}",
                                 param=str(key))
        ids = [body[k] for k in ("log_id", "completion_id") if body.get(k) is not None]
        if not ids:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "give `log_id` (or `completion_id`): the `id` of the chat "
                             "completion the feedback is about", param="log_id")
        if len(ids) == 2 and ids[0] != ids[1]:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "`log_id` and `completion_id` differ; give one of them",
                             param="completion_id")
        try:
            fields = self.recorder.feedback(ids[0], **{k: body.get(k) for k in FIELDS})
        except FeedbackError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc), param=exc.field) from exc
        except UnknownLogError as exc:
            raise _HTTPError(HTTPStatus.NOT_FOUND, f"no recorded completion has id {ids[0]!r}; give the `id` of a "
                             "chat completion this server recorded", code="log_not_found", param="log_id") from exc
        return {"object": "feedback", "log_id": ids[0], "feedback": fields}


class _HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def payload(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param,
                          "code": self.code or int(self.status)}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # operators get requests in the debug log
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ------------------------------------------------------------------------------------

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        return body

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    # -- routes --------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._path() == "/v1/models":
            self._send_json(HTTPStatus.OK, self.server.models_payload())
        elif self._path() == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _HTTPError(HTTPStatus.NOT_FOUND, f"no route GET {self.path}").payload())

    def do_POST(self) -> None:
        try:
            if self._path() == "/v1/feedback":
                self._send_json(HTTPStatus.OK, self.server.feedback(self._read_json()))
                return
            if self._path() != "/v1/chat/completions":
                raise _HTTPError(HTTPStatus.NOT_FOUND, f"no route POST {self.path}")
            body = self._read_json()
            messages, call = self.server.complete(body)
            ids = self.server.request_ids(body, self.headers)
            name, cid = body["model"], f"chatcmpl-{uuid.uuid4().hex}"  # the completion id is the log id

            def record(reply: Any) -> str | None:
                return self.server.record(cid, body, messages, reply, call["adapter"], ids)

            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(name, messages, call, include_usage, cid, record)
                return
            try:
                reply = self.server.model.invoke(messages, **call)
            except (ConfigError, AdapterNotFoundError) as exc:
                raise _bad_request(exc) from exc
            recorded = record(reply)
            self._send_json(HTTPStatus.OK, _completion(name, reply, cid), {LOG_ID_HEADER: recorded} if recorded else None)
        except _HTTPError as exc:
            self._send_json(exc.status, exc.payload())
        except Exception as exc:  # answer the client with a 500 and keep serving
            log.exception("chat completion failed")
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                            _HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}").payload())

    def _stream(self, name: str, messages: list[Any], call: dict[str, Any], include_usage: bool, cid: str,
                on_done: Any = None) -> None:
        chunks = self.server.model.stream(messages, **call)
        try:
            try:  # the first chunk surfaces bad parameters while a JSON error can still be sent
                first = next(chunks, None)
            except (ConfigError, AdapterNotFoundError) as exc:
                raise _bad_request(exc) from exc
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")  # the stream ends when the connection closes
            if self.server.recorder is not None:
                self.send_header(LOG_ID_HEADER, cid)
            self.end_headers()
            self.close_connection = True
            for event in _sse_events(name, first, chunks, include_usage, cid, on_done):
                self.wfile.write(event)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away mid-stream")
        finally:
            chunks.close()  # stops generation early if the client left


def _bad_request(exc: Exception) -> _HTTPError:
    if isinstance(exc, AdapterNotFoundError):
        return _HTTPError(HTTPStatus.NOT_FOUND, str(exc), code="model_not_found", param="model")
    return _HTTPError(HTTPStatus.BAD_REQUEST, str(exc))


def _usage(message: Any) -> dict[str, int]:
    usage = message.usage_metadata or {}
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(name: str, reply: Any, cid: str | None = None) -> dict[str, Any]:
    return {"id": cid or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": str(reply.content)},
                         "logprobs": None, "finish_reason": reply.response_metadata.get("finish_reason", "stop")}],
            "usage": _usage(reply)}


def _sse_events(name: str, first: Any, chunks: Iterator[Any], include_usage: bool, cid: str | None = None,
                on_done: Any = None) -> Iterator[bytes]:
    """OpenAI's chunk sequence: role, content deltas, finish reason, optional usage, [DONE].

    `on_done(total)` gets the whole answer once generation has finished, before the last events
    (the recorder: feedback sent after [DONE] then finds the log).
    """
    cid, created = cid or f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                   "choices": choices, **extra}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])
    total = None
    pieces = [first] if first is not None else []
    try:
        for piece in _chain(pieces, chunks):
            total = piece if total is None else total + piece
            if piece.content:
                yield event([{"index": 0, "delta": {"content": str(piece.content)}, "logprobs": None,
                              "finish_reason": None}])
    except Exception as exc:  # headers are sent: report the failure as a last event
        log.exception("generation failed mid-stream")
        yield b"data: " + json.dumps(_HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)).payload()).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
        return
    if on_done is not None and total is not None:
        on_done(total)
    finish = (total.response_metadata.get("finish_reason") if total is not None else None) or "stop"
    yield event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
    if include_usage and total is not None:
        yield event([], usage=_usage(total))
    yield b"data: [DONE]\n\n"


def _chain(head: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from head
    yield from rest


def _adapters_stamp(root: Path) -> str:
    """Changes whenever an adapter directory is published, replaced or removed (one `stat` each)."""
    digest = hashlib.sha256()
    if root.is_dir():  # unversioned adapters, versions (adapters/versions.py) and which version is served
        for manifest in sorted([*root.glob("*/*/manifest.json"), *root.glob("*/*/v*/manifest.json"),
                                *root.glob("*/*/served.json")]):
            if not any(part.startswith(".") for part in manifest.relative_to(root).parts):
                st = manifest.stat()
                digest.update(f"{manifest}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}".encode())
    return digest.hexdigest()


# -- command line (wired into `uno-graph` by cli.py) --------------------------------------------------

def add_serve_openai_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `serve-openai` subcommand to `uno-graph`'s subparsers."""
    p = sub.add_parser("serve-openai", help="OpenAI-compatible server: the base model and each published adapter")
    p.add_argument("--workdir", required=True, help="a learned work directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (no authentication: keep it local)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--served-model-name", default=None, help="the base model's name (default: system.json's base_model)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default answer budget (default: system.json's)")
    p.add_argument("--watch", type=float, default=10.0, metavar="SECONDS",
                   help="check for newly published adapters every SECONDS (0: never)")
    p.add_argument("--record", default=None, metavar="EVENTS.jsonl",
                   help="record every completion, follow-up and POST /v1/feedback into this event file "
                        "(export with `uno-graph export-logs`)")
    p.set_defaults(func=cmd_serve_openai)
    return p


def cmd_serve_openai(args: argparse.Namespace) -> int:
    server = OpenAIServer.from_workdir(args.workdir, host=args.host, port=args.port,
                                       served_model_name=args.served_model_name, max_new_tokens=args.max_new_tokens,
                                       recorder=args.record)
    return serve_until_interrupted(server, watch_s=args.watch, record=args.record)


def serve_until_interrupted(server: OpenAIServer, *, watch_s: float, record: str | None, label: str = "") -> int:
    """Watch for new adapters every `watch_s` seconds (0: never), say what is served, serve until Ctrl-C."""
    if watch_s > 0:
        server.watch(watch_s)
    names = [m["id"] for m in server.models_payload()["data"]]
    print(f"serving {names} at {server.url}{label} (Ctrl-C stops)", flush=True)
    if record:
        print(f"recording completions to {record}; feedback: POST {server.url}/feedback", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


__all__ = ["DEFAULT_PORT", "LOG_ID_HEADER", "THREAD_HEADER", "OpenAIServer", "add_serve_openai_parser",
           "cmd_serve_openai"]
