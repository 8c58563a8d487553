"""UnoMiddleware inside `create_agent`, with fakes: expert adapter, critic base → critique → revise, uno_single, OOD."""

import asyncio

import pytest

from tests.requires import require_module

require_module("langchain.agents", "pip install 'uno-graph[agents]'")

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import ModelRequest, ModelResponse  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

from tests.fakes import AdapterEcho, keyword_router  # noqa: E402
from uno_graph.errors import ConfigError  # noqa: E402
from uno_graph.middleware import UnoMiddleware  # noqa: E402


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    return keyword_router(tmp_path_factory.mktemp("mw") / "chroma")


def _agent(router, mode="uno"):
    model = AdapterEcho(calls=[])
    return model, create_agent(model, tools=[], middleware=[UnoMiddleware(router, mode=mode)])


def _ask(agent, text):
    out = agent.invoke({"messages": [("user", text)]})
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    return out["messages"][-1]


def test_expert_route_binds_the_expert_adapter(router):
    model, agent = _agent(router)
    msg = _ask(agent, "how long to boil an egg")
    assert [a for a, _ in model.calls] == ["c-egg/expert"]
    assert msg.content.startswith("[c-egg/expert]")
    meta = msg.response_metadata
    assert (meta["uno_route"], meta["uno_cluster"], meta["uno_adapter"]) == ("expert", "c-egg", "c-egg/expert")


def test_critic_route_runs_base_critique_revise(router):
    model, agent = _agent(router)
    msg = _ask(agent, "what is in paris")
    assert [a for a, _ in model.calls] == [None, "c-paris/critic", None]
    assert "## Initial Answer" in model.calls[1][1] and "## Suggestion" in model.calls[2][1]
    meta = msg.response_metadata
    assert (meta["uno_route"], meta["uno_cluster"], meta["uno_adapter"], meta["uno_calls"]) == ("critic", "c-paris", "c-paris/critic", 3)
    assert msg.content.startswith("[base] ## Initial Answer")  # the revision replaced the draft
    assert msg.usage_metadata["input_tokens"] == sum(len(t.split()) for _, t in model.calls)


def test_uno_single_makes_one_base_call(router):
    model, agent = _agent(router, mode="uno_single")
    msg = _ask(agent, "what is in paris")
    assert [a for a, _ in model.calls] == [None]
    assert msg.response_metadata["uno_route"] == "base" and msg.response_metadata["uno_adapter"] is None


def test_base_cluster_and_out_of_distribution_use_the_base_model(router):
    model, agent = _agent(router)
    based = _ask(agent, "which train to take")
    ood = _ask(agent, "tell me a joke")
    assert [a for a, _ in model.calls] == [None, None]
    assert based.response_metadata["uno_route"] == "base" and based.response_metadata["uno_cluster"] == "c-train"
    assert ood.response_metadata["uno_route"] == "base" and ood.response_metadata["uno_cluster"] is None


def test_async_critic_route(router):
    model, agent = _agent(router)
    out = asyncio.run(agent.ainvoke({"messages": [("user", "what is in paris")]}))
    assert [a for a, _ in model.calls] == [None, "c-paris/critic", None]
    assert out["messages"][-1].response_metadata["uno_route"] == "critic"


def test_tool_call_responses_are_not_critiqued(router):
    model = AdapterEcho(calls=[])
    middleware = UnoMiddleware(router, model=model)
    draft = AIMessage(content="", tool_calls=[{"name": "search", "args": {"q": "paris"}, "id": "t1"}])
    request = ModelRequest(model=model, messages=[HumanMessage("what is in paris")])
    result = middleware.wrap_model_call(request, lambda req: ModelResponse(result=[draft]))
    assert result.result == [draft] and model.calls == []


def test_bad_mode():
    with pytest.raises(ConfigError, match="uno_single"):
        UnoMiddleware(router=None, mode="bogus")


def test_a_messages_stream_shows_the_critic_routes_revision_once(router):
    """stream_mode="messages": the draft and the critique are internal (tagged nostream); the revision
    streams, and the final message is the same message (its id), so it is not shown twice."""
    model, agent = _agent(router)
    streamed = [chunk for chunk, _ in agent.stream({"messages": [("user", "what is in paris")]}, stream_mode="messages")
                if chunk.type == "ai"]
    final = agent.invoke({"messages": [("user", "what is in paris")]})["messages"][-1]
    assert len({c.id for c in streamed}) == 1
    text = "".join(c.text for c in streamed)
    assert text == final.content and "## Suggestion" not in text  # no critique, no draft, once
    assert "Provide suggestions" not in text
    # the Expert route is one call, streamed once as before
    expert = [c for c, _ in agent.stream({"messages": [("user", "how long to boil an egg")]}, stream_mode="messages")
              if c.type == "ai"]
    assert len({c.id for c in expert}) == 1 and "".join(c.text for c in expert).startswith("[c-egg/expert]")


def test_route_and_critique_come_out_as_custom_events(router):
    _, agent = _agent(router)
    events = [c for mode, c in agent.stream({"messages": [("user", "what is in paris")]}, stream_mode=["custom", "messages"])
              if mode == "custom"]
    assert events[0]["uno_event"] == "routed" and (events[0]["route"], events[0]["cluster_id"]) == ("critic", "c-paris")
    assert events[1]["uno_event"] == "critique" and events[1]["critique"].startswith("[c-paris/critic]")
    _ask(agent, "how long to boil an egg")  # outside a stream, nothing to write to: no error
