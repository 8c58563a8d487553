"""`create_agent` with two tools and UnoMiddleware: a multi-step request (two tool turns, then the answer)
on an Expert route and on a Critic route, critique → revise only on the turn that answers the user.

Two models: `UnoChatModel` on the tiny LM with LoRA adapters loaded and its engine scripted (the tiny LM
cannot call tools), and `ChatOpenAI` pointed at an OpenAI-compatible server — a scripted one, and the
project's own `OpenAIServer` over that `UnoChatModel` — where the adapter is chosen by model name and no
``adapter`` field is ever sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.requires import require_module

require_module("langchain.agents", "pip install 'uno-graph[agents]'")
require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")

from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402

from tests.fake_openai_agent import ScriptedOpenAI  # noqa: E402
from tests.fakes import keyword_router, make_lora  # noqa: E402
from uno_graph.adapter_choice import choose_adapter, takes_adapter_keyword  # noqa: E402
from uno_graph.engines.base import Row  # noqa: E402
from uno_graph.errors import ConfigError  # noqa: E402
from uno_graph.middleware import UnoMiddleware  # noqa: E402

FACTS = {"egg": "A soft-boiled egg takes 6 minutes.", "paris": "The Louvre opens at 9 and closes at 18."}
EGG = "How long to boil a soft egg, plus 2 minutes to cool?"
PARIS = "When is the Louvre in Paris open, and for how many hours?"
CRITIQUE = "1. Give the hours as a range."
REVISED = "The Louvre is open 9-18: 9 hours."


@tool
def lookup(topic: str) -> str:
    """Look up a fact about a topic, given as one lowercase word."""
    return FACTS.get(topic, "nothing known")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _step(n_tool_results: int, topic: str) -> Any:
    """The agent's scripted plan: look the fact up, then do the arithmetic, then answer."""
    if n_tool_results == 0:
        return [("lookup", {"topic": topic})]
    if n_tool_results == 1:
        return [("add", {"a": 6, "b": 2} if topic == "egg" else {"a": 18, "b": -9})]
    return "8 minutes in all." if topic == "egg" else "Open 9 to 18, so 9 hours."


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    return keyword_router(tmp_path_factory.mktemp("agent-tools") / "chroma")


def _types(messages) -> list[str]:
    return [m.type for m in messages]


MULTI_STEP = ["human", "ai", "tool", "ai", "tool", "ai"]


# -- UnoChatModel: the tiny LM with adapters, its engine scripted ---------------------------------------


@pytest.fixture(scope="module")
def llm(tiny_lm_dir, tmp_path_factory):
    from uno_graph.chat_model import UnoChatModel

    llm = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=8)
    root = tmp_path_factory.mktemp("loras")
    llm.load_adapter("c-egg/expert", make_lora(tiny_lm_dir, root / "expert", seed=1))
    llm.load_adapter("c-paris/critic", make_lora(tiny_lm_dir, root / "critic", seed=2))
    return llm


class EngineScript:
    """Stands in for the engine: answers each prompt as the agent's plan says; records (adapter, prompt)."""

    def __init__(self, llm) -> None:
        self.by_handle = {internal: name for name, internal in llm._handles.items()}
        self.llm, self.calls = llm, []

    def reply(self, prompt: str) -> str:
        if "## Suggestion" in prompt:
            return REVISED
        if "## Initial Answer" in prompt:
            return CRITIQUE
        step = _step(prompt.count("<tool_response>"), "egg" if "egg" in prompt else "paris")
        if isinstance(step, str):
            return step
        import json

        return "<tool_call>" + json.dumps([{"name": n, "arguments": a} for n, a in step]) + "</tool_call>"

    def generate(self, prompts, internals, params, stops, **kwargs):
        rows = []
        for ids, internal in zip(prompts, internals):
            prompt = self.llm.tokenizer.decode(ids)
            self.calls.append((self.by_handle.get(internal), prompt))
            text = self.reply(prompt)
            rows.append(Row(ids=[], reason="eos", text=text, n_tokens=len(text.split())))
        return rows


@pytest.fixture()
def engine(llm, monkeypatch):
    script = EngineScript(llm)
    monkeypatch.setattr(llm._engine, "generate", script.generate)
    return script


