"""Cognitive gap per cluster (UNO §4): is what users asked for already in the model's prior?

Two signals. The default, `likelihood`, asks the base model itself how far the answers users
endorsed are from what it would write: per judgeable log, the mean per-token log-likelihood of the
model's own (logged) answer minus that of the endorsed answer (nats per token, end-of-turn token
included so "stop sooner" counts). A cluster's gap is the median over its logs. The threshold is
calibrated on the run's own logs with anchors whose answer is known: *covered* = the model's own
answer cut to its first sentences (what it writes anyway), *novel* = its own answer under
conventions no model would guess (capital letters throughout; "Pineapple:" first and "!!!" after
every sentence; another question's answer). `LikelihoodCalibration.auc` says how well the scorer
orders the anchors (1.0 = every novel anchor above every covered one).

The paper's yes/no signal follows (`yesno`), kept for comparison:

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

import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from uno_graph import prompts
from uno_graph.pairs import is_judgeable

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


# -- the likelihood gap ------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class LikelihoodScorer:
    """Mean per-token log-likelihood of an answer given its chat prompt, under a causal LM (adapters off)."""

    def __init__(self, model, tokenizer, batch_size: int = 8, max_answer_tokens: int = 160) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_answer_tokens = batch_size, max_answer_tokens

    def mean_logprob(self, prompts_: list[list[dict[str, str]]], answers: list[str]) -> list[float]:
        import torch

        out: list[float] = []
        tok = self.tokenizer
        end = tok.eos_token or ""
        for start in range(0, len(answers), self.batch_size):
            seqs, spans = [], []
            for messages, answer in zip(prompts_[start:start + self.batch_size], answers[start:start + self.batch_size]):
                prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                prompt_ids = tok.encode(prompt, add_special_tokens=False)
                answer_ids = tok.encode(answer.strip() + end, add_special_tokens=False)[: self.max_answer_tokens]
                seqs.append(list(prompt_ids) + answer_ids)
                spans.append((len(prompt_ids), len(prompt_ids) + len(answer_ids)))
            width = max(len(x) for x in seqs)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs])
            with torch.no_grad():  # the LM head only where an answer token is predicted (49k-word vocabulary)
                hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                head = self.model.get_output_embeddings()
                for row, (a, b) in enumerate(spans):
                    if b <= a:
                        out.append(0.0)
                        continue
                    logits = head(hidden[row, a - 1:b - 1]).float()
                    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[row, a:b, None])[..., 0]
                    out.append(float(logp.mean()))
        return out


def likelihood_gap(scorer: LikelihoodScorer, prompts_: list[list[dict[str, str]]], logged: list[str],
                   endorsed: list[str]) -> list[float]:
    """Per log: mean log-likelihood of the logged answer minus that of the endorsed one (nats/token)."""
    both = scorer.mean_logprob(prompts_ + prompts_, logged + endorsed)
    n = len(logged)
    return [both[i] - both[n + i] for i in range(n)]


def _first_sentences(text: str, share: float = 0.5) -> str:
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p]
    keep = max(1, round(len(parts) * share))
    return " ".join(parts[:keep])


NOVEL_CONVENTIONS = (
    lambda text, other: text.upper(),
    lambda text, other: "Pineapple: " + " ".join(p.rstrip(".!?") + "!!!" for p in _SENTENCE_END.split(text.strip()) if p),
    lambda text, other: other,  # another question's answer
)


@dataclass
class LikelihoodCalibration:
    threshold: float
    covered_gap: float
    novel_gap: float
    auc: float  # share of (covered, novel) anchor pairs the scorer orders right; 0.5 = cannot tell
    n_anchors: int

    @property
    def separation(self) -> float:
        return self.novel_gap - self.covered_gap

    def to_dict(self) -> dict[str, float]:
        return {**{k: round(v, 4) for k, v in vars(self).items()}, "separation": round(self.separation, 4)}


def calibrate_likelihood(scorer: LikelihoodScorer, logs: list[dict[str, Any]], per_anchor: int = 8,
                         seed: int = 42) -> LikelihoodCalibration:
    """Threshold = midpoint of the covered and novel anchors' mean gap, on a sample of the run's logs.

    logs: {prompt, answer} rows (the model's own logged answers).
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(logs), size=min(per_anchor, len(logs)), replace=False)
    sample = [logs[i] for i in pick]
    prompts_, logged, endorsed, novel_flags = [], [], [], []
    for k, row in enumerate(sample):
        other = sample[(k + 1) % len(sample)]["answer"]
        variants = [(_first_sentences(row["answer"]), False)]
        variants += [(convention(row["answer"], other), True) for convention in NOVEL_CONVENTIONS]
        for text, novel in variants:
            prompts_.append(row["prompt"])
            logged.append(row["answer"])
            endorsed.append(text)
            novel_flags.append(novel)
    gaps = likelihood_gap(scorer, prompts_, logged, endorsed)
    covered = [g for g, n in zip(gaps, novel_flags) if not n]
    novel = [g for g, n in zip(gaps, novel_flags) if n]
    ordered = sum((n > c) + 0.5 * (n == c) for n in novel for c in covered)
    c, n = float(np.mean(covered)), float(np.mean(novel))
    return LikelihoodCalibration(threshold=(c + n) / 2, covered_gap=c, novel_gap=n,
                                 auc=ordered / (len(novel) * len(covered)), n_anchors=len(gaps))


def cluster_likelihood_gap(scorer: LikelihoodScorer, pairs: list[dict[str, Any]]) -> dict[str, float | int]:
    """Median and mean likelihood gap over a cluster's judgeable pairs (chosen differs from rejected)."""
    judgeable = [p for p in pairs if is_judgeable(p)]
    if not judgeable:
        return {"gap": 0.0, "mean_gap": 0.0, "scored_logs": 0}
    gaps = likelihood_gap(scorer, [p["prompt"] for p in judgeable], [p["rejected"] for p in judgeable],
                          [p["chosen"] for p in judgeable])
    return {"gap": float(np.median(gaps)), "mean_gap": float(np.mean(gaps)), "scored_logs": len(gaps)}
