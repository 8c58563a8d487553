"""Helpers the nodes share."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage


def last_query(messages: list[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    raise ValueError("the UNO graph needs at least one user message in `messages`")


def spend(state: dict, reply: AIMessage) -> dict[str, int]:
    """Token totals after one more model call."""
    meta = reply.usage_metadata or {}
    before = state.get("tokens") or {"input_tokens": 0, "output_tokens": 0, "calls": 0}
    return {"input_tokens": before["input_tokens"] + int(meta.get("input_tokens", 0)),
            "output_tokens": before["output_tokens"] + int(meta.get("output_tokens", 0)),
            "calls": before["calls"] + 1}


def final_message(text: str, state: dict, tokens: dict[str, int], *, route: str, adapter: str | None) -> AIMessage:
    """The answer the graph emits, with route, cluster, adapter and the turn's token counts."""
    meta = {"uno_route": route, "uno_cluster": state.get("cluster_id"), "uno_adapter": adapter,
            "uno_distance": state.get("distance"), "uno_calls": tokens["calls"]}
    usage = {"input_tokens": tokens["input_tokens"], "output_tokens": tokens["output_tokens"],
             "total_tokens": tokens["input_tokens"] + tokens["output_tokens"]}
    return AIMessage(content=text, response_metadata=meta, usage_metadata=usage)
