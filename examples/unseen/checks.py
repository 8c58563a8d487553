"""Per-topic satisfaction checks for the third evaluation-only set (`examples/unseen/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/heldout/`, each topic is a *want* about the form of an answer, shared by users who ask
about two unrelated subjects (a `summary-line` user may ask about photography or about learning a
musical instrument); `check(item, answer)` says whether `answer` satisfies the want of `item`'s
topic (`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "summary-line"}}, "Use a tripod.\\nLower the ISO.\\nSummary: steady camera, low ISO.")
    True
    >>> check({"metadata": {"topic": "summary-line"}}, "Use a tripod.\\nsummary: steady camera.")
    False
    >>> check({"metadata": {"topic": "summary-line"}}, "Summary: steady camera.\\nUse a tripod.")
    False
    >>> check({"metadata": {"topic": "three-lines"}}, "Oil the chain.\\n\\nPump the tires.\\nCheck the brakes.")
    True
    >>> check({"metadata": {"topic": "three-lines"}}, "Oil the chain. Pump the tires. Check the brakes.")
    False
    >>> check({"metadata": {"topic": "lowercase"}}, "pack a rain jacket and extra socks, it gets cold at night.")
    True
    >>> check({"metadata": {"topic": "lowercase"}}, "i'd watch it on Netflix, the sequel is weaker.")
    False
    >>> check({"metadata": {"topic": "yes-no"}}, "Yes, two eggs a day is fine for most healthy adults.")
    True
    >>> check({"metadata": {"topic": "yes-no"}}, "Yep, two eggs a day is fine.")
    False
    >>> check({"metadata": {"topic": "yes-no"}}, "Not really, but it depends.")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Kant thought duty, not outcome, makes an act right.")
    True

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, which the base model usually gives already.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "summary-line": "End the answer with a final line that starts with 'Summary:' (after at least one line of answer above it).",
    "three-lines": "Answer in exactly three lines (three non-empty lines; blank lines do not count).",
    "lowercase": "Write the whole answer in lowercase: no capital letter anywhere.",
    "yes-no": "Start the answer with the word 'Yes' or 'No' (capitalised), then explain.",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_YES_NO = re.compile(r"(Yes|No)\b")


def _lines(answer: str) -> list[str]:
    """The non-empty lines of an answer, stripped."""
    return [line.strip() for line in answer.splitlines() if line.strip()]


def check_summary_line(answer: str) -> bool:
    """The last non-empty line starts with exactly 'Summary:' (case-sensitive; no '**', no 'In
    summary:') and has text after it, and at least one non-empty line comes before it."""
    lines = _lines(answer)
    return len(lines) >= 2 and lines[-1].startswith("Summary:") and bool(lines[-1][len("Summary:"):].strip())


def check_three_lines(answer: str) -> bool:
    """Exactly three non-empty lines."""
    return len(_lines(answer)) == 3


def check_lowercase(answer: str) -> bool:
    """At least one letter and no uppercase character anywhere (a capital 'I', a proper noun or an
    acronym fails)."""
    return any(c.isalpha() for c in answer) and not any(c.isupper() for c in answer)


def check_yes_no(answer: str) -> bool:
    """The answer (leading whitespace ignored) starts with the word 'Yes' or 'No', capitalised as
    written; 'Yep', 'Yeah', 'YES', 'Not', '**Yes**' and 'Well, yes' do not count."""
    return _YES_NO.match(answer.lstrip()) is not None


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "summary-line": check_summary_line,
    "three-lines": check_three_lines,
    "lowercase": check_lowercase,
    "yes-no": check_yes_no,
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
