"""The OpenAI-compatible server's own guarantees: limits (body size, concurrency), a responsive event loop
while generations run, OpenAI-shaped errors for every route, and tool calls in both directions.

Generation is a fake that waits on a gate (so a test decides when an answer finishes), or the tiny LM
with a scripted engine (so a "generated" tool call is known text). The end-to-end serving tests (real
adapters, `EndpointChatModel`, recording) are in test_serving_remote.py and test_capture.py.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fakes import AdapterEcho
from tests.requires import require_module

require_module("fastapi", "pip install 'uno-graph[openai-server]'")
require_module("sse_starlette", "pip install 'uno-graph[openai-server]'")

from uno_graph.openai_server import Limits, OpenAIServer  # noqa: E402

HI = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL = '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>'


class Gated(AdapterEcho):
    """`AdapterEcho` whose answers wait for `gate`; `entered` is released as each generation starts."""

    model_name: str = "echo"
    adapter_names: list[str] = []
    gate: Any = None
    entered: Any = None

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.entered.release()
        assert self.gate.wait(30), "the test never opened the gate"
        return super()._generate(messages, stop, run_manager, **kwargs)


def _request(url: str, body: dict | bytes | None = None, timeout: float = 30) -> tuple[int, Any, Any]:
    """(status, JSON or SSE text, headers) of a GET (no body) or POST."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
            return resp.status, (raw if raw.startswith("data:") else json.loads(raw)), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def _wait_for(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture()
def gated():
    return Gated(calls=[], gate=threading.Event(), entered=threading.Semaphore(0))


# -- the event loop stays free; the concurrency limit ----------------------------------------------------


def test_health_and_models_answer_while_a_generation_runs(gated):
    with OpenAIServer(gated, port=0).start() as srv, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_request, f"{srv.url}/chat/completions", {"model": "echo", "messages": HI})
        assert gated.entered.acquire(timeout=10)  # the generation is running and blocked
        start = time.monotonic()
        status, health, _ = _request(srv.url.removesuffix("/v1") + "/health", timeout=5)
        assert status == 200 and health["status"] == "ok" and health["running"] == 1
        status, models, _ = _request(f"{srv.url}/models", timeout=5)
        assert status == 200 and models["data"][0]["id"] == "echo"
        assert time.monotonic() - start < 5 and not answer.done()
        gated.gate.set()
        status, body, _ = answer.result(timeout=30)
        assert status == 200 and body["choices"][0]["message"]["content"] == "[base] hi"


def test_concurrency_limit_queues_then_answers_429(gated):
    health_url = None
    with OpenAIServer(gated, port=0, limits=Limits(max_concurrency=1, max_queue=1)).start() as srv, \
            ThreadPoolExecutor(2) as pool:
        health_url = srv.url.removesuffix("/v1") + "/health"
        first = pool.submit(_request, f"{srv.url}/chat/completions", {"model": "echo", "messages": HI})
        assert gated.entered.acquire(timeout=10)
        second = pool.submit(_request, f"{srv.url}/chat/completions", {"model": "echo", "stream": True, "messages": HI})
        _wait_for(lambda: _request(health_url)[1]["waiting"] == 1)  # queued behind the first

        status, err, headers = _request(f"{srv.url}/chat/completions", {"model": "echo", "messages": HI})
        assert status == 429 and err["error"]["code"] == "rate_limit_exceeded" and headers["Retry-After"] == "1"
        assert "1 generation(s) running and 1 waiting" in err["error"]["message"]
        assert _request(f"{srv.url}/models")[0] == 200  # only generations are limited

        gated.gate.set()
        assert first.result(timeout=30)[0] == 200
        status, sse, _ = second.result(timeout=30)
        assert status == 200 and sse.rstrip().endswith("data: [DONE]")
        _wait_for(lambda: _request(health_url)[1]["running"] == 0)  # the stream gave its slot back
        assert _request(f"{srv.url}/chat/completions", {"model": "echo", "messages": HI})[0] == 200


def test_bad_limits_are_refused():
    from uno_graph.errors import ConfigError

    with pytest.raises(ConfigError, match="max_concurrency >= 1"):
        Limits(max_concurrency=0)


# -- the body size limit; errors of every route ------------------------------------------------------


