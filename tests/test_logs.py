import json

import pytest

from uno_graph.errors import LogFormatError
from uno_graph.logs import read_logs


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = {"id": "a1", "user_id": "u1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                     {"role": "assistant", "content": "Paris is the capital."},
                     {"role": "user", "content": "Shorter please."}],
        "feedback": {"rating": -1, "edited_response": "Paris.", "comment": "too long"}}


def test_bad_lines_reported_with_line_and_field_and_good_ones_kept(tmp_path):
    path = _write(tmp_path / "logs.jsonl", [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        json.dumps({**GOOD, "id": "a2", "feedback": {"rating": 4}}),
        json.dumps({**GOOD, "id": "a3", "messages": [{"role": "robot", "content": "x"}]}),
        "",
        json.dumps({**GOOD, "id": "a4"}),
    ])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a4"]
    where = {(p.line, p.field) for p in report.problems}
    assert where == {(2, "<json>"), (3, "messages"), (4, "feedback.rating"), (5, "messages[0].role")}
    assert all(p.file == str(path) for p in report.problems)
    assert "[-1, 1]" in str(next(p for p in report.problems if p.line == 4))


def test_signals_are_kept():
    from uno_graph.logs import parse_record

    rec = parse_record(GOOD, "f", 1)
    assert rec.query == "Capital of France?"
    assert rec.answer == "Paris is the capital."
    assert rec.prompt_messages[0]["role"] == "system"
    assert rec.feedback_text == "Shorter please.\ntoo long"
    assert rec.feedback.edited_response == "Paris." and rec.feedback.rating == -1.0
    assert rec.user_id == "u1"


def test_memorybench_dialog_and_implicit_feedback(tmp_path):
    row = {"test_idx": 7, "dataset_name": "NFCats",
           "dialog": json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                                 {"role": "user", "content": "more detail"}]),
           "implicit_feedback": [{"type": "dislike"}]}
    report = read_logs(_write(tmp_path / "mb.jsonl", [json.dumps(row)]))
    rec = report.records[0]
    assert rec.id == "NFCats_7" and rec.feedback.rating == -1.0 and rec.feedback_text == "more detail"


def test_file_without_valid_record_is_refused(tmp_path):
    with pytest.raises(LogFormatError, match="no valid log record.*line 1|:1:"):
        read_logs(_write(tmp_path / "bad.jsonl", ["[1, 2]"]))
    with pytest.raises(LogFormatError, match="does not exist"):
        read_logs(tmp_path / "missing.jsonl")


def test_duplicates_and_content_ids_are_stable(tmp_path):
    no_id = {k: v for k, v in GOOD.items() if k != "id"}
    report = read_logs(_write(tmp_path / "d.jsonl", [json.dumps(no_id)] * 3))
    again = read_logs(_write(tmp_path / "e.jsonl", [json.dumps(no_id)]))
    assert len(report.records) == 1 and report.duplicates == 2
    assert report.records[0].id == again.records[0].id.replace("", "") and report.records[0].id.startswith("log-")
