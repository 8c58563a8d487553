"""The seventh evaluation-only log set (`examples/cellar/`) is well-formed; it is kept sealed for one
final evaluation, so nothing here looks at how any model does on it."""

import collections
import doctest
import importlib.util
import json
import re
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "cellar"
OTHER_SETS = ["logs.jsonl", "test.jsonl"] + [f"{d}/{f}" for d in ("heldout", "unseen", "sealed", "reserve", "vault")
                                             for f in ("logs.jsonl", "test.jsonl")]
USER_ID = re.compile(r"^[A-Z]{2}-\d{4}$")


def _checks():
    spec = importlib.util.spec_from_file_location("cellar_checks", HERE / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _questions(path: Path) -> set[str]:
    """Every user turn before the first answer (an assistant turn after a user turn), normalised."""
    out = set()
    for row in _rows(path):
        seen_user = False
        for m in row["messages"]:
            if m["role"] == "assistant" and seen_user:
                break
            if m["role"] == "user":
                out.add(" ".join(m["content"].lower().split()))
                seen_user = True
    return out


def test_cellar_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and not report.warnings and report.duplicates == 0
    assert collections.Counter(r.metadata["topic"] for r in report.records) == dict.fromkeys(_checks().CHECKS, 22)
    assert all(r.metadata.get("subject") and r.user_id and r.has_signal for r in report.records)
    items, problems = read_testset(HERE / "test.jsonl")
    assert len(items) == 60 and not problems
    assert collections.Counter(i.metadata["topic"] for i in items) == dict.fromkeys(_checks().CHECKS, 12)
    logged = _questions(HERE / "logs.jsonl")
    tested = _questions(HERE / "test.jsonl")
    assert len(logged) == 110 and len(tested) == 60 and not logged & tested
    # the question the reader finds is the logged user turn, also after the chatbot's greeting
    assert {" ".join(r.query.lower().split()) for r in report.records} == logged
    assert {" ".join(i.query.lower().split()) for i in items} == tested
    others = set()
    for name in OTHER_SETS:
        others |= _questions(HERE.parent / name)
    assert not (logged | tested) & others


def test_cellar_conversations_have_the_set_shape():
    """A greeted question comes after one assistant turn (the chatbot's greeting); the answer is the
    assistant turn right after the question; test items end with the question."""
    for row in _rows(HERE / "logs.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        start = 1 if roles[0] == "assistant" else 0
        assert roles[start:start + 2] == ["user", "assistant"], row["id"]
        assert set(roles[start + 2:]) <= {"user"}, row["id"]
    greeted = 0
    for row in _rows(HERE / "test.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        assert roles in (["user"], ["assistant", "user"]), row["id"]
        greeted += roles[0] == "assistant"
    assert 0 < greeted < 60


def test_cellar_test_items_have_one_unlogged_subject_per_topic():
    logged = collections.defaultdict(set)
    for row in _rows(HERE / "logs.jsonl"):
        logged[row["metadata"]["topic"]].add(row["metadata"]["subject"])
    per_topic = collections.defaultdict(list)
    for row in _rows(HERE / "test.jsonl"):
        per_topic[row["metadata"]["topic"]].append(row["metadata"]["subject"])
    assert set(per_topic) == set(logged)
    for topic, subjects in per_topic.items():
        assert len(subjects) == 12 and len(logged[topic]) == 2
        assert all(subjects.count(s) == 4 for s in logged[topic])
        assert len(set(subjects) - logged[topic]) == 1 and sum(s not in logged[topic] for s in subjects) == 4
    mine = set().union(*logged.values()) | {s for subjects in per_topic.values() for s in subjects}
    mine |= set(per_topic) - {"inconsistent"}  # the want topics are new too
    for name in OTHER_SETS:
        other = set()
        for row in _rows(HERE.parent / name):
            other |= {row["metadata"].get("subject"), row["metadata"].get("topic")}
        assert not other & mine, name


def test_cellar_test_items_carry_a_returning_user_of_their_topic():
    writers = collections.defaultdict(collections.Counter)  # topic -> user -> logs
    for row in _rows(HERE / "logs.jsonl"):
        writers[row["metadata"]["topic"]][row["user_id"]] += 1
    for row in _rows(HERE / "test.jsonl"):
        # a returning user: at least three logs in that topic (contrarians have two, one-off users one)
        assert writers[row["metadata"]["topic"]][row["user_id"]] >= 3, (row["id"], row["user_id"])
    for row in _rows(HERE / "logs.jsonl") + _rows(HERE / "test.jsonl"):
        assert USER_ID.match(row["user_id"]), row["user_id"]
    users = {u for counts in writers.values() for u in counts}
    assert all(sum(u in counts for counts in writers.values()) == 1 for u in users)  # one topic per user
    assert [r["id"] for r in _rows(HERE / "logs.jsonl")] == [f"cellar-log-{n:03d}" for n in range(1, 111)]
    assert [r["id"] for r in _rows(HERE / "test.jsonl")] == [f"cellar-test-{n:02d}" for n in range(1, 61)]


def test_cellar_checks_doctests_and_topics():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {row["metadata"]["topic"] for row in _rows(HERE / "test.jsonl")}
    assert topics == set(checks.TOPIC_PREFERENCES) == set(checks.CHECKS)
    item = lambda t: {"metadata": {"topic": t}}  # noqa: E731
    two = "You pay the deductible first, then the insurer pays."
    assert checks.check(item("two-paragraphs"), f"{two}\n   \nA higher one means a lower premium!")
    assert checks.check(item("two-paragraphs"), f"\n{two}\n\nA higher one means a lower premium (usually).  ")
    assert not checks.check(item("two-paragraphs"), f"{two}\n\nA higher one.\n\nThat is all there is to it.")
    assert not checks.check(item("two-paragraphs"), f"{two}\n\n" + " ".join(["word"] * 41) + ".")
    assert not checks.check(item("two-paragraphs"), f"{two}\n\nA higher one means a lower premium:")
    assert not checks.check(item("two-paragraphs"), f"**Short answer:** you pay it first.\n\n{two}")
    assert not checks.check(item("two-paragraphs"), f"{two}\n\n1. A higher one means a lower premium.")
    assert not checks.check(item("two-paragraphs"), f"{two}\nIt continues here.\n\nA higher one lowers the premium.")
    assert checks.check(item("emoji-list"), "Kit:\n  ⚠️ Wear goggles.\n  👩‍🔬 Weigh the lye.\n  👍🏽 Stir outside.")
    assert checks.check(item("emoji-list"), "📻 Listen first.\n\n⌚ Wait for a gap.\n\n➡️ Say your call sign.\nThat's all.")
    assert not checks.check(item("emoji-list"), "* 📻 Listen first.\n* ⌚ Wait.\n* ➡️ Call.")
    assert not checks.check(item("emoji-list"), "1. 📻 Listen first.\n2. ⌚ Wait.\n3. ➡️ Call.")
    assert not checks.check(item("emoji-list"), "Listen first 📻\nWait ⌚\nCall ➡️")
    assert not checks.check(item("emoji-list"), "• Listen first.\n• Wait.\n• Call.")
    assert not checks.check(item("emoji-list"), "```\n📻 Listen first.\n⌚ Wait.\n➡️ Call.\n```")
    assert checks.check(item("caps-title"), "  3 WAYS TO FIND THE BEAT!\nCount the congas.")
    assert not checks.check(item("caps-title"), "Sure!\nHOW TO FIND THE BEAT\nCount the congas.")
    assert not checks.check(item("caps-title"), "BEAT\nCount the congas.")
    assert not checks.check(item("caps-title"), "HOW TO FIND THE BEAT (short version)\nCount the congas.")
    assert not checks.check(item("caps-title"), "HOW TO FIND THE BEAT.\nCount the congas.")
    assert not checks.check(item("caps-title"), "HOW TO FIND THE BEAT:\nCount the congas.")
    assert not checks.check(item("caps-title"), "Count the congas.\n\nHOW TO FIND THE BEAT")
    assert checks.check(item("difficulty"), "Wax the thread.\n  Difficulty:2/5, mostly patience")
    assert checks.check(item("difficulty"), "Wax the thread.\nDifficulty: 5/5.")
    for wrong in ["Difficulty: 2 out of 5", "Difficulty: 2.5/5", "Difficulty: 0/5", "Difficulty: 2 / 5",
                  "Difficulty level: 2/5", "DIFFICULTY: 2/5", "Difficulty - 2/5", "Difficulty: ★★☆☆☆",
                  "Difficulty:\n2/5", "Difficulty: 2/50", "difficulty: 2/5"]:
        assert not checks.check(item("difficulty"), f"Wax the thread.\n{wrong}"), wrong
    assert not checks.check(item("difficulty"), "Difficulty: 2/5")
    assert not checks.check(item("difficulty"), "Wax the thread.\n```\nDifficulty: 2/5\n```")
    assert not checks.check(item("inconsistent"), "too short")
    assert not checks.check(item("inconsistent"), " ".join(["word"] * 151))
