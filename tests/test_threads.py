"""Reading a LangGraph checkpointer's threads as logs (uno_graph.capture.threads)."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from uno_graph.capture.threads import export_threads, read_threads, thread_records
from uno_graph.errors import ConfigError
from uno_graph.logs import parse_record, read_logs

REPLIES = ["Boil the egg for 9 minutes, then cool it in cold water, peel it and serve.",
           "1. Boil 9 min. 2. Cool. 3. Peel.",
           "Paris is the capital of France.",
           "Lyon has about half a million people."]


def _app():
    """A one-node chat graph on a fake model, checkpointed in memory."""
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in REPLIES]))
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "chat")
    return graph.compile(checkpointer=InMemorySaver())


@pytest.fixture()
def app():
    app = _app()
    egg = {"configurable": {"thread_id": "egg", "user_id": "u1"}}
    app.invoke({"messages": [("user", "How do I boil an egg?")]}, egg)
    app.invoke({"messages": [("user", "Too long, just give me the steps")]}, egg)
    france = {"configurable": {"thread_id": "france"}}
    app.invoke({"messages": [("user", "Capital of France?")]}, france)
    app.invoke({"messages": [("user", "And how big is Lyon?")]}, france)
    return app


def test_threads_become_logs_with_followups(app):
    records = read_threads(app.checkpointer)
    assert len(records) == 4
    for r in records:
        parse_record(r, "threads", 1)  # each passes the log reader's validation
    by_thread = {}
    for r in records:
        by_thread.setdefault(r["metadata"]["thread_id"], []).append(r)
    assert sorted(by_thread) == ["egg", "france"]

    first, second = by_thread["egg"]
    assert first["messages"] == [{"role": "user", "content": "How do I boil an egg?"},
                                 {"role": "assistant", "content": REPLIES[0]},
                                 {"role": "user", "content": "Too long, just give me the steps"}]
    assert second["messages"] == [{"role": "user", "content": "Too long, just give me the steps"},
                                  {"role": "assistant", "content": REPLIES[1]}]
    assert first["user_id"] == second["user_id"] == first["metadata"]["user_id"] == "u1"
    assert first["metadata"]["source"] == "checkpointer"

    record = parse_record(first, "threads", 1)
    assert record.answer == REPLIES[0] and record.feedback_text == "Too long, just give me the steps"
    assert parse_record(second, "threads", 2).feedback_text == ""

    capital, lyon = by_thread["france"]
    assert capital["user_id"] is None and capital["messages"][-1]["content"] == "And how big is Lyon?"
    assert parse_record(capital, "threads", 3).answer == REPLIES[2]
    assert lyon["messages"][-1] == {"role": "assistant", "content": REPLIES[3]}


def test_compiled_graph_and_stable_ids(app):
    records = read_threads(app)
    assert [r["id"] for r in records] == [r["id"] for r in read_threads(app.checkpointer)]
    assert len({r["id"] for r in records}) == 4
    assert all(r["id"].startswith(r["metadata"]["thread_id"] + "/") for r in records)


def test_export_is_read_by_learn(app, tmp_path):
    path = tmp_path / "threads.jsonl"
    assert export_threads(app, path) == 4
    report = read_logs(path)
    assert len(report.records) == 4 and not report.problems and not report.warnings
    assert {r.metadata["thread_id"] for r in report.records} == {"egg", "france"}
    egg = [r for r in report.records if r.metadata["thread_id"] == "egg"]
    assert egg[0].feedback_text == "Too long, just give me the steps" and egg[0].user_id == "u1"
    assert json.loads(path.read_text().splitlines()[0])["metadata"]["checkpoint_id"]


def test_tool_calls_stay_in_the_prompt():
    call = {"name": "weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    messages = [HumanMessage("Weather in Paris?"),
                AIMessage("", tool_calls=[call], id="ai-1"),
                ToolMessage("18C, sunny", tool_call_id="call_1", name="weather"),
                AIMessage("It is 18C and sunny in Paris.", id="ai-2"),
                HumanMessage("In Fahrenheit please"),
                AIMessage("", tool_calls=[{**call, "id": "call_2"}], id="ai-3")]  # cut off before its answer
    records = thread_records(messages, thread_id="t")
    assert len(records) == 1  # the tool-call turn is not an answer; the unanswered last turn gives no log
    (record,) = records
    assert record["id"] == "t/ai-2"
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert record["messages"][1]["tool_calls"][0]["function"]["name"] == "weather"
    parsed = parse_record(record, "threads", 1)
    assert parsed.answer == "It is 18C and sunny in Paris."
    assert parsed.query == "Weather in Paris?" and parsed.feedback_text == "In Fahrenheit please"
    assert [m["role"] for m in parsed.prompt_messages] == ["user", "assistant", "tool"]


def test_answer_without_question_and_other_sources():
    assert thread_records([AIMessage("Hello! How can I help?")], thread_id="t") == []
    records = thread_records([AIMessage("Hi!"), HumanMessage("Hi"), AIMessage("What can I do?")], thread_id="t")
    assert [r["messages"] for r in records] == [[{"role": "user", "content": "Hi"},
                                                 {"role": "assistant", "content": "What can I do?"}]]
    with pytest.raises(ConfigError):
        read_threads(object())
    assert read_threads(InMemorySaver()) == []
