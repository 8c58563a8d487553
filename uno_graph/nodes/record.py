"""Recording in the graph (with `build_graph(..., recorder=...)`): follow-ups before routing, the answer last.

`with_followups(route, recorder)` wraps the route node: the user messages since the previous answer
are appended to its log before the new query is routed (so a reaction is kept even if the answer
then fails). `make_record(recorder)` is the last node: it records the answer with its route,
cluster and adapter (and the late ensemble's `arm` when it chose the variant) and rewrites the answer (same message id) with ``uno_log_id`` in its
`response_metadata`; a ``{"uno_event": "recorded", "log_id": ...}`` custom stream event follows.
The user id comes from `UnoContext.user_id` (or ``configurable.user_id``), the thread id from
``configurable.thread_id``. Neither node ever fails a run: a failing store is a logged warning.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from uno_graph.capture.recorder import Recorder, run_ids
from uno_graph.state import UnoContext, UnoState


def with_followups(route: Callable[[UnoState, Runtime[UnoContext]], dict], recorder: Recorder):
    """The route node, recording the turn's follow-ups to the previous answer first."""

    def route_and_record_followups(state: UnoState, runtime: Runtime[UnoContext], config: RunnableConfig) -> dict:
        user_id, thread_id = run_ids(runtime.context, config, runtime)
        recorder.record_followup(state["messages"], user_id=user_id, thread_id=thread_id)
        return route(state, runtime)

    return route_and_record_followups


def make_record(recorder: Recorder):
    """The node after every answer: record it and tag it with its log id."""

    def record(state: UnoState, runtime: Runtime[UnoContext], config: RunnableConfig) -> dict:
        answer = state["messages"][-1]
        meta = answer.response_metadata or {}
        user_id, thread_id = run_ids(runtime.context, config, runtime)
        metadata = {"route": meta.get("uno_route"), "cluster": meta.get("uno_cluster"), "adapter": meta.get("uno_adapter")}
        if meta.get("uno_arm"):  # the late ensemble's arm: feedback on this log updates it
            metadata["arm"] = meta["uno_arm"]
        log_id = recorder.record_answer(state["messages"][:-1], answer, user_id=user_id, thread_id=thread_id,
                                        source="graph", metadata=metadata)
        if log_id is None:
            return {}
        get_stream_writer()({"uno_event": "recorded", "log_id": log_id})
        return {"messages": [answer.model_copy(update={"response_metadata": {**meta, "uno_log_id": log_id}})]}

    return record
