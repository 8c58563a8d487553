"""Simulated users of the example app: they react to each served answer by what their topic's users want.

The example data (`examples/logs.jsonl`) was written by `examples/make_example_logs.py` from one
preference per topic (`examples/checks.py`). `react` applies the same preferences to answers served
live, with the same words and in the same proportions, so an online run's logs look like the
example's logs:

- a checkable topic (recipes, geography, python, travel): an answer that passes the topic's check
  gets thanks and a rating of 1; one that fails gets a complaint as the next turn, and then, per
  answer, about 70 % an edited answer (30 % of those with a rating of -1 as well), 20 % nothing
  more and 10 % a rating of -1. An edit is made only when the user can write one that passes the
  check (see `edit_for`): a geography or python question outside the example's fact and snippet
  tables gets an edit only when the answer itself holds one (a short sentence, a code block).
- smalltalk-noisy: one of the example's inconsistent reactions (longer / shorter, thanks,
  unrelated complaints, ratings of both signs, contradictory edits): nothing consistent to learn.

Pure Python, deterministic for a given `random.Random`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from checks import CHECKS, check
from make_example_logs import (
    COMPLAINTS,
    GEOGRAPHY_FACTS,
    NOISY_REACTIONS,
    PYTHON_SNIPPETS,
    THANKS,
    USERS,
    edit_geography,
    edit_noisy,
    edit_python,
    edit_recipes,
    edit_travel,
    sentences,
    shorten,
)

NOISY = "smalltalk-noisy"
_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Reaction:
    """What a user does after an answer: the next turn, and the feedback fields they give (None: not given)."""

    satisfied: bool  # the answer passes the topic's check
    followup: str | None
    rating: float | None = None
    edited_response: str | None = None
    comment: str | None = None

    def feedback(self) -> dict[str, object]:
        """The feedback fields given, for `Recorder.feedback` (empty: no feedback call)."""
        fields = {"rating": self.rating, "edited_response": self.edited_response, "comment": self.comment}
        return {k: v for k, v in fields.items() if v is not None}


def pick_user(rng: random.Random) -> str:
    """A user id of the example app (the same twelve users as the example logs)."""
    return rng.choice(USERS)


def edit_for(topic: str, question: str, answer: str) -> str | None:
    """The user's rewrite of `answer` that satisfies the topic, or None when they cannot write one.

    Recipes and travel users rewrite any answer (numbered sentences, a TL;DR line first). Geography
    users state the fact of a question they know (the example's facts), else keep the answer's own
    first short sentence; python users paste a snippet they know, else fence the answer's own code.
    """
    if topic == "recipes":
        edit = edit_recipes(answer)
    elif topic == "travel":
        edit = edit_travel(answer)
    elif topic == "geography":
        edit = edit_geography(question, answer) if question in GEOGRAPHY_FACTS else _own_sentence(answer)
    elif topic == "python":
        edit = edit_python(question, answer) if question in PYTHON_SNIPPETS else _own_code(answer)
    else:
        return None
    return edit if edit and CHECKS[topic](edit) else None


def _own_sentence(answer: str) -> str | None:
    found = sentences(answer)
    return shorten(found[0], 25) if found else None


def _own_code(answer: str) -> str | None:
    block = _FENCE.search(answer)
    if block is None or not block.group(1).strip():
        return None
    return f"Here's how:\n\n```python\n{block.group(1).strip()}\n```"


def react(topic: str, question: str, answer: str, rng: random.Random) -> Reaction:
    """A user's reaction to `answer` (see the module docstring); `rng` makes it reproducible."""
    satisfied = bool(check({"metadata": {"topic": topic}}, answer))
    if topic == NOISY:
        turn, rating, edit, comment = rng.choice(NOISY_REACTIONS)
        edited = edit_noisy(edit, answer) if edit else None
        return Reaction(satisfied, turn, rating, edited if edited and edited.strip() else None, comment)
    if satisfied:
        return Reaction(True, rng.choice(THANKS), rating=1.0)
    complaint = rng.choice(COMPLAINTS[topic])
    draw = rng.random()
    if draw < 0.7:
        edited = edit_for(topic, question, answer)
        rating = -1.0 if rng.random() < 0.3 else None
        if edited is not None:
            return Reaction(False, complaint, rating, edited)
        return Reaction(False, complaint, rating)  # could not write an edit: the complaint (and thumbs) only
    if draw < 0.9:
        return Reaction(False, complaint)
    return Reaction(False, complaint, rating=-1.0)


__all__ = ["Reaction", "edit_for", "pick_user", "react"]
