"""What a cluster's users want, learned from the answers they endorsed and the ones they rejected.

A cluster's logs label answers: an edit, an approved answer or a verified revision is *endorsed*;
the logged answer of a log with an edit, a complaint or a thumbs-down is *rejected*. `WantModel` is a
small logistic regression on the **form** of those answers (`answer_form`: how an answer opens, how
each line starts, how it ends, its length, line count, case, questions), so it can say of an answer
to a *new* question whether it is written the way this cluster's users want — which a judge that
compares with one log's own edit cannot (an answer about other things shares few words with it).

Two uses (adapters/validate.py):

* **Is there a want at all?** `cross_validated_auc` fits the model on some logs and ranks the
  labelled answers of the others. Users who contradict each other (shorter, longer, lists, prose)
  leave nothing a model can pick up on held-out logs (AUC near 0.5): such a cluster is served by
  the base model, with no adapter trained.
* **The validation judge.** Fitted on a fold's training logs only, it scores an Expert's answer and
  the base answer to each held-out question (`WantJudge`); the better-formed one wins.

Whether an answer was cut off by a token limit is hidden from the model (`complete_part`): logged
answers often stop mid-sentence and edits never do, so without that the model would learn "edited
by a person" rather than the users' want. Cut-off candidates are caught by `verify.degenerate`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_SENTENCE_END = re.compile(r"""[.!?…:](?:["'”’)\]*`]*)(?=\s|$)|\n""")


def complete_part(text: str) -> str:
    """The text up to its last sentence or line end, when it stops mid-sentence (and most is kept)."""
    text = text.strip()
    if not text or _SENTENCE_END.search(text[-3:] + " "):
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= 0.3 * len(text):
        return text[: ends[-1]].rstrip()
    return text


def _pattern(s: str) -> str:
    """Character classes of a short string: digits → 0, capitals → A, small letters → a, others kept."""
    return "".join("0" if c.isdigit() else "A" if c.isupper() else "a" if c.isalpha() else c for c in s)


def answer_form(text: str) -> dict[str, float]:
    """An answer's form as named features (indicators and numbers in [0, ~1]); content words are
    left out except the first words of the answer and of its last line (openings and sign-offs).

        >>> sorted(k for k in answer_form("Short answer: no.\\n- one\\n- two") if k.startswith("head="))
        ['head=- ', 'head=Aa']
    """
    t = complete_part(text)
    lines = [line.strip() for line in t.splitlines() if line.strip()]
    words = _WORD.findall(t)
    f: dict[str, float] = {}
    n = len(words)
    f["words_log"] = math.log1p(n) / 5
    for cut in (10, 20, 30, 50, 80, 120):
        f[f"words<={cut}"] = float(n <= cut)
    f["lines_log"] = math.log1p(len(lines)) / 3
    for k in (1, 2, 3, 4, 5):
        f[f"lines={k}"] = float(len(lines) == k)
    f["lines>5"] = float(len(lines) > 5)
    letters = [c for c in t if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    f["upper_share"] = upper / len(letters) if letters else 0.0
    f["no_capitals"] = float(bool(letters) and upper == 0)
    f["questions"] = min(t.count("?"), 3) / 3
    sentences = max(1, len(re.findall(r"[.!?](?=\s|$)", t)))
    f["words_per_sentence"] = min(n / sentences, 60) / 60
    if not lines:
        f["empty"] = 1.0
        return f
    f[f"open1={words[0] if words else ''}"] = 1.0  # cased: "Yes", "No", "Short", "TL"
    f[f"open2={' '.join(words[:2]).lower()}"] = 1.0
    f[f"open_pattern={_pattern(lines[0][:3])}"] = 1.0
    last_words = _WORD.findall(lines[-1])
    f[f"last_line_open={last_words[0] if last_words else ''}"] = 1.0
    f[f"last_line_pattern={_pattern(lines[-1][:3])}"] = 1.0
    f[f"end={t[-1] if not t[-1].isalnum() else _pattern(t[-1])}"] = 1.0
    heads = Counter(_pattern(line[:2]) for line in lines)
    for head, count in heads.items():
        f[f"head={head}"] = count / len(lines)
    for mark in ("**", "```", ":", "(", ";", "!"):
        f[f"has{mark}"] = float(mark in t)
    return f


def edit_form(text: str) -> dict[str, float]:
    """`answer_form` and the first token of every line (digits as 0): what the edit directions compare.

    Two wants that both add a line of their own (`Warning: ...` in one topic, `Sources: ...` at the
    end in another) look alike to `answer_form` (a line that opens with a capitalised word and a colon);
    the line's first token tells them apart. Used for clustering only; the validation judge reads
    `answer_form`.

        >>> sorted(k for k in edit_form("Use gloves.\\nWarning: sharp.\\n1. one") if k.startswith("line_open="))
        ['line_open=0.', 'line_open=Use', 'line_open=Warning:']
    """
    f = answer_form(text)
    for line in complete_part(text).splitlines():
        if line.strip():
            f[f"line_open={re.sub(r'[0-9]', '0', line.split()[0])}"] = 1.0
    return f


@dataclass
class Labelled:
    """One labelled answer of a log: endorsed (1) or rejected (0)."""

    log_id: str
    text: str
    label: int


class WantModel:
    """Logistic regression on `answer_form` features, balanced between endorsed and rejected answers."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self._vec = None
        self._clf = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "WantModel":
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise ValueError("a want model needs both endorsed and rejected answers")
        self._vec = DictVectorizer()
        x = self._vec.fit_transform([answer_form(t) for t in texts])
        self._clf = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
        self._clf.fit(x, list(labels))
        return self

    def score(self, texts: Sequence[str]) -> list[float]:
        """Log-odds that each answer is one this cluster's users endorse."""
        if self._clf is None:
            raise RuntimeError("fit the model first")
        if not texts:
            return []
        return [float(s) for s in self._clf.decision_function(self._vec.transform([answer_form(t) for t in texts]))]

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain numbers (`WantScorer.from_dict` scores with it, without sklearn)."""
        if self._clf is None:
            raise RuntimeError("fit the model first")
        names, weights = self._vec.get_feature_names_out(), self._clf.coef_[0]
        return {"intercept": float(self._clf.intercept_[0]),
                "weights": {str(n): round(float(w), 6) for n, w in zip(names, weights) if abs(w) > 1e-9}}

    def top_features(self, k: int = 8) -> list[tuple[str, float]]:
        """The features that weigh most, signed (positive: what endorsed answers have)."""
        names = self._vec.get_feature_names_out()
        weights = self._clf.coef_[0]
        order = np.argsort(-np.abs(weights))[:k]
        return [(str(names[i]), round(float(weights[i]), 3)) for i in order]


class WantScorer:
    """A fitted `WantModel` read back from `WantModel.to_dict()` (an Expert's manifest holds one): the
    same log-odds, with no sklearn at serving time.

        >>> model = WantModel().fit(["- a\\n- b", "Plain text.", "- c\\n- d", "More prose."], [1, 0, 1, 0])
        >>> scorer = WantScorer.from_dict(model.to_dict())
        >>> [round(x, 4) for x in scorer.score(["- x\\n- y"])] == [round(x, 4) for x in model.score(["- x\\n- y"])]
        True
    """

    def __init__(self, weights: dict[str, float], intercept: float) -> None:
        self.weights, self.intercept = dict(weights), float(intercept)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WantScorer":
        return cls(data["weights"], data["intercept"])

    def score(self, texts: Sequence[str]) -> list[float]:
        """Log-odds that each answer is one this cluster's users endorse."""
        return [self.intercept + sum(self.weights.get(k, 0.0) * v for k, v in answer_form(t).items()) for t in texts]


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Share of (endorsed, rejected) pairs the scores order right, ties half (ROC AUC)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@dataclass
class Consistency:
    """How well a cluster's want can be learned: out-of-fold AUC over its labelled answers."""

    auc: float
    n_endorsed: int
    n_rejected: int
    folds: int

    def to_dict(self) -> dict[str, float]:
        return {"auc": round(self.auc, 4), "n_endorsed": self.n_endorsed, "n_rejected": self.n_rejected,
                "folds": self.folds}


def cross_validated_auc(labelled: Sequence[Labelled], folds: Sequence[Sequence[str]], c: float = 1.0) -> Consistency:
    """Fit on the logs outside each fold, score the fold's labelled answers; AUC over all out-of-fold
    scores. A log's endorsed and rejected answers stay in the same fold."""
    scores: list[float] = []
    labels: list[int] = []
    for fold in folds:
        held = set(fold)
        train = [x for x in labelled if x.log_id not in held]
        test = [x for x in labelled if x.log_id in held]
        if not test:
            continue
        if len({x.label for x in train}) < 2:
            scores += [0.0] * len(test)
        else:
            model = WantModel(c).fit([x.text for x in train], [x.label for x in train])
            scores += model.score([x.text for x in test])
        labels += [x.label for x in test]
    value = auc(scores, labels)
    return Consistency(auc=0.5 if math.isnan(value) else value, n_endorsed=sum(labels),
                       n_rejected=len(labels) - sum(labels), folds=len(folds))


class FittedWantJudge:
    """A `verify.Judge` over one fitted `WantModel`: an answer's score is its log-odds of being endorsed."""

    drift = "topical"  # no per-log reference to stay near: the verifier asks only that answers stay on topic
    # log-odds closer than this are a tie: on the development set, answers of the same form differed by
    # less than 0.05 and were counted as wins for one side
    tie_margin = 0.1

    def __init__(self, model: WantModel | None) -> None:
        self.model = model  # None: the training logs had one label only; every answer then ties

    def scores(self, items: list[dict]) -> list[float | None]:
        if self.model is None:
            return [0.0] * len(items)
        return list(self.model.score([it["answer"] for it in items]))


class WantJudge:
    """The validation judge learned from each cluster's own logs (the default of `learn`).

    `fit(labelled)` gives the judge for one fold, fitted on that fold's training logs only;
    `consistency(labelled, folds)` is the gate: a cluster whose out-of-fold AUC is under `min_auc`
    has no want its logs agree on, and is served by the base model without training.
    """

    learned = True

    def __init__(self, c: float = 1.0, min_auc: float = 0.65, gate_folds: int = 4) -> None:
        self.c, self.min_auc, self.gate_folds = c, min_auc, gate_folds

    def fit(self, labelled: Sequence[Labelled]) -> FittedWantJudge:
        if len({x.label for x in labelled}) < 2:
            return FittedWantJudge(None)
        return FittedWantJudge(WantModel(self.c).fit([x.text for x in labelled], [x.label for x in labelled]))

    def consistency(self, labelled: Sequence[Labelled], folds: Sequence[Sequence[str]]) -> Consistency:
        return cross_validated_auc(labelled, folds, self.c)


def edit_directions(edits: Sequence[tuple[str, str] | None], *, min_logs: int = 5,
                    standardise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """How each user changed an answer, as a direction in `edit_form` space, to tell which logs share a want.

    `edits[i]` is (endorsed, rejected) for a log whose user changed its answer (an edit, a verified
    revision), else None. A log's direction is form(endorsed) − form(rejected), less the mean change
    over all logs (every edit tends to shorten and tidy an answer; what is left is what *this* user
    asked for), each feature divided by its spread over the logs. Returns the directions (one row per
    log, zeros where `edits[i]` is None) and a mask of the logs that have one.

    Features that fewer than `min_logs` changes touch are left out: a title's or an opening's first
    word is different in every edit, and standardised it would outweigh everything shared.

    On the four development log sets (each topic's edits split by subject), the mean directions of
    one want's two halves have cosine 0.37-0.91, those of two different wants at most 0.14; the
    topics whose users contradict each other reach up to 0.58 with a want (`cluster.merge_by_want`).
    In `answer_form` space alone, two wants that each add a labelled line (`Warning:`, `Sources:`)
    pointed the same way and merged; with each line's first token (`edit_form`) they do not
    (`benchmarks/cluster_check.py --all`: purity on `examples/vault` 72 % → 86 %).
    """
    has = np.asarray([e is not None for e in edits], dtype=bool)
    if has.sum() < 2:
        return np.zeros((len(edits), 1)), has
    from sklearn.feature_extraction import DictVectorizer

    changed = [e for e in edits if e is not None]
    vec = DictVectorizer(sparse=False)
    forms = [(edit_form(a), edit_form(b)) for a, b in changed]
    vec.fit([f for pair in forms for f in pair])
    endorsed = vec.transform([a for a, _ in forms])
    rejected = vec.transform([b for _, b in forms])
    delta = endorsed - rejected
    common = (np.abs(delta) > 1e-9).sum(axis=0) >= min(min_logs, len(changed))
    delta = delta[:, common]  # a feature only one or two changes touch (a title's first word) says nothing shared
    delta -= delta.mean(axis=0)
    if standardise:
        spread = delta.std(axis=0)
        delta /= np.where(spread > 1e-6, spread, 1.0)
    out = np.zeros((len(edits), delta.shape[1]))
    out[has] = delta
    return out, has
