"""Learners beyond the single Expert: several adapters per cluster and how serving chooses among them.

- `ensemble`: the late ensemble. A cluster may publish several Expert variants (one per training
  objective, `UnoConfig.expert_learners`); at serving time a Bayesian bandit (`bayesianbandits`,
  the ``bandit`` extra) picks which variant answers each request and learns from the users' feedback
  on those answers which one they prefer.
"""

from uno_graph.learners.ensemble import (
    ENSEMBLE_FILE,
    POLICIES,
    ArmStats,
    LateEnsemble,
    feedback_reward,
)

__all__ = ["ENSEMBLE_FILE", "POLICIES", "ArmStats", "LateEnsemble", "feedback_reward"]
