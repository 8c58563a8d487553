""".venv/bin/python examples/agent_tools.py --workdir runs/demo --base-url http://127.0.0.1:8001/v1 --model smollm2-135m-instruct

A LangChain agent with two tools (`lookup`, `add`) and UNO routing: `create_agent(model, tools=[lookup,
add], middleware=[UnoMiddleware(...)])` answers a request that takes two tool turns. On an Expert
cluster every model call of the turn uses the Expert adapter; on a Critic cluster the tool-call turns
go through unchanged and only the turn that answers the user is critiqued (Critic adapter) and revised
(base model). Prints each message, then the answer's route and how many critiques were written.

Models:
- `--offline-fake` (the default without `--workdir`): a FAKE scripted model — it is not a language
  model: it always looks the topic up, then adds, then answers, and tags its text with the adapter it
  was called with — over the built-in fake router ("egg" → Expert, "paris" → Critic). Runs in seconds.
- `--workdir DIR --base-url URL --model NAME`: `ChatOpenAI` on an OpenAI-compatible LoRA server
  (`uno-graph serve-openai --workdir DIR`, or vLLM `--enable-lora`), the adapter chosen by model name.
- `--workdir DIR` alone: the work directory's `UnoChatModel`. SmolLM2-135M rarely calls tools
  unforced, so expect prose answers from it.

    .venv/bin/python examples/agent_tools.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from _fake_system import add_system_args, describe, load_system

FACTS = {"egg": ("A soft egg boils for 6 minutes.", 6, 2), "paris": ("The Louvre opens at 9 and closes at 18.", 18, -9)}
QUESTIONS = ["How long to boil a soft egg, plus 2 minutes to cool?", "How many hours is the Louvre in Paris open?"]


@tool
def lookup(topic: str) -> str:
    """Look up a fact about a topic, given as one lowercase word."""
    return FACTS.get(topic, ("Nothing known.",))[0]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class ScriptedToolModel(BaseChatModel):
    """FAKE chat model for the offline run: a fixed plan (lookup, then add, then an answer), no language
    model. Its text starts with the adapter it was called with, so the output shows what routing did."""

    critiques: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-fake"

    def bind_tools(self, tools: list[Any], *, tool_choice: Any = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, adapter: str | None = None, tools=None,
                  **kwargs: Any) -> ChatResult:
        tag = f"[{adapter or 'base'}]"
        last = str(messages[-1].content)
        if tools is None:  # the middleware's own calls: critique, then revision
            if "## Suggestion" in last:
                draft = last.split("## Initial Answer", 1)[1].split("## Suggestion", 1)[0].strip()
                return _reply(AIMessage(f"{tag} revised: {draft.split('] ', 1)[-1]}"))
            self.critiques += 1
            return _reply(AIMessage(f"{tag} 1. Lead with the number."))
        query_at = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        results = [m for m in messages[query_at:] if isinstance(m, ToolMessage)]
        topic = "egg" if "egg" in str(messages[query_at].content).lower() else "paris"
        _, a, b = FACTS[topic]
        if len(results) == 0:
            return _reply(AIMessage("", tool_calls=[{"name": "lookup", "args": {"topic": topic}, "id": "call_1"}]))
        if len(results) == 1:
            return _reply(AIMessage("", tool_calls=[{"name": "add", "args": {"a": a, "b": b}, "id": "call_2"}]))
        return _reply(AIMessage(f"{tag} {results[0].content} That makes {results[1].content}."))


def _reply(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def show(message) -> str:
    if message.type == "ai" and message.tool_calls:
        return "ai → " + ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
    return f"{message.type}: {message.content}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    add_system_args(parser)
    parser.add_argument("--ask", action="append", help="a request (repeatable; default: one egg, one Paris request)")
    parser.add_argument("--base-url", help="an OpenAI-compatible LoRA server (uses ChatOpenAI; needs --workdir)")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the server's base model name")
    args = parser.parse_args(argv)

    from langchain.agents import create_agent  # the `agents` extra; uno_graph.middleware says how to install it

    from uno_graph.middleware import UnoMiddleware

    system = load_system(args)
    if args.offline_fake or not args.workdir:
        model = ScriptedToolModel()
        print("model: FAKE scripted tool caller (offline; not a language model)")
    elif args.base_url:
        from langchain_openai import ChatOpenAI  # the `endpoint` extra

        model = ChatOpenAI(model=args.model, base_url=args.base_url, api_key="EMPTY")
        print(f"model: ChatOpenAI {args.model} at {args.base_url} (adapters by model name)")
    else:
        model = system.model
        print("model: the work directory's UnoChatModel")
    agent = create_agent(model, tools=[lookup, add], middleware=[UnoMiddleware(system.router, mode=args.mode)])
    for question in args.ask or QUESTIONS:
        messages = agent.invoke({"messages": [("user", question)]})["messages"]
        for message in messages:
            print("  " + show(message))
        print(f"  {describe(messages[-1])}")
    if isinstance(model, ScriptedToolModel):
        print(f"critiques: {model.critiques}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
