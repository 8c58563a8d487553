"""Safe promotion and rollback of a cluster's served adapter.

**Promotion** (`decide`, used by `learn` for a cluster it retrains). The adapter served before the
run (the Chroma table's row at the start of `learn`) is replaced only by a retrained path that is
at least as good on validation: its win rate *and* its lower bound are each >= the served version's
(`metrics` in its manifest). The two numbers come from validations on the data of their own runs
(the served version's on the cluster as it was then, the new one's on the cluster as it is now), not
from one comparison on the same held-out logs. A retrained cluster whose paths both lose to base
keeps its served adapter too. A served adapter is not kept when it learned from logs that are no
longer in the cluster (removed from the log set, or forgotten): its manifest's `log_ids` must all
still be members. An adapter that is not promoted is not trained on the full data nor published:
the run's train row records its validation (`candidate`) and why the served one stays.

**Rollback** (`rollback`, `uno-graph rollback`). Brings back the version served before the current
one (of the served role, or of `role`), validated against its manifest first: ``served.json`` and the
Chroma table row (route, adapter, metrics) point at it, and the cluster's row in
``stages/train.jsonl`` follows so a later `learn` that leaves the cluster unchanged keeps it. A
serving process picks it up on `UnoSystem.reload()` or with `watch()` (the table row changed).
Versions that learned from forgotten logs (`scope.forget_user`) are never brought back, nor, once
anything was forgotten, versions whose manifest predates `log_ids`.

**Withdrawal** (`withdraw_forgotten`, after `learn` trains). A role whose served version learned from
forgotten logs and that the table no longer routes to gets ``served.json`` = ``{"version": null}``,
so `list_adapters` (the OpenAI-compatible server, `UnoChatModel.from_workdir`, `inspect`) stops
offering what the graph stopped serving. A rollback of that role then looks at all its versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uno_graph.adapters.registry import ROLES, adapter_path, is_role, load_manifest, validate_adapter
from uno_graph.adapters.versions import is_withdrawn, served_version, set_served, version_dirs, version_of
from uno_graph.errors import ArtifactError, ConfigError
from uno_graph.workdir import Workdir
from uno_graph.workdir_lock import writer_lock


@dataclass(frozen=True)
class Served:
    """The adapter a cluster's table row routes to, with its manifest."""

    role: str
    path: str  # relative to the work directory
    manifest: dict[str, Any]
    max_new_tokens: int | None = None

    @property
    def win_rate(self) -> float:
        return float(self.manifest.get("metrics", {}).get("win_rate") or 0.0)

    @property
    def lower_bound(self) -> float:
        return float(self.manifest.get("metrics", {}).get("lower_bound") or 0.0)

    @property
    def version(self) -> str:
        return f"v{self.manifest.get('adapter_version', 0)}"


def served_adapter(root: Path, row: dict[str, Any] | None, members: list[str],
                   forgotten: set[str] | frozenset[str] = frozenset()) -> Served | None:
    """The adapter `row` serves, if it may stay: readable, and learned only from logs in `members`.

    An adapter from before manifests listed `log_ids` may stay unless the work directory has
    forgotten logs (`forgotten`): then whether it learned from them cannot be told."""
    if not row or row.get("route") not in ROLES or not row.get("adapter"):
        return None
    try:
        manifest = load_manifest(Path(root) / str(row["adapter"]))
    except ArtifactError:
        return None
    log_ids = manifest.get("log_ids")
    if log_ids is None and forgotten:
        return None
    if log_ids is not None and not set(log_ids) <= set(members):
        return None
    budget = int(row.get("max_new_tokens") or 0) or None
    return Served(str(row["route"]), str(row["adapter"]), manifest, budget)


def at_least_as_good(win_rate: float, lower_bound: float, served: Served) -> bool:
    """The promotion rule: both validation numbers at least the served version's."""
    return win_rate >= served.win_rate and lower_bound >= served.lower_bound


def keep_served(result: dict[str, Any], served: Served, why: str) -> dict[str, Any]:
    """`result` (a train row) turned into one that keeps `served`."""
    result.update(route=served.role, adapter=served.path, win_rate=served.win_rate, lower_bound=served.lower_bound,
                  max_new_tokens=served.max_new_tokens if served.role == "expert" else None, promotion="kept",
                  reason=(f"{served.role}: kept {served.path} (win rate {served.win_rate:.2f}, lower bound "
                          f"{served.lower_bound:.2f}, validated on its own run's data); {why}"))
    return result


# -- rollback ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RolledBack:
    cluster_id: str
    role: str
    version: int
    path: str  # relative to the work directory
    previous: str  # what was served before: "<role> v<N>" or "base"
    metrics: dict[str, Any]

    def describe(self) -> str:
        win, low = self.metrics.get("win_rate"), self.metrics.get("lower_bound")
        numbers = "" if win is None else f", win rate {win:.2f}, lower bound {low or 0:.2f} (validated in its own run)"
        return f"{self.cluster_id}: now serving {self.role} v{self.version} ({self.path}){numbers}; was {self.previous}"


