"""Where recorded answers go: the `LogStore` protocol and its default, an append-only JSONL event file.

Design. A served answer is not a finished log: the user's next turn (the follow-up) and their
thumbs, edit or comment arrive later, possibly in another process (`uno-graph feedback`, a
`POST /v1/feedback`). Rewriting a record in place for each of these would need a database or a
rewrite of the file, and a crash half-way would lose records. So the default store never rewrites:
each fact is one self-contained line appended to an *event file*:

    {"event": "answer",   "ts": "2025-...Z", "record": {"id", "user_id", "messages", "feedback", "metadata"}}
    {"event": "followup", "ts": "...", "log_id": "...", "message": {"role": "user", "content": "..."}}
    {"event": "feedback", "ts": "...", "log_id": "...", "feedback": {"rating": -1, "comment": "..."}}

An append is one `write` on an ``O_APPEND`` descriptor under an advisory `flock` (so processes
sharing the file never interleave lines), followed by `os.fsync`: once `add_*` returns, the line
survives a crash of the process or the machine. A line cut short by a crash is skipped (with a
warning) when the file is read, and the next append starts on a fresh line.

`fold` turns events into records in the README's log format: the answer event's record, follow-ups
appended to its `messages` in order, and `feedback` holding the latest value given for each field.
`export(store, path)` writes those records as the JSONL that `uno-graph learn` reads.

A store is anything with the six methods of `LogStore` (`add_answer`, `add_followup`,
`add_feedback`, `last_in_thread`, `get`, `records`); `uno_graph.capture.langgraph_store` keeps
records in a LangGraph `BaseStore`, and a database table of records (one row per log, updated for
follow-ups and feedback) fits the same protocol.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from uno_graph.errors import UnoGraphError

try:  # advisory locks keep lines of concurrent writer processes apart (POSIX)
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer process per file
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

EVENTS = ("answer", "followup", "feedback")


class UnknownLogError(UnoGraphError, KeyError):
    """No recorded answer has this log id (feedback or a follow-up for it cannot be attached)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