def test_a_body_over_the_limit_gets_413(gated):
    gated.gate.set()
    with OpenAIServer(gated, port=0, limits=Limits(max_body_bytes=2000)).start() as srv:
        big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 3000}]}
        status, err, _ = _request(f"{srv.url}/chat/completions", big)
        assert status == 413 and err["error"]["code"] == "request_too_large"
        assert "at most 2000 bytes" in err["error"]["message"] and "--max-body-bytes" in err["error"]["message"]
        assert _request(f"{srv.url}/feedback", {"log_id": "x" * 3000})[0] == 413

        # no Content-Length (chunked): counted as it arrives
        host, port = srv.url.removeprefix("http://").removesuffix("/v1").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        payload = json.dumps(big).encode()
        conn.request("POST", "/v1/chat/completions", body=iter([payload[:1500], payload[1500:]]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "request_too_large"
        conn.close()

        status, body, _ = _request(f"{srv.url}/chat/completions", {"model": "echo", "messages": HI})
        assert status == 200  # within the limit


def test_errors_are_openai_shaped(gated):
    gated.gate.set()
    with OpenAIServer(gated, port=0).start() as srv:
        status, err, _ = _request(f"{srv.url}/nowhere")
        assert status == 404 and err["error"]["message"] == "no route GET /v1/nowhere"
        status, err, _ = _request(f"{srv.url}/models", {})
        assert status == 405 and err["error"]["type"] == "invalid_request_error"
        status, err, _ = _request(f"{srv.url}/chat/completions", b"{not json")
        assert status == 400 and "not valid JSON" in err["error"]["message"]
        status, err, _ = _request(f"{srv.url}/chat/completions", {"model": "echo", "messages": HI, "n": 2})
        assert status == 400 and err["error"]["param"] == "n"
        status, err, _ = _request(f"{srv.url}/chat/completions", {"model": "echo", "messages": HI,
                                                                  "tools": [WEATHER_TOOL]})
        assert status == 400 and err["error"]["param"] == "tools" and "does not take tools" in err["error"]["message"]


# -- tool calls ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_lm_dir):
    from uno_graph.chat_model import UnoChatModel

    return UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=8)


@pytest.fixture()
def scripted(tiny, monkeypatch):
    """The tiny LM whose engine "generates" `CALL` when the prompt mentions Paris, else a plain answer;
    the prompts it saw are collected."""
    from uno_graph.engines.base import Row

    prompts: list[str] = []

    def text(ids: list[int]) -> str:
        prompts.append(tiny.tokenizer.decode(ids))
        return CALL if "Paris" in prompts[-1].rsplit("<|im_start|>user", 1)[-1] else "It is sunny."

    def generate(batch, internals, params, stops, **kwargs):
        return [Row(ids=[], reason="eos", text=text(ids), n_tokens=3) for ids in batch]

    def stream(prompt, internal, params, stops, cancel):
        answer = text(prompt)
        for i in range(0, len(answer), 5):
            yield answer[i:i + 5]
        yield Row(ids=[], reason="eos", text=answer, n_tokens=3)

    monkeypatch.setattr(tiny._engine, "generate", generate)
    monkeypatch.setattr(tiny._engine, "stream", stream)
    return prompts


def test_a_tools_request_returns_tool_calls(tiny, scripted):
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    with OpenAIServer(tiny, port=0, served_model_name="tiny").start() as srv:
        status, body, _ = _request(f"{srv.url}/chat/completions", {"model": "tiny", "messages": ask,
                                                                   "tools": [WEATHER_TOOL]})
        assert status == 200 and "<tools>" in scripted[-1] and "get_weather" in scripted[-1]
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["id"].startswith("call_") and call["type"] == "function"
        assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}

        # the tool's result goes back in OpenAI's form and reaches the prompt; the answer is text
        history = [*ask, {"role": "assistant", "content": None, "tool_calls": [call]},
                   {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 C"}]
        status, body, _ = _request(f"{srv.url}/chat/completions", {"model": "tiny", "messages": history,
                                                                   "tools": [WEATHER_TOOL]})
        assert status == 200 and "<tool_response>" in scripted[-1] and "Sunny, 21 C" in scripted[-1]
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "It is sunny."}

        status, err, _ = _request(f"{srv.url}/chat/completions", {"model": "tiny", "messages": ask,
                                                                  "tools": [WEATHER_TOOL], "tool_choice": "get_time"})
        assert status == 400 and err["error"]["param"] == "tool_choice" and "not a bound tool" in err["error"]["message"]
        status, err, _ = _request(f"{srv.url}/chat/completions", {"model": "tiny", "messages": ask,
                                                                  "tools": [{"name": "get_weather"}]})
        assert status == 400 and err["error"]["param"] == "tools"


def test_openai_clients_get_tool_calls_invoked_and_streamed(tiny, scripted):
    require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")
    from langchain_openai import ChatOpenAI

    with OpenAIServer(tiny, port=0, served_model_name="tiny").start() as srv:
        client = ChatOpenAI(model="tiny", base_url=srv.url, api_key="EMPTY", max_retries=0).bind_tools([WEATHER_TOOL])
        answer = client.invoke("Weather in Paris?")
        assert [(c["name"], c["args"]) for c in answer.tool_calls] == [("get_weather", {"city": "Paris"})]

        chunks = list(client.stream("Weather in Paris?"))
        total = chunks[0]
        for c in chunks[1:]:
            total += c
        assert [(c["name"], c["args"]) for c in total.tool_calls] == [("get_weather", {"city": "Paris"})]
        assert total.response_metadata["finish_reason"] == "tool_calls" and total.content == ""
        assert client.invoke("Weather in Rome?").content == "It is sunny."


def test_a_client_leaving_mid_stream_stops_generation_and_frees_its_slot(tiny, monkeypatch):
    from uno_graph.engines.base import Row

    stopped, written = threading.Event(), []

    def stream(prompt, internal, params, stops, cancel):  # a slow answer (10 s), closed with `cancel` set
        try:
            for _ in range(200):
                time.sleep(0.05)
                written.append("word ")
                yield "word "
            yield Row(ids=[], reason="eos", text="word " * 200, n_tokens=200)
        finally:
            if cancel.is_set():
                stopped.set()

    monkeypatch.setattr(tiny._engine, "stream", stream)
    with OpenAIServer(tiny, port=0, served_model_name="tiny", limits=Limits(max_concurrency=1)).start() as srv:
        host, port = srv.url.removeprefix("http://").removesuffix("/v1").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "tiny", "stream": True, "messages": HI}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.readline().startswith(b"data: ")
        resp.close()  # the client leaves after the first event
        conn.close()
        assert stopped.wait(10) and len(written) < 100  # stopped early
        _wait_for(lambda: _request(srv.url.removesuffix("/v1") + "/health")[1]["running"] == 0)


