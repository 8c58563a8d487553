"""Routing: embed the query, find the nearest centroid in Chroma, and pick the cluster's route.

A query farther than the cluster's reach (or the configured `route_threshold`) is served by the base
model: the reference forced every query into some cluster's adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from uno_graph.config import UnoConfig
from uno_graph.store import UnoStore


@dataclass(frozen=True)
class RouteDecision:
    route: str  # expert | critic | base
    cluster_id: str | None
    distance: float | None
    adapter: str | None  # adapter name loaded in the chat model (= cluster_id/role)


class Router:
    def __init__(self, store: UnoStore, embedder, config: UnoConfig) -> None:
        self.store, self.embedder, self.config = store, embedder, config
        store.check_dimension(embedder.dim)

    def route(self, query: str) -> RouteDecision:
        hits = self.store.nearest(self.embedder.encode([query])[0], k=1)
        if not hits:
            return RouteDecision("base", None, None, None)
        hit = hits[0]
        reach = self.config.route_threshold or float(hit.meta.get("radius", 0.0)) * self.config.route_margin
        route = str(hit.meta.get("route", "base"))
        if hit.distance > reach or route not in ("expert", "critic") or not hit.meta.get("adapter"):
            return RouteDecision("base", hit.cluster_id if hit.distance <= reach else None, hit.distance, None)
        return RouteDecision(route, hit.cluster_id, hit.distance, adapter_name(hit.cluster_id, route))


def adapter_name(cluster_id: str, role: str) -> str:
    return f"{cluster_id}/{role}"
