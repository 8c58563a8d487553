"""ChromaDB holds what routing needs: cluster centroids with the cluster table, and the rules.

Two collections, both given explicit vectors (Chroma's default embedding function would try to
download a model):

* ``uno_clusters``: one entry per cluster; embedding = centroid (query space), metadata = the
  cluster table row: size, radius, route (expert | critic | base), adapter path, gap and verifier
  numbers. A cluster's route names an adapter only after that adapter is fully published.
* ``uno_rules``: one entry per (log, rule); document = rule text, metadata = cluster, log, user.

Space is ``l2`` as in the reference (its centroids are not unit vectors, so cosine would re-rank).
Chroma reports *squared* L2; this module returns plain L2 distances.

The same store runs embedded (`UnoStore.persistent`, one process) or as a `chroma run` server
(`UnoStore.http` / `UnoStore.connect("http://host:port")`) shared by the trainer and any number of
serving processes; `copy_to` pushes a work directory's embedded store into a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from uno_graph.errors import ArtifactError, ConfigError

CLUSTERS = "uno_clusters"
RULES = "uno_rules"
RULES_REBUILD = "uno_rules_rebuild"  # the rules' next copy while `forget_rules` swaps it in
_SPACE = {"hnsw:space": "l2"}


def _settings():
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _mirror(source, target, batch: int) -> None:
    """Upsert every entry of one collection into another, then delete the target's extra entries."""
    got = source.get(include=["embeddings", "metadatas", "documents"])
    ids = list(got["ids"])
    documents = got.get("documents")
    has_documents = documents is not None and any(d is not None for d in documents)
    for start in range(0, len(ids), batch):
        part = slice(start, start + batch)
        target.upsert(ids=ids[part], embeddings=np.asarray(got["embeddings"][part], dtype=np.float32).tolist(),
                      metadatas=[dict(m) if m else None for m in got["metadatas"][part]],
                      documents=list(documents[part]) if has_documents else None)
    keep = set(ids)
    stale = [i for i in target.get(include=[])["ids"] if i not in keep]
    for start in range(0, len(stale), batch):
        target.delete(ids=stale[start:start + batch])


@dataclass(frozen=True)
class Neighbour:
    cluster_id: str
    distance: float
    meta: dict[str, Any]


