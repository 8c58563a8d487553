"""ChromaDB holds what routing needs: cluster centroids with the cluster table, and the rules.

Two collections, both given explicit vectors (Chroma's default embedding function would try to
download a model):

* ``uno_clusters``: one entry per cluster; embedding = centroid (query space), metadata = the
  cluster table row: size, radius, route (expert | critic | base), adapter path, gap and verifier
  numbers. A cluster's route names an adapter only after that adapter is fully published.
* ``uno_rules``: one entry per (log, rule); document = rule text, metadata = cluster, log, user.

Space is ``l2`` as in the reference (its centroids are not unit vectors, so cosine would re-rank).
Chroma reports *squared* L2; this module returns plain L2 distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uno_graph.errors import ArtifactError

CLUSTERS = "uno_clusters"
RULES = "uno_rules"
_SPACE = {"hnsw:space": "l2"}


def _settings():
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


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
        self.clusters = client.get_or_create_collection(CLUSTERS, metadata=_SPACE, embedding_function=None)
        self.rules = client.get_or_create_collection(RULES, metadata=_SPACE, embedding_function=None)

    @classmethod
    def persistent(cls, path: str | Path) -> "UnoStore":
        """Embedded store in a directory (one process at a time; see `http` for several)."""
        import chromadb

        Path(path).mkdir(parents=True, exist_ok=True)
        return cls(chromadb.PersistentClient(path=str(path), settings=_settings()))

    @classmethod
    def http(cls, host: str = "127.0.0.1", port: int = 8000) -> "UnoStore":
        """A `chroma run` server shared by the trainer and any number of serving processes."""
        import chromadb

        return cls(chromadb.HttpClient(host=host, port=port, settings=_settings()))

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
