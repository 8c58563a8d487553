import hashlib
import json

import pytest

from uno_graph.errors import LogFormatError
from uno_graph.logs import MAX_JSON_DEPTH, MAX_TEXT_CHARS, parse_record, read_logs


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


def test_the_same_exchange_from_two_users_is_two_logs_not_a_conflict(tmp_path):
    exchange = {k: v for k, v in GOOD.items() if k not in ("id", "user_id", "metadata")}
    lines = [{**exchange, "user_id": "u1"}, {**exchange, "user_id": "u2"}, {**exchange, "user_id": "u1"},
             {**exchange, "user_id": "u1", "metadata": {"topic": "other"}}, exchange]
    report = read_logs(_write(tmp_path / "users.jsonl", [json.dumps(x) for x in lines]))
    assert report.problems == [] and report.duplicates == 1
    assert [(r.user_id, r.metadata) for r in report.records] == [("u1", {}), ("u2", {}), ("u1", {"topic": "other"}),
                                                                 (None, {})]
    assert len({r.id for r in report.records}) == 4
    # a record without user and metadata keeps the id it had before they were part of the hash
    legacy = "log-" + hashlib.sha256(json.dumps([list(report.records[3].messages), vars(report.records[3].feedback)],
                                                sort_keys=True).encode()).hexdigest()[:12]
    assert report.records[3].id == legacy


# --------------------------------------------------------------------------------------------------
# Robustness: every line is a kept record, a duplicate or a named problem (never a crash)
# --------------------------------------------------------------------------------------------------


def _rec(rid, **extra):
    return json.dumps({**GOOD, "id": rid, **extra})


def _write_bytes(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _accounts_for_every_line(report, path):
    lines = [ln for ln in path.read_bytes().decode("utf-8", "replace").splitlines() if ln.strip("\ufeff \t")]
    assert len(report.records) + len(report.problems) + report.duplicates == len(lines)


@pytest.mark.parametrize("deep", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_json_nested_100000_deep_is_a_problem_and_the_rest_is_read(tmp_path, deep):
    path = _write(tmp_path / "deep.jsonl", [_rec("a1"), deep, _rec("a2")])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a2"]
    (problem,) = report.problems
    assert (problem.line, problem.field) == (2, "<json>") and "nested too deeply" in problem.message


def test_nesting_past_the_limit_is_a_problem_naming_the_field(tmp_path):
    deep = {"x": 1}
    for _ in range(MAX_JSON_DEPTH):
        deep = {"x": deep}
    path = _write(tmp_path / "deep.jsonl", [_rec("a1", metadata=deep), _rec("a2", metadata={"x": {"y": [1]}})])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a2"]
    (problem,) = report.problems
    assert problem.line == 1 and problem.field.startswith("metadata.x.x") and str(MAX_JSON_DEPTH) in problem.message


def test_utf8_bom_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _rec("a1").encode() + b"\n" + _rec("a2").encode() + b"\n")
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a2"] and report.problems == [] and report.warnings == []


def test_latin1_bytes_are_a_problem_with_the_byte_offset_and_not_kept(tmp_path):
    latin1 = _rec("a2", messages=[{"role": "user", "content": "Un café ?"},
                                  {"role": "assistant", "content": "Oui."}]).replace("\\u00e9", "é")
    path = _write_bytes(tmp_path / "latin1.jsonl", [_rec("a1").encode(), latin1.encode("latin-1"), _rec("a3").encode()])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a3"]  # the line is not kept: its text is not what was written
    (problem,) = report.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "<encoding>")
    offset = int(problem.message.split("byte offset ")[1].split()[0])
    assert path.read_bytes()[offset] == 0xE9
    assert "re-save the file as UTF-8" in problem.message
    _accounts_for_every_line(report, path)


def test_lone_surrogate_escape_is_a_problem(tmp_path):
    path = _write(tmp_path / "s.jsonl", [_rec("a1"), _rec("a2", metadata={"note": "\ud83d"}), _rec("a3")])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a3"]
    assert [(p.line, p.field) for p in report.problems] == [(2, "metadata.note")]


def test_line_ends_crlf_and_cr_keep_line_numbers(tmp_path):
    path = tmp_path / "cr.jsonl"
    path.write_bytes(_rec("a1").encode() + b"\r\n{bad\r" + _rec("a2").encode() + b"\r\n")
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a2"] and [p.line for p in report.problems] == [2]
    assert report.records[1].source.endswith(":3")


def test_same_id_different_content_is_a_conflict_naming_both_lines(tmp_path):
    other = {**GOOD, "feedback": {"rating": 1}}
    path = _write(tmp_path / "c.jsonl", [_rec("a1"), json.dumps({**other, "id": "a1"}), _rec("a1"), _rec("a2")])
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a2"]
    assert report.records[0].feedback.rating == -1.0  # the first one is kept
    (problem,) = report.problems
    assert (problem.line, problem.field) == (2, "id") and f"{path}:1" in problem.message
    assert report.duplicates == 1  # line 3 repeats line 1 exactly


