"""`UnoMiddleware`: UNO routing for a `langchain.agents.create_agent` agent (the `agents` extra).

Every model call of the agent goes through the same logic as the UNO graph: the last user message is
routed with a `Router`; an Expert cluster answers with its Expert adapter, a Critic cluster (mode
``uno``) gets the base answer critiqued by its Critic adapter and revised by the base model, and
everything else (base / out-of-distribution clusters, or mode ``uno_single``) is left unchanged. Mode
``rules_in_context`` uses no adapter: the rules of the query's nearest clusters
(`uno_graph.rules_context`) are added to the system prompt of every model call of the turn.

    >>> from langchain.agents import create_agent                               # doctest: +SKIP
    >>> uno = UnoMiddleware.from_workdir("runs/demo")                           # doctest: +SKIP
    >>> agent = create_agent(uno.model, tools=[], middleware=[uno])             # doctest: +SKIP
    >>> agent.invoke({"messages": [("user", "How do I make pancakes?")]})       # doctest: +SKIP

The final AIMessage carries ``uno_route``, ``uno_cluster``, ``uno_adapter`` (and ``uno_distance``,
``uno_calls``) in its ``response_metadata``, like the graph's answers. A response that asks for tool
calls is returned as is (never critiqued nor revised): in a tool loop only the turn that answers the
user goes through critique → revise. The Expert adapter is used on every model call of the turn,
tool-call turns included.

How the adapter is chosen depends on the model (`uno_graph.adapter_choice`): `UnoChatModel` and
`EndpointChatModel` get ``adapter=...`` in the request's ``model_settings`` (so the agent's own tool
binding still applies) and in the critique call; a hosted model such as ``ChatOpenAI`` pointed at an
OpenAI-compatible LoRA server never gets that keyword: the call goes to a copy of the model whose
model name is the adapter's served name (``adapter_models`` maps names that differ).

With ``recorder=`` (`uno_graph.capture`), each final answer (no tool calls) is recorded as a log with
its route, cluster and adapter, tagged with ``uno_log_id``, and the user's next turn in the thread is
appended to it as the follow-up. The user id is the runtime context's ``user_id``, the thread id the
run's ``configurable.thread_id``; a failing store only logs a warning.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from uno_graph import prompts
from uno_graph.capture.recorder import as_recorder, run_ids
from uno_graph.errors import ConfigError, MissingDependencyError

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
    from langchain.agents.middleware.types import ExtendedModelResponse
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "uno_graph.middleware needs langchain (create_agent), which is not installed; "
        "run: pip install 'uno-graph[agents]'"
    ) from exc

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from uno_graph.adapter_choice import choose_adapter
from uno_graph.graph import MODES
from uno_graph.nodes.common import internal, last_query, routed_event
from uno_graph.router import RouteDecision, Router
from uno_graph.rules_context import RulesInContext

__all__ = ["UnoMiddleware"]


def _last_query(messages: list[AnyMessage]) -> str | None:
    """What the user asked (`nodes.common.last_query`), None when no user message is there."""
    return last_query(messages) if any(isinstance(m, HumanMessage) for m in messages) else None


def _as_model_response(result: Any) -> tuple[ModelResponse, Any]:
    """(ModelResponse, command or None) from anything a handler may return."""
    if isinstance(result, AIMessage):
        return ModelResponse(result=[result]), None
    if isinstance(result, ExtendedModelResponse):
        return result.model_response, result.command
    return result, None


def _run_config() -> dict[str, Any] | None:
    """The current run's config (thread id), or None outside a LangGraph run."""
    from langgraph.config import get_config

    try:
        return get_config()
    except RuntimeError:
        return None


def _rewrap(response: ModelResponse, command: Any):
    return ExtendedModelResponse(model_response=response, command=command) if command is not None else response


def _last_ai_index(response: ModelResponse) -> int | None:
    for i in range(len(response.result) - 1, -1, -1):
        if isinstance(response.result[i], AIMessage):
            return i
    return None


