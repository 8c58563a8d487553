"""Text metrics with no extra dependency: ROUGE-L F1 (on words, or on an answer's shape), sentence
BLEU-4 (smoothing method 1) and the normalised word-level edit distance."""

from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def _lcs_f1(c: list[str], r: list[str]) -> float:
    if not c or not r:
        return 0.0
    lcs = _lcs(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens."""
    return _lcs_f1(tokens(candidate), tokens(reference))


def edit_distance(candidate: str, reference: str) -> float:
    """Word-level Levenshtein distance from `candidate` to `reference`, divided by the longer one's length.

    0 = the same words, 1 = nothing in common. It is the "cost" of the user-edits setting: how much of
    an answer a user would have to change to reach the answer they wanted (lower is better). Words are
    counted as ROUGE-L counts them (`tokens`: lowercased words and punctuation marks); two empty texts
    are at distance 0.

        >>> edit_distance("Boil the egg.", "Boil the egg for nine minutes.")  # 3 words inserted, of 7
        0.42857142857142855
    """
    c, r = tokens(candidate), tokens(reference)
    if not c or not r:
        return float(bool(c or r))
    prev = list(range(len(r) + 1))  # distance from c[:0] to each prefix of r
    for i, x in enumerate(c, start=1):
        cur = [i]
        for j, y in enumerate(r, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1] / max(len(c), len(r))


def _run_token(words: int) -> str:
    return "w1" if words <= 3 else "w2" if words <= 10 else "w3"


def shape(text: str, opening: int = 3) -> list[str]:
    """An answer's form as tokens: its first `opening` words, then runs of words as one token by
    length (`w1` up to 3 words, `w2` up to 10, `w3` more), numbers at a line's start as `0`,
    punctuation as it is, and a `\\n` token at the end of every non-empty line.

    Two answers about different things in the same form (a "- " list, a fixed opening, one short
    sentence, a question at the end) have nearly the same shape; word-level ROUGE sees mostly
    their content.

        >>> shape("Short answer: yes.\\n- one\\n- two words here")
        ['short', 'answer', ':', 'yes', '.', '\\n', '-', 'w1', '\\n', '-', 'w1', '\\n']
    """
    out: list[str] = []
    seen = 0
    for line in text.lower().splitlines():
        run = 0
        for t in _TOKEN.findall(line):
            if t[0].isalnum() or t[0] == "_":
                if seen < opening:
                    out.append(t)
                    seen += 1
                elif t.isdigit() and not run and (not out or out[-1] == "\n"):
                    out.append("0")
                else:
                    run += 1
                continue
            if run:
                out.append(_run_token(run))
                run = 0
            out.append(t)
        if run:
            out.append(_run_token(run))
        if out and out[-1] != "\n":
            out.append("\n")
    return out


def rouge_l_shape(candidate: str, reference: str) -> float:
    """ROUGE-L F1 between the answers' shapes (`shape`)."""
    return _lcs_f1(shape(candidate), shape(reference))


def bleu4(candidate: str, reference: str) -> float:
    """Sentence BLEU-4, uniform weights, NLTK's smoothing method 1 (epsilon 0.1 for empty n-gram matches)."""
    c, r = tokens(candidate), tokens(reference)
    if not c or not r:
        return 0.0
    log_precision = 0.0
    for n in range(1, 5):
        cand = Counter(tuple(c[i:i + n]) for i in range(len(c) - n + 1))
        ref = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
        total = max(sum(cand.values()), 1)
        match = sum(min(count, ref[g]) for g, count in cand.items())
        log_precision += math.log((match if match else 0.1) / total) / 4
    brevity = 1.0 if len(c) > len(r) else math.exp(1 - len(r) / len(c))
    return brevity * math.exp(log_precision)
