"""`UnoMemoryStore`: a read-only LangGraph `BaseStore` view of what a work directory learned.

LangChain's memory classes kept what an app learned about its users as text in the prompt. In a
LangGraph app that long-term memory lives in a `BaseStore` (`runtime.store`, `get_store()`), next to
the checkpointer that keeps each thread. This view puts what `uno-graph learn` distilled in that
place, so tools, nodes and middleware read it with the store API they already use:

* ``("uno", "clusters")``: one item per cluster, key = cluster id, value = its row of the cluster
  table (route, adapter, size, radius, ...; ``users`` as a list), searched by its centroid.
* ``("uno", "rules", <cluster id>)``: one item per (log, rule) in Chroma, key = the rule's id, value
  ``{"rule", "cluster_id", "log_id", "user_id"}``, searched by the rule's stored embedding.
* ``("uno", "feedback", <user id>)``: one item per log of that user that reached the distill stage,
  key = log id, value ``{"log_id", "query", "answer", "feedback", "rating", "edited_response",
  "rules", "cluster_id"}``, searched by the query and feedback text. Logs without a user id are
  left out (they have no namespace).

    >>> store = UnoMemoryStore.from_workdir("runs/demo")                            # doctest: +SKIP
    >>> store.list_namespaces(prefix=("uno", "rules"))                              # doctest: +SKIP
    >>> store.search(("uno", "rules"), query="How do I boil an egg?", limit=3)      # doctest: +SKIP
    >>> graph = builder.compile(checkpointer=InMemorySaver(), store=store)          # doctest: +SKIP

Why read-only: the learned data has one writer, `uno-graph learn` (and `forget`), which keeps the
stage outputs, Chroma and the adapters consistent; a write through this view would bypass all of it,
so `put` and `delete` raise `ReadOnlyStoreError`. New answers and feedback go to a recorder
(`uno_graph.capture`), which a later `learn` reads. The view is a snapshot taken when it is built;
`refresh()` reads the work directory again (after a `learn` or a `forget`). Items' ``created_at``
and ``updated_at`` are the time of that read. A query search embeds the query with the work
directory's embedder (loaded on the first query search) and scores items by cosine similarity.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from uno_graph.errors import ConfigError, UnoGraphError
from uno_graph.workdir import read_jsonl

ROOT = "uno"
CLUSTERS_NS = (ROOT, "clusters")
RULES_NS = (ROOT, "rules")
FEEDBACK_NS = (ROOT, "feedback")


class ReadOnlyStoreError(UnoGraphError, PermissionError):
    """A write (put / delete) was sent to the read-only view of a work directory."""


_OPERATORS = {"$eq": operator.eq, "$ne": operator.ne, "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt,
              "$lte": operator.le}


def _operator_ok(value: Any, name: str, wanted: Any) -> bool:
    if name not in _OPERATORS:
        raise ConfigError(f"filter operator {name!r} is not supported; use one of {', '.join(_OPERATORS)}")
    try:
        return bool(_OPERATORS[name](value, wanted))
    except TypeError:  # None, or a value of another type: not a match
        return False


def matches_filter(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """Whether an item's value passes a store filter: ``{field: value}`` (equal, or contained in a list
    field) or ``{field: {"$gt": x, ...}}``."""
    for key, wanted in (filter or {}).items():
        have = value.get(key)
        if isinstance(wanted, Mapping):
            if not all(_operator_ok(have, op, arg) for op, arg in wanted.items()):
                return False
        elif isinstance(have, list) and not isinstance(wanted, list):
            if wanted not in have:
                return False
        elif have != wanted:
            return False
    return True


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(p == "*" or p == n for p, n in zip(path, part))


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(vector) or 1.0)
    return (matrix @ vector) / np.where(norms == 0, 1.0, norms)


class UnoMemoryStore(BaseStore):
    """What a work directory learned, as a read-only LangGraph store (see the module).

    Args:
        store: the work directory's `UnoStore` (Chroma: cluster table, centroids, rules).
        workdir: the work directory, for its stage outputs (feedback items) and its embedder's name;
            None leaves the feedback namespaces empty.
        embedder: the query embedder (anything with ``encode(list[str])``); default: the one named in
            the work directory's system.json, loaded on the first query search.
    """

    supports_ttl = False

    def __init__(self, store: Any, workdir: str | Path | None = None, *, embedder: Any = None) -> None:
        self.store = store
        self.workdir = Path(workdir) if workdir is not None else None
        self._embedder = embedder
        self._lock = threading.Lock()
        self.refresh()

    @classmethod
    def from_workdir(cls, workdir: str | Path, *, chroma_url: str | None = None, embedder: Any = None) -> UnoMemoryStore:
        """The view of a work directory (its embedded Chroma store, or the `chroma run` server at `chroma_url`).

        The embedded store is for one process: a serving process that already has a `UnoSystem` uses
        `from_system` instead."""
        from uno_graph.store import UnoStore

        root = Path(workdir)
        if not (root / "system.json").exists():
            raise ConfigError(f"{root} is not a work directory (no system.json); run `uno-graph learn LOGS --workdir {root}`")
        store = UnoStore.connect(chroma_url) if chroma_url else UnoStore.persistent(root / "chroma")
        return cls(store, root, embedder=embedder)

    @classmethod
    def from_system(cls, system: Any) -> UnoMemoryStore:
        """The view of a loaded `UnoSystem` (its store, work directory and query embedder)."""
        return cls(system.store, system.root, embedder=system.router.embedder)

    # -- reading the work directory ----------------------------------------------------------------

    def refresh(self) -> None:
        """Read the cluster table, the rules and the stage outputs again (after a `learn` or `forget`)."""
        now = datetime.now(timezone.utc)
        items: dict[tuple[str, ...], dict[str, Item]] = {}
        vectors: dict[tuple[tuple[str, ...], str], np.ndarray] = {}

        def add(namespace: tuple[str, ...], key: str, value: dict[str, Any], vector: Any = None) -> None:
            items.setdefault(namespace, {})[key] = Item(value=value, key=key, namespace=namespace,
                                                        created_at=now, updated_at=now)
            if vector is not None:
                vectors[(namespace, key)] = np.asarray(vector, dtype=np.float32)

        from uno_graph.router import users_of

        ids, centroids, rows = self.store.read_clusters()
        for i, (cid, row) in enumerate(zip(ids, rows)):
            add(CLUSTERS_NS, cid, {**row, "users": sorted(users_of(row))}, centroids[i] if len(centroids) else None)
        got = self.store.rules.get(include=["documents", "metadatas", "embeddings"])
        embeddings = got.get("embeddings")
        for j, (rid, doc, meta) in enumerate(zip(got["ids"], got["documents"], got["metadatas"])):
            meta = dict(meta or {})
            cid = meta.get("cluster_id")
            if not cid or not doc:
                continue
            value = {"rule": doc, "cluster_id": cid, "log_id": meta.get("log_id"), "user_id": meta.get("user_id")}
            add((*RULES_NS, str(cid)), rid, value, embeddings[j] if embeddings is not None else None)
        for value in self._feedback_values():
            add((*FEEDBACK_NS, str(value.pop("user_id"))), value["log_id"], value)
        with self._lock:
            self._items, self._vectors = items, vectors

    def _feedback_values(self) -> list[dict[str, Any]]:
        if self.workdir is None:
            return []
        stages = self.workdir / "stages"
        cluster_of = {member: row["id"] for row in read_jsonl(stages / "clusters.jsonl") for member in row.get("members", [])}
        values = []
        for rec in read_jsonl(stages / "distill.jsonl"):
            if rec.get("user_id") in (None, "") or not rec.get("id"):
                continue
            values.append({"user_id": rec["user_id"], "log_id": rec["id"], "query": rec.get("query"),
                           "answer": rec.get("answer"), "feedback": rec.get("feedback"), "rating": rec.get("rating"),
                           "edited_response": rec.get("edited"), "rules": list(rec.get("rules") or []),
                           "cluster_id": cluster_of.get(rec["id"])})
        return values

    @property
    def embedder(self) -> Any:
        """The query embedder (loaded on first use from the work directory's system.json)."""
        if self._embedder is None:
            if self.workdir is None:
                raise ConfigError("a query search needs an embedder: pass embedder= (or build the view with from_workdir)")
            from uno_graph.embeddings import shared_embedder
            from uno_graph.graph import load_config

            self._embedder = shared_embedder(load_config(self.workdir).embedder)
        return self._embedder

    # -- the BaseStore operations ----------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if any(isinstance(op, PutOp) for op in ops):
            raise ReadOnlyStoreError(
                "UnoMemoryStore is a read-only view of what `uno-graph learn` learned; write app data to another "
                "store, record answers and feedback with a Recorder (uno_graph.capture), and `learn` again")
        with self._lock:
            items, vectors = self._items, self._vectors
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(items.get(tuple(op.namespace), {}).get(op.key))
            elif isinstance(op, SearchOp):
                results.append(self._search(items, vectors, op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(items, op))
            else:
                raise ConfigError(f"unsupported store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        import asyncio

        return await asyncio.to_thread(self.batch, list(ops))

    def _search(self, items: dict[tuple[str, ...], dict[str, Item]],
                vectors: dict[tuple[tuple[str, ...], str], np.ndarray], op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        found = [item for namespace in sorted(items) if namespace[: len(prefix)] == prefix
                 for _, item in sorted(items[namespace].items()) if matches_filter(item.value, op.filter)]
        scores: list[float | None] = [None] * len(found)
        if op.query:
            query = np.asarray(self.embedder.encode([op.query])[0], dtype=np.float32)
            missing = [i for i, item in enumerate(found) if (item.namespace, item.key) not in vectors]
            if missing:  # feedback items: embedded on the first query that reaches them
                encoded = self.embedder.encode([_search_text(found[i].value) for i in missing])
                with self._lock:
                    for i, vector in zip(missing, encoded):
                        vectors[(found[i].namespace, found[i].key)] = np.asarray(vector, dtype=np.float32)
            if found:
                matrix = np.stack([vectors[(item.namespace, item.key)] for item in found])
                if matrix.shape[1] == query.shape[0]:
                    scores = [float(s) for s in _cosine(matrix, query)]
            order = sorted(range(len(found)), key=lambda i: -math.inf if scores[i] is None else -scores[i])
            found, scores = [found[i] for i in order], [scores[i] for i in order]
        window = slice(op.offset, op.offset + op.limit)
        return [SearchItem(namespace=item.namespace, key=item.key, value=item.value, created_at=item.created_at,
                           updated_at=item.updated_at, score=score)
                for item, score in zip(found[window], scores[window])]

    @staticmethod
    def _list_namespaces(items: dict[tuple[str, ...], dict[str, Item]], op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = [ns for ns in items if all(_namespace_matches(c, ns) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            namespaces = [ns[: op.max_depth] for ns in namespaces]
        unique = sorted(set(namespaces))
        return unique[op.offset: op.offset + op.limit]


def _search_text(value: Mapping[str, Any]) -> str:
    """The text a feedback (or any other) item is searched by."""
    if value.get("rule"):
        return str(value["rule"])
    return "\n".join(str(value[k]) for k in ("query", "feedback") if value.get(k)) or str(value.get("log_id", ""))


__all__ = ["CLUSTERS_NS", "FEEDBACK_NS", "RULES_NS", "ReadOnlyStoreError", "UnoMemoryStore", "matches_filter"]
