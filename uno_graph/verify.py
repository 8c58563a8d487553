"""Noise filter and simulated performance verifier (UNO §2 "Judge", §5 "Validation").

Two judges score an answer to a logged question:

* `LLMJudge`: any LangChain chat model with the reference's rubric (the log's rules are the main
  standard), 1–10. The method's judge; needs a capable model.
* `ContrastJudge`: no model. An answer scores by how much closer it is (ROUGE-L) to the answer the
  user endorsed (their edit, or a verified revision) than to the answer they rejected. It uses the
  users' own corrections as the simulated user, so it also works with a weak teacher.

`verify_pairs` is the noise filter the reference lacked: a teacher-revised answer becomes "chosen"
only if the judge scores it above the logged answer (the reference kept the best revision even when
it was worse). User edits and approvals pass as they are: the user is the judge there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm

from uno_graph import prompts
from uno_graph.metrics import bleu4, rouge_l
from uno_graph.workdir import Workdir

STAGE = "verify"


class Judge(Protocol):
    def scores(self, items: list[dict[str, Any]]) -> list[float | None]:
        """items: {query, rules, answer, chosen?, rejected?} → a score each (None = no verdict)."""


def parse_score(text: str) -> float | None:
    """The integer score of a judge reply (JSON `score` field, else the first 1–10 integer)."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    if match:
        try:
            value = json.loads(match.group(0)).get("score")
            if isinstance(value, (int, float)) and 1 <= value <= 10:
                return float(value)
        except (json.JSONDecodeError, AttributeError):
            pass
    match = re.search(r"\b(10|[1-9])\b", text)
    return float(match.group(1)) if match else None


class LLMJudge:
    """The reference's rubric judge on any LangChain chat model (greedy, one sample).

    The reply puts the score first, so `max_tokens` (passed to the chat model per call when set)
    can stop it after the score: the reason that follows is not used.
    """

    def __init__(self, chat_model, max_tokens: int | None = None) -> None:
        self.chat_model = chat_model
        self.max_tokens = max_tokens

    def scores(self, items: list[dict[str, Any]]) -> list[float | None]:
        if not items:
            return []
        batch = [[{"role": "system", "content": prompts.JUDGE_SYSTEM},
                  {"role": "user", "content": prompts.JUDGE_USER.format(
                      query=it["query"], answer=it["answer"],
                      rules=prompts.numbered(it["rules"]) if it["rules"] else "1. The LLM response must be relevant to the question.")}]
                 for it in items]
        kwargs = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        replies = self.chat_model.batch(batch, **kwargs)
        return [parse_score(str(r.content)) for r in replies]


class ContrastJudge:
    """Score = ROUGE-L(answer, chosen) − ROUGE-L(answer, rejected); needs both references.

    `anchored`: its score is tied to text the user endorsed; the verifier's drift guard then also
    accepts a candidate that moves towards that text instead of staying made of the base's words.
    """

    anchored = True

    def scores(self, items: list[dict[str, Any]]) -> list[float | None]:
        out: list[float | None] = []
        for it in items:
            if not it.get("chosen") or not it.get("rejected") or it["chosen"] == it["rejected"]:
                out.append(None)
            else:
                out.append(rouge_l(it["answer"], it["chosen"]) - rouge_l(it["answer"], it["rejected"]))
        return out


