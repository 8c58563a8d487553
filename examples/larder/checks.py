"""Per-topic satisfaction checks for the eighth evaluation-only set (`examples/larder/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/unseen/` ... `examples/cellar/`, each topic is a *want* about the form of an answer, shared
by users who ask about two unrelated subjects (a `time-needed` user may ask about crochet or about
building a PC); `check(item, answer) -> bool` says whether `answer` satisfies the want of `item`'s
topic (`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\nTime needed: 15 minutes")
    True
    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\n\\nTime needed: 1 minute.")
    True
    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\nTime needed: about 15 minutes")
    False
    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\nTime needed: 15-20 minutes")
    False
    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\nTime needed: 15 mins")
    False
    >>> check({"metadata": {"topic": "time-needed"}}, "Chain 20 and turn.\\nTime needed: 1 hour")
    False
    >>> check({"metadata": {"topic": "time-needed"}}, "Time needed: 15 minutes\\nChain 20 and turn.")
    False
    >>> check({"metadata": {"topic": "time-needed"}}, "Time needed: 15 minutes")
    False
    >>> check({"metadata": {"topic": "short-sentences"}}, "Water it once a week. Let the top of the soil dry out first. Too much water rots the roots. Yellow leaves are the first sign. Brown tips mean too little.")
    True
    >>> check({"metadata": {"topic": "short-sentences"}}, "Water it once a week. Let the top two inches of soil dry out before you water it again. Too much water rots the roots. Yellow leaves are the first sign.")
    False
    >>> check({"metadata": {"topic": "short-sentences"}}, "Water it once a week; let the soil dry out first; too much water rots the roots. Yellow leaves are the first sign of rot. Brown tips mean too little.")
    False
    >>> check({"metadata": {"topic": "short-sentences"}}, "Water it weekly. Not more.")
    False
    >>> check({"metadata": {"topic": "q-and-a"}}, "Q: How far can it go?\\nA: About 300 km.\\nQ: How long does it charge?\\nA: Eight hours at home.")
    True
    >>> check({"metadata": {"topic": "q-and-a"}}, "Q: How far can it go?\\nA: About 300 km.")
    False
    >>> check({"metadata": {"topic": "q-and-a"}}, "Here you go:\\nQ: How far can it go?\\nA: About 300 km.\\nQ: How long does it charge?\\nA: Eight hours.")
    False
    >>> check({"metadata": {"topic": "q-and-a"}}, "**Q:** How far can it go?\\n**A:** About 300 km.\\n**Q:** And charging?\\n**A:** Eight hours.")
    False
    >>> check({"metadata": {"topic": "q-and-a"}}, "Q: How far can it go?\\nA: About 300 km.\\nQ: Charging time.\\nA: Eight hours.")
    False
    >>> check({"metadata": {"topic": "pros-cons"}}, "A fixed rate is safer.\\nPros: the payment never changes.\\nCons: it starts higher.")
    True
    >>> check({"metadata": {"topic": "pros-cons"}}, "A fixed rate is safer.\\n**Pros:** the payment never changes.\\n**Cons:** it starts higher.")
    False
    >>> check({"metadata": {"topic": "pros-cons"}}, "A fixed rate is safer.\\nPros:\\n- the payment never changes\\nCons:\\n- it starts higher")
    False
    >>> check({"metadata": {"topic": "pros-cons"}}, "A fixed rate is safer.\\nCons: it starts higher.\\nPros: the payment never changes.")
    False
    >>> check({"metadata": {"topic": "pros-cons"}}, "A fixed rate is safer.\\nPros: it never changes. Cons: it starts higher.")
    False
    >>> check({"metadata": {"topic": "pros-cons"}}, "Pros: the payment never changes.\\nCons: it starts higher.")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Great whites can swim at about 40 km/h in short bursts.")
    True
    >>> check({"metadata": {"topic": "inconsistent"}}, "Yes, quite fast.")
    False

Two of the four wants are about the whole answer (`short-sentences`: its wording, every sentence
short; `q-and-a`: its shape, nothing but question and answer lines); `time-needed` adds one labelled
last line in a fixed format, `pros-cons` a pair of labelled lines in a fixed order.

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, as in the earlier sets; the base model usually gives that.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "time-needed": "End with a last line that says how long the task takes, exactly 'Time needed: N minutes' (a whole number, no range, no 'about').",
    "short-sentences": "Write in short sentences only: every sentence at most 12 words (at least three sentences, 30+ words in all, no code block).",
    "q-and-a": "Answer as a small FAQ and nothing else: lines 'Q: ...?' and 'A: ...' taking turns, at least two pairs.",
    "pros-cons": "Include one line starting 'Pros:' and, below it, one line starting 'Cons:', each with the points on the same line, plus the rest of the answer.",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_FENCE = re.compile(r"^\s*(```|~~~)")
# The last line of a `time-needed` answer: 'Time needed:', spaces, a whole number 1-999 without a
# leading zero, one space, 'minute' after 1 and 'minutes' after any other number, an optional '.'.
_TIME = re.compile(r"^Time needed:[ \t]+(?:1 minute|(?:[2-9]|[1-9]\d{1,2}) minutes)\.?$")
# A sentence ends at '.', '!' or '?' (closing quotes or brackets may follow) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
_WORD = re.compile(r"[A-Za-z0-9]")
_QA = re.compile(r"^(Q|A):[ \t]+(\S.*)$")
_PROS = re.compile(r"^Pros:[ \t]*\w")
_CONS = re.compile(r"^Cons:[ \t]*\w")
_LABEL_START = re.compile(r"^(Pros|Cons):")
MAX_SENTENCE_WORDS = 12
MIN_WORDS = 30


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


def sentences(answer: str) -> list[list[str]]:
    """The answer's sentences as lists of words, as `check_short_sentences` counts them: every
    non-empty line is split after each '.', '!' or '?' (closing quotes or brackets allowed) that a
    space or tab follows, and the end of a line ends a sentence too; a word is a run of non-space
    characters with at least one letter or digit (so '-', '—' and '*' are not words). Pieces with no
    word are dropped."""
    out = []
    for line in answer.splitlines():
        for piece in _SENTENCE_END.split(line.strip()):
            words = [w for w in piece.split() if _WORD.search(w)]
            if words:
                out.append(words)
    return out


def check_time_needed(answer: str) -> bool:
    """The last non-empty line (stripped) is exactly 'Time needed: N minutes': 'Time needed:' in this
    capitalisation, one or more spaces, a whole number from 1 to 999 with no leading zero, a space
    and 'minutes' ('1 minute' for one), then nothing but an optional full stop; and at least one
    non-empty line is above it. 'about 20 minutes', '20-30 minutes', '20 mins', '20 min', '1 hour',
    'twenty minutes', '1 minutes', 'Time needed:20 minutes', 'Time Needed:', 'Time:', '**Time
    needed:**', '- Time needed:', text after the time (a bracket, a reason), the line at the top or
    in the middle, and an answer that is only that line do not count."""
    lines = _lines(answer)
    return len(lines) >= 2 and bool(_TIME.match(lines[-1]))


def check_short_sentences(answer: str) -> bool:
    """Every sentence (see `sentences`) has at most 12 words, there are at least three sentences of
    three or more words and 30 or more words in all, and the answer has no code fence (``` or ~~~:
    code is not sentences). A sentence of 13 words, clauses joined with ';' or ',' into one long
    sentence, a long list line with no full stop, a short reply (under 30 words) and a code block
    do not count. (Every '.', '!' or '?' before a space ends a sentence, so 'e.g. ' and 'Dr. ' end
    one too; a line break ends one, so a short list line is a sentence.)"""
    if any(_FENCE.match(line) for line in answer.splitlines()):
        return False
    sents = sentences(answer)
    return (all(len(s) <= MAX_SENTENCE_WORDS for s in sents) and sum(len(s) >= 3 for s in sents) >= 3
            and sum(map(len, sents)) >= MIN_WORDS)


def check_q_and_a(answer: str) -> bool:
    """Every non-empty line (stripped) starts with exactly 'Q:' or 'A:' and a space, with text after
    it; the lines take turns, Q first and A last, at least two pairs; every 'Q:' line ends with '?'.
    Blank lines anywhere are fine. An intro or closing line, a code fence, 'Q1:', 'Q.', 'Question:',
    '**Q:**', '- Q:', 'q:', an answer carried over onto a second line without 'A:', two questions in
    a row, a question without '?' and a single pair do not count."""
    lines = _lines(answer)
    if len(lines) < 4 or len(lines) % 2:
        return False
    for k, line in enumerate(lines):
        m = _QA.match(line)
        if not m or m.group(1) != "QA"[k % 2]:
            return False
        if m.group(1) == "Q" and not line.endswith("?"):
            return False
    return True


def check_pros_cons(answer: str) -> bool:
    """Outside code fences, exactly one line starts (after indentation) with 'Pros:' and exactly one
    with 'Cons:' (this capitalisation, right at the start of the line), each with a word after the
    label on that same line; the 'Cons:' line comes after the 'Pros:' line; and the answer has at
    least one other non-empty line. '**Pros:**', 'Pros' or 'Pros:' as a heading with the points on
    the lines below, 'Pro:', 'PROS:', 'Advantages:', 'Pros -', '- Pros:', 'Cons:' above 'Pros:',
    only one of the two, both on one line, two 'Pros:' lines, and an answer of just the two lines do
    not count."""
    lines = [line.strip() for line in _unfenced(answer) if line.strip()]
    labelled = [k for k, line in enumerate(lines) if _LABEL_START.match(line)]
    pros = [k for k in labelled if lines[k].startswith("Pros:")]
    cons = [k for k in labelled if lines[k].startswith("Cons:")]
    if len(pros) != 1 or len(cons) != 1 or cons[0] < pros[0]:
        return False
    return bool(_PROS.match(lines[pros[0]]) and _CONS.match(lines[cons[0]])) and len(_lines(answer)) >= 3


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "time-needed": check_time_needed,
    "short-sentences": check_short_sentences,
    "q-and-a": check_q_and_a,
    "pros-cons": check_pros_cons,
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