class UnoStore:
    """Cluster table, centroids and rules in one Chroma database.

    Example:
        >>> store = UnoStore.persistent("runs/demo/chroma")          # doctest: +SKIP
        >>> store.nearest(query_vector)[0].cluster_id                # doctest: +SKIP
    """

    def __init__(self, client) -> None:
        self.client = client
        self.path: Path | None = None  # the directory of an embedded store (`persistent`)
        self.clusters = client.get_or_create_collection(CLUSTERS, metadata=_SPACE, embedding_function=None)
        names = self._collection_names()
        if RULES not in names and RULES_REBUILD in names:  # `forget_rules` stopped between drop and rename
            self.rules = client.get_collection(RULES_REBUILD, embedding_function=None)  # its id survives the rename
        else:
            self.rules = client.get_or_create_collection(RULES, metadata=_SPACE, embedding_function=None)

    @classmethod
    def persistent(cls, path: str | Path) -> UnoStore:
        """Embedded store in a directory (one process at a time; see `http` for several)."""
        import chromadb

        Path(path).mkdir(parents=True, exist_ok=True)
        store = cls(chromadb.PersistentClient(path=str(path), settings=_settings()))
        store.path = Path(path)
        return store

    @classmethod
    def http(cls, host: str = "127.0.0.1", port: int = 8000) -> UnoStore:
        """A `chroma run` server shared by the trainer and any number of serving processes."""
        import chromadb

        return cls(chromadb.HttpClient(host=host, port=port, settings=_settings()))

    @classmethod
    def connect(cls, url: str) -> UnoStore:
        """A store at `http(s)://host:port` (a `chroma run` server).

        Example:
            >>> store = UnoStore.connect("http://127.0.0.1:8000")      # doctest: +SKIP
        """
        import chromadb

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"chroma url {url!r} is invalid; expected http://HOST:PORT or https://HOST:PORT "
                              "(the address `chroma run --host HOST --port PORT` listens on)")
        port = parts.port or (443 if parts.scheme == "https" else 8000)
        return cls(chromadb.HttpClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                                       settings=_settings()))

    def copy_to(self, other: UnoStore) -> None:
        """Make `other` hold exactly this store's clusters and rules (e.g. push a work directory's
        embedded store into a `chroma run` server). Entries `other` has and this store lacks are deleted.

        Example:
            >>> UnoStore.persistent("runs/demo/chroma").copy_to(UnoStore.connect("http://127.0.0.1:8000"))  # doctest: +SKIP
        """
        batch = min(self.client.get_max_batch_size(), other.client.get_max_batch_size())
        _mirror(self.clusters, other.clusters, batch)
        _mirror(self.rules, other.rules, batch)

    # -- cluster table -----------------------------------------------------------------------
    def put_cluster(self, cluster_id: str, centroid: np.ndarray, meta: dict[str, Any]) -> None:
        clean = {k: v for k, v in meta.items() if v is not None}
        self.clusters.upsert(ids=[cluster_id], embeddings=[np.asarray(centroid, dtype=np.float32).tolist()],
                             metadatas=[clean])

    def update_cluster(self, cluster_id: str, **meta: Any) -> None:
        current = self.cluster(cluster_id)
        merged = {**current, **{k: v for k, v in meta.items() if v is not None}}
        self.clusters.update(ids=[cluster_id], metadatas=[merged])

    def cluster(self, cluster_id: str) -> dict[str, Any]:
        got = self.clusters.get(ids=[cluster_id], include=["metadatas"])
        if not got["ids"]:
            raise ArtifactError(f"cluster {cluster_id!r} is not in the store; rerun `uno-graph learn`")
        return dict(got["metadatas"][0])

    def read_clusters(self) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """Every cluster's id, centroid (rows of a float32 matrix) and table row, read in one call."""
        got = self.clusters.get(include=["embeddings", "metadatas"])
        ids = list(got["ids"])
        embeddings = got.get("embeddings")
        centroids = (np.asarray(embeddings, dtype=np.float32) if ids and embeddings is not None
                     else np.zeros((0, 0), dtype=np.float32))
        return ids, centroids, [dict(m or {}) for m in got["metadatas"]]

    def table(self) -> list[dict[str, Any]]:
        """Every cluster row as a dict with its `id`, largest first."""
        got = self.clusters.get(include=["metadatas"])
        rows = [{"id": i, **m} for i, m in zip(got["ids"], got["metadatas"])]
        return sorted(rows, key=lambda r: (-int(r.get("size", 0)), r["id"]))

    def remove_clusters(self, keep: set[str]) -> None:
        stale = [i for i in self.clusters.get(include=[])["ids"] if i not in keep]
        if stale:
            self.clusters.delete(ids=stale)
            self.rules.delete(where={"cluster_id": {"$in": stale}})

    def dimension(self) -> int | None:
        got = self.clusters.get(limit=1, include=["embeddings"])
        embeddings = got.get("embeddings")
        return None if embeddings is None or len(embeddings) == 0 else len(embeddings[0])

    def check_dimension(self, dim: int) -> None:
        stored = self.dimension()
        if stored is not None and stored != dim:
            raise ArtifactError(f"store centroids have {stored} dimensions but the embedder gives {dim}; "
                                "serve with the embedder named in system.json")

    def nearest(self, vector: np.ndarray, k: int = 1) -> list[Neighbour]:
        count = self.clusters.count()
        if count == 0:
            return []
        res = self.clusters.query(query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
                                  n_results=min(k, count), include=["metadatas", "distances"])
        return [Neighbour(cid, math.sqrt(max(d, 0.0)), dict(m))
                for cid, d, m in zip(res["ids"][0], res["distances"][0], res["metadatas"][0])]

    # -- rules ------------------------------------------------------------------------------
    def put_rules(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """rows: {id, rule, cluster_id, log_id, user_id}."""
        if not rows:
            return
        self.rules.upsert(ids=[r["id"] for r in rows], embeddings=np.asarray(vectors, dtype=np.float32).tolist(),
                          documents=[r["rule"] for r in rows],
                          metadatas=[{k: r[k] for k in ("cluster_id", "log_id", "user_id") if r.get(k) is not None} for r in rows])

    def prune_rules(self, keep: set[str]) -> int:
        """Delete every rule row whose id is not in `keep` (logs gone from their cluster); returns how many."""
        stale = [i for i in self.rules.get(include=[])["ids"] if i not in keep]
        batch = self.client.get_max_batch_size()
        for start in range(0, len(stale), batch):
            self.rules.delete(ids=stale[start:start + batch])
        return len(stale)

    def rule_log_ids(self, *, user_id: str) -> set[str]:
        """The log ids of a user's rule rows."""
        got = self.rules.get(where={"user_id": user_id}, include=["metadatas"])
        return {str(m["log_id"]) for m in got["metadatas"] if m and m.get("log_id") is not None}

    def forget_rules(self, *, user_id: str | None = None, log_ids: set[str] | frozenset[str] = frozenset()) -> int:
        """Delete the rule rows of a user and of `log_ids`; returns how many were deleted.

        The rows are deleted by id, in batches, so the collection holds every other rule throughout and a
        run stopped midway is finished by running it again. A delete only appends to Chroma's write-ahead
        log, where the deleted text stays, so the remaining rows are then copied into a fresh collection
        that replaces this one (`_swap_in_fresh_rules`). Serving processes reading rules (the
        rules-in-context baseline, `inspect`) need a new `UnoStore` afterwards."""
        self._finish_rules_swap()
        got = self.rules.get(include=["metadatas"])
        gone = [i for i, m in zip(got["ids"], got["metadatas"]) if m and (
            (user_id is not None and m.get("user_id") == user_id) or m.get("log_id") in log_ids)]
        if not gone:
            return 0
        batch = self.client.get_max_batch_size()
        for start in range(0, len(gone), batch):
            self.rules.delete(ids=gone[start:start + batch])
        self._swap_in_fresh_rules()
        return len(gone)

    def _collection_names(self) -> set[str]:
        return {getattr(c, "name", c) for c in self.client.list_collections()}

    def _swap_in_fresh_rules(self) -> None:
        """Replace the rules collection by a copy of its rows, so Chroma's log forgets deleted text.

        Crash-safe: the copy is built under another name and renamed only after the original is dropped;
        a store opened in between reads the copy, and the next `forget_rules` finishes the swap."""
        fresh = self.client.create_collection(RULES_REBUILD, metadata=_SPACE, embedding_function=None)
        _mirror(self.rules, fresh, self.client.get_max_batch_size())
        self.client.delete_collection(RULES)
        fresh.modify(name=RULES)
        self.rules = fresh

    def _finish_rules_swap(self) -> None:
        """Finish or undo a swap that stopped midway. A copy whose original is gone (or was created again,
        empty, by a store opened at that moment) is complete: it is renamed into place. A copy next to its
        original may be partial and is dropped: the original already lacks the deleted rows."""
        names = self._collection_names()
        if RULES_REBUILD not in names:
            return
        copy = self.client.get_collection(RULES_REBUILD, embedding_function=None)
        if RULES in names:
            original = self.client.get_collection(RULES, embedding_function=None)
            if original.count() or not copy.count():
                self.client.delete_collection(RULES_REBUILD)
                self.rules = original
                return
            self.client.delete_collection(RULES)
        copy.modify(name=RULES)
        self.rules = copy

    def compact(self) -> None:
        """Rewrite an embedded store's SQLite file (VACUUM) so deleted rows leave no trace in free pages;
        a server's store (`chroma run`) is compacted with `chroma vacuum` on its host."""
        if self.path is None:
            return
        import sqlite3

        con = sqlite3.connect(self.path / "chroma.sqlite3", timeout=30)
        try:
            con.execute("VACUUM")
        finally:
            con.close()

    def rules_for(self, cluster_id: str) -> list[str]:
        got = self.rules.get(where={"cluster_id": cluster_id}, include=["documents"])
        return list(dict.fromkeys(got["documents"]))

    def search_rules(self, vector: np.ndarray, k: int = 5) -> list[tuple[str, float, dict[str, Any]]]:
        count = self.rules.count()
        if count == 0:
            return []
        res = self.rules.query(query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
                               n_results=min(k, count), include=["documents", "distances", "metadatas"])
        return [(doc, math.sqrt(max(d, 0.0)), dict(m)) for doc, d, m in
                zip(res["documents"][0], res["distances"][0], res["metadatas"][0])]