def rollback(workdir: str | Path, cluster_id: str, role: str | None = None, *, store=None) -> RolledBack:
    """Serve the previous version of a cluster's adapter (see the module docstring).

    Example:
        >>> rollback("runs/demo", "c-1a2b3c4d").describe()      # doctest: +SKIP
        'c-1a2b3c4d: now serving expert v1 (adapters/c-1a2b3c4d/expert/v1), ...; was expert v2'
    """
    from uno_graph.graph import load_config
    from uno_graph.store import UnoStore

    wd = Workdir(workdir)
    config = load_config(wd.root)
    with writer_lock(wd.root, "rollback"):
        return _rollback(wd, config.base_model, cluster_id, role, store or UnoStore.persistent(wd.chroma))


def _rollback(wd: Workdir, base_model: str, cluster_id: str, role: str | None, store) -> RolledBack:
    """`rollback`'s work, done while the work directory's writer lock is held."""
    from uno_graph.scope import load_forgotten

    row = store.cluster(cluster_id)
    served_role = row.get("route") if row.get("route") in ROLES and row.get("adapter") else None
    role = role or served_role
    if role is None:
        raise ConfigError(f"cluster {cluster_id} is served by the base model; give --role expert or --role critic "
                          "to bring back one of its versions")
    role_dir = adapter_path(wd.adapters, cluster_id, role)
    versions = version_dirs(role_dir)
    current = version_of(wd.root / str(row["adapter"]), role_dir) if role == served_role else None
    if role == served_role:
        if current is None:
            raise ArtifactError(f"the table serves {row['adapter']}, which is not a version of {role_dir}")
        candidates = [n for n in sorted(versions, reverse=True) if n < current]
    elif is_withdrawn(role_dir):  # its served version learned from forgotten logs: any other may come back
        candidates = sorted(versions, reverse=True)
    else:
        last = served_version(role_dir)
        candidates = [last] if last is not None else []
    forgotten = load_forgotten(wd.root).log_ids

    def learned_from_forgotten(n: int) -> bool:
        return bool(forgotten) and _learned_from(load_manifest(versions[n]), forgotten)

    allowed = [n for n in candidates if not learned_from_forgotten(n)]
    if not allowed:
        have = ", ".join(f"v{n}" for n in versions) or "none"
        raise ArtifactError(f"no earlier {role} version of {cluster_id} to bring back (versions: {have}"
                            + ("; some learned from forgotten logs" if len(allowed) < len(candidates) else "") + ")")
    target = allowed[0]
    path = versions[target]
    manifest = validate_adapter(path, base_model)
    rel = str(path.relative_to(wd.root))
    metrics = dict(manifest.get("metrics", {}))
    budget = manifest.get("max_new_tokens") or (row.get("max_new_tokens") if role == served_role else 0) or 0
    previous = f"{served_role} v{current}" if served_role else "base"
    set_served(role_dir, target, "rollback")
    reason = f"{role}: rolled back to v{target} (was {previous})"
    store.update_cluster(cluster_id, route=role, adapter=rel, status="ready", win_rate=metrics.get("win_rate"),
                         lower_bound=metrics.get("lower_bound"), max_new_tokens=int(budget), reason=reason)
    rows = wd.read("train")
    if any(r.get("cluster_id") == cluster_id for r in rows):
        wd.write("train", [{**r, "route": role, "adapter": rel, "win_rate": metrics.get("win_rate"),
                            "lower_bound": metrics.get("lower_bound"), "max_new_tokens": int(budget) or None,
                            "reason": reason, "promotion": "rolled back"}
                           if r.get("cluster_id") == cluster_id else r for r in rows])
    return RolledBack(cluster_id, role, target, rel, previous, metrics)


def _learned_from(manifest: dict[str, Any], log_ids: set[str]) -> bool:
    """Whether an adapter learned from any of `log_ids` (one whose manifest lists none cannot tell: yes)."""
    learned = manifest.get("log_ids")
    return learned is None or bool(set(learned) & log_ids)


def withdraw_forgotten(root: str | Path, routed: set[str], forgotten: set[str]) -> list[str]:
    """Withdraw every role whose served version learned from `forgotten` log ids and is not in
    `routed` (adapter paths relative to `root` that the table serves). Returns the withdrawn versions."""
    adapters = Path(root) / "adapters"
    if not forgotten or not adapters.is_dir():
        return []
    withdrawn = []
    for cluster_dir in sorted(p for p in adapters.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for role_dir in sorted(p for p in cluster_dir.iterdir() if p.is_dir() and is_role(p.name)):  # variants too
            version = served_version(role_dir)
            if version is None:
                continue
            path = version_dirs(role_dir)[version]
            rel = str(path.relative_to(root))
            try:
                manifest = load_manifest(path)
            except ArtifactError:
                continue
            if rel not in routed and _learned_from(manifest, forgotten):
                set_served(role_dir, None, "withdrawn: learned from forgotten logs and no longer routed")
                withdrawn.append(rel)
    return withdrawn
