"""expert_generate (the cluster's Expert adapter) and base_generate (adapters off)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from uno_graph.budget import end_at_sentence
from uno_graph.nodes.common import final_message, spend
from uno_graph.state import UnoContext, UnoState


def make_expert_generate(model):
    def expert_generate(state: UnoState) -> dict:
        budget = state.get("budget")
        reply = model.invoke(state["messages"], adapter=state["adapter"], **({"max_new_tokens": budget} if budget else {}))
        tokens = spend(state, reply)
        # an Expert answer that reaches its budget (or the model's) ends at its last complete sentence or line
        text, _ = end_at_sentence(str(reply.content), reply.response_metadata.get("finish_reason"))
        return {"tokens": tokens, "messages": [final_message(text, state, tokens,
                                                              route="expert", adapter=state["adapter"])]}

    return expert_generate


def make_base_generate(model, mode: str):
    """The base answer: final, unless UNO mode continues a Critic cluster to critique → revise."""

    def base_generate(state: UnoState, runtime: Runtime[UnoContext]) -> dict:
        reply = model.invoke(state["messages"], adapter=None)
        tokens = spend(state, reply)
        update: dict = {"draft": str(reply.content), "tokens": tokens}
        if not continues_to_critique(state, runtime, mode):
            update["messages"] = [final_message(str(reply.content), state, tokens, route="base", adapter=None)]
        return update

    return base_generate


def continues_to_critique(state: UnoState, runtime: Runtime[UnoContext], mode: str) -> bool:
    run_mode = runtime.context.mode if runtime.context is not None and runtime.context.mode else mode
    return state.get("route") == "critic" and run_mode == "uno"
