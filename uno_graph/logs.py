"""Reading user logs: the JSONL format of DESIGN.md and MemoryBench dialogs.

A log is the conversation up to the user's question, the system's answer, and what the user did
next: later turns (complaints, corrections, thanks), an explicit rating, an edited answer.

    >>> report = read_logs("examples/logs.jsonl")          # doctest: +SKIP
    >>> report.records[0].query, len(report.problems)      # doctest: +SKIP

The reader never crashes on a line and never drops a line unreported. Every non-blank line ends up
as exactly one of:

- a kept record (`LogReadReport.records`);
- a duplicate: same id and same content as a kept record (counted in `LogReadReport.duplicates`);
- a `LogProblem` in `LogReadReport.problems`: file, line, field, and how to fix it.

Changes made to a kept record, and fields it ignores, are `LogReadReport.warnings` (also logged on
this module's logger). A file with no valid record raises `LogFormatError`.

The rules:

- Encoding. Files are UTF-8; a byte-order mark at the start of the file (or of a line, as `cat`
  leaves it) is skipped. A line with bytes that are not UTF-8 (a Latin-1, Windows-1252 or UTF-16
  file) is a problem naming the byte offset, and is NOT kept: decoding it by guesswork would make a
  text the user did not write. Fix: re-save the file as UTF-8. The same holds for a JSON escape of
  half a UTF-16 surrogate pair (``"\\ud83d"`` alone), which is not text either.
- Lines end with ``\\n``, ``\\r\\n`` or ``\\r``. JSON nested more than `MAX_JSON_DEPTH` levels deep
  is a problem for that line (deeper than Python's parser can go, too).
- Turns are ``{"role", "content"}`` objects; LangChain's ``type`` (``human``, ``ai``, ``system``,
  ``tool``) stands for the role, and `langchain_core.messages.messages_to_dict` output is read too.
  The content is a string or a list of content parts (text parts joined, other parts such as images
  ignored; a message left empty that way is warned about once per file). Agent traces are kept
  whole: an assistant turn's ``tool_calls`` (its content may be null; LangChain-shaped calls are
  rewritten to the OpenAI shape ``{"id", "type": "function", "function": {"name", "arguments"}}``)
  and a tool turn's ``tool_call_id`` and ``name``.
- What is learned from (see `LogRecord`): the answer is the last assistant turn with text before
  the user speaks again after the first user turn, i.e. the final answer after any tool calls;
  the question is the last user turn before it; the follow-up is what comes after it.
- Texts longer than `MAX_TEXT_CHARS` (a message, the edited response, the comment) are cut to that
  length, with a warning naming file, line and field; the record is kept.
- Unknown top-level fields are ignored with a warning (once per file and field name) suggesting the
  closest known name. MemoryBench rows (``dialog``) carry the dataset's other columns and are not
  checked for them.
- Two records with the same id: the first is kept; a later one with the same content is a
  duplicate, one with different content is a problem naming both lines.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Sequence
from typing import IO, Any, Iterator

from uno_graph.errors import LogFormatError

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
RECORD_FIELDS = ("id", "user_id", "messages", "feedback", "metadata")
FEEDBACK_FIELDS = ("rating", "edited_response", "comment")
MAX_TEXT_CHARS = 32_000
"""Longest message content, edited response or comment kept; longer ones are cut (with a warning)."""
MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects accepted on a line (a record needs about 6)."""

# Other names of the roles: LangChain message types, OpenAI's "developer" and legacy "function".
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "developer": "system", "function": "tool"}
_TEXT_PARTS = ("text", "input_text", "output_text")  # content-part types that hold text (OpenAI, Anthropic)
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how one gets into text decoded from UTF-8
# MemoryBench's implicit signals (the reference ignored them): like/copy read as approval.
_IMPLICIT_RATING = {"like": 1.0, "copy": 1.0, "dislike": -1.0}


@dataclass(frozen=True)
class Feedback:
    """Explicit feedback. `rating` is in [-1, 1]: -1 thumbs down, 0 neutral, 1 thumbs up."""

    rating: float | None = None
    edited_response: str | None = None
    comment: str | None = None