def verify_pairs(rows: list[dict[str, Any]], judge: Judge, workdir: Workdir, *, batch_size: int = 8,
                 progress: bool = True) -> list[dict[str, Any]]:
    """Decide per distilled log whether it yields a training pair; append to `stages/verify.jsonl`.

    Decision fields: id, keep, reason (user_edit | approved | judge_improved | judge_not_better |
    judge_no_verdict | no_revision | no_signal), score_revised, score_original.
    """
    done = {d["id"] for d in workdir.read(STAGE)}
    todo = [r for r in rows if r["id"] not in done]
    bar = tqdm(total=len(todo), desc="verify", unit="log", disable=not progress)
    with workdir.append(STAGE) as out:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            decisions = [_decide_without_judge(r) for r in chunk]
            ask = [i for i, d in enumerate(decisions) if d is None]
            items = []
            for i in ask:
                r = chunk[i]
                items += [{"query": r["query"], "rules": r["rules"], "answer": r["revised"]},
                          {"query": r["query"], "rules": r["rules"], "answer": r["answer"]}]
            scores = judge.scores(items) if items else []
            for n, i in enumerate(ask):
                new, old = scores[2 * n], scores[2 * n + 1]
                if new is None or old is None:
                    reason, keep = "judge_no_verdict", False
                else:
                    keep = new > old
                    reason = "judge_improved" if keep else "judge_not_better"
                decisions[i] = {"id": chunk[i]["id"], "keep": keep, "reason": reason,
                                "score_revised": new, "score_original": old}
            for d in decisions:
                out.write(d)
            bar.update(len(chunk))
    bar.close()
    return workdir.read(STAGE)


def _decide_without_judge(row: dict[str, Any]) -> dict[str, Any] | None:
    base = {"id": row["id"], "score_revised": None, "score_original": None}
    if row.get("edited"):
        return {**base, "keep": True, "reason": "user_edit"}
    if row["rule_source"] == "satisfied":
        return {**base, "keep": True, "reason": "approved"}
    if not row.get("revised"):
        return {**base, "keep": False, "reason": "no_revision" if row["rules"] else "no_signal"}
    return None


@dataclass
class VerifierResult:
    win_rate: float
    wins: float
    n: int
    details: list[dict[str, Any]]


def simulated_win_rate(val_items: list[dict[str, Any]], base_answers: list[str], candidate_answers: list[str],
                       judge: Judge, *, bleu_threshold: float = 0.05) -> VerifierResult:
    """The paper's verifier: win 1 / tie 0.5 against the base answer on held-out logs.

    An item earns nothing when the candidate is under 10 % of the base answer's length, or (the
    BLEU drift guard) when its BLEU-4 against the base answer is not above `bleu_threshold`.
    val_items: {query, rules, chosen, rejected}.

    Both guards assume users never want a shorter or a corrected answer: a one-sentence answer is
    under 10 % of a paragraph, BLEU's brevity penalty sends it to ~0, and an Expert that replaces a
    wrong river with the right one shares few 4-grams with the base answer. So the length floor is
    10 % of the shorter of the base answer and the answer the user endorsed; the BLEU guard passes a
    candidate made of the base answer's or the endorsed answer's words; and with a judge marked
    `anchored` (ContrastJudge) a candidate also passes when it is at least as close (ROUGE-L) to the
    endorsed answer as the base answer is. Text that does none of these earns nothing.
    """
    items = []
    for it, base, cand in zip(val_items, base_answers, candidate_answers):
        items += [{**it, "answer": cand}, {**it, "answer": base}]
    scores = judge.scores(items)
    wins, details = 0.0, []
    for n, (base, cand) in enumerate(zip(base_answers, candidate_answers)):
        cand_score, base_score = scores[2 * n], scores[2 * n + 1]
        endorsed = val_items[n].get("chosen") or base
        bleu = max(bleu4(cand, base), bleu4(cand, endorsed))
        floor = 0.1 * min(len(base), len(endorsed))
        on_course = bleu > bleu_threshold
        if getattr(judge, "anchored", False):  # or it moves towards what the user wrote
            on_course = on_course or rouge_l(cand, endorsed) >= rouge_l(base, endorsed)
        credit = 0.0
        if cand_score is not None and base_score is not None and len(cand) >= floor and on_course:
            credit = 1.0 if cand_score > base_score else 0.5 if cand_score == base_score else 0.0
        wins += credit
        details.append({"score": cand_score, "base_score": base_score, "bleu": round(bleu, 4), "credit": credit})
    n = len(details)
    return VerifierResult(win_rate=wins / n if n else 0.0, wins=wins, n=n, details=details)
