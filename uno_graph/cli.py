"""`uno-graph` command line. torch and friends load only inside the subcommands that need them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from uno_graph.config import DEFAULT_EMBEDDER, DEFAULT_MODEL, EXPERT_OBJECTIVES, FINAL_ADAPTERS, TrainSettings, UnoConfig
from uno_graph.engines.base import BACKENDS
from uno_graph.engines.select import SERVING_BACKENDS, serving_backend, serving_model
from uno_graph.errors import ConfigError, UnoGraphError
from uno_graph.scope import THREADS_FILE


def _learners(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """(expert_objective, expert_learners) from `--expert-objective` and repeated `--learner`: with
    learners, the Expert that decides the route is `--expert-objective` when it is one of them, else
    the first learner given."""
    learners = tuple(dict.fromkeys(getattr(args, "learner", None) or ()))
    if not learners:
        return args.expert_objective or UnoConfig.expert_objective, ()
    if args.expert_objective is None:
        return learners[0], learners
    if args.expert_objective not in learners:
        raise ConfigError(f"--expert-objective {args.expert_objective} is not among --learner {list(learners)}; "
                          "add it as a --learner, or leave --expert-objective out (the first --learner decides the route)")
    return args.expert_objective, learners


def _config(args: argparse.Namespace) -> UnoConfig:
    objective, learners = _learners(args)
    cfg = UnoConfig(base_model=args.base_model, embedder=args.embedder,
                    cluster_on=args.cluster_on, cluster_threshold=args.cluster_threshold, min_cluster_size=args.min_cluster_size,
                    gap_signal=args.gap_signal, gap_threshold=args.gap_threshold, win_rate_threshold=args.win_rate_threshold,
                    bleu_threshold=args.bleu_threshold, max_new_tokens=args.max_new_tokens,
                    expert_objective=objective, expert_learners=learners, redact=not args.no_redact,
                    max_user_share=args.max_user_share, route_by_user=args.route_by_user,
                    user_scope=args.user_scope, final_adapter=args.final_adapter, expert_best_of=args.best_of)
    cfg.train = TrainSettings(**{**vars(cfg.train), "epochs": args.epochs, "batch_size": args.batch_size})
    return cfg


def _teacher_and_judge(args: argparse.Namespace, base_model: str, max_new_tokens: int):
    """The teacher and the validation judge that `--teacher-model` and `--judge` name."""
    teacher = None  # the users' own words
    if args.teacher_model == "serving":
        teacher = "serving"
    elif args.teacher_model:
        from uno_graph.chat_model import UnoChatModel

        teacher = UnoChatModel.from_pretrained(args.teacher_model, max_new_tokens=max_new_tokens)
    judge = None
    if args.judge == "contrast":
        from uno_graph.verify import ContrastJudge

        judge = ContrastJudge()
    elif args.judge == "teacher":
        from uno_graph.verify import LLMJudge

        judge_model = teacher
        if teacher is None or teacher == "serving":  # the judge's model only: it does not turn on distillation
            from uno_graph.chat_model import UnoChatModel

            judge_model = UnoChatModel.from_pretrained(base_model, max_new_tokens=max_new_tokens)
        judge = LLMJudge(judge_model)
    return teacher, judge


def cmd_learn(args: argparse.Namespace) -> int:
    from uno_graph.pipeline import learn

    if not args.logs and not args.threads and not args.checkpointer:
        raise UnoGraphError("nothing to learn from: give JSONL log files, --threads CHECKPOINT_DB, "
                            "--checkpointer MODULE:NAME, or several of these")
    logs = list(args.logs)
    if args.threads or args.checkpointer:
        logs.append(_threads_as_logs(args.threads, args.checkpointer, args.workdir))
    teacher, judge = _teacher_and_judge(args, args.base_model, args.max_new_tokens)
    result = learn(logs, args.workdir, _config(args), teacher=teacher, judge=judge, progress=not args.quiet)
    _print_learned(result)
    return 0


def _threads_as_logs(databases: list[str], checkpointers: list[str], workdir: str) -> Path:
    """The threads of SqliteSaver files and `--checkpointer` import paths, exported to
    `<workdir>/threads.jsonl` and learned like a log file."""
    from uno_graph.capture.threads import thread_count, write_records

    per_source = _read_thread_sources(databases, checkpointers)
    path = Path(workdir) / THREADS_FILE  # `forget` scrubs the user's records from it too (scope.py)
    count = write_records([r for _, records in per_source for r in records], path)
    print(f"threads: {count} log(s) from {sum(thread_count(r) for _, r in per_source)} thread(s) of "
          f"{', '.join(source for source, _ in per_source)}, written to {path}")
    return path


def _read_thread_sources(databases: list[str], checkpointers: list[str]) -> list[tuple[str, list[dict]]]:
    """(source, log records) of every SqliteSaver file and every `--checkpointer MODULE:NAME`, in that order.

    Every source is read before anything is written, so a bad one leaves the last export as it was.
    """
    from uno_graph.capture.checkpointer_path import open_checkpointer
    from uno_graph.capture.threads import read_threads

    per_source = [(db, read_threads(db)) for db in databases]
    for spec in checkpointers:
        with open_checkpointer(spec) as saver:
            per_source.append((spec, read_threads(saver)))
    return per_source


def _print_learned(result) -> None:
    """`learn`'s summary: logs, pairs, and per cluster its status (new / retrained / unchanged), route and why."""
    report = result.report
    print(f"\nlogs: {len(report.records)} kept, {len(report.problems)} rejected, {report.duplicates} duplicates")
    for problem in report.problems[:20]:
        print(f"  rejected {problem}")
    if len(report.problems) > 20:
        print(f"  ... and {len(report.problems) - 20} more")
    print("pairs: " + ", ".join(f"{k} {v}" for k, v in sorted(result.pair_reasons.items())))
    if result.calibration:
        c = result.calibration
        print("gap calibration: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(f"\n{'cluster':<12}{'status':<10}{'size':>5}  {'gap':>6}  {'route':<7}{'win':>6}{'low':>6}  topics / adapter")
    for c in result.clusters:
        gap = "-" if c["gap"] is None else f"{c['gap']:.3f}"
        win = "-" if c["win_rate"] is None else f"{c['win_rate']:.2f}"
        low = "-" if c.get("lower_bound") is None else f"{c['lower_bound']:.2f}"
        topics = ",".join(f"{k}:{v}" for k, v in c["topics"].items())
        print(f"{c['id']:<12}{c.get('status', 'new'):<10}{c['size']:>5}  {gap:>6}  {c['route']:<7}{win:>6}{low:>6}  "
              f"{topics}  {c['adapter'] or ''}")
        if c.get("reason"):
            print(f"{'':<12}  why: {c['reason']}")
        if c.get("capped"):
            print(f"{'':<12}  capped: {c['capped']} example(s) left out, no user above the per-user share")
        if c.get("dissent_left_out"):
            print(f"{'':<12}  dissent: {c['dissent_left_out']} log(s) left out, of users who ask for something else")
    if result.purity:
        p = result.purity
        print(f"cluster purity against the logs' topic labels: {p['purity']:.0%}, completeness "
              f"{p.get('completeness', float('nan')):.0%} ({p['clusters']} clusters, "
              f"{p['topics']} topics" + (f"; split: {', '.join(p['split_topics'])}" if p["split_topics"] else "") + ")")
    if any(r.get("reused") for r in result.reuse.values()):
        print("reused from earlier runs: " + ", ".join(f"{k} {r['reused']} (computed {r['computed']})"
                                                      for k, r in result.reuse.items()))
    print("\nseconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items()))
    print(f"work directory: {result.workdir}")


def cmd_rollback(args: argparse.Namespace) -> int:
    from uno_graph.promotion import rollback
    from uno_graph.store import UnoStore

    store = UnoStore.connect(args.chroma_url) if args.chroma_url else None
    print(rollback(args.workdir, args.cluster, args.role, store=store).describe())
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from uno_graph.workdir_lock import writer_lock

    root = Path(args.workdir)
    if not (root / "system.json").exists():
        raise UnoGraphError(f"{root} is not a uno-graph work directory (no system.json)")
    with writer_lock(root, "forget"):  # no other writer between forgetting and learning again
        return _forget(args, root)


def _forget(args: argparse.Namespace, root: Path) -> int:
    from uno_graph.scope import forget_user
    from uno_graph.store import UnoStore

    store = UnoStore.connect(args.chroma_url) if args.chroma_url else None
    done = forget_user(root, args.user, store=store)
    print(f"forgot user {done.user_id}: {len(done.log_ids)} log(s); removed "
          + ", ".join(f"{k} {v}" for k, v in done.removed.items()) + f", Chroma rules {done.rules}")
    if not done.clusters:
        print("no cluster held these logs")
    elif not args.logs:
        print(f"clusters to retrain on the next `uno-graph learn`: {', '.join(done.clusters)}")
    if args.logs:
        from uno_graph.graph import load_config
        from uno_graph.pipeline import learn

        config = load_config(root)
        teacher, judge = _teacher_and_judge(args, config.base_model, config.max_new_tokens)
        _print_learned(learn(args.logs, root, config, teacher=teacher, judge=judge, store=store,
                             progress=not args.quiet))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from uno_graph.adapters.registry import list_adapters
    from uno_graph.store import UnoStore

    root = Path(args.workdir)
    if not (root / "system.json").exists():
        raise UnoGraphError(f"{root} is not a uno-graph work directory (no system.json); run `uno-graph learn` first")
    store = UnoStore.persistent(root / "chroma")
    rows = store.table()
    out = {"system": json.loads((root / "system.json").read_text()), "clusters": [
        {**row, "rules": store.rules_for(row["id"])[: args.rules]} for row in rows],
        "adapters": list_adapters(root / "adapters")}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"base model: {out['system']['base_model']}   embedder: {out['system']['embedder']}")
    for row in out["clusters"]:
        print(f"\n{row['id']}  size {row.get('size')}  route {row.get('route')}  adapter {row.get('adapter') or '-'}")
        if row.get("reason"):
            print(f"   why: {row['reason']}")
        for rule in row["rules"]:
            print(f"   - {rule}")
    print(f"\n{len(out['adapters'])} adapter(s) published")
    return 0


def _add_backend(p: argparse.ArgumentParser, default: str = "transformers") -> None:
    auto = ("auto: llamacpp where the xllamacpp wheel is installed and the base model has a GGUF (the embedded "
            "default has one), else transformers; ") if default == "auto" else ""
    p.add_argument("--backend", choices=SERVING_BACKENDS if default == "auto" else BACKENDS, default=default,
                   help=f"what generates (default {default}): {auto}transformers: transformers + PEFT, the engine "
                        "adapters are trained and validated on; llamacpp: the base model's GGUF with each adapter as "
                        "a GGUF LoRA (pip install 'uno-graph[llamacpp]')")


def _add_checkpointer(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--checkpointer", action="append", default=[], metavar="MODULE:NAME",
                   help=f"{what}: NAME in MODULE is a checkpointer (PostgresSaver, InMemorySaver, ...), a graph "
                        "compiled with one, a context manager yielding one, or a function of no arguments returning "
                        "one of these, e.g. `def saver(): return PostgresSaver.from_conn_string(URL)`; the current "
                        "directory is importable")


def _answer(graph, messages, mode_context, config=None):
    out = graph.invoke({"messages": messages}, config, context=mode_context)
    return out["messages"][-1]


def _recorder(path: str | None):
    """A recorder writing to the event file `path` (None: no recording)."""
    if path is None:
        return None
    from uno_graph.capture import Recorder

    return Recorder(path)


def cmd_ask(args: argparse.Namespace) -> int:
    from uno_graph.graph import UnoSystem
    from uno_graph.state import UnoContext

    system = UnoSystem.load(args.workdir, model=serving_model(args.workdir, args.backend),
                            lazy_adapters=True)  # one question needs at most one adapter
    graph = system.graph(args.mode, recorder=_recorder(args.record))
    config = {"configurable": {"thread_id": args.thread_id}} if args.thread_id else None
    reply = _answer(graph, [("user", args.question)], UnoContext(user_id=args.user_id), config)
    meta, usage = reply.response_metadata, reply.usage_metadata or {}
    log_id = meta.get("uno_log_id")
    if args.json:
        print(json.dumps({"answer": reply.content, "route": meta.get("uno_route"), "cluster": meta.get("uno_cluster"),
                          "adapter": meta.get("uno_adapter"), "distance": meta.get("uno_distance"),
                          "backend": getattr(system.model, "backend", None),
                          "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
                          **({"log_id": log_id} if args.record else {})}))
    else:
        print(reply.content)
        print(f"\n[route {meta.get('uno_route')} · cluster {meta.get('uno_cluster') or '-'} · "
              f"adapter {meta.get('uno_adapter') or '-'} · {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens"
              + (f" · log {log_id}" if log_id else "") + "]")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """Interactive chat; tokens stream as they are generated; the thread is kept in memory."""
    from langgraph.checkpoint.memory import InMemorySaver

    from uno_graph.graph import UnoSystem, build_graph
    from uno_graph.state import UnoContext

    system = UnoSystem.load(args.workdir, model=serving_model(args.workdir, args.backend))
    recorder = _recorder(args.record)
    graph = build_graph(system.model, system.router, args.mode, recorder=recorder).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": args.thread_id or f"cli-{uuid.uuid4().hex[:12]}"}}
    print("uno-graph chat — empty line or Ctrl-D to quit"
          + ("; /rate R, /edit TEXT, /comment TEXT give feedback on the last answer" if recorder else ""))
    log_id = None
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        if recorder is not None and _chat_feedback(recorder, log_id, text):
            continue
        print("bot> ", end="", flush=True)
        for piece in _chat_pieces(graph.stream({"messages": [("user", text)]}, config,
                                               context=UnoContext(user_id=args.user_id),
                                               stream_mode=["messages", "custom"])):
            print(piece, end="", flush=True)
        print()
        if recorder is not None:
            log_id = graph.get_state(config).values["messages"][-1].response_metadata.get("uno_log_id")
            print(f"[log {log_id or 'not recorded'}]")
    return 0


def _chat_pieces(stream) -> Iterator[str]:
    """What `chat` prints of a `graph.stream(..., stream_mode=["messages", "custom"])`: the route tag,
    then every AI message piece of the messages stream.

    The graph streams the answer exactly once (the Critic path's draft and critique are tagged
    ``nostream``, and the answer message shares its id with the streamed reply), so nothing here
    filters by node: every AI piece is the answer's."""
    from langchain_core.messages import AIMessage

    for mode, data in stream:
        if mode == "custom" and data.get("uno_event") == "routed":
            yield f"[{data['route']} {data.get('cluster_id') or ''}] "
        elif mode == "messages" and isinstance(data[0], AIMessage):
            yield str(data[0].text)


def _chat_feedback(recorder, log_id: str | None, text: str) -> bool:
    """Handle `/rate R`, `/edit TEXT`, `/comment TEXT` in `chat`; False if `text` is not such a command."""
    command, _, value = text.partition(" ")
    field = {"/rate": "rating", "/edit": "edited_response", "/comment": "comment"}.get(command)
    if field is None:
        return False
    if log_id is None:
        print("no recorded answer yet to give feedback on")
        return True
    try:
        stored = recorder.feedback(log_id, **{field: float(value) if field == "rating" else value.strip()})
        print(f"[feedback on {log_id}: {stored}]")
    except ValueError as exc:  # FeedbackError, or a rating that is not a number
        print(f"feedback not recorded: {exc}")
    return True


def cmd_feedback(args: argparse.Namespace) -> int:
    from uno_graph.capture import JsonlLogStore, feedback

    if not Path(args.logs).is_file():
        raise UnoGraphError(f"no event file at {args.logs}; give the file that `--record` wrote")
    stored = feedback(JsonlLogStore(args.logs), args.log_id, rating=args.rating, edited_response=args.edited_response,
                      comment=args.comment)
    print(f"feedback recorded for {args.log_id}: " + ", ".join(f"{k} {v!r}" for k, v in stored.items()))
    return 0


def cmd_export_logs(args: argparse.Namespace) -> int:
    from uno_graph.capture import JsonlLogStore, export

    if not Path(args.events).is_file():
        raise UnoGraphError(f"no event file at {args.events}; give the file that `--record` wrote")
    count = export(JsonlLogStore(args.events), args.out)
    print(f"{count} log(s) written to {args.out}; learn from them with: uno-graph learn {args.out} --workdir DIR")
    return 0


def cmd_export_threads(args: argparse.Namespace) -> int:
    from uno_graph.capture.threads import thread_count, write_records

    if not args.database and not args.checkpointer:
        raise UnoGraphError("nothing to export: give CHECKPOINT_DB OUT.jsonl, or --checkpointer MODULE:NAME OUT.jsonl")
    per_source = _read_thread_sources([args.database] if args.database else [], args.checkpointer)
    records = [r for _, records in per_source for r in records]
    write_records(records, args.out)
    print(f"{len(records)} log(s) from {thread_count(records)} thread(s) written to {args.out}; learn from them "
          f"with: uno-graph learn {args.out} --workdir DIR")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from uno_graph.evaluate import evaluate, format_summary

    judge = None
    if args.judge_model:
        from uno_graph.chat_model import UnoChatModel

        judge = UnoChatModel.from_pretrained(args.judge_model, max_new_tokens=4)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    system = None
    # a different answer budget than the one the work directory was learned with, or another backend
    model = serving_model(args.workdir, args.backend, args.max_new_tokens)
    if model is not None:
        from uno_graph.graph import UnoSystem

        system = UnoSystem.load(args.workdir, model=model)
    result = evaluate(args.workdir, args.testset, args.out, systems=systems, check=args.check, system=system,
                      dataset_check=args.dataset_check, judge=judge, batch_size=args.batch_size,
                      progress=not args.quiet, plot_dir=args.plot)
    for problem in result.problems[:20]:
        print(f"  skipped {problem}")
    print(format_summary(result.summary))
    print(f"\npredictions: {result.out}   summary: {result.out}.summary.json")
    for path in result.summary.get("plots", []):
        print(f"plot: {path}")
    return 0


def cmd_serve_openai_backend(args: argparse.Namespace) -> int:
    """`serve-openai`, with the work directory's model on `--backend` (llama.cpp serves concurrent
    requests in parallel slots)."""
    from uno_graph.openai_server import OpenAIServer, cmd_serve_openai, limits_from_args, serve_until_interrupted

    backend = serving_backend(args.workdir, args.backend)
    if backend == "transformers":
        return cmd_serve_openai(args)
    from uno_graph.graph import load_config

    model = serving_model(args.workdir, backend, args.max_new_tokens)
    server = OpenAIServer(model, host=args.host, port=args.port, workdir=args.workdir, recorder=args.record,
                          served_model_name=args.served_model_name or load_config(args.workdir).base_model,
                          limits=limits_from_args(args)).with_adapters()
    return serve_until_interrupted(server, watch_s=args.watch, record=args.record, label=f" with {backend}")


def cmd_baseline(args: argparse.Namespace) -> int:
    from uno_graph.baselines import train_topic_sft
    from uno_graph.graph import load_config

    trained = train_topic_sft(args.logs, args.workdir, load_config(args.workdir), epochs=args.epochs,
                              progress=not args.quiet)
    for topic, manifest in trained.items():
        print(f"{topic:<20} {manifest['n_examples']:>3} edits  {manifest['train_seconds']:>7.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uno-graph", description="Learn from user logs; serve what was learned.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("learn", help="distill, cluster, and train adapters from log files")
    p.add_argument("logs", nargs="*", help="JSONL log files")
    p.add_argument("--threads", action="append", default=[], metavar="CHECKPOINT_DB",
                   help="also learn from every thread of this LangGraph SqliteSaver file (read-only; repeatable), "
                        "exported to <workdir>/threads.jsonl first; pip install 'uno-graph[threads]'")
    _add_checkpointer(p, "also learn from every thread of the LangGraph checkpointer at this import path "
                         "(repeatable), exported with the --threads files")
    p.add_argument("--workdir", required=True, help="output directory (rerun to resume)")
    p.add_argument("--base-model", default=DEFAULT_MODEL, help="serving model: default or a local HF directory")
    p.add_argument("--teacher-model", default=None,
                   help="local HF model that distills rules and revises answers; 'serving' = the base model; "
                        "default: none, the users' own follow-ups are the rules")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    p.add_argument("--judge", choices=["want", "contrast", "teacher"], default="want",
                   help="validation judge: a model of the form of each cluster's endorsed answers, learned from "
                        "its logs (want); closeness to each log's own edit (contrast); the paper's LLM rubric (teacher)")
    d = UnoConfig()
    p.add_argument("--no-redact", action="store_true",
                   help="keep emails, phone and card numbers, IPs and secrets in the logs (redacted by default)")
    p.add_argument("--cluster-on", choices=("query", "query+rules"), default=d.cluster_on,
                   help="Ward features: queries, then merged by rules (default); the paper's query+rules")
    p.add_argument("--cluster-threshold", type=float, default=d.cluster_threshold,
                   help="Ward merge height (default: the cut with the best silhouette)")
    p.add_argument("--min-cluster-size", type=int, default=d.min_cluster_size)
    p.add_argument("--route-by-user", action=argparse.BooleanOptionalAction, default=d.route_by_user,
                   help="route a query that carries a user id by the query and that user's logs together "
                        "(default on; --no-route-by-user: by the query alone)")
    p.add_argument("--user-scope", action="store_true",
                   help="learn each user's logs on their own; their adapters answer only that user")
    p.add_argument("--gap-signal", choices=("likelihood", "yesno"), default=d.gap_signal,
                   help="likelihood: base model's log-likelihood of endorsed vs logged answers; yesno: the paper's")
    p.add_argument("--gap-threshold", type=float, default=None, help="fixed gap threshold (default: calibrated)")
    p.add_argument("--win-rate-threshold", type=float, default=d.win_rate_threshold, help="paper: 0.53")
    p.add_argument("--bleu-threshold", type=float, default=d.bleu_threshold, help="paper: 0.05")
    p.add_argument("--epochs", type=int, default=d.train.epochs)
    p.add_argument("--expert-objective", choices=EXPERT_OBJECTIVES, default=None,
                   help="the Expert's loss: SFT on endorsed answers (sft = edit_sft), the paper's DPO + SFT "
                        "(dpo_sft = early_ensemble), DPO alone on edits (edit_dpo), or KTO on ratings (kto) "
                        f"(default {d.expert_objective}, or the first --learner)")
    p.add_argument("--learner", action="append", choices=EXPERT_OBJECTIVES, metavar="NAME",
                   help="late ensemble: train an Expert variant with this objective too (repeat for several); each "
                        "that beats base is published and serving picks among them by feedback (needs the bandit "
                        f"extra to serve). Choices: {', '.join(EXPERT_OBJECTIVES)}")
    p.add_argument("--batch-size", type=int, default=d.train.batch_size, help="adapter training batch size")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--max-user-share", type=float, default=d.max_user_share,
                   help="no user makes up more of a cluster's training examples than this share (1.0 = no cap)")
    p.add_argument("--best-of", type=int, default=d.expert_best_of,
                   help="an Expert answers with the best of this many candidates by its cluster's want model "
                        "(written to system.json; 1 = its greedy answer)")
    p.add_argument("--final-adapter", choices=FINAL_ADAPTERS, default=d.final_adapter,
                   help="the served Expert: retrained on all of the cluster's pairs at the validated epoch "
                        "(retrain), or the average of its validated fold adapters (fold_average, no last training)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser("rollback", help="serve the previous version of a cluster's adapter (prints what is served now)")
    p.add_argument("cluster", help="cluster id (see `uno-graph inspect`)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--role", choices=("expert", "critic"), default=None,
                   help="the adapter role to roll back (default: the one the cluster serves)")
    p.add_argument("--chroma-url", default=None, help="the `chroma run` server holding the table (default: the work "
                                                      "directory's own store)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("forget", help="remove a user's logs from every stage output and Chroma; their clusters "
                                      "are retrained by the next learn (or now, with --logs)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--user", required=True, help="the user id, as in the logs' user_id")
    p.add_argument("--logs", nargs="+", default=None, metavar="LOGS.jsonl",
                   help="the log files to learn from again right away (the user's logs are skipped)")
    p.add_argument("--teacher-model", default=None, help="with --logs: the teacher `learn` used (default: none)")
    p.add_argument("--judge", choices=["want", "contrast", "teacher"], default="want", help="with --logs: as for learn")
    p.add_argument("--chroma-url", default=None, help="the `chroma run` server holding the rules (default: the work "
                                                      "directory's own store)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_forget)

    for name, help_ in (("ask", "answer one question through the learned graph"), ("chat", "interactive, streaming chat")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--workdir", required=True)
        p.add_argument("--mode", choices=["uno", "uno_single", "rules_in_context"], default="uno",
                       help="rules_in_context: no adapters; the nearest clusters' rules in a system prompt")
        p.add_argument("--user-id", default=None)
        p.add_argument("--record", default=None, metavar="EVENTS.jsonl",
                       help="record answers, follow-ups (and, in chat, /rate /edit /comment) into this event file")
        p.add_argument("--thread-id", default=None, help="the conversation: a later turn with the same thread id "
                                                         "is recorded as the previous answer's follow-up")
        _add_backend(p, default="auto")
        if name == "ask":
            p.add_argument("question")
            p.add_argument("--json", action="store_true", help="one machine-readable JSON line")
        p.set_defaults(func=cmd_ask if name == "ask" else cmd_chat)

    p = sub.add_parser("eval", help="answer a test set with base / UNO / UNO-Single / rules-in-context and score them")
    p.add_argument("testset", help="JSONL test items: id, messages (or query), metadata, optional reference")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True, help="predictions JSONL (rerun to resume); a .summary.json is written next to it")
    p.add_argument("--systems", default="base,uno,uno_single,rules_in_context",
                   help="comma-separated subset of base, uno, uno_single, uno_user, uno_query, uno_greedy, rules_in_context, topic_sft "
                        "(the naive per-topic SFT baseline; train it first with `uno-graph baseline`)")
    p.add_argument("--check", default=None, help="per-item check: module:function or path/file.py:function, "
                                                 "called as fn(item, answer) -> bool | float")
    p.add_argument("--dataset-check", default=None, help="per-system check over the whole set: fn(items, answers)")
    p.add_argument("--judge-model", default=None, help="local model for a pairwise LLM judge against base "
                                                       f"(e.g. {DEFAULT_MODEL})")
    p.add_argument("--batch-size", type=int, default=8, help="items per batched generation; 1 = each item "
                                                             "through the compiled graph (real per-request latency)")
    p.add_argument("--plot", default=None, metavar="DIR", help="write before/after and score-vs-tokens PNGs here")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="answer budget per call (default: the work directory's max_new_tokens)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_backend(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("baseline", help="the naive baseline: one SFT LoRA per known topic (metadata.topic) "
                                        "trained on that topic's edits, for `eval --systems ...,topic_sft`")
    p.add_argument("logs", nargs="+")
    p.add_argument("--workdir", required=True, help="a learned work directory (its base model is used)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_baseline)

    from uno_graph.openai_server import add_serve_openai_parser

    p = add_serve_openai_parser(sub)
    _add_backend(p, default="auto")
    p.set_defaults(func=cmd_serve_openai_backend)

    p = sub.add_parser("feedback", help="attach a rating, an edited answer or a comment to a recorded answer")
    p.add_argument("logs", metavar="EVENTS.jsonl", help="the event file that --record wrote")
    p.add_argument("log_id", help="the answer's log id (printed by ask/chat --record; the completion id over HTTP)")
    p.add_argument("--rating", type=float, default=None, help="-1 (thumbs down) to 1 (thumbs up)")
    p.add_argument("--edit", dest="edited_response", default=None, metavar="TEXT", help="the answer as it should have been")
    p.add_argument("--comment", default=None, metavar="TEXT")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export-logs", help="fold a recorded event file into log-format JSONL for `learn`")
    p.add_argument("events", metavar="EVENTS.jsonl", help="the event file that --record wrote")
    p.add_argument("--out", required=True, metavar="LOGS.jsonl", help="log-format JSONL (replaced)")
    p.set_defaults(func=cmd_export_logs)

    p = sub.add_parser("export-threads", help="turn every thread of a LangGraph checkpointer (a SqliteSaver file, "
                                              "or any saver with --checkpointer) into log-format JSONL for `learn`")
    p.add_argument("database", metavar="CHECKPOINT_DB", nargs="?", default=None,
                   help="the app's SqliteSaver database file (opened read-only); leave out with --checkpointer")
    p.add_argument("out", metavar="OUT.jsonl", help="log-format JSONL (replaced)")
    _add_checkpointer(p, "read the threads of the LangGraph checkpointer at this import path (repeatable)")
    p.set_defaults(func=cmd_export_threads)

    p = sub.add_parser("inspect", help="clusters, routes, rules and adapters of a work directory")
    p.add_argument("--workdir", required=True)
    p.add_argument("--rules", type=int, default=5, help="rules shown per cluster")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except UnoGraphError as exc:
        print(f"uno-graph: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