def _answer_position(messages: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> int | None:
    """Index of the answer: the last assistant turn with text after the first user turn and before
    the user speaks again (so the final answer after tool calls); None if there is none."""
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None:
        return None
    answer = None
    for i in range(first_user + 1, len(messages)):
        role = messages[i]["role"]
        if role == "user" and answer is not None:
            break
        if role == "assistant" and messages[i]["content"].strip():
            answer = i
    return answer


def user_message(turns: Sequence[tuple[str, str]]) -> str:
    """What the user asked: their last turn together with the user turns directly before it (no reply in
    between), joined by newlines. A user who sends "I'm hosting brunch for ten." and then "How do I make
    enough coffee?" asked one question; its second half alone is about nothing in particular, and
    clustering or routing it by those words alone puts it anywhere. `turns` are (role, text) pairs in
    order; roles other than "user" (assistant, tool, system) end the message. "" when no user turn."""
    end = next((i for i in range(len(turns) - 1, -1, -1) if turns[i][0] == "user"), None)
    if end is None:
        return ""
    start = end
    while start > 0 and turns[start - 1][0] == "user":
        start -= 1
    return "\n".join(str(text) for _, text in turns[start:end + 1] if str(text).strip())


@dataclass(frozen=True)
class LogRecord:
    """One logged exchange and the user's reaction to it.

    `messages` are ``{"role", "content"}`` dicts; in agent traces an assistant turn may also have
    ``tool_calls`` (its content then possibly empty) and a tool turn ``tool_call_id`` and ``name``.
    The answer is the last assistant turn with text before the user's next turn (the final answer
    after tool calls); tool-call turns and tool results before it belong to `prompt_messages`.
    """

    id: str
    messages: tuple[dict[str, Any], ...]
    feedback: Feedback = field(default_factory=Feedback)
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "file:line", for error messages

    @property
    def _answer_index(self) -> int:
        index = _answer_position(self.messages)
        if index is None:
            raise ValueError(f"log record {self.id!r} has no assistant answer after a user turn")
        return index

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        """The conversation the answer responded to (system turn, tool calls and results included)."""
        return [dict(m) for m in self.messages[: self._answer_index]]

    @property
    def query(self) -> str:
        """The user's question: their last message before the answer (`user_message`)."""
        return user_message([(m["role"], m["content"]) for m in self.prompt_messages])

    @property
    def answer(self) -> str:
        return self.messages[self._answer_index]["content"]

    @property
    def followups(self) -> list[dict[str, Any]]:
        """Everything after the answer, assistant turns kept for context."""
        return [dict(m) for m in self.messages[self._answer_index + 1 :]]

    @property
    def feedback_text(self) -> str:
        """The user's reaction as text: follow-up user turns, then the comment."""
        parts = [m["content"] for m in self.followups if m["role"] == "user"]
        if self.feedback.comment:
            parts.append(self.feedback.comment)
        return "\n".join(p.strip() for p in parts if p.strip())

    @property
    def has_signal(self) -> bool:
        fb = self.feedback
        return bool(self.feedback_text or fb.edited_response or fb.rating is not None)

    def to_dict(self) -> dict[str, Any]:
        fb = {k: v for k, v in vars(self.feedback).items() if v is not None}
        return {"id": self.id, "user_id": self.user_id, "messages": [dict(m) for m in self.messages],
                "feedback": fb, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LogRecord":
        return cls(id=data["id"], user_id=data.get("user_id"), messages=tuple(data["messages"]),
                   feedback=Feedback(**data.get("feedback", {})), metadata=data.get("metadata", {}))


@dataclass(frozen=True)
class LogProblem:
    """Why one line of a log file was not used, and how to fix it.

    The same shape serves `LogReadReport.warnings`: what was changed or ignored in a kept record.
    """

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field {self.field!r}: {self.message}"


@dataclass
class LogReadReport:
    """What `read_logs` found: every non-blank line is a record, a duplicate or a problem."""

    records: list[LogRecord]
    problems: list[LogProblem]
    duplicates: int = 0
    warnings: list[LogProblem] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class _Warnings:
    """Warnings about one file: each is logged and appended to `sink`; a `once` key warns once per file."""

    def __init__(self, file: str, sink: list[LogProblem], line: int = 0) -> None:
        self.file, self.sink, self.line = file, sink, line
        self._once: set[Any] = set()

    def __call__(self, field_name: str, message: str, once: Any = None) -> None:
        if once is not None:
            if once in self._once:
                return
            self._once.add(once)
        warning = LogProblem(self.file, self.line, field_name, message)
        self.sink.append(warning)
        log.warning("%s", warning)


def _short(value: Any, limit: int = 60) -> str:
    """`repr` cut for messages (a bad value may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Lines: bytes -> text -> JSON
# --------------------------------------------------------------------------------------------------


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset in the file, bytes) of each line, without its line end.

    Lines end with ``\\n``, ``\\r\\n`` or ``\\r``, as Python's text mode reads them (so line numbers
    match text editors and the previous reader). A ``\\r`` byte never occurs inside a UTF-8 character.
    """
    line_no, offset = 0, 0
    for chunk in fh:
        body = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk
        start = offset
        for piece in body.split(b"\r"):
            line_no += 1
            yield line_no, start, piece
            start += len(piece) + 1
        offset += len(chunk)


def _decode(raw: bytes, offset: int) -> str:
    """The line as text: a leading byte-order mark skipped; bytes that are not UTF-8 are a problem."""
    if raw.startswith(_BOM):
        raw, offset = raw[len(_BOM):], offset + len(_BOM)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start: min(exc.end, exc.start + 4)].hex(" ")
        raise _Bad("<encoding>", f"byte(s) {bad} at byte offset {offset + exc.start} of the file (0-based; byte "
                                 f"{exc.start + 1} of this line) are not UTF-8, so the line is not used; the file is "
                                 "probably Latin-1, Windows-1252 or UTF-16: re-save the file as UTF-8 "
                                 "(e.g. `iconv -f latin1 -t utf-8`)") from None


def _load_json(text: str, field_name: str, root: str, hint: str) -> Any:
    """`json.loads` that raises only `_Bad`: syntax errors, over-deep nesting, unreadable numbers,
    and strings holding half a surrogate pair are problems named by field (`root` prefixes paths)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise _Bad(field_name, f"is nested too deeply to parse (the reader accepts at most {MAX_JSON_DEPTH} levels "
                               f"of arrays and objects); {hint}") from None
    except json.JSONDecodeError as exc:
        raise _Bad(field_name, f"not valid JSON ({exc.msg} at column {exc.colno}); {hint}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise _Bad(field_name, f"not readable JSON ({str(exc).split(';')[0]}); {hint}") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check_tree(obj, root)  # only then can the tree be too deep or hold a lone surrogate
    return obj


def _check_tree(obj: Any, root: str) -> None:
    """Raise `_Bad` at the first container nested deeper than MAX_JSON_DEPTH or string that is not text."""
    stack: list[tuple[Any, str, int]] = [(obj, root, 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise _Bad(path[:200] or "<record>", "holds half of a UTF-16 surrogate pair (a lone \\ud800-\\udfff "
                                               "escape), which is not text; fix the export so it writes whole "
                                               "characters (UTF-8, or both halves of the pair)")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _Bad(path[:200] or "<record>", f"is nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH); "
                                           "flatten it, or store deep data as a JSON string")
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{key}" if path else key
                if _SURROGATE.search(key):
                    stack.append((key, child, depth))
                stack.append((value, child, depth + 1))
        else:
            stack.extend((value, f"{path}[{i}]", depth + 1) for i, value in enumerate(node))


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


def _content(raw: Any, where: str, warn: _Warnings | None) -> str | None:
    """A turn's text: a string, or the text parts of a content-part list joined (others ignored)."""
    if raw is None or isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise _Bad(f"{where}.content", f"must be a string or a list of content parts, got {type(raw).__name__}")
    texts, others = [], []
    for j, part in enumerate(raw):
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, dict):
            raise _Bad(f"{where}.content[{j}]", f"must be a content part object or a string, got {type(part).__name__}")
        elif part.get("type") in _TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise _Bad(f"{where}.content[{j}].text", f"must be a string, got {type(part.get('text')).__name__}")
            texts.append(part["text"])
        else:
            others.append(part.get("type"))
    if others and not texts and warn is not None:
        warn(f"{where}.content", f"has only non-text content parts ({', '.join(map(_short, others[:3]))}); they "
                                 "are ignored and the turn is empty (warned once per file)", once="non-text-content")
    return "".join(texts)


