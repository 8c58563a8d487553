""".venv/bin/python examples/memory_migration.py --workdir runs/demo

Moving a chatbot off LangChain's deprecated memory classes: the conversation goes to a LangGraph
checkpointer, what was learned from all users to uno-graph.

Before: `RunnableWithMessageHistory` kept each session's messages in a `ChatMessageHistory` (by
`session_id`), and `ConversationSummaryMemory` (`langchain_classic.memory`) put a running summary of
older turns into the prompt. Neither learns anything across users.

After (a `create_agent` agent; the same works for any LangGraph graph):
- the thread: a checkpointer (`InMemorySaver` here; `SqliteSaver` / `PostgresSaver` to survive a
  restart), keyed by `thread_id` (was `session_id`). Old sessions are carried over once with
  `agent.update_state(config, {"messages": old_history.messages})`.
- the summary: `SummarizationMiddleware` summarises older turns inside the thread's state.
- what was learned from every user's logs: `UnoMiddleware` (Expert / Critic adapters per cluster of
  questions) and `UnoMemoryStore` (the learned rules and feedback as a read-only LangGraph store:
  `runtime.store` in tools and nodes).

Without `--workdir` (or with `--offline-fake`) it runs on the built-in FAKE model (it echoes its
input, tagged with the adapter it was called with) and fake router, in seconds:

    .venv/bin/python examples/memory_migration.py --offline-fake
"""

from __future__ import annotations

import argparse
import sys

from _fake_system import add_system_args, describe, load_system

OLD_TURNS = ["How long should I boil an egg?", "And for a soft one?"]
NEW_TURNS = ["What about a hard-boiled egg then?", "Can I cool the egg in cold water?", "What should I see in Paris?"]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    add_system_args(parser)
    args = parser.parse_args(argv)

    from langchain.agents import create_agent  # the `agents` extra
    from langchain.agents.middleware import SummarizationMiddleware
    from langgraph.checkpoint.memory import InMemorySaver

    from uno_graph.memory_store import UnoMemoryStore
    from uno_graph.middleware import UnoMiddleware

    system = load_system(args)
    fake = args.offline_fake or not args.workdir
    print("model: FAKE echo model (offline)" if fake else f"model: the work directory {args.workdir}'s UnoChatModel")

    # 1. the old chatbot, one session
    history = before(system.model, "s1")

    # 2. the new one: thread in a checkpointer, older turns summarised, learned behaviour from uno-graph
    store = UnoMemoryStore(system.router.store, None if fake else args.workdir, embedder=system.router.embedder)
    agent = create_agent(
        system.model, tools=[], system_prompt="You are a helpful cook.", checkpointer=InMemorySaver(), store=store,
        middleware=[SummarizationMiddleware(system.model, trigger=("messages", 8), keep=("messages", 4)),
                    UnoMiddleware(system.router, model=system.model, mode=args.mode)])
    config = {"configurable": {"thread_id": "s1"}}  # the old session id becomes the thread id
    agent.update_state(config, {"messages": history.messages})  # carried over once
    print(f"migrated: thread s1 holds {len(agent.get_state(config).values['messages'])} messages")

    # 3. the conversation goes on in the same thread
    for question in NEW_TURNS:
        answer = agent.invoke({"messages": [("user", question)]}, config)["messages"][-1]
        messages = agent.get_state(config).values["messages"]
        summarised = any("summary" in str(m.content).lower() for m in messages if m.type == "human")
        print(f"after  | you: {question}\nafter  | bot: {answer.content}")
        print(f"after  | {describe(answer)} (thread holds {len(messages)} messages{', a summary first' if summarised else ''})")

    # 4. what was learned, read through the store API
    cluster = answer.response_metadata.get("uno_cluster")
    print(f"store namespaces: {store.list_namespaces(prefix=('uno',))}")
    for item in store.search(("uno", "rules"), query=NEW_TURNS[0], limit=2):
        print(f"learned rule for {NEW_TURNS[0]!r}: {item.value['rule']} (cluster {item.value['cluster_id']})")
    print(f"rules of the last answer's cluster {cluster}: {[i.value['rule'] for i in store.search(('uno', 'rules', str(cluster)))]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
