"""Query-and-feedback clustering (UNO §3), with cluster ids that stay stable across runs.

Ward agglomerative clustering on the normalised query embeddings groups logs by what they asked
about. The tree is cut where its clusters are best separated (`best_cut`, the highest mean
silhouette), not at a fixed merge height: a height suits one way of writing questions only (1.5
split the short one-line questions of two development log sets by subject, and left four topics of
long conversational questions in one cluster on a third, purity 50 %; the silhouette cut gave 99 %,
81 % and 90 % on the three, `benchmarks/cluster_check.py`). A fixed `threshold` is still accepted.
A group smaller than `min_size` is served by the base model; joining it to the group whose *rules*
are nearest (`join_similarity`) is available but off by default, since on those sets it put small
groups into other wants' clusters.

The paper runs Ward once on [query ⊕ rules] (`features`, `on="query+rules"`: each half
L2-normalised, the concatenation normalised again). With rules in the users' own words ("Way too
long, I'm on my phone.") that cut mixed wants: users' phrasings of different wants sit as close as
those of one want (cosines 0.65-0.88 within a want against up to 0.74 across wants on
`examples/heldout`), so merging groups whose rule centroids point the same way
(`merge_similarity`) is off by default too. Centroids are the mean of the members' *query-only*
embeddings, because routing sees only the query.

What users asked for is read from what they *did* instead: how each edit changed the form of the
answer (`want.edit_directions`: lines added, case, length, openings, each line's first token, less
the change every edit makes). Query groups whose edits point the same way merge into one want
cluster (`merge_by_want`), so a want asked about on two subjects learns from both halves, and a
small group of a want joins it instead of getting no adapter. Over the six example log sets
(`benchmarks/cluster_check.py --all`, cosine 0.3) query groups alone are 90.3 % pure and 54.6 %
complete on average (a topic's logs split by subject); merged by want, 88.5 % pure and 86.7 %
complete. Without the lines' first tokens, at 0.25, two wants that each add a labelled line
(`Warning:`, `Sources:`) merged, and a noisy topic joined a short-answer one: 82.8 % and 84.0 %.
On `examples/heldout` one query group holds both the "brief" topic and the contradicting users'
topic (their subjects are close), which no merge can undo (71 % there). A want cluster keeps its
query groups (`Cluster.parts`): the router reaches it through the nearest group's centroid and
radius, not the mean of subjects.

On queries, a user's approval (a log without rules) is clustered with the rest. On [query ⊕ rules]
it is not clustered on the empty rule's vector, as the reference did (that vector is the same for
every approval, so approvals of every topic formed one cluster of their own): it joins the cluster
nearest to its query when within its reach (the router's: radius × margin), else the unattached ones
are clustered among themselves.

Stable ids fix a weakness of the reference (ids were list positions): a cluster that shares most
members with a cluster of the previous run keeps that cluster's id; a new one gets an id derived
from its members, so the same data always gives the same ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Part:
    """One group of a want cluster's queries (its logs on one subject): routing reaches the cluster
    through the nearest part, by that part's own centroid and radius."""

    members: list[str]
    centroid: np.ndarray
    radius: float


@dataclass
class Cluster:
    id: str
    members: list[str]
    centroid: np.ndarray  # mean of members' normalised query embeddings (not re-normalised)
    radius: float  # 95th percentile member→centroid L2 distance: how far its queries reach
    rules: list[str] = field(default_factory=list)
    # the query groups merged into this cluster because their users asked for the same change
    # (`merge_by_want`); empty when the cluster is one query group
    parts: list[Part] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.members)


def features(query_vecs: np.ndarray, rule_vecs: np.ndarray) -> np.ndarray:
    both = np.concatenate([query_vecs, rule_vecs], axis=1)
    return both / np.linalg.norm(both, axis=1, keepdims=True).clip(min=1e-12)


def agglomerate(feats: np.ndarray, threshold: float | None, *, min_size: int = 2) -> np.ndarray:
    """Ward clustering cut at merge height `threshold` (UNO: ward, euclidean, distance_threshold), or,
    with `threshold=None`, cut where the clusters are best separated (`best_cut`)."""
    if len(feats) == 1:
        return np.zeros(1, dtype=int)
    if threshold is None:
        return best_cut(feats, min_size=min_size)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, linkage="ward",
                                    metric="euclidean", compute_full_tree=True)
    return model.fit_predict(feats)


