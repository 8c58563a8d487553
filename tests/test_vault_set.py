"""The sixth evaluation-only log set (`examples/vault/`) is well-formed; it is kept sealed for one
final evaluation, so nothing here looks at how any model does on it."""

import collections
import doctest
import importlib.util
import json
import re
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "vault"
OTHER_SETS = ["logs.jsonl", "test.jsonl", "heldout/logs.jsonl", "heldout/test.jsonl", "unseen/logs.jsonl",
              "unseen/test.jsonl", "sealed/logs.jsonl", "sealed/test.jsonl", "reserve/logs.jsonl", "reserve/test.jsonl"]
USER_ID = re.compile(r"^[a-z]+-[a-z]+-\d{2}$")


def _checks():
    spec = importlib.util.spec_from_file_location("vault_checks", HERE / "checks.py")
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


def test_vault_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and not report.warnings and report.duplicates == 0
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


def test_vault_test_items_have_one_unlogged_subject_per_topic():
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
    mine = set().union(*logged.values()) | {s for subjects in per_topic.values() for s in subjects}
    for name in OTHER_SETS:
        other = set()
        for row in _rows(HERE.parent / name):
            other |= {row["metadata"].get("subject"), row["metadata"].get("topic")}
        assert not other & mine, name


def test_vault_test_items_carry_a_returning_user_of_their_topic():
    writers = collections.defaultdict(collections.Counter)  # topic -> user -> logs
    for row in _rows(HERE / "logs.jsonl"):
        writers[row["metadata"]["topic"]][row["user_id"]] += 1
    for row in _rows(HERE / "test.jsonl"):
        # a returning user: at least three logs in that topic (contrarians have two, one-off users one)
        assert writers[row["metadata"]["topic"]][row["user_id"]] >= 3, (row["id"], row["user_id"])
    for row in _rows(HERE / "logs.jsonl") + _rows(HERE / "test.jsonl"):
        assert USER_ID.match(row["user_id"]), row["user_id"]
    assert [r["id"] for r in _rows(HERE / "logs.jsonl")] == [f"vault-{n:03d}" for n in range(1, 111)]
    assert [r["id"] for r in _rows(HERE / "test.jsonl")] == [f"vault-q{n:02d}" for n in range(1, 41)]


def test_vault_checks_doctests_and_topics():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {row["metadata"]["topic"] for row in _rows(HERE / "test.jsonl")}
    assert topics == set(checks.TOPIC_PREFERENCES) == set(checks.CHECKS)
    item = lambda t: {"metadata": {"topic": t}}  # noqa: E731
    assert checks.check(item("bold-lead"), "  **Yes, two pairs.**\nRotate them.")
    assert checks.check(item("bold-lead"), "**Short version:** rotate two pairs.")
    assert not checks.check(item("bold-lead"), "***Yes, two pairs.*** Rotate them.")
    assert not checks.check(item("bold-lead"), "__Yes, two pairs.__ Rotate them.")
    assert not checks.check(item("bold-lead"), "** Yes, two pairs. ** Rotate them.")
    assert not checks.check(item("bold-lead"), "**" + " ".join(["word"] * 13) + "** Rotate them.")
    assert checks.check(item("quote-line"), "> Sm*th finds Smyth.\n\nUse wildcards.")
    assert not checks.check(item("quote-line"), "Use wildcards:\n    > Sm*th finds Smyth.")
    assert not checks.check(item("quote-line"), "Use wildcards:\n» Sm*th finds Smyth.")
    assert not checks.check(item("quote-line"), "> Use wildcards.\n> Sm*th finds Smyth.")
    assert checks.check(item("warning-line"), "Carry a whistle.\n  Warning: never dive alone.")
    assert not checks.check(item("warning-line"), "Carry a whistle.\n⚠️ Warning: never dive alone.")
    assert not checks.check(item("warning-line"), "Carry a whistle.\nCaution: never dive alone.")
    assert not checks.check(item("warning-line"), "Carry a whistle.\nWarning:\nnever dive alone.")
    assert not checks.check(item("warning-line"), "Carry a whistle.\n```\nWarning: never dive alone.\n```")
    assert checks.check(item("sources-line"), "Rinse them.\n\n\nSources:EPA  ")
    assert not checks.check(item("sources-line"), "Rinse them.\nSources: EPA\nHope this helps!")
    assert not checks.check(item("sources-line"), "Rinse them.\n(Sources: EPA)")
    assert not checks.check(item("sources-line"), "Rinse them.\nReferences: EPA")
    assert not checks.check(item("inconsistent"), "too short")
    assert not checks.check(item("inconsistent"), " ".join(["word"] * 151))
