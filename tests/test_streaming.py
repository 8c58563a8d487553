"""Streaming a user would accept: `stream_mode="messages"` carries each answer once and nothing else.

- Expert and base routes: the generating call's tokens are the answer.
- UNO's Critic route: the revise call's tokens are the answer; the base draft and the critique are
  tagged ``nostream`` and never reach the messages stream, while route, cluster and critique still
  come as ``custom`` events.
- `EndpointChatModel` (against a fake OpenAI server) yields each token once, also inside a graph,
  and its ``nostream`` calls stay silent.
- Routing reads a content-part list by its text; `uno-graph chat` prints each answer once.
"""

from __future__ import annotations

import asyncio
import builtins
from types import SimpleNamespace

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import START, MessagesState, StateGraph

from tests.fake_openai import FakeOpenAI
from tests.fakes import AdapterEcho, keyword_router
from tests.requires import require_module
from uno_graph.graph import build_graph
from uno_graph.nodes.common import last_query
from uno_graph.state import UnoContext

EGG, PARIS, TRAIN, JOKE = "how long to boil an egg", "what is in paris", "which train to take", "tell me a joke"
ANSWER_NODE = {EGG: "expert_generate", PARIS: "revise", TRAIN: "base_generate", JOKE: "base_generate"}


class StreamingEcho(AdapterEcho):
    """`AdapterEcho` that also streams its answer word by word (so the graph's calls really stream)."""

    def _stream(self, messages, stop=None, run_manager=None, adapter: str | None = None, **kwargs):
        text = str(self._generate(messages, adapter=adapter).generations[0].message.content)
        for i, word in enumerate(text.split(" ")):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=(" " if i else "") + word))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


@pytest.fixture()
def router(tmp_path):
    return keyword_router(tmp_path / "chroma")


def run_stream(graph, message, **kw) -> tuple[list[tuple[AIMessage, dict]], list[dict], AIMessage]:
    """(AI message pieces with their metadata, custom events, the final answer) of one streamed turn."""
    pieces, events, final = [], [], None
    for mode, data in graph.stream({"messages": [message]}, stream_mode=["messages", "custom", "values"], **kw):
        if mode == "messages":
            assert isinstance(data[0], AIMessage), data  # the user's own message is never echoed
            pieces.append(data)
        elif mode == "custom":
            events.append(data)
        else:
            final = data["messages"][-1]
    return pieces, events, final


def assert_streamed_once(pieces, final: AIMessage, node: str) -> None:
    """Every piece comes from the answering node's one model call, and together they are the answer."""
    assert pieces, "the answer did not stream"
    assert {meta["langgraph_node"] for _, meta in pieces} == {node}
    assert {msg.id for msg, _ in pieces} == {final.id}  # one call; the answer message is not sent again
    assert "".join(msg.text for msg, _ in pieces) == final.text


@pytest.mark.parametrize("model_cls", [StreamingEcho, AdapterEcho], ids=["streaming", "non-streaming"])
@pytest.mark.parametrize("query", [EGG, PARIS, TRAIN, JOKE])
def test_messages_stream_carries_each_answer_once(router, model_cls, query):
    model = model_cls(calls=[])
    graph = build_graph(model, router).compile()
    pieces, _, final = run_stream(graph, ("user", query))
    assert_streamed_once(pieces, final, ANSWER_NODE[query])
    if model_cls is AdapterEcho:  # no token stream: the model's reply arrives whole, once
        assert len(pieces) == 1
    else:
        assert len(pieces) > 1 and all(isinstance(msg, AIMessageChunk) for msg, _ in pieces)


def test_critic_route_hides_draft_and_critique_but_emits_custom_events(router):
    model = StreamingEcho(calls=[])
    graph = build_graph(model, router).compile()
    pieces, events, final = run_stream(graph, ("user", PARIS))
    assert [adapter for adapter, _ in model.calls] == [None, "c-paris/critic", None]  # draft, critique, revise
    assert_streamed_once(pieces, final, "revise")
    assert final.response_metadata["uno_route"] == "critic" and final.response_metadata["uno_calls"] == 3
    streamed = "".join(msg.text for msg, _ in pieces)
    assert "c-paris/critic" not in streamed  # the critique's tokens ("[c-paris/critic] ...") never stream
    routed, critique = events
    assert routed == {"uno_event": "routed", "route": "critic", "cluster_id": "c-paris", "distance": 0.0,
                      "adapter": "c-paris/critic"}
    assert critique["uno_event"] == "critique" and critique["critique"].startswith("[c-paris/critic] ")


def test_uno_single_streams_the_base_answer_of_a_critic_cluster(router):
    graph = build_graph(StreamingEcho(calls=[]), router).compile()
    pieces, events, final = run_stream(graph, ("user", PARIS), context=UnoContext(mode="uno_single"))
    assert_streamed_once(pieces, final, "base_generate")
    assert [e["uno_event"] for e in events] == ["routed"]


def test_async_stream_and_recorded_answer_stream_once(router, tmp_path):
    graph = build_graph(StreamingEcho(calls=[]), router, recorder=tmp_path / "events.jsonl").compile()
    config = {"configurable": {"thread_id": "t1"}}

    async def collect():
        pieces, final = [], None
        async for mode, data in graph.astream({"messages": [("user", PARIS)]}, config,
                                              stream_mode=["messages", "values"]):
            if mode == "messages":
                pieces.append(data)
            else:
                final = data["messages"][-1]
        return pieces, final

    pieces, final = asyncio.run(collect())
    assert final.response_metadata["uno_log_id"]  # rewritten by the record node, same id: not re-sent
    assert_streamed_once(pieces, final, "revise")


