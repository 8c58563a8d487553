"""Incremental `learn`: a grown (or shrunk) log set reuses every finished result whose inputs are unchanged.

Rules (each applies only when the work directory already holds the earlier result; a fresh work
directory is learned exactly as before):

* **Keyed stages** (per log: distill, verify; per cluster: gap, train). Next to its JSONL a stage
  keeps ``stages/<stage>.keys.json``: a *settings* fingerprint (teacher, budgets, training settings,
  ... — everything but the set of logs) and, per record id, the fingerprint of the input that record
  was computed from (a log's content; a distilled row; a cluster's data hash and gap decision). On a
  rerun with the same settings a record is kept iff its id is still present and its key is
  unchanged; the stage file is rewritten without the others (atomically) and only the missing ids
  are computed. Other settings, or no keys file (a work directory written before this version), is
  the old rule: the stage starts over. A finished stage of an older work directory gets its keys
  file on the first rerun that finds it finished, and is incremental from then on.
* **Clustering.** When the previous clustering finished with the same clustering settings, its
  clusters are kept (minus logs no longer present) with their ids; a new log joins the nearest kept
  cluster by query when within that cluster's reach — the router's: ``route_threshold`` or radius ×
  ``route_margin``, with the centroid and radius the table serves —, and the remaining (far) logs are
  clustered among themselves exactly as a fresh run clusters (`cluster.cluster_logs`). With other
  settings everything is clustered again, ids carried over from the previous clusters by overlap.
* **Cluster data hash** (`cluster_data_hash`): a fingerprint over the members' pairs and distilled
  rows. Gap and train results are keyed by cluster id + data hash, so a cluster whose data did not
  change keeps its gap decision, its train result and its published adapter untouched.
* **Statuses** (`cluster_status`), against the last finished run's ``summary.json``: ``new`` (the id
  was not there), ``unchanged`` (same data, not trained), ``retrained`` (trained again: its data or
  the training settings changed), ``changed`` (its data changed but it is too small to train).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uno_graph.cluster import Cluster, _new_id, cluster_logs, make_cluster
from uno_graph.workdir import Workdir, atomic_write_text, fingerprint

KEYS_SUFFIX = ".keys.json"
CALIBRATION_FILE = "gap.calibration.json"
STATUSES = ("new", "unchanged", "retrained", "changed")


# -- keyed stages ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reuse:
    """What `begin_keyed` kept of a stage's earlier records."""

    kept: frozenset[str]  # ids whose records are in the stage file now (reused or resumed)
    dropped: int  # earlier records dropped: their id is gone or their input changed
    reused: bool  # True: records of an earlier run with other inputs were kept (the incremental rule)

    def missing(self, ids: Iterable[str]) -> list[str]:
        """The ids of `ids` that still need computing."""
        return [i for i in ids if i not in self.kept]


def keys_path(wd: Workdir, stage: str) -> Path:
    return wd.stages / f"{stage}{KEYS_SUFFIX}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_keys(wd: Workdir, stage: str, inputs: str, settings: str, keys: dict[str, str]) -> None:
    payload = {"stage": stage, "inputs": inputs, "settings": settings, "keys": dict(sorted(keys.items()))}
    atomic_write_text(keys_path(wd, stage), json.dumps(payload) + "\n")


def _started(wd: Workdir, stage: str) -> str | None:
    path = wd.stages / f"{stage}.started"
    return path.read_text().strip() if path.exists() else None


def begin_keyed(wd: Workdir, stage: str, inputs: str, settings: str, keys: dict[str, str], *,
                id_field: str = "id") -> Reuse | None:
    """Start (or resume) a keyed stage; None if it already finished on `inputs`.

    `inputs`: the stage's whole-input fingerprint (as `Workdir.begin` takes it); `settings`: the same
    without the set of records; `keys`: per current record id, the fingerprint of its input. Earlier
    records are kept when the keys file names the same settings and was written by the last start of
    this stage (``<stage>.started``), so a file rewritten by other code is never trusted.
    """
    state = _read_json(keys_path(wd, stage))
    if wd.is_done(stage, inputs):
        if state is None or state.get("inputs") != inputs or state.get("settings") != settings:
            _write_keys(wd, stage, inputs, settings, keys)  # an older work directory: incremental from now on
        return None
    if state is not None and state.get("settings") == settings and _started(wd, stage) == state.get("inputs"):
        old = state.get("keys") or {}
        records = wd.read(stage)
        seen: set[str] = set()
        kept = []
        for r in records:
            rid = r.get(id_field)
            if rid in keys and rid not in seen and old.get(rid) == keys[rid]:
                kept.append(r)
                seen.add(rid)
        (wd.stages / f"{stage}.done").unlink(missing_ok=True)  # unfinished until the missing ids are done
        if len(kept) != len(records):
            wd.write(stage, kept)
        atomic_write_text(wd.stages / f"{stage}.started", inputs + "\n")
        _write_keys(wd, stage, inputs, settings, keys)
        return Reuse(frozenset(seen), len(records) - len(kept), reused=True)
    wd.begin(stage, inputs)  # the old rule: start over unless resuming these very inputs
    _write_keys(wd, stage, inputs, settings, keys)
    return Reuse(frozenset(r.get(id_field) for r in wd.read(stage)), 0, reused=False)


def forget_keys(wd: Workdir, stage: str, ids: set[str]) -> None:
    """Drop `ids` from a stage's keys file (their records were removed; see `scope.forget_user`)."""
    path = keys_path(wd, stage)
    state = _read_json(path)
    if state is None:
        return
    state["keys"] = {k: v for k, v in (state.get("keys") or {}).items() if k not in ids}
    atomic_write_text(path, json.dumps(state) + "\n")


