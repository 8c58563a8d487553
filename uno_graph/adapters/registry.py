"""Published adapters: `<workdir>/adapters/<cluster_id>/<role>/`, swapped in atomically and validated.

Each adapter directory holds the PEFT files (`adapter_config.json`, `adapter_model.safetensors`)
and a `manifest.json`, written last, that records what produced it and the sha256 of every file::

    {"version": "0.1.0", "role": "expert", "cluster_id": "3", "base_model": "smollm2-135m-instruct",
     "objective": "dpo_sft", "lora": {...}, "train": {...}, "data_hash": "…", "metrics": {...},
     "created": "2025-01-01T12:00:00+00:00", "files": {"adapter_config.json": "<sha256>", ...}}

`publish_adapter` builds the new version in a hidden temp directory next to the target (names
starting with "." are never adapters), fsyncs it, then renames it into place; an old version is
renamed aside first and deleted afterwards. A reader sees the old adapter, the new one, or (for
the instant between the two renames) none — never a partial one. One writer at a time is assumed
(the `learn` pipeline); a publish killed midway leaves hidden folders that `remove_interrupted`
clears (`learn` calls it first). With `version=N` the target is `<cluster_id>/<role>/v<N>/` instead: `learn`
keeps every published version and names the served one (`adapters/versions.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from uno_graph.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

ROLES = ("expert", "critic")
VARIANT_PREFIX = "expert@"  # a late-ensemble Expert variant's role: expert@<learner> (uno_graph.learners)


def variant_role(learner: str) -> str:
    """The role (and role directory) of the Expert variant trained by `learner` (``expert@kto``)."""
    return f"{VARIANT_PREFIX}{learner}"


def is_role(role: str) -> bool:
    """Whether `role` names an adapter role: "expert", "critic", or an Expert variant ``expert@<objective>``."""
    from uno_graph.config import EXPERT_OBJECTIVES

    return role in ROLES or (role.startswith(VARIANT_PREFIX) and role[len(VARIANT_PREFIX):] in EXPERT_OBJECTIVES)
MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
_FIX = "rerun `uno-graph learn` on this work directory to rebuild it"


def package_version() -> str:
    import uno_graph

    return getattr(uno_graph, "__version__", "0.1.0")


def adapter_path(adapters_root: Path, cluster_id: str, role: str) -> Path:
    """Where the adapter of (cluster, role) lives; validates both names."""
    if not is_role(role):
        raise ConfigError(f"adapter role {role!r} is invalid; allowed: {list(ROLES)} or expert@<objective> "
                          "(a late-ensemble variant; objectives: UnoConfig's EXPERT_OBJECTIVES)")
    cluster_id = str(cluster_id)
    if not cluster_id or cluster_id.startswith(".") or "/" in cluster_id or "\\" in cluster_id:
        raise ConfigError(
            f"cluster id {cluster_id!r} is invalid; expected a non-empty name without '/' or a leading '.'"
        )
    return Path(adapters_root) / cluster_id / role


def build_manifest(
    *,
    role: str,
    cluster_id: str,
    base_model: str,
    objective: str,
    lora: Any,
    train: Any,
    data_hash: str,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest without `files`/`created` (publish_adapter fills those in)."""

    def plain(settings: Any) -> Any:
        data = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    return {
        "version": package_version(),
        "role": role,
        "cluster_id": str(cluster_id),
        "base_model": base_model,
        "objective": objective,
        "lora": plain(lora),
        "train": plain(train),
        "data_hash": data_hash,
        "metrics": dict(metrics or {}),
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _adapter_files(directory: Path) -> list[Path]:
    """Relative paths of the adapter's files (everything but the manifest), sorted."""
    return sorted(
        p.relative_to(directory) for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_adapter(adapters_root: Path, cluster_id: str, role: str, source_dir: Path, manifest: dict, *,
                    version: int | None = None) -> Path:
    """Copy the PEFT adapter in `source_dir` to `<adapters_root>/<cluster_id>/<role>/` atomically
    (to `.../<role>/v<version>/` when `version` is given).

    `manifest` is completed with role, cluster_id, version, created and the files' sha256, and
    written last. Returns the published directory.
    """
    target = adapter_path(adapters_root, cluster_id, role)
    if version is not None:
        if int(version) < 1:
            raise ConfigError(f"adapter version {version!r} is invalid; expected an integer >= 1")
        target = target / f"v{int(version)}"
    source_dir = Path(source_dir)
    if not (source_dir / ADAPTER_CONFIG).is_file():
        raise ArtifactError(f"cannot publish {source_dir}: no {ADAPTER_CONFIG} there (not a saved PEFT adapter)")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.tmp-"))
    old: Path | None = None
    try:
        files: dict[str, str] = {}
        for rel in _adapter_files(source_dir):
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_dir / rel, dest)
            _fsync(dest)
            files[rel.as_posix()] = sha256_file(dest)
        full = {
            **manifest,
            "version": manifest.get("version") or package_version(),
            "role": role,
            "cluster_id": str(cluster_id),
            "created": manifest.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        with (tmp / MANIFEST).open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        _fsync(tmp)
        if target.exists():
            old = parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)  # put the previous version back
                old = None
            raise
        _fsync(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _run_publish_hooks(target, full)
    return target


_INTERRUPTED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[^.]+$")


def remove_interrupted(adapters_root: Path) -> list[Path]:
    """Clean up after a `publish_adapter` that was killed: returns what was removed or put back.

    A publish leaves its hidden folders behind only when its process dies: a `.<name>.tmp-*` folder
    (the new version, not renamed into place yet) is deleted; a `.<name>.old-*` folder (the previous
    version, renamed aside) is renamed back to `<name>` when the kill came before the new one took
    that place, else deleted. Call it only while holding the work directory's writer lock: another
    writer's publish in progress would look the same."""
    root = Path(adapters_root)
    if not root.is_dir():
        return []
    def subdirs(directory: Path) -> list[Path]:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))

    clusters = subdirs(root)
    found = []
    for directory in [root, *clusters, *(role for c in clusters for role in subdirs(c))]:  # where publishes write
        for entry in sorted(directory.iterdir()):
            match = _INTERRUPTED.match(entry.name)
            if not match or not entry.is_dir():
                continue
            original = directory / match.group("name")
            if match.group("kind") == "old" and not original.exists():
                os.rename(entry, original)
            else:
                shutil.rmtree(entry)
            found.append(entry)
    return found


