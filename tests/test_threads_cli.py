"""`uno-graph export-threads` and `learn --threads`: an app's SqliteSaver file, read-only, as logs; and
`--checkpointer MODULE:NAME` on both, any checkpointer by its import path (`tests/thread_savers.py`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph

from tests import thread_savers
from tests.requires import require_module
from uno_graph import pipeline
from uno_graph.cli import main

SqliteSaver = require_module("langgraph.checkpoint.sqlite").SqliteSaver

REPLIES = ["Boil the egg for 9 minutes, then cool it in cold water, peel it and serve.",
           "1. Boil 9 min. 2. Cool. 3. Peel.",
           "Paris is the capital of France.",
           "Lyon has about half a million people.",
           "Marseille is the oldest city in France."]
EGG = {"configurable": {"thread_id": "egg", "user_id": "u1"}}
FRANCE = {"configurable": {"thread_id": "france", "user_id": "u2"}}


def _app(saver):
    """A one-node chat graph on a fake model, checkpointed by `saver`."""
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in REPLIES]))
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "chat")
    return graph.compile(checkpointer=saver)


@pytest.fixture()
def running(tmp_path):
    """A running app's checkpoint file: two threads, the egg one with a complaint after its first answer.

    Yields the file and the app, whose connection stays open while the test reads the file."""
    db = tmp_path / "app" / "checkpoints.sqlite"
    db.parent.mkdir()
    with SqliteSaver.from_conn_string(str(db)) as saver:
        app = _app(saver)
        app.invoke({"messages": [("user", "How do I boil an egg?")]}, EGG)
        app.invoke({"messages": [("user", "Too long, just give me the steps")]}, EGG)
        app.invoke({"messages": [("user", "Capital of France?")]}, FRANCE)
        app.invoke({"messages": [("user", "And how big is Lyon?")]}, FRANCE)
        yield db, app


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_threads_writes_logs_with_followups_and_stable_ids(running, tmp_path, capsys):
    db, app = running
    out = tmp_path / "threads.jsonl"
    before = _digest(db)
    assert main(["export-threads", str(db), str(out)]) == 0
    assert "4 log(s) from 2 thread(s) written to" in capsys.readouterr().out
    assert _digest(db) == before  # read-only: the app's file is untouched

    records = _records(out)
    egg = [r for r in records if r["metadata"]["thread_id"] == "egg"]
    assert egg[0]["messages"] == [{"role": "user", "content": "How do I boil an egg?"},
                                  {"role": "assistant", "content": REPLIES[0]},
                                  {"role": "user", "content": "Too long, just give me the steps"}]
    assert {r["user_id"] for r in egg} == {"u1"} and egg[0]["metadata"]["source"] == "checkpointer"
    assert {r["user_id"] for r in records if r["metadata"]["thread_id"] == "france"} == {"u2"}

    # the app goes on: the same answers keep their ids, and Lyon's answer gains its follow-up
    app.invoke({"messages": [("user", "What about Marseille?")]}, FRANCE)
    assert main(["export-threads", str(db), str(out)]) == 0
    again = {r["id"]: r for r in _records(out)}
    assert len(again) == 5 and {r["id"] for r in records} < set(again)
    lyon = next(r for r in records if r["messages"][1]["content"] == REPLIES[3])
    assert again[lyon["id"]]["messages"][-1] == {"role": "user", "content": "What about Marseille?"}


def test_a_file_not_in_wal_mode_is_read_without_being_written(running, tmp_path):
    """SqliteSaver.setup() would switch the file to WAL: on a read-only connection that fails, so it is skipped."""
    db, _ = running
    copy = tmp_path / "delete-journal.sqlite"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    dst.close()
    before = _digest(copy)
    assert main(["export-threads", str(copy), str(tmp_path / "out.jsonl")]) == 0
    assert len(_records(tmp_path / "out.jsonl")) == 4 and _digest(copy) == before
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


class _Distilling(Exception):
    """Raised where `learn` reaches its distill stage: no model is loaded or trained here."""


@pytest.fixture
def seen(monkeypatch):
    """`learn` stops at its distill stage (no model is loaded); the records it was given land in the dict."""
    got = {}

    def distill(run, records, logs_fp):
        got["records"] = records
        raise _Distilling

    monkeypatch.setattr(pipeline, "_distill", distill)
    return got


def test_learn_threads_exports_into_the_workdir_and_reads_them_as_logs(running, tmp_path, seen, capsys):
    db, _ = running
    logs = tmp_path / "logs.jsonl"
    logs.write_text(json.dumps({"id": "file-1", "messages": [
        {"role": "user", "content": "Where is Rome?"}, {"role": "assistant", "content": "In Italy."},
        {"role": "user", "content": "One sentence please"}]}) + "\n")
    work = tmp_path / "work"
    with pytest.raises(_Distilling):
        main(["learn", str(logs), "--threads", str(db), "--workdir", str(work), "-q"])
    assert "threads: 4 log(s) from 2 thread(s)" in capsys.readouterr().out
    exported = _records(work / "threads.jsonl")
    assert not list(work.glob(".threads.jsonl*"))  # written atomically: no temporary file left
    by_id = {r.id: r for r in seen["records"]}
    assert set(by_id) == {"file-1"} | {r["id"] for r in exported}
    egg = next(by_id[r["id"]] for r in exported if r["messages"][1]["content"] == REPLIES[0])
    assert egg.feedback_text == "Too long, just give me the steps" and egg.user_id == "u1"

    # --threads alone, and twice: the second copy of each log is a duplicate, not a second log
    seen.clear()
    with pytest.raises(_Distilling):
        main(["learn", "--threads", str(db), "--threads", str(db), "--workdir", str(work), "-q"])
    assert len(seen["records"]) == 4 and len(_records(work / "threads.jsonl")) == 8


def test_bad_paths_give_one_line_errors_naming_the_path_and_the_fix(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (a)")
    conn.close()
    out = tmp_path / "out.jsonl"
    for bad in (tmp_path / "missing.sqlite", text, other, tmp_path):
        for argv in (["export-threads", str(bad), str(out)],
                     ["learn", "--threads", str(bad), "--workdir", str(tmp_path / "work"), "-q"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and str(bad) in err and "SqliteSaver" in err, err
    assert not out.exists() and not (tmp_path / "work" / "threads.jsonl").exists()
    with sqlite3.connect(other) as conn:  # nothing was created in a database that is not a checkpointer's
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    conn.close()

    assert main(["learn", "--workdir", str(tmp_path / "work"), "-q"]) == 2
    assert "give JSONL log files, --threads CHECKPOINT_DB, --checkpointer MODULE:NAME" in capsys.readouterr().err
    assert main(["export-threads", str(out)]) == 2
    assert "give CHECKPOINT_DB OUT.jsonl, or --checkpointer MODULE:NAME OUT.jsonl" in capsys.readouterr().err


EGG_LOG = [{"role": "user", "content": thread_savers.QUESTION},
           {"role": "assistant", "content": thread_savers.REPLIES[0]},
           {"role": "user", "content": thread_savers.COMPLAINT}]


@pytest.mark.parametrize("name", ["SAVER", "GRAPH", "recorded", "connected", "from_settings"])
def test_export_threads_reads_any_checkpointer_by_import_path(name, tmp_path, capsys):
    """An instance, a compiled graph, a factory, a context manager, a factory of one: the same thread each time."""
    out = tmp_path / "threads.jsonl"
    exited = len(thread_savers.exited)
    assert main(["export-threads", "--checkpointer", f"tests.thread_savers:{name}", str(out)]) == 0
    assert "2 log(s) from 1 thread(s) written to" in capsys.readouterr().out
    first = _records(out)[0]
    assert first["messages"] == EGG_LOG and first["user_id"] == "u1"
    assert first["metadata"]["thread_id"] == "egg" and first["metadata"]["source"] == "checkpointer"
    assert len(thread_savers.exited) == exited + (name in ("connected", "from_settings"))  # the connection is closed


def test_learn_reads_a_checkpointer_by_import_path_with_the_sqlite_files(running, tmp_path, seen, capsys):
    db, _ = running
    work = tmp_path / "work"
    with pytest.raises(_Distilling):
        main(["learn", "--threads", str(db), "--checkpointer", "tests.thread_savers:recorded", "--workdir", str(work),
              "-q"])
    assert "threads: 6 log(s) from 3 thread(s) of " in capsys.readouterr().out
    assert {r["metadata"]["thread_id"] for r in _records(work / "threads.jsonl")} == {"egg", "france"}
    egg = [r for r in seen["records"] if r.metadata.get("thread_id") == "egg" and r.messages[1]["content"] ==
           thread_savers.REPLIES[0]]
    assert len(egg) == 2  # one thread "egg" in each source, the same conversation
    assert {r.feedback_text for r in egg} == {thread_savers.COMPLAINT} and {r.user_id for r in egg} == {"u1"}

    seen.clear()  # the import path alone
    with pytest.raises(_Distilling):
        main(["learn", "--checkpointer", "tests.thread_savers:connected", "--workdir", str(work), "-q"])
    assert len(seen["records"]) == 2


def test_a_module_in_the_current_directory_is_importable(tmp_path, monkeypatch, capsys):
    """The `uno-graph` script does not put the current directory on sys.path; the option does."""
    (tmp_path / "app_memory.py").write_text("from tests.thread_savers import recorded as checkpointer\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "app_memory", raising=False)
    try:
        assert main(["export-threads", "--checkpointer", "app_memory:checkpointer", "out.jsonl"]) == 0
    finally:
        sys.modules.pop("app_memory", None)
    assert len(_records(tmp_path / "out.jsonl")) == 2


@pytest.mark.parametrize(("spec", "says"), [
    ("tests.thread_savers", "is not an import path"),
    ("tests.no_such_module:saver", "cannot import 'tests.no_such_module'"),
    ("tests.thread_savers:missing", "has no 'missing'"),
    ("tests.thread_savers:NOT_A_SAVER", "gives a dict, not a LangGraph checkpointer"),
    ("tests.thread_savers:needs_url", "needs arguments (url)"),
])
def test_a_wrong_import_path_is_a_one_line_error_naming_it_and_the_fix(spec, says, tmp_path, capsys):
    out, work = tmp_path / "out.jsonl", tmp_path / "work"
    for argv in (["export-threads", "--checkpointer", spec, str(out)],
                 ["learn", "--checkpointer", spec, "--workdir", str(work), "-q"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and spec in err and says in err and "MODULE:NAME" in err, err
    assert not out.exists() and not (work / "threads.jsonl").exists()