# -- the gap threshold stays the one its kept decisions were made with ------------------------------

def load_calibration(wd: Workdir, settings: str) -> dict[str, Any] | None:
    """The gap calibration saved for these gap settings: {threshold, informative, calibration}."""
    saved = _read_json(wd.stages / CALIBRATION_FILE)
    return saved if saved is not None and saved.get("settings") == settings else None


def save_calibration(wd: Workdir, settings: str, threshold: float | None, informative: bool,
                     calibration: dict[str, Any] | None) -> None:
    payload = {"settings": settings, "threshold": threshold, "informative": informative, "calibration": calibration}
    atomic_write_text(wd.stages / CALIBRATION_FILE, json.dumps(payload, indent=2) + "\n")


# -- clusters ---------------------------------------------------------------------------------------

def cluster_settings(config) -> str:
    """Everything clustering depends on besides the logs (the router's reach included)."""
    return fingerprint("clusters", config.embedder, config.cluster_on, config.cluster_threshold,
                       config.min_cluster_size, config.route_margin, config.route_threshold,
                       config.merge_similarity, config.join_similarity,
                       *(["user_scope"] if config.user_scope else []),
                       *([f"want_similarity={config.want_similarity}"] if config.want_similarity is not None else []))  # work directories from before keep their fingerprint


def cluster_data_hash(members: Iterable[str], pair_by_id: dict[str, dict[str, Any]],
                      row_by_id: dict[str, dict[str, Any]]) -> str:
    """A fingerprint of what a cluster trains and validates on: each member's pair and distilled row."""
    return fingerprint([[m, pair_by_id.get(m), row_by_id.get(m)] for m in sorted(members)])


def extend_clusters(previous: list[dict[str, Any]], ids: list[str], query_vecs: np.ndarray,
                    rule_vecs: np.ndarray, rules: list[list[str]], threshold: float | None, *, margin: float,
                    route_threshold: float | None = None, merge_similarity: float | None = None,
                    min_size: int = 1, join_similarity: float | None = None,
                    on: str = "query") -> tuple[list[Cluster], int]:
    """Keep the previous clusters (minus logs not in `ids`), attach new logs within reach, cluster the rest.

    `previous`: the finished clustering's records (id, members, centroid, radius, and a want cluster's
    query groups, `parts`). A new log joins the kept cluster nearest to its query (L2 to the centroid
    the table serves, a want cluster's nearest query group's) when the distance is within
    ``route_threshold or radius × margin``, the reach the router gives that cluster or group. Logs beyond every
    reach are clustered among themselves by `cluster_logs` (new ids derived from their members).
    Returns the clusters (largest first, members sorted) and how many new logs were attached.
    """
    index = {log_id: i for i, log_id in enumerate(ids)}
    kept: list[tuple[dict[str, Any], list[list[int]]]] = []  # a previous cluster and its query groups' positions
    for c in previous:
        groups = [[index[m] for m in p["members"] if m in index] for p in c.get("parts") or [c]]
        if any(groups):
            kept.append((c, groups))
    assigned = {i for _, groups in kept for g in groups for i in g}
    far: list[int] = []
    attached = 0
    # every query group of every kept cluster, with the centroid and radius the table serves it by
    targets = [(k, j, p) for k, (c, _) in enumerate(kept) for j, p in enumerate(c.get("parts") or [c])]
    if targets:
        centroids = np.asarray([p["centroid"] for _, _, p in targets], dtype=np.float64)
        reach = np.asarray([route_threshold or float(p["radius"]) * margin for _, _, p in targets])
    for i in range(len(ids)):
        if i in assigned:
            continue
        if targets:
            distances = np.linalg.norm(centroids - np.asarray(query_vecs[i], dtype=np.float64)[None, :], axis=1)
            best = int(np.argmin(distances))
            if distances[best] <= reach[best]:
                k, j, _ = targets[best]
                kept[k][1][j].append(i)
                attached += 1
                continue
        far.append(i)
    clusters = [make_cluster(c["id"], [sorted(g, key=lambda i: ids[i]) for g in groups if g], ids, query_vecs, rules)
                for c, groups in kept]
    if far:
        taken = {c.id for c in clusters}
        for c in cluster_logs([ids[i] for i in far], query_vecs[far], rule_vecs[far], [rules[i] for i in far],
                              threshold, None, margin=margin, merge_similarity=merge_similarity,
                              min_size=min_size, join_similarity=join_similarity, on=on):
            if c.id in taken:  # the same members as a kept cluster once had: give it its own id
                c.id = _new_id(c.members + [c.id])
            taken.add(c.id)
            clusters.append(c)
    clusters.sort(key=lambda c: (-c.size, min(c.members)))
    return clusters, attached


# -- what changed, per cluster -----------------------------------------------------------------------

def previous_summary(root: Path) -> dict[str, dict[str, Any]]:
    """The last finished run's cluster rows by id (`summary.json`), or {} on a fresh work directory."""
    summary = _read_json(Path(root) / "summary.json") or {}
    return {c["id"]: c for c in summary.get("clusters", []) if isinstance(c, dict) and "id" in c}


def cluster_status(cluster_id: str, data_hash: str, eligible: bool, previous: dict[str, dict[str, Any]],
                   trained_now: set[str]) -> str:
    """new | unchanged | retrained | changed, against the last finished run (see the module docstring).

    `trained_now`: clusters this run trained. A changed eligible cluster trained by an earlier,
    interrupted attempt of this run is `retrained` too (its train row is keyed by its new data)."""
    before = previous.get(cluster_id)
    if before is None:
        return "new"
    if cluster_id in trained_now:
        return "retrained"
    if before.get("data_hash") in (None, data_hash):
        return "unchanged"
    return "retrained" if eligible else "changed"
