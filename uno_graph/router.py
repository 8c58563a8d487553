"""Routing: embed the query, find the nearest centroid, and pick the cluster's route.

A query farther than the cluster's reach (or the configured `route_threshold`) is served by the base
model: the reference forced every query into some cluster's adapter.

With a user id (`route(query, user_id=...)`, from `UnoContext.user_id`) and `route_by_user` on (the
default), a returning user's query goes to the cluster most likely given both the query and the
user's own logs (`RouteTable.by_user`):

    score(c) = log(n_uc + alpha / K) - d(q, c)^2 / (2 tau^2)

`n_uc` is how many of the user's logs cluster `c` holds, `K` the number of clusters, `d` the query's
distance to the cluster's nearest query group and `tau` the config's `route_user_temperature`. How
far users' logs predict their cluster is learned from the table itself (`user_prior_strength`, an
empirical-Bayes `alpha` chosen by leave-one-out likelihood of each user's logs): where every user
writes in every cluster (`examples/logs.jsonl`) `alpha` is large and the query alone decides; where
a user's want follows them to subjects no log mentions (`examples/unseen`, `examples/sealed`) it is
small, and such a question reaches that user's cluster, which the query alone cannot tell (a new
subject is nearest to some other want's cluster). A cluster the prior makes the user's own (more than
`USER_CLUSTER_SHARE` of their questions expected there) is routed to at any distance; any other only
within its reach. A user with no clustered logs,
or no user id, is routed by the query alone.

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
from functools import cached_property
from typing import Any

import numpy as np

from uno_graph.config import UnoConfig
from uno_graph.errors import ArtifactError
from uno_graph.store import UnoStore

ROUTED = ("expert", "critic")
# the user prior's strengths `alpha` tried by `RouteTable.user_prior_strength`
USER_PRIOR_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
# a cluster the user prior gives more than this share of the user's questions (P(c | user)) is the user's
# own and is routed to at any distance (`RouteTable.by_user`); any other only within its reach
USER_CLUSTER_SHARE = 0.5


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

    def nearest(self, vector: np.ndarray, *, viewer: str | None = None) -> tuple[dict[str, Any], float] | None:
        """The nearest cluster's row and its L2 distance (None when no cluster qualifies) among the clusters
        `viewer` may use (shared ones and their own: `visible_to`)."""
        if not self.ids:
            return None
        distances = np.linalg.norm(self.centroids - np.asarray(vector, dtype=np.float32)[None, :], axis=1)
        allowed = np.asarray([visible_to(row, viewer) for row in self.rows])
        if not allowed.any():
            return None
        distances = np.where(allowed, distances, np.inf)
        best = int(np.argmin(distances))
        return self.rows[best], float(distances[best])

    @cached_property
    def user_counts(self) -> dict[str, dict[str, int]]:
        """User id -> {cluster id: how many of that user's logs the cluster holds}."""
        out: dict[str, dict[str, int]] = {}
        seen: set[str] = set()
        for row in self.rows:
            if row["id"] in seen:  # a want cluster's query groups repeat its row
                continue
            seen.add(row["id"])
            for user, n in users_of(row).items():
                out.setdefault(user, {})[row["id"]] = n
        return out

    @cached_property
    def user_prior_strength(self) -> float:
        """The empirical-Bayes strength `alpha` of the user prior: of `USER_PRIOR_GRID`, the one under which
        each user's other logs best predict the cluster of each of their logs (leave-one-out), with
        P(c | user) = (n_uc + alpha / K) / (n_u + alpha). Large when users spread over clusters as everyone
        does (the prior is then flat: the query decides); small when users keep to their own clusters.
        `math.inf` when no user has two clustered logs (nothing to learn the prior from)."""
        k = max(len(set(self.ids)), 1)
        counts = [list(c.values()) for c in self.user_counts.values() if sum(c.values()) >= 2]
        if not counts:
            return math.inf

        def loo(alpha: float) -> float:
            return sum(n * math.log((n - 1 + alpha / k) / (sum(c) - 1 + alpha)) for c in counts for n in c)

        return max(USER_PRIOR_GRID, key=loo)

    def by_user(self, vector: np.ndarray, user_id: str, temperature: float, *,
                viewer: str | None = None) -> tuple[dict[str, Any], float, bool] | None:
        """The most likely cluster for `user_id` asking the query at `vector` (see the module), its L2
        distance, and whether it is the user's own: the prior expects more than `USER_CLUSTER_SHARE` of
        the user's questions there (a user who writes in every cluster, as everyone does, has none). None when the user has no clustered logs or no cluster
        qualifies. Only clusters `viewer` may use count."""
        counts = self.user_counts.get(str(user_id))
        if not self.ids or not counts:
            return None
        alpha, k = self.user_prior_strength, len(set(self.ids))
        distances = np.linalg.norm(self.centroids - np.asarray(vector, dtype=np.float32)[None, :], axis=1)
        best: tuple[float, int] | None = None
        for i, row in enumerate(self.rows):
            if not visible_to(row, viewer):
                continue
            n = counts.get(row["id"], 0)
            prior = math.log(n + alpha / k) if math.isfinite(alpha) else 0.0
            score = prior - float(distances[i]) ** 2 / (2 * temperature ** 2)
            if best is None or score > best[0]:
                best = (score, i)
        if best is None:
            return None
        i = best[1]
        n, total = counts.get(self.rows[i]["id"], 0), sum(counts.values())
        share = (n + alpha / k) / (total + alpha) if math.isfinite(alpha) else 1 / k  # P(c | user)
        return self.rows[i], float(distances[i]), share > USER_CLUSTER_SHARE


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


def users_of(row: dict[str, Any]) -> dict[str, int]:
    """User id -> how many of a cluster row's logs are theirs (stored as a JSON object; a JSON list of
    ids, as rows of earlier versions hold, counts one log each; rows from before either have none)."""
    raw = row.get("users")
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    if isinstance(found, dict):
        return {str(u): int(n) for u, n in found.items() if isinstance(n, (int, float)) and n > 0}
    if isinstance(found, list):
        return {str(u): 1 for u in found}
    return {}


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

    def locate(self, query: str, user_id: str | None = None, *,
               by_user: bool | None = None) -> tuple[dict[str, Any], float, float] | None:
        """The cluster a query goes to, before its route is read: (row, distance, reach), where a
        distance beyond the reach means base. With a user id and `by_user` (default: the config's
        `route_by_user`), by the query and the user's logs (`RouteTable.by_user`); the user's own
        cluster is reached at any distance. Else, or for a user with no clustered logs, the
        nearest cluster by the query alone. None when no cluster is visible."""
        vector = self.embedder.encode([query])[0]
        by_user = (self.config.route_by_user if by_user is None else by_user) and user_id is not None
        viewer = None if user_id is None else str(user_id)
        if by_user:
            found = self.table.by_user(vector, viewer, self.config.route_user_temperature, viewer=viewer)
            if found is not None:
                row, distance, theirs = found
                return row, distance, math.inf if theirs else self.reach(row)
        nearest = self.table.nearest(vector, viewer=viewer)
        if nearest is None:
            return None
        return nearest[0], nearest[1], self.reach(nearest[0])

    def route(self, query: str, user_id: str | None = None, *, by_user: bool | None = None,
              explore: bool = True, learner: str | None = None) -> RouteDecision:
        """The route of `query`; `user_id` counts only with `by_user` (default: the config's
        `route_by_user`) on, see the module. `explore=False` makes the late ensemble serve its best
        variant so far instead of drawing one (an evaluation must compare, not explore); `learner`
        serves that learner's variant where the cluster has one, without the ensemble (an evaluation
        of one learner: `uno-graph eval --systems uno@kto`)."""
        found = self.locate(query, user_id, by_user=by_user)
        if found is None:
            return RouteDecision("base", None, None, None)
        row, distance, reach = found
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
