"""Per-topic satisfaction checks for the example logs (`examples/logs.jsonl`, `examples/test.jsonl`).

Each topic of the example app has one preference its users keep asking for; `check(item, answer)`
says whether an answer satisfies it, for a test record `item` (its `metadata.topic` picks the check):

    >>> check({"metadata": {"topic": "travel"}}, "TL;DR: take the train.\\n\\nDetails ...")
    True

`smalltalk-noisy` has no consistent preference (its users contradict each other), so its check only
asks for a non-empty answer of reasonable length, which the base model usually gives already.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "recipes": "Cooking how-tos are answered as a numbered list of steps (at least three lines starting '1.', '2.', '3.').",
    "geography": "Short factual geography questions are answered in one short sentence of at most 25 words.",
    "python": "Python coding questions are answered with the code inside a ```python fenced block.",
    "travel": "Travel-planning answers start with 'TL;DR:' followed by a one-line summary, then the details.",
    "smalltalk-noisy": "No consistent preference: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_NUMBERED_LINE = re.compile(r"^\s*\d+[.)]", re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"```python[ \t]*\n.*?```", re.DOTALL)
_SENTENCE_BREAK = re.compile(r"[.!?][\"'”’)\]]*\s")  # a terminator, closing quotes, whitespace


def check_recipes(answer: str) -> bool:
    """At least three numbered lines ("1.", "2)", ...)."""
    return len(_NUMBERED_LINE.findall(answer)) >= 3


def check_geography(answer: str) -> bool:
    """Exactly one sentence (a trailing period is ignored), on one line, of at most 25 words."""
    text = answer.strip()
    if not text or len([line for line in text.splitlines() if line.strip()]) != 1:
        return False
    body = re.sub(r"[.!?][\"'”’)\]]*$", "", text).strip()
    if not body or _SENTENCE_BREAK.search(body):
        return False
    return len(body.split()) <= 25


def check_python(answer: str) -> bool:
    """A ```python fenced block that is closed."""
    return _PYTHON_BLOCK.search(answer) is not None


def check_travel(answer: str) -> bool:
    """The answer starts with the house convention's 'TL;DR:' line."""
    return answer.strip().startswith("TL;DR:")


def check_smalltalk_noisy(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent preference to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "recipes": check_recipes,
    "geography": check_geography,
    "python": check_python,
    "travel": check_travel,
    "smalltalk-noisy": check_smalltalk_noisy,
}


def check(item: dict, answer: str) -> bool:
    """Whether `answer` satisfies the preference of `item`'s topic (`item["metadata"]["topic"]`).

    Raises:
        KeyError: the item has no topic, or an unknown one.
    """
    topic = item["metadata"]["topic"]
    if topic not in CHECKS:
        raise KeyError(f"unknown topic {topic!r}; known: {sorted(CHECKS)}")
    return CHECKS[topic](answer)
