""".venv/bin/python examples/memory_migration.py --workdir runs/demo

Moving a chatbot off LangChain's deprecated memory classes: the conversation goes to a LangGraph
checkpointer, what was learned from all users to uno-graph.

Before: `RunnableWithMessageHistory` kept each session's messages in a `ChatMessageHistory` (by
`session_id`), and `ConversationSummaryMemory` (`langchain_classic.memory`, the `migration` extra)
kept a running summary of the conversation for the prompt (`load_memory_variables` /
`save_context`). Both run here, one session each; neither learns anything across users. LangChain
prints a `LangChainDeprecationWarning` as each deprecated class is used: that is what is moved off.

After (a `create_agent` agent; the same works for any LangGraph graph):
- the thread: a checkpointer (`InMemorySaver` here; `SqliteSaver` / `PostgresSaver` to survive a
  restart), keyed by `thread_id` (was `session_id`). Old sessions are carried over once with
  `agent.update_state(config, {"messages": old_history.messages})`.
- the summary: `SummarizationMiddleware` summarises older turns inside the thread's state. The old
  memory's summary goes into its thread as the message the middleware writes for its own summaries,
  followed by the last turn, so the model sees it and the middleware folds it into the next summary.
- what was learned from every user's logs: `UnoMiddleware` (Expert / Critic adapters per cluster of
  questions) and `UnoMemoryStore` (the learned rules and feedback as a read-only LangGraph store:
  `runtime.store` in tools and nodes).

Without `--workdir` (or with `--offline-fake`) it runs on the built-in FAKE model (it echoes its
input, tagged with the adapter it was called with; its "summary" is the start of the summary prompt)
and fake router, in seconds:

    .venv/bin/python examples/memory_migration.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _fake_system import add_system_args, describe, load_system
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage

from uno_graph.errors import MissingDependencyError, require

OLD_TURNS = ["How long should I boil an egg?", "And for a soft one?"]
NEW_TURNS = ["What about a hard-boiled egg then?", "Can I cool the egg in cold water?", "What should I see in Paris?"]
OLD_SUMMARY_TURNS = ["I have guests tonight: what can I cook with eggs?", "Something quick, please."]
NEW_SUMMARY_TURN = "How many eggs per guest?"
SUMMARY_PREFIX = "Here is a summary of the conversation to date:\n\n"  # how SummarizationMiddleware opens its summary


def before(model, session_id: str):
    """The old chatbot: a prompt with the history, the model, and `RunnableWithMessageHistory` (deprecated)."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    histories: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages([("system", "You are a helpful cook."), MessagesPlaceholder("history"),
                                               ("human", "{question}")])
    chain = RunnableWithMessageHistory(prompt | model, lambda sid: histories.setdefault(sid, InMemoryChatMessageHistory()),
                                       input_messages_key="question", history_messages_key="history")
    for question in OLD_TURNS:
        reply = chain.invoke({"question": question}, config={"configurable": {"session_id": session_id}})
        print(f"before | you: {question}\nbefore | bot: {reply.content}")
    return histories[session_id]


def before_summary(model, memory_cls: type) -> Any:
    """The old chatbot with `ConversationSummaryMemory` (deprecated): the model sees a running summary, not the turns.

    Each turn reads the summary with `load_memory_variables`, and `save_context` stores the turn in the
    memory's `chat_memory` and asks the model for a new summary. Returns the memory: its state is migrated.
    """
    from langchain_core.prompts import ChatPromptTemplate

    memory = memory_cls(llm=model)
    prompt = ChatPromptTemplate.from_messages([("system", "You are a helpful cook. The conversation so far: {history}"),
                                               ("human", "{input}")])
    for question in OLD_SUMMARY_TURNS:
        reply = (prompt | model).invoke({**memory.load_memory_variables({}), "input": question})
        memory.save_context({"input": question}, {"output": reply.content})
        print(f"before | you: {question}\nbefore | bot: {reply.content}")
    print(f"before | summary memory: {memory.buffer!r}")
    return memory