def test_unochatmodel_expert_route_uses_the_adapter_on_every_turn(llm, engine, router):
    agent = create_agent(llm, tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = agent.invoke({"messages": [("user", EGG)]})["messages"]
    assert _types(messages) == MULTI_STEP
    assert [m.content for m in messages if m.type == "tool"] == [FACTS["egg"], "8"]
    assert [adapter for adapter, _ in engine.calls] == ["c-egg/expert"] * 3
    answer = messages[-1]
    assert answer.content == "8 minutes in all." and not answer.tool_calls
    meta = answer.response_metadata
    assert (meta["uno_route"], meta["uno_cluster"], meta["uno_adapter"]) == ("expert", "c-egg", "c-egg/expert")


def test_unochatmodel_critic_route_critiques_only_the_answer_turn(llm, engine, router):
    agent = create_agent(llm, tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = agent.invoke({"messages": [("user", PARIS)]})["messages"]
    assert _types(messages) == MULTI_STEP
    assert [adapter for adapter, _ in engine.calls] == [None, None, None, "c-paris/critic", None]
    critiques = [p for _, p in engine.calls if "## Initial Answer" in p and "## Suggestion" not in p]
    assert len(critiques) == 1 and "Open 9 to 18, so 9 hours." in critiques[0]  # the draft, after both tool turns
    assert all("uno_route" not in m.response_metadata for m in messages[1:4:2])  # tool-call turns: untouched
    answer = messages[-1]
    assert answer.content == REVISED
    assert (answer.response_metadata["uno_route"], answer.response_metadata["uno_calls"]) == ("critic", 3)


# -- ChatOpenAI against an OpenAI-compatible LoRA server ------------------------------------------------


def _server_reply(body: dict[str, Any]) -> Any:
    last = str(body["messages"][-1].get("content") or "")
    if "tools" not in body:  # the middleware's own calls: critique (Critic adapter) and revision (base)
        return REVISED if "## Suggestion" in last else CRITIQUE
    topic = "egg" if "egg" in str(body["messages"]) else "paris"
    return _step(sum(m["role"] == "tool" for m in body["messages"]), topic)


@pytest.fixture()
def server():
    with ScriptedOpenAI(_server_reply, models=("base", "c-egg/expert", "c-paris/critic", "egg-lora")) as srv:
        yield srv


def _hosted(server) -> ChatOpenAI:
    return ChatOpenAI(model="base", base_url=server.url, api_key="sk-fake", max_retries=0, timeout=30)


def test_chatopenai_expert_route_chooses_the_adapter_by_model_name(server, router):
    agent = create_agent(_hosted(server), tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = agent.invoke({"messages": [("user", EGG)]})["messages"]
    assert _types(messages) == MULTI_STEP and messages[-1].content == "8 minutes in all."
    assert [r["model"] for r in server.requests] == ["c-egg/expert"] * 3
    assert all("adapter" not in r for r in server.requests)  # never an adapter= field to a hosted model
    assert all({t["function"]["name"] for t in r["tools"]} == {"lookup", "add"} for r in server.requests)
    meta = messages[-1].response_metadata
    assert (meta["uno_route"], meta["uno_adapter"], meta["model_name"]) == ("expert", "c-egg/expert", "c-egg/expert")


def test_chatopenai_critic_route_critiques_only_the_answer_turn(server, router):
    agent = create_agent(_hosted(server), tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = agent.invoke({"messages": [("user", PARIS)]})["messages"]
    assert _types(messages) == MULTI_STEP
    assert [r["model"] for r in server.requests] == ["base", "base", "base", "c-paris/critic", "base"]
    assert ["tools" in r for r in server.requests] == [True, True, True, False, False]
    assert all("adapter" not in r for r in server.requests)
    assert "Open 9 to 18, so 9 hours." in server.requests[3]["messages"][-1]["content"]
    assert messages[-1].content == REVISED and messages[-1].response_metadata["uno_route"] == "critic"


def test_chatopenai_async_critic_route(server, router):
    agent = create_agent(_hosted(server), tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = asyncio.run(agent.ainvoke({"messages": [("user", PARIS)]}))["messages"]
    assert [r["model"] for r in server.requests] == ["base", "base", "base", "c-paris/critic", "base"]
    assert messages[-1].content == REVISED


def test_adapter_models_maps_served_names(server, router):
    middleware = UnoMiddleware(router, adapter_models={"c-egg/expert": "egg-lora"})
    agent = create_agent(_hosted(server), tools=[lookup, add], middleware=[middleware])
    agent.invoke({"messages": [("user", EGG)]})
    assert [r["model"] for r in server.requests] == ["egg-lora"] * 3


# -- ChatOpenAI against the project's own OpenAI-compatible server (`uno-graph serve-openai`) ------------


@pytest.fixture()
def own_server(llm, engine):
    """`OpenAIServer` over the tiny LM with both adapters loaded; its engine is the agent's script."""
    from uno_graph.openai_server import OpenAIServer

    with OpenAIServer(llm, port=0, served_model_name="base").start() as srv:
        yield srv


def test_chatopenai_against_the_projects_own_server_on_both_routes(own_server, engine, router):
    agent = create_agent(_hosted(own_server), tools=[lookup, add], middleware=[UnoMiddleware(router)])
    messages = agent.invoke({"messages": [("user", EGG)]})["messages"]
    assert _types(messages) == MULTI_STEP and messages[-1].content == "8 minutes in all."
    assert [m.content for m in messages if m.type == "tool"] == [FACTS["egg"], "8"]
    assert [adapter for adapter, _ in engine.calls] == ["c-egg/expert"] * 3  # the model name chose the adapter
    assert messages[-1].response_metadata["uno_adapter"] == "c-egg/expert"

    engine.calls.clear()
    messages = agent.invoke({"messages": [("user", PARIS)]})["messages"]
    assert _types(messages) == MULTI_STEP
    assert [adapter for adapter, _ in engine.calls] == [None, None, None, "c-paris/critic", None]
    critique = engine.calls[3][1]
    assert "## Initial Answer" in critique and "Open 9 to 18, so 9 hours." in critique
    assert messages[-1].content == REVISED and messages[-1].response_metadata["uno_route"] == "critic"


# -- how the adapter is chosen ---------------------------------------------------------------------------


class Nameless(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "nameless"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # pragma: no cover - never called
        raise AssertionError


def test_choose_adapter(llm):
    assert takes_adapter_keyword(llm) and choose_adapter(llm, "c-egg/expert") == (llm, {"adapter": "c-egg/expert"})
    hosted = ChatOpenAI(model="base", base_url="http://127.0.0.1:9/v1", api_key="sk-fake")
    assert not takes_adapter_keyword(hosted)
    assert choose_adapter(hosted, None) == (hosted, {})
    copy, kwargs = choose_adapter(hosted, "c-egg/expert")
    assert (copy.model_name, hosted.model_name, kwargs) == ("c-egg/expert", "base", {})
    with pytest.raises(ConfigError, match="Nameless"):
        choose_adapter(Nameless(), "c-egg/expert")
