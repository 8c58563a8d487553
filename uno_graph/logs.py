"""Reading user logs: the JSONL format of DESIGN.md and MemoryBench dialogs.

A log is the conversation up to the user's question, the system's answer, and what the user did
next: later turns (complaints, corrections, thanks), an explicit rating, an edited answer.

    >>> report = read_logs("examples/logs.jsonl")          # doctest: +SKIP
    >>> report.records[0].query, len(report.problems)      # doctest: +SKIP

A bad record never stops the read: it is reported as a `LogProblem` (file, line, field, fix) and
every valid record is kept. A file with no valid record raises `LogFormatError`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uno_graph.errors import LogFormatError

ROLES = ("system", "user", "assistant", "tool")
# MemoryBench's implicit signals (the reference ignored them): like/copy read as approval.
_IMPLICIT_RATING = {"like": 1.0, "copy": 1.0, "dislike": -1.0}


@dataclass(frozen=True)
class Feedback:
    """Explicit feedback. `rating` is in [-1, 1]: -1 thumbs down, 0 neutral, 1 thumbs up."""

    rating: float | None = None
    edited_response: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class LogRecord:
    """One logged exchange and the user's reaction to it."""

    id: str
    messages: tuple[dict[str, str], ...]
    feedback: Feedback = field(default_factory=Feedback)
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "file:line", for error messages

    # The answer is the first assistant turn after the first user turn.
    @property
    def _answer_index(self) -> int:
        first_user = next(i for i, m in enumerate(self.messages) if m["role"] == "user")
        return next(i for i in range(first_user + 1, len(self.messages)) if self.messages[i]["role"] == "assistant")

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation the answer responded to (system turn included)."""
        return [dict(m) for m in self.messages[: self._answer_index]]

    @property
    def query(self) -> str:
        """The user's question: the last user turn before the answer."""
        return next(m["content"] for m in reversed(self.prompt_messages) if m["role"] == "user")

    @property
    def answer(self) -> str:
        return self.messages[self._answer_index]["content"]

    @property
    def followups(self) -> list[dict[str, str]]:
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
    """Why one line of a log file was not used, and how to fix it."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field {self.field!r}: {self.message}"


@dataclass
class LogReadReport:
    records: list[LogRecord]
    problems: list[LogProblem]
    duplicates: int = 0


class _Bad(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _messages_only(raw: Any, field_name: str) -> tuple[dict[str, str], ...]:
    """A list of {"role", "content"} turns with known roles (no check of what the turns say)."""
    if not isinstance(raw, list) or not raw:
        raise _Bad(field_name, "must be a non-empty list of {\"role\", \"content\"} objects")
    out = []
    for i, m in enumerate(raw):
        where = f"{field_name}[{i}]"
        if not isinstance(m, dict):
            raise _Bad(where, f"must be an object with 'role' and 'content', got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role == "human":
            role = "user"
        elif role == "ai":
            role = "assistant"
        if role not in ROLES:
            raise _Bad(f"{where}.role", f"is {role!r}; expected one of {list(ROLES)}")
        if not isinstance(content, str):
            raise _Bad(f"{where}.content", f"must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return tuple(out)


def _messages(raw: Any, field_name: str) -> tuple[dict[str, str], ...]:
    """A log's turns: a non-empty user question followed by the system's non-empty answer."""
    out = list(_messages_only(raw, field_name))
    first_user = next((i for i, m in enumerate(out) if m["role"] == "user"), None)
    if first_user is None:
        raise _Bad(field_name, "has no 'user' turn; a log needs the user's question")
    answer = next((i for i in range(first_user + 1, len(out)) if out[i]["role"] == "assistant"), None)
    if answer is None:
        raise _Bad(field_name, "has no 'assistant' turn after the first user turn; a log needs the system's answer")
    if not out[first_user]["content"].strip() or not out[answer]["content"].strip():
        raise _Bad(field_name, "the question and the answer must be non-empty")
    return tuple(out)


def _feedback(raw: Any) -> Feedback:
    if raw is None:
        return Feedback()
    if not isinstance(raw, dict):
        raise _Bad("feedback", f"must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"rating", "edited_response", "comment"})
    if unknown:
        raise _Bad(f"feedback.{unknown[0]}", "is not a known feedback field; allowed: rating, edited_response, comment")
    rating = raw.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not -1 <= rating <= 1:
            raise _Bad("feedback.rating", f"is {rating!r}; expected a number in [-1, 1] (-1 thumbs down, 1 thumbs up; map star ratings onto this range)")
        rating = float(rating)
    for key in ("edited_response", "comment"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _Bad(f"feedback.{key}", f"must be a string, got {type(raw[key]).__name__}")
    edited = raw.get("edited_response") or None
    return Feedback(rating=rating, edited_response=edited, comment=raw.get("comment") or None)


def _memorybench(obj: dict[str, Any]) -> tuple[tuple[dict[str, str], ...], Feedback, str | None]:
    """MemoryBench rows: `dialog` (+ `implicit_feedback`), string columns possibly JSON-encoded."""
    dialog = obj["dialog"]
    if isinstance(dialog, str):
        try:
            dialog = json.loads(dialog)
        except json.JSONDecodeError as exc:
            raise _Bad("dialog", f"is a string that is not JSON ({exc.msg})") from None
    messages = _messages(dialog, "dialog")
    rating = None
    signals = obj.get("implicit_feedback") or []
    if isinstance(signals, str):
        signals = [signals]
    for s in signals if isinstance(signals, list) else [signals]:
        kind = (s.get("type") or s.get("action") or "") if isinstance(s, dict) else str(s)
        if kind.lower() in _IMPLICIT_RATING:
            rating = _IMPLICIT_RATING[kind.lower()]
    rid = None
    if "test_idx" in obj:
        rid = f"{obj.get('dataset_name', 'memorybench')}_{obj['test_idx']}"
    return messages, Feedback(rating=rating), rid


def parse_record(obj: Any, source: str, line_no: int) -> LogRecord:
    """Validate one decoded JSON object; raises `_Bad` naming the field."""
    if not isinstance(obj, dict):
        raise _Bad("<record>", f"each line must be a JSON object, got {type(obj).__name__}")
    rid = None
    if "messages" in obj:
        messages = _messages(obj["messages"], "messages")
        feedback = _feedback(obj.get("feedback"))
    elif "dialog" in obj:
        messages, feedback, rid = _memorybench(obj)
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
    if rid is None:  # content-derived ids keep reruns and incremental runs stable
        rid = "log-" + hashlib.sha256(json.dumps([list(messages), vars(feedback)], sort_keys=True).encode()).hexdigest()[:12]
    record = LogRecord(id=rid, messages=messages, feedback=feedback,
                       user_id=None if user_id is None else str(user_id), metadata=metadata,
                       source=f"{source}:{line_no}")
    return record


def read_logs(*paths: str | Path) -> LogReadReport:
    """Read JSONL log files; report bad lines, keep good ones, drop exact duplicates by id.

    Raises:
        LogFormatError: a file is missing, or no file holds any valid record.
    """
    records: list[LogRecord] = []
    problems: list[LogProblem] = []
    seen: set[str] = set()
    duplicates = 0
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise LogFormatError(f"log file {str(path)!r} does not exist")
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.append(LogProblem(str(path), line_no, "<json>", f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object"))
                    continue
                try:
                    record = parse_record(obj, str(path), line_no)
                except _Bad as bad:
                    problems.append(LogProblem(str(path), line_no, bad.field, bad.message))
                    continue
                if record.id in seen:
                    duplicates += 1
                    continue
                seen.add(record.id)
                records.append(record)
    if not records:
        shown = "; ".join(str(p) for p in problems[:3]) or "the files are empty"
        raise LogFormatError(f"no valid log record in {', '.join(map(str, paths))}: {shown}")
    return LogReadReport(records=records, problems=problems, duplicates=duplicates)
