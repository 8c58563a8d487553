"""`UnoStore.forget_rules`: only the forgotten rows are deleted, by id and in batches; the rules never
vanish whole, and a swap stopped by a crash is finished by the next store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uno_graph.store import RULES, RULES_REBUILD, UnoStore

PLANT = "ZEBRAQUOKKA"


def _store(path: Path) -> UnoStore:
    store = UnoStore.persistent(path)
    rows = [{"id": f"r{i}", "rule": (f"{PLANT} rule {i}" if i % 3 == 0 else f"keep rule {i}"), "cluster_id": "c",
             "log_id": f"log-{i}", "user_id": "u1" if i % 3 == 0 else "u0"} for i in range(12)]
    store.put_rules(rows, np.random.default_rng(0).random((12, 8)))
    return store


def _names(store: UnoStore) -> set[str]:
    return {c.name for c in store.client.list_collections()}


def _files_with_plant(path: Path) -> list[str]:
    return [str(p) for p in path.rglob("*") if p.is_file() and PLANT.encode() in p.read_bytes()]


def test_only_the_forgotten_rows_go_by_id_in_batches_and_their_text_leaves_chromas_files(tmp_path, monkeypatch):
    store = _store(tmp_path / "chroma")
    collection_type = type(store.rules)
    deleted: list[list[str]] = []
    real_delete = collection_type.delete

    def spy(self, ids=None, **kwargs):
        deleted.append(list(ids or []))
        return real_delete(self, ids=ids, **kwargs)

    monkeypatch.setattr(collection_type, "delete", spy)
    monkeypatch.setattr(store.client, "get_max_batch_size", lambda: 3)
    real_drop = store.client.delete_collection
    copies_at_drop: list[int] = []

    def drop(name):  # the original goes only once its copy holds every remaining rule
        if name == RULES:
            copies_at_drop.append(store.client.get_collection(RULES_REBUILD).count())
        return real_drop(name)

    monkeypatch.setattr(store.client, "delete_collection", drop)
    assert store.forget_rules(user_id="u1", log_ids={"log-1"}) == 5
    assert [len(batch) for batch in deleted] == [3, 2]
    assert sorted(i for batch in deleted for i in batch) == sorted(["r0", "r1", "r3", "r6", "r9"])
    assert copies_at_drop == [7]
    assert sorted(store.rules.get()["ids"]) == sorted(f"r{i}" for i in (2, 4, 5, 7, 8, 10, 11))
    assert _names(store) == {"uno_clusters", RULES}
    store.compact()
    assert _files_with_plant(tmp_path / "chroma") == []
    assert store.forget_rules(user_id="u1") == 0


@pytest.mark.parametrize("stop_at", ["drop", "rename"])
def test_a_swap_stopped_midway_loses_no_rule_and_the_next_forget_finishes_it(tmp_path, monkeypatch, stop_at):
    store = _store(tmp_path / "chroma")
    if stop_at == "drop":  # the copy is built, the original not dropped yet
        monkeypatch.setattr(store.client, "delete_collection", lambda name: (_ for _ in ()).throw(OSError("killed")))
    else:  # the original is dropped, the copy not renamed yet
        monkeypatch.setattr(type(store.rules), "modify", lambda self, **kw: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):
        store.forget_rules(user_id="u1")
    monkeypatch.undo()
    del store

    reopened = UnoStore.persistent(tmp_path / "chroma")
    assert reopened.rules.count() == 8  # every remaining rule readable, none of u1's
    assert all(PLANT not in d for d in reopened.rules.get()["documents"])
    assert reopened.forget_rules(log_ids={"log-2"}) == 1
    assert _names(reopened) == {"uno_clusters", RULES} and reopened.rules.count() == 7


def test_forget_scrubs_the_users_records_from_the_exported_threads(tmp_path):
    """`learn --threads` keeps a copy of the checkpointer's threads in the work directory; forgetting a
    user removes their records from it (by user id, or by a log id found in the stage outputs)."""
    import json

    from uno_graph.scope import THREADS_FILE, _scrub_exported_threads

    path = tmp_path / THREADS_FILE
    records = [{"id": "t1/a", "user_id": "u1"}, {"id": "t2/b", "user_id": "u2"}, {"id": "t3/c", "user_id": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    assert _scrub_exported_threads(path, "u1", {"t3/c"}) == 2
    assert path.read_text() == json.dumps(records[1]) + "\nnot json\n"
    assert _scrub_exported_threads(path, "u1", set()) == 0
    assert _scrub_exported_threads(tmp_path / "none.jsonl", "u1", set()) == 0
