"""`learn`: from log files to a learned system in a work directory (the offline half of UNO).

    read logs (+ redact) → distill → verify → pairs → cluster (+ Chroma) → gap → train + verify adapters → registry

Every stage writes JSONL under `<workdir>/stages/` and a `.done` marker naming its inputs, so a
rerun skips finished stages, and a stage killed midway continues from its last written record.
Adapters are trained in `<workdir>/tmp/` and published into `<workdir>/adapters/` only when
complete; the cluster table in Chroma names an adapter only after it is published.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from uno_graph import __version__, prompts
from uno_graph.config import UnoConfig
from uno_graph.logs import LogReadReport, read_logs
from uno_graph.workdir import Workdir, atomic_write_text, fingerprint

log = logging.getLogger(__name__)


@dataclass
class LearnResult:
    workdir: Path
    report: LogReadReport
    pair_reasons: dict[str, int]
    clusters: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, float] | None = None
    purity: dict[str, Any] | None = None


class _Run:
    """State shared by the stages of one `learn` call (models are loaded on first use)."""

    def __init__(self, wd: Workdir, config: UnoConfig, teacher, judge, progress: bool) -> None:
        self.wd, self.config, self.progress = wd, config, progress
        self._teacher, self._judge = teacher, judge
        self._serving = None
        self._embedder = None
        self._scorer = None
        self.timings: dict[str, float] = {}

    @property
    def serving(self):
        if self._serving is None:
            from uno_graph.chat_model import UnoChatModel

            self._serving = UnoChatModel.from_pretrained(self.config.base_model, max_new_tokens=self.config.max_new_tokens)
        return self._serving

    @property
    def teacher(self):
        """The teacher chat model, or None: the users' own words (`distill`)."""
        if self._teacher == "serving":  # the serving model itself, with the teacher's budget
            from uno_graph.chat_model import UnoChatModel

            self._teacher = UnoChatModel.from_pretrained(self.config.base_model, batch_size=16,
                                                         max_new_tokens=self.config.teacher_max_new_tokens)
            self._default_teacher = True
        return self._teacher

    @property
    def teacher_id(self) -> str:
        t = self._teacher
        if t is None:
            return "users-words"
        if t == "serving" or getattr(self, "_default_teacher", False):
            return "serving-model"
        return f"{type(t).__name__}:{getattr(t, 'model_name', '') or getattr(t, 'model', '')}"

    @property
    def embedder(self):
        if self._embedder is None:
            from uno_graph.embeddings import shared_embedder

            self._embedder = shared_embedder(self.config.embedder)
        return self._embedder

    @property
    def likelihood_scorer(self):
        from uno_graph.gap import LikelihoodScorer

        lm = self.serving._engine.loaded  # the base model; adapter layers stay disabled outside a call
        return LikelihoodScorer(lm.model, lm.tokenizer, max_answer_tokens=self.config.train.max_answer_tokens)

    @property
    def scorer(self):
        if self._scorer is None:
            from uno_graph.gap import YesNoScorer
            from uno_graph.models import load_model

            lm = load_model(self.config.base_model)
            self._scorer = YesNoScorer(lm.model, lm.tokenizer)
        return self._scorer

    def timed(self, name: str, start: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 2)