def test_conflict_across_files_names_the_first_file(tmp_path):
    a = _write(tmp_path / "a.jsonl", [_rec("x")])
    b = _write(tmp_path / "b.jsonl", [json.dumps({**GOOD, "id": "x", "user_id": "u2"})])
    report = read_logs(a, b)
    assert len(report.records) == 1 and f"{a}:1" in report.problems[0].message and report.problems[0].file == str(b)


OPENAI_TRACE = {"id": "t1", "messages": [
    {"role": "system", "content": "You can look up the weather."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": "18C, cloudy"},
    {"role": "assistant", "content": "It is 18C and cloudy in Paris."},
    {"role": "user", "content": "In Fahrenheit please."}]}


def test_openai_agent_trace_answer_is_the_final_text_after_tool_calls():
    rec = parse_record(OPENAI_TRACE, "f", 1)
    assert rec.query == "Weather in Paris?"
    assert rec.answer == "It is 18C and cloudy in Paris."
    assert rec.feedback_text == "In Fahrenheit please."
    assert [m["role"] for m in rec.prompt_messages] == ["system", "user", "assistant", "tool"]
    call, result = rec.messages[2], rec.messages[3]
    assert call["content"] == "" and call["tool_calls"][0]["function"]["name"] == "weather"
    assert result == {"role": "tool", "content": "18C, cloudy", "tool_call_id": "call_1", "name": "weather"}
    assert rec.to_dict()["messages"][2]["tool_calls"] == OPENAI_TRACE["messages"][2]["tool_calls"]


def test_langchain_messages_are_read(tmp_path):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, messages_to_dict

    msgs = [SystemMessage("Be brief."), HumanMessage("Weather in Paris?"),
            AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}]),
            ToolMessage("18C", tool_call_id="c1", name="weather"), AIMessage("18C."), HumanMessage("Thanks!")]
    dumped = {"id": "lc1", "messages": messages_to_dict(msgs)}
    plain = {"id": "lc2", "messages": [{"type": "human", "content": "Hi?"}, {"type": "ai", "content": "Hello."}]}
    report = read_logs(_write(tmp_path / "lc.jsonl", [json.dumps(dumped), json.dumps(plain)]))
    assert report.problems == []
    rec, simple = report.records
    assert (rec.query, rec.answer, rec.feedback_text) == ("Weather in Paris?", "18C.", "Thanks!")
    assert rec.messages[2]["tool_calls"] == [{"id": "c1", "type": "function",
                                              "function": {"name": "weather", "arguments": {"city": "Paris"}}}]
    assert rec.messages[3]["tool_call_id"] == "c1"
    assert (simple.query, simple.answer) == ("Hi?", "Hello.")


def test_trace_without_a_text_answer_is_a_problem(tmp_path):
    only_calls = {**OPENAI_TRACE, "id": "t2", "messages": OPENAI_TRACE["messages"][:4]}
    null_content = {**GOOD, "id": "t3", "messages": [{"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": None}]}
    report = read_logs(_write(tmp_path / "t.jsonl", [json.dumps(OPENAI_TRACE), json.dumps(only_calls),
                                                     json.dumps(null_content)]))
    assert [r.id for r in report.records] == ["t1"]
    assert [(p.line, p.field) for p in report.problems] == [(2, "messages"), (3, "messages[1].content")]


def test_content_part_lists_join_text_and_warn_once_about_image_only_turns(tmp_path):
    parts = {"id": "p1", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "y"}}]}]}
    path = _write(tmp_path / "p.jsonl", [json.dumps(parts), json.dumps({**parts, "id": "p2"})])
    report = read_logs(path)
    rec = report.records[0]
    assert (rec.query, rec.answer, rec.messages[2]["content"]) == ("What is this?", "A cat.", "")
    (warning,) = report.warnings  # once per file, not once per line
    assert (warning.line, warning.field) == (1, "messages[2].content") and "non-text" in warning.message


def test_over_long_fields_are_cut_with_a_warning_and_kept(tmp_path, caplog):
    huge = "x" * 50_000_000  # the case: a 50 MB question
    row = {**GOOD, "messages": [{"role": "user", "content": huge}, {"role": "assistant", "content": "ok"}],
           "feedback": {"comment": huge[:2_000_000], "edited_response": "fine"}}
    path = _write(tmp_path / "long.jsonl", [_rec("a0"), json.dumps(row)])
    with caplog.at_level("WARNING", logger="uno_graph.logs"):
        report = read_logs(path)
    rec = report.records[1]
    assert rec.id == "a1" and len(rec.query) == MAX_TEXT_CHARS and len(rec.feedback.comment) == MAX_TEXT_CHARS
    assert rec.feedback.edited_response == "fine"
    assert {(w.file, w.line, w.field) for w in report.warnings} == {
        (str(path), 2, "messages[0].content"), (str(path), 2, "feedback.comment")}
    assert f"{path}:2: field 'messages[0].content'" in caplog.text and "50,000,000" in caplog.text