def best_cut(feats: np.ndarray, *, min_size: int = 2) -> np.ndarray:
    """The cut of one Ward tree with the highest mean silhouette, among cuts into 2 .. n // min_size
    clusters (so that clusters can average `min_size` members); one cluster when n < 2 × min_size.

    A fixed merge height depends on how the questions are written: 1.5 split the short one-line
    questions of the example and development logs by subject, but left the long conversational
    questions of another log set in one cluster of four topics (purity 50 %), because long questions
    that open with context about the asker sit closer together. The silhouette compares each log's
    distance to its own cluster with its distance to the next one, so it does not depend on that scale:
    on the three development log sets it chose 5, 11 and 11 clusters, 99 %, 81 % and 90 % pure
    (`benchmarks/cluster_check.py`)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score

    n = len(feats)
    top = n // max(min_size, 1)
    if top < 2 or n < 3:
        return np.zeros(n, dtype=int)
    tree = linkage(feats, method="ward", metric="euclidean")
    best, best_score = np.zeros(n, dtype=int), -np.inf
    for k in range(2, min(top, n - 1) + 1):
        labels = fcluster(tree, t=k, criterion="maxclust") - 1
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(feats, labels))
        if score > best_score + 1e-9:
            best, best_score = labels, score
    return best


def _new_id(members: list[str]) -> str:
    return "c-" + hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:8]


def stable_ids(groups: list[list[str]], previous: dict[str, list[str]]) -> list[str]:
    """Give each group the id of the previous cluster it overlaps most (Jaccard >= 0.5), else a new id."""
    ids: list[str] = []
    taken: set[str] = set()
    for members in groups:
        mine = set(members)
        best, best_score = None, 0.5
        for pid, pmembers in previous.items():
            other = set(pmembers)
            score = len(mine & other) / len(mine | other)
            if pid not in taken and score >= best_score:
                best, best_score = pid, score
        cid = best or _new_id(members)
        taken.add(cid)
        ids.append(cid)
    return ids


def _groups(labels: np.ndarray, index: list[int]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, label in zip(index, labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def _reach(query_vecs: np.ndarray, idx: list[int], margin: float) -> tuple[np.ndarray, float]:
    """Centroid of the members' query vectors and margin × their 95th-percentile distance to it."""
    centroid = query_vecs[idx].mean(axis=0)
    radius = float(np.quantile(np.linalg.norm(query_vecs[idx] - centroid, axis=1), 0.95))
    return centroid, radius * margin


def _direction(vecs: np.ndarray, idx: list[int]) -> np.ndarray:
    mean = vecs[idx].mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def merge_by_rules(groups: list[list[int]], rule_vecs: np.ndarray, *, merge_similarity: float | None,
                   min_size: int, join_similarity: float | None) -> list[list[int]]:
    """Merge groups whose rule centroids point the same way (unless `merge_similarity` is None); let
    groups under `min_size` join the group with the nearest rules (if near enough). Greedy, most
    similar pair first."""
    groups = [list(g) for g in groups]
    while merge_similarity is not None and len(groups) > 1:
        dirs = np.stack([_direction(rule_vecs, g) for g in groups])
        sims = dirs @ dirs.T
        np.fill_diagonal(sims, -np.inf)
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[a, b] < merge_similarity:
            break
        groups[a] += groups[b]
        del groups[b]
    small_groups = [] if join_similarity is None else [g for g in groups if len(g) < min_size]
    for small in sorted(small_groups, key=len):
        others = [g for g in groups if g is not small and len(g) >= min_size]
        if not others:
            continue
        sims = [float(_direction(rule_vecs, small) @ _direction(rule_vecs, g)) for g in others]
        best = int(np.argmax(sims))
        if sims[best] >= join_similarity:
            others[best] += small
            groups = [g for g in groups if g is not small]
    return groups


def merge_by_want(groups: list[list[int]], directions: np.ndarray, has_direction: np.ndarray, *,
                  similarity: float, min_edits: int = 2) -> list[list[list[int]]]:
    """Merge query groups whose users changed their answers the same way; returns the merged clusters,
    each as the list of its query groups.

    `directions` are the logs' edit directions (`want.edit_directions`). A group's direction is the
    mean of its logs' (a group with fewer than `min_edits` has none and stays as it is). Greedy, most
    similar pair first, average linkage (the merged group's direction is the mean over all its logs),
    while the cosine is at least `similarity`. Queries tell subjects apart and edits tell wants apart:
    a want asked about on two subjects ends in one cluster that learns from both halves, and a small
    group of a want joins its want's cluster instead of getting no adapter."""
    merged: list[list[list[int]]] = [[list(g)] for g in groups]

    def direction(parts: list[list[int]]) -> np.ndarray | None:
        idx = [i for g in parts for i in g if has_direction[i]]
        if len(idx) < min_edits:
            return None
        mean = directions[idx].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 1e-12 else None

    while len(merged) > 1:
        dirs = [direction(m) for m in merged]
        best, best_pair = similarity, None
        for a in range(len(merged)):
            for b in range(a + 1, len(merged)):
                if dirs[a] is None or dirs[b] is None:
                    continue
                cos = float(dirs[a] @ dirs[b])
                if cos >= best:
                    best, best_pair = cos, (a, b)
        if best_pair is None:
            break
        a, b = best_pair
        merged[a] += merged[b]
        del merged[b]
    return merged