def test_a_private_adapter_answers_only_its_user_and_is_not_listed(tmp_path, tiny_lm_dir, monkeypatch):
    """With `user_scope`, an adapter learned from one user's logs carries that user in its manifest
    (`owner`); `reload` reads it, and the adapter is served only to requests whose `user` is the owner:
    to anyone else, and in /v1/models, it does not exist. A shared adapter serves everyone."""
    from tests.fakes import make_lora
    from tests.test_serving_remote import make_workdir
    from uno_graph.adapters.registry import build_manifest
    from uno_graph.adapters.versions import publish_version

    monkeypatch.setenv("UNO_GRAPH_GGUF_ON_PUBLISH", "0")
    work = make_workdir(tmp_path / "work", tiny_lm_dir, {}, {})
    for cluster, owner, seed in (("c-a", "alice", 1), ("c-s", None, 2)):
        manifest = {**build_manifest(role="expert", cluster_id=cluster, base_model=str(tiny_lm_dir), objective="sft",
                                     lora={"r": 4}, train={}, data_hash=cluster), "owner": owner}
        publish_version(work / "adapters", cluster, "expert", make_lora(tiny_lm_dir, tmp_path / cluster, seed), manifest)
    with OpenAIServer.from_workdir(work, port=0, served_model_name="tiny", max_new_tokens=4).start() as srv:
        ask = {"model": "c-a/expert", "messages": HI}
        assert _request(f"{srv.url}/chat/completions", {**ask, "user": "alice"})[0] == 200
        for other in ({"user": "bob"}, {}):
            status, err, _ = _request(f"{srv.url}/chat/completions", {**ask, **other})
            assert status == 404 and err["error"]["code"] == "model_not_found"
            assert "c-a/expert" not in err["error"]["message"].split("Served models:")[1]
        status, listed, _ = _request(f"{srv.url}/models")
        assert [m["id"] for m in listed["data"]] == ["tiny", "c-s/expert"]
        assert _request(f"{srv.url}/chat/completions", {"model": "c-s/expert", "messages": HI, "user": "bob"})[0] == 200