def _tool_calls(m: dict[str, Any], where: str) -> dict[str, Any]:
    """An assistant turn's tool calls, OpenAI-shaped (LangChain's {"name", "args", "id"} rewritten)."""
    out: dict[str, Any] = {}
    calls = m.get("tool_calls")
    if calls is not None and calls != []:
        if not isinstance(calls, list):
            raise _Bad(f"{where}.tool_calls", f"must be a list of tool calls, got {type(calls).__name__}")
        out["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": {"name": c["name"], "arguments": c["args"]}}
            if isinstance(c, dict) and "function" not in c and "name" in c and "args" in c else c
            for c in calls
        ]
    if m.get("function_call") is not None:  # the legacy OpenAI form of one tool call
        out["function_call"] = m["function_call"]
    return out


def _message(m: Any, where: str, warn: _Warnings | None) -> dict[str, Any]:
    """One turn: {"role", "content"}, plus the tool-call keys of agent traces (see the module rules)."""
    if isinstance(m, dict) and isinstance(m.get("data"), dict) and "content" not in m and "role" not in m:
        m = {"type": m.get("type"), **m["data"]}  # langchain_core.messages.messages_to_dict
    if not isinstance(m, dict):
        raise _Bad(where, f"must be an object with 'role' and 'content', got {type(m).__name__}")
    role = m.get("role") or m.get("type")
    if isinstance(role, str):
        role = _ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise _Bad(f"{where}.role", f"is {_short(role)}; expected one of {list(ROLES)} "
                                    "(LangChain's 'type' human/ai/system/tool is read too)")
    calls = _tool_calls(m, where) if role == "assistant" else {}
    content = _content(m.get("content"), where, warn)
    if content is None:
        if not calls:
            raise _Bad(f"{where}.content", "must be a string or a list of content parts, got NoneType "
                                           "(null is allowed only in an assistant turn with tool_calls)")
        content = ""
    out: dict[str, Any] = {"role": role, "content": content, **calls}
    if role == "tool":
        out.update({k: m[k] for k in ("tool_call_id", "name") if m.get(k) is not None})
    return out


