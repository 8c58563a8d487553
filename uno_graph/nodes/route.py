"""route: nearest centroid → expert | critic | base, and the pure routers that follow it."""

from __future__ import annotations

from typing import Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from uno_graph.nodes.common import last_query
from uno_graph.nodes.generate import continues_to_critique
from uno_graph.router import Router
from uno_graph.state import UnoContext, UnoState


def make_route(router: Router):
    def route(state: UnoState, runtime: Runtime[UnoContext]) -> dict:
        context = runtime.context if runtime is not None else None
        decision = router.route(last_query(state["messages"]), getattr(context, "user_id", None))
        update = {"route": decision.route, "cluster_id": decision.cluster_id, "distance": decision.distance,
                  "adapter": decision.adapter, "budget": decision.max_new_tokens, "tokens": {"input_tokens": 0, "output_tokens": 0, "calls": 0}}
        get_stream_writer()({"uno_event": "routed", "route": decision.route, "cluster_id": decision.cluster_id,
                             "distance": decision.distance, "adapter": decision.adapter})
        return update

    return route


def next_after_route(state: UnoState) -> Literal["expert_generate", "base_generate"]:
    return "expert_generate" if state["route"] == "expert" else "base_generate"


def next_after_base(mode: str):
    """UNO sends Critic clusters on to critique; UNO-Single answers them with the base draft."""

    def decide(state: UnoState, runtime: Runtime[UnoContext]) -> Literal["critique", "__end__"]:
        return "critique" if continues_to_critique(state, runtime, mode) else "__end__"

    return decide
