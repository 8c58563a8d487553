"""Explicit feedback on a recorded answer: a rating, the user's edited answer, a comment.

    >>> feedback(store, log_id, rating=-1, edited_response="1. Boil water. 2. ...")   # doctest: +SKIP

The shape follows LangSmith's `create_feedback`: one call per signal, attached to the id the
answer was returned with, from whatever process received it (a chat UI's thumbs arrive long after
the answer, often at another server). Inputs are checked before anything is written, and each
error names the field and the fix. Each call stores only the fields it gives; the folded record's
`feedback` holds the latest value of each field, so a thumbs-up followed by an edit keeps both.
"""

from __future__ import annotations

import math
from typing import Any

from uno_graph.capture.store import LogStore
from uno_graph.errors import UnoGraphError

FIELDS = ("rating", "edited_response", "comment")


class FeedbackError(UnoGraphError, ValueError):
    """A feedback value is invalid; `field` names it (for an HTTP 400's `param`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate_feedback(*, rating: Any = None, edited_response: Any = None, comment: Any = None) -> dict[str, Any]:
    """The feedback fields given, checked: `rating` a number in [-1, 1], the texts non-empty strings."""
    out: dict[str, Any] = {}
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
            raise FeedbackError("rating", f"is {rating!r}; give a number in [-1, 1] (-1 thumbs down, 0 neutral, "
                                          "1 thumbs up)")
        if not -1 <= rating <= 1:
            raise FeedbackError("rating", f"is {rating}; it must be in [-1, 1] (-1 thumbs down, 1 thumbs up; map "
                                          "star ratings onto this range, e.g. (stars - 3) / 2)")
        out["rating"] = float(rating)
    for name, value in (("edited_response", edited_response), ("comment", comment)):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise FeedbackError(name, f"is {value!r}; give non-empty text, or leave the field out to keep its "
                                      "current value")
        out[name] = value
    if not out:
        raise FeedbackError("feedback", "nothing to record; give at least one of rating, edited_response, comment")
    return out


def feedback(store: LogStore, log_id: str, *, rating: float | None = None, edited_response: str | None = None,
             comment: str | None = None) -> dict[str, Any]:
    """Attach feedback to the answer recorded as `log_id`; returns the fields stored.

    Raises:
        FeedbackError: a value is invalid (nothing is stored).
        UnknownLogError: `store` holds no answer with this id.

    Example:
        >>> feedback(JsonlLogStore("events.jsonl"), "uno-3f2a...", rating=1, comment="exactly right")  # doctest: +SKIP
        {'rating': 1.0, 'comment': 'exactly right'}
    """
    if not isinstance(log_id, str) or not log_id.strip():
        raise FeedbackError("log_id", f"is {log_id!r}; give the id the answer was returned with "
                                      "(response_metadata['uno_log_id'], or the completion id over HTTP)")
    fields = validate_feedback(rating=rating, edited_response=edited_response, comment=comment)
    store.add_feedback(log_id, fields)
    return fields


__all__ = ["FIELDS", "FeedbackError", "feedback", "validate_feedback"]
