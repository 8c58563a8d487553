"""A cluster's answer budget: how long its users want answers to be, read off the answers they endorsed.

A cluster whose users cut answers short (edits of one sentence, "at most 30 words") gets a token
budget of `margin` × the 90th percentile of its endorsed answers' lengths; a cluster whose endorsed
answers are as long as the serving budget gets none. An Expert answer that reaches its token limit
(its cluster's budget or the model's) ends at its last complete sentence or line instead of mid-word
(`end_at_sentence`). The Expert is validated exactly as it is served.
"""

from __future__ import annotations

import math
import re

import numpy as np

_SENTENCE_END = re.compile(r"""[.!?…](?:["'”’)\]]*)(?=\s|$)|\n""")


def answer_budget(token_counts: list[int], max_new_tokens: int, *, margin: float = 1.3, floor: int = 16) -> int | None:
    """Token budget for a cluster from its endorsed answers' token counts; None = the serving budget."""
    if not token_counts:
        return None
    budget = max(floor, math.ceil(margin * float(np.quantile(token_counts, 0.9))))
    return budget if budget < max_new_tokens else None


def end_at_sentence(text: str, finish_reason: str | None) -> tuple[str, str | None]:
    """An answer that hit its budget, cut after its last complete sentence (when one is left)."""
    if finish_reason != "length":
        return text, finish_reason
    ends = [m.end() for m in _SENTENCE_END.finditer(text.rstrip())]
    if not ends or ends[-1] < 0.3 * len(text.rstrip()):
        return text, finish_reason  # no complete sentence worth keeping: stays cut off
    return text[: ends[-1]].rstrip(), "stop"
