"""Reading a LangGraph checkpointer's threads as logs: the history an app already keeps, learned from.

An app compiled with a checkpointer (`InMemorySaver`, `SqliteSaver`, `PostgresSaver`, ...) stores
every thread's conversation in its `messages` channel. That history holds what `uno-graph learn`
needs, with no `Recorder` in the serving path: each answer, and the user's next turn after it.

    >>> records = read_threads(graph)                      # or read_threads(checkpointer)  # doctest: +SKIP
    >>> export_threads(checkpointer, "runs/demo/threads.jsonl")                            # doctest: +SKIP
    ... # then: uno-graph learn runs/demo/threads.jsonl --workdir runs/next

Design. `checkpointer.list(None)` yields checkpoints across threads; the latest root checkpoint of
each `thread_id` (checkpoint ids grow with time) holds the whole conversation. It is cut into the
records the `Recorder` writes, so a thread read here and a thread recorded live teach the same
thing:

- one record per final answer (an AI message with text and no tool calls) that follows a user turn;
- its messages: the last user turn before the answer, the tool calls and tool results after that
  turn (as `uno_graph.logs` reads agent traces), the answer as text, then the user turns that came
  next, up to the following answer: the complaint, correction or thanks learned from;
- `user_id` from the checkpoint metadata (LangGraph copies `configurable.user_id` there) or config;
  `metadata` with `user_id`, `thread_id`, `checkpoint_id` and `source: "checkpointer"`;
- a stable id per answer (`<thread_id>/<message id>`), so reading the threads again after more
  turns gives the same ids, and incremental runs see a grown follow-up as changed content.

Subgraph checkpoints (a non-empty `checkpoint_ns`) are skipped: the root graph's messages are the
conversation the user saw. A thread that ended in tool calls with no final answer yields nothing for
that turn. Threads give no ratings or edits; those still come through a `Recorder`'s feedback.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages, convert_to_openai_messages
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from uno_graph.capture.recorder import _is_answer, _text
from uno_graph.errors import ConfigError

log = logging.getLogger(__name__)

SOURCE = "checkpointer"


def checkpointer_of(source: Any) -> BaseCheckpointSaver:
    """The checkpointer itself, or the one a compiled graph was compiled with."""
    if isinstance(source, BaseCheckpointSaver):
        return source
    saver = getattr(source, "checkpointer", None)
    if isinstance(saver, BaseCheckpointSaver):
        return saver
    raise ConfigError(f"cannot read threads from a {type(source).__name__}: give a LangGraph checkpointer "
                      "(InMemorySaver, SqliteSaver, ...) or a graph compiled with `checkpointer=`")


def latest_checkpoints(checkpointer: BaseCheckpointSaver) -> list[CheckpointTuple]:
    """Each thread's newest root checkpoint, threads in the order the checkpointer lists them."""
    latest: dict[str, CheckpointTuple] = {}
    for item in checkpointer.list(None):
        configurable = item.config.get("configurable") or {}
        thread_id = configurable.get("thread_id")
        if thread_id is None or configurable.get("checkpoint_ns", ""):
            continue
        key = str(thread_id)
        if key not in latest or item.checkpoint["id"] > latest[key].checkpoint["id"]:
            latest[key] = item
    return list(latest.values())


def _user_id(item: CheckpointTuple) -> str | None:
    """`user_id` of the checkpoint's metadata, else of its config's `configurable` (None if neither)."""
    value = (item.metadata or {}).get("user_id") or (item.config.get("configurable") or {}).get("user_id")
    return None if value is None else str(value)


def thread_records(messages: Sequence[Any], *, thread_id: str, user_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Log-format records of one conversation: one per final answer to a user turn (see module docstring)."""
    msgs: list[BaseMessage] = convert_to_messages(list(messages))
    answers = [i for i, m in enumerate(msgs) if _is_answer(m)]
    records: list[dict[str, Any]] = []
    for n, at in enumerate(answers):
        previous = answers[n - 1] if n else -1
        users = [i for i in range(previous + 1, at) if isinstance(msgs[i], HumanMessage)]
        if not users or not _text(msgs[users[-1]]).strip():
            continue  # an answer nobody asked for (a greeting), or to a turn of only images: nothing to learn
        end = answers[n + 1] if n + 1 < len(answers) else len(msgs)
        followups = [{"role": "user", "content": _text(m)} for m in msgs[at + 1:end]
                     if isinstance(m, HumanMessage) and _text(m).strip()]
        answer = msgs[at]
        records.append({
            "id": f"{thread_id}/{answer.id or n}",
            "user_id": user_id,
            "messages": [*convert_to_openai_messages(msgs[users[-1]:at]),
                         {"role": "assistant", "content": _text(answer)}, *followups],
            "feedback": {},
            "metadata": {"user_id": user_id, "thread_id": thread_id, **(metadata or {}), "source": SOURCE},
        })
    return records


def read_threads(source: Any, *, messages_key: str = "messages") -> list[dict[str, Any]]:
    """Log-format records of every thread a checkpointer (or a compiled graph's) holds.

    `messages_key` names the state channel with the conversation (`MessagesState`'s `messages`);
    a thread without it is skipped with a warning.
    """
    records: list[dict[str, Any]] = []
    for item in latest_checkpoints(checkpointer_of(source)):
        thread_id = str(item.config["configurable"]["thread_id"])
        messages = item.checkpoint.get("channel_values", {}).get(messages_key)
        if not messages:
            log.warning("thread %r has no %r channel in its latest checkpoint; skipped", thread_id, messages_key)
            continue
        records += thread_records(messages, thread_id=thread_id, user_id=_user_id(item),
                                  metadata={"checkpoint_id": item.checkpoint["id"]})
    return records


def export_threads(source: Any, path: str | Path, *, messages_key: str = "messages") -> int:
    """Write `read_threads(source)` as the JSONL `uno-graph learn` reads (replacing `path`); returns how many.

    The file is written beside its final name and renamed over it, so a crash never leaves half a file
    for `learn` to read.
    """
    records = read_threads(source, messages_key=messages_key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(records)


__all__ = ["checkpointer_of", "export_threads", "latest_checkpoints", "read_threads", "thread_records"]
