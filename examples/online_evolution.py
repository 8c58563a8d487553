""".venv/bin/python examples/online_evolution.py --rounds 3 [--per-round 8] [--workdir runs/online] [--out DIR]

Online evolution: the system learns from its own users, round after round (the setting of the UNO
paper's Figure 3). Each round:

1. serve: the round's questions (`--per-round` per topic, new ones each round, from the example
   app's questions in `examples/logs.jsonl` then `examples/test.jsonl`) go through the UNO graph
   with a `Recorder`, each from a simulated user in its own thread;
2. react: each user reacts by their topic's want (`examples/simulated_users.py`): a follow-up turn
   recorded through the recorder, and a rating or an edited answer through the feedback API;
3. learn: the recorded log store, exported, is learned from with `learn` on the same work directory,
   so every round after the first is incremental (earlier logs' results and unchanged clusters are
   reused, clusters keep their ids);
4. reload: the serving system picks up the new table and adapters (`UnoSystem.reload`), and the
   graph compiled once at the start serves the next round with them.

Satisfaction of a round is the share of its answers that pass their topic's check
(`examples/checks.py`), measured on answers served before that round's learn: round 1 is the base
model (the table is empty), round N the system learned from rounds 1..N-1. Written to `--out`
(default `<workdir>/report`): `round-NN.json` per round and `rounds.json` (satisfaction per topic,
logs, learn time, and which clusters were new, retrained or unchanged), and `online_evolution.png`
(satisfaction per topic and learn time per round; needs matplotlib).

The simulation labels each exported log with its question's topic (`metadata.topic`, which a real
app would not know) only so that the learn summary can say which topics a cluster holds; learning
does not read it. `--config FILE` takes `UnoConfig` fields as JSON (e.g. a tiny test setup);
`--base-model` and `--epochs` override it; `--temperature` samples answers (the default is greedy,
as served; a random test model answers only blank lines greedily). Every round on the embedded model trains adapters: expect
minutes per round on a CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from simulated_users import Reaction, pick_user, react  # noqa: E402

TOPICS = ("recipes", "geography", "python", "travel", "smalltalk-noisy")
STATUSES = ("new", "retrained", "unchanged", "changed")
PLOT = "online_evolution.png"


@dataclass(frozen=True)
class Served:
    """One served question, its answer and the user's reaction."""

    round: int
    topic: str
    question: str
    user_id: str
    thread_id: str
    log_id: str | None
    route: str | None
    cluster: str | None
    answer: str
    reaction: Reaction


# -- questions --------------------------------------------------------------------------------------

def question_pool(topics: list[str], files: tuple[Path, ...] = (HERE / "logs.jsonl", HERE / "test.jsonl")
                  ) -> dict[str, list[str]]:
    """Per topic, the example app's questions in file order (logged ones first, then held-out ones)."""
    pool: dict[str, list[str]] = {t: [] for t in topics}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            topic = record.get("metadata", {}).get("topic")
            if topic in pool:
                question = next(m["content"] for m in record["messages"] if m["role"] == "user")
                if question not in pool[topic]:
                    pool[topic].append(question)
    empty = [t for t, qs in pool.items() if not qs]
    if empty:
        raise SystemExit(f"no questions for topic(s) {empty}; known topics: {list(TOPICS)}")
    return pool


def round_questions(pool: dict[str, list[str]], round_no: int, per_round: int) -> list[tuple[str, str]]:
    """(topic, question) pairs of round `round_no` (1-based): the next `per_round` of each topic's pool,
    wrapping around once the pool is used up, interleaved across topics."""
    picked = {t: [qs[((round_no - 1) * per_round + k) % len(qs)] for k in range(per_round)] for t, qs in pool.items()}
    return [(t, picked[t][k]) for k in range(per_round) for t in pool]


# -- one round --------------------------------------------------------------------------------------

def serve_round(graph: Any, recorder: Any, questions: list[tuple[str, str]], round_no: int, seed: int) -> list[Served]:
    """Answer every question through `graph` (which records it), then record the user's reaction."""
    from langchain_core.messages import HumanMessage

    from uno_graph.state import UnoContext

    served = []
    for k, (topic, question) in enumerate(questions):
        rng = random.Random(f"{seed}-{round_no}-{k}-{question}")
        user_id, thread_id = pick_user(rng), f"round{round_no}-{k:03d}"
        asked = HumanMessage(question)
        out = graph.invoke({"messages": [asked]}, {"configurable": {"thread_id": thread_id}},
                           context=UnoContext(user_id=user_id))
        answer = out["messages"][-1]
        meta = answer.response_metadata or {}
        log_id = meta.get("uno_log_id")
        reaction = react(topic, question, answer.text, rng)
        # an empty answer is recorded but never exported for learning (nothing to learn from), so its
        # reaction is not recorded: the recorder links a follow-up to the thread's last answer with text
        if log_id is not None and answer.text.strip():
            if reaction.followup:  # the user's next turn in the thread: linked to the answer by its log id
                recorder.record_followup([asked, answer, HumanMessage(reaction.followup)], user_id=user_id,
                                         thread_id=thread_id)
            if reaction.feedback():
                recorder.feedback(log_id, **reaction.feedback())
        served.append(Served(round_no, topic, question, user_id, thread_id, log_id, meta.get("uno_route"),
                             meta.get("uno_cluster"), answer.text, reaction))
    return served


