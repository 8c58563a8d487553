"""revise: the base model rewrites its draft following the critique (UNO's reflective path).

Its tokens are the Critic path's answer: they stream (`stream_mode="messages"`)."""

from __future__ import annotations

from uno_graph import prompts
from uno_graph.nodes.common import final_message, last_query, spend, text_of
from uno_graph.state import UnoState


def make_revise(model):
    def revise(state: UnoState) -> dict:
        reply = model.invoke(prompts.revise_messages(last_query(state["messages"]), state["draft"], state["critique"]),
                             adapter=None)
        tokens = spend(state, reply)
        return {"tokens": tokens, "messages": [final_message(text_of(reply), state, tokens, route="critic",
                                                              adapter=state["adapter"], reply=reply)]}

    return revise
