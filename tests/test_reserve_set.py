"""The fifth evaluation-only log set (`examples/reserve/`) is well-formed; it is kept sealed for one
final evaluation, so nothing here looks at how any model does on it."""

import collections
import doctest
import importlib.util
import json
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "reserve"
OTHER_SETS = ["logs.jsonl", "test.jsonl", "heldout/logs.jsonl", "heldout/test.jsonl", "unseen/logs.jsonl",
              "unseen/test.jsonl", "sealed/logs.jsonl", "sealed/test.jsonl"]


def _checks():
    spec = importlib.util.spec_from_file_location("reserve_checks", HERE / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _questions(path: Path) -> set[str]:
    """Every user turn before the first answer, normalised."""
    out = set()
    for row in _rows(path):
        for m in row["messages"]:
            if m["role"] == "assistant":
                break
            if m["role"] == "user":
                out.add(" ".join(m["content"].lower().split()))
    return out


def test_reserve_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and report.duplicates == 0
    assert collections.Counter(r.metadata["topic"] for r in report.records) == dict.fromkeys(_checks().CHECKS, 22)
    assert all(r.metadata.get("subject") and r.user_id and r.has_signal for r in report.records)
    items, problems = read_testset(HERE / "test.jsonl")
    assert len(items) == 40 and not problems
    assert collections.Counter(i.metadata["topic"] for i in items) == dict.fromkeys(_checks().CHECKS, 8)
    logged = _questions(HERE / "logs.jsonl")
    tested = _questions(HERE / "test.jsonl")
    assert len(logged) == 110 and len(tested) == 40 and not logged & tested
    others = set()
    for name in OTHER_SETS:
        others |= _questions(HERE.parent / name)
    assert not (logged | tested) & others


def test_reserve_test_items_have_one_unlogged_subject_per_topic():
    logged = collections.defaultdict(set)
    for row in _rows(HERE / "logs.jsonl"):
        logged[row["metadata"]["topic"]].add(row["metadata"]["subject"])
    per_topic = collections.defaultdict(list)
    for row in _rows(HERE / "test.jsonl"):
        per_topic[row["metadata"]["topic"]].append(row["metadata"]["subject"])
    assert set(per_topic) == set(logged)
    for topic, subjects in per_topic.items():
        assert len(subjects) == 8 and len(logged[topic]) == 2
        assert sum(s in logged[topic] for s in subjects) == 5
        assert len(set(subjects) - logged[topic]) == 1
    all_logged = set().union(*logged.values())
    for path in ("heldout/logs.jsonl", "unseen/logs.jsonl", "sealed/logs.jsonl", "heldout/test.jsonl",
                 "unseen/test.jsonl", "sealed/test.jsonl"):
        other = {row["metadata"].get("subject") for row in _rows(HERE.parent / path)}
        assert not other & (all_logged | {s for subjects in per_topic.values() for s in subjects})


def test_reserve_test_items_carry_a_user_of_their_topic():
    writers = collections.defaultdict(collections.Counter)  # topic -> user -> logs
    for row in _rows(HERE / "logs.jsonl"):
        writers[row["metadata"]["topic"]][row["user_id"]] += 1
    for row in _rows(HERE / "test.jsonl"):
        topic = row["metadata"]["topic"]
        # a returning user: one who wrote more than one log in that topic (one-off users never do)
        assert writers[topic][row["user_id"]] >= 2, (row["id"], row["user_id"])
    for row in _rows(HERE / "logs.jsonl") + _rows(HERE / "test.jsonl"):
        assert row["user_id"].startswith("acct_") and len(row["user_id"]) == 13


def test_reserve_checks_doctests_and_topics():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {row["metadata"]["topic"] for row in _rows(HERE / "test.jsonl")}
    assert topics == set(checks.TOPIC_PREFERENCES) == set(checks.CHECKS)
    item = lambda t: {"metadata": {"topic": t}}  # noqa: E731
    assert checks.check(item("table"), "| a | b |\n| :-- | --: |\n| 1 | 2 |\n| 3 | 4 |")
    assert not checks.check(item("table"), "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```")
    assert not checks.check(item("table"), "| a | b |\n|---|\n| 1 | 2 |")
    assert not checks.check(item("table"), "a\tb\n1\t2")
    assert checks.check(item("you-first"), "You’re fine: rest the ankle.")
    assert not checks.check(item("you-first"), "you should rest it.")
    assert not checks.check(item("you-first"), "**You** should rest it.")
    assert checks.check(item("checklist"), "  - [ ] a\n  - [x] b\n- [X] c")
    assert not checks.check(item("checklist"), "-[ ] a\n-[ ] b\n-[ ] c")
    assert not checks.check(item("checklist"), "☐ a\n☐ b\n☐ c")
    assert checks.check(item("next-step"), "Plane the edge.\n\n\nNext step:   try it on pine.  \n")
    assert not checks.check(item("next-step"), "Plane the edge.\nNext step: try it on pine.\nGood luck!")
    assert not checks.check(item("next-step"), "Plane the edge. Next step: try it on pine.")
    assert not checks.check(item("inconsistent"), "too short")
    assert not checks.check(item("inconsistent"), " ".join(["word"] * 151))
