"""Per-topic satisfaction checks for the sixth evaluation-only set (`examples/vault/`).

Written and committed before any log of this set was generated and before any training on it. As in
`examples/unseen/`, `examples/sealed/` and `examples/reserve/`, each topic is a *want* about the
form of an answer, shared by users who ask about two unrelated subjects (a `bold-lead` user may ask
about running or about podcasting); `check(item, answer)` says whether `answer` satisfies the want
of `item`'s topic (`item["metadata"]["topic"]`):

    >>> check({"metadata": {"topic": "bold-lead"}}, "**Run slower than you think.** Easy runs build the base.")
    True
    >>> check({"metadata": {"topic": "bold-lead"}}, "**Use a dynamic mic**\\n\\nIt picks up less of the room.")
    True
    >>> check({"metadata": {"topic": "bold-lead"}}, "Sure! **Run slower than you think.** Easy runs build the base.")
    False
    >>> check({"metadata": {"topic": "bold-lead"}}, "*Run slower than you think.* Easy runs build the base.")
    False
    >>> check({"metadata": {"topic": "bold-lead"}}, "**Run slower than you think.**")
    False
    >>> check({"metadata": {"topic": "bold-lead"}}, "1. **Easy runs:** most of the week.")
    False
    >>> check({"metadata": {"topic": "quote-line"}}, "Search the census like this:\\n> Smith, born 1880, Cork")
    True
    >>> check({"metadata": {"topic": "quote-line"}}, "Search the census like this:\\n>Smith, born 1880, Cork")
    False
    >>> check({"metadata": {"topic": "quote-line"}}, "Search the census like this:\\n>> Smith, born 1880, Cork")
    False
    >>> check({"metadata": {"topic": "quote-line"}}, "> Smith, born 1880, Cork")
    False
    >>> check({"metadata": {"topic": "quote-line"}}, "Type this:\\n```\\n> M104 S200\\n```")
    False
    >>> check({"metadata": {"topic": "warning-line"}}, "Never dive alone.\\nWarning: ascend no faster than 9 m a minute.")
    True
    >>> check({"metadata": {"topic": "warning-line"}}, "Warning: some lookalikes are deadly.\\nUse two field guides.")
    True
    >>> check({"metadata": {"topic": "warning-line"}}, "Never dive alone.\\nWARNING: ascend slowly.")
    False
    >>> check({"metadata": {"topic": "warning-line"}}, "Never dive alone.\\n**Warning:** ascend slowly.")
    False
    >>> check({"metadata": {"topic": "warning-line"}}, "Never dive alone. Warning: ascend slowly.")
    False
    >>> check({"metadata": {"topic": "warning-line"}}, "Warning: ascend slowly.")
    False
    >>> check({"metadata": {"topic": "sources-line"}}, "Rinse the tubs first.\\nSources: EPA recycling basics; your council's website")
    True
    >>> check({"metadata": {"topic": "sources-line"}}, "Rinse the tubs first.\\nSource: EPA recycling basics")
    False
    >>> check({"metadata": {"topic": "sources-line"}}, "Rinse the tubs first.\\nSources:\\n- EPA recycling basics")
    False
    >>> check({"metadata": {"topic": "sources-line"}}, "Sources: EPA recycling basics\\nRinse the tubs first.")
    False
    >>> check({"metadata": {"topic": "sources-line"}}, "Rinse the tubs first.\\n**Sources:** EPA recycling basics")
    False
    >>> check({"metadata": {"topic": "inconsistent"}}, "Fast fashion is cheap clothing made quickly in large volumes.")
    True
    >>> check({"metadata": {"topic": "inconsistent"}}, "Cheap clothes.")
    False

`inconsistent` has no consistent want (its users contradict each other), so its check only asks for
a non-empty answer of 5 to 150 words, as in the earlier sets; the base model usually gives that.
Pure Python on purpose: the evaluation imports this file on its own.
"""

from __future__ import annotations

import re

