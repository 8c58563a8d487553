"""The example data (examples/logs.jsonl, examples/test.jsonl) and its per-topic checks; no model."""

from __future__ import annotations

import ast
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from uno_graph.logs import read_logs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOPICS = ["recipes", "geography", "python", "travel", "smalltalk-noisy"]
CHECKABLE = ["recipes", "geography", "python", "travel"]


def _load_checks():
    spec = importlib.util.spec_from_file_location("example_checks", EXAMPLES / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _load_checks()


def item(topic: str) -> dict:
    return {"id": "x", "messages": [{"role": "user", "content": "q"}], "metadata": {"topic": topic}}


@pytest.fixture(scope="module")
def report():
    return read_logs(EXAMPLES / "logs.jsonl")


@pytest.fixture(scope="module")
def tests_jsonl():
    return [json.loads(line) for line in (EXAMPLES / "test.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def test_logs_load_without_problems(report):
    assert report.problems == []
    assert report.duplicates == 0
    assert len(report.records) == 100


def test_every_record_has_user_and_topic(report):
    for r in report.records:
        assert r.user_id, r.id
        assert r.metadata.get("topic") in TOPICS, r.id
        assert r.id.startswith(r.metadata["topic"] + "-")
        assert r.has_signal, r.id
    assert Counter(r.metadata["topic"] for r in report.records) == {t: 20 for t in TOPICS}
    assert len({r.user_id for r in report.records}) >= 8


def test_edits_satisfy_their_topic(report):
    for r in report.records:
        topic = r.metadata["topic"]
        if topic in CHECKABLE and r.feedback.edited_response:
            assert checks.check(item(topic), r.feedback.edited_response), r.id


@pytest.mark.parametrize("topic", CHECKABLE)
def test_most_logged_answers_fail_so_there_is_something_to_learn(report, topic):
    answers = [r.answer for r in report.records if r.metadata["topic"] == topic]
    failing = [a for a in answers if not checks.check(item(topic), a)]
    assert len(failing) > len(answers) / 2


@pytest.mark.parametrize("topic", CHECKABLE)
def test_reactions_follow_the_preference(report, topic):
    records = [r for r in report.records if r.metadata["topic"] == topic]
    for r in records:
        if checks.check(item(topic), r.answer):  # satisfied: thanks, thumbs up, no edit
            assert r.feedback.rating == 1 and not r.feedback.edited_response, r.id
        else:  # a complaint in a follow-up turn, never a thumbs up
            assert any(m["role"] == "user" for m in r.followups), r.id
            assert r.feedback.rating in (None, -1), r.id
    failing = [r for r in records if not checks.check(item(topic), r.answer)]
    with_edit = sum(bool(r.feedback.edited_response) for r in failing)
    assert 0.5 * len(failing) <= with_edit < len(failing)  # most carry an edit, some only the complaint


def test_noisy_topic_is_inconsistent(report):
    noisy = [r for r in report.records if r.metadata["topic"] == "smalltalk-noisy"]
    ratings = {r.feedback.rating for r in noisy if r.feedback.rating is not None}
    assert any(x > 0 for x in ratings) and any(x < 0 for x in ratings)
    text = " ".join(r.feedback_text.lower() for r in noisy)
    assert "longer" in text and "short" in text


def test_test_queries(report, tests_jsonl):
    assert Counter(t["metadata"]["topic"] for t in tests_jsonl) == {t: 8 for t in TOPICS}
    assert len({t["id"] for t in tests_jsonl}) == len(tests_jsonl)
    train = {r.query.strip().lower() for r in report.records}
    for t in tests_jsonl:
        assert [m["role"] for m in t["messages"]] == ["user"], t["id"]
        assert t["id"].startswith(t["metadata"]["topic"] + "-t")
        assert t["messages"][0]["content"].strip().lower() not in train, t["id"]


CASES = [
    ("recipes", "1. Boil water.\n2. Add pasta.\n3. Drain and serve.", True),
    ("recipes", "Steps:\n  1) Whisk eggs\n  2) Heat pan\n  3) Cook", True),
    ("recipes", "Boil water, add the pasta, then drain it and serve.", False),
    ("recipes", "1. Boil water.\n2. Add pasta and serve.", False),
    ("geography", "The capital of Australia is Canberra.", True),
    ("geography", "Canberra", True),
    ("geography", "The capital is Canberra. It was chosen in 1908.", False),
    ("geography", 'It is called the "Pacific." However, that is wrong.', False),
    ("geography", "The Nile " + "river " * 30 + "flows through Cairo.", False),
    ("geography", "", False),
    ("python", "Use slicing:\n\n```python\nprint([1, 2][::-1])\n```", True),
    ("python", "```python\nx = 1\n", False),
    ("python", "Use items[::-1] to reverse the list.", False),
    ("python", "```\nx = 1\n```", False),
    ("travel", "TL;DR: take the train.\n\nThe train takes 6 hours ...", True),
    ("travel", "  TL;DR: pack layers.", True),
    ("travel", "Take the train. TL;DR: train.", False),
    ("travel", "tl;dr take the train", False),
    ("smalltalk-noisy", "Try The Name of the Rose by Umberto Eco.", True),
    ("smalltalk-noisy", "Dune.", False),
    ("smalltalk-noisy", "word " * 151, False),
    ("smalltalk-noisy", "", False),
]


@pytest.mark.parametrize(("topic", "answer", "expected"), CASES)
def test_check_cases(topic, answer, expected):
    assert checks.check(item(topic), answer) is expected


def test_check_cases_cover_both_ways_per_topic():
    assert {(t, e) for t, _, e in CASES} == {(t, e) for t in TOPICS for e in (True, False)}


def test_check_unknown_topic_and_preferences():
    with pytest.raises(KeyError):
        checks.check(item("poetry"), "x")
    assert set(checks.TOPIC_PREFERENCES) == set(TOPICS)
    assert all(isinstance(v, str) and v for v in checks.TOPIC_PREFERENCES.values())


def test_script_docstring_starts_with_its_command():
    doc = ast.get_docstring(ast.parse((EXAMPLES / "make_example_logs.py").read_text(encoding="utf-8")))
    assert doc.splitlines()[0] == ".venv/bin/python examples/make_example_logs.py"
