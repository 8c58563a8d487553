"""Evaluation: run test items through base, UNO, UNO-Single and the retrieval baseline; score them.

    >>> from uno_graph.evaluate import evaluate                                  # doctest: +SKIP
    >>> result = evaluate("runs/demo", "examples/test.jsonl", "runs/demo/eval.jsonl",
    ...                   check="examples/checks.py:check")                      # doctest: +SKIP
    >>> print(format_summary(result.summary))                                    # doctest: +SKIP

Systems (``--systems``):

* ``base``: the base model, adapters off.
* ``uno``: the UNO state machine (route → expert | base → critique → revise).
* ``uno_single``: UNO with Critic clusters answered by the base model (one call per query).
* ``uno_user``: UNO routing a test item that carries a ``user_id`` by its query and its user's logs
  (`route_by_user`, router.py) whatever the work directory's config says; ``uno`` does so when the
  config's `route_by_user` is on (the default). ``uno_query``: UNO routing by the query alone.
  ``uno_greedy``: UNO whose Experts give their greedy answer, without the best of n (nodes/best_of.py).
* ``rules_in_context``: the paper's retrieval baseline: the rules of the query's nearest clusters
  go into a system prompt for the base model; no adapters.
* ``uno@<learner>`` (e.g. ``uno@kto``): UNO whose Expert clusters answer with that learner's variant
  where `learn --learner` published one (else as ``uno``): the learners compared on the same items.
  Plain ``uno`` serves each late-ensemble cluster's best variant so far (no exploration).
* ``topic_sft``: the naive baseline (`uno_graph.baselines`): one SFT LoRA per known topic, trained on
  that topic's edits, each item answered by its own topic's adapter (`metadata.topic`, an oracle).

Per topic, the summary gives each system's check rate with a 95 % Wilson interval (`ci95`).

Generation is batched: the state machine runs stage by stage over a batch (every item routed, then
one mixed-adapter batch for the Experts and one for the base drafts, then critiques, then revisions),
which gives the same answers as `graph.invoke` per item with greedy decoding. `latency_s` is then the
item's share of each batch's wall time. With ``batch_size=1`` every item goes through the compiled
graph on its own and `latency_s` is the request's own latency.

Every finished (item, system) line is appended and fsynced to the predictions file, so an
interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uno_graph import prompts
from uno_graph.budget import end_at_sentence
from uno_graph.config import EXPERT_OBJECTIVES
from uno_graph.errors import ConfigError, LogFormatError
from uno_graph.logs import LogProblem, _Bad, _messages_only, user_message
from uno_graph.metrics import edit_distance, rouge_l
from uno_graph.nodes.best_of import pick, samples as best_of_samples
from uno_graph.router import RouteDecision
from uno_graph.rules_context import RULES_SYSTEM, RulesInContext  # noqa: F401 - RULES_SYSTEM re-exported
from uno_graph.workdir import read_jsonl

SYSTEMS = ("base", "uno", "uno_single", "rules_in_context", "topic_sft", "uno_user", "uno_query", "uno_greedy")


def is_learner_system(name: str) -> bool:
    """Whether `name` is ``uno@<learner>`` (UNO answering with one learner's Expert variants)."""
    prefix, _, learner = name.partition("@")
    return prefix == "uno" and learner in EXPERT_OBJECTIVES
DEFAULT_SYSTEMS = SYSTEMS[:4]  # topic_sft needs `uno-graph baseline` first



# --------------------------------------------------------------------------------------------------
# Test items
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestItem:
    """One test query: the conversation so far (ending with the user's turn) and what scores it."""

    id: str
    messages: tuple[dict[str, str], ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    user_id: str | None = None

    @property
    def query(self) -> str:
        """What the user asked (`logs.user_message`), as `learn` reads a log's question."""
        return user_message([(m["role"], m["content"]) for m in self.messages])

    def to_dict(self) -> dict[str, Any]:
        """The record a check function receives (the test file's own fields)."""
        return {"id": self.id, "messages": list(self.messages), "metadata": self.metadata,
                "reference": self.reference, "user_id": self.user_id}


def _parse_item(obj: Any, line_no: int) -> TestItem:
    if not isinstance(obj, dict):
        raise _Bad("<record>", f"each line must be a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        messages = _messages_only(obj["messages"], "messages")
    elif isinstance(obj.get("query"), str) and obj["query"].strip():
        messages = ({"role": "user", "content": obj["query"]},)
    else:
        raise _Bad("messages", "is missing; give the conversation as 'messages' (ending with the user's turn) "
                               "or the question as 'query'")
    if messages[-1]["role"] != "user":
        raise _Bad("messages", "must end with the user's turn (the question to answer)")
    reference = obj.get("reference")
    if reference is None and isinstance(obj.get("eval"), dict):  # MemoryBench slice records
        reference = obj["eval"].get("reference")
    if reference is not None and not isinstance(reference, str):
        raise _Bad("reference", f"must be a string, got {type(reference).__name__}")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _Bad("metadata", f"must be an object, got {type(metadata).__name__}")
    rid = obj.get("id", obj.get("test_idx"))
    if rid is None:
        rid = f"line-{line_no}"
    user_id = obj.get("user_id")
    return TestItem(id=str(rid), messages=messages, metadata=metadata, reference=reference or None,
                    user_id=None if user_id is None else str(user_id))


def read_testset(path: str | Path) -> tuple[list[TestItem], list[LogProblem]]:
    """Read a JSONL test set; bad lines are reported (file, line, field) and the rest kept.

    Raises:
        LogFormatError: the file is missing, has no valid item, or repeats an id.
    """
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"test set {str(path)!r} does not exist")
    items: list[TestItem] = []
    problems: list[LogProblem] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = _parse_item(json.loads(line), line_no)
            except json.JSONDecodeError as exc:
                problems.append(LogProblem(str(path), line_no, "<json>", f"not valid JSON ({exc.msg})"))
                continue
            except _Bad as bad:
                problems.append(LogProblem(str(path), line_no, bad.field, bad.message))
                continue
            if item.id in seen:
                problems.append(LogProblem(str(path), line_no, "id", f"repeats the id of line {seen[item.id]}; "
                                                                     "ids must be unique"))
                continue
            seen[item.id] = line_no
            items.append(item)
    if not items:
        shown = "; ".join(str(p) for p in problems[:3]) or "the file is empty"
        raise LogFormatError(f"no valid test item in {str(path)!r}: {shown}")
    return items, problems


# --------------------------------------------------------------------------------------------------
# Check functions
# --------------------------------------------------------------------------------------------------


def load_callable(spec: str) -> Callable[..., Any]:
    """`package.module:function` or `path/to/file.py:function`."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"check {spec!r} must look like 'module:function' or 'path/to/file.py:function'")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ConfigError(f"check file {module_name!r} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"uno_graph_check_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        sys.modules[mod_spec.name] = module  # type: ignore[union-attr]
        mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import check module {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{module_name!r} has no function {attr!r}")
    return fn


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    raise ConfigError(f"a check function must return a bool or a number, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Running the systems
# --------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    text: str
    route: str
    cluster: str | None = None
    adapter: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    latency_s: float = 0.0

    def spend(self, message: Any, seconds: float) -> None:
        usage = getattr(message, "usage_metadata", None) or {}
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.calls += 1
        self.latency_s += seconds


def _generate(model: Any, conversations: list[list[dict[str, str]]], adapters: list[str | None],
              max_new_tokens: int | None = None) -> tuple[list[Any], float]:
    """One batched call when the model can batch (UnoChatModel), else one call per conversation."""
    start = time.perf_counter()
    if not conversations:
        return [], 0.0
    budget = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    if hasattr(model, "generate_batch"):
        replies = model.generate_batch(conversations, adapters=adapters, **budget)
    else:
        replies = [model.invoke(c, adapter=a, **budget) for c, a in zip(conversations, adapters)]
    return replies, (time.perf_counter() - start) / len(conversations)


class SystemRunner:
    """Answers test items as each evaluated system would, in batches."""

    def __init__(self, system: Any, *, rules_k_clusters: int = 2, max_rules: int = 8) -> None:
        self.system = system
        self.model, self.router, self.store = system.model, system.router, system.store
        self.rules_k_clusters, self.max_rules = rules_k_clusters, max_rules
        self.rules = RulesInContext(self.store, self.router.embedder, k_clusters=rules_k_clusters, max_rules=max_rules)
        self.best_of = system.best_of() if callable(getattr(system, "best_of", None)) else None  # as the graph's

    # -- the UNO state machine, stage by stage over a batch ----------------------------------------
    def _uno(self, items: Sequence[TestItem], mode: str) -> list[Answer]:
        start = time.perf_counter()
        by_user = {"uno_user": True, "uno_query": False}.get(mode)  # None: as the work directory's config says
        learner = mode.partition("@")[2] or None  # uno@<learner>: that learner's Expert variants
        decisions: list[RouteDecision] = [self.router.route(item.query, item.user_id, by_user=by_user, explore=False,
                                                            learner=learner) for item in items]
        route_s = (time.perf_counter() - start) / len(items)
        answers = [Answer("", d.route, d.cluster_id, d.adapter, latency_s=route_s) for d in decisions]
        expert = [i for i, d in enumerate(decisions) if d.route == "expert"]
        other = [i for i, d in enumerate(decisions) if d.route != "expert"]
        for budget in sorted({decisions[i].max_new_tokens or 0 for i in expert}):  # one batch per answer budget
            group = [i for i in expert if (decisions[i].max_new_tokens or 0) == budget]
            replies, share = _generate(self.model, [list(items[i].messages) for i in group],
                                       [decisions[i].adapter for i in group], budget or None)
            for i, reply in zip(group, replies):
                answers[i].text, _ = end_at_sentence(str(reply.content), reply.response_metadata.get("finish_reason"))
                answers[i].spend(reply, share)
                if mode != "uno_greedy":  # uno_greedy: the Experts' greedy answer alone, to compare with
                    self._best_of(items[i], answers[i], reply, decisions[i].adapter, budget or None)
        replies, share = _generate(self.model, [list(items[i].messages) for i in other], [None] * len(other))
        for i, reply in zip(other, replies):
            answers[i].text = str(reply.content)
            answers[i].spend(reply, share)
        if mode == "uno_single":
            for i in other:
                answers[i].route = "base" if decisions[i].route == "critic" else answers[i].route
                answers[i].adapter = None
            return answers
        critic = [i for i in other if decisions[i].route == "critic"]
        crits, share = _generate(self.model, [prompts.critic_messages(items[i].query, answers[i].text) for i in critic],
                                 [decisions[i].adapter for i in critic])
        for i, reply in zip(critic, crits):
            answers[i].spend(reply, share)
        revisions, share = _generate(self.model, [prompts.revise_messages(items[i].query, answers[i].text, str(c.content))
                                                  for i, c in zip(critic, crits)], [None] * len(critic))
        for i, reply in zip(critic, revisions):
            answers[i].text = str(reply.content)
            answers[i].spend(reply, share)
        return answers

    def _best_of(self, item: TestItem, answer: Answer, greedy: Any, adapter: str | None, budget: int | None) -> None:
        """As the graph's expert_generate: where the adapter has a want model, the best of n candidates
        (`uno_graph.nodes.best_of`); the samples' tokens and time count towards the answer."""
        scorer = self.best_of.scorer(adapter) if self.best_of is not None else None
        if scorer is None:
            return
        start = time.perf_counter()
        extra = best_of_samples(self.model, list(item.messages), adapter, self.best_of, budget)
        chosen = pick(scorer, [greedy, *extra])
        answer.text = chosen.text
        for reply in extra:
            answer.spend(reply, (time.perf_counter() - start) / len(extra))

    def _uno_graph(self, items: Sequence[TestItem], mode: str) -> list[Answer]:
        """batch_size 1: each item through the compiled graph (the served code path, real latency)."""
        from uno_graph.state import UnoContext

        graph = self.system.graph(mode)
        out = []
        for item in items:
            start = time.perf_counter()
            reply = graph.invoke({"messages": list(item.messages)}, context=UnoContext(user_id=item.user_id))["messages"][-1]
            meta, usage = reply.response_metadata, reply.usage_metadata or {}
            out.append(Answer(str(reply.content), meta.get("uno_route", "base"), meta.get("uno_cluster"),
                              meta.get("uno_adapter"), int(usage.get("input_tokens", 0)),
                              int(usage.get("output_tokens", 0)), int(meta.get("uno_calls", 1)),
                              time.perf_counter() - start))
        return out

    def _topic_sft(self, items: Sequence[TestItem]) -> list[Answer]:
        from uno_graph.baselines import topic_dir

        adapters: list[str | None] = []
        for item in items:
            topic = item.metadata.get("topic")
            path = topic_dir(self.system.root, str(topic)) if topic is not None else None
            if path is None or not (path / "manifest.json").exists():
                adapters.append(None)
                continue
            name = f"topic-sft/{path.parent.name}"
            if name not in self.model.adapters:
                self.model.load_adapter(name, path)
            adapters.append(name)
        replies, share = _generate(self.model, [list(item.messages) for item in items], adapters)
        answers = []
        for reply, adapter in zip(replies, adapters):
            answer = Answer(str(reply.content), "topic" if adapter else "base", adapter=adapter)
            answer.spend(reply, share)
            answers.append(answer)
        return answers

    def _base(self, items: Sequence[TestItem]) -> list[Answer]:
        replies, share = _generate(self.model, [list(item.messages) for item in items], [None] * len(items))
        answers = []
        for reply in replies:
            answer = Answer(str(reply.content), "base")
            answer.spend(reply, share)
            answers.append(answer)
        return answers

    def rules_for_query(self, query: str) -> tuple[list[str], str | None]:
        """The nearest clusters' rules, closest to the query first (`uno_graph.rules_context`)."""
        found = self.rules.retrieve(query)
        return list(found.rules), found.cluster_id

    def _rules_in_context(self, items: Sequence[TestItem]) -> list[Answer]:
        start = time.perf_counter()
        retrieved = [self.rules.retrieve(item.query, item.user_id) for item in items]
        retrieve_s = (time.perf_counter() - start) / len(items)
        conversations = []
        for item, found in zip(items, retrieved):
            prompt = found.system_prompt()
            system = [{"role": "system", "content": prompt}] if prompt else []
            conversations.append(system + list(item.messages))
        replies, share = _generate(self.model, conversations, [None] * len(items))
        answers = []
        for reply, found in zip(replies, retrieved):
            answer = Answer(str(reply.content), "rules", found.cluster_id, latency_s=retrieve_s)
            answer.spend(reply, share)
            answers.append(answer)
        return answers

    def answer(self, system_name: str, items: Sequence[TestItem], *, batched: bool = True) -> list[Answer]:
        if not items:
            return []
        if system_name == "base":
            return self._base(items) if batched else [a for item in items for a in self._base([item])]
        if system_name in ("uno", "uno_single"):
            return self._uno(items, system_name) if batched else self._uno_graph(items, system_name)
        if system_name in ("uno_user", "uno_query", "uno_greedy") or is_learner_system(system_name):
            return self._uno(items, system_name)
        if system_name == "topic_sft":
            return self._topic_sft(items)
        if system_name == "rules_in_context":
            return self._rules_in_context(items) if batched else [a for it in items for a in self._rules_in_context([it])]
        raise ConfigError(f"unknown system {system_name!r}; choose from {list(SYSTEMS)}")


# --------------------------------------------------------------------------------------------------
# Pairwise LLM judge (win rate against base)
# --------------------------------------------------------------------------------------------------

JUDGE_PAIR = """Which answer serves the user better? Judge helpfulness, correctness and how well the answer fits what the user asked for.

## Question
{query}

## Answer A
{a}

## Answer B
{b}

Reply with one letter only: A, B, or T for a tie."""


def _verdict(text: str) -> str | None:
    for ch in text.strip().upper():
        if ch in "ABT":
            return ch
        if ch.isalpha():
            return None
    return None


def pairwise_win_rate(judge: Any, queries: list[str], base: list[str], other: list[str]) -> dict[str, Any]:
    """Win rate of `other` over `base` with any LangChain chat model as judge.

    Each pair is judged twice with the answers swapped (position bias cancels): a win counts 1, a tie
    or a split verdict 0.5, a loss 0; pairs with no readable verdict in either order are left out.
    """
    prompts_ = [[{"role": "user", "content": JUDGE_PAIR.format(query=q, a=b, b=o)}] for q, b, o in zip(queries, base, other)]
    prompts_ += [[{"role": "user", "content": JUDGE_PAIR.format(query=q, a=o, b=b)}] for q, b, o in zip(queries, base, other)]
    replies = judge.batch(prompts_)
    n = len(queries)
    scores = []
    for k in range(n):
        first, second = _verdict(str(replies[k].content)), _verdict(str(replies[n + k].content))
        votes = [{"B": 1.0, "A": 0.0, "T": 0.5}[first]] if first else []  # other is B in the first order
        votes += [{"A": 1.0, "B": 0.0, "T": 0.5}[second]] if second else []
        if votes:
            scores.append(sum(votes) / len(votes))
    return {"win_rate": sum(scores) / len(scores) if scores else None, "judged": len(scores), "pairs": n}


# --------------------------------------------------------------------------------------------------
# The evaluation run
# --------------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    problems: list[LogProblem]
    out: Path


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _check_item(check: Callable[..., Any] | None, item: TestItem, answer: str) -> float | None:
    return None if check is None else _score(check(item.to_dict(), answer))


def evaluate(workdir: str | Path | None, testset: str | Path, out: str | Path, *,
             systems: Sequence[str] = DEFAULT_SYSTEMS, check: str | Callable[..., Any] | None = None,
             dataset_check: str | Callable[..., Any] | None = None, judge: Any = None, batch_size: int = 8,
             system: Any = None, progress: bool = True, plot_dir: str | Path | None = None) -> EvalResult:
    """Answer every test item with every system, write `out` (JSONL) and `out`.summary.json.

    Args:
        workdir: a learned work directory (or pass a loaded `system`, a `UnoSystem`).
        check: per-item check, `fn(item: dict, answer: str) -> bool | float` (or "module:function").
        dataset_check: per-system check over the whole set, `fn(items, answers) -> float | dict`.
        judge: any LangChain chat model; adds each system's pairwise win rate against `base`.
        batch_size: items per batched generation; 1 runs each item through the compiled graph.
    """
    from tqdm.auto import tqdm

    unknown = [s for s in systems if s not in SYSTEMS and not is_learner_system(s)]
    if unknown or not systems:
        raise ConfigError(f"unknown system(s) {unknown}; choose from {list(SYSTEMS)} or uno@<learner> "
                          f"(a learner of `learn --learner`: {list(EXPERT_OBJECTIVES)})")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    check_fn = load_callable(check) if isinstance(check, str) else check
    dataset_fn = load_callable(dataset_check) if isinstance(dataset_check, str) else dataset_check
    items, problems = read_testset(testset)
    if system is None:
        from uno_graph.graph import UnoSystem

        system = UnoSystem.load(workdir)
    runner = SystemRunner(system)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_id = {item.id: item for item in items}
    done = {(r["id"], r["system"]) for r in read_jsonl(out) if r.get("id") in by_id and r.get("query") == by_id[r["id"]].query}
    if out.exists() and not done:
        out.unlink()  # another test set's predictions: start over rather than mix
    if out.exists():
        _drop_torn_tail(out)
    total = len(items) * len(systems)
    bar = tqdm(total=total, initial=len(done), desc="eval", unit="answer", disable=not progress)
    for name in systems:
        todo = [item for item in items if (item.id, name) not in done]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            answers = runner.answer(name, chunk, batched=batch_size > 1)
            rows = []
            for item, ans in zip(chunk, answers):
                rows.append({"id": item.id, "system": name, "query": item.query, "answer": ans.text,
                             "route": ans.route, "cluster": ans.cluster, "adapter": ans.adapter,
                             "input_tokens": ans.input_tokens, "output_tokens": ans.output_tokens, "calls": ans.calls,
                             "latency_s": round(ans.latency_s, 4), "topic": item.metadata.get("topic"),
                             "check": _check_item(check_fn, item, ans.text),
                             "rouge_l": None if item.reference is None else round(rouge_l(ans.text, item.reference), 4),
                             "edit_distance": None if item.reference is None
                             else round(edit_distance(ans.text, item.reference), 4)})
            _append(out, rows)
            bar.update(len(rows))
    bar.close()
    rows = [r for r in read_jsonl(out) if r["id"] in by_id and r["system"] in systems]
    summary = summarize(rows, systems, items, dataset_fn=dataset_fn)
    if judge is not None:
        _add_judge(summary, rows, systems, judge)
    summary["problems"] = [str(p) for p in problems]
    Path(f"{out}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if plot_dir is not None:
        from uno_graph.plots import plot_summary

        summary["plots"] = [str(p) for p in plot_summary(summary, plot_dir)]
    return EvalResult(rows=rows, summary=summary, problems=problems, out=out)


def _drop_torn_tail(out: Path) -> None:
    """Drop a torn last line (a killed run) so appends start on a clean line."""
    raw = out.read_text(encoding="utf-8")
    if raw and not raw.endswith("\n"):
        out.write_text(raw[: raw.rfind("\n") + 1], encoding="utf-8")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ci95(values: list[float]) -> list[float] | None:
    """Two-sided 95 % Wilson interval of a check rate (scores in [0, 1] count as fractional passes)."""
    from uno_graph.verify import wilson_bounds

    if not values:
        return None
    return [round(b, 4) for b in wilson_bounds(sum(values), len(values), confidence=0.975)]


def summarize(rows: list[dict[str, Any]], systems: Sequence[str], items: Sequence[TestItem], *,
              dataset_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Per system: check rate, ROUGE-L and edit distance to the references, tokens (and extra input tokens
    over base), latency; per topic too."""
    by_system: dict[str, list[dict[str, Any]]] = {s: [r for r in rows if r["system"] == s] for s in systems}
    base_in = {r["id"]: r["input_tokens"] for r in by_system.get("base", [])}
    item_by_id = {item.id: item for item in items}
    out: dict[str, Any] = {"n_items": len(items), "systems": {}, "topics": {}}
    for name, rs in by_system.items():
        checks = [r["check"] for r in rs if r.get("check") is not None]
        rouge = [r["rouge_l"] for r in rs if r.get("rouge_l") is not None]
        distance = [r["edit_distance"] for r in rs if r.get("edit_distance") is not None]
        extra = [r["input_tokens"] - base_in[r["id"]] for r in rs if r["id"] in base_in]
        seconds = sum(r["latency_s"] for r in rs)
        out_tokens = sum(r["output_tokens"] for r in rs)
        row = {"n": len(rs), "check": _mean(checks), "ci95": _ci95(checks), "rouge_l": _mean(rouge),
               "edit_distance": _mean(distance),  # the user-edits paper's cost: lower is better
               "input_tokens": _mean([r["input_tokens"] for r in rs]),
               "extra_input_tokens": _mean(extra), "output_tokens": _mean([r["output_tokens"] for r in rs]),
               "latency_s": _mean([r["latency_s"] for r in rs]),
               "tokens_per_s": out_tokens / seconds if seconds > 0 else None,
               "routes": {k: sum(1 for r in rs if r["route"] == k) for k in sorted({r["route"] for r in rs})}}
        if dataset_fn is not None:
            ordered = [r for r in rs if r["id"] in item_by_id]
            value = dataset_fn([item_by_id[r["id"]].to_dict() for r in ordered], [r["answer"] for r in ordered])
            row["dataset_check"] = value if isinstance(value, dict) else _score(value)
        out["systems"][name] = row
    topics = sorted({r["topic"] for r in rows if r.get("topic") is not None})
    for topic in topics:
        out["topics"][topic] = {}
        for name, rs in by_system.items():
            mine = [r for r in rs if r.get("topic") == topic]
            checks = [r["check"] for r in mine if r.get("check") is not None]
            extra = [r["input_tokens"] - base_in[r["id"]] for r in mine if r["id"] in base_in]
            out["topics"][topic][name] = {"n": len(mine), "check": _mean(checks), "ci95": _ci95(checks),
                                          "extra_input_tokens": _mean(extra),
                                          "routes": {k: sum(1 for r in mine if r["route"] == k)
                                                     for k in sorted({r["route"] for r in mine})}}
    return out


def _add_judge(summary: dict[str, Any], rows: list[dict[str, Any]], systems: Sequence[str], judge: Any) -> None:
    base = {r["id"]: r for r in rows if r["system"] == "base"}
    if not base:
        raise ConfigError("the LLM judge compares against base: include 'base' in the systems")
    for name in systems:
        if name == "base":
            continue
        mine = [r for r in rows if r["system"] == name and r["id"] in base]
        result = pairwise_win_rate(judge, [r["query"] for r in mine], [base[r["id"]]["answer"] for r in mine],
                                   [r["answer"] for r in mine])
        summary["systems"][name]["judge_win_rate"] = result["win_rate"]
        summary["systems"][name]["judge_pairs"] = f"{result['judged']}/{result['pairs']}"


def _fmt(value: Any, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text tables: systems, then satisfaction per topic (the demo's before/after)."""
    systems = list(summary["systems"])
    lines = [f"{'system':<18}{'n':>4}{'check':>8}{'ROUGE-L':>9}{'edit dist':>10}{'judge':>7}{'in tok':>8}{'extra in':>9}"
             f"{'out tok':>8}{'s/item':>8}{'tok/s':>7}  routes"]
    for name in systems:
        s = summary["systems"][name]
        routes = " ".join(f"{k}:{v}" for k, v in s["routes"].items())
        lines.append(f"{name:<18}{s['n']:>4}{_fmt(s['check'], '{:.0%}'):>8}{_fmt(s['rouge_l'], '{:.3f}'):>9}"
                     f"{_fmt(s.get('edit_distance'), '{:.3f}'):>10}"
                     f"{_fmt(s.get('judge_win_rate')):>7}{_fmt(s['input_tokens'], '{:.0f}'):>8}"
                     f"{_fmt(s['extra_input_tokens'], '{:+.0f}'):>9}{_fmt(s['output_tokens'], '{:.0f}'):>8}"
                     f"{_fmt(s['latency_s']):>8}{_fmt(s['tokens_per_s'], '{:.1f}'):>7}  {routes}")
    if summary["topics"]:
        lines += ["", "satisfaction per topic (share of answers passing the topic's check; extra input tokens vs base)",
                  f"{'topic':<18}" + "".join(f"{name:>26}" for name in systems)]
        for topic, per in summary["topics"].items():
            cells = []
            for name in systems:
                t = per.get(name, {})
                ci = t.get("ci95")
                band = f" [{ci[0]:.0%}-{ci[1]:.0%}]" if ci else ""
                cells.append(f"{_fmt(t.get('check'), '{:.0%}')}{band} ({_fmt(t.get('extra_input_tokens'), '{:+.0f}')})")
            lines.append(f"{topic:<18}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


__all__ = ["DEFAULT_SYSTEMS", "SYSTEMS", "EvalResult", "SystemRunner", "TestItem", "evaluate", "format_summary", "load_callable",
           "pairwise_win_rate", "read_testset", "summarize"]
