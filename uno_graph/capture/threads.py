"""Reading a LangGraph checkpointer's threads as logs: the history an app already keeps, learned from.

An app compiled with a checkpointer (`InMemorySaver`, `SqliteSaver`, `PostgresSaver`, ...) stores
every thread's conversation in its `messages` channel. That history holds what `uno-graph learn`
needs, with no `Recorder` in the serving path: each answer, and the user's next turn after it.

    >>> records = read_threads(graph)                      # or read_threads(checkpointer)  # doctest: +SKIP
    >>> export_threads(checkpointer, "runs/demo/threads.jsonl")                            # doctest: +SKIP
    ... # then: uno-graph learn runs/demo/threads.jsonl --workdir runs/next
    >>> read_threads("app/checkpoints.sqlite")             # a SqliteSaver's file, read-only # doctest: +SKIP

The command line does the same for a `SqliteSaver` file (`pip install 'uno-graph[threads]'`):
`uno-graph export-threads CHECKPOINT_DB OUT.jsonl`, or `uno-graph learn --threads CHECKPOINT_DB`;
and for any other checkpointer by its import path, `--checkpointer MODULE:NAME` on both commands
(a saver, a graph compiled with one, a context manager such as `PostgresSaver.from_conn_string(URL)`
or a function of no arguments returning one: `uno_graph.capture.checkpointer_path`).

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

A `SqliteSaver` file is opened read-only, so a running app's database is read where it is and never
written: `SqliteSaver.setup()` would switch the file to WAL and create missing tables, so the schema
is checked here instead and setup is skipped. SQLite may leave the `-wal`/`-shm` files a reader needs
beside the file; its content is untouched.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages, convert_to_openai_messages
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from uno_graph.capture.recorder import _is_answer, _text
from uno_graph.errors import ConfigError, LogFormatError, require
from uno_graph.workdir import atomic_write_text

log = logging.getLogger(__name__)

SOURCE = "checkpointer"
SQLITE_FIX = "give the file the app's SqliteSaver was opened on (SqliteSaver.from_conn_string(PATH))"
_CHECKPOINT_COLUMNS = {"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type", "checkpoint",
                       "metadata"}


def checkpointer_of(source: Any) -> BaseCheckpointSaver:
    """The checkpointer itself, or the one a compiled graph was compiled with."""
    if isinstance(source, BaseCheckpointSaver):
        return source
    saver = getattr(source, "checkpointer", None)
    if isinstance(saver, BaseCheckpointSaver):
        return saver
    raise ConfigError(f"cannot read threads from a {type(source).__name__}: give a LangGraph checkpointer "
                      "(InMemorySaver, SqliteSaver, ...) or a graph compiled with `checkpointer=`")


@contextmanager
def sqlite_checkpointer(path: str | os.PathLike[str]) -> Iterator[BaseCheckpointSaver]:
    """A `SqliteSaver` reading the database file `path` read-only (see the module docstring).

    Raises:
        LogFormatError: no file at `path`, or it is not a SqliteSaver database (or cannot be read);
            the message names the path and what to give instead.
        MissingDependencyError: `langgraph-checkpoint-sqlite` is not installed.
    """
    sqlite_saver = require("langgraph.checkpoint.sqlite", "threads").SqliteSaver
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"no checkpoint database at {path}; {SQLITE_FIX}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        columns = {table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                   for table in ("checkpoints", "writes")}
        if not _CHECKPOINT_COLUMNS <= columns["checkpoints"] or not columns["writes"]:
            raise LogFormatError(f"{path} is not a SqliteSaver checkpoint database (no checkpoints and writes "
                                 f"tables); {SQLITE_FIX}")
        saver = sqlite_saver(conn)
        saver.is_setup = True  # its setup() writes; the tables are there
        saver._has_task_path = "task_path" in columns["writes"]  # a file from before the column: what setup() decides
        yield saver
    except sqlite3.DatabaseError as exc:  # not a database, a corrupt one, or locked past the timeout
        raise LogFormatError(f"cannot read {path} as a SqliteSaver checkpoint database ({exc}); {SQLITE_FIX}") from exc
    finally:
        conn.close()


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

    `source` may also be the path of a `SqliteSaver` database file, read with `sqlite_checkpointer`.
    `messages_key` names the state channel with the conversation (`MessagesState`'s `messages`);
    a thread without it is skipped with a warning.
    """
    if isinstance(source, (str, os.PathLike)):
        with sqlite_checkpointer(source) as saver:
            return read_threads(saver, messages_key=messages_key)
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


def write_records(records: Sequence[dict[str, Any]], path: str | Path) -> int:
    """Write log-format records as the JSONL `uno-graph learn` reads (replacing `path`); returns how many.

    The file is written beside its final name and renamed over it, so a crash never leaves half a file
    for `learn` to read.
    """
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))
    return len(records)


def export_threads(source: Any, path: str | Path, *, messages_key: str = "messages") -> int:
    """Write `read_threads(source)` to `path` with `write_records`; returns how many."""
    return write_records(read_threads(source, messages_key=messages_key), path)


def thread_count(records: Sequence[dict[str, Any]]) -> int:
    """How many threads `records` come from (threads with no answered turn give no record)."""
    return len({r["metadata"]["thread_id"] for r in records})


__all__ = ["checkpointer_of", "export_threads", "latest_checkpoints", "read_threads", "sqlite_checkpointer",
           "thread_count", "thread_records", "write_records"]