def test_graph_in_a_parent_streams_the_answer_once(router):
    parent = StateGraph(MessagesState)
    parent.add_node("uno", build_graph(StreamingEcho(calls=[]), router).compile())
    parent.add_edge(START, "uno")
    graph = parent.compile()
    final = graph.invoke({"messages": [("user", PARIS)]})["messages"][-1]
    for subgraphs in (False, True):  # the parent's own stream, and the subgraph's tokens too
        pieces = [data[-1] if subgraphs else data
                  for data in graph.stream({"messages": [("user", PARIS)]}, stream_mode="messages", subgraphs=subgraphs)]
        assert "".join(msg.text for msg, _ in pieces) == final.text, subgraphs
        assert len({msg.id for msg, _ in pieces}) == 1


# -- routing by a message's text ---------------------------------------------------------------------------

def test_routing_reads_a_content_part_list_by_its_text(router):
    model = AdapterEcho(calls=[])
    graph = build_graph(model, router).compile()
    parts = HumanMessage(content=[{"type": "text", "text": "how long to boil an "},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                  {"type": "text", "text": "egg"}])
    assert last_query([parts]) == "how long to boil an egg"
    answer = graph.invoke({"messages": [parts]})["messages"][-1]
    assert answer.response_metadata["uno_route"] == "expert" and answer.response_metadata["uno_cluster"] == "c-egg"

    paris = HumanMessage(content=[{"type": "text", "text": PARIS}])
    model.calls.clear()
    answer = graph.invoke({"messages": [paris]})["messages"][-1]
    assert answer.response_metadata["uno_route"] == "critic"
    assert f"## User Query\n{PARIS}\n\n## Initial Answer" in model.calls[1][1]  # the critique prompt: the text, not a repr


# -- EndpointChatModel: each token once --------------------------------------------------------------------

TOKENS = ["Put", " the", " egg", " in", " boiling", " water", "."]


class TokenCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs) -> None:
        if token:
            self.tokens.append(token)


@pytest.fixture()
def openai_fake():
    with FakeOpenAI(TOKENS, adapters=("c-egg/expert", "c-paris/critic")) as server:
        yield server


@pytest.fixture()
def endpoint(openai_fake):
    require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")
    from uno_graph.endpoint import EndpointChatModel

    return EndpointChatModel(base_url=openai_fake.url, model="fake-base", timeout=10, max_retries=0)


def test_endpoint_stream_yields_each_token_once(endpoint, openai_fake):
    counter = TokenCounter()
    chunks = list(endpoint.stream("How long do I boil an egg?", adapter="c-egg/expert", config={"callbacks": [counter]}))
    assert [c.text for c in chunks if c.text] == TOKENS
    assert counter.tokens == TOKENS  # one run reports the tokens, once
    assert len(openai_fake.requests) == 1 and openai_fake.requests[0]["model"] == "c-egg/expert"
    assert chunks[0].response_metadata["adapter"] == "c-egg/expert"
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata["output_tokens"] == len(TOKENS)

    async def astream():
        return [c.text async for c in endpoint.astream("hi") if c.text]

    assert asyncio.run(astream()) == TOKENS

    reply = endpoint.invoke("hi", adapter="c-paris/critic")  # not streamed: one generation, metadata kept
    assert reply.text == "".join(TOKENS) and reply.response_metadata["adapter"] == "c-paris/critic"
    assert reply.response_metadata["finish_reason"] == "stop" and reply.usage_metadata["output_tokens"] == len(TOKENS)


def test_endpoint_in_a_graph_streams_once_and_honours_nostream(endpoint):
    def answer(state):
        return {"messages": [endpoint.invoke(state["messages"])]}

    def draft(state):
        endpoint.invoke(state["messages"], config={"tags": [TAG_NOSTREAM]})
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("draft", draft)
    builder.add_node("answer", answer)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "answer")
    pieces = list(builder.compile().stream({"messages": [("user", "hi")]}, stream_mode="messages"))
    assert {meta["langgraph_node"] for _, meta in pieces} == {"answer"}
    assert [msg.text for msg, _ in pieces if msg.text] == TOKENS


def test_uno_graph_on_the_endpoint_streams_the_revision_once(endpoint, router):
    graph = build_graph(endpoint, router).compile()
    pieces, events, final = run_stream(graph, ("user", PARIS))  # draft, critique, revise: all the same tokens
    assert_streamed_once(pieces, final, "revise")
    assert [msg.text for msg, _ in pieces if msg.text] == TOKENS
    assert events[-1] == {"uno_event": "critique", "critique": "".join(TOKENS)}


# -- uno-graph chat -------------------------------------------------------------------------------------------

def test_cli_chat_prints_each_answer_once(router, monkeypatch, capsys):
    from uno_graph import cli
    from uno_graph import graph as graph_module

    monkeypatch.setattr(graph_module.UnoSystem, "load", classmethod(
        lambda cls, workdir, **kw: SimpleNamespace(model=StreamingEcho(calls=[]), router=router)))
    lines = iter([PARIS, EGG, ""])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    assert cli.main(["chat", "--workdir", "unused"]) == 0
    out = capsys.readouterr().out

    same = build_graph(StreamingEcho(calls=[]), router).compile()
    revised, expert = (same.invoke({"messages": [("user", q)]})["messages"][-1].text for q in (PARIS, EGG))
    assert out.split("\n", 1)[1] == f"bot> [critic c-paris] {revised}\nbot> [expert c-egg] {expert}\n"
