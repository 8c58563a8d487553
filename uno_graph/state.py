"""Graph state. Input and output hold `messages` only, so the compiled graph mounts in any
`MessagesState` parent; the routing keys stay inside. (typing_extensions.TypedDict: on Python 3.11
typing.TypedDict breaks LangGraph's schema export.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

Route = Literal["expert", "critic", "base", "rules"]
Mode = Literal["uno", "uno_single", "rules_in_context"]


class MessagesIO(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class UnoState(MessagesIO, total=False):
    route: Route
    cluster_id: str | None
    distance: float | None
    adapter: str | None
    arm: str | None  # late ensemble: the chosen variant's adapter path (absent when no choice was made)
    budget: int | None  # the Expert's answer budget in tokens (None: the model's own)
    rules_prompt: str | None  # mode rules_in_context: the system prompt carrying the nearest clusters' rules
    draft: str
    critique: str
    tokens: dict[str, int]  # input/output tokens and calls spent so far on this turn


@dataclass(frozen=True)
class UnoContext:
    """Per-run data (`graph.invoke(..., context=UnoContext(user_id="u1"))`)."""

    user_id: str | None = None
    mode: Mode | None = None  # overrides the graph's default mode for this run
