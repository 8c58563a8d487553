"""Best of n: the Expert writes several answers and the cluster's want model picks one.

An Expert learns its cluster's want from about ten edits, and often writes it only some of the
time: on a development set (`examples/cellar`, `benchmarks/probe_rerank.py`) a topic's Expert put
its `Difficulty: n/5` line on a line of its own in 0 of 12 greedy answers, and in at least one of
five answers (greedy + 4 sampled) for 9 of 12 questions. The cluster's want model
(`want.WantModel`, a logistic regression on the form of the answers its users endorsed and
rejected, fitted at `learn` on the logs the Expert learned from and kept in the adapter's manifest)
scores every candidate; the best-scored one is the answer (ties: the greedy one).

Cost: `n` answers instead of one (the `n - 1` samples run as one batch). The candidates are
internal (not streamed); the chosen answer reaches a messages stream as one message.
`UnoConfig.expert_best_of = 1` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from uno_graph.budget import end_at_sentence
from uno_graph.want import WantScorer


@dataclass
class BestOf:
    """How the Expert answers when its adapter has a want model: `n` candidates, sampled at `temperature`
    with a fixed `seed` (the same question gets the same answer); `scorer_for(adapter)` is the
    adapter's want model, or None (then the greedy answer is the answer, as with n = 1)."""

    scorer_for: Callable[[str | None], WantScorer | None]
    n: int = 5
    temperature: float = 0.8
    seed: int = 0

    def scorer(self, adapter: str | None) -> WantScorer | None:
        return self.scorer_for(adapter) if self.n > 1 and adapter else None


@dataclass
class Pick:
    """The chosen answer among a question's candidates, and what making them cost."""

    text: str
    index: int  # 0 = the greedy answer
    scores: list[float]
    replies: list[Any]  # every candidate's model reply (token counts)


def samples(model: Any, messages: Sequence[Any], adapter: str, best_of: BestOf, budget: int | None,
            config: Any = None) -> list[Any]:
    """The `n - 1` sampled replies to one conversation: one batch where the model can batch."""
    kwargs = {"temperature": best_of.temperature, "seed": best_of.seed, **({"max_new_tokens": budget} if budget else {})}
    k = best_of.n - 1
    if hasattr(model, "generate_batch"):
        return model.generate_batch([list(messages)] * k, adapters=adapter, **kwargs)
    return [model.invoke(list(messages), config=config, adapter=adapter, **{**kwargs, "seed": best_of.seed + i})
            for i in range(k)]


def pick(scorer: WantScorer, replies: Sequence[Any]) -> Pick:
    """The best-scored of `replies` (the greedy one first), each ended at its last complete sentence
    when it reached its token budget."""
    texts = [end_at_sentence(str(r.text), r.response_metadata.get("finish_reason"))[0] for r in replies]
    scores = scorer.score(texts)
    best = max(range(len(texts)), key=lambda i: (scores[i], -i))
    return Pick(texts[best], best, [round(s, 4) for s in scores], list(replies))
