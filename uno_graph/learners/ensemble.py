"""The late ensemble: per cluster, a Bayesian bandit picks which Expert variant answers.

Why. Validation on held-out logs says which training objective beats the base model on the logs a
cluster already has; it cannot say which one the users will prefer on the questions still to come, and
with 5-10 logs per cluster two objectives often validate alike. So a cluster may publish several
Expert variants (one per objective, `UnoConfig.expert_learners`) and serving learns the choice from
the users themselves: each request of the cluster goes to one variant, chosen by Thompson sampling
(or Bayes-UCB) over a Beta posterior of each variant's success rate, and the feedback on that answer
updates that posterior. A variant that users keep approving gets most requests; the others keep
getting a few while their posterior still allows them to be best.

The bandit is `bayesianbandits` (the ``bandit`` extra): one non-contextual `Agent` per cluster whose
arms are the variants, each an `Arm` with a two-class `DirichletClassifier` (a Beta-Bernoulli model:
class 1 = success) and the reward function "probability of class 1". This module only keeps the
counts, persists them and maps feedback to rewards.

Reward of an answer's feedback (`feedback_reward`):

- an edited answer (``edited_response``) → 0: the user had to change it, whatever the rating says;
- else a rating > 0 (thumbs up) → 1, a rating < 0 (thumbs down) → 0;
- a rating of 0, a comment alone, or nothing → no update (no preference was expressed).

An answer counts once, by its latest feedback: a thumbs-up that is later followed by an edit moves
that answer's count from success to failure instead of adding a second observation.

Arms are named by the variant's versioned adapter path (``adapters/c3/expert@kto/v2``): a retrained
variant is a new arm and starts from the prior, so feedback on the old weights never credits the new
ones. `prune` drops the counts of arms a new cluster table no longer offers.

State lives in ``<workdir>/ensemble.json`` (written atomically after every update), so a restarted
server keeps what it learned. One serving process owns that file: several processes would each
overwrite the others' counts. Feedback given from another process (`uno-graph feedback` on the event
file) reaches the ensemble through `rebuild`, which recomputes every count from the recorded logs.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uno_graph.errors import ArtifactError, ConfigError, require
from uno_graph.workdir import atomic_write_text

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
POLICIES = ("thompson", "ucb")
FORMAT = 1
PRIOR = (1.0, 1.0)  # Beta(1, 1) on each arm's success rate: uniform, no preference before feedback
_INTERCEPT = np.array([[1.0]])  # the non-contextual agent's only "context"


def feedback_reward(feedback: Mapping[str, Any] | None) -> float | None:
    """The reward an answer's (folded) feedback gives its arm: 1.0, 0.0 or None (no update).

    See the module for the mapping and why an edit outweighs a rating.

    Example:
        >>> feedback_reward({"rating": 1.0}), feedback_reward({"rating": 1.0, "edited_response": "..."})
        (1.0, 0.0)
        >>> feedback_reward({"comment": "too long"}) is None
        True
    """
    feedback = feedback or {}
    if feedback.get("edited_response"):
        return 0.0
    rating = feedback.get("rating")
    if rating is None or isinstance(rating, bool) or not isinstance(rating, (int, float)) or rating == 0:
        return None
    return 1.0 if rating > 0 else 0.0


@dataclass(frozen=True)
class ArmStats:
    """What one arm has been told: (fractional) successes and failures, and its posterior mean."""

    successes: float
    failures: float

    @property
    def observations(self) -> float:
        return self.successes + self.failures

    @property
    def mean(self) -> float:
        """Posterior mean success rate under the Beta prior `PRIOR`."""
        return (self.successes + PRIOR[1]) / (self.observations + PRIOR[0] + PRIOR[1])


def _success_rate(samples: np.ndarray) -> np.ndarray:
    """Reward function of every arm: the sampled probability of class 1 (success)."""
    return samples[..., 1]


class LateEnsemble:
    """Chooses one of a cluster's Expert variants per request and learns from feedback.

    Args:
        path: the JSON file holding the counts (`ENSEMBLE_FILE` in a work directory); read if it
            exists, rewritten after each update. None keeps everything in memory.
        policy: "thompson" (sample each posterior once, take the best draw) or "ucb" (Bayes-UCB: the
            best upper posterior quantile, `bayesianbandits.UpperConfidenceBound`'s default).
        seed: seeds the one random generator every cluster's agent draws from (tests, benchmarks);
            None for serving.

    Thread-safe: one lock guards choices, updates and the file.

    Example:
        >>> ensemble = LateEnsemble(None, seed=0)
        >>> arm = ensemble.choose("c3", ["adapters/c3/expert/v1", "adapters/c3/expert@kto/v1"])
        >>> ensemble.update("c3", arm, 1.0)
        >>> ensemble.stats("c3")[arm].successes
        1.0
    """

    def __init__(self, path: str | Path | None = None, *, policy: str = "thompson", seed: int | None = None) -> None:
        self._bb = require("bayesianbandits", "bandit")
        if policy not in POLICIES:
            raise ConfigError(f"late ensemble policy {policy!r} is not known; expected one of {list(POLICIES)} "
                              "(UnoConfig.ensemble_policy)")
        self.path = None if path is None else Path(path)
        self.policy = policy
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._counts: dict[str, dict[str, list[float]]] = {}  # cluster -> arm -> [successes, failures]
        self._agents: dict[str, Any] = {}  # cluster -> bayesianbandits.Agent over the arms last offered
        if self.path is not None and self.path.exists():
            self._counts = _read_counts(self.path)

    def __repr__(self) -> str:
        return f"LateEnsemble({self.path}, policy={self.policy!r}, clusters={len(self._counts)})"

    # -- choosing ----------------------------------------------------------------------------------

    def choose(self, cluster_id: str, arms: Sequence[str]) -> str:
        """The arm (variant adapter path) that answers this request of `cluster_id`.

        One arm is returned as is, without a draw; several go to the cluster's bandit. The agent is
        rebuilt from the counts when the arms offered change (a reload published other variants).
        """
        offered = tuple(dict.fromkeys(str(a) for a in arms))
        if not offered:
            raise ConfigError(f"cluster {cluster_id!r} offers no arm to choose from; give at least one variant")
        if len(offered) == 1:
            return offered[0]
        with self._lock:
            agent = self._agents.get(cluster_id)
            if agent is None or tuple(arm.action_token for arm in agent.arms) != offered:
                agent = self._agents[cluster_id] = self._agent(cluster_id, offered)
            (token,) = agent.pull()
            return str(token)

    def _agent(self, cluster_id: str, arms: tuple[str, ...]):
        """A fresh agent whose arms' Beta priors already hold the counts recorded for them."""
        bb = self._bb
        counts = self._counts.get(cluster_id, {})
        made = []
        for arm in arms:
            successes, failures = counts.get(arm, (0.0, 0.0))
            learner = bb.DirichletClassifier({0: PRIOR[0] + failures, 1: PRIOR[1] + successes})
            made.append(bb.Arm(arm, reward_function=_success_rate, learner=learner))
        policy = bb.ThompsonSampling() if self.policy == "thompson" else bb.UpperConfidenceBound()
        return bb.Agent(made, policy, random_seed=self._rng)  # shares the one generator: seeded runs repeat

    # -- learning ----------------------------------------------------------------------------------

    def update(self, cluster_id: str, arm: str, reward: float) -> None:
        """Record one answer's reward in [0, 1] for `arm` of `cluster_id` (1 = success); saves the file.

        A fractional reward counts as that share of a success and the rest of a failure.
        """
        self._adjust(cluster_id, arm, _outcome(reward), +1)

    def on_feedback(self, record: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        """Learn from feedback just stored for a recorded answer (a `Recorder` feedback listener).

        `record` is the answer's log as it was before this feedback (its `metadata` names the
        `cluster` and the `arm` that answered), `fields` the feedback just given. Answers no bandit
        chose (no `arm` in their metadata) are ignored. See the module for the reward mapping and why
        an answer's count moves rather than adds when its feedback changes.
        """
        meta = record.get("metadata") or {}
        cluster_id, arm = meta.get("cluster"), meta.get("arm")
        if not cluster_id or not arm:
            return
        before = dict(record.get("feedback") or {})
        after = {**before, **{k: v for k, v in fields.items() if v is not None}}
        old, new = feedback_reward(before), feedback_reward(after)
        if old == new:
            return
        with self._lock:
            if old is not None:
                self._adjust(str(cluster_id), str(arm), _outcome(old), -1, save=False)
            if new is not None:
                self._adjust(str(cluster_id), str(arm), _outcome(new), +1, save=False)
            self.save()

    def _adjust(self, cluster_id: str, arm: str, outcome: tuple[float, float], sign: int, *, save: bool = True) -> None:
        successes, failures = outcome
        with self._lock:
            counts = self._counts.setdefault(cluster_id, {}).setdefault(arm, [0.0, 0.0])
            counts[0] = max(0.0, counts[0] + sign * successes)
            counts[1] = max(0.0, counts[1] + sign * failures)
            agent = self._agents.get(cluster_id)
            if agent is not None and sign > 0 and arm in {a.action_token for a in agent.arms}:
                # the conjugate update of bayesianbandits: class 1 weighted by the success share, class 0 by the rest
                agent.select_for_update(arm).update(np.array([1.0, 0.0]), sample_weight=np.array([successes, failures]))
            elif agent is not None:  # a retraction (or an arm not offered): rebuilt from the counts on the next choice
                self._agents.pop(cluster_id)
            if save:
                self.save()

    def rebuild(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Recompute every count from recorded logs (their metadata and latest feedback), replacing what
        was learned in this process; returns how many answers counted.

        Use it when feedback reaches the event file from another process (`uno-graph feedback`), or to
        recover a lost `ensemble.json`: the logs hold every choice and every reaction.
        """
        counts: dict[str, dict[str, list[float]]] = {}
        n = 0
        for record in records:
            meta = record.get("metadata") or {}
            reward = feedback_reward(record.get("feedback"))
            if not meta.get("cluster") or not meta.get("arm") or reward is None:
                continue
            successes, failures = _outcome(reward)
            slot = counts.setdefault(str(meta["cluster"]), {}).setdefault(str(meta["arm"]), [0.0, 0.0])
            slot[0] += successes
            slot[1] += failures
            n += 1
        with self._lock:
            self._counts, self._agents = counts, {}
            self.save()
        return n

    def prune(self, offered: Mapping[str, Collection[str]]) -> list[str]:
        """Keep only the arms `offered` lists per cluster (e.g. the variants of a reloaded table); the
        counts of every other arm, and of clusters not listed, are dropped. Returns the dropped arms
        as ``cluster:arm``."""
        dropped = []
        with self._lock:
            for cluster_id in list(self._counts):
                keep = set(offered.get(cluster_id, ()))
                for arm in list(self._counts[cluster_id]):
                    if arm not in keep:
                        del self._counts[cluster_id][arm]
                        dropped.append(f"{cluster_id}:{arm}")
                if not self._counts[cluster_id]:
                    del self._counts[cluster_id]
            self._agents = {c: a for c, a in self._agents.items() if c in offered}
            if dropped:
                self.save()
        return dropped

    # -- reading -----------------------------------------------------------------------------------

    def stats(self, cluster_id: str) -> dict[str, ArmStats]:
        """Every arm of `cluster_id` that has counts, with its successes, failures and posterior mean."""
        with self._lock:
            return {arm: ArmStats(s, f) for arm, (s, f) in self._counts.get(cluster_id, {}).items()}

    def best(self, cluster_id: str, arms: Sequence[str]) -> str:
        """Of `arms`, the one with the highest posterior mean (ties: the first listed); no draw.

        What an evaluation that must not explore serves (`Router.route(..., explore=False)`)."""
        if not arms:
            raise ConfigError(f"cluster {cluster_id!r} offers no arm to choose from; give at least one variant")
        stats = self.stats(cluster_id)
        return max(arms, key=lambda a: stats.get(a, ArmStats(0.0, 0.0)).mean)

    def clusters(self) -> list[str]:
        with self._lock:
            return sorted(self._counts)

    # -- persistence -------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the counts to `path` atomically (a reader sees the old file or the new, never a torn one)."""
        if self.path is None:
            return
        with self._lock:
            payload = {"format": FORMAT, "policy": self.policy, "prior": list(PRIOR),
                       "clusters": {c: {arm: {"successes": s, "failures": f} for arm, (s, f) in sorted(arms.items())}
                                    for c, arms in sorted(self._counts.items())}}
            atomic_write_text(self.path, json.dumps(payload, indent=2) + "\n")


def _outcome(reward: float) -> tuple[float, float]:
    """(success share, failure share) of a reward in [0, 1]."""
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward) \
            or not 0 <= reward <= 1:
        raise ConfigError(f"late ensemble reward {reward!r} is invalid; give a number in [0, 1] (1 = the answer "
                          "was approved, 0 = rejected or edited; see uno_graph.learners.feedback_reward)")
    return float(reward), 1.0 - float(reward)


def _read_counts(path: Path) -> dict[str, dict[str, list[float]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        counts = {str(c): {str(arm): [float(v["successes"]), float(v["failures"])] for arm, v in arms.items()}
                  for c, arms in data["clusters"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{path} is not a late-ensemble state file ({exc}); delete it to start the ensemble "
                            "from its prior, or rebuild it from the recorded logs (LateEnsemble.rebuild)") from exc
    for arms in counts.values():
        for arm, (s, f) in arms.items():
            if s < 0 or f < 0 or not (math.isfinite(s) and math.isfinite(f)):
                raise ArtifactError(f"{path}: arm {arm!r} has invalid counts ({s}, {f}); delete the file or "
                                    "rebuild it from the recorded logs (LateEnsemble.rebuild)")
    return counts


__all__ = ["ENSEMBLE_FILE", "POLICIES", "ArmStats", "LateEnsemble", "feedback_reward"]
