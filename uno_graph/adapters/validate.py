"""Which path serves a cluster — Expert, Critic or the base model — decided on held-out folds (UNO §5).

The judge is learned from the cluster's own logs by default (`want.WantJudge`): a model of the form
of the answers its users endorsed and rejected. Before anything is trained, a *consistency gate*
asks whether that model ranks the labelled answers of logs it did not see (out-of-fold AUC ≥
`min_auc`): users who contradict each other leave no want to learn, and their cluster is served by
the base model. Then every log of the cluster takes part in validation exactly once: the logs are
dealt into `val_folds` folds; for each fold a candidate adapter *and* the judge are fitted on the
other folds' logs, and the adapter answers the fold's questions. (With a judge that needs the log's
own edit, `verify.ContrastJudge`, only the judgeable pairs — an endorsed answer that differs from
the logged one — are validated.) Each path is validated as it is served:

* Expert: the adapter answers directly; every saved epoch is validated, so the epoch is chosen too.
* Critic: the adapter critiques the base answer and the base model revises it (critique → revise).

A path is accepted when its win rate over base (ties half) is at least `win_rate_threshold` (the
paper's 0.53) *and* its one-sided Wilson lower bound at `win_confidence` is at least
`min_win_lower_bound` — on 10 items 7 wins do not pass, 8 do. Degenerate answers lose outright
(`verify.degenerate`). The adapter that is served is then trained on all of the cluster's data and
stopped at the epoch validation chose. Which paths a cluster tries, and in which order, follows the
gap test (`paths_to_try`); when every path tried fails the cluster is served by the base model and
the verdicts say why. A path stops after
a fold once winning every remaining held-out log could not make it pass (no training is spent on a
path that has already lost).

The reference validated each Expert on the 20 % of a cluster that remained after an 80/20 split —
2 or 3 logs in a 20-log cluster — and took the point estimate; it never validated the Critic path.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uno_graph import prompts
from uno_graph.adapters.train import TrainExample, TrainResult
from uno_graph.budget import end_at_sentence
from uno_graph.config import PATH_ORDERS
from uno_graph.errors import ConfigError
from uno_graph.pairs import is_judgeable
from uno_graph.verify import Judge, VerifierResult, simulated_win_rate, wilson_bounds
from uno_graph.want import Labelled

# fit(role, objective, examples, tag, stop_after_epoch) -> TrainResult, trained into a temporary folder
Fit = Callable[[str, str, list[TrainExample], str, "int | None"], TrainResult]


def make_folds(ids: list[str], k: int, seed: int = 42, *, first: set[str] = frozenset()) -> list[list[str]]:
    """Deal ids (sorted, then shuffled with `seed`) round-robin into k folds of near-equal size; the
    ids in `first` are dealt before the rest (stratified: each fold holds its share of them).

    The validator deals the logs with a changed answer first: the Expert learns from those alone, and
    an unstratified deal of a cluster with 4 edits among 13 logs left one fold's adapter 1 to learn from."""
    rng = random.Random(seed)
    head, tail = sorted(i for i in ids if i in first), sorted(i for i in ids if i not in first)
    rng.shuffle(head)
    rng.shuffle(tail)
    ordered = head + tail
    k = max(1, min(k, len(ordered)))
    return [sorted(ordered[i::k]) for i in range(k)]


def pick_epoch(results: list[VerifierResult], epochs: list[int] | None = None) -> int:
    """The epoch (1-based; `epochs[i]` is the one `results[i]` validated) with the best lower bound,
    then win rate, then margin; the earliest on a full tie."""
    epochs = epochs or list(range(1, len(results) + 1))
    best = max(range(len(results)), key=lambda i: (results[i].lower_bound, results[i].win_rate,
                                                   results[i].margin, -i))
    return epochs[best]


def validated_epochs(n_epochs: int, every: int) -> list[int]:
    """Which saved epochs the Expert's validation answers with: every `every`-th, and the last."""
    return sorted({k for k in range(1, n_epochs + 1) if k % every == 0} | {n_epochs})


