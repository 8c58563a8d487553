"""Property tests of the log reader: it never crashes and never drops a line unreported.

Random files mix valid records (known ids and line numbers) with broken lines (random bytes,
truncated JSON, deep nesting, random text, Latin-1 bytes, wrong-typed fields). Whatever the mix,
every non-blank line must come back as a kept record, a duplicate or a problem, and every valid
record must be kept at its line with its question and answer.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uno_graph.errors import LogFormatError
from uno_graph.logs import MAX_TEXT_CHARS, LogRecord, _Bad, parse_record, read_logs

SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------------
# Valid records
# --------------------------------------------------------------------------------------------------

short_text = st.text(max_size=30)
words = st.text(min_size=1, max_size=40).filter(str.strip)  # a question or answer: some non-space text
long_words = st.integers(MAX_TEXT_CHARS - 2, MAX_TEXT_CHARS + 5_000).map(lambda n: "q" * n)
question = st.one_of(words, words, words, long_words)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False), short_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(short_text, inner, max_size=3)),
                          max_leaves=8)


@st.composite
def conversations(draw):
    """(messages, expected query, expected answer) in one of the accepted shapes."""
    q, a = draw(question), draw(words)
    shape = draw(st.sampled_from(["plain", "agent", "parts", "langchain"]))
    follow = [{"role": "user", "content": draw(short_text)}] if draw(st.booleans()) else []
    if shape == "plain":
        system = [{"role": "system", "content": draw(short_text)}] if draw(st.booleans()) else []
        msgs = system + [{"role": "user", "content": q}, {"role": "assistant", "content": a}] + follow
    elif shape == "agent":
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": draw(short_text)}}
        msgs = [{"role": "user", "content": q},
                {"role": "assistant", "content": draw(st.sampled_from([None, ""])), "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": draw(short_text)},
                {"role": "assistant", "content": a}] + follow
    elif shape == "parts":
        msgs = [{"role": "user", "content": [{"type": "text", "text": q},
                                             {"type": "image_url", "image_url": {"url": "u"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": a}]}] + follow
    else:
        msgs = [{"type": "human", "content": q}, {"type": "ai", "content": a}]
        msgs += [{"type": "human", "content": m["content"]} for m in follow]
    return msgs, q[:MAX_TEXT_CHARS], a


@st.composite
def valid_records(draw):
    """(record dict without id, expected query, expected answer)."""
    msgs, q, a = draw(conversations())
    record = {"messages": msgs}
    if draw(st.booleans()):
        fb = draw(st.fixed_dictionaries({}, optional={
            "rating": st.one_of(st.floats(-1, 1, allow_nan=False), st.sampled_from([-1, 0, 1])),
            "edited_response": short_text, "comment": short_text}))
        record["feedback"] = fb
    if draw(st.booleans()):
        record["metadata"] = draw(st.dictionaries(short_text, json_value, max_size=3))
    if draw(st.booleans()):
        record["user_id"] = draw(st.one_of(short_text, st.integers(0, 10**6)))
    if draw(st.integers(0, 5)) == 0:
        record["feedbak"] = {"rating": 1}  # unknown field: a warning, still kept
    return record, q, a


# --------------------------------------------------------------------------------------------------
# Broken lines (never a valid record with an "ok-" id)
# --------------------------------------------------------------------------------------------------

no_newline_bytes = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
no_newline_text = st.text(max_size=80).map(lambda s: s.replace("\n", "").replace("\r", ""))


@st.composite
def truncated(draw):
    record, _, _ = draw(valid_records())
    line = json.dumps({**record, "id": "junk"})
    return line[: draw(st.integers(0, len(line) - 1))].encode()


@st.composite
def deep(draw):
    n = draw(st.one_of(st.integers(50, 3_000), st.just(100_000)))
    opener = draw(st.sampled_from(["[", '{"a":', '{"messages":']))
    return (opener * n).encode()


@st.composite
def swapped_types(draw):
    """A record with one field (top-level, message or feedback) replaced by a random JSON value."""
    record, _, _ = draw(valid_records())
    record = {**record, "id": f"junk-{draw(st.integers(0, 99))}"}
    where = draw(st.sampled_from(["top", "message", "feedback"]))
    value = draw(json_value)
    if where == "top":
        key = draw(st.sampled_from(["messages", "feedback", "metadata", "user_id", "id", "dialog"]))
        if key == "id":  # never an "ok-" id: a non-string value
            value = draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2)))
        record[key] = value
    elif where == "message":
        msgs = [dict(m) for m in record["messages"]]
        i = draw(st.integers(0, len(msgs) - 1))
        msgs[i][draw(st.sampled_from(["role", "content", "type", "tool_calls", "tool_call_id", "data"]))] = value
        record["messages"] = msgs
    else:
        record["feedback"] = {draw(st.sampled_from(["rating", "edited_response", "comment", "x"])): value}
    return json.dumps(record).encode()


@st.composite
def latin1_record(draw):
    record, _, _ = draw(valid_records())
    text = json.dumps({**record, "id": "junk-latin", "metadata": {"note": "café"}}, ensure_ascii=False)
    return text.encode("latin-1", errors="replace")


lone_surrogate = st.just(b'{"id": "junk-s", "messages": [{"role": "user", "content": "\\ud83d"}, '
                         b'{"role": "assistant", "content": "a"}]}')
blank = st.sampled_from([b"", b"   ", b"\t"])
junk = st.one_of(no_newline_bytes, no_newline_text.map(str.encode), truncated(), deep(), swapped_types(),
                 latin1_record(), lone_surrogate, blank)


def _is_blank(raw: bytes) -> bool:
    """The reader's rule: UTF-8 text (BOM aside) of only white space."""
    try:
        return not raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


