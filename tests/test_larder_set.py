"""The eighth evaluation-only log set (`examples/larder/`) is well-formed; it is kept sealed for one
final evaluation, so nothing here looks at how any model does on it (only at the logged base answers
and users' edits, which are part of the set)."""

import collections
import doctest
import importlib.util
import json
import re
from pathlib import Path

from uno_graph.evaluate import read_testset
from uno_graph.logs import read_logs

HERE = Path(__file__).resolve().parent.parent / "examples" / "larder"
OTHER_SETS = ["logs.jsonl", "test.jsonl"] + [f"{d}/{f}" for d in ("heldout", "unseen", "sealed", "reserve", "vault", "cellar")
                                             for f in ("logs.jsonl", "test.jsonl")]
USER_ID = re.compile(r"^[a-z]+\.\d{2}$")
WANT_TOPICS = ["time-needed", "short-sentences", "q-and-a", "pros-cons"]


def _checks():
    spec = importlib.util.spec_from_file_location("larder_checks", HERE / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _turns(row: dict) -> list[str]:
    """The user turns before the first answer (an assistant turn after a user turn), normalised."""
    out, seen_user = [], False
    for m in row["messages"]:
        if m["role"] == "assistant" and seen_user:
            break
        if m["role"] == "user":
            out.append(" ".join(m["content"].lower().split()))
            seen_user = True
    return out


def _questions(path: Path) -> set[str]:
    return {t for row in _rows(path) for t in _turns(row)}


def test_larder_logs_and_test_items_read_cleanly_and_do_not_overlap():
    report = read_logs(HERE / "logs.jsonl")
    assert len(report.records) == 110 and not report.problems and not report.warnings and report.duplicates == 0
    assert collections.Counter(r.metadata["topic"] for r in report.records) == dict.fromkeys(_checks().CHECKS, 22)
    assert all(r.metadata.get("subject") and r.user_id and r.has_signal for r in report.records)
    items, problems = read_testset(HERE / "test.jsonl")
    assert len(items) == 60 and not problems
    assert collections.Counter(i.metadata["topic"] for i in items) == dict.fromkeys(_checks().CHECKS, 12)
    # the question the reader finds is the user's turns before the answer, joined (a two-turn question's
    # opener and question), also after the chatbot's greeting
    logged = {"\n".join(_turns(r)) for r in _rows(HERE / "logs.jsonl")}
    tested = {"\n".join(_turns(r)) for r in _rows(HERE / "test.jsonl")}
    assert {"\n".join(" ".join(x.split()) for x in r.query.lower().split("\n")) for r in report.records} == logged
    assert {"\n".join(" ".join(x.split()) for x in i.query.lower().split("\n")) for i in items} == tested
    assert len(logged) == 110 and len(tested) == 60
    mine_logged, mine_tested = _questions(HERE / "logs.jsonl"), _questions(HERE / "test.jsonl")
    assert not mine_logged & mine_tested  # no turn of a test item is a logged turn
    others = set()
    for name in OTHER_SETS:
        others |= _questions(HERE.parent / name)
    assert not (mine_logged | mine_tested) & others


def test_larder_conversations_have_the_set_shape():
    """A greeted question comes after one assistant turn (the chatbot's greeting), a two-turn one after
    the user's opener; the answer is the assistant turn right after the question; only user turns
    follow it; test items end with the question."""
    shapes = collections.Counter()
    for row in _rows(HERE / "logs.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        start = 1 if roles[0] == "assistant" else 0
        k = roles.index("assistant", start)
        assert k - start in (1, 2) and set(roles[start:k]) == {"user"}, row["id"]
        assert set(roles[k + 1:]) <= {"user"}, row["id"]
        shapes[(start, k - start)] += 1
    assert shapes[(1, 1)] == 15 and shapes[(0, 2)] == 20 and shapes[(0, 1)] == 75
    tests = collections.Counter(tuple(m["role"] for m in row["messages"]) for row in _rows(HERE / "test.jsonl"))
    assert tests == {("user",): 40, ("assistant", "user"): 10, ("user", "user"): 10}


def test_larder_test_items_have_one_unlogged_subject_per_topic():
    logged = collections.defaultdict(set)
    for row in _rows(HERE / "logs.jsonl"):
        logged[row["metadata"]["topic"]].add(row["metadata"]["subject"])
    per_topic = collections.defaultdict(list)
    for row in _rows(HERE / "test.jsonl"):
        per_topic[row["metadata"]["topic"]].append(row["metadata"]["subject"])
    assert set(per_topic) == set(logged)
    for topic, subjects in per_topic.items():
        assert len(subjects) == 12 and len(logged[topic]) == 2
        assert all(subjects.count(s) == 4 for s in logged[topic])
        assert len(set(subjects) - logged[topic]) == 1 and sum(s not in logged[topic] for s in subjects) == 4
    mine = set().union(*logged.values()) | {s for subjects in per_topic.values() for s in subjects}
    mine |= set(per_topic) - {"inconsistent"}  # the want topics are new too
    for name in OTHER_SETS:
        other = set()
        for row in _rows(HERE.parent / name):
            other |= {row["metadata"].get("subject"), row["metadata"].get("topic")}
        assert not other & mine, name


def test_larder_test_items_carry_a_returning_user_of_their_topic():
    writers = collections.defaultdict(collections.Counter)  # topic -> user -> logs
    for row in _rows(HERE / "logs.jsonl"):
        writers[row["metadata"]["topic"]][row["user_id"]] += 1
    for row in _rows(HERE / "test.jsonl"):
        # a returning user: at least three logs in that topic (contrarians have two, one-off users one)
        assert writers[row["metadata"]["topic"]][row["user_id"]] >= 3, (row["id"], row["user_id"])
    for row in _rows(HERE / "logs.jsonl") + _rows(HERE / "test.jsonl"):
        assert USER_ID.match(row["user_id"]), row["user_id"]
    users = {u for counts in writers.values() for u in counts}
    assert len(users) == 38
    assert all(sum(u in counts for counts in writers.values()) == 1 for u in users)  # one topic per user
    assert [r["id"] for r in _rows(HERE / "logs.jsonl")] == [f"larder-log-{n:03d}" for n in range(1, 111)]
    assert [r["id"] for r in _rows(HERE / "test.jsonl")] == [f"larder-test-{n:02d}" for n in range(1, 61)]


def test_larder_half_the_logs_carry_an_edit_and_base_answers_miss_the_wants():
    checks = _checks()
    edits = collections.Counter()
    failing = collections.Counter()
    base = collections.Counter()
    for r in read_logs(HERE / "logs.jsonl").records:
        topic = r.metadata["topic"]
        base[topic] += checks.check({"metadata": {"topic": topic}}, r.answer)
        if r.feedback.edited_response:
            edits[topic] += 1
            failing[topic] += not checks.check({"metadata": {"topic": topic}}, r.feedback.edited_response)
    assert edits == dict.fromkeys(checks.CHECKS, 11)  # 55 of the 110 logs
    # the base model's answers (nearly) never meet a want; some edits miss theirs
    assert sum(base[t] for t in WANT_TOPICS) <= 2 and all(base[t] <= 1 for t in WANT_TOPICS)
    assert all(failing[t] >= 3 for t in WANT_TOPICS)  # 3 planned misses per want topic, and the contrarian's edit
    assert failing["inconsistent"] <= 1


def test_larder_checks_doctests_and_edge_cases():
    checks = _checks()
    assert doctest.testmod(checks).failed == 0
    topics = {row["metadata"]["topic"] for row in _rows(HERE / "test.jsonl")}
    assert topics == set(checks.TOPIC_PREFERENCES) == set(checks.CHECKS)
    item = lambda t: {"metadata": {"topic": t}}  # noqa: E731
    # time-needed
    assert checks.check(item("time-needed"), "Chain 20, turn, repeat.\n  Time needed:   45 minutes.  ")
    assert checks.check(item("time-needed"), "```\nBIOS\n```\nTime needed: 120 minutes")
    for wrong in ["Time needed: about 45 minutes", "Time needed: 45-60 minutes", "Time needed: 45 mins", "Time needed: 45 min",
                  "Time needed: 2 hours", "Time needed: forty-five minutes", "Time needed: 1 minutes", "Time needed: 2 minute",
                  "Time needed:45 minutes", "Time Needed: 45 minutes", "Time: 45 minutes", "**Time needed:** 45 minutes",
                  "- Time needed: 45 minutes", "Time needed: 45 minutes (plus drying)", "Time needed: 0 minutes",
                  "Time needed: 045 minutes", "Time needed: 1000 minutes", "Time needed: ~45 minutes", "Time needed: 45 minutes!"]:
        assert not checks.check(item("time-needed"), f"Chain 20, turn, repeat.\n{wrong}"), wrong
    assert not checks.check(item("time-needed"), "Time needed: 45 minutes\n\nChain 20, turn, repeat.")
    assert not checks.check(item("time-needed"), "Chain 20.\nTime needed: 45 minutes\nHave fun!")
    assert not checks.check(item("time-needed"), "Chain 20, turn, repeat. Time needed: 45 minutes")
    # short-sentences
    ok = ("Sort your receipts first. Then open the tax form on the website. Fill in your income from each job. "
          "Add the deductions you can claim last. Check every number twice before sending.")
    assert checks.check(item("short-sentences"), ok + " File it online.")
    assert checks.check(item("short-sentences"), "Here is the order:\n- Sort your receipts first\n- Open the form\n"
                        "- Fill in your income and deductions\n- Check every number twice\n"
                        "- File it online before the deadline\n- Keep a copy for five years")
    assert checks.check(item("short-sentences"), "A pothos is easy! It likes bright, indirect light. Water it when the "
                        "top inch is dry. Yellow leaves mean too much water. Repot it every two years in spring. "
                        "That's about it, really.")
    assert not checks.check(item("short-sentences"), ok + " Then file it online before the end of April so that you avoid the fee.")
    assert not checks.check(item("short-sentences"), ok.replace("website. Fill", "website, and fill"))  # 15 words
    assert not checks.check(item("short-sentences"), "Sort your receipts. Open the form. Fill it in.")  # under 30 words
    assert not checks.check(item("short-sentences"), ok + "\n```\nx = 1\n```")
    assert not checks.check(item("short-sentences"), "Here is the order:\n- Sort your receipts first and then open the "
                            "form and fill in your income\n- Check it\n- File it online before the deadline")
    # q-and-a
    qa = "Q: How far can it go?\nA: About 300 km on a charge.\n\nQ: How long does charging take?\nA: About eight hours at home."
    assert checks.check(item("q-and-a"), qa)
    assert checks.check(item("q-and-a"), "  " + qa.replace("\n", "\n\n") + "\n\n")
    assert checks.check(item("q-and-a"), qa + "\nQ: Is it cheaper to run?\nA: Usually, yes.")
    for wrong in [qa.replace("Q: ", "Q1: ", 1), qa.replace("Q:", "Q."), qa.replace("Q:", "Question:").replace("A:", "Answer:"),
                  qa.replace("Q: How far", "- Q: How far"), qa.replace("Q:", "q:"), qa + "\nHope this helps!",
                  "Sure! Here's a FAQ:\n" + qa, qa.replace("on a charge.", "on a charge.\nMore in winter."),
                  qa.replace("take?", "take"), "Q: How far can it go?\nQ: And charging?\nA: 300 km.\nA: Eight hours.",
                  qa.replace("Q: How far", "Q:How far"), "```\n" + qa + "\n```", qa.replace("A: About eight hours at home.", "A:"),
                  qa.replace("Q:", "**Q:**").replace("A:", "**A:**")]:
        assert not checks.check(item("q-and-a"), wrong), wrong
    # pros-cons
    pc = "It depends on your rate.\nPros: you own it sooner.\nCons: higher monthly payments."
    assert checks.check(item("pros-cons"), pc)
    assert checks.check(item("pros-cons"), "Pros: you own it sooner.\n\n  Cons: higher payments.\n\nI'd take it if you can afford it.")
    assert checks.check(item("pros-cons"), pc.replace("Pros: ", "Pros:"))
    for wrong in [pc.replace("Pros:", "**Pros:**").replace("Cons:", "**Cons:**"), pc.replace("Pros:", "Pro:").replace("Cons:", "Con:"),
                  pc.replace("Pros:", "PROS:"), pc.replace("Pros:", "Advantages:").replace("Cons:", "Disadvantages:"),
                  pc.replace("Pros:", "Pros -"), pc.replace("Pros:", "- Pros:"), pc.replace("\nCons:", " Cons:"),
                  "It depends.\nCons: higher payments.\nPros: you own it sooner.", "It depends.\nPros: you own it sooner.",
                  pc + "\nPros: less interest overall.", "It depends.\nPros:\n- you own it sooner\nCons:\n- higher payments",
                  "Pros: you own it sooner.\nCons: higher payments.", "It depends.\n```\nPros: sooner\nCons: higher\n```",
                  pc.replace("Pros:", "pros:")]:
        assert not checks.check(item("pros-cons"), wrong), wrong
    # inconsistent
    assert not checks.check(item("inconsistent"), "too short")
    assert not checks.check(item("inconsistent"), " ".join(["word"] * 151))
