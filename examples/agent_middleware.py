""".venv/bin/python examples/agent_middleware.py --workdir runs/demo --ask "How do I make pancakes?"

UNO inside a LangChain agent: `create_agent(model, tools=[], middleware=[UnoMiddleware(...)])`. The
middleware routes the last user message; an Expert cluster answers with its Expert adapter, a Critic
cluster (mode "uno") has the base answer critiqued by its Critic adapter and revised, anything else is
answered by the base model. Invoked once; prints the answer and its route. Needs the `agents` extra:
`pip install 'uno-graph[agents]'`. (With tools, and a hosted model: examples/agent_tools.py.)

Without `--workdir` (or with `--offline-fake`) it runs on a built-in fake model and router:

    .venv/bin/python examples/agent_middleware.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys

from _fake_system import DEMO_QUESTIONS, add_system_args, describe, load_system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    add_system_args(parser)
    parser.add_argument("--ask", default=DEMO_QUESTIONS[0], help="the question (default: %(default)r)")
    args = parser.parse_args(argv)

    from langchain.agents import create_agent  # the `agents` extra; uno_graph.middleware says how to install it

    from uno_graph.middleware import UnoMiddleware

    system = load_system(args)  # for a work directory, UnoMiddleware.from_workdir(DIR) does the same in one call
    agent = create_agent(system.model, tools=[], middleware=[UnoMiddleware(system.router, model=system.model, mode=args.mode)])
    out = agent.invoke({"messages": [("user", args.ask)]})
    answer = out["messages"][-1]
    print("answer:", answer.content)
    print(describe(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
