"""Text metrics with no extra dependency: ROUGE-L F1 and sentence BLEU-4 (smoothing method 1)."""

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


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens."""
    c, r = tokens(candidate), tokens(reference)
    if not c or not r:
        return 0.0
    lcs = _lcs(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


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
