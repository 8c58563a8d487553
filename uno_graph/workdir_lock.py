"""One writer per work directory: `learn`, `baseline`, `forget` and `rollback` hold `<workdir>/.lock`.

Two writers on one work directory would reset each other's stages, interleave appended records,
delete each other's `tmp/` training directories and publish adapter versions over each other
(`registry.publish_adapter` assumes one writer). So a second writer is refused with an error naming
the running one.

The lock is `fcntl.flock` on `<workdir>/.lock`. The kernel drops it when the holder's file is closed,
however the holder ends (SIGKILL included), so a killed run never leaves the directory stuck and no
stale-lock clean-up exists. The holder writes its pid, host, command and start time into the file
(for the error message only: whether the directory is locked is the kernel's answer, not the file's).
The file is kept between runs; deleting a lock file that another process may be opening would let
two writers lock two different files.

The thread holding the lock may take it again (`forget --logs` runs `learn` inside `forget`); other
threads of the same process are refused like any other writer. Readers (serving processes,
`inspect`, `eval`) take no lock: every file a writer replaces is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from uno_graph.errors import WorkdirBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no OS lock to take
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_guard = threading.Lock()
_held: dict[Path, list[int]] = {}  # lock file -> [fd, owning thread id, depth]


def _command_line() -> str:
    """The running command as a user would have typed it (`uno-graph learn ...`)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name or "python"
    return shlex.join(argv)


def describe_self(action: str) -> dict[str, Any]:
    """What this process writes into the lock file for a refused writer to read."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "action": action, "command": _command_line(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder's description; it writes it right after locking, so give it a moment."""
    for _ in range(20):
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict):
            return data
        time.sleep(0.01)
    return None


def busy_message(root: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        who = "another process (it has not written its description into the lock file)"
    else:
        who = (f"pid {holder.get('pid')} on host {holder.get('host')} ({holder.get('action')}: "
               f"`{holder.get('command')}`, started {holder.get('started')})")
    return (f"work directory {root} is being written by {who}; only one learn, baseline, forget or rollback may "
            "run on a work directory at a time. Wait for it to finish, or stop that process (a stopped or killed "
            f"writer frees the directory at once); a later `learn` resumes where it stopped. Lock: {root / LOCK_FILE}")


def _acquire(path: Path, action: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkdirBusyError(busy_message(path.parent, _read_holder(fd))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(describe_self(action)) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # a reader between here and the unlock sees no stale description
    finally:
        os.close(fd)  # closing the last descriptor of the open file drops the flock


@contextmanager
def writer_lock(root: str | Path, action: str) -> Iterator[None]:
    """Hold the work directory's writer lock, or raise `WorkdirBusyError` naming the holder.

    `action` names what this writer does (`learn`, `forget`, ...) in a refused writer's message.
    The directory is created if missing.

    Example:
        >>> with writer_lock("runs/demo", "rollback"):                # doctest: +SKIP
        ...     ...
    """
    directory = Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory.resolve() / LOCK_FILE
    me = threading.get_ident()
    with _guard:
        held = _held.get(path)
        if held is None:
            _held[path] = [_acquire(path, action), me, 1]
        elif held[1] == me:
            held[2] += 1
        else:
            raise WorkdirBusyError(busy_message(path.parent, _read_holder(held[0])))
    try:
        yield
    finally:
        with _guard:
            held = _held[path]
            held[2] -= 1
            if held[2] == 0:
                del _held[path]
                _release(held[0])
