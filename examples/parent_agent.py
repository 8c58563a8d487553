""".venv/bin/python examples/parent_agent.py --workdir runs/demo --ask "How do I make pancakes?"

The compiled UNO graph mounted as one node of a parent `StateGraph(MessagesState)`: a `prepare` node
first logs the question and adds a system message, then the `uno` node (the UNO graph as a subgraph;
its input and output hold `messages` only, so it mounts as is) answers. Invoked once; prints the
parent's message list, the answer and its route.

Without `--workdir` (or with `--offline-fake`) it runs on a built-in fake model and router:

    .venv/bin/python examples/parent_agent.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys

from langchain_core.messages import RemoveMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from _fake_system import DEMO_QUESTIONS, add_system_args, describe, load_system
from uno_graph.graph import build_graph

SYSTEM_PROMPT = "You are a helpful assistant. Answer the user's question."


def prepare(state: MessagesState) -> dict:
    """Log the incoming question and make sure the conversation starts with a system message."""
    print(f"prepare: {len(state['messages'])} message(s) in, last: {state['messages'][-1].content!r}")
    if any(isinstance(m, SystemMessage) for m in state["messages"]):
        return {}
    # add_messages appends; to put the system message first, clear the list and write it again.
    return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), SystemMessage(SYSTEM_PROMPT), *state["messages"]]}


def build_parent(model, router, mode: str = "uno"):
    parent = StateGraph(MessagesState)
    parent.add_node("prepare", prepare)
    parent.add_node("uno", build_graph(model, router, mode).compile(name=f"uno-{mode}"))
    parent.add_edge(START, "prepare")
    parent.add_edge("prepare", "uno")
    parent.add_edge("uno", END)
    return parent.compile(name="parent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    add_system_args(parser)
    parser.add_argument("--ask", default=DEMO_QUESTIONS[1], help="the question (default: %(default)r)")
    args = parser.parse_args(argv)

    system = load_system(args)
    out = build_parent(system.model, system.router, args.mode).invoke({"messages": [("user", args.ask)]})
    answer = out["messages"][-1]
    print("messages:", [m.type for m in out["messages"]])
    print("answer:", answer.content)
    print(describe(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
