"""Rules in context: the rules of a query's nearest clusters, as a system prompt for the base model.

The paper's retrieval baseline, shared by the evaluation (`uno_graph.evaluate`, system
``rules_in_context``) and serving (the graph's and the middleware's ``rules_in_context`` mode), so
that what is measured is what is served. It needs no adapter: only the work directory's Chroma
store (centroids and rules) and the query embedder.

    >>> rules = RulesInContext(system.store, system.router.embedder)        # doctest: +SKIP
    >>> found = rules.retrieve("How do I boil an egg?")                     # doctest: +SKIP
    >>> found.rules, found.cluster_id, found.system_prompt()                 # doctest: +SKIP

Retrieval: the ``k_clusters`` clusters whose centroids are nearest the query; their rules ranked by
the rule's own distance to the query, topped up with the rest of those clusters' rules, duplicates
dropped, at most ``max_rules``. Unlike routing, there is no reach: a query far from every cluster
still gets its nearest clusters' rules (as in the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uno_graph import prompts

RULES_SYSTEM = ("Users of this assistant have asked for the following. Follow these rules when they apply "
                "to the question:\n{rules}")


@dataclass(frozen=True)
class RetrievedRules:
    """The rules found for one query and the nearest cluster they came from (None: an empty store)."""

    rules: tuple[str, ...] = ()
    cluster_id: str | None = None

    def system_prompt(self) -> str | None:
        """The system prompt that carries the rules; None when there are none (the prompt is left as is)."""
        return RULES_SYSTEM.format(rules=prompts.numbered(list(self.rules))) if self.rules else None


class RulesInContext:
    """Finds the rules of a query's nearest clusters in a `UnoStore`.

    Args:
        store: the work directory's `UnoStore` (`UnoSystem.store`, or `router.store`).
        embedder: the query embedder the store's centroids were made with (`router.embedder`).
        k_clusters: how many nearest clusters give rules.
        max_rules: at most this many rules go into the prompt (the prompt's cost in tokens).
    """

    def __init__(self, store: Any, embedder: Any, *, k_clusters: int = 2, max_rules: int = 8) -> None:
        self.store, self.embedder = store, embedder
        self.k_clusters, self.max_rules = k_clusters, max_rules

    @classmethod
    def from_router(cls, router: Any, **kwargs: Any) -> RulesInContext:
        """Over the store and embedder a `Router` routes with."""
        return cls(router.store, router.embedder, **kwargs)

    def retrieve(self, query: str, user_id: str | None = None) -> RetrievedRules:
        """The nearest clusters' rules, closest to the query first, among the clusters `user_id` may use
        (`router.visible_to`: with `user_scope`, another user's clusters give no rules)."""
        from uno_graph.router import visible_to

        vector = self.embedder.encode([query])[0]
        k = self.k_clusters
        while True:  # others' private clusters (`user_scope`) are skipped: look further until enough are found
            hits = self.store.nearest(vector, k=k)
            visible = [hit for hit in hits if visible_to(hit.meta, user_id)]
            if len(visible) >= self.k_clusters or len(hits) < k:
                break
            k *= 4
        hits = visible
        clusters = [hit.cluster_id for hit in hits[: self.k_clusters]]
        if not clusters:
            return RetrievedRules()
        ranked = self.store.search_rules(vector, k=max(50, self.max_rules * 5))
        rules = [doc for doc, _, meta in ranked if meta.get("cluster_id") in clusters]
        if len(rules) < self.max_rules:  # the clusters' rules beyond the nearest few
            for cid in clusters:
                rules.extend(self.store.rules_for(cid))
        kept = list(dict.fromkeys(r.strip() for r in rules if r and r.strip()))[: self.max_rules]
        return RetrievedRules(tuple(kept), clusters[0])


def with_rules(messages: list[Any], system_prompt: str | None) -> list[Any]:
    """`messages` (dicts or LangChain messages) with `system_prompt` ahead of them: appended to a leading
    system message if there is one (one system turn, as chat templates expect), else as a new one."""
    from langchain_core.messages import SystemMessage, convert_to_messages

    if not system_prompt:
        return list(messages)
    converted = convert_to_messages(messages)
    if converted and isinstance(converted[0], SystemMessage):
        first = converted[0]
        merged = f"{first.text}\n\n{system_prompt}" if first.text else system_prompt
        return [SystemMessage(merged), *converted[1:]]
    return [SystemMessage(system_prompt), *converted]


__all__ = ["RULES_SYSTEM", "RetrievedRules", "RulesInContext", "with_rules"]
