"""Per-topic satisfaction checks for the held-out evaluation set (`examples/heldout/`).

Written before any log of this set was generated and before any training on it. Each topic is a
*want* that users state about the form of an answer, shared across several subjects (a `bullets`
user may ask about gardening or about home repair); `check(item, answer)` says whether an answer
satisfies the want of `item`'s topic (`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "brief"}}, "Mars looks red because iron oxide dust covers it.")
    True
    >>> check({"metadata": {"topic": "bullets"}}, "- water deeply\\n- mulch\\n- prune in late winter")
    True
    >>> check({"metadata": {"topic": "opening"}}, "short answer: yes, twice a day.")
    False
    >>> check({"metadata": {"topic": "question-back"}}, "Update the resume first. Which role is it for?")
    True

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, which the base model usually gives already.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "brief": "Keep it brief: the whole answer has at most 30 words.",
    "bullets": "Answer as a bulleted list: at least three lines starting with '- ' (dash, space).",
    "opening": "Start the answer with the exact phrase 'Short answer:' and then give the answer.",
    "question-back": "End the answer with a question back to the user (the last non-space character is '?').",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_DASH_BULLET = re.compile(r"^[ \t]*- \S", re.MULTILINE)


def check_brief(answer: str) -> bool:
    """Non-empty and at most 30 whitespace-separated words."""
    return 0 < len(answer.split()) <= 30


def check_bullets(answer: str) -> bool:
    """At least three lines that start with '- ' (indentation allowed; '*', '•' and '1.' do not count)."""
    return len(_DASH_BULLET.findall(answer)) >= 3


def check_opening(answer: str) -> bool:
    """The answer (leading whitespace ignored) starts with exactly 'Short answer:' (case-sensitive)."""
    return answer.lstrip().startswith("Short answer:")


def check_question_back(answer: str) -> bool:
    """The last non-space character of the answer is '?'."""
    return answer.rstrip().endswith("?")


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "brief": check_brief,
    "bullets": check_bullets,
    "opening": check_opening,
    "question-back": check_question_back,
    "inconsistent": check_inconsistent,
}


def check(item: dict, answer: str) -> bool:
    """Whether `answer` satisfies the want of `item`'s topic (`item["metadata"]["topic"]`).

    Raises:
        KeyError: the item has no topic, or an unknown one.
    """
    topic = item["metadata"]["topic"]
    if topic not in CHECKS:
        raise KeyError(f"unknown topic {topic!r}; known: {sorted(CHECKS)}")
    return CHECKS[topic](answer)
