""".venv/bin/python examples/chatbot.py --workdir runs/demo --ask "How do I make pancakes?"

A plain chatbot over the compiled UNO graph: one conversation thread (`thread_id`) kept by an
`InMemorySaver` checkpointer, so every turn sees the earlier ones. Each `--ask "..."` (repeatable) is
one turn; without `--ask` it reads questions from stdin (an empty line or EOF ends). For each turn it
prints the answer and the route (expert / critic / base), cluster and adapter it took.

Without `--workdir` (or with `--offline-fake`) it runs on a built-in fake model and router, asking
three demo questions when no `--ask` is given:

    .venv/bin/python examples/chatbot.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys
import uuid

from langgraph.checkpoint.memory import InMemorySaver

from _fake_system import DEMO_QUESTIONS, add_system_args, describe, load_system
from uno_graph.graph import build_graph


def questions(args: argparse.Namespace):
    if args.ask:
        yield from args.ask
    elif args.offline_fake or not args.workdir:
        yield from DEMO_QUESTIONS
    else:
        for line in sys.stdin:
            if not line.strip():
                return
            yield line.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_system_args(parser)
    parser.add_argument("--ask", action="append", help="a question (repeatable); one turn each")
    parser.add_argument("--thread-id", default=None, help="the conversation thread (default: a new one)")
    args = parser.parse_args(argv)

    system = load_system(args)
    graph = build_graph(system.model, system.router, args.mode).compile(checkpointer=InMemorySaver(), name="uno-chatbot")
    config = {"configurable": {"thread_id": args.thread_id or str(uuid.uuid4())}}
    for turn, question in enumerate(questions(args), start=1):
        out = graph.invoke({"messages": [("user", question)]}, config)
        answer = out["messages"][-1]
        print(f"[{turn}] you: {question}")
        print(f"[{turn}] uno: {answer.content}")
        print(f"[{turn}] {describe(answer)} (thread holds {len(out['messages'])} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
