"""critique: the cluster's Critic adapter writes numbered suggestions for the base draft."""

from __future__ import annotations

from langgraph.config import get_stream_writer

from uno_graph import prompts
from uno_graph.nodes.common import last_query, spend
from uno_graph.state import UnoState


def make_critique(model):
    def critique(state: UnoState) -> dict:
        reply = model.invoke(prompts.critic_messages(last_query(state["messages"]), state["draft"]),
                             adapter=state["adapter"])
        get_stream_writer()({"uno_event": "critique", "critique": str(reply.content)})
        return {"critique": str(reply.content), "tokens": spend(state, reply)}

    return critique
