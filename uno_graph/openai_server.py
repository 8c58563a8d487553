"""An OpenAI-compatible server over `UnoChatModel` and its LoRA adapters (vLLM's `--enable-lora` shape).

    uno-graph serve-openai --workdir runs/demo --port 8001
    curl -s localhost:8001/v1/models
    curl -s localhost:8001/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "c3/expert", "messages": [{"role": "user", "content": "How do I boil an egg?"}]}'

`GET /v1/models` lists the base model and one model per adapter (its `parent` is the base);
`POST /v1/chat/completions` takes `model` (the base or an adapter name), `messages`, `max_tokens` /
`max_completion_tokens`, `temperature`, `top_p`, `seed`, `stop`, `stream` (server-sent events;
`stream_options.include_usage` adds a usage chunk) and `tools` / `tool_choice` /
`parallel_tool_calls` (bound with `UnoChatModel.bind_tools`; the answer's `tool_calls` come back in
OpenAI's form, streamed as `tool_calls` deltas). `GET /health` answers while generations run. Errors
are OpenAI's error JSON: 404 for an unknown model, 400 for a bad request, 413 for a body over
`max_body_bytes`, 429 when `max_concurrency` generations run and `max_queue` more wait.
`EndpointChatModel` (or any OpenAI client) talks to it as it would to vLLM.

It runs on FastAPI and uvicorn (`uno_graph.openai_app` holds the routes and limits,
`uno_graph.openai_protocol` the request and response shapes); generation runs in the threadpool. It
has no authentication, so it binds to 127.0.0.1 unless told otherwise. Served from a work directory,
it serves every published adapter and, with `watch`, picks up adapters that `uno-graph learn`
publishes later without a restart.

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
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from uno_graph.capture.feedback import FIELDS, FeedbackError
from uno_graph.capture.recorder import as_recorder
from uno_graph.capture.store import UnknownLogError
from uno_graph.errors import ConfigError, UnoGraphError
from uno_graph.openai_protocol import LOG_ID_HEADER, THREAD_HEADER, APIError, ChatRequest

log = logging.getLogger(__name__)

DEFAULT_PORT = 8001  # vLLM's default 8000 is also `chroma run`'s
START_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 5  # open streams get this long to finish when the server stops
INSTALL_HINT = "pip install 'uno-graph[openai-server]'"


@dataclass(frozen=True)
class Limits:
    """What one server takes on: body size (bytes), generations at once, and requests waiting for one."""

    max_body_bytes: int = 1 << 20  # 1 MiB: far above any context a served model can read
    max_concurrency: int = 4  # llama.cpp's default parallel slots; transformers runs them in turn
    max_queue: int = 16

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_concurrency < 1 or self.max_queue < 0:
            raise ConfigError(f"need max_body_bytes >= 1, max_concurrency >= 1, max_queue >= 0; got {self}")


def _create_app(server: OpenAIServer, limits: Limits) -> Any:
    """The FastAPI app; imported here so that the rest of `uno-graph` runs without the ASGI stack."""
    try:
        from uno_graph.openai_app import create_app
    except ImportError as exc:
        raise ConfigError(f"serving needs FastAPI, uvicorn and sse-starlette ({exc}); {INSTALL_HINT}") from exc
    return create_app(server, limits)


class OpenAIServer:
    """Serves `model` (a `UnoChatModel`) and its adapters over the OpenAI chat-completions API.

    The port is bound at construction, so a busy port fails here and `url` is known (also for
    `port=0`, a free port) before serving starts.

    Example:
        >>> server = OpenAIServer(llm, port=0).start()        # doctest: +SKIP
        >>> server.url                                        # doctest: +SKIP
        'http://127.0.0.1:40123/v1'
        >>> server.close()                                    # doctest: +SKIP
    """

    def __init__(self, model: Any, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 served_model_name: str | None = None, workdir: str | Path | None = None,
                 recorder: Any = None, limits: Limits | None = None) -> None:
        self.model = model
        self.recorder = as_recorder(recorder)  # records completions; enables POST /v1/feedback
        self.base_name = served_model_name or model.model_name
        self.workdir = Path(workdir) if workdir is not None else None
        self.created = int(time.time())
        self.limits = limits or Limits()
        self.app = _create_app(self, self.limits)
        self._lock = threading.Lock()
        self._stop_watch = threading.Event()
        self._socket = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._address = self._socket.getsockname()[:2]
        self._uvicorn: Any = None
        self._thread: threading.Thread | None = None
        # adapter name -> the user whose logs alone it learned from (`UnoConfig.user_scope`)
        self._owners: dict[str, str] = {}

    @classmethod
    def from_workdir(cls, workdir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                     served_model_name: str | None = None, max_new_tokens: int | None = None,
                     recorder: Any = None, limits: Limits | None = None) -> OpenAIServer:
        """A server for a learned work directory: its base model plus every published adapter."""
        from uno_graph.chat_model import UnoChatModel
        from uno_graph.graph import load_config

        config = load_config(Path(workdir))
        model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=max_new_tokens or config.max_new_tokens)
        return cls(model, host=host, port=port, served_model_name=served_model_name or config.base_model,
                   workdir=workdir, recorder=recorder, limits=limits).with_adapters()

    def with_adapters(self) -> OpenAIServer:
        """`reload` the work directory's adapters; on failure the port is released and the error raised."""
        try:
            self.reload()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def url(self) -> str:
        """The OpenAI API root (`base_url` for OpenAI clients)."""
        host, port = self._address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"

    def _server(self) -> Any:
        try:
            import uvicorn
        except ImportError as exc:
            raise ConfigError(f"serving needs uvicorn ({exc}); {INSTALL_HINT}") from exc

        # log_config=None leaves logging to the application (`uno-graph -v` shows uvicorn's access log)
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        self._uvicorn = uvicorn.Server(config)
        return self._uvicorn

    def start(self) -> OpenAIServer:
        """Serve in a background thread; returns the server once it accepts requests."""
        server = self._server()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                        name="uno-graph-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise UnoGraphError(f"the OpenAI-compatible server did not start at {self.url}")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C (uvicorn stops gracefully, then re-raises KeyboardInterrupt)."""
        self._server().run(sockets=[self._socket])

    def close(self) -> None:
        """Stop serving (and watching) and release the port."""
        self._stop_watch.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._socket.close()

    def __enter__(self) -> OpenAIServer:
        return self

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

    def check_owner(self, chat: ChatRequest) -> None:
        """An adapter learned from one user's logs answers only that user (the request's `user`); to anyone
        else it does not exist (404, as for a model not served)."""
        owner = self._owners.get(chat.adapter or "")
        if owner is not None and chat.user != owner:
            raise APIError(HTTPStatus.NOT_FOUND, f"The model `{chat.model}` does not exist. Served models: "
                                                 f"{self.served_names()}", code="model_not_found", param="model")

    def served_names(self) -> list[str]:
        """The base model and every adapter open to all (private adapters are not listed)."""
        return [self.base_name, *(n for n in self.model.adapter_names if n not in self._owners)]

    def models_payload(self) -> dict[str, Any]:
        base = {"id": self.base_name, "object": "model", "created": self.created, "owned_by": "uno-graph",
                "root": self.base_name, "parent": None}
        adapters = [{**base, "id": name, "parent": self.base_name} for name in self.served_names()[1:]]
        return {"object": "list", "data": [base, *adapters]}

    def reload(self) -> list[str]:
        """Serve exactly the adapters published in the work directory, as `<cluster>/<role>`.

        All are validated against their manifests before any is loaded, then loaded together: on a bad
        one (checksums, or weights that match them but do not load) `ArtifactError` naming it is raised
        and the adapters served so far stay, every one at its previous version. A retrained adapter (new
        files) is reloaded; requests waiting for its old version answer with the new one.
        """
        from uno_graph.adapters.registry import list_adapters, validate_adapter
        from uno_graph.graph import load_config
        from uno_graph.router import adapter_name

        if self.workdir is None:
            raise ConfigError("this server was not started from a work directory; use load_adapter on its model")
        base_model = load_config(self.workdir).base_model
        with self._lock:
            manifests = list_adapters(self.workdir / "adapters")
            wanted = {adapter_name(m["cluster_id"], m["role"]): Path(m["path"]) for m in manifests}
            owners = {adapter_name(m["cluster_id"], m["role"]): str(m["owner"]) for m in manifests if m.get("owner")}
            for path in wanted.values():
                validate_adapter(path, base_model)
            previous, self._owners = self._owners, {**self._owners, **owners}  # private before it can answer
            try:
                self.model.load_adapters(wanted)
            except BaseException:
                self._owners = previous
                raise
            for name in set(self.model.adapter_names) - set(wanted):
                self.model.unload_adapter(name)
            self._owners = owners
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

    # -- recording and feedback ----------------------------------------------------------------------

    def record(self, chat: ChatRequest, reply: Any) -> str | None:
        """Record a completion as log `chat.id` (None without a recorder or when the store fails)."""
        if self.recorder is None:
            return None
        adapter = chat.adapter
        cluster, role = adapter.rsplit("/", 1) if adapter and "/" in adapter else (None, None)
        return self.recorder.record_turn(
            chat.messages, reply, user_id=chat.user, thread_id=chat.thread, log_id=chat.id, source="openai",
            metadata={"route": role if adapter else "base", "cluster": cluster, "adapter": adapter,
                      "model": chat.model})

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle `POST /v1/feedback`: {"log_id" | "completion_id", "rating", "edited_response", "comment"}."""
        if self.recorder is None:
            raise APIError(HTTPStatus.NOT_FOUND, "this server does not record answers, so it takes no feedback; "
                             "start it with `uno-graph serve-openai --record EVENTS.jsonl`", code="feedback_not_enabled")
        allowed = ("log_id", "completion_id", *FIELDS)
        for key in body:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                raise APIError(HTTPStatus.BAD_REQUEST, f"unknown field `{key}`; {hint}allowed: {', '.join(allowed)}",
                                 param=str(key))
        ids = [body[k] for k in ("log_id", "completion_id") if body.get(k) is not None]
        if not ids:
            raise APIError(HTTPStatus.BAD_REQUEST, "give `log_id` (or `completion_id`): the `id` of the chat "
                             "completion the feedback is about", param="log_id")
        if len(ids) == 2 and ids[0] != ids[1]:
            raise APIError(HTTPStatus.BAD_REQUEST, "`log_id` and `completion_id` differ; give one of them",
                             param="completion_id")
        try:
            fields = self.recorder.feedback(ids[0], **{k: body.get(k) for k in FIELDS})
        except FeedbackError as exc:
            raise APIError(HTTPStatus.BAD_REQUEST, str(exc), param=exc.field) from exc
        except UnknownLogError as exc:
            raise APIError(HTTPStatus.NOT_FOUND, f"no recorded completion has id {ids[0]!r}; give the `id` of a "
                             "chat completion this server recorded", code="log_not_found", param="log_id") from exc
        return {"object": "feedback", "log_id": ids[0], "feedback": fields}


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
    defaults = Limits()
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                   help="refuse larger request bodies with 413 (default: %(default)s)")
    p.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency,
                   help="generations running at once (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=defaults.max_queue,
                   help="requests waiting for a generation slot; beyond that, 429 (default: %(default)s)")
    p.set_defaults(func=cmd_serve_openai)
    return p


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(max_body_bytes=args.max_body_bytes, max_concurrency=args.max_concurrency, max_queue=args.max_queue)


def cmd_serve_openai(args: argparse.Namespace) -> int:
    server = OpenAIServer.from_workdir(args.workdir, host=args.host, port=args.port,
                                       served_model_name=args.served_model_name, max_new_tokens=args.max_new_tokens,
                                       recorder=args.record, limits=limits_from_args(args))
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


__all__ = ["DEFAULT_PORT", "LOG_ID_HEADER", "THREAD_HEADER", "Limits", "OpenAIServer", "add_serve_openai_parser",
           "cmd_serve_openai", "limits_from_args", "serve_until_interrupted"]
