"""Helpers the nodes share, and the graph's streaming rules.

Streaming (`graph.stream(..., stream_mode="messages")`) carries the answer and nothing else:

- A model call whose reply *is* the answer (expert_generate, base_generate when final, revise)
  streams its tokens as they come.
- A model call whose reply is internal (the base draft that the Critic path revises, and the
  critique) is tagged ``nostream`` (`internal`), so LangGraph's messages stream skips it; route,
  cluster and critique reach a UI as ``custom`` events instead (`get_stream_writer`).
- The answer message a node returns reuses the id of the model reply it came from
  (`final_message(..., reply=...)`): the messages stream has already carried that reply token by
  token, LangGraph drops a message whose id it has streamed, and a UI that merges by id shows the
  node's final text (an Expert answer trimmed to its last sentence, say) in place of the tokens.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.constants import TAG_NOSTREAM

from uno_graph.logs import user_message


def last_query(messages: list[AnyMessage]) -> str:
    """What the user asked: their last message with the user turns directly before it (`logs.user_message`,
    as `learn` reads a log's question), each as its `.text` (string content, or the text parts of a
    content-part list such as ``[{"type": "text", "text": "..."}]``; images and other parts are skipped)."""
    if not any(isinstance(m, HumanMessage) for m in messages):
        raise ValueError("the UNO graph needs at least one user message in `messages`")
    return user_message([("user" if isinstance(m, HumanMessage) else m.type, str(m.text)) for m in messages])


def text_of(reply: AIMessage) -> str:
    """A model reply's text as a plain `str` (string content, or the text parts of a content list)."""
    return str(reply.text)


def internal(config: RunnableConfig | None) -> RunnableConfig:
    """`config` for a model call whose tokens are not the answer: tagged ``nostream`` (LangGraph's
    `TAG_NOSTREAM`), so `stream_mode="messages"` leaves it out; callbacks and tracing stay."""
    config = config or {}
    return {**config, "tags": [*(config.get("tags") or []), TAG_NOSTREAM]}


def routed_event(decision: Any, route: str | None = None) -> dict[str, Any]:
    """The ``custom`` stream event that reports a routing decision (`router.RouteDecision`), with the
    late ensemble's drawn arm when there is one; `route` overrides the decision's (``"rules"``). The
    graph's route node and the agent middleware send the same event."""
    event = {"uno_event": "routed", "route": route or decision.route, "cluster_id": decision.cluster_id,
             "distance": decision.distance, "adapter": decision.adapter}
    if decision.arm is not None:  # late ensemble: which variant's arm was drawn
        event["arm"] = decision.arm
    return event


def spend(state: dict, reply: AIMessage) -> dict[str, int]:
    """Token totals after one more model call."""
    meta = reply.usage_metadata or {}
    before = state.get("tokens") or {"input_tokens": 0, "output_tokens": 0, "calls": 0}
    return {"input_tokens": before["input_tokens"] + int(meta.get("input_tokens", 0)),
            "output_tokens": before["output_tokens"] + int(meta.get("output_tokens", 0)),
            "calls": before["calls"] + 1}


def final_message(text: str, state: dict, tokens: dict[str, int], *, route: str, adapter: str | None,
                  reply: AIMessage | None = None) -> AIMessage:
    """The answer the graph emits, with route, cluster, adapter and the turn's token counts (and, when
    the late ensemble chose the Expert variant, its arm as ``uno_arm``).

    `reply`: the model reply the answer came from; the answer takes its id (see the module's
    streaming rules), so it does not stream a second time after its tokens."""
    meta = {"uno_route": route, "uno_cluster": state.get("cluster_id"), "uno_adapter": adapter,
            "uno_distance": state.get("distance"), "uno_calls": tokens["calls"]}
    if route == "expert" and state.get("arm"):
        meta["uno_arm"] = state["arm"]
    usage = {"input_tokens": tokens["input_tokens"], "output_tokens": tokens["output_tokens"],
             "total_tokens": tokens["input_tokens"] + tokens["output_tokens"]}
    return AIMessage(content=text, id=reply.id if reply is not None else None, response_metadata=meta,
                     usage_metadata=usage)
