"""A scripted OpenAI-compatible chat-completions server (no model) for agent tests.

`ScriptedOpenAI(reply).start()` serves `GET /v1/models` and non-streamed `POST /v1/chat/completions`
on a free local port; each completion is `reply(body)`: a string (the answer text) or a list of
``(tool name, arguments)`` (tool calls). `requests` records every request body, so a test sees
which model name (adapter) each call asked for and that no other field (``adapter``) was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_openai import LocalServer

Reply = str | list[tuple[str, dict[str, Any]]]


class ScriptedOpenAI(LocalServer):
    def __init__(self, reply: Callable[[dict[str, Any]], Reply], *, models: tuple[str, ...] = ("fake-base",)) -> None:
        super().__init__(_Handler)
        self.reply, self.models = reply, models


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                                               for m in self.server.models]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.requests.append(body)
        reply = self.server.reply(body)
        n = len(self.server.requests)
        if isinstance(reply, str):
            message, finish = {"role": "assistant", "content": reply}, "stop"
        else:
            calls = [{"id": f"call_{n}_{i}", "type": "function",
                      "function": {"name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate(reply)]
            message, finish = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
        self._json({"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