@runtime_checkable
class LogStore(Protocol):
    """What the recorder needs from a store. Records are dicts in the README's log format."""

    def add_answer(self, record: dict[str, Any]) -> None:
        """Store a new record: `messages` end with the assistant's answer; `metadata` holds
        `user_id`, `thread_id`, `route`, `cluster`, `adapter`, `source`, `recorded_at`."""

    def add_followup(self, log_id: str, message: dict[str, Any]) -> None:
        """Append a user message to the record's `messages`; `UnknownLogError` if there is no such record."""

    def add_feedback(self, log_id: str, feedback: dict[str, Any]) -> None:
        """Set the given (already validated) feedback fields; `UnknownLogError` if there is no such record."""

    def last_in_thread(self, user_id: str | None, thread_id: str) -> str | None:
        """The id of the latest answer recorded for this user and thread, or None."""

    def get(self, log_id: str) -> dict[str, Any] | None:
        """The record as it stands (follow-ups and feedback folded in), or None."""

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first."""


def now() -> str:
    """An ISO-8601 UTC timestamp with milliseconds (`2025-01-31T12:00:00.123Z`)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def merge_feedback(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`current` with each field `update` gives (not None) replaced: the latest value of each field wins."""
    return {**current, **{k: v for k, v in update.items() if v is not None}}


def fold(events: Iterable[dict[str, Any]], *, source: str = "events") -> list[dict[str, Any]]:
    """Log-format records from answer, follow-up and feedback events, in the order answers were recorded.

    Events for an id with no answer event, and events of an unknown kind, are skipped with a warning.
    """
    records: dict[str, dict[str, Any]] = {}
    for n, event in enumerate(events, 1):
        kind = event.get("event")
        if kind == "answer":
            record = event["record"]
            records[record["id"]] = {**record, "messages": list(record["messages"]),
                                     "feedback": dict(record.get("feedback") or {})}
            continue
        target = records.get(event.get("log_id"))  # type: ignore[arg-type]
        if kind not in EVENTS or target is None:
            log.warning("%s: event %d (%s for %r) has no recorded answer or is of an unknown kind; skipped",
                        source, n, kind, event.get("log_id"))
        elif kind == "followup":
            target["messages"].append(event["message"])
        else:
            target["feedback"] = merge_feedback(target["feedback"], event["feedback"])
    return list(records.values())


def _exportable(record: dict[str, Any]) -> bool:
    """Whether `uno-graph learn` can use the record: a non-empty question and answer."""
    roles = [(m.get("role"), m.get("content")) for m in record["messages"]]
    return (any(r == "user" and isinstance(c, str) and c.strip() for r, c in roles)
            and any(r == "assistant" and isinstance(c, str) and c.strip() for r, c in roles))


def export(store: LogStore, path: str | Path) -> int:
    """Write `store`'s records to `path` as log-format JSONL (replaced atomically); returns how many.

    Records without a non-empty question or answer (an empty generation) are left out with a warning.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as out:
        for record in store.records():
            if not _exportable(record):
                log.warning("log %s has an empty question or answer; not exported", record.get("id"))
                continue
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


class JsonlLogStore:
    """An append-only JSONL event file (see the module docstring); safe for threads and processes.

    Args:
        path: the event file (created, with its directory, on the first record).
        fsync: `os.fsync` after each append (default), so a recorded line survives a crash; False
            trades that for speed on slow disks.

    The constructor reads the file once to index its log ids and the latest answer of each thread
    (later appends, by any process, are indexed as they are needed); `records()` reads it whole.

    Example:
        >>> store = JsonlLogStore("runs/demo/events.jsonl")             # doctest: +SKIP
        >>> export(store, "runs/demo/recorded_logs.jsonl")              # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._ids: set[str] = set()  # an index of the file, so feedback for an unknown id is refused cheaply
        self._threads: dict[tuple[str | None, str], str] = {}
        self._offset = 0  # bytes of the file indexed so far
        self._refresh()

    def __repr__(self) -> str:
        return f"JsonlLogStore({str(self.path)!r})"

    # -- LogStore --------------------------------------------------------------------------------

    def add_answer(self, record: dict[str, Any]) -> None:
        self._append({"event": "answer", "ts": now(), "record": record})
        with self._lock:
            self._index(record)

    def add_followup(self, log_id: str, message: dict[str, Any]) -> None:
        self._require(log_id)
        self._append({"event": "followup", "ts": now(), "log_id": log_id, "message": message})

    def add_feedback(self, log_id: str, feedback: dict[str, Any]) -> None:
        self._require(log_id)
        self._append({"event": "feedback", "ts": now(), "log_id": log_id, "feedback": feedback})

    def last_in_thread(self, user_id: str | None, thread_id: str) -> str | None:
        self._refresh()  # another process may have answered in this thread since
        return self._threads.get((user_id, thread_id))

    def get(self, log_id: str) -> dict[str, Any] | None:
        found = fold((e for e in self.events() if e.get("log_id", e.get("record", {}).get("id")) == log_id),
                     source=str(self.path))
        return found[0] if found else None

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(fold(self.events(), source=str(self.path)))

    # -- the file --------------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any]]:
        """Every complete event line of the file, in order (bad lines skipped with a warning)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    log.debug("%s:%d: incomplete last line (being written, or cut by a crash); skipped", self.path, n)
                    break
                event = self._parse(raw, f"{self.path}:{n}")
                if event is not None:
                    yield event

    def export(self, path: str | Path) -> int:
        """Write the folded records as log-format JSONL (see `export`)."""
        return export(self, path)

    def _parse(self, raw: bytes, where: str) -> dict[str, Any] | None:
        if not raw.strip():
            return None
        try:
            event = json.loads(raw)
            if not isinstance(event, dict) or event.get("event") not in EVENTS:
                raise ValueError("not an event object")
            if event["event"] == "answer":
                str(event["record"]["id"])
            return event
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not a readable event (%s; a write cut short by a crash?); skipped", where, exc)
            return None

    def _append(self, event: dict[str, Any]) -> None:
        data = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # the previous writer crashed mid-line: start a fresh one
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        if created and self.fsync:
            _fsync_dir(self.path.parent)

    def _index(self, record: dict[str, Any]) -> None:
        self._ids.add(record["id"])
        thread_id = (record.get("metadata") or {}).get("thread_id")
        if thread_id is not None:
            self._threads[(record.get("user_id"), str(thread_id))] = record["id"]

    def _refresh(self) -> None:
        """Index the answer events appended since the last look (by this or another process)."""
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break
                    where = f"{self.path} at byte {self._offset}"
                    self._offset += len(raw)
                    event = self._parse(raw, where) if b'"answer"' in raw else None
                    if event is not None and event["event"] == "answer":
                        self._index(event["record"])

    def _require(self, log_id: str) -> None:
        if log_id not in self._ids:
            self._refresh()
        if log_id not in self._ids:
            raise UnknownLogError(f"no recorded answer has log id {log_id!r} in {self.path}; use the id returned "
                                  "with the answer (response_metadata['uno_log_id'], or the completion id over HTTP)")


def _fsync_dir(directory: Path) -> None:
    """Make a newly created file's directory entry durable too."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


__all__ = ["EVENTS", "JsonlLogStore", "LogStore", "UnknownLogError", "export", "fold", "merge_feedback", "now"]
