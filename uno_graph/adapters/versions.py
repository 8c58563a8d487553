"""Versions of a cluster's adapters: ``adapters/<cluster>/<role>/v<N>/``, and which one is served.

Rules:

* Every publish of (cluster, role) adds ``v<N>`` (N = the highest so far + 1, from 1) with
  `registry.publish_adapter` (atomic, manifest last) and never touches earlier versions. A publish
  whose files and manifest equal the highest version's (all but `created` and `metrics`) is that
  publish again: when `learn` is killed after a version is in place but before the train stage
  records it, the rerun trains that cluster again, and the same adapter stays one version instead
  of becoming two.
* ``<role>/served.json`` names the version of that role currently served; it is written (atomically)
  when a version is promoted or rolled back to. The Chroma cluster table is what the graph routes by:
  its row points at the served version's directory (``adapters/<cluster>/<role>/v<N>``).
  `registry.list_adapters` (the OpenAI-compatible server, `UnoChatModel.from_workdir`, `inspect`)
  lists each role's served version.
* ``{"version": null}`` in ``served.json`` withdraws the role: no version of it is served or listed.
  `learn` writes it when the served version learned from logs a user had forgotten
  (`scope.forget_user`) and the retrained cluster no longer routes to it; the version's files stay
  (the manifest says what it learned from) but no server offers it again.
* A work directory from before versions holds the adapter in the role directory itself; it counts as
  version 0, stays where it is and loads as before.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from uno_graph.adapters.registry import (MANIFEST, _adapter_files, adapter_path, load_manifest, publish_adapter,
                                        sha256_file)
from uno_graph.errors import ArtifactError
from uno_graph.workdir import atomic_write_text

SERVED = "served.json"
_VERSION = re.compile(r"^v(\d+)$")


def version_dirs(role_dir: Path) -> dict[int, Path]:
    """Every version of a role directory by number (0 = an unversioned adapter in the directory itself)."""
    role_dir = Path(role_dir)
    found: dict[int, Path] = {}
    if (role_dir / MANIFEST).is_file():
        found[0] = role_dir
    if role_dir.is_dir():
        for child in role_dir.iterdir():
            match = _VERSION.match(child.name)
            if match and child.is_dir() and (child / MANIFEST).is_file():
                found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def version_of(path: Path, role_dir: Path) -> int | None:
    """The version number of an adapter directory inside `role_dir` (None if it is not one)."""
    path, role_dir = Path(path), Path(role_dir)
    if path == role_dir:
        return 0
    match = _VERSION.match(path.name)
    return int(match.group(1)) if match and path.parent == role_dir else None


def _served_record(role_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(role_dir) / SERVED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_withdrawn(role_dir: Path) -> bool:
    """Whether `served.json` says that no version of this role is served (``"version": null``)."""
    record = _served_record(role_dir)
    return record is not None and "version" in record and record["version"] is None


def served_version(role_dir: Path) -> int | None:
    """The version `served.json` names; None if it withdraws the role; without a readable
    `served.json` the unversioned adapter (0), else the highest."""
    role_dir = Path(role_dir)
    if is_withdrawn(role_dir):
        return None
    versions = version_dirs(role_dir)
    try:
        named = int((_served_record(role_dir) or {})["version"])
    except (ValueError, KeyError, TypeError):
        named = None
    if named is not None and named in versions:
        return named
    if 0 in versions:
        return 0
    return max(versions) if versions else None


def served_dir(role_dir: Path) -> Path | None:
    """The directory of the served version of a role (see `served_version`)."""
    version = served_version(role_dir)
    return None if version is None else version_dirs(role_dir)[version]


def set_served(role_dir: Path, version: int | None, why: str) -> None:
    """Name the served version of a role (atomically); None withdraws the role."""
    payload = {"version": version, "why": why, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(Path(role_dir) / SERVED, json.dumps(payload, indent=2) + "\n")


def publish_version(adapters_root: Path, cluster_id: str, role: str, source_dir: Path,
                    manifest: dict[str, Any]) -> Path:
    """Publish `source_dir` as the next version of (cluster, role) and make it the served one.

    The manifest gets `adapter_version`. Returns the version's directory.
    """
    role_dir = adapter_path(adapters_root, cluster_id, role)
    versions = version_dirs(role_dir)
    latest = max(versions, default=0)
    again = {**manifest, "adapter_version": latest, "role": role, "cluster_id": str(cluster_id)}
    if latest and _same_adapter(versions[latest], source_dir, again):
        set_served(role_dir, latest, "promoted")
        return versions[latest]
    number = latest + 1
    path = publish_adapter(adapters_root, cluster_id, role, source_dir, {**manifest, "adapter_version": number},
                           version=number)
    set_served(role_dir, number, "promoted")
    return path


def _same_adapter(version_dir: Path, source_dir: Path, manifest: dict[str, Any]) -> bool:
    """Whether `version_dir` already holds the adapter in `source_dir` with this manifest: the same
    files, and the same manifest but for when it was made and the training metrics (a repeated
    training takes another time)."""
    try:
        published = load_manifest(version_dir)
    except ArtifactError:
        return False
    source_dir = Path(source_dir)
    files = {rel.as_posix(): sha256_file(source_dir / rel) for rel in _adapter_files(source_dir)}

    def settled(m: dict[str, Any]) -> dict[str, Any]:  # as written to manifest.json, without what varies
        kept = {k: v for k, v in m.items() if k not in ("created", "metrics", "files", "version")}
        return json.loads(json.dumps(kept, default=str))

    return published.get("files") == files and settled(published) == settled(manifest)
