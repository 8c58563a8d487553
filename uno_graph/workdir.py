"""The work directory: every stage's output as inspectable JSONL, written so a killed run resumes.

Layout::

    <root>/system.json            base model, embedder, config, package version
    <root>/stages/<stage>.jsonl   one record per line, appended and fsynced as work finishes
    <root>/stages/<stage>.done    written last (atomically): the stage's input fingerprint + summary
    <root>/adapters/<cluster>/<role>/   PEFT adapter + manifest (see adapters/registry.py)
    <root>/chroma/                ChromaDB store (centroids, rules, cluster table)
    <root>/.lock                  held by the one writer at a time (`workdir_lock.py`)

A stage is finished iff its `.done` file exists and names the same input fingerprint. An
unfinished stage keeps the records it already appended; the stage skips their ids on rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, IO


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (inputs and settings of a stage)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a stage file; a torn last line (the process was killed mid-write) is dropped."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn tail from a kill: that record was never finished
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


class JsonlAppender:
    """Appends records durably (flush + fsync per record), repairing a torn tail first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut != len(data):
                with path.open("r+b") as fh:
                    fh.truncate(cut)
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


class Workdir:
    """Paths and stage bookkeeping for one learned system."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.stages = self.root / "stages"
        self.adapters = self.root / "adapters"
        self.chroma = self.root / "chroma"
        self.system_file = self.root / "system.json"

    def create(self) -> "Workdir":
        for path in (self.root, self.stages, self.adapters, self.chroma):
            path.mkdir(parents=True, exist_ok=True)
        return self

    # -- stage files -------------------------------------------------------------------------
    def stage_path(self, stage: str) -> Path:
        return self.stages / f"{stage}.jsonl"

    def read(self, stage: str) -> list[dict[str, Any]]:
        return read_jsonl(self.stage_path(stage))

    def write(self, stage: str, records: Iterable[dict[str, Any]]) -> None:
        """Replace a stage file whole (for stages computed in one go, e.g. clustering)."""
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(self.stage_path(stage), text)

    @contextmanager
    def append(self, stage: str) -> Iterator[JsonlAppender]:
        appender = JsonlAppender(self.stage_path(stage))
        try:
            yield appender
        finally:
            appender.close()

    def reset(self, stage: str) -> None:
        """Forget a stage's partial output (its inputs changed)."""
        self.stage_path(stage).unlink(missing_ok=True)
        (self.stages / f"{stage}.done").unlink(missing_ok=True)

    # -- completion markers -----------------------------------------------------------------
    def done_info(self, stage: str) -> dict[str, Any] | None:
        path = self.stages / f"{stage}.done"
        return json.loads(path.read_text()) if path.exists() else None

    def is_done(self, stage: str, inputs: str) -> bool:
        info = self.done_info(stage)
        return info is not None and info.get("inputs") == inputs

    def mark_done(self, stage: str, inputs: str, summary: dict[str, Any] | None = None) -> None:
        payload = {"stage": stage, "inputs": inputs, "summary": summary or {}}
        atomic_write_text(self.stages / f"{stage}.done", json.dumps(payload, indent=2) + "\n")

    def begin(self, stage: str, inputs: str) -> bool:
        """Start (or resume) a stage; False if it already finished on these inputs.

        Partial output written for other inputs is discarded; partial output for the same inputs
        is kept, so an interrupted stage continues where it stopped.
        """
        if self.is_done(stage, inputs):
            return False
        started = self.stages / f"{stage}.started"
        if self.done_info(stage) is not None or (started.exists() and started.read_text().strip() != inputs):
            self.reset(stage)
        atomic_write_text(started, inputs + "\n")
        return True

    def output_fingerprint(self, stage: str) -> str:
        """Fingerprint of a finished stage's output: the next stage's input."""
        path = self.stage_path(stage)
        digest = hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()
        return digest[:16]