def satisfaction(served: list[Served], topics: list[str]) -> dict[str, float | None]:
    """Per topic, the share of answers that passed its check (None: no question of the topic)."""
    out: dict[str, float | None] = {}
    for topic in topics:
        passed = [s.reaction.satisfied for s in served if s.topic == topic]
        out[topic] = round(sum(passed) / len(passed), 4) if passed else None
    return out


def export_labelled(recorder: Any, path: Path, topic_of: dict[str, str]) -> int:
    """Export the recorder's records as a log file for `learn`, each labelled with its question's topic."""
    count = recorder.export(path)
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["id"] in topic_of:
            record["metadata"] = {**(record.get("metadata") or {}), "topic": topic_of[record["id"]]}
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return count


def round_report(round_no: int, served: list[Served], topics: list[str], records: list[dict[str, Any]],
                 exported: int, learn_s: float, result: Any, reloaded: Any) -> dict[str, Any]:
    """The JSON of one round (see the module docstring); `result` and `reloaded` are None when the round
    had nothing to learn from."""
    by_status: dict[str, list[str]] = {s: [] for s in STATUSES}
    clusters = result.clusters if result is not None else []
    for c in clusters:
        by_status.setdefault(c["status"], []).append(c["id"])
    return {
        "round": round_no,
        "questions": len(served),
        "satisfaction": satisfaction(served, topics),
        "satisfaction_all": round(sum(s.reaction.satisfied for s in served) / len(served), 4) if served else None,
        "routes": dict(Counter(s.route or "none" for s in served)),
        "logs": {"served": len(served), "recorded": sum(s.log_id is not None for s in served),
                 "total": len(records), "exported": exported,
                 "with_followup": sum(len(r["messages"]) > 2 for r in records),
                 "with_feedback": sum(bool(r.get("feedback")) for r in records),
                 "with_edit": sum(bool((r.get("feedback") or {}).get("edited_response")) for r in records)},
        "learned": result is not None,
        "learn_s": round(learn_s, 2),
        "learn_timings_s": result.timings if result is not None else {},
        "reuse": result.reuse if result is not None else {},
        "clusters": by_status,
        "cluster_table": [{k: c.get(k) for k in ("id", "size", "topics", "status", "route", "adapter", "win_rate")}
                          for c in clusters],
        "reload": None if reloaded is None else {"adapters": list(reloaded.adapters), "added": list(reloaded.added),
                                                 "dropped": list(reloaded.dropped)},
    }


# -- the plot ---------------------------------------------------------------------------------------