def cluster_logs(ids: list[str], query_vecs: np.ndarray, rule_vecs: np.ndarray, rules: list[list[str]],
                 threshold: float | None, previous: dict[str, list[str]] | None = None, *,
                 margin: float = 1.5, merge_similarity: float | None = None, min_size: int = 1,
                 join_similarity: float | None = None, on: str = "query+rules",
                 directions: np.ndarray | None = None, has_direction: np.ndarray | None = None,
                 want_similarity: float | None = None) -> list[Cluster]:
    """Cluster logs; return clusters sorted by size (largest first), members sorted by id.

    Logs with rules are clustered by Ward on `on`: "query" (the normalised query embeddings) or
    "query+rules" (the paper's [query ⊕ rules]), then merged by rules when `merge_similarity` is
    set; a log without rules joins the nearest of those clusters by query when within `margin` ×
    its radius, else it is clustered with the other unattached ones. With `want_similarity` and the
    logs' edit `directions`, groups whose users changed answers the same way are then merged
    (`merge_by_want`); each merged cluster keeps its query groups as `parts` for routing.
    """
    if on not in ("query", "query+rules"):
        raise ValueError(f"on={on!r}: expected 'query' or 'query+rules'")
    feats = features(query_vecs, rule_vecs) if on == "query+rules" else features(query_vecs, np.zeros((len(ids), 0)))
    if on == "query":  # rules play no part in the features: approvals are clustered with the rest
        ruled, unruled = list(range(len(ids))), []
    else:
        ruled = [i for i, r in enumerate(rules) if r]
        unruled = [i for i, r in enumerate(rules) if not r]
    groups = _groups(agglomerate(feats[ruled], threshold, min_size=min_size), ruled) if ruled else []
    if groups:
        groups = merge_by_rules(groups, rule_vecs, merge_similarity=merge_similarity, min_size=min_size,
                                join_similarity=join_similarity)
    reaches = [_reach(query_vecs, g, margin) for g in groups]
    loose = []
    for i in unruled:
        distances = [float(np.linalg.norm(query_vecs[i] - c)) for c, _ in reaches]
        best = int(np.argmin(distances)) if distances else -1
        if best >= 0 and distances[best] <= reaches[best][1]:
            groups[best].append(i)
        else:
            loose.append(i)
    if loose:
        groups += _groups(agglomerate(feats[loose], threshold, min_size=min_size), loose)
    if want_similarity is not None and directions is not None and has_direction is not None:
        wanted = merge_by_want(groups, directions, has_direction, similarity=want_similarity)
    else:
        wanted = [[g] for g in groups]
    ordered = sorted(wanted, key=lambda parts: (-sum(map(len, parts)), min(ids[i] for g in parts for i in g)))
    member_ids = [sorted(ids[i] for g in parts for i in g) for parts in ordered]
    cluster_ids = stable_ids(member_ids, previous or {})
    return [make_cluster(cid, parts, ids, query_vecs, rules) for cid, parts in zip(cluster_ids, ordered)]


def make_cluster(cluster_id: str, parts: list[list[int]], ids: list[str], query_vecs: np.ndarray,
                 rules: list[list[str]]) -> Cluster:
    """A cluster of the logs at positions `parts` (one list per query group), centroid and radius over all."""
    idx = [i for g in parts for i in g]
    centroid, radius = _reach(query_vecs, idx, 1.0)
    seen: dict[str, None] = {}
    for i in idx:
        for rule in rules[i]:
            seen.setdefault(rule, None)
    found = []
    if len(parts) > 1:
        for g in parts:
            c, r = _reach(query_vecs, g, 1.0)
            found.append(Part(sorted(ids[i] for i in g), c, r))
    return Cluster(id=cluster_id, members=sorted(ids[i] for i in idx), centroid=centroid, radius=radius,
                   rules=list(seen), parts=found)