def _usage(messages: list[AIMessage]) -> dict[str, int]:
    inp = sum(int((m.usage_metadata or {}).get("input_tokens", 0)) for m in messages)
    out = sum(int((m.usage_metadata or {}).get("output_tokens", 0)) for m in messages)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


def _emit(event: dict[str, Any]) -> None:
    """A ``custom`` stream event, as the graph's nodes send (``uno_event``: routed, critique); nothing
    when the agent runs outside a LangGraph stream context."""
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a runnable context
        return
    writer(event)


def _tag(message: AIMessage, decision: RouteDecision, *, route: str, adapter: str | None, calls: int,
         content: Any = None, usage: dict[str, int] | None = None) -> AIMessage:
    meta = {**(message.response_metadata or {}), "uno_route": route, "uno_cluster": decision.cluster_id,
            "uno_adapter": adapter, "uno_distance": decision.distance, "uno_calls": calls}
    if route == "expert" and decision.arm:  # the late ensemble's arm (see uno_graph.learners)
        meta["uno_arm"] = decision.arm
    update: dict[str, Any] = {"response_metadata": meta}
    if content is not None:
        update["content"] = content
    if usage is not None:
        update["usage_metadata"] = usage
    return message.model_copy(update=update)


class UnoMiddleware(AgentMiddleware):
    """Sends an agent's model calls through UNO routing (Expert adapter / Critic critique → revise / base).

    Args:
        router: the `Router` of a learned system (`UnoSystem.load(workdir).router`).
        model: the chat model (with the adapters loaded) used for the Critic's critique and the
            revision; ``None`` uses the agent's own model (`request.model`).
        mode: ``"uno"`` (Critic clusters are critiqued and revised), ``"uno_single"`` (Critic
            clusters get the base answer: one call) or ``"rules_in_context"`` (no adapter; the nearest
            clusters' rules in the system prompt). A runtime context with a ``mode`` attribute (e.g.
            `uno_graph.state.UnoContext`) overrides it per run.
        recorder: record each final answer and the user's follow-ups (a `uno_graph.capture.Recorder`,
            a `LogStore`, a LangGraph `BaseStore` or an event-file path); None records nothing.
        adapter_models: adapter name -> the served model name, for hosted models whose server names an
            adapter differently (vLLM ``--lora-modules NAME=path``); an adapter not listed keeps its name.
        rules: the rules retrieval of mode ``rules_in_context`` (default: over the router's store and
            embedder, 2 nearest clusters, at most 8 rules).
    """

    def __init__(self, router: Router, model: Any = None, mode: str = "uno", *, recorder: Any = None,
                 adapter_models: dict[str, str] | None = None, rules: RulesInContext | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r} is not known; expected one of {list(MODES)}")
        self.router, self.model, self.mode = router, model, mode
        self.recorder = as_recorder(recorder)
        self.adapter_models = dict(adapter_models or {})
        self._rules = rules

    @property
    def rules(self) -> RulesInContext:
        """The rules retrieval of mode ``rules_in_context`` (built on first use)."""
        if self._rules is None:
            self._rules = RulesInContext.from_router(self.router)
        return self._rules

    @classmethod
    def from_workdir(cls, workdir: str | Path, mode: str = "uno", *, recorder: Any = None,
                     **load_kwargs: Any) -> "UnoMiddleware":
        """A middleware over a learned work directory; `.model` is the chat model to give `create_agent`."""
        from uno_graph.graph import UnoSystem

        system = UnoSystem.load(workdir, **load_kwargs)
        recorder = as_recorder(recorder)
        if recorder is not None:  # feedback on recorded answers teaches the late ensemble (if the table has one)
            recorder.add_feedback_listener(system.on_feedback)
        return cls(system.router, model=system.model, mode=mode, recorder=recorder)

    @property
    def name(self) -> str:
        return "UnoMiddleware"

    # -- helpers ---------------------------------------------------------------------------------

    def _run_mode(self, request: ModelRequest) -> str:
        context = getattr(getattr(request, "runtime", None), "context", None)
        mode = getattr(context, "mode", None)
        return mode if mode in MODES else self.mode

    def _expert_request(self, request: ModelRequest, adapter: str) -> ModelRequest:
        """`request` answered with `adapter`: by keyword in its model settings, or on a hosted model by name."""
        model, kwargs = choose_adapter(request.model, adapter, self.adapter_models)
        if kwargs:
            return request.override(model_settings={**(request.model_settings or {}), **kwargs})
        return request.override(model=model)

    def _rules_request(self, request: ModelRequest, query: str) -> tuple[ModelRequest, RouteDecision]:
        """`request` with the nearest clusters' rules added to its system prompt, and the route to tag."""
        found = self.rules.retrieve(query, self._user_id(request))
        decision = RouteDecision("rules", found.cluster_id, None, None)
        prompt = found.system_prompt()
        if prompt is None:
            return request, decision
        current = request.system_message.text if request.system_message is not None else ""
        merged = f"{current}\n\n{prompt}" if current else prompt
        return request.override(system_message=SystemMessage(merged)), decision

    def _answering(self, request: ModelRequest, adapter: str | None) -> tuple[Any, dict[str, Any]]:
        """The critique / revision model answering with `adapter` (None: base), and its call keywords."""
        return choose_adapter(self._critic_model(request), adapter, self.adapter_models)

    @staticmethod
    def _unstreamed(request: ModelRequest) -> ModelRequest:
        """The request with its model call tagged ``nostream``: LangGraph's messages stream skips its
        tokens (the Critic path's draft; a tool-call turn still reaches the stream whole at the node's end)."""
        return request.override(model=request.model.with_config(internal(None)))

    def _critic_model(self, request: ModelRequest) -> Any:
        return self.model if self.model is not None else request.model

    def _one_call(self, result: Any, decision: RouteDecision, *, route: str, adapter: str | None) -> Any:
        """The handler's answer, tagged with the route (Expert, or base for every other case)."""
        response, command = _as_model_response(result)
        i = _last_ai_index(response)
        if i is None:
            return result
        messages = list(response.result)
        messages[i] = _tag(messages[i], decision, route=route, adapter=adapter, calls=1)
        return _rewrap(ModelResponse(result=messages, structured_response=response.structured_response), command)

    def _finish_critic(self, response: ModelResponse, command: Any, index: int, draft: AIMessage,
                       critique: AIMessage, revised: AIMessage, decision: RouteDecision):
        final = _tag(draft, decision, route="critic", adapter=decision.adapter, calls=3, content=revised.content,
                     usage=_usage([draft, critique, revised]))
        if revised.id:  # the revision's streamed tokens and the final message are one message to a messages stream
            final = final.model_copy(update={"id": revised.id})
        messages = list(response.result)
        messages[index] = final
        return _rewrap(ModelResponse(result=messages, structured_response=response.structured_response), command)

    def _recorded(self, request: ModelRequest, result: Any) -> Any:
        """`result` with its final answer recorded and tagged with ``uno_log_id`` (unchanged without a recorder)."""
        if self.recorder is None:
            return result
        response, command = _as_model_response(result)
        i = _last_ai_index(response)
        if i is None:
            return result
        answer = response.result[i]
        meta = answer.response_metadata or {}
        if answer.tool_calls or "uno_route" not in meta:  # mid-loop tool call, or not routed (no user query)
            return result
        runtime = getattr(request, "runtime", None)
        user_id, thread_id = run_ids(getattr(runtime, "context", None), _run_config(), runtime)
        log_id = self.recorder.record_turn(
            request.messages, answer, user_id=user_id, thread_id=thread_id, source="agent",
            metadata={"route": meta["uno_route"], "cluster": meta.get("uno_cluster"),
                      "adapter": meta.get("uno_adapter"), **({"arm": meta["uno_arm"]} if meta.get("uno_arm") else {})})
        if log_id is None:
            return result
        messages = list(response.result)
        messages[i] = answer.model_copy(update={"response_metadata": {**meta, "uno_log_id": log_id}})
        return _rewrap(ModelResponse(result=messages, structured_response=response.structured_response), command)

    # -- the hooks -------------------------------------------------------------------------------

    def wrap_model_call(self, request: ModelRequest, handler):
        return self._recorded(request, self._route_call(request, handler))

    async def awrap_model_call(self, request: ModelRequest, handler):
        result = await self._aroute_call(request, handler)
        if self.recorder is None:
            return result
        return await asyncio.to_thread(self._recorded, request, result)

    @staticmethod
    def _user_id(request: ModelRequest) -> str | None:
        runtime = getattr(request, "runtime", None)
        return run_ids(getattr(runtime, "context", None), _run_config(), runtime)[0]

    def _route_call(self, request: ModelRequest, handler):
        query = _last_query(request.messages)
        if query is None:
            return handler(request)
        if self._run_mode(request) == "rules_in_context":
            ruled, decision = self._rules_request(request, query)
            _emit(routed_event(decision, "rules"))
            return self._one_call(handler(ruled), decision, route="rules", adapter=None)
        decision = self.router.route(query, self._user_id(request))
        _emit(routed_event(decision))
        if decision.route == "expert":
            return self._one_call(handler(self._expert_request(request, decision.adapter)), decision,
                                  route="expert", adapter=decision.adapter)
        if decision.route != "critic" or self._run_mode(request) != "uno":
            return self._one_call(handler(request), decision, route="base", adapter=None)
        result = handler(self._unstreamed(request))  # the draft: a messages stream shows the revision only
        response, command = _as_model_response(result)
        i = _last_ai_index(response)
        if i is None or response.result[i].tool_calls or response.structured_response is not None:
            return result
        draft = response.result[i]
        critic, critic_kwargs = self._answering(request, decision.adapter)
        critique = critic.invoke(prompts.critic_messages(query, draft.text), config=internal(None), **critic_kwargs)
        _emit({"uno_event": "critique", "critique": critique.text})
        base, base_kwargs = self._answering(request, None)
        revised = base.invoke(prompts.revise_messages(query, draft.text, critique.text), **base_kwargs)
        return self._finish_critic(response, command, i, draft, critique, revised, decision)

    async def _aroute_call(self, request: ModelRequest, handler):
        query = _last_query(request.messages)
        if query is None:
            return await handler(request)
        if self._run_mode(request) == "rules_in_context":
            ruled, decision = await asyncio.to_thread(self._rules_request, request, query)
            _emit(routed_event(decision, "rules"))
            return self._one_call(await handler(ruled), decision, route="rules", adapter=None)
        decision = await asyncio.to_thread(self.router.route, query, self._user_id(request))
        _emit(routed_event(decision))
        if decision.route == "expert":
            return self._one_call(await handler(self._expert_request(request, decision.adapter)), decision,
                                  route="expert", adapter=decision.adapter)
        if decision.route != "critic" or self._run_mode(request) != "uno":
            return self._one_call(await handler(request), decision, route="base", adapter=None)
        result = await handler(self._unstreamed(request))  # the draft: a messages stream shows the revision only
        response, command = _as_model_response(result)
        i = _last_ai_index(response)
        if i is None or response.result[i].tool_calls or response.structured_response is not None:
            return result
        draft = response.result[i]
        critic, critic_kwargs = self._answering(request, decision.adapter)
        critique = await critic.ainvoke(prompts.critic_messages(query, draft.text), config=internal(None), **critic_kwargs)
        _emit({"uno_event": "critique", "critique": critique.text})
        base, base_kwargs = self._answering(request, None)
        revised = await base.ainvoke(prompts.revise_messages(query, draft.text, critique.text), **base_kwargs)
        return self._finish_critic(response, command, i, draft, critique, revised, decision)