# --------------------------------------------------------------------------------------------------
# The invariant
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(items=st.lists(st.one_of(valid_records().map(lambda v: ("ok", v)), junk.map(lambda b: ("junk", b)),
                                st.just(("repeat", None))), max_size=25),
       bom=st.booleans(), final_newline=st.booleans())
def test_every_line_is_a_record_a_duplicate_or_a_problem(items, bom, final_newline):
    lines: list[bytes] = []
    expected: dict[str, tuple[int, str, str]] = {}  # id -> (line, query, answer)
    for kind, value in items:
        if kind == "ok":
            record, q, a = value
            rid = f"ok-{len(expected)}"
            expected[rid] = (len(lines) + 1, q, a)
            lines.append(json.dumps({"id": rid, **record}).encode())
        elif kind == "repeat":  # an exact copy of the last valid line: a duplicate
            if expected:
                lines.append(lines[next(reversed(expected.values()))[0] - 1])
        else:
            lines.append(value)
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    if bom:
        data = b"\xef\xbb\xbf" + data

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        path.write_bytes(data)
        try:
            report = read_logs(path)
        except LogFormatError:
            assert not expected, "valid records were given, yet the file was refused"
            return

    non_blank = {i for i, raw in enumerate(lines, start=1) if not _is_blank(raw)}
    kept_lines = [int(r.source.rsplit(":", 1)[1]) for r in report.records]
    problem_lines = [p.line for p in report.problems]
    assert len(report.records) + len(report.problems) + report.duplicates == len(non_blank)
    assert len(set(kept_lines + problem_lines)) == len(kept_lines) + len(problem_lines)  # one outcome per line
    assert set(kept_lines + problem_lines) <= non_blank
    assert all(p.file == str(path) and p.field and p.message for p in report.problems)
    by_id = {r.id: r for r in report.records}
    for rid, (line, q, a) in expected.items():
        assert rid in by_id, (rid, [str(p) for p in report.problems if p.line == line])
        rec = by_id[rid]
        assert rec.source == f"{path}:{line}" and rec.query == q and rec.answer == a


# --------------------------------------------------------------------------------------------------
# parse_record on arbitrary shapes: a record or `_Bad`, nothing else
# --------------------------------------------------------------------------------------------------

role_like = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "human", "ai", "developer",
                                       "function", "robot", ""]), json_value)
part = st.one_of(short_text, json_value,
                 st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "output_text"])},
                                       optional={"text": st.one_of(short_text, json_value)}))
message_like = st.one_of(json_value, st.fixed_dictionaries({}, optional={
    "role": role_like, "type": role_like, "content": st.one_of(short_text, st.none(), st.lists(part, max_size=3),
                                                               json_value),
    "tool_calls": st.one_of(json_value, st.lists(st.fixed_dictionaries(
        {"name": short_text, "args": json_value}, optional={"id": short_text}), max_size=2)),
    "tool_call_id": json_value, "name": json_value, "function_call": json_value,
    "data": st.dictionaries(st.sampled_from(["content", "type", "tool_calls"]), json_value, max_size=3)}))
record_like = st.fixed_dictionaries({}, optional={
    "id": json_value, "user_id": json_value, "metadata": json_value,
    "messages": st.one_of(json_value, st.lists(message_like, max_size=5)),
    "dialog": st.one_of(json_value, st.lists(message_like, max_size=4).map(json.dumps)),
    "feedback": st.one_of(json_value, st.dictionaries(st.sampled_from(["rating", "edited_response", "comment", "x"]),
                                                      json_value, max_size=3)),
    "implicit_feedback": json_value, "test_idx": json_value, "feedbak": json_value})


@settings(max_examples=100, deadline=None, database=None)
@given(obj=st.one_of(record_like, json_value))
def test_parse_record_returns_a_record_or_names_the_bad_field(obj):
    try:
        rec = parse_record(obj, "f", 1)
    except _Bad as bad:
        assert bad.field and bad.message
        return
    assert isinstance(rec, LogRecord)
    assert isinstance(rec.query, str) and rec.query.strip() and isinstance(rec.answer, str) and rec.answer.strip()
    assert isinstance(rec.feedback_text, str) and isinstance(rec.prompt_messages, list)
    json.dumps(rec.to_dict())  # what the pipeline writes


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