def learn(log_paths: list[str | Path], workdir: str | Path, config: UnoConfig | None = None, *,
          teacher=None, judge=None, store=None, progress: bool = True) -> LearnResult:
    """Learn adapters and a routing table from user logs.

    Args:
        log_paths: JSONL log files (DESIGN.md format or MemoryBench dialogs).
        workdir: where everything is written; rerunning resumes.
        config: thresholds and training settings (saved to `system.json`).
        teacher: LangChain chat model for distilling rules and revising answers; "serving" = the
            serving model itself; None (default) = no teacher: the users' own follow-up sentences are
            the rules and nothing is revised. The embedded 135M model gave 1 usable rule and no
            verified revision for 110 logs of examples/heldout while taking most of distill's time.
        judge: the validation judge (default: `want.WantJudge`, learned per cluster and fold from the
            answers its users endorsed and rejected; `verify.ContrastJudge` compares with each log's own
            edit; `LLMJudge(model)` is the paper's rubric judge).
        store: a `UnoStore` (default: embedded Chroma in `<workdir>/chroma`).

    Example:
        >>> result = learn(["examples/logs.jsonl"], "runs/demo")      # doctest: +SKIP
    """
    from uno_graph.store import UnoStore
    from uno_graph.want import WantJudge

    config = config or UnoConfig()
    wd = Workdir(workdir).create()
    run = _Run(wd, config, teacher, judge or WantJudge(min_auc=config.min_want_auc), progress)
    _write_system(wd, config)

    t = time.perf_counter()
    report = read_logs(*log_paths)
    for problem in report.problems:
        log.warning("skipped log line: %s", problem)
    records = sorted(report.records, key=lambda r: r.id)
    if config.redact:  # before anything is written or learned from
        from uno_graph.capture.redact import default_redactor

        records = [default_redactor().redact_record(r) for r in records]
    logs_fp = fingerprint([r.to_dict() for r in records])
    run.timed("read", t)

    rows = _distill(run, records, logs_fp)
    decisions = _verify(run, rows)
    pairs = _pairs(run, rows, decisions)
    store = store or UnoStore.persistent(wd.chroma)
    clusters = _cluster(run, rows, pairs, store)
    gaps = _gap(run, clusters, rows, pairs)
    trained = _train(run, clusters, gaps, pairs, rows, store)

    reasons: dict[str, int] = {}
    for d in decisions:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    table = []
    for c in clusters:
        g = gaps.get(c["id"], {})
        tr = trained.get(c["id"], {})
        table.append({"id": c["id"], "size": c["size"], "topics": c.get("topics", {}),
                      "gap": g.get("value"), "decision": g.get("decision", "base"),
                      "route": tr.get("route", "base"), "win_rate": tr.get("win_rate"),
                      "lower_bound": tr.get("lower_bound"), "adapter": tr.get("adapter"),
                      "max_new_tokens": tr.get("max_new_tokens"),
                      "reason": tr.get("reason") or ("" if c["eligible"] else
                                                     f"served by base: {c['size']} logs < min_cluster_size")})
    calibration = (wd.done_info("gap") or {}).get("summary", {}).get("calibration")
    summary = {"logs_read": len(report.records) + len(report.problems) + report.duplicates,
               "logs_kept": len(report.records), "rejected_lines": len(report.problems),
               "duplicates": report.duplicates, "pair_reasons": reasons, "clusters": table,
               "timings_s": run.timings, "gap_calibration": calibration, "cluster_purity": cluster_purity(clusters)}
    atomic_write_text(wd.root / "summary.json", json.dumps(summary, indent=2) + "\n")
    return LearnResult(wd.root, report, reasons, table, run.timings, calibration, summary["cluster_purity"])


