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
"""

from __future__ import annotations

import argparse
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

from uno_graph.errors import AdapterNotFoundError, ConfigError, UnoGraphError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8001  # vLLM's default 8000 is also `chroma run`'s


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
                 served_model_name: str | None = None, workdir: str | Path | None = None) -> None:
        super().__init__((host, port), _Handler)
        self.model = model
        self.base_name = served_model_name or model.model_name
        self.workdir = Path(workdir) if workdir is not None else None
        self.created = int(time.time())
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_watch = threading.Event()

    @classmethod
    def from_workdir(cls, workdir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                     served_model_name: str | None = None, max_new_tokens: int | None = None) -> OpenAIServer:
        """A server for a learned work directory: its base model plus every published adapter."""
        from uno_graph.chat_model import UnoChatModel
        from uno_graph.graph import load_config

        config = load_config(Path(workdir))
        model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=max_new_tokens or config.max_new_tokens)
        server = cls(model, host=host, port=port, served_model_name=served_model_name or config.base_model,
                     workdir=workdir)
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

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
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
            if self._path() != "/v1/chat/completions":
                raise _HTTPError(HTTPStatus.NOT_FOUND, f"no route POST {self.path}")
            body = self._read_json()
            messages, call = self.server.complete(body)
            name = body["model"]
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(name, messages, call, include_usage)
                return
            try:
                reply = self.server.model.invoke(messages, **call)
            except (ConfigError, AdapterNotFoundError) as exc:
                raise _bad_request(exc) from exc
            self._send_json(HTTPStatus.OK, _completion(name, reply))
        except _HTTPError as exc:
            self._send_json(exc.status, exc.payload())
        except Exception as exc:  # answer the client with a 500 and keep serving
            log.exception("chat completion failed")
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                            _HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}").payload())

    def _stream(self, name: str, messages: list[Any], call: dict[str, Any], include_usage: bool) -> None:
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
            self.end_headers()
            self.close_connection = True
            for event in _sse_events(name, first, chunks, include_usage):
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


def _completion(name: str, reply: Any) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": str(reply.content)},
                         "logprobs": None, "finish_reason": reply.response_metadata.get("finish_reason", "stop")}],
            "usage": _usage(reply)}


def _sse_events(name: str, first: Any, chunks: Iterator[Any], include_usage: bool) -> Iterator[bytes]:
    """OpenAI's chunk sequence: role, content deltas, finish reason, optional usage, [DONE]."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

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
    if root.is_dir():
        for manifest in sorted(root.glob("*/*/manifest.json")):
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
    p.set_defaults(func=cmd_serve_openai)
    return p


def cmd_serve_openai(args: argparse.Namespace) -> int:
    server = OpenAIServer.from_workdir(args.workdir, host=args.host, port=args.port,
                                       served_model_name=args.served_model_name, max_new_tokens=args.max_new_tokens)
    if args.watch > 0:
        server.watch(args.watch)
    names = [m["id"] for m in server.models_payload()["data"]]
    print(f"serving {names} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


__all__ = ["DEFAULT_PORT", "OpenAIServer", "add_serve_openai_parser", "cmd_serve_openai"]
