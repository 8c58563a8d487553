"""Routing: embed the query, find the nearest centroid, and pick the cluster's route.

A query farther than the cluster's reach (or the configured `route_threshold`) is served by the base
model: the reference forced every query into some cluster's adapter.

With a user id (`route(query, user_id=...)`, from `UnoContext.user_id`) and `route_by_user` on, a
returning user's query goes to the nearest of the clusters *their own logs* are in, at any distance:
what a user asked for follows the user to subjects no log mentions, which the query alone cannot
tell (a cluster is one subject; a new subject is nearest to some other user's cluster). A user with
no clustered logs, or no user id, is routed by the query alone.

With `user_scope` (a cluster learned from one user's logs, its row's `owner`), such a cluster is
invisible to every other user and to a query without a user id: it is never routed to for them,
whatever the distance, so one user's logs never change another user's answers.

The router answers from a snapshot of the cluster table (`RouteTable`), read from Chroma when the
router is built and swapped whole by `use` (see `UnoSystem.reload`). While `uno-graph learn` rewrites
the table (clusters marked pending, routes set as adapters are published), a serving process keeps
routing by the snapshot whose adapters it has loaded; a table of a few hundred centroids is searched
exactly with numpy in microseconds, without a round trip to a Chroma server.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uno_graph.config import UnoConfig
from uno_graph.errors import ArtifactError
from uno_graph.store import UnoStore

ROUTED = ("expert", "critic")


@dataclass(frozen=True)
class RouteDecision:
    route: str  # expert | critic | base
    cluster_id: str | None
    distance: float | None
    adapter: str | None  # adapter name loaded in the chat model (= cluster_id/role)
    max_new_tokens: int | None = None  # the Expert's answer budget (uno_graph.budget); None = the model's


@dataclass(frozen=True)
class RouteTable:
    """One consistent read of the cluster table: ids, centroids (float32 rows) and rows."""

    ids: tuple[str, ...] = ()
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    rows: tuple[dict[str, Any], ...] = ()

    @classmethod
    def read(cls, store: UnoStore) -> RouteTable:
        ids, centroids, metas = store.read_clusters()
        return cls(tuple(ids), centroids, tuple({"id": i, **m} for i, m in zip(ids, metas)))

    @property
    def dimension(self) -> int | None:
        return int(self.centroids.shape[1]) if self.ids else None

    def adapters(self) -> dict[str, tuple[str, str]]:
        """Adapter name -> (role, adapter path relative to the work directory) for every routed cluster."""
        return {adapter_name(row["id"], row["route"]): (row["route"], str(row["adapter"]))
                for row in self.rows if row.get("route") in ROUTED and row.get("adapter")}

    def pending(self) -> list[str]:
        """Clusters a `learn` run has (re)created but not finished (their route is not final yet)."""
        return [row["id"] for row in self.rows if row.get("status") == "pending"]

    def nearest(self, vector: np.ndarray, *, user_id: str | None = None,
                viewer: str | None = None) -> tuple[dict[str, Any], float] | None:
        """The nearest cluster's row and its L2 distance (None when no cluster qualifies) among the clusters
        `viewer` may use (shared ones and their own: `visible_to`); with `user_id`, only the clusters
        holding that user's logs."""
        if not self.ids:
            return None
        distances = np.linalg.norm(self.centroids - np.asarray(vector, dtype=np.float32)[None, :], axis=1)
        allowed = np.asarray([visible_to(row, viewer) and (user_id is None or user_id in users_of(row))
                              for row in self.rows])
        if not allowed.any():
            return None
        distances = np.where(allowed, distances, np.inf)
        best = int(np.argmin(distances))
        return self.rows[best], float(distances[best])


def visible_to(row: dict[str, Any], viewer: str | None) -> bool:
    """Whether a request by user `viewer` (None: no user id) may use a cluster: a shared cluster (no
    `owner`) serves everyone, a cluster learned from one user's logs (`user_scope`) only that user."""
    owner = row.get("owner") or None
    return owner is None or (viewer is not None and str(viewer) == owner)


def users_of(row: dict[str, Any]) -> frozenset[str]:
    """The user ids of a cluster row's logs (stored as a JSON list; rows from before have none)."""
    raw = row.get("users")
    if not raw:
        return frozenset()
    try:
        return frozenset(str(u) for u in json.loads(raw))
    except (TypeError, ValueError):
        return frozenset()


class Router:
    """Routes a query by the current `RouteTable` (read from `store` at construction).

    Example:
        >>> router = Router(UnoStore.persistent("runs/demo/chroma"), embedder, UnoConfig())   # doctest: +SKIP
        >>> router.route("How do I boil an egg?").adapter                                    # doctest: +SKIP
        'c3/expert'
    """

    def __init__(self, store: UnoStore, embedder, config: UnoConfig) -> None:
        self.store, self.embedder, self.config = store, embedder, config
        self.table = self.read_table()

    def read_table(self) -> RouteTable:
        """A fresh snapshot of the store's cluster table, checked against the embedder (not yet used)."""
        table = RouteTable.read(self.store)
        dim = self.embedder.dim
        if table.dimension is not None and table.dimension != dim:
            raise ArtifactError(f"store centroids have {table.dimension} dimensions but the embedder gives {dim}; "
                                "serve with the embedder named in system.json")
        return table

    def use(self, table: RouteTable) -> None:
        """Route by `table` from the next query on (one attribute swap: a query sees the old or the new)."""
        self.table = table

    def reach(self, row: dict[str, Any]) -> float:
        """How far from a cluster's centroid its queries are routed to it: `route_threshold`, else the
        cluster's radius × `route_margin`."""
        return self.config.route_threshold or float(row.get("radius", 0.0)) * self.config.route_margin

    def route(self, query: str, user_id: str | None = None, *, by_user: bool | None = None) -> RouteDecision:
        """The route of `query`; `user_id` counts only with `by_user` (default: the config's
        `route_by_user`) on, see the module."""
        vector = self.embedder.encode([query])[0]
        by_user = (self.config.route_by_user if by_user is None else by_user) and user_id is not None
        viewer = None if user_id is None else str(user_id)
        found = self.table.nearest(vector, user_id=viewer, viewer=viewer) if by_user else None
        if found is None:
            by_user = False
            found = self.table.nearest(vector, viewer=viewer)
        if found is None:
            return RouteDecision("base", None, None, None)
        row, distance = found
        reach = math.inf if by_user else self.reach(row)
        route = str(row.get("route", "base"))
        if distance > reach or route not in ROUTED or not row.get("adapter"):
            return RouteDecision("base", row["id"] if distance <= reach else None, distance, None)
        budget = int(row.get("max_new_tokens") or 0) if route == "expert" else 0
        return RouteDecision(route, row["id"], distance, adapter_name(row["id"], route), budget or None)


def adapter_name(cluster_id: str, role: str) -> str:
    return f"{cluster_id}/{role}"