def test_unknown_fields_warn_once_per_file_with_the_closest_name(tmp_path, caplog):
    typo = {k: v for k, v in GOOD.items() if k != "feedback"} | {"feedbak": GOOD["feedback"]}
    path = _write(tmp_path / "u.jsonl", [json.dumps(typo), json.dumps({**typo, "id": "a2", "zzz": 1}),
                                         json.dumps({**typo, "id": "a3"})])
    with caplog.at_level("WARNING", logger="uno_graph.logs"):
        report = read_logs(path)
    assert [r.id for r in report.records] == ["a1", "a2", "a3"] and report.problems == []
    assert [(w.line, w.field) for w in report.warnings] == [(1, "feedbak"), (2, "zzz")]
    assert "did you mean 'feedback'?" in report.warnings[0].message
    assert "did you mean" not in report.warnings[1].message
    assert "feedbak" in caplog.text
    # MemoryBench rows carry the dataset's other columns: not warned about
    row = {"test_idx": 1, "dataset_name": "D", "lang": "en", "dialog": [{"role": "user", "content": "q"},
                                                                        {"role": "assistant", "content": "a"}]}
    assert read_logs(_write(tmp_path / "mb.jsonl", [json.dumps(row)])).warnings == []


def test_feedback_typo_names_the_closest_field(tmp_path):
    report = read_logs(_write(tmp_path / "f.jsonl", [_rec("a1"), _rec("a2", feedback={"ratng": 1})]))
    assert report.problems[0].field == "feedback.ratng" and "did you mean 'rating'?" in report.problems[0].message


def test_cases_that_were_already_handled_stay_handled(tmp_path):
    nan = _rec("n", feedback={"rating": float("nan")})  # json.dumps writes NaN
    path = _write(tmp_path / "old.jsonl", [
        _rec("a1"), nan, _rec("b", feedback={"rating": True}),
        json.dumps({**GOOD, "id": "r", "messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]}),
        json.dumps([GOOD]), "   ", "\t", "1" * 5000, _rec("a2")[:40]])  # a huge int; a truncated last line
    report = read_logs(path)
    assert [r.id for r in report.records] == ["a1"]
    assert [(p.line, p.field) for p in report.problems] == [
        (2, "feedback.rating"), (3, "feedback.rating"), (4, "messages[0].role"), (5, "<record>"), (8, "<json>"),
        (9, "<json>")]
    _accounts_for_every_line(report, path)
    for content in (b"", b"\n\n  \n"):
        (tmp_path / "empty.jsonl").write_bytes(content)
        with pytest.raises(LogFormatError, match="the files are empty"):
            read_logs(tmp_path / "empty.jsonl")


def test_memorybench_odd_values_do_not_crash(tmp_path):
    rows = [{"test_idx": 1, "dialog": json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
             "implicit_feedback": [{"type": 5}, {"action": ["like"]}, None, 3]},
            {"test_idx": 2, "dialog": "[" * 50_000},
            {"test_idx": 3, "dialog": "{nope"}]
    report = read_logs(_write(tmp_path / "mb.jsonl", [json.dumps(r) for r in rows]))
    assert [r.id for r in report.records] == ["memorybench_1"] and report.records[0].feedback.rating is None
    assert [(p.line, p.field) for p in report.problems] == [(2, "dialog"), (3, "dialog")]


def test_the_question_is_the_users_last_message_with_the_turns_they_sent_just_before_it():
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from uno_graph.evaluate import TestItem
    from uno_graph.logs import LogRecord, user_message
    from uno_graph.nodes.common import last_query

    context = [{"role": "user", "content": "I'm hosting brunch for ten."},
               {"role": "user", "content": "How do I make enough coffee?"}]
    log = LogRecord("a", tuple(context + [{"role": "assistant", "content": "Brew in batches."}]))
    assert log.query == "I'm hosting brunch for ten.\nHow do I make enough coffee?"
    assert TestItem("t", tuple(context)).query == log.query
    assert last_query([HumanMessage(m["content"]) for m in context]) == log.query
    # a reply in between ends the message: earlier turns are the conversation, not this question
    assert user_message([("user", "hi"), ("assistant", "hello"), ("user", "why?")]) == "why?"
    assert last_query([HumanMessage("hi"), AIMessage("hello"), HumanMessage("why?")]) == "why?"
    # an agent's tool turns after the question do not hide it
    assert user_message([("system", "s"), ("user", "weather in Paris?"), ("assistant", ""), ("tool", "sunny")]) \
        == "weather in Paris?"
    assert last_query([HumanMessage("weather in Paris?"), AIMessage("", tool_calls=[
        {"name": "w", "args": {}, "id": "1"}]), ToolMessage("sunny", tool_call_id="1")]) == "weather in Paris?"
    assert user_message([("assistant", "hello")]) == ""
