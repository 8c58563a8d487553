"""The third evaluation-only log set (`examples/unseen/`) is well-formed; it is for one final evaluation only."""

import collections
import doctest
import importlib.util
import json
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "unseen"


def _checks():
    spec = importlib.util.spec_from_file_location("unseen_checks", HERE / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _questions(path: Path) -> set[str]:
    return {json.loads(x)["messages"][0]["content"].strip().lower() for x in path.read_text().splitlines() if x.strip()}


def test_unseen_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and report.duplicates == 0
    assert collections.Counter(r.metadata["topic"] for r in report.records) == dict.fromkeys(_checks().CHECKS, 22)
    assert all(r.metadata.get("subject") for r in report.records)
    items, problems = read_testset(HERE / "test.jsonl")
    assert len(items) == 40 and not problems
    logged = {r.query.strip().lower() for r in report.records}
    assert not {i.query.strip().lower() for i in items} & logged
    examples = HERE.parent
    others = set()
    for path in (examples / "logs.jsonl", examples / "test.jsonl", examples / "heldout" / "logs.jsonl",
                 examples / "heldout" / "test.jsonl"):
        others |= _questions(path)
    assert not (logged | _questions(HERE / "test.jsonl")) & others


def test_unseen_test_items_have_one_unlogged_subject_per_topic():
    logged = collections.defaultdict(set)
    for line in (HERE / "logs.jsonl").read_text().splitlines():
        meta = json.loads(line)["metadata"]
        logged[meta["topic"]].add(meta["subject"])
    per_topic = collections.defaultdict(list)
    for line in (HERE / "test.jsonl").read_text().splitlines():
        meta = json.loads(line)["metadata"]
        per_topic[meta["topic"]].append(meta["subject"])
    for topic, subjects in per_topic.items():
        assert len(subjects) == 8 and len(logged[topic]) == 2
        assert sum(s in logged[topic] for s in subjects) == 5
        assert len(set(subjects) - logged[topic]) == 1


def test_unseen_checks_doctests_and_topics():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {json.loads(x)["metadata"]["topic"] for x in (HERE / "test.jsonl").read_text().splitlines()}
    assert topics == set(checks.TOPIC_PREFERENCES) == set(checks.CHECKS)
    item = lambda t: {"metadata": {"topic": t}}  # noqa: E731
    assert checks.check(item("summary-line"), "Answer.\n\nSummary: the gist.")
    assert not checks.check(item("summary-line"), "Answer.\n**Summary:** the gist.")
    assert not checks.check(item("summary-line"), "Summary: the gist.")
    assert checks.check(item("three-lines"), "one\n\ntwo\nthree\n")
    assert not checks.check(item("three-lines"), "one\ntwo\nthree\nfour")
    assert checks.check(item("lowercase"), "all lowercase, 100 %.")
    assert not checks.check(item("lowercase"), "all lowercase but I.")
    assert not checks.check(item("lowercase"), "123")
    assert checks.check(item("yes-no"), "  No!! It depends.")
    assert not checks.check(item("yes-no"), "Nope.")
    assert not checks.check(item("yes-no"), "YES.")
    assert not checks.check(item("inconsistent"), "too short")