@dataclass
class PathVerdict:
    """The validation of one path of one cluster."""

    role: str  # "expert" | "critic"
    accepted: bool
    reason: str
    win_rate: float = 0.0
    lower_bound: float = 0.0
    n_val: int = 0
    epoch: int | None = None
    epochs: list[dict[str, float]] = field(default_factory=list)  # Expert: per-epoch validation
    flaws: dict[str, int] = field(default_factory=dict)  # degenerate answers by kind, at the chosen epoch
    details: list[dict[str, Any]] = field(default_factory=list)
    want: dict[str, Any] = field(default_factory=dict)  # the learned judge's consistency gate, when there is one
    # the fold adapters at the chosen epoch, one per fold, when every fold was trained (work-directory
    # paths that live until the cluster is done; not part of the record)
    fold_adapters: list[Path] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "fold_adapters"}


@dataclass
class ClusterData:
    """What a cluster brings to training and validation."""

    pairs: list[dict[str, Any]]  # pairs.jsonl rows of the members with a chosen answer
    rows: list[dict[str, Any]]  # distill.jsonl rows of the members
    # whether the Expert also learns from approved answers (chosen = the logged answer). Off by default:
    # an approval shows what the base model already writes, not what users changed it into, and
    # users approve answers that miss their cluster's want (4 of 5 thumbs-up answers of one want of a
    # development set failed it), so training on them pulls the Expert back towards the base
    train_on_approvals: bool = False
    # pairs.jsonl rows of thumbs-down logs with nothing better (`chosen: null`): training examples only
    # for an objective that learns from unpaired ratings (`train.LEARNS_FROM_NEGATIVES`: kto), which
    # then also learns from approvals, its desirable answers
    negatives: list[dict[str, Any]] = field(default_factory=list)
    ratings: bool = False

    @property
    def judgeable(self) -> list[dict[str, Any]]:
        return [p for p in self.pairs if is_judgeable(p)]

    def expert_examples(self, exclude: set[str] = frozenset()) -> list[TrainExample]:
        """The Expert's training examples (outside `exclude`): every endorsed answer that differs from
        the logged one (an edit, a verified revision); approvals when `train_on_approvals`; with
        `ratings` (kto), approvals and the thumbs-down answers (`chosen=None`) too."""
        keep = [p for p in self.pairs
                if p["id"] not in exclude and (self.train_on_approvals or self.ratings or is_judgeable(p))]
        if self.ratings:
            keep += [p for p in self.negatives if p["id"] not in exclude]
        return [TrainExample(prompt=p["prompt"], chosen=p["chosen"], rejected=p["rejected"], id=p["id"],
                             user_id=p.get("user_id")) for p in keep]

    def labelled(self, exclude: set[str] = frozenset()) -> list[Labelled]:
        """The members' answers as the users labelled them (outside `exclude`): an edit or a verified
        revision is endorsed; the logged answer of any other log is rejected. An approved answer is
        endorsed only when the Expert also learns from approvals (`train_on_approvals`, or `ratings`):
        else it is left out, as from training. A thumbs-up on a base answer that misses the want is
        common (on `examples/sealed` the heading topic's approved answers had no heading), and counted
        as endorsed it made the gate refuse the heading topic's clusters (out-of-fold AUC 0.60-0.62;
        0.93 without them, `benchmarks/cluster_check.py`)."""
        chosen = {p["id"]: p["chosen"] for p in self.pairs}
        approvals = self.train_on_approvals or self.ratings
        out = []
        for r in self.rows:
            if r["id"] in exclude:
                continue
            if r.get("rule_source") == "satisfied":
                if approvals:
                    out.append(Labelled(r["id"], r["answer"], 1))
                continue
            out.append(Labelled(r["id"], r["answer"], 0))
            if chosen.get(r["id"]) and chosen[r["id"]] != r["answer"]:
                out.append(Labelled(r["id"], chosen[r["id"]], 1))
        return out

    def questions(self) -> list[dict[str, Any]]:
        """Every member as a validation item: its question, and the answers the user endorsed and rejected."""
        chosen = {p["id"]: p["chosen"] for p in self.pairs}
        return [{"id": r["id"], "query": r["query"], "prompt": r["prompt"], "rules": r["rules"],
                 "chosen": chosen.get(r["id"]), "rejected": r["answer"]} for r in self.rows]

    def critic_examples(self, exclude: set[str] = frozenset()) -> list[TrainExample]:
        return [TrainExample(prompt=prompts.critic_messages(r["query"], r["answer"]), chosen=prompts.numbered(r["rules"]),
                             id=r["id"], user_id=r.get("user_id")) for r in self.rows if r["rules"] and r["id"] not in exclude]


