"""Per-topic satisfaction checks for the fourth evaluation-only set (`examples/sealed/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/unseen/`, each topic is a *want* about the form of an answer, shared by users who ask
about two unrelated subjects (a `heading` user may ask about coffee or about an aquarium);
`check(item, answer)` says whether `answer` satisfies the want of `item`'s topic
(`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "heading"}}, "## Dialing in espresso\\nGrind finer if the shot runs fast.")
    True
    >>> check({"metadata": {"topic": "heading"}}, "# Dialing in espresso\\nGrind finer if the shot runs fast.")
    False
    >>> check({"metadata": {"topic": "heading"}}, "Grind finer.\\n## Dialing in espresso")
    False
    >>> check({"metadata": {"topic": "key-point"}}, "Use absolute references.\\n**Key point:** add $ signs before copying the formula.")
    True
    >>> check({"metadata": {"topic": "key-point"}}, "Key point: add $ signs before copying the formula.")
    False
    >>> check({"metadata": {"topic": "key-point"}}, "**Key Point:** add $ signs.")
    False
    >>> check({"metadata": {"topic": "compact-prose"}}, "Pack one box a day, heaviest items in small boxes, and label every box by room.")
    True
    >>> check({"metadata": {"topic": "compact-prose"}}, "Pack early:\\n- one box a day\\n- label by room")
    False
    >>> check({"metadata": {"topic": "example-line"}}, "Put the request in the first line.\\nExample: Could you review the budget by Friday?")
    True
    >>> check({"metadata": {"topic": "example-line"}}, "Put the request first.\\nFor example: Could you review it by Friday?")
    False
    >>> check({"metadata": {"topic": "example-line"}}, "Example: Could you review the budget by Friday?")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Free indirect speech blends the narrator's voice with a character's thoughts.")
    True

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, as in the earlier sets; the base model usually gives that.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "heading": "Start the answer with a markdown level-2 heading: the first line is '## ' and a title, the answer below it.",
    "key-point": "Include a line that starts with the bold label '**Key point:**' followed by the one thing to remember.",
    "compact-prose": "Answer in plain prose of at most 60 words: no bulleted or numbered list lines.",
    "example-line": "After the explanation, give a concrete example on its own line starting with 'Example:'.",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_LIST_LINE = re.compile(r"^\s*([-*•+]|\d+[.)])\s", re.MULTILINE)


def _lines(answer: str) -> list[str]:
    """The non-empty lines of an answer, stripped."""
    return [line.strip() for line in answer.splitlines() if line.strip()]


def _labelled(line: str, label: str) -> bool:
    """`line` starts with exactly `label` (case-sensitive) and has text after it."""
    return line.startswith(label) and bool(line[len(label):].strip())


def check_heading(answer: str) -> bool:
    """The first non-empty line is a level-2 markdown heading ('## ' then a title; '#', '###',
    '##Title' and '**Title**' do not count), and at least one non-empty line follows it."""
    lines = _lines(answer)
    return len(lines) >= 2 and _labelled(lines[0], "## ")


def check_key_point(answer: str) -> bool:
    """Some non-empty line starts with exactly '**Key point:**' (bold label, this capitalisation)
    and has text after the label on the same line. 'Key point:' unbolded, '**Key Point:**',
    '**Key point**:' and the label in the middle of a line do not count."""
    return any(_labelled(line, "**Key point:**") for line in _lines(answer))


def check_compact_prose(answer: str) -> bool:
    """1 to 60 whitespace-separated words and no list line (a line starting with '-', '*', '•',
    '+' or '1.' / '1)' followed by a space)."""
    return 0 < len(answer.split()) <= 60 and _LIST_LINE.search(answer) is None


def check_example_line(answer: str) -> bool:
    """A non-empty line other than the first starts with exactly 'Example:' (case-sensitive) and has
    text after it. 'For example:', '**Example:**', 'Examples:', 'example:' and 'Example -' do not
    count, nor does an answer that opens with the example."""
    return any(_labelled(line, "Example:") for line in _lines(answer)[1:])


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "heading": check_heading,
    "key-point": check_key_point,
    "compact-prose": check_compact_prose,
    "example-line": check_example_line,
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
