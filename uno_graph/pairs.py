"""Preference pairs (prompt, chosen, rejected) + rules, from distilled and verified logs.

chosen is the user's edited answer when there is one (no teacher needed), else a revision the
judge preferred; for an approved answer chosen = rejected = the answer (the DPO term is then
constant and only the SFT term acts, as in the reference). A badly rated answer with nothing better
to pair it with is kept as a negative (`chosen: null`) for objectives that use unpaired feedback.
"""

from __future__ import annotations

from typing import Any

from uno_graph.workdir import Workdir

STAGE = "pairs"


def is_judgeable(pair: dict[str, Any]) -> bool:
    """Whether a verifier can score against this pair: an endorsed answer that differs from the logged one
    (approvals have chosen = rejected; negatives have no chosen answer)."""
    return bool(pair.get("chosen")) and pair["chosen"] != pair["rejected"]


def build_pairs(rows: list[dict[str, Any]], decisions: list[dict[str, Any]], workdir: Workdir) -> list[dict[str, Any]]:
    """Write `stages/pairs.jsonl`: id, user_id, query, prompt, chosen, rejected, rules, source, metadata."""
    verdict = {d["id"]: d for d in decisions}
    pairs = []
    for row in rows:
        decision = verdict.get(row["id"])
        if decision is None:
            continue
        chosen: str | None = None
        if decision["keep"]:
            chosen = {"user_edit": row.get("edited"), "approved": row["answer"],
                      "judge_improved": row.get("revised")}[decision["reason"]]
        elif row.get("rating") is not None and row["rating"] < 0:
            chosen = None  # a negative with no better answer
        else:
            continue
        pairs.append({"id": row["id"], "user_id": row.get("user_id"), "query": row["query"],
                      "prompt": row["prompt"], "chosen": chosen, "rejected": row["answer"],
                      "rules": row["rules"], "source": decision["reason"] if chosen else "negative",
                      "metadata": row.get("metadata", {})})
    workdir.write(STAGE, pairs)
    return pairs