def paths_to_try(decision: str, order: str = "gap") -> tuple[str, ...]:
    """The paths a cluster is validated on, in order, from the gap test's `decision`.

    "gap" (the paper's reading): a high-gap cluster tries the Critic first, a low-gap one the Expert
    first; each then tries the other. "expert_first": every cluster tries the Expert — one call and no
    extra tokens at serving — first; only a high-gap cluster whose Expert fails tries the Critic, and a
    low-gap one whose Expert fails is served by base (the model is already close to what its users
    want: a critique has little to correct).

    >>> paths_to_try("critic"), paths_to_try("critic", "expert_first"), paths_to_try("expert", "expert_first")
    (('critic', 'expert'), ('expert', 'critic'), ('expert',))
    """
    if order not in PATH_ORDERS:
        raise ConfigError(f"path order {order!r}: use one of {list(PATH_ORDERS)}")
    if order == "expert_first":
        return ("expert", "critic") if decision == "critic" else ("expert",)
    return (decision, "critic" if decision == "expert" else "expert")


class PathValidator:
    """Validates the Expert and Critic paths of clusters against the base model (one serving model)."""

    def __init__(self, model, judge: Judge, fit: Fit, *, folds: int = 2, seed: int = 42,
                 win_rate_threshold: float = 0.53, min_win_lower_bound: float = 0.5, confidence: float = 0.95,
                 bleu_threshold: float = 0.05, min_judgeable: int = 4, val_every: int = 1,
                 expert_objective: str = "sft") -> None:
        self.model, self.judge, self.fit = model, judge, fit
        self.folds, self.seed = folds, seed
        self.win_rate_threshold, self.min_win_lower_bound = win_rate_threshold, min_win_lower_bound
        self.confidence, self.bleu_threshold, self.min_judgeable = confidence, bleu_threshold, min_judgeable
        self.val_every, self.expert_objective = val_every, expert_objective
        # wall time spent training fold adapters and generating validation answers (base and candidates)
        self.seconds = {"training": 0.0, "generation": 0.0}

    # -- generation -------------------------------------------------------------------------------
    def _answers(self, conversations, adapter: str | None, budget: int | None = None, *,
                 complete: bool = False) -> tuple[list[str], list[str | None]]:
        """Answers and finish reasons; `complete`: served as an Expert answer is, ending at its last
        complete sentence or line when it reaches its budget (`budget.end_at_sentence`)."""
        if not conversations:
            return [], []
        kwargs = {"max_new_tokens": budget} if budget else {}
        t = time.perf_counter()
        replies = self.model.generate_batch(conversations, adapters=adapter, **kwargs)
        self.seconds["generation"] += time.perf_counter() - t
        texts = [str(m.content) for m in replies]
        finishes = [m.response_metadata.get("finish_reason") for m in replies]
        if complete:
            texts, finishes = map(list, zip(*(end_at_sentence(t, f) for t, f in zip(texts, finishes))))
        return texts, finishes

    def _with_adapter(self, name: str, path, fn):
        self.model.load_adapter(name, path)
        try:
            return fn(name)
        finally:
            self.model.unload_adapter(name)

    @property
    def learned_judge(self) -> bool:
        """Whether the judge is fitted per fold on the cluster's labelled answers (`want.WantJudge`)."""
        return bool(getattr(self.judge, "learned", False))

    def _score(self, judge: Judge, val: list[dict[str, Any]], base: list[str], answers: list[str],
               finishes) -> VerifierResult:
        items = [{"id": p.get("id"), "query": p["query"], "rules": p["rules"], "chosen": p["chosen"], "rejected": p["rejected"]}
                 for p in val]
        return simulated_win_rate(items, base, answers, judge, bleu_threshold=self.bleu_threshold,
                                  finish_reasons=finishes, confidence=self.confidence)

    def _accept(self, result: VerifierResult) -> tuple[bool, str]:
        if result.win_rate < self.win_rate_threshold:
            return False, f"win rate {result.win_rate:.2f} < {self.win_rate_threshold} on {result.n} held-out logs"
        if result.lower_bound < self.min_win_lower_bound:
            return False, (f"win rate {result.win_rate:.2f} on {result.n} held-out logs, but its lower bound "
                           f"{result.lower_bound:.2f} < {self.min_win_lower_bound} (not reliably better than base)")
        return True, f"beats base: win rate {result.win_rate:.2f}, lower bound {result.lower_bound:.2f}, n {result.n}"

    def _could_pass(self, done: list[VerifierResult], remaining: int) -> bool:
        """Whether a path with these fold results would pass if it won all `remaining` held-out logs."""
        wins, n = sum(r.wins for r in done) + remaining, sum(r.n for r in done) + remaining
        return self._accept(VerifierResult(wins / n, wins, n, [], wilson_bounds(wins, n, self.confidence)[0]))[0]

    # -- the two paths ------------------------------------------------------------------------------
    def validate(self, role: str, cluster_id: str, data: ClusterData, folds: list[list[str]],
                 base: dict[str, str], budget: int | None = None) -> PathVerdict:
        by_id = {p["id"]: p for p in (data.questions() if self.learned_judge else data.judgeable)}
        parts: list[list[VerifierResult]] = []  # [fold][epoch]
        fold_dirs: list[list[Path]] = []  # [fold][epoch]: each fold adapter's saved epochs
        for f, fold in enumerate(folds):
            held = set(fold)
            examples = data.expert_examples(held) if role == "expert" else data.critic_examples(held)
            if len(examples) < 2:
                return PathVerdict(role, False, f"fold {f + 1}: only {len(examples)} training example(s)")
            objective = self.expert_objective if role == "expert" else "sft"
            t = time.perf_counter()
            try:
                trained = self.fit(role, objective, examples, f"fold-{f + 1}", None)
            except ConfigError as exc:  # e.g. kto given one kind of answer only: this path cannot be validated
                return PathVerdict(role, False, f"fold {f + 1}: cannot train on its {len(examples)} examples: {exc}")
            finally:
                self.seconds["training"] += time.perf_counter() - t
            judge = self.judge.fit(data.labelled(held)) if self.learned_judge else self.judge
            val = [by_id[i] for i in fold]
            base_answers = [base[i] for i in fold]
            n_epochs = len(trained.epoch_dirs)
            fold_dirs.append(list(trained.epoch_dirs))
            checked = validated_epochs(n_epochs, self.val_every) if role == "expert" else [n_epochs]
            per_epoch = []
            for k in checked:
                epoch_dir = trained.epoch_dirs[k - 1]
                name = f"validate-{cluster_id}-{role}-{f + 1}-{k}"
                if role == "expert":
                    answers, finishes = self._with_adapter(
                        name, epoch_dir, lambda a: self._answers([p["prompt"] for p in val], a, budget, complete=True))
                else:
                    answers, finishes = self._with_adapter(name, epoch_dir, lambda a: self._critic_path(val, base_answers, a))
                per_epoch.append(self._score(judge, val, base_answers, answers, finishes))
            parts.append(per_epoch)
            remaining = sum(len(rest) for rest in folds[f + 1:])
            if remaining and not any(self._could_pass([fold[k] for fold in parts], remaining)
                                     for k in range(len(per_epoch))):
                break  # futility: winning every remaining held-out log would not make this path pass
        combined = [VerifierResult.combine([fold[k] for fold in parts], self.confidence) for k in range(len(parts[0]))]
        epoch = pick_epoch(combined, checked)
        best = combined[checked.index(epoch)]
        accepted, reason = self._accept(best)
        if len(parts) < len(folds):
            reason += f" (validation stopped after fold {len(parts)} of {len(folds)}: it could no longer pass)"
        return PathVerdict(
            role, accepted, reason, round(best.win_rate, 4), round(best.lower_bound, 4), best.n,
            epoch=epoch,
            epochs=[{"epoch": k, "win_rate": round(r.win_rate, 4), "lower_bound": round(r.lower_bound, 4),
                     "margin": round(r.margin, 4)} for k, r in zip(checked, combined)] if role == "expert" else [],
            flaws=dict(Counter(d["flaw"] for d in best.details if d["flaw"])), details=best.details,
            fold_adapters=[dirs[epoch - 1] for dirs in fold_dirs] if len(parts) == len(folds) else [])

    def _critic_path(self, val, base_answers: list[str], adapter: str) -> tuple[list[str], list[str | None]]:
        critiques, _ = self._answers([prompts.critic_messages(p["query"], b) for p, b in zip(val, base_answers)], adapter)
        return self._answers([prompts.revise_messages(p["query"], b, c) for p, b, c in zip(val, base_answers, critiques)],
                             None)

    def choose(self, cluster_id: str, data: ClusterData, decision: str,
               budget: int | None = None, order: str = "gap") -> tuple[str, list[PathVerdict]]:
        """Route for the cluster ("expert" | "critic" | "base") and the verdict of each path tried.

        `decision`: the gap test's ("expert" = low gap, "critic" = high gap); `order`: see `paths_to_try`.
        `budget`: the Expert's answer budget in tokens (`uno_graph.budget`), None = the model's own."""
        return self._run(cluster_id, data, paths_to_try(decision, order), budget)

    def check_expert(self, cluster_id: str, data: ClusterData, budget: int | None = None) -> PathVerdict:
        """The Expert path's verdict alone (no Critic fallback): how a late-ensemble variant trained
        with this validator's `expert_objective` is held to the same bar as the cluster's Expert."""
        return self._run(cluster_id, data, ("expert",), budget)[1][0]

    def _run(self, cluster_id: str, data: ClusterData, roles: tuple[str, ...],
             budget: int | None) -> tuple[str, list[PathVerdict]]:
        want: dict[str, Any] = {}
        if self.learned_judge:
            val, refusal, want = self._want_gate(data)
        else:
            val = data.judgeable
            refusal = None if len(val) >= self.min_judgeable else (
                f"only {len(val)} judgeable log(s) (an answer the user endorsed that differs from the "
                f"logged one); validation needs {self.min_judgeable}")
        if refusal:
            return "base", [PathVerdict(role, False, refusal, want=want) for role in ("expert", "critic")
                            if role in roles or len(roles) > 1]
        learned_from = {p["id"] for p in data.judgeable} | ({p["id"] for p in data.negatives} if data.ratings else set())
        folds = make_folds([p["id"] for p in val], self.folds, self.seed, first=learned_from)
        base_texts, _ = self._answers([p["prompt"] for p in val], None)
        base = {p["id"]: t for p, t in zip(val, base_texts)}
        verdicts = []
        for role in roles:
            verdict = self.validate(role, cluster_id, data, folds, base, budget if role == "expert" else None)
            verdict.want = want
            verdicts.append(verdict)
            if verdict.accepted:
                return role, verdicts
        return "base", verdicts

    def _want_gate(self, data: ClusterData) -> tuple[list[dict[str, Any]], str | None, dict[str, Any]]:
        """Validation items for a learned judge, or why there is nothing to learn (and the gate's numbers)."""
        labelled = data.labelled()
        endorsed = sum(x.label for x in labelled)
        rejected = len(labelled) - endorsed
        if endorsed < self.min_judgeable or rejected < 2:
            return [], (f"only {endorsed} endorsed and {rejected} rejected answer(s); a want needs "
                        f"{self.min_judgeable} endorsed and 2 rejected"), {}
        gate_folds = make_folds(sorted({x.log_id for x in labelled}), self.judge.gate_folds, self.seed)
        gate = self.judge.consistency(labelled, gate_folds)
        want = gate.to_dict()
        if gate.auc < self.judge.min_auc:
            return [], (f"no consistent want: on logs it did not see, a model of the endorsed answers' form "
                        f"ranks them above the rejected ones with AUC {gate.auc:.2f} < {self.judge.min_auc} "
                        f"({endorsed} endorsed, {rejected} rejected answers)"), want
        return data.questions(), None, want
