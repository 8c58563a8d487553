"""expert_generate (the cluster's Expert adapter), base_generate (adapters off) and rules_generate
(mode ``rules_in_context``: adapters off, the nearest clusters' rules in the system prompt).

Both stream their tokens when their reply is the answer; base_generate's draft on UNO's Critic path
is internal (tagged ``nostream``; see `uno_graph.nodes.common`).
"""

from __future__ import annotations

import uuid

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from uno_graph.budget import end_at_sentence
from uno_graph.nodes.best_of import BestOf, pick, samples
from uno_graph.nodes.common import final_message, internal, spend, text_of
from uno_graph.rules_context import with_rules
from uno_graph.state import UnoContext, UnoState


def make_expert_generate(model, best_of: BestOf | None = None):
    """The Expert's answer with the cluster's adapter; with `best_of` and an adapter that has a want
    model, the best of several answers (`uno_graph.nodes.best_of`)."""

    def expert_generate(state: UnoState, config: RunnableConfig) -> dict:
        budget, adapter = state.get("budget"), state["adapter"]
        scorer = best_of.scorer(adapter) if best_of is not None else None
        if scorer is not None:
            quiet = internal(config)  # no candidate streams: the chosen one is the answer
            greedy = model.invoke(state["messages"], config=quiet, adapter=adapter,
                                  **({"max_new_tokens": budget} if budget else {}))
            chosen = pick(scorer, [greedy, *samples(model, state["messages"], adapter, best_of, budget, quiet)])
            tokens = state.get("tokens")
            for reply in chosen.replies:
                tokens = spend({"tokens": tokens}, reply)
            message = final_message(chosen.text, state, tokens, route="expert", adapter=adapter)
            message.id = f"uno-best-of-{uuid.uuid4()}"  # a new message: no candidate's tokens were streamed
            message.response_metadata["uno_best_of"] = {"picked": chosen.index, "scores": chosen.scores}
            return {"tokens": tokens, "messages": [message]}
        reply = model.invoke(state["messages"], adapter=adapter, **({"max_new_tokens": budget} if budget else {}))
        tokens = spend(state, reply)
        # an Expert answer that reaches its budget (or the model's) ends at its last complete sentence or line
        text, _ = end_at_sentence(text_of(reply), reply.response_metadata.get("finish_reason"))
        return {"tokens": tokens, "messages": [final_message(text, state, tokens, route="expert",
                                                              adapter=adapter, reply=reply)]}

    return expert_generate


def make_base_generate(model, mode: str):
    """The base answer: final, unless UNO mode continues a Critic cluster to critique → revise
    (then it is a draft, kept out of the messages stream)."""

    def base_generate(state: UnoState, runtime: Runtime[UnoContext], config: RunnableConfig) -> dict:
        if continues_to_critique(state, runtime, mode):
            reply = model.invoke(state["messages"], config=internal(config), adapter=None)
            return {"draft": text_of(reply), "tokens": spend(state, reply)}
        reply = model.invoke(state["messages"], adapter=None)
        tokens, text = spend(state, reply), text_of(reply)
        return {"draft": text, "tokens": tokens,
                "messages": [final_message(text, state, tokens, route="base", adapter=None, reply=reply)]}

    return base_generate


def make_rules_generate(model):
    """The base model's answer with the rules the route node found in front of the conversation."""

    def rules_generate(state: UnoState) -> dict:
        reply = model.invoke(with_rules(state["messages"], state.get("rules_prompt")), adapter=None)
        tokens, text = spend(state, reply), text_of(reply)
        return {"tokens": tokens, "messages": [final_message(text, state, tokens, route="rules", adapter=None,
                                                              reply=reply)]}

    return rules_generate


def run_mode(runtime: Runtime[UnoContext] | None, mode: str) -> str:
    """The run's mode: `UnoContext.mode` when set, else the graph's."""
    context = runtime.context if runtime is not None else None
    return context.mode if context is not None and getattr(context, "mode", None) else mode


def continues_to_critique(state: UnoState, runtime: Runtime[UnoContext], mode: str) -> bool:
    """True on UNO's Critic path: the route is "critic" and the run's mode (`UnoContext.mode`, else
    the graph's) is "uno"."""
    return state.get("route") == "critic" and run_mode(runtime, mode) == "uno"
