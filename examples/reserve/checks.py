"""Per-topic satisfaction checks for the fifth evaluation-only set (`examples/reserve/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/unseen/` and `examples/sealed/`, each topic is a *want* about the form of an answer,
shared by users who ask about two unrelated subjects (a `table` user may ask about wine or about
phones); `check(item, answer)` says whether `answer` satisfies the want of `item`'s topic
(`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "table"}}, "Two picks:\\n\\n| wine | with |\\n|---|---|\\n| Rioja | lamb |")
    True
    >>> check({"metadata": {"topic": "table"}}, "wine | with\\n:--- | ---:\\nRioja | lamb")
    True
    >>> check({"metadata": {"topic": "table"}}, "| wine | with |\\n| Rioja | lamb |")
    False
    >>> check({"metadata": {"topic": "table"}}, "| wine | with |\\n|---|---|")
    False
    >>> check({"metadata": {"topic": "you-first"}}, "You should cool the burn under running water for twenty minutes.")
    True
    >>> check({"metadata": {"topic": "you-first"}}, "You'll want to castle early.")
    True
    >>> check({"metadata": {"topic": "you-first"}}, "Your king is safer after castling.")
    False
    >>> check({"metadata": {"topic": "you-first"}}, "If you burn yourself, cool it under water.")
    False
    >>> check({"metadata": {"topic": "checklist"}}, "Before the bees arrive:\\n- [ ] hive stand\\n- [ ] smoker\\n- [x] veil")
    True
    >>> check({"metadata": {"topic": "checklist"}}, "- hive stand\\n- smoker\\n- veil")
    False
    >>> check({"metadata": {"topic": "checklist"}}, "* [ ] hive stand\\n* [ ] smoker\\n* [ ] veil")
    False
    >>> check({"metadata": {"topic": "checklist"}}, "- [ ] hive stand\\n- [ ] smoker")
    False
    >>> check({"metadata": {"topic": "next-step"}}, "Sand with the grain.\\nNext step: try 180 grit on an offcut.")
    True
    >>> check({"metadata": {"topic": "next-step"}}, "Sand with the grain.\\nNext steps: try 180 grit.")
    False
    >>> check({"metadata": {"topic": "next-step"}}, "Next step: try 180 grit.\\nSand with the grain.")
    False
    >>> check({"metadata": {"topic": "next-step"}}, "Sand with the grain.\\n**Next step:** try 180 grit.")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Inflation is a general rise in prices over time.")
    True
    >>> check({"metadata": {"topic": "inconsistent"}}, "Prices rise.")
    False

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, as in the earlier sets; the base model usually gives that.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "table": "Put the comparison in a markdown table: a header row, a '|---|' separator row and at least one row below it.",
    "you-first": "Talk to the user directly: the answer's first word is 'You' (or You're / You'll / You've / You'd).",
    "checklist": "Give the things to do as a checklist: at least three lines starting with '- [ ] ' (or '- [x] ').",
    "next-step": "End the answer with a last line that starts with 'Next step:' and says the one thing to do next.",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_FENCE = re.compile(r"^\s*(```|~~~)")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_YOU = re.compile(r"^You(?:['’](?:re|ll|ve|d))?(?=[\s,.!?:;]|$)")
_CHECKBOX = re.compile(r"^- \[[ xX]\] \S")


def _lines(answer: str) -> list[str]:
    """The non-empty lines of an answer, stripped."""
    return [line.strip() for line in answer.splitlines() if line.strip()]


def _cells(line: str) -> list[str] | None:
    """The cells of a table row (outer pipes optional), or None when the line has no pipe."""
    line = line.strip()
    if "|" not in line:
        return None
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def check_table(answer: str) -> bool:
    """A markdown table outside code fences: a header row of at least two cells, directly followed
    by a separator row with as many cells, each only dashes with optional alignment colons
    ('---', ':--', '--:'), directly followed by at least one row of at least two cells. Outer pipes
    are optional. Rows without a separator, a separator with another number of cells, tab- or
    space-aligned columns and a table inside a ``` block do not count."""
    rows: list[str] = []
    fenced = False
    for line in answer.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            rows.append("")
            continue
        rows.append("" if fenced else line)
    for k in range(len(rows) - 2):
        head, sep, body = _cells(rows[k]), _cells(rows[k + 1]), _cells(rows[k + 2])
        if head is None or sep is None or body is None:
            continue
        if (len(head) >= 2 and len(sep) == len(head) and len(body) >= 2
                and all(_SEPARATOR_CELL.match(c) for c in sep)
                and not all(_SEPARATOR_CELL.match(c) for c in head) and any(head)
                and not all(_SEPARATOR_CELL.match(c) for c in body) and any(body)):
            return True
    return False


def check_you_first(answer: str) -> bool:
    """The answer's first word is exactly 'You' (this capitalisation), or You're / You'll / You've /
    You'd, with a straight or curly apostrophe. 'Your', 'you', 'YOU', '**You**', 'Yes, you' and
    'If you' do not count."""
    return _YOU.match(answer.strip()) is not None


def check_checklist(answer: str) -> bool:
    """At least three lines that start (after indentation) with exactly '- [ ] ', '- [x] ' or
    '- [X] ' and text. '* [ ]', '-[ ]', '- []', '[ ]' without the dash, '☐' and plain '- ' bullets do
    not count."""
    return sum(bool(_CHECKBOX.match(line.lstrip())) for line in answer.splitlines()) >= 3


def check_next_step(answer: str) -> bool:
    """The last non-empty line starts with exactly 'Next step:' (this capitalisation) and has text
    after it, and at least one non-empty line comes before it. 'Next steps:', 'Next Step:',
    '**Next step:**', 'Next step -', a line after it (a sign-off) and an answer that is only that
    line do not count."""
    lines = _lines(answer)
    return len(lines) >= 2 and lines[-1].startswith("Next step:") and bool(lines[-1][len("Next step:"):].strip())


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "table": check_table,
    "you-first": check_you_first,
    "checklist": check_checklist,
    "next-step": check_next_step,
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
