"""Distill each log into semi-structured rules and, where needed, a revised answer (UNO §2).

The teacher is any LangChain chat model (default: the serving model). Rules come back as JSON
`{"rules": [...]}`; output that does not parse into short, plain rules, or whose rules share no
content word with what the user wrote (`grounded`), is not trusted: the log then keeps the user's
own follow-up sentences as its rules (`rule_source: "feedback"`), so a weak teacher loses no signal
and adds none of its own inventions. Logs carry what needs no teacher as is: a user's edited answer
is the revised answer (no teacher call), and an approving rating with no complaint means
"satisfied" (empty rules, the answer kept as a positive example).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

from uno_graph import prompts
from uno_graph.logs import LogRecord
from uno_graph.workdir import Workdir

STAGE = "distill"
MAX_RULES = 6
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.*\S)\s*$")
_WORD = re.compile(r"[a-z0-9]+(?:;[a-z0-9]+)?")  # keeps "tl;dr" whole
_STOPWORDS = frozenset(
    "the and for with that this these those you your yours please can could would should will shall "
    "answer answers response make use give gives are was were not but have has had more less just like "
    "what how about into from them they then than when which need needs want wants also very much some "
    "any all its it's our out one".split())


def parse_rules(text: str) -> list[str] | None:
    """Rules from a teacher reply: a JSON {"rules": [...]} object or a numbered/bulleted list.

    Returns None when the reply is not usable (unparsable, empty strings, echoes of the prompt).
    """
    rules: Any = None
    match = re.search(r"\{.*\}", text, flags=re.S)
    if match:
        try:
            rules = json.loads(match.group(0)).get("rules")
        except (json.JSONDecodeError, AttributeError):
            rules = None
    if rules is None:
        items = [m.group(1) for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
        rules = items or None
    if not isinstance(rules, list):
        return None
    if not rules:
        return []
    clean: list[str] = []
    for rule in rules:
        if not isinstance(rule, str):
            return None
        rule = " ".join(rule.split())
        if not 3 <= len(rule) <= 200 or "##" in rule or "{" in rule:
            return None
        if rule not in clean:
            clean.append(rule)
    return clean[:MAX_RULES]


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOPWORDS}


def grounded(rules: list[str], feedback: str) -> bool:
    """Whether every rule shares a content word (5-letter stem) with the user's feedback.

    A rule the user's words do not support is the teacher's invention (a 135M teacher asked about
    "a quick answer, not an essay" may return "use exactly 3 bullet points"). With no feedback text
    (an edit or a rating alone) there is nothing to check against, and the rules are kept.
    """
    said = _stems(feedback)
    return not said or all(_stems(rule) & said for rule in rules)


def feedback_rules(feedback: str) -> list[str]:
    """The user's own follow-up sentences, as rules of last resort."""
    sentences = [" ".join(s.split()) for s in _SENTENCE.split(feedback) if s.strip()]
    return [s for s in sentences if 3 <= len(s) <= 200][:MAX_RULES]


def is_satisfied(record: LogRecord) -> bool:
    """Approval with nothing to correct: a positive rating and no edit (follow-up text is thanks)."""
    fb = record.feedback
    return fb.rating is not None and fb.rating > 0 and not fb.edited_response


def _base_row(record: LogRecord) -> dict[str, Any]:
    return {"id": record.id, "user_id": record.user_id, "query": record.query,
            "prompt": record.prompt_messages, "answer": record.answer,
            "feedback": record.feedback_text, "rating": record.feedback.rating,
            "edited": record.feedback.edited_response, "metadata": record.metadata}


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _texts(teacher, batch: list[list[dict[str, str]]]) -> list[str]:
    return [m.content if isinstance(m.content, str) else str(m.content) for m in teacher.batch(batch)]


def distill(records: list[LogRecord], teacher, workdir: Workdir, *, batch_size: int = 8,
            progress: bool = True) -> list[dict[str, Any]]:
    """Distill every log not yet in `stages/distill.jsonl`; return all rows (old and new).

    `teacher=None`: no model is asked; a log's rules are its user's own follow-up sentences and no
    answer is revised (edits, approvals and ratings still give their signal).

    Row fields: id, user_id, query, prompt, answer, feedback, rating, edited, metadata,
    rules, rule_source (teacher | feedback | satisfied | none), revised (str | None).
    """
    done = {row["id"] for row in workdir.read(STAGE)}
    todo = [r for r in records if r.id not in done]
    bar = tqdm(total=len(todo), desc="distill", unit="log", disable=not progress)
    with workdir.append(STAGE) as out:
        for chunk in _chunks(todo, batch_size):
            rows = [_base_row(r) for r in chunk]
            ask = [i for i, r in enumerate(chunk) if not is_satisfied(r) and r.has_signal]
            if teacher is None:  # no teacher: the users' own words are the rules, and nothing is revised
                ask = []
            replies = _texts(teacher, [
                [{"role": "system", "content": prompts.DISTILL_SYSTEM},
                 {"role": "user", "content": prompts.DISTILL_USER.format(
                     query=chunk[i].query, answer=chunk[i].answer,
                     feedback=chunk[i].feedback_text or _rating_words(chunk[i]))}]
                for i in ask]) if ask else []
            for row, record in zip(rows, chunk):
                row.update(rules=[], rule_source="satisfied" if is_satisfied(record) else "none", revised=None)
                if teacher is None and not is_satisfied(record) and record.feedback_text:
                    row.update(rules=feedback_rules(record.feedback_text), rule_source="feedback")
            for i, reply in zip(ask, replies):
                rules = parse_rules(reply)
                if rules and not grounded(rules, chunk[i].feedback_text):
                    rules = None
                if rules:
                    rows[i].update(rules=rules, rule_source="teacher")
                elif rules is None and chunk[i].feedback_text:  # unusable reply: keep the user's words
                    rows[i].update(rules=feedback_rules(chunk[i].feedback_text), rule_source="feedback")
                rows[i]["teacher_reply"] = reply[:500]
            # A revised answer is needed only where the user gave no edit of their own.
            revise = [i for i in ask if rows[i]["rules"] and not rows[i]["edited"]]
            if revise:
                revised = _texts(teacher, [prompts.revise_messages(
                    rows[i]["query"], rows[i]["answer"],
                    prompts.numbered(rows[i]["rules"] + ([rows[i]["feedback"]] if rows[i]["feedback"] else [])))
                    for i in revise])
                for i, text in zip(revise, revised):
                    rows[i]["revised"] = text.strip() or None
            for row in rows:
                out.write(row)
            bar.update(len(chunk))
    bar.close()
    return workdir.read(STAGE)


def _rating_words(record: LogRecord) -> str:
    rating = record.feedback.rating
    return "The user rated the answer as bad." if rating is not None and rating < 0 else "(no feedback)"
