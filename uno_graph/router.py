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

Late ensemble: an Expert cluster's row may list several variants (`variants`: a JSON object of
learner → adapter path, written by `learn` with several `expert_learners`). With two or more and a
`LateEnsemble` attached (`Router(..., ensemble=...)`, done by `UnoSystem`), each request's variant
is chosen by the ensemble's bandit and the decision names it (`RouteDecision.arm`, the variant's
adapter path, which the recorder stores so feedback can reach the arm). Without an ensemble, or
with one variant, the row's `adapter` (the variant that validated best) answers, as before variants.
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
    arm: str | None = None  # late ensemble: the chosen variant's adapter path (None: no choice was made)
    learner: str | None = None  # late ensemble: the chosen variant's learner (training objective)


@dataclass(frozen=True)
class Variant:
    """One Expert variant of a cluster: the learner that trained it, its adapter path (relative to the
    work directory) and the adapter name the chat model serves it under."""

    learner: str
    adapter: str
    name: str


@dataclass(frozen=True)
class RouteTable:
    """One consistent read of the cluster table: ids, centroids (float32 rows) and rows."""

    ids: tuple[str, ...] = ()
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    rows: tuple[dict[str, Any], ...] = ()

    @classmethod
    def read(cls, store: UnoStore) -> RouteTable:
        """The store's cluster table; a want cluster of several query groups (its row's `parts`) gets one
        entry per group, with that group's centroid and radius, so a query is routed to it when it is
        near any of its subjects rather than near the mean of all of them."""
        ids, centroids, metas = store.read_clusters()
        out_ids, out_vecs, out_rows = [], [], []
        for i, vec, meta in zip(ids, centroids, metas):
            row = {"id": i, **meta}
            for radius, centroid in _parts(row) or [(row.get("radius", 0.0), vec)]:
                out_ids.append(i)
                out_vecs.append(np.asarray(centroid, dtype=np.float32))
                out_rows.append({**row, "radius": radius})
        matrix = np.stack(out_vecs) if out_vecs else np.zeros((0, 0), dtype=np.float32)
        return cls(tuple(out_ids), matrix, tuple(out_rows))

    @property
    def dimension(self) -> int | None:
        return int(self.centroids.shape[1]) if self.ids else None

    def adapters(self) -> dict[str, tuple[str, str]]:
        """Adapter name -> (role, adapter path relative to the work directory) for every routed cluster,
        each Expert variant of a late-ensemble cluster included."""
        found = {adapter_name(row["id"], row["route"]): (row["route"], str(row["adapter"]))
                 for row in self.rows if row.get("route") in ROUTED and row.get("adapter")}
        for row in self.rows:
            found.update({v.name: ("expert", v.adapter) for v in variants_of(row)})
        return found

    def arms(self) -> dict[str, tuple[str, ...]]:
        """Cluster id -> the adapter paths of its Expert variants, for clusters with two or more (the
        late ensemble's arms)."""
        return {row["id"]: tuple(v.adapter for v in found) for row in self.rows if (found := variants_of(row))}

    def pending(self) -> list[str]:
        """Clusters a `learn` run has (re)created but not finished (their route is not final yet)."""
        return list(dict.fromkeys(row["id"] for row in self.rows if row.get("status") == "pending"))

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


def _parts(row: dict[str, Any]) -> list[tuple[float, list[float]]]:
    """A row's query groups as (radius, centroid) pairs (`pipeline.route_parts`); [] for one group."""
    raw = row.get("parts")
    if not raw:
        return []
    try:
        return [(float(p["radius"]), [float(x) for x in p["centroid"]]) for p in json.loads(raw)]
    except (TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"cluster {row['id']!r} has invalid parts ({exc}); rerun `uno-graph learn` "
                            "to rewrite its row") from exc


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


def variants_of(row: dict[str, Any]) -> tuple[Variant, ...]:
    """The Expert variants of a routed Expert cluster's row when it lists two or more (else none: the
    row's `adapter` answers alone). The variant whose path is the row's `adapter` keeps the plain
    adapter name (``c3/expert``, loaded once); the others are ``c3/expert@<learner>``."""
    raw = row.get("variants")
    if not raw or row.get("route") != "expert" or not row.get("adapter"):
        return ()
    try:
        listed = json.loads(raw)
        if not isinstance(listed, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                                   for k, v in listed.items()):
            raise ValueError("not an object of learner -> adapter path")
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"cluster {row['id']!r} has invalid variants {raw!r} ({exc}); rerun `uno-graph learn` "
                            "to rewrite its row") from exc
    if len(listed) < 2:
        return ()
    primary = str(row["adapter"])
    return tuple(Variant(learner, path, adapter_name(row["id"], "expert") if path == primary
                         else variant_name(row["id"], learner)) for learner, path in sorted(listed.items()))


class Router:
    """Routes a query by the current `RouteTable` (read from `store` at construction).

    Example:
        >>> router = Router(UnoStore.persistent("runs/demo/chroma"), embedder, UnoConfig())   # doctest: +SKIP
        >>> router.route("How do I boil an egg?").adapter                                    # doctest: +SKIP
        'c3/expert'
    """

    def __init__(self, store: UnoStore, embedder, config: UnoConfig, *, ensemble: Any = None) -> None:
        self.store, self.embedder, self.config = store, embedder, config
        self.ensemble = ensemble  # a `uno_graph.learners.LateEnsemble` choosing among a cluster's variants
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

    def route(self, query: str, user_id: str | None = None, *, by_user: bool | None = None,
              explore: bool = True, learner: str | None = None) -> RouteDecision:
        """The route of `query`; `user_id` counts only with `by_user` (default: the config's
        `route_by_user`) on, see the module. `explore=False` makes the late ensemble serve its best
        variant so far instead of drawing one (an evaluation must compare, not explore); `learner`
        serves that learner's variant where the cluster has one, without the ensemble (an evaluation
        of one learner: `uno-graph eval --systems uno@kto`)."""
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
        forced = next((v for v in variants_of(row) if v.learner == learner), None) if learner else None
        if forced is not None:
            return RouteDecision(route, row["id"], distance, forced.name, budget or None, arm=forced.adapter,
                                 learner=forced.learner)
        variants = variants_of(row) if self.ensemble is not None else ()
        if variants:
            paths = [v.adapter for v in variants]
            arm = self.ensemble.choose(row["id"], paths) if explore else self.ensemble.best(row["id"], paths)
            chosen = next(v for v in variants if v.adapter == arm)
            return RouteDecision(route, row["id"], distance, chosen.name, budget or None, arm=chosen.adapter,
                                 learner=chosen.learner)
        return RouteDecision(route, row["id"], distance, adapter_name(row["id"], route), budget or None)


def adapter_name(cluster_id: str, role: str) -> str:
    return f"{cluster_id}/{role}"


def variant_name(cluster_id: str, learner: str) -> str:
    """The adapter name of a cluster's Expert variant trained by `learner` (``c3/expert@kto``)."""
    return f"{cluster_id}/expert@{learner}"
