"""Which users' edits the agreement filter (`scope.dissenting_users`) would leave out, per topic — no
language model, seconds.

    .venv/bin/python benchmarks/dissent_check.py --sets examples examples/heldout examples/unseen \\
        examples/sealed examples/reserve --dissent geography [--out benchmarks/results/dissent_check.json]

Each want topic of a set stands for one cluster (its logs, by `metadata.topic`). Its answers are
labelled as `learn` labels a cluster's: a user's edit is endorsed, the logged answer of a log with
an edit, a follow-up, a comment or a rating of at most 0 is rejected, approvals are left out. After
the per-user share cap (`max_user_share` of the default config), the filter runs with the default
`min_user_agreement`. Every edit is then checked with the set's `checks.py`: a filter that works
leaves out edits that miss the want (or ask for another) and keeps the ones that meet it.
`--dissent TOPIC` adds the topic's logs of `examples/logs.jsonl` as `benchmarks/bench_dissent.py` rewrites
them: 10 % of the topic's users (the one with the most logs) ask for the opposite of its want.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_recipe import NO_WANT  # noqa: E402  (the topics with no form to learn, one list for both probes)


def labelled_topic(records):
    from uno_graph.want import Labelled

    out = []
    for r in records:
        fb = r.feedback
        if fb.edited_response and fb.edited_response.strip() != r.answer.strip():
            out += [Labelled(r.id, r.answer, 0), Labelled(r.id, fb.edited_response, 1)]
        elif fb.rating is not None and fb.rating > 0 and not r.feedback_text:
            continue  # an approval
        elif r.has_signal:
            out.append(Labelled(r.id, r.answer, 0))
    return out


def check_set(logs: Path, checks: Path, cfg) -> dict:
    from uno_graph.evaluate import load_callable
    from uno_graph.logs import read_logs
    from uno_graph.scope import cap_user_share, dissenting_users

    check = load_callable(f"{checks}:check")
    records = read_logs(logs).records
    topics = sorted({str(r.metadata.get("topic")) for r in records} - NO_WANT)
    out = {}
    for topic in topics:
        mine = [r for r in records if r.metadata.get("topic") == topic]
        edits = [r for r in mine if r.feedback.edited_response]
        capped = cap_user_share([{"id": r.id, "user_id": r.user_id} for r in edits], cfg.max_user_share)
        kept = [r for r in mine if r.id not in capped]
        user_of = {r.id: r.user_id for r in kept}
        dissent = dissenting_users(labelled_topic(kept), user_of, min_agreement=cfg.min_user_agreement)
        passes = {r.id: bool(check(r.to_dict(), r.feedback.edited_response)) for r in edits if r.id not in capped}
        left_out = [i for i in passes if user_of[i] in dissent]
        stays = [i for i in passes if user_of[i] not in dissent]
        out[topic] = {"users_with_edits": len({user_of[i] for i in passes}), "edits_after_cap": len(passes),
                      "dissenters": dissent, "edits_left_out": len(left_out),
                      "left_out_passing": sum(passes[i] for i in left_out),
                      "edits_kept": len(stays), "kept_passing": sum(passes[i] for i in stays)}
        print(f"{logs} {topic}: {json.dumps(out[topic])}")
    return out


def main() -> None:
    from uno_graph.config import UnoConfig

    p = argparse.ArgumentParser()
    p.add_argument("--sets", nargs="+", default=[])
    p.add_argument("--dissent", default=None, help="a topic of examples/logs.jsonl, rewritten as bench_dissent does")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    cfg = UnoConfig()
    pairs = [(Path(s) / "logs.jsonl", Path(s) / "checks.py") for s in args.sets]
    if args.dissent:
        from bench_dissent import dissent, dissenters, read_jsonl, write_jsonl

        logs = read_jsonl(Path("examples/logs.jsonl"))
        who = dissenters([r for r in logs if r.get("metadata", {}).get("topic") == args.dissent], 0.1)
        path = Path(tempfile.mkdtemp()) / f"dissent-{args.dissent}.jsonl"
        write_jsonl(path, [dissent(r) if str(r.get("user_id")) in who else r for r in logs
                           if r.get("metadata", {}).get("topic") == args.dissent])
        pairs.append((path, Path("examples/checks.py")))
    result = {"command": "benchmarks/dissent_check.py " + " ".join(sys.argv[1:]),
              "max_user_share": cfg.max_user_share, "min_user_agreement": cfg.min_user_agreement, "sets": {}}
    for logs, checks in pairs:
        name = f"examples/logs.jsonl, {args.dissent} with a dissenter" if logs.name.startswith("dissent-") else str(logs)
        result["sets"][name] = check_set(logs, checks, cfg)
    total = {k: sum(t[k] for s in result["sets"].values() for t in s.values())
             for k in ("edits_left_out", "left_out_passing", "edits_kept", "kept_passing")}
    result["total"] = total
    print(json.dumps(total))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
