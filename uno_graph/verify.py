"""Noise filter and simulated performance verifier (UNO §2 "Judge", §5 "Validation").

Two judges score an answer to a logged question:

* `LLMJudge`: any LangChain chat model with the reference's rubric (the log's rules are the main
  standard), 1–10. The method's judge; needs a capable model.
* `ContrastJudge`: no model. An answer scores by how much closer it is to the answer the user
  endorsed (their edit, or a verified revision) than to the answer they rejected, in words (ROUGE-L)
  and in form (ROUGE-L of the answers' shapes: lists, openings, lengths, how they end). It uses the
  users' own corrections as the simulated user, so it also works with a weak teacher.

`verify_pairs` is the noise filter the reference lacked: a teacher-revised answer becomes "chosen"
only if the judge scores it above the logged answer (the reference kept the best revision even when
it was worse). User edits and approvals pass as they are: the user is the judge there.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm

from uno_graph import prompts
from uno_graph.metrics import bleu4, rouge_l, rouge_l_shape
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
    """Score = [ROUGE-L(answer, chosen) − ROUGE-L(answer, rejected)] + form_weight × the same on the
    answers' shapes (`metrics.shape`); needs both references.

    Word overlap alone sees mostly content: when a user's edit only adds "- " to each line or a
    question at the end, the edit and the logged answer share almost every word, and a new answer in
    the wanted form scores by the accident of its wording. The shape term is what the edit changed
    in form; `form_weight=0` is the words-only judge.

    `anchored`: its score is tied to text the user endorsed; the verifier's drift guard then also
    accepts a candidate that moves towards that text instead of staying made of the base's words.
    """

    anchored = True

    def __init__(self, form_weight: float = 1.0) -> None:
        self.form_weight = form_weight

    def scores(self, items: list[dict[str, Any]]) -> list[float | None]:
        out: list[float | None] = []
        for it in items:
            if not it.get("chosen") or not it.get("rejected") or it["chosen"] == it["rejected"]:
                out.append(None)
            else:
                score = rouge_l(it["answer"], it["chosen"]) - rouge_l(it["answer"], it["rejected"])
                if self.form_weight:
                    score += self.form_weight * (rouge_l_shape(it["answer"], it["chosen"])
                                                 - rouge_l_shape(it["answer"], it["rejected"]))
                out.append(score)
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


# -- the simulated performance verifier (Expert and Critic paths alike) ------------------------------

_TOKEN = re.compile(r"[^\W_]+", flags=re.UNICODE)
_CODE_BLOCK = re.compile(r"```.*?(```|$)", flags=re.S)
# words that carry no answer: "Sure. <the question>" or "Here is the answer: <the question>" is an echo
_FILLER = frozenset("sure ok okay yes yeah certainly of course here is are the a an answer question your you "
                    "asked i can help with that let me well so great good happy to glad absolutely".split())
# the commonest English function words; an English answer of 8+ words without any is rare
_ENGLISH = frozenset("the a an and or of to in is are was it for on with you your this that be as at by can "
                     "will i we from not it's if do does have has they their there which".split())
# how an answer may end without being cut off: a sentence end, a closing bracket, quote or code fence, a colon list
_COMPLETE_END = re.compile(r"""([.!?…:;)\]}"'”’*`>]|\d|[\U0001F300-\U0001FAFF\u2600-\u27BF])\s*$""")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def echoes_question(answer: str, query: str) -> bool:
    """The answer only restates the question: no word of its own beyond filler, most of the question's words."""
    q = set(_tokens(query))
    words = _tokens(answer)
    if not q or not words:
        return False
    new = [w for w in words if w not in q and w not in _FILLER]
    return not new and len(set(words) & q) >= 0.6 * len(q)


def looks_english(text: str) -> bool:
    """Whether prose (code blocks removed) reads as English; too little prose to tell counts as English."""
    prose = _CODE_BLOCK.sub(" ", text)
    letters = [c for c in prose if c.isalpha()]
    if letters and sum(not c.isascii() for c in letters) / len(letters) > 0.3:
        return False  # another script (Greek, Cyrillic, CJK, ...)
    words = _tokens(prose)
    if len(words) < 8:
        return True
    return sum(w in _ENGLISH for w in words) / len(words) >= 0.08


def on_topic(answer: str, context: str) -> bool:
    """Whether an answer shares a content word (4+ letters, not filler or a function word) with its context
    (the question and the base answer); an answer too short to have one counts as on topic."""
    content = {w for w in _tokens(answer) if len(w) >= 4 and w not in _FILLER and w not in _ENGLISH}
    return not content or bool(content & set(_tokens(context)))


def degenerate(answer: str, *, query: str, base: str, reference: str = "", finish_reason: str | None = None) -> str | None:
    """Why a candidate answer cannot beat the base answer whatever a judge says, or None.

    empty; repeats_base (the same text as the base answer, or nearly: nothing learned);
    echoes_question; cut_off (the generation hit its token budget mid-sentence); other_language
    (the question and the endorsed answer are English, the candidate is not).
    """
    text = answer.strip()
    if not text:
        return "empty"
    if " ".join(text.split()) == " ".join(base.split()) or (base.strip() and rouge_l(text, base) >= 0.95):
        return "repeats_base"
    if echoes_question(text, query):
        return "echoes_question"
    if finish_reason == "length" and not _COMPLETE_END.search(text):
        return "cut_off"
    if looks_english(query + " " + reference) and not looks_english(text):
        return "other_language"
    return None


