"""Per-topic satisfaction checks for the seventh evaluation-only set (`examples/cellar/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/unseen/`, `examples/sealed/`, `examples/reserve/` and `examples/vault/`, each topic is a
*want* about the form of an answer, shared by users who ask about two unrelated subjects (a
`two-paragraphs` user may ask about insurance or about kayaking); `check(item, answer)` says
whether `answer` satisfies the want of `item`'s topic (`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "two-paragraphs"}}, "A deductible is what you pay first.\\n\\nA higher one lowers the premium.")
    True
    >>> check({"metadata": {"topic": "two-paragraphs"}}, "A deductible is what you pay first.\\nA higher one lowers the premium.")
    False
    >>> check({"metadata": {"topic": "two-paragraphs"}}, "A deductible is what you pay first.\\n\\n\\nA higher one lowers the premium.")
    False
    >>> check({"metadata": {"topic": "two-paragraphs"}}, "Deductibles, briefly\\n\\nA higher one lowers the premium you pay.")
    False
    >>> check({"metadata": {"topic": "two-paragraphs"}}, "A deductible is what you pay first.\\n\\n- A higher one lowers the premium.")
    False
    >>> check({"metadata": {"topic": "two-paragraphs"}}, "In short: you pay it first.\\n\\nA higher one lowers the premium.")
    False
    >>> check({"metadata": {"topic": "emoji-list"}}, "Before you cut the soap:\\n🧤 Wear gloves.\\n⏳ Wait 24 hours.\\n🔪 Use a wire cutter.")
    True
    >>> check({"metadata": {"topic": "emoji-list"}}, "✅ Wear gloves.\\n✅ Wait a day.\\n✅ Use a wire.")
    True
    >>> check({"metadata": {"topic": "emoji-list"}}, "- 🧤 Wear gloves.\\n- ⏳ Wait 24 hours.\\n- 🔪 Use a wire cutter.")
    False
    >>> check({"metadata": {"topic": "emoji-list"}}, "🧤Wear gloves.\\n⏳Wait 24 hours.\\n🔪Use a wire cutter.")
    False
    >>> check({"metadata": {"topic": "emoji-list"}}, "🧤 Wear gloves.\\n⏳ Wait 24 hours.")
    False
    >>> check({"metadata": {"topic": "emoji-list"}}, ":gloves: Wear gloves.\\n:hourglass: Wait.\\n:knife: Use a wire.")
    False
    >>> check({"metadata": {"topic": "caps-title"}}, "HOW TO DO A BASIC SALSA STEP\\n\\nStep forward on one, back on five.")
    True
    >>> check({"metadata": {"topic": "caps-title"}}, "WHY DID T. REX HAVE SUCH SMALL ARMS?\\nNobody knows for sure.")
    True
    >>> check({"metadata": {"topic": "caps-title"}}, "How To Do A Basic Salsa Step\\n\\nStep forward on one.")
    False
    >>> check({"metadata": {"topic": "caps-title"}}, "# HOW TO DO A BASIC SALSA STEP\\n\\nStep forward on one.")
    False
    >>> check({"metadata": {"topic": "caps-title"}}, "**HOW TO DO A BASIC SALSA STEP**\\n\\nStep forward on one.")
    False
    >>> check({"metadata": {"topic": "caps-title"}}, "HOW TO DO A BASIC SALSA STEP")
    False
    >>> check({"metadata": {"topic": "difficulty"}}, "Pop the tail and slide your front foot up.\\nDifficulty: 3/5")
    True
    >>> check({"metadata": {"topic": "difficulty"}}, "Difficulty: 2/5 (easy once the stitch is marked)\\n\\nPunch the holes first.")
    True
    >>> check({"metadata": {"topic": "difficulty"}}, "Pop the tail.\\nDifficulty: medium")
    False
    >>> check({"metadata": {"topic": "difficulty"}}, "Pop the tail.\\nDifficulty: 6/10")
    False
    >>> check({"metadata": {"topic": "difficulty"}}, "Pop the tail.\\n**Difficulty:** 3/5")
    False
    >>> check({"metadata": {"topic": "difficulty"}}, "Pop the tail. Difficulty: 3/5")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Tuff is rock made from volcanic ash pressed together.")
    True
    >>> check({"metadata": {"topic": "inconsistent"}}, "Volcanic ash.")
    False

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, as in the earlier sets; the base model usually gives that.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "two-paragraphs": "Answer in exactly two short paragraphs of running text (5-40 words each, one line each) with one blank line between them: no list, heading, title or label.",
    "emoji-list": "Give the points as a list whose lines each start with an emoji and a space (at least three such lines), not '- ' bullets.",
    "caps-title": "Open with the question restated as a title in ALL CAPS on a line of its own, then the answer below it.",
    "difficulty": "Rate how hard the task is on a line of its own that starts with 'Difficulty:' and a score out of five ('Difficulty: 3/5').",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_FENCE = re.compile(r"^\s*(```|~~~)")
# A line that is not running text: a list item, a heading, a quote, a table row, a fence.
_NOT_PROSE = re.compile(r"^\s*(?:[-*•+]\s|\d+[.)]\s|#|>|\||```|~~~)")
_PROSE_END = re.compile(r"[.!?][\"'”’)\]]*$")
# A label at the start of a line: one to three words and a colon ('Summary:', '**Key point:**', 'TL;DR:').
_LABEL = re.compile(r"^[*_]*[A-Za-z][\w;'’-]*(?: [\w;'’-]+){0,2}:")
# Emoji and pictographs: Miscellaneous Technical (⌚, ⏳), Miscellaneous Symbols, Dingbats,
# Miscellaneous Symbols and Arrows, and U+1F000-U+1FAFF (emoticons, pictographs, transport,
# supplemental symbols). A variation selector, a zero-width joiner or a skin tone may follow, then
# a space and a word.
_EMOJI = "\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"
_EMOJI_LINE = re.compile(rf"^[{_EMOJI}][{_EMOJI}\ufe0f\u200d]*[ \t]+\w")
_CAPS_START = re.compile(r"^[A-Z0-9]")
_DIFFICULTY = re.compile(r"^Difficulty:[ \t]*[1-5]/5(?!\d|[.,]\d|/)")


def _lines(answer: str) -> list[str]:
    """The non-empty lines of an answer, stripped."""
    return [line.strip() for line in answer.splitlines() if line.strip()]


def _unfenced(answer: str) -> list[str]:
    """The lines of an answer with the lines inside ``` or ~~~ blocks (and the fences) blanked."""
    out, fenced = [], False
    for line in answer.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return out


def check_two_paragraphs(answer: str) -> bool:
    """Exactly two short paragraphs separated by exactly one blank line (a line of only spaces
    counts as blank), each paragraph a single line of running text of 5 to 40 words that ends like a
    sentence ('.', '!' or '?', closing quotes or brackets allowed) and does not open with a label
    (one to three words and a colon: 'Summary:', '**Key point:**', 'In short:'). One paragraph,
    three, two lines with no blank line between them, two blank lines between them, a paragraph
    broken over two lines, a paragraph of 41 words or more, a title or a lead-in ending with ':' as
    the first paragraph, and any list item, heading, quote, table row or code fence do not count."""
    lines = answer.strip().splitlines()
    if len(lines) != 3 or lines[1].strip():
        return False
    paras = [lines[0].strip(), lines[2].strip()]
    return all(5 <= len(p.split()) <= 40 and _PROSE_END.search(p) and not _NOT_PROSE.match(p) and not _LABEL.match(p)
               for p in paras)


def check_emoji_list(answer: str) -> bool:
    """Outside code fences, at least three lines that start (after indentation) with an emoji or
    pictograph (U+2300-U+23FF, U+2600-U+27BF, U+2B00-U+2BFF, U+1F000-U+1FAFF; a variation
    selector, joiner or skin tone may follow), then a space and a word. '- ' or '* ' before the
    emoji, numbers ('1. 🧤'), no space after the emoji, ':shortcode:' names, '•' bullets, the emoji
    at the end of the line and fewer than three such lines do not count."""
    return sum(bool(_EMOJI_LINE.match(line.lstrip())) for line in _unfenced(answer)) >= 3


def check_caps_title(answer: str) -> bool:
    """The first non-empty line is a title in capitals: it starts with a capital letter or a digit
    (no '#', '**', '- ' or quote mark before it), has no lowercase letter at all, 2 to 16 words and
    at least 6 letters, and does not end with ':' or '.'; and at least one non-empty line follows it.
    Title Case, a markdown heading, a bold title, a greeting line above the title, one capitalised
    word, a lowercase word inside the title, a shouted sentence ending in '.' and an answer that is
    only the title do not count."""
    lines = _lines(answer)
    if len(lines) < 2:
        return False
    first = lines[0]
    letters = [c for c in first if c.isalpha()]
    return (bool(_CAPS_START.match(first)) and first == first.upper() and len(letters) >= 6
            and 2 <= len(first.split()) <= 16 and not first.endswith((":", ".")))


def check_difficulty(answer: str) -> bool:
    """Outside code fences, some line starts (after indentation) with exactly 'Difficulty:' (this
    capitalisation), then a whole score from 1 to 5 written '<n>/5' (spaces after the colon
    allowed; a full stop, a comma or text after the score allowed), and the answer has at least one
    other non-empty line. 'Difficulty: medium', 'Difficulty: 3 out of 5', 'Difficulty: 6/10',
    'Difficulty: 2.5/5', 'Difficulty: 0/5', 'Difficulty: 3 / 5', 'Difficulty level: 3/5',
    '**Difficulty:** 3/5', 'DIFFICULTY: 3/5', 'Difficulty - 3/5', stars, the rating mid-line and the
    score on the next line do not count."""
    hit = any(_DIFFICULTY.match(line.strip()) for line in _unfenced(answer))
    return hit and len(_lines(answer)) >= 2


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "two-paragraphs": check_two_paragraphs,
    "emoji-list": check_emoji_list,
    "caps-title": check_caps_title,
    "difficulty": check_difficulty,
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
