"""Can a want model tell what a topic's users want? A judge-only check, no language model involved.

Per topic (the logs' `metadata.topic`), the answers the logs label — edits and approved answers
endorsed, the logged answer of every other log with a reaction rejected — are split into folds by
log; a `WantModel` fitted on the other folds scores each fold's answers. Reported per topic:

* `auc_labels`: how well it orders endorsed above rejected answers of logs it never saw (the
  consistency gate of adapters/validate.py uses this number);
* `auc_check`: how well its scores order answers that pass the topic's check above answers that fail
  it, over the same out-of-fold answers (agreement of the judge with the check), when a check is given.

    .venv/bin/python benchmarks/want_check.py examples/heldout/logs.jsonl --check examples/heldout/checks.py:check

Use it on development sets only: a set it is run on is no longer unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uno_graph.adapters.validate import make_folds  # noqa: E402
from uno_graph.distill import is_satisfied  # noqa: E402
from uno_graph.evaluate import load_callable  # noqa: E402
from uno_graph.logs import read_logs  # noqa: E402
from uno_graph.want import Labelled, WantModel, auc, cross_validated_auc  # noqa: E402


def labelled_answers(records) -> list[Labelled]:
    out = []
    for r in records:
        if not r.has_signal:
            continue
        if is_satisfied(r):
            out.append(Labelled(r.id, r.answer, 1))
            continue
        out.append(Labelled(r.id, r.answer, 0))
        if r.feedback.edited_response:
            out.append(Labelled(r.id, r.feedback.edited_response, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs")
    ap.add_argument("--check", help="module:function or file.py:function, fn(item, answer) -> bool")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    check = load_callable(args.check) if args.check else None
    records = read_logs(args.logs).records
    topics: dict[str, list] = {}
    for r in records:
        topics.setdefault(str(r.metadata.get("topic", "-")), []).append(r)
    rows = []
    for topic, recs in sorted(topics.items()):
        labelled = labelled_answers(recs)
        folds = make_folds(sorted({x.log_id for x in labelled}), args.folds)
        gate = cross_validated_auc(labelled, folds)
        row = {"topic": topic, "logs": len(recs), **gate.to_dict()}
        if check:
            scores, passes = [], []
            by_id = {r.id: r for r in recs}
            for fold in folds:
                held = set(fold)
                train = [x for x in labelled if x.log_id not in held]
                test = [x for x in labelled if x.log_id in held]
                if not test or len({x.label for x in train}) < 2:
                    continue
                model = WantModel().fit([x.text for x in train], [x.label for x in train])
                scores += model.score([x.text for x in test])
                passes += [int(bool(check({"id": x.log_id, "messages": [{"role": "user", "content": by_id[x.log_id].query}],
                                            "metadata": by_id[x.log_id].metadata}, x.text))) for x in test]
            row["auc_check"] = round(auc(scores, passes), 4) if 0 < sum(passes) < len(passes) else None
            row["passing"] = f"{sum(passes)}/{len(passes)}"
            row["top_features"] = WantModel().fit([x.text for x in labelled], [x.label for x in labelled]).top_features(5) \
                if len({x.label for x in labelled}) == 2 else []
        rows.append(row)
        print(json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