# -- publish hooks: work to do once an adapter is in place (e.g. its GGUF for the llama.cpp engine) ----

PublishHook = Callable[[Path, dict[str, Any]], Any]
_PUBLISH_HOOKS: list[PublishHook] = []


def register_publish_hook(hook: PublishHook) -> Callable[[], None]:
    """Call `hook(adapter_dir, manifest)` after every `publish_adapter`; returns a function that removes it.

    A hook that raises is logged and never fails the publish (the adapter is already in place).
    """
    _PUBLISH_HOOKS.append(hook)

    def remove() -> None:
        if hook in _PUBLISH_HOOKS:
            _PUBLISH_HOOKS.remove(hook)

    return remove


def _run_publish_hooks(target: Path, manifest: dict[str, Any]) -> None:
    for hook in list(_PUBLISH_HOOKS):
        try:
            hook(target, manifest)
        except Exception as exc:  # noqa: BLE001 - the adapter is published; a hook only prepares extras
            log.warning("after publishing %s, hook %s failed: %s", target, getattr(hook, "__name__", hook), exc)


def gguf_on_publish(adapter_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """Default hook: convert the adapter to a GGUF LoRA for the llama.cpp engine (cached by content hash
    in `<cache>/lora-gguf/`, see `uno_graph.engines.gguf_lora`), so `backend="llamacpp"` starts without
    converting. Off with `UNO_GRAPH_GGUF_ON_PUBLISH=0`; skipped when the base model is not found locally."""
    if os.environ.get("UNO_GRAPH_GGUF_ON_PUBLISH", "1") == "0":
        return None
    from uno_graph.engines.gguf_lora import convert_on_publish

    try:
        return convert_on_publish(adapter_dir, manifest)
    except (ArtifactError, ConfigError) as exc:  # not a LoRA llama.cpp can take (DoRA, other modules, ...)
        log.debug("not converting %s to GGUF: %s", adapter_dir, exc)
        return None


register_publish_hook(gguf_on_publish)


def load_manifest(path: Path) -> dict[str, Any]:
    """Read an adapter's manifest; `path` is the adapter directory or the manifest file itself."""
    path = Path(path)
    file = path if path.name == MANIFEST else path / MANIFEST
    if not file.parent.is_dir():
        raise ArtifactError(f"adapter directory {file.parent} does not exist; {_FIX}")
    if not file.is_file():
        raise ArtifactError(f"adapter {file.parent} has no {MANIFEST} (incomplete or not an adapter); {_FIX}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{file} is not valid JSON ({exc}); {_FIX}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{file} holds {type(data).__name__}, expected a JSON object; {_FIX}")
    return data


def validate_adapter(path: Path, base_model_id: str) -> dict[str, Any]:
    """Check an adapter directory against its manifest and the serving base model; return the manifest.

    Raises ArtifactError naming the file and the problem when the directory or manifest is
    missing, a file is missing or its sha256 differs, or the adapter was trained on another model.
    """
    path = Path(path)
    manifest = load_manifest(path)
    file = path / MANIFEST
    missing_keys = [k for k in ("role", "cluster_id", "base_model", "files") if k not in manifest]
    if missing_keys:
        raise ArtifactError(f"{file} lacks {missing_keys}; {_FIX}")
    if manifest["base_model"] != base_model_id:
        raise ArtifactError(
            f"adapter {path} was trained on base model {manifest['base_model']!r} but the system serves "
            f"{base_model_id!r}; an adapter only fits the model it was trained on — {_FIX} with that base model"
        )
    files = manifest["files"]
    if not isinstance(files, dict) or ADAPTER_CONFIG not in files:
        raise ArtifactError(f"{file} lists no {ADAPTER_CONFIG} among its files; {_FIX}")
    for name, expected in sorted(files.items()):
        member = path / name
        if not member.is_file():
            raise ArtifactError(f"adapter file {member} is missing (listed in {file}); {_FIX}")
        actual = sha256_file(member)
        if actual != expected:
            raise ArtifactError(
                f"adapter file {member} was modified or corrupted: sha256 {actual[:12]}… differs from "
                f"{expected[:12]}… recorded in {file}; {_FIX}"
            )
    return manifest


def list_adapters(adapters_root: Path) -> list[dict[str, Any]]:
    """Manifests of every published adapter (sorted by cluster, role), each with its `path` added.

    Of a role with versions (`adapters/versions.py`), the served version is listed, and nothing of a
    withdrawn role (``served.json`` naming no version). Hidden entries
    (temp and old versions from `publish_adapter`, names starting with ".") are skipped, as are
    directories without a readable manifest.
    """
    from uno_graph.adapters.versions import is_withdrawn, served_dir

    root = Path(adapters_root)
    if not root.is_dir():
        return []
    found = []
    for cluster in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for role_dir in sorted(p for p in cluster.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if is_withdrawn(role_dir):
                continue
            path = served_dir(role_dir) or role_dir
            try:
                manifest = load_manifest(path)
            except ArtifactError as exc:
                log.warning("skipping %s: %s", role_dir, exc)
                continue
            found.append({**manifest, "path": str(path)})
    return found
