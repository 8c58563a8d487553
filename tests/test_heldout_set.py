"""The held-out log set (`examples/heldout/`) is well-formed; it is used for evaluation only."""

import doctest
import importlib.util
import json
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "heldout"


def _checks():
    spec = importlib.util.spec_from_file_location("heldout_checks", HERE / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heldout_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and report.duplicates == 0
    items, problems = read_testset(HERE / "test.jsonl")
    assert len(items) == 40 and not problems
    logged = {r.query.strip().lower() for r in report.records}
    assert not {i.query.strip().lower() for i in items} & logged
    first_set = {json.loads(x)["messages"][0]["content"].strip().lower()
                 for x in (HERE.parent / "logs.jsonl").read_text().splitlines()}
    assert not logged & first_set


def test_heldout_checks_doctests_and_topics():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {json.loads(x)["metadata"]["topic"] for x in (HERE / "test.jsonl").read_text().splitlines()}
    assert topics == set(checks.TOPIC_PREFERENCES)