def _messages_only(raw: Any, field_name: str, warn: _Warnings | None = None) -> tuple[dict[str, Any], ...]:
    """A list of turns with known roles (no check of what the turns say); see `_message`."""
    if not isinstance(raw, list) or not raw:
        raise _Bad(field_name, "must be a non-empty list of {\"role\", \"content\"} objects")
    return tuple(_message(m, f"{field_name}[{i}]", warn) for i, m in enumerate(raw))


def _messages(raw: Any, field_name: str, warn: _Warnings | None = None) -> tuple[dict[str, Any], ...]:
    """A log's turns: a non-empty user question followed by the system's non-empty answer."""
    out = _messages_only(raw, field_name, warn)
    first_user = next((i for i, m in enumerate(out) if m["role"] == "user"), None)
    if first_user is None:
        raise _Bad(field_name, "has no 'user' turn; a log needs the user's question")
    if not any(m["role"] == "assistant" for m in out[first_user + 1:]):
        raise _Bad(field_name, "has no 'assistant' turn after the first user turn; a log needs the system's answer")
    answer = _answer_position(out)
    if answer is None or not next(m for m in reversed(out[:answer]) if m["role"] == "user")["content"].strip():
        raise _Bad(field_name, "the question and the answer must be non-empty (a turn of only images or only "
                               "tool calls has no text)")
    return out


