"""Cognitive gap per cluster (UNO §4): is what users asked for already in the model's prior?

The reference asks a 0.6B reranker, per feedback rule, "is this suggestion already covered by the
model's own suggestions?" and reads P(yes) from the "yes"/"no" logits; novelty = 1 − P(yes). A
cluster whose *minimum* novelty (per log, averaged over members) is at least the threshold is high
gap: its users want something outside the model's prior, and it goes to the Critic path.

That reranker is not available here, so the serving model answers the same yes/no question about
each rule (`YesNoScorer`; any object with `p_yes(prompts)` can replace it). Its probabilities live
on a different scale than the reranker's, so the paper's 0.45 does not transfer: `calibrate`
derives the threshold from the run's own queries, as the midpoint between the novelty the scorer
gives to rules every answer already follows and to arbitrary conventions no model would guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from uno_graph import prompts

# Calibration anchors: requirements any plain answer meets vs. conventions no model would guess.
COVERED_ANCHORS = (
    "Answer the question that was asked.",
    "Write in plain, correct English.",
    "Stay on the topic of the question.",
    "Give information that is relevant to the question.",
)
NOVEL_ANCHORS = (
    "Begin the answer with the word 'Pineapple:'.",
    "Write the entire answer in capital letters.",
    "End every sentence with three exclamation marks.",
    "Put the whole answer inside square brackets.",
)


class YesNo(Protocol):
    def p_yes(self, prompt_texts: list[str]) -> list[float]: ...


class YesNoScorer:
    """P(yes) from a causal LM's next-token logits after a chat-formatted yes/no question."""

    def __init__(self, model, tokenizer, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        vocab = tokenizer.get_vocab()
        def ids(words: tuple[str, ...]) -> list[int]:
            found = {tokenizer.convert_tokens_to_ids(w) for w in words if w in vocab}
            found |= {tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
            return sorted(found)
        self.yes_ids = ids(("yes", "Yes", "Ġyes", "ĠYes"))
        self.no_ids = ids(("no", "No", "Ġno", "ĠNo"))

    def p_yes(self, prompt_texts: list[str]) -> list[float]:
        import torch

        out: list[float] = []
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            for start in range(0, len(prompt_texts), self.batch_size):
                chats = [self.tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                                            add_generation_prompt=True)
                         for t in prompt_texts[start:start + self.batch_size]]
                enc = self.tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.no_grad():
                    logits = self.model(**enc).logits[:, -1, :].float()
                yes = torch.logsumexp(logits[:, self.yes_ids], dim=-1)
                no = torch.logsumexp(logits[:, self.no_ids], dim=-1)
                out += torch.sigmoid(yes - no).tolist()  # softmax over {yes, no}
        finally:
            self.tokenizer.padding_side = side
        return out


def novelty(scorer: YesNo, pairs: list[tuple[str, str]]) -> list[float]:
    """1 − P(yes) for (query, rule) pairs."""
    texts = [prompts.GAP_USER.format(query=q, rule=r) for q, r in pairs]
    return [1.0 - p for p in scorer.p_yes(texts)] if texts else []


@dataclass
class Calibration:
    threshold: float
    covered_novelty: float
    novel_novelty: float
    separation: float  # novel − covered; near 0 means the scorer cannot tell them apart

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in vars(self).items()}


def calibrate(scorer: YesNo, queries: list[str], per_anchor: int = 6, seed: int = 42) -> Calibration:
    """Threshold = midpoint of the anchors' mean novelty on a sample of the run's own queries."""
    rng = np.random.default_rng(seed)
    sample = [queries[i] for i in rng.choice(len(queries), size=min(per_anchor, len(queries)), replace=False)]
    covered = novelty(scorer, [(q, a) for q in sample for a in COVERED_ANCHORS])
    novel = novelty(scorer, [(q, a) for q in sample for a in NOVEL_ANCHORS])
    c, n = float(np.mean(covered)), float(np.mean(novel))
    return Calibration(threshold=(c + n) / 2, covered_novelty=c, novel_novelty=n, separation=n - c)


def cluster_gap(scorer: YesNo, members: list[dict[str, Any]]) -> dict[str, float | int]:
    """Per-log min/mean/max novelty over the log's rules, averaged over members with rules (UNO §4)."""
    pairs, owner = [], []
    for i, m in enumerate(members):
        for rule in m["rules"]:
            pairs.append((m["query"], rule))
            owner.append(i)
    scores = novelty(scorer, pairs)
    per_log: dict[int, list[float]] = {}
    for i, s in zip(owner, scores):
        per_log.setdefault(i, []).append(s)
    if not per_log:
        return {"min_novelty": 0.0, "mean_novelty": 0.0, "max_novelty": 0.0, "scored_logs": 0}
    values = list(per_log.values())
    return {"min_novelty": float(np.mean([min(v) for v in values])),
            "mean_novelty": float(np.mean([np.mean(v) for v in values])),
            "max_novelty": float(np.mean([max(v) for v in values])),
            "scored_logs": len(values)}