def cluster_purity(clusters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How well clusters line up with the logs' `metadata.topic` labels (when the logs have them).

    purity: share of clustered logs in their cluster's majority topic; split_topics: topics whose
    logs are spread over more than one cluster of at least 2 of them."""
    labelled = [c for c in clusters if set(c.get("topics", {})) - {"-"}]
    total = sum(sum(c["topics"].values()) for c in labelled)
    if not total:
        return None
    majority = sum(max(c["topics"].values()) for c in labelled)
    homes: dict[str, int] = {}
    for c in labelled:
        for topic, n in c["topics"].items():
            if n >= 2:
                homes[topic] = homes.get(topic, 0) + 1
    return {"purity": round(majority / total, 4), "clusters": len(labelled), "topics": len(homes),
            "split_topics": sorted(t for t, k in homes.items() if k > 1)}


def _write_system(wd: Workdir, config: UnoConfig) -> None:
    system = {"uno_graph_version": __version__, "base_model": config.base_model,
              "embedder": config.embedder, "config": config.to_dict()}
    atomic_write_text(wd.system_file, json.dumps(system, indent=2) + "\n")


# -- stages --------------------------------------------------------------------------------------

def _distill(run: _Run, records, logs_fp: str) -> list[dict[str, Any]]:
    from uno_graph.distill import STAGE, distill

    t = time.perf_counter()
    inputs = fingerprint(logs_fp, run.teacher_id, run.config.teacher_max_new_tokens)
    if run.wd.begin(STAGE, inputs):
        rows = distill(records, run.teacher, run.wd, batch_size=16, progress=run.progress)
        sources: dict[str, int] = {}
        for r in rows:
            sources[r["rule_source"]] = sources.get(r["rule_source"], 0) + 1
        run.wd.mark_done(STAGE, inputs, {"rows": len(rows), "rule_sources": sources})
    run.timed("distill", t)
    return run.wd.read(STAGE)


def _verify(run: _Run, rows) -> list[dict[str, Any]]:
    from uno_graph.verify import STAGE, LLMJudge, verify_pairs

    t = time.perf_counter()
    inputs = fingerprint(run.wd.output_fingerprint("distill"), run.teacher_id, run.config.judge_max_new_tokens)
    if run.wd.begin(STAGE, inputs):
        judge = LLMJudge(run.teacher, max_tokens=run.config.judge_max_new_tokens) if run.teacher is not None else None
        decisions = verify_pairs(rows, judge, run.wd, batch_size=16, progress=run.progress)
        run.wd.mark_done(STAGE, inputs, {"decisions": len(decisions)})
    run.timed("verify", t)
    return run.wd.read(STAGE)


def _pairs(run: _Run, rows, decisions) -> list[dict[str, Any]]:
    from uno_graph.pairs import STAGE, build_pairs

    inputs = fingerprint(run.wd.output_fingerprint("distill"), run.wd.output_fingerprint("verify"))
    if run.wd.begin(STAGE, inputs):
        pairs = build_pairs(rows, decisions, run.wd)
        run.wd.mark_done(STAGE, inputs, {"pairs": len(pairs)})
    return run.wd.read(STAGE)


def _cluster(run: _Run, rows, pairs, store) -> list[dict[str, Any]]:
    """Cluster every log with a signal; store centroids (route base until an adapter is published)."""
    from uno_graph.cluster import cluster_logs

    t = time.perf_counter()
    stage = "clusters"
    population = [r for r in rows if r["rules"] or r["rule_source"] == "satisfied" or r.get("edited")]
    inputs = fingerprint([(r["id"], r["rules"]) for r in population], run.config.embedder,
                         run.config.cluster_on, run.config.cluster_threshold, run.config.min_cluster_size, run.config.route_margin,
                         run.config.merge_similarity, run.config.join_similarity)
    if run.wd.begin(stage, inputs):
        previous = {c["id"]: c["members"] for c in _previous_clusters(run.wd)}
        ids = [r["id"] for r in population]
        emb = run.embedder
        qv = emb.encode([r["query"] for r in population])
        rv = emb.encode(["\n".join(r["rules"]) for r in population])
        found = cluster_logs(ids, qv, rv, [r["rules"] for r in population], run.config.cluster_threshold, previous,
                             margin=run.config.route_margin, merge_similarity=run.config.merge_similarity,
                             min_size=run.config.min_cluster_size, join_similarity=run.config.join_similarity,
                             on=run.config.cluster_on)
        by_id = {r["id"]: r for r in population}
        out = []
        for c in found:
            topics: dict[str, int] = {}
            for m in c.members:
                topic = str(by_id[m].get("metadata", {}).get("topic", "-"))
                topics[topic] = topics.get(topic, 0) + 1
            out.append({"id": c.id, "members": c.members, "size": c.size, "radius": round(c.radius, 4),
                        "eligible": c.size >= run.config.min_cluster_size, "topics": topics,
                        "rules": c.rules[:20], "centroid": [round(float(x), 6) for x in c.centroid]})
        eligible = [c for c in out if c["eligible"]]
        for c in eligible:
            store.put_cluster(c["id"], c["centroid"], {"size": c["size"], "radius": c["radius"],
                                                       "route": "base", "status": "pending"})
        store.remove_clusters({c["id"] for c in eligible})
        rule_rows, rule_texts = [], []
        for c in eligible:
            for m in c["members"]:
                for k, rule in enumerate(by_id[m]["rules"]):
                    rule_rows.append({"id": f"{m}#{k}", "rule": rule, "cluster_id": c["id"], "log_id": m,
                                      "user_id": by_id[m].get("user_id")})
                    rule_texts.append(rule)
        store.put_rules(rule_rows, emb.encode(rule_texts))
        run.wd.write(stage, out)
        run.wd.mark_done(stage, inputs, {"clusters": len(out), "eligible": len(eligible)})
    run.timed("cluster", t)
    return run.wd.read(stage)


def _previous_clusters(wd: Workdir) -> list[dict[str, Any]]:
    path = wd.stage_path("clusters")
    return wd.read("clusters") if path.exists() else []


def _gap(run: _Run, clusters, rows, pairs) -> dict[str, dict[str, Any]]:
    """Per eligible cluster: the gap test's choice of the path to try first (`decision`)."""
    from uno_graph.gap import calibrate, calibrate_likelihood, cluster_gap, cluster_likelihood_gap

    t = time.perf_counter()
    stage = "gap"
    cfg = run.config
    by_id = {r["id"]: r for r in rows}
    pair_by_id = {p["id"]: p for p in pairs}
    eligible = [c for c in clusters if c["eligible"]]
    inputs = fingerprint(run.wd.output_fingerprint("clusters"), run.wd.output_fingerprint("pairs"), cfg.base_model,
                         cfg.gap_signal, cfg.gap_threshold, cfg.min_gap_separation, cfg.min_gap_auc)
    if run.wd.begin(stage, inputs):
        done = {g["cluster_id"] for g in run.wd.read(stage)}
        likelihood = cfg.gap_signal == "likelihood"
        scorer = run.likelihood_scorer if likelihood else run.scorer
        cal, threshold, informative = None, cfg.gap_threshold, True
        if threshold is None:
            members = [by_id[m] for c in eligible for m in c["members"]]
            if likelihood:
                cal = calibrate_likelihood(scorer, [{"prompt": r["prompt"], "answer": r["answer"]} for r in members])
                informative = cal.auc >= cfg.min_gap_auc
            else:
                cal = calibrate(scorer, [r["query"] for r in members])
                informative = cal.separation >= cfg.min_gap_separation
            threshold = cal.threshold
            if not informative:
                log.warning("the gap scorer cannot order its calibration anchors (%s): the gap test decides nothing, "
                            "every cluster tries an Expert first", cal.to_dict())
        with run.wd.append(stage) as out:
            for c in tqdm(eligible, desc="gap", unit="cluster", disable=not run.progress):
                if c["id"] in done:
                    continue
                if likelihood:
                    stats = cluster_likelihood_gap(scorer, [pair_by_id[m] for m in c["members"] if m in pair_by_id])
                    value = stats["gap"]
                else:
                    stats = cluster_gap(scorer, [by_id[m] for m in c["members"]])
                    value = stats["min_novelty"]
                high_gap = bool(stats["scored_logs"]) and value >= threshold
                decision = "critic" if high_gap and informative else "expert"
                out.write({"cluster_id": c["id"], "signal": cfg.gap_signal, "value": round(value, 4),
                           **{k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()},
                           "threshold": round(threshold, 4), "decision": decision, "informative": informative})
        run.wd.mark_done(stage, inputs, {"threshold": threshold, "calibration": cal.to_dict() if cal else None,
                                         "informative": informative, "signal": cfg.gap_signal})
    run.timed("gap", t)
    return {g["cluster_id"]: g for g in run.wd.read(stage)}


def _train(run: _Run, clusters, gaps, pairs, rows, store) -> dict[str, dict[str, Any]]:
    """Per eligible cluster: Expert (verified) for low gap, else — or if the Expert fails — a Critic."""
    stage = "train"
    cfg = run.config
    inputs = fingerprint(run.wd.output_fingerprint("gap"), run.wd.output_fingerprint("pairs"),
                         cfg.lora, cfg.train, cfg.win_rate_threshold, cfg.bleu_threshold, cfg.val_folds,
                         cfg.min_win_lower_bound, cfg.win_confidence, cfg.min_judgeable,
                         cfg.answer_budget, cfg.budget_margin, cfg.max_new_tokens, cfg.val_every,
                         cfg.expert_objective, type(run._judge).__name__, cfg.min_want_auc)
    run.wd.begin(stage, inputs)
    done = {r["cluster_id"]: r for r in run.wd.read(stage)}
    pair_by_id = {p["id"]: p for p in pairs}
    row_by_id = {r["id"]: r for r in rows}
    todo = [c for c in clusters if c["eligible"] and c["id"] not in done]
    with run.wd.append(stage) as out:
        for c in tqdm(todo, desc="train", unit="cluster", disable=not run.progress):
            t = time.perf_counter()
            result = _train_cluster(run, c, gaps[c["id"]]["decision"], pair_by_id, row_by_id)
            result["seconds"] = round(time.perf_counter() - t, 1)
            out.write(result)
            shutil.rmtree(run.wd.root / "tmp" / c["id"], ignore_errors=True)  # fold and epoch adapters
            done[c["id"]] = result
            run.timed("train", t)
            _apply_route(store, result)
    for result in done.values():  # the table follows what is published (also after a resumed run)
        _apply_route(store, result)
    shutil.rmtree(run.wd.root / "tmp", ignore_errors=True)
    run.wd.mark_done(stage, inputs, {"clusters": len(done)})
    return done


def _apply_route(store, result: dict[str, Any]) -> None:
    store.update_cluster(result["cluster_id"], route=result["route"], adapter=result.get("adapter") or "",
                         status="ready", win_rate=result.get("win_rate"), lower_bound=result.get("lower_bound"),
                         reason=result.get("reason", ""), max_new_tokens=result.get("max_new_tokens") or 0)


def _train_cluster(run: _Run, cluster, decision: str, pair_by_id, row_by_id) -> dict[str, Any]:
    """Validate the Expert and Critic paths on held-out folds (the gap test's choice first) and
    publish the adapter of the first path that beats base; else the cluster is served by base."""
    from uno_graph.adapters.validate import ClusterData, PathValidator

    cfg = run.config
    data = ClusterData(pairs=[pair_by_id[i] for i in cluster["members"] if i in pair_by_id and pair_by_id[i]["chosen"]],
                       rows=[row_by_id[i] for i in cluster["members"] if i in row_by_id])
    validator = PathValidator(run.serving, run._judge, lambda *a: _fit(run, cluster["id"], *a),
                              folds=cfg.val_folds, seed=cfg.train.seed, win_rate_threshold=cfg.win_rate_threshold,
                              min_win_lower_bound=cfg.min_win_lower_bound, confidence=cfg.win_confidence,
                              bleu_threshold=cfg.bleu_threshold, min_judgeable=cfg.min_judgeable,
                              val_every=cfg.val_every, expert_objective=cfg.expert_objective)
    budget = None
    if cfg.answer_budget:
        from uno_graph.budget import answer_budget

        tokenizer = run.serving._engine.tokenizer
        budget = answer_budget([len(tokenizer.encode(p["chosen"], add_special_tokens=False)) for p in data.pairs],
                               cfg.max_new_tokens, margin=cfg.budget_margin)
    route, verdicts = validator.choose(cluster["id"], data, decision, budget)
    result: dict[str, Any] = {"cluster_id": cluster["id"], "decision": decision, "route": route,
                              "max_new_tokens": budget if route == "expert" else None,
                              **{v.role: v.to_dict() for v in verdicts}}
    if route == "base":
        result["reason"] = "served by base: " + "; ".join(f"{v.role} {v.reason}" for v in verdicts)
        return result
    won = next(v for v in verdicts if v.role == route)
    if route == "expert":
        examples, objective, stop = data.expert_examples(), cfg.expert_objective, won.epoch
    else:
        examples, objective, stop = data.critic_examples(), "sft", None
    trained = _fit(run, cluster["id"], route, objective, examples, "final", stop)
    metrics = {"win_rate": won.win_rate, "lower_bound": won.lower_bound, "n_val": won.n_val, "epoch": won.epoch,
               "final_loss": trained.final_loss, "train_seconds": trained.train_seconds}
    adapter = _publish(run, cluster["id"], route, objective, examples, trained.epoch_dirs[-1], metrics)
    result.update(adapter=adapter, win_rate=won.win_rate, lower_bound=won.lower_bound,
                  reason=f"{route}: {won.reason}")
    return result


def _fit(run: _Run, cluster_id: str, role: str, objective: str, examples, tag: str = "final",
         stop_after_epoch: int | None = None):
    from uno_graph.adapters.train import train_adapter
    from uno_graph.models import resolve_model_path

    tmp = run.wd.root / "tmp" / cluster_id / role / tag
    shutil.rmtree(tmp, ignore_errors=True)
    return train_adapter(resolve_model_path(run.config.base_model), examples, objective, tmp,
                         lora=run.config.lora, settings=run.config.train, progress=run.progress,
                         stop_after_epoch=stop_after_epoch)


def _publish(run: _Run, cluster_id: str, role: str, objective: str, examples, source: Path, metrics) -> str:
    from uno_graph.adapters.registry import publish_adapter

    manifest = {"role": role, "cluster_id": cluster_id, "base_model": run.config.base_model,
                "objective": objective, "lora": run.config.to_dict()["lora"], "train": run.config.to_dict()["train"],
                "data_hash": fingerprint([(e.id, e.chosen, e.rejected) for e in examples]),
                "n_examples": len(examples), "metrics": metrics}
    path = publish_adapter(run.wd.adapters, cluster_id, role, source, manifest)
    return str(Path(path).relative_to(run.wd.root))