def _feedback(raw: Any) -> Feedback:
    if raw is None:
        return Feedback()
    if not isinstance(raw, dict):
        raise _Bad("feedback", f"must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(FEEDBACK_FIELDS))
    if unknown:
        close = difflib.get_close_matches(unknown[0][:100], FEEDBACK_FIELDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise _Bad(f"feedback.{unknown[0][:100]}", f"is not a known feedback field; {hint}allowed: rating, "
                                                   "edited_response, comment")
    rating = raw.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not -1 <= rating <= 1:
            raise _Bad("feedback.rating", f"is {_short(rating)}; expected a number in [-1, 1] (-1 thumbs down, 1 thumbs up; map star ratings onto this range)")
        rating = float(rating)
    for key in ("edited_response", "comment"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _Bad(f"feedback.{key}", f"must be a string, got {type(raw[key]).__name__}")
    edited = raw.get("edited_response") or None
    return Feedback(rating=rating, edited_response=edited, comment=raw.get("comment") or None)


def _memorybench(obj: dict[str, Any], warn: _Warnings | None) -> tuple[tuple[dict[str, Any], ...], Feedback, str | None]:
    """MemoryBench rows: `dialog` (+ `implicit_feedback`), string columns possibly JSON-encoded."""
    dialog = obj["dialog"]
    if isinstance(dialog, str):
        dialog = _load_json(dialog, "dialog", "dialog", "give the dialog as a list of turns or its JSON encoding")
    messages = _messages(dialog, "dialog", warn)
    rating = None
    signals = obj.get("implicit_feedback") or []
    if isinstance(signals, str):
        signals = [signals]
    for s in signals if isinstance(signals, list) else [signals]:
        kind = (s.get("type") or s.get("action") or "") if isinstance(s, dict) else s
        if str(kind).lower() in _IMPLICIT_RATING:
            rating = _IMPLICIT_RATING[str(kind).lower()]
    rid = None
    if "test_idx" in obj:
        rid = f"{obj.get('dataset_name', 'memorybench')}_{obj['test_idx']}"
    return messages, Feedback(rating=rating), rid


def _warn_unknown_fields(obj: dict[str, Any], warn: _Warnings) -> None:
    """Unknown top-level fields are ignored: say so once per file and name, with the closest known name."""
    for key in obj:
        if key in RECORD_FIELDS:
            continue
        close = difflib.get_close_matches(key, RECORD_FIELDS, n=1) if len(key) <= 100 else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        warn(key[:100], f"is not a known field and is ignored; {hint}known fields: {', '.join(RECORD_FIELDS)} "
                        "(put extra data under 'metadata')", once=("field", key))


def _cap(text: str, field_name: str, warn: _Warnings) -> str:
    """`text` cut to MAX_TEXT_CHARS characters, warning when it was longer."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    warn(field_name, f"is {len(text):,} characters long; cut to the first {MAX_TEXT_CHARS:,} (MAX_TEXT_CHARS)")
    return text[:MAX_TEXT_CHARS]


def _capped(messages: tuple[dict[str, Any], ...], field_name: str, feedback: Feedback,
            warn: _Warnings) -> tuple[tuple[dict[str, Any], ...], Feedback]:
    """Messages and feedback with every text cut to MAX_TEXT_CHARS (each cut warned about)."""
    messages = tuple(m if len(m["content"]) <= MAX_TEXT_CHARS
                     else {**m, "content": _cap(m["content"], f"{field_name}[{i}].content", warn)}
                     for i, m in enumerate(messages))
    texts = {k: _cap(getattr(feedback, k), f"feedback.{k}", warn)
             for k in ("edited_response", "comment") if getattr(feedback, k) is not None}
    return messages, replace(feedback, **texts)


def parse_record(obj: Any, source: str, line_no: int, warn: _Warnings | None = None) -> LogRecord:
    """Validate one decoded JSON object; raises `_Bad` naming the field.

    Warnings (ignored fields, cut texts) go to `warn` (`read_logs` passes its per-file collector);
    without it they are only logged.
    """
    if warn is None:
        warn = _Warnings(source, [], line_no)
    if not isinstance(obj, dict):
        raise _Bad("<record>", f"each line must be a JSON object, got {type(obj).__name__}")
    rid = None
    if "messages" in obj or "dialog" not in obj:
        _warn_unknown_fields(obj, warn)
    if "messages" in obj:
        field_name = "messages"
        messages = _messages(obj["messages"], field_name, warn)
        feedback = _feedback(obj.get("feedback"))
    elif "dialog" in obj:
        field_name = "dialog"
        messages, feedback, rid = _memorybench(obj, warn)
    else:
        raise _Bad("messages", "is missing; give the conversation as 'messages' (or a MemoryBench 'dialog')")
    if obj.get("id") is not None:
        rid = str(obj["id"])
    user_id = obj.get("user_id")
    if user_id is not None and not isinstance(user_id, (str, int)):
        raise _Bad("user_id", f"must be a string, got {type(user_id).__name__}")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _Bad("metadata", f"must be an object, got {type(metadata).__name__}")
    messages, feedback = _capped(messages, field_name, feedback, warn)
    user_id = None if user_id is None else str(user_id)
    if rid is None:
        rid = _content_id(messages, feedback, user_id, metadata)
    return LogRecord(id=rid, messages=messages, feedback=feedback, user_id=user_id, metadata=metadata,
                     source=f"{source}:{line_no}")


def _content_id(messages: tuple[dict[str, Any], ...], feedback: Feedback, user_id: str | None,
                metadata: dict[str, Any]) -> str:
    """The id of a record that has none: a hash of everything `_same_content` compares, so two records
    get one id exactly when they are duplicates. Content-derived ids keep reruns and incremental runs
    stable. Two users sending the same exchange are two logs (each counts towards its own user's share
    and can be forgotten on its own), not a conflict. A record without user and metadata hashes as it
    did before they were included, so its id (and the work done on it) stays."""
    parts: list[Any] = [list(messages), vars(feedback)]
    if user_id is not None or metadata:
        parts += [user_id, metadata]
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return "log-" + hashlib.sha256(blob).hexdigest()[:12]


def _same_content(a: LogRecord, b: LogRecord) -> bool:
    """Whether two records say the same thing (where they were read from aside)."""
    def canonical(r: LogRecord) -> str:
        return json.dumps(r.to_dict(), sort_keys=True, default=str)
    return canonical(a) == canonical(b)


def read_logs(*paths: str | Path) -> LogReadReport:
    """Read JSONL log files: keep good records, report bad lines, count exact duplicates by id.

    Every non-blank line is a kept record, a duplicate or a problem; see the module docstring.

    Raises:
        LogFormatError: a file is missing, or no file holds any valid record.
    """
    records: list[LogRecord] = []
    problems: list[LogProblem] = []
    warnings: list[LogProblem] = []
    kept: dict[str, LogRecord] = {}
    duplicates = 0
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise LogFormatError(f"log file {str(path)!r} does not exist")
        warn = _Warnings(str(path), warnings)
        with path.open("rb") as fh:
            for line_no, offset, raw in _lines(fh):
                warn.line = line_no
                try:
                    text = _decode(raw, offset)
                    if not text.strip():
                        continue
                    obj = _load_json(text, "<json>", "", "each line must be one JSON object")
                    record = parse_record(obj, str(path), line_no, warn)
                except _Bad as bad:
                    problems.append(LogProblem(str(path), line_no, bad.field, bad.message))
                    continue
                first = kept.get(record.id)
                if first is None:
                    kept[record.id] = record
                    records.append(record)
                elif _same_content(first, record):
                    duplicates += 1
                else:
                    problems.append(LogProblem(str(path), line_no, "id", (
                        f"repeats id {_short(record.id)} of {first.source} with different content; the first is kept. "
                        "Give each record its own id, or delete the stale copy")))
    if not records:
        shown = "; ".join(str(p) for p in problems[:3]) or "the files are empty"
        raise LogFormatError(f"no valid log record in {', '.join(map(str, paths))}: {shown}")
    return LogReadReport(records=records, problems=problems, duplicates=duplicates, warnings=warnings)
