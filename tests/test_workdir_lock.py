"""One writer per work directory: a second learn / forget / rollback / baseline is refused with an error
naming the running writer, and a killed writer leaves nothing stuck."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from uno_graph.config import UnoConfig
from uno_graph.errors import WorkdirBusyError
from uno_graph.workdir import Workdir
from uno_graph.workdir_lock import LOCK_FILE, writer_lock

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from uno_graph.workdir_lock import writer_lock
with writer_lock(sys.argv[1], "learn"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _workdir(path: Path) -> Path:
    """A work directory with a system.json, as `learn` leaves it (what forget, rollback and baseline need)."""
    from uno_graph.pipeline import _write_system

    _write_system(Workdir(path).create(), UnoConfig())
    return path


@pytest.fixture()
def holder(tmp_path):
    """Another process holding the writer lock of `tmp_path / "work"`."""
    work = _workdir(tmp_path / "work")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(work), "holder-marker"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield work, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_with_the_running_ones_pid_host_command_and_start(holder, tmp_path, capsys):
    from uno_graph.cli import main
    from uno_graph.pipeline import learn

    work, proc = holder
    logs = tmp_path / "logs.jsonl"
    logs.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                             {"role": "user", "content": "thanks"}]}) + "\n")
    with pytest.raises(WorkdirBusyError) as refused:
        learn([logs], work, progress=False)
    message = str(refused.value)
    assert f"pid {proc.pid}" in message and f"on host {socket.gethostname()}" in message
    assert "holder-marker" in message and "learn:" in message and "started 20" in message
    assert not (work / "stages" / "distill.jsonl").exists() and not (work / "summary.json").exists()

    for argv in (["learn", str(logs), "--workdir", str(work), "-q"],
                 ["forget", "--workdir", str(work), "--user", "u1"],
                 ["rollback", "--workdir", str(work), "c-0"],
                 ["baseline", str(logs), "--workdir", str(work), "-q"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err and "is being written by" in err, argv


def test_a_killed_writer_leaves_the_work_directory_free(holder):
    work, proc = holder
    with pytest.raises(WorkdirBusyError):
        with writer_lock(work, "rollback"):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with writer_lock(work, "rollback"):
        described = json.loads((work / LOCK_FILE).read_text())
        assert described["pid"] == os.getpid() and described["action"] == "rollback"
    assert (work / LOCK_FILE).read_text() == ""  # released: no description left to mislead


def test_the_holding_thread_may_reenter_and_other_threads_are_refused(tmp_path):
    refused: list[BaseException] = []

    def other_writer() -> None:
        try:
            with writer_lock(tmp_path, "learn"):
                pass
        except WorkdirBusyError as exc:
            refused.append(exc)

    with writer_lock(tmp_path, "forget"):
        with writer_lock(tmp_path, "learn"):  # `forget --logs` learns again inside forget
            thread = threading.Thread(target=other_writer)
            thread.start()
            thread.join()
        assert json.loads((tmp_path / LOCK_FILE).read_text())["action"] == "forget"
    assert len(refused) == 1 and f"pid {os.getpid()}" in str(refused[0])
    with writer_lock(tmp_path, "learn"):  # free again once the outermost holder leaves
        pass
