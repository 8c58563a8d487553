"""A `LogStore` over a LangGraph `BaseStore` (`InMemoryStore`, `PostgresStore`, the platform's store).

An app that already runs a LangGraph store keeps its logs there, next to its other long-term data:

    >>> from langgraph.store.memory import InMemoryStore                         # doctest: +SKIP
    >>> logs = BaseStoreLogStore(InMemoryStore())                                # doctest: +SKIP
    >>> graph = system.graph(recorder=Recorder(logs))                            # doctest: +SKIP
    >>> logs.store.get(("uno_logs",), log_id).value                              # the log-format record

Design. Unlike the JSONL event file, a key-value store updates in place, so each log is one item:
key = log id, value = the record in the README's log format (what `export` writes). A follow-up or
feedback is a read-modify-write of that item (serialised by a lock within the process; two
processes updating the *same* log at the same instant could lose one update). The latest answer of
each (user, thread) is a small pointer item under ``namespace + ("threads",)``, so a follow-up in a
thread the process has not seen (after a restart) still finds its answer. Items are written with
``index=False``: logs are not embedded even when the store has a vector index.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from uno_graph.capture.store import UnknownLogError, merge_feedback

DEFAULT_NAMESPACE = ("uno_logs",)


class BaseStoreLogStore:
    """Records as items of a LangGraph `BaseStore`, one per log id, under `namespace`.

    Args:
        store: any `langgraph.store.base.BaseStore` (its sync methods are used).
        namespace: where the records go (default ``("uno_logs",)``); thread pointers go under
            ``namespace + ("threads",)``.
    """

    def __init__(self, store: Any, namespace: tuple[str, ...] = DEFAULT_NAMESPACE) -> None:
        self.store = store
        self.namespace = tuple(namespace)
        self._threads_ns = (*self.namespace, "threads")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BaseStoreLogStore({type(self.store).__name__}, namespace={self.namespace})"

    def add_answer(self, record: dict[str, Any]) -> None:
        self.store.put(self.namespace, record["id"], record, index=False)
        thread_id = (record.get("metadata") or {}).get("thread_id")
        if thread_id is not None:
            self.store.put(self._threads_ns, _thread_key(record.get("user_id"), str(thread_id)),
                           {"log_id": record["id"]}, index=False)

    def add_followup(self, log_id: str, message: dict[str, Any]) -> None:
        with self._lock:
            record = self._require(log_id)
            self.store.put(self.namespace, log_id, {**record, "messages": [*record["messages"], message]}, index=False)

    def add_feedback(self, log_id: str, feedback: dict[str, Any]) -> None:
        with self._lock:
            record = self._require(log_id)
            merged = merge_feedback(record.get("feedback") or {}, feedback)
            self.store.put(self.namespace, log_id, {**record, "feedback": merged}, index=False)

    def last_in_thread(self, user_id: str | None, thread_id: str) -> str | None:
        item = self.store.get(self._threads_ns, _thread_key(user_id, thread_id))
        return None if item is None else item.value.get("log_id")

    def get(self, log_id: str) -> dict[str, Any] | None:
        item = self.store.get(self.namespace, log_id)
        return None if item is None else dict(item.value)

    def records(self, page: int = 500) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (by `metadata.recorded_at`)."""
        found, offset = [], 0
        while True:
            items = self.store.search(self.namespace, limit=page, offset=offset)
            found.extend(dict(i.value) for i in items if tuple(i.namespace) == self.namespace)
            if len(items) < page:
                break
            offset += page
        found.sort(key=lambda r: str((r.get("metadata") or {}).get("recorded_at") or ""))
        return iter(found)

    def _require(self, log_id: str) -> dict[str, Any]:
        record = self.get(log_id)
        if record is None:
            raise UnknownLogError(f"no recorded answer has log id {log_id!r} in namespace {self.namespace}; use the id "
                                  "returned with the answer (response_metadata['uno_log_id'])")
        return record


def _thread_key(user_id: str | None, thread_id: str) -> str:
    return hashlib.sha256(json.dumps([user_id, thread_id]).encode()).hexdigest()[:32]


__all__ = ["DEFAULT_NAMESPACE", "BaseStoreLogStore"]