def plot_rounds(rounds: list[dict[str, Any]], path: Path) -> Path:
    """Satisfaction per topic (left) and learn time (right) per round, as in the UNO paper's Figure 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["round"] for r in rounds]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    topics = list(rounds[0]["satisfaction"]) if rounds else []
    for topic in topics:
        ys = [None if r["satisfaction"][topic] is None else 100 * r["satisfaction"][topic] for r in rounds]
        left.plot(xs, ys, marker="o", label=topic)
    left.plot(xs, [100 * (r["satisfaction_all"] or 0) for r in rounds], color="black", linestyle="--", marker="s",
              label="all")
    left.set_xlabel("round (answers served before that round's learn)")
    left.set_ylabel("answers satisfying the topic's users (%)")
    left.set_ylim(-5, 105)
    left.set_xticks(xs)
    left.set_title("Satisfaction per topic")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.bar(xs, [r["learn_s"] for r in rounds], color="#1f77b4")
    for r in rounds:
        counts = {s: len(r["clusters"].get(s, [])) for s in ("new", "retrained", "unchanged")}
        right.annotate(f"{counts['new']} new\n{counts['retrained']} retrained\n{counts['unchanged']} unchanged",
                       (r["round"], r["learn_s"]), textcoords="offset points", xytext=(0, 4), ha="center",
                       fontsize=7)
    right.set_xlabel("round")
    right.set_ylabel("learn time (s)")
    right.set_xticks(xs)
    right.set_title("Incremental learn time per round")
    right.margins(y=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the loop ---------------------------------------------------------------------------------------

def make_config(args: argparse.Namespace):
    """`UnoConfig` from `--config` (JSON of its fields), with `--base-model` and `--epochs` on top."""
    from uno_graph.config import UnoConfig

    fields = json.loads(Path(args.config).read_text(encoding="utf-8")) if args.config else {}
    config = UnoConfig.from_dict(fields)
    if args.base_model:
        config.base_model = args.base_model
    if args.epochs:
        config.train.epochs = args.epochs
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Rounds of serve → simulated users react → incremental learn → reload.")
    parser.add_argument("--rounds", type=int, default=3, help="how many rounds (default 3)")
    parser.add_argument("--per-round", type=int, default=8, help="questions per topic and round (default 8)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/online"),
                        help="a new work directory (default runs/online); it holds the event file and the learned system")
    parser.add_argument("--out", type=Path, help="where the JSON and the plot go (default <workdir>/report)")
    parser.add_argument("--base-model", help="the serving model (default: the config's, the embedded SmolLM2-135M)")
    parser.add_argument("--epochs", type=int, help="training epochs per adapter (default: the config's)")
    parser.add_argument("--config", type=Path, help="a JSON file of UnoConfig fields")
    parser.add_argument("--topics", default=",".join(TOPICS), help=f"comma-separated topics (default {','.join(TOPICS)})")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the simulated users (default 1234)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="sampling temperature of the serving model (default 0: greedy, as `uno-graph ask`)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.per_round < 1:
        parser.error("--rounds and --per-round must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir
    out: Path = args.out or workdir / "report"
    events = workdir / "events.jsonl"
    if events.exists():
        print(f"{events} exists: give a new --workdir (each run starts from no logs)", file=sys.stderr)
        return 2
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    pool = question_pool(topics)
    config = make_config(args)

    from uno_graph.capture import Recorder
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.embeddings import shared_embedder
    from uno_graph.graph import UnoSystem
    from uno_graph.pipeline import learn
    from uno_graph.router import Router
    from uno_graph.store import UnoStore

    workdir.mkdir(parents=True, exist_ok=True)
    model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=config.max_new_tokens,
                                         temperature=args.temperature)
    store = UnoStore.persistent(workdir / "chroma")
    # nothing learned yet: an empty table routes every question to the base model; `reload` after
    # each learn switches this same system (and the graph compiled from it) to what was learned
    system = UnoSystem(workdir, config, model, store, Router(store, shared_embedder(config.embedder), config))
    recorder = Recorder(events)
    graph = system.graph("uno", recorder=recorder)
    logs = workdir / "recorded_logs.jsonl"
    topic_of: dict[str, str] = {}
    rounds: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    for round_no in range(1, args.rounds + 1):
        t = time.perf_counter()
        served = serve_round(graph, recorder, round_questions(pool, round_no, args.per_round), round_no, args.seed)
        serve_s = time.perf_counter() - t
        topic_of.update({s.log_id: s.topic for s in served if s.log_id})
        exported = export_labelled(recorder, logs, topic_of)
        if exported == 0:  # every answer so far was empty: nothing to learn from yet
            print(f"round {round_no}: no answer with text recorded yet; learn skipped", file=sys.stderr)
            result, learn_s, reloaded = None, 0.0, None
        else:
            t = time.perf_counter()
            result = learn([logs], workdir, config, store=store, progress=False)
            learn_s = time.perf_counter() - t
            reloaded = system.reload()
        report = round_report(round_no, served, topics, recorder.records(), exported, learn_s, result, reloaded)
        report["serve_s"] = round(serve_s, 2)
        rounds.append(report)
        (out / f"round-{round_no:02d}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "rounds.json").write_text(json.dumps(rounds, indent=2) + "\n", encoding="utf-8")
        sat = " ".join(f"{k}={'-' if v is None else f'{100 * v:.0f}%'}" for k, v in report["satisfaction"].items())
        status = " ".join(f"{s}={len(ids)}" for s, ids in report["clusters"].items() if ids)
        print(f"round {round_no}: {sat} | logs {report['logs']['total']} | serve {serve_s:.0f} s | "
              f"learn {learn_s:.0f} s | clusters {status or '-'} | adapters {len(system.served)}", flush=True)
    try:
        path = plot_rounds(rounds, out / PLOT)
        print(f"wrote {out / 'rounds.json'} and {path}")
    except ImportError:
        print(f"wrote {out / 'rounds.json'}; the plot needs matplotlib (pip install 'uno-graph[eval]')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
