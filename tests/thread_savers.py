"""Checkpointers that `--checkpointer tests.thread_savers:NAME` names in test_threads_cli.py.

Each holds the same recorded thread: an app on a fake model answered a question about eggs, and the
user complained; `recorded()` builds it in a fresh `InMemorySaver`. The names cover every form the
option takes (an instance, a compiled graph, a factory, a context manager) and two that it refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

QUESTION, COMPLAINT = "How do I boil an egg?", "Too long, just give me the steps"
REPLIES = ["Boil the egg for 9 minutes, then cool it in cold water, peel it and serve.", "1. Boil 9 min. 2. Cool."]
CONFIG = {"configurable": {"thread_id": "egg", "user_id": "u1"}}
exited: list[str] = []  # `connected` appends when its `with` block is left


def chat_app(saver: InMemorySaver):
    """A one-node chat graph on a fake model, checkpointed by `saver`."""
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in REPLIES]))
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "chat")
    return graph.compile(checkpointer=saver)


def recorded() -> InMemorySaver:
    """A factory of no arguments: a new `InMemorySaver` holding the egg thread."""
    saver = InMemorySaver()
    app = chat_app(saver)
    app.invoke({"messages": [("user", QUESTION)]}, CONFIG)
    app.invoke({"messages": [("user", COMPLAINT)]}, CONFIG)
    return saver


@contextmanager
def connected() -> Iterator[InMemorySaver]:
    """A context manager yielding the saver, as `PostgresSaver.from_conn_string(URL)` does."""
    try:
        yield recorded()
    finally:
        exited.append("connected")


def from_settings():
    """A factory returning a context manager: how an app wraps `from_conn_string` with its settings."""
    return connected()


def needs_url(url: str) -> InMemorySaver:
    """Not usable as it is: it needs an argument."""
    return recorded()


SAVER = recorded()
GRAPH = chat_app(recorded())
NOT_A_SAVER = {"messages": []}
