"""Judge-only check of the validation judge, no model: given one log's references (its edit, its
logged answer), does `ContrastJudge` score another log's edit (same topic) above that other log's
logged answer? Share of ordered pairs i != j per topic, words-only judge against words + form.

    .venv/bin/python benchmarks/judge_form_check.py examples/unseen/logs.jsonl
"""
import json, sys
from uno_graph.verify import ContrastJudge
rs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rs:
    e = r.get("feedback", {}).get("edited_response")
    if e:
        by.setdefault(r["metadata"]["topic"], []).append((e, [x for x in r["messages"] if x["role"] == "assistant"][-1]["content"]))
judges = {"words only": ContrastJudge(form_weight=0), "words + form": ContrastJudge()}
print(f"{'topic':14s} {'edits':>5s} {'pairs':>5s} " + " ".join(f"{k:>13s}" for k in judges))
for topic, ps in sorted(by.items()):
    row = []
    for j in judges.values():
        credit = []
        for i, (ci, ri) in enumerate(ps):
            for k, (ck, rk) in enumerate(ps):
                if i != k:
                    a, b = j.scores([{"answer": ck, "chosen": ci, "rejected": ri}, {"answer": rk, "chosen": ci, "rejected": ri}])
                    credit.append(1.0 if a > b else 0.5 if a == b else 0.0)
        row.append(sum(credit) / len(credit))
    print(f"{topic:14s} {len(ps):5d} {len(credit):5d} " + " ".join(f"{v:13.3f}" for v in row))
