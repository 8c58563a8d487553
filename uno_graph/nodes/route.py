"""route: nearest centroid → expert | critic | base, and the pure routers that follow it.

In mode ``rules_in_context`` (the graph's, or the run's `UnoContext.mode`) the route node does not
route by centroid: it retrieves the nearest clusters' rules (`uno_graph.rules_context`) for
rules_generate, and the route is "rules"."""

from __future__ import annotations

from typing import Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from uno_graph.nodes.common import last_query, routed_event
from uno_graph.nodes.generate import continues_to_critique, run_mode
from uno_graph.router import Router
from uno_graph.rules_context import RulesInContext
from uno_graph.state import UnoContext, UnoState


def make_route(router: Router, mode: str = "uno", rules: RulesInContext | None = None):
    rules = rules or RulesInContext.from_router(router)

    def route(state: UnoState, runtime: Runtime[UnoContext]) -> dict:
        context = runtime.context if runtime is not None else None
        if run_mode(runtime, mode) == "rules_in_context":
            found = rules.retrieve(last_query(state["messages"]), getattr(context, "user_id", None))
            get_stream_writer()({"uno_event": "routed", "route": "rules", "cluster_id": found.cluster_id,
                                 "distance": None, "adapter": None, "rules": list(found.rules)})
            return {"route": "rules", "cluster_id": found.cluster_id, "distance": None, "adapter": None,
                    "budget": None, "rules_prompt": found.system_prompt(),
                    "tokens": {"input_tokens": 0, "output_tokens": 0, "calls": 0}}
        decision = router.route(last_query(state["messages"]), getattr(context, "user_id", None))
        update = {"route": decision.route, "cluster_id": decision.cluster_id, "distance": decision.distance,
                  "adapter": decision.adapter, "budget": decision.max_new_tokens, "arm": decision.arm,
                  "tokens": {"input_tokens": 0, "output_tokens": 0, "calls": 0}}
        get_stream_writer()(routed_event(decision))
        return update

    return route


def next_after_route(state: UnoState) -> Literal["expert_generate", "base_generate", "rules_generate"]:
    return {"expert": "expert_generate", "rules": "rules_generate"}.get(state["route"], "base_generate")


def next_after_base(mode: str):
    """UNO sends Critic clusters on to critique; UNO-Single answers them with the base draft."""

    def decide(state: UnoState, runtime: Runtime[UnoContext]) -> Literal["critique", "__end__"]:
        return "critique" if continues_to_critique(state, runtime, mode) else "__end__"

    return decide