def wilson_bounds(wins: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """One-sided Wilson score bounds at `confidence` for a win share (ties count half a win)."""
    if n <= 0:
        return 0.0, 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    p = wins / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denom), min(1.0, (centre + spread) / denom)


@dataclass
class VerifierResult:
    win_rate: float
    wins: float
    n: int
    details: list[dict[str, Any]]
    lower_bound: float = 0.0  # one-sided Wilson bound on the win rate (see `wilson_bounds`)

    @property
    def margin(self) -> float:
        """Mean judge-score margin over base of the credited items (0 for the rest): breaks ties."""
        margins = [d["score"] - d["base_score"] for d in self.details if d["credit"] and d["score"] is not None]
        return sum(margins) / len(self.details) if self.details else 0.0

    @classmethod
    def combine(cls, parts: list["VerifierResult"], confidence: float = 0.95) -> "VerifierResult":
        """One result over the items of several folds."""
        details = [d for p in parts for d in p.details]
        wins = sum(d["credit"] for d in details)
        n = len(details)
        return cls(win_rate=wins / n if n else 0.0, wins=wins, n=n, details=details,
                   lower_bound=wilson_bounds(wins, n, confidence)[0])


def simulated_win_rate(val_items: list[dict[str, Any]], base_answers: list[str], candidate_answers: list[str],
                       judge: Judge, *, bleu_threshold: float = 0.05, finish_reasons: list[str | None] | None = None,
                       confidence: float = 0.95) -> VerifierResult:
    """The paper's verifier: win 1 / tie 0.5 against the base answer on held-out logs.

    val_items: {query, rules, chosen, rejected}. A degenerate candidate (`degenerate`: empty,
    repeating the base answer, echoing the question, cut off, another language) loses outright. An
    item also earns nothing when the candidate is under 10 % of the base answer's length, or (the
    BLEU drift guard) when its BLEU-4 against the base answer is not above `bleu_threshold`.

    Both guards assume users never want a shorter or a corrected answer: a one-sentence answer is
    under 10 % of a paragraph, BLEU's brevity penalty sends it to ~0, and an Expert that replaces a
    wrong river with the right one shares few 4-grams with the base answer. So the length floor is
    10 % of the shorter of the base answer and the answer the user endorsed; the BLEU guard passes a
    candidate made of the base answer's or the endorsed answer's words; and with a judge marked
    `anchored` (ContrastJudge) a candidate also passes when it is at least as close (ROUGE-L) to the
    endorsed answer as the base answer is; with a judge of form (`drift = "topical"`, the learned
    `want.WantJudge`) when it shares a content word with the question, the base answer or the
    endorsed answer (`on_topic`). Text that does none of these earns nothing.
    """
    finish_reasons = finish_reasons or [None] * len(candidate_answers)
    tie = float(getattr(judge, "tie_margin", 0.0))
    items = []
    for it, base, cand in zip(val_items, base_answers, candidate_answers):
        items += [{**it, "answer": cand}, {**it, "answer": base}]
    scores = judge.scores(items)
    wins, details = 0.0, []
    for n, (base, cand) in enumerate(zip(base_answers, candidate_answers)):
        cand_score, base_score = scores[2 * n], scores[2 * n + 1]
        endorsed = val_items[n].get("chosen") or base
        flaw = degenerate(cand, query=val_items[n]["query"], base=base, reference=endorsed,
                          finish_reason=finish_reasons[n])
        bleu = max(bleu4(cand, base), bleu4(cand, endorsed))
        floor = 0.1 * min(len(base), len(endorsed))
        on_course = bleu > bleu_threshold
        if getattr(judge, "anchored", False):  # or it moves towards what the user wrote
            on_course = on_course or rouge_l(cand, endorsed) >= rouge_l(base, endorsed)
        if getattr(judge, "drift", None) == "topical":  # a learned judge of form: the words need only stay on topic
            on_course = on_course or on_topic(cand, val_items[n]["query"] + "\n" + base + "\n" + (val_items[n].get("chosen") or ""))
        credit = 0.0
        if flaw is None and cand_score is not None and base_score is not None and len(cand) >= floor and on_course:
            margin = cand_score - base_score  # within the judge's tie margin, neither answer is better
            credit = 1.0 if margin > tie else 0.5 if margin >= -tie else 0.0
        wins += credit
        details.append({"id": val_items[n].get("id"), "score": cand_score, "base_score": base_score,
                        "bleu": round(bleu, 4), "credit": credit, "flaw": flaw, "answer": cand})
    n = len(details)
    return VerifierResult(win_rate=wins / n if n else 0.0, wins=wins, n=n, details=details,
                          lower_bound=wilson_bounds(wins, n, confidence)[0])