def summary_thread(memory) -> list[BaseMessage]:
    """A `ConversationSummaryMemory`'s state as a thread's first messages: the summary, then the last turn.

    The summary stands for the older turns, as it did in the old prompt. It is written as the message
    `SummarizationMiddleware` writes for a summary of its own (`lc_source: summarization`), so once the
    thread grows past the middleware's trigger the old summary is summarised with the turns after it.
    The last turn is kept word for word so that a follow-up question ("and for ...?") still has it.
    """
    summary = HumanMessage(SUMMARY_PREFIX + memory.buffer, additional_kwargs={"lc_source": "summarization"})
    return [summary, *memory.chat_memory.messages[-2:]]


class Prompts(BaseCallbackHandler):
    """The messages of every chat model call: to show what the model is given after the migration."""

    def __init__(self) -> None:
        self.seen: list[BaseMessage] = []

    def on_chat_model_start(self, serialized, messages, **kwargs: Any) -> None:
        self.seen += [m for batch in messages for m in batch]


def _need(module: str, extra: str) -> Any:
    """Import an optional dependency, or stop with the extra that installs it."""
    try:
        return require(module, extra)
    except MissingDependencyError as exc:
        sys.exit(f"memory_migration.py: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    add_system_args(parser)
    args = parser.parse_args(argv)

    create_agent = _need("langchain.agents", "agents").create_agent
    summary_memory_cls = _need("langchain_classic.memory", "migration").ConversationSummaryMemory
    from langchain.agents.middleware import SummarizationMiddleware
    from langgraph.checkpoint.memory import InMemorySaver

    from uno_graph.memory_store import UnoMemoryStore
    from uno_graph.middleware import UnoMiddleware

    system = load_system(args)
    fake = args.offline_fake or not args.workdir
    print("model: FAKE echo model (offline)" if fake else f"model: the work directory {args.workdir}'s UnoChatModel")

    # 1. the old chatbots: session s1 with its whole history, session s2 with a summary memory
    history = before(system.model, "s1")
    memory = before_summary(system.model, summary_memory_cls)

    # 2. the new one: thread in a checkpointer, older turns summarised, learned behaviour from uno-graph
    store = UnoMemoryStore(system.router.store, None if fake else args.workdir, embedder=system.router.embedder)
    agent = create_agent(
        system.model, tools=[], system_prompt="You are a helpful cook.", checkpointer=InMemorySaver(), store=store,
        middleware=[SummarizationMiddleware(system.model, trigger=("messages", 8), keep=("messages", 4)),
                    UnoMiddleware(system.router, model=system.model, mode=args.mode)])
    config = {"configurable": {"thread_id": "s1"}}  # the old session id becomes the thread id
    agent.update_state(config, {"messages": history.messages})  # carried over once
    print(f"migrated: thread s1 holds {len(agent.get_state(config).values['messages'])} messages")
    config_s2 = {"configurable": {"thread_id": "s2"}}
    agent.update_state(config_s2, {"messages": summary_thread(memory)})
    print(f"migrated: thread s2 holds {len(agent.get_state(config_s2).values['messages'])} messages, "
          "the old summary first")

    # 3. the conversations go on in the same threads
    for question in NEW_TURNS:
        answer = agent.invoke({"messages": [("user", question)]}, config)["messages"][-1]
        messages = agent.get_state(config).values["messages"]
        summarised = any("summary" in str(m.content).lower() for m in messages if m.type == "human")
        print(f"after  | you: {question}\nafter  | bot: {answer.content}")
        print(f"after  | {describe(answer)} (thread holds {len(messages)} messages{', a summary first' if summarised else ''})")
    prompts = Prompts()
    reply = agent.invoke({"messages": [("user", NEW_SUMMARY_TURN)]}, {**config_s2, "callbacks": [prompts]})["messages"][-1]
    print(f"after  | you: {NEW_SUMMARY_TURN}\nafter  | bot: {reply.content}\nafter  | {describe(reply)}")
    print(f"after  | the model was given the old summary: {any(memory.buffer in str(m.content) for m in prompts.seen)}")

    # 4. what was learned, read through the store API
    cluster = answer.response_metadata.get("uno_cluster")
    print(f"store namespaces: {store.list_namespaces(prefix=('uno',))}")
    for item in store.search(("uno", "rules"), query=NEW_TURNS[0], limit=2):
        print(f"learned rule for {NEW_TURNS[0]!r}: {item.value['rule']} (cluster {item.value['cluster_id']})")
    print(f"rules of the last answer's cluster {cluster}: {[i.value['rule'] for i in store.search(('uno', 'rules', str(cluster)))]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