TOPIC_PREFERENCES: dict[str, str] = {
    "bold-lead": "Open with the bottom line in bold: the answer starts with '**a short phrase**' (1-12 words) and goes on after it.",
    "quote-line": "Put the line to copy or remember on a line of its own as a markdown quote, starting with '> ', next to the explanation.",
    "warning-line": "Flag the danger on a line of its own that starts with 'Warning:', next to the rest of the answer.",
    "sources-line": "End the answer with a last line that starts with 'Sources:' and names where the information comes from.",
    "inconsistent": "No consistent want: users contradict each other; any non-empty answer of 5-150 words is fine.",
}

_FENCE = re.compile(r"^\s*(```|~~~)")
_BOLD_LEAD = re.compile(r"^\*\*([^*\s](?:[^*\n]*[^*\s])?)\*\*(?!\*)(.*)$", re.DOTALL)
_QUOTE = re.compile(r"^> [^\s>]")
_WORD = re.compile(r"\w")


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


def check_bold_lead(answer: str) -> bool:
    """The answer starts (after leading whitespace) with '**', a phrase of 1 to 12 words on one line
    with no '*' in it and no space just inside the markers, and a closing '**'; and some text (a
    word) follows the closing '**', on that line or below. '*italic*', '__bold__', '***bold
    italic***', text or a list marker before the '**', an unclosed '**', '** spaced **', a bold
    phrase of 13 or more words and an answer that is only the bold phrase do not count."""
    m = _BOLD_LEAD.match(answer.strip())
    if m is None:
        return False
    phrase, rest = m.group(1), m.group(2)
    return 1 <= len(phrase.split()) <= 12 and bool(_WORD.search(rest))


def check_quote_line(answer: str) -> bool:
    """Outside code fences, some line starts (no indentation) with exactly '> ' and then text (not
    another '>'), and at least one non-empty line of the answer is not a quote line. '>text',
    '>> text', '> ' with nothing after it, '» ', a line in quotation marks, an indented '> ', a
    quote inside a ``` block and an answer that is only quote lines do not count."""
    lines = _unfenced(answer)
    quoted = any(_QUOTE.match(line) for line in lines)
    other = any(line.strip() and not line.lstrip().startswith(">") for line in answer.splitlines()
                if not _FENCE.match(line))
    return quoted and other


def check_warning_line(answer: str) -> bool:
    """Outside code fences, some line starts (after indentation) with exactly 'Warning:' (this
    capitalisation) and has text after it on that line, and the answer has at least one other
    non-empty line. 'WARNING:', 'Warnings:', 'Warning -', '**Warning:**', '⚠️ Warning:',
    'Caution:', '- Warning:', the label mid-line, the label with its text on the next line and an
    answer that is only that line do not count."""
    lines = [line.strip() for line in _unfenced(answer)]
    hit = any(line.startswith("Warning:") and _WORD.search(line[len("Warning:"):]) for line in lines)
    return hit and len(_lines(answer)) >= 2


def check_sources_line(answer: str) -> bool:
    """The last non-empty line starts with exactly 'Sources:' (this capitalisation) and names
    something after it on that line, and at least one non-empty line comes before it. 'Source:',
    'References:', 'sources:', '**Sources:**', 'Sources -', the sources listed on lines below the
    label, a line after it (a sign-off), the label at the top or mid-paragraph and an answer that is
    only that line do not count."""
    lines = _lines(answer)
    return (len(lines) >= 2 and lines[-1].startswith("Sources:")
            and bool(_WORD.search(lines[-1][len("Sources:"):])))


def check_inconsistent(answer: str) -> bool:
    """Non-empty, 5 to 150 words: there is no consistent want to learn here."""
    return bool(answer.strip()) and 5 <= len(answer.split()) <= 150


CHECKS = {
    "bold-lead": check_bold_lead,
    "quote-line": check_quote_line,
    "warning-line": check_warning_line,
    "sources-line": check_sources_line,
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
