"""critique: the cluster's Critic adapter writes numbered suggestions for the base draft.

The critique is internal: its model call is tagged ``nostream`` and it reaches a UI as a
``{"uno_event": "critique", "critique": ...}`` custom stream event."""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

from uno_graph import prompts
from uno_graph.nodes.common import internal, last_query, spend, text_of
from uno_graph.state import UnoState


def make_critique(model):
    def critique(state: UnoState, config: RunnableConfig) -> dict:
        reply = model.invoke(prompts.critic_messages(last_query(state["messages"]), state["draft"]),
                             config=internal(config), adapter=state["adapter"])
        text = text_of(reply)
        get_stream_writer()({"uno_event": "critique", "critique": text})
        return {"critique": text, "tokens": spend(state, reply)}

    return critique
