"""Stage logic with fakes: distill, verify, pairs, clustering, gap, work-directory resume."""

import json

import numpy as np

from tests.fakes import RuleTeacher
from uno_graph.cluster import cluster_logs, stable_ids
from uno_graph.config import UnoConfig
from uno_graph.distill import distill, grounded, parse_rules
from uno_graph.gap import calibrate, cluster_gap
from uno_graph.logs import parse_record
from uno_graph.pairs import build_pairs
from uno_graph.verify import ContrastJudge, LLMJudge, parse_score, simulated_win_rate, verify_pairs
from uno_graph.workdir import JsonlAppender, Workdir, read_jsonl


def _log(i, followup=None, edit=None, rating=None, answer="Boil water. Add pasta. Drain it."):
    msgs = [{"role": "user", "content": f"How do I cook dish {i}?"}, {"role": "assistant", "content": answer}]
    if followup:
        msgs.append({"role": "user", "content": followup})
    fb = {k: v for k, v in {"edited_response": edit, "rating": rating}.items() if v is not None}
    return parse_record({"id": f"log{i}", "user_id": "u1", "messages": msgs, "feedback": fb}, "t", i)


def test_parse_rules_accepts_json_and_lists_rejects_echoes():
    assert parse_rules('{"rules": ["Use a numbered list."]}') == ["Use a numbered list."]
    assert parse_rules("Sure:\n1. Be short.\n2. Start with the answer.") == ["Be short.", "Start with the answer."]
    assert parse_rules('{"rules": []}') == []
    assert parse_rules("## Initial query\nHow do I ...") is None
    assert parse_rules('{"rules": ["## Initial query"]}') is None


def test_teacher_rules_must_be_grounded_in_the_users_words(tmp_path):
    assert grounded(["Give the steps as a numbered list."], "Just list the steps with numbers please.")
    assert grounded(["Start with a TL;DR: line."], "I need the TL;DR: up front.")
    assert not grounded(["Use exactly 3 bullet points."], "I only needed a quick answer, not an essay.")
    assert grounded(["Anything."], "")  # an edit or a rating alone: nothing to check against
    teacher = RuleTeacher(keyword_rules={"essay": "Use exactly 3 bullet points."}, calls=[])
    (row,) = distill([_log(1, "I only needed a quick answer, not an essay.")], teacher, Workdir(tmp_path).create(),
                     progress=False)
    assert row["rule_source"] == "feedback" and row["rules"] == ["I only needed a quick answer, not an essay."]


def test_distill_edits_need_no_teacher_revision_and_weak_teacher_falls_back(tmp_path):
    wd = Workdir(tmp_path).create()
    teacher = RuleTeacher(keyword_rules={"numbered": "Give the steps as a numbered list."}, calls=[])
    logs = [_log(1, "Please use a numbered list.", edit="1. Boil water.\n2. Add pasta.\n3. Drain it."),
            _log(2, "Please use a numbered list."),
            _log(3, "Thanks!", rating=1),
            _log(4, "Hmm, I wanted it in French.")]
    rows = {r["id"]: r for r in distill(logs, teacher, wd, progress=False)}
    assert rows["log1"]["rules"] == ["Give the steps as a numbered list."] and rows["log1"]["revised"] is None
    assert rows["log2"]["revised"].startswith("1. ")  # teacher revision where no edit exists
    assert rows["log3"]["rule_source"] == "satisfied" and rows["log3"]["rules"] == []
    assert rows["log4"]["rules"] == [] and rows["log4"]["rule_source"] == "none"  # teacher said: nothing actionable
    assert not any("How do I cook dish 3" in c for c in teacher.calls)  # approvals cost no teacher call


def test_without_a_teacher_the_users_words_are_the_rules_and_nothing_is_revised(tmp_path):
    wd = Workdir(tmp_path).create()
    logs = [_log(1, "Too long. Just the steps, numbered.", edit="1. Boil water.\n2. Add pasta."),
            _log(2, "Please use a numbered list."),
            _log(3, "Thanks!", rating=1)]
    rows = {r["id"]: r for r in distill(logs, None, wd, progress=False)}
    assert rows["log1"]["rules"] == ["Too long.", "Just the steps, numbered."] and rows["log1"]["rule_source"] == "feedback"
    assert rows["log2"]["rules"] == ["Please use a numbered list."] and rows["log2"]["revised"] is None
    assert rows["log3"]["rule_source"] == "satisfied" and rows["log3"]["rules"] == []
    decisions = {d["id"]: d["reason"] for d in verify_pairs(list(rows.values()), None, wd, progress=False)}
    assert decisions == {"log1": "user_edit", "log2": "no_revision", "log3": "approved"}


def test_verify_and_pairs_edit_is_chosen_revision_needs_judge(tmp_path):
    wd = Workdir(tmp_path).create()
    teacher = RuleTeacher(keyword_rules={"numbered": "Give the steps as a numbered list."}, calls=[])
    logs = [_log(1, "numbered please", edit="1. A\n2. B"), _log(2, "numbered please"), _log(3, "ok", rating=1),
            _log(4, "meh", rating=-1)]
    rows = distill(logs, teacher, wd, progress=False)
    decisions = {d["id"]: d for d in verify_pairs(rows, LLMJudge(teacher), wd, progress=False)}
    assert decisions["log1"]["reason"] == "user_edit"
    assert decisions["log2"]["reason"] == "judge_improved" and decisions["log2"]["score_revised"] > decisions["log2"]["score_original"]
    assert decisions["log3"]["reason"] == "approved"
    pairs = {p["id"]: p for p in build_pairs(rows, list(decisions.values()), wd)}
    assert pairs["log1"]["chosen"] == "1. A\n2. B" and pairs["log1"]["rejected"] == logs[0].answer
    assert pairs["log3"]["chosen"] == pairs["log3"]["rejected"]
    assert pairs["log4"]["chosen"] is None and pairs["log4"]["source"] == "negative"
    assert all(p["user_id"] == "u1" for p in pairs.values())


def test_judge_rejects_worse_revision(tmp_path):
    class Harsh(RuleTeacher):
        def _reply(self, text):
            return '{"score": 2}' if "Expert Suggestion" in text else super()._reply(text)

    wd = Workdir(tmp_path).create()
    teacher = Harsh(keyword_rules={"numbered": "Use a numbered list."}, calls=[])
    rows = distill([_log(1, "numbered please")], teacher, wd, progress=False)
    (d,) = verify_pairs(rows, LLMJudge(teacher), wd, progress=False)
    assert d["keep"] is False and d["reason"] == "judge_not_better"
    assert parse_score("blah") is None and parse_score('{"score": 7, "reason": "x"}') == 7.0


def test_llm_judge_reply_budget_keeps_the_score():
    class Recording(RuleTeacher):
        budgets: list = []

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            self.budgets.append(kwargs.get("max_tokens"))
            return super()._generate(messages, stop, run_manager, **kwargs)

    teacher = Recording(calls=[], budgets=[])
    item = {"query": "q", "rules": ["Use a numbered list."], "answer": "1. a"}
    assert LLMJudge(teacher, max_tokens=24).scores([item]) == [9.0] and teacher.budgets == [24]
    assert LLMJudge(teacher).scores([item]) == [9.0] and teacher.budgets == [24, None]
    assert parse_score('{"score": 7, "reason": "the answer fol') == 7.0  # a reply cut after the score


def _blobs(seed):
    """blob(center, n, spread): n unit vectors in 8-d scattered around `center` (a seeded draw)."""
    rng = np.random.default_rng(seed)

    def blob(center, n, spread=0.05):
        v = center + spread * rng.standard_normal((n, 8))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return blob


def test_clustering_separates_topics_and_ids_are_stable():
    blob = _blobs(seed=0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    q = np.vstack([blob(a, 6), blob(b, 6)])
    r = np.vstack([blob(b, 6), blob(a, 6)])
    ids = [f"x{i:02d}" for i in range(12)]
    clusters = cluster_logs(ids, q, r, [["r"]] * 12, threshold=1.0)
    assert sorted(c.members for c in clusters) == [ids[:6], ids[6:]]
    again = cluster_logs(ids, q, r, [["r"]] * 12, threshold=1.0)
    assert [c.id for c in clusters] == [c.id for c in again]
    # one more log joins the first topic: that cluster keeps its id
    grown = cluster_logs(ids + ["x99"], np.vstack([q, blob(a, 1)]), np.vstack([r, blob(b, 1)]), [["r"]] * 13,
                         threshold=1.0, previous={c.id: c.members for c in clusters})
    assert {c.id for c in grown} == {c.id for c in clusters}
    assert stable_ids([["n1", "n2"]], {"old": ["o1"]})[0].startswith("c-")


def test_approvals_join_their_topic_instead_of_one_cluster_of_their_own():
    blob = _blobs(seed=1)
    a, b, far = np.eye(8)[0], np.eye(8)[1], np.eye(8)[5]
    # 5 + 5 logs with rules, 2 + 2 approvals of the same topics, 2 approvals of an unrelated topic
    q = np.vstack([blob(a, 5), blob(b, 5), blob(a, 2), blob(b, 2), blob(far, 2)])
    empty = blob(np.eye(8)[7], 1, 0.0)[0]  # every approval has the same (empty) rule vector
    r = np.vstack([blob(np.eye(8)[2], 5), blob(np.eye(8)[3], 5), np.tile(empty, (6, 1))])
    rules = [["r"]] * 10 + [[]] * 6
    ids = [f"x{i:02d}" for i in range(16)]
    groups = sorted(c.members for c in cluster_logs(ids, q, r, rules, threshold=1.0))
    assert groups == [ids[:5] + ids[10:12], ids[5:10] + ids[12:14], ids[14:]]


class KeywordScorer:
    """P(yes) high unless the suggestion is an unusual convention."""

    UNUSUAL = ("Pineapple", "capital letters", "exclamation", "square brackets", "TL;DR")

    def p_yes(self, texts):
        return [0.1 if any(w in t.split("## Suggestion", 1)[1] for w in self.UNUSUAL) else 0.9 for t in texts]


def test_gap_decides_both_ways_with_calibrated_threshold():
    scorer = KeywordScorer()
    cal = calibrate(scorer, ["q1", "q2", "q3"])
    assert cal.covered_novelty < cal.threshold < cal.novel_novelty and cal.separation > 0.5
    usual = cluster_gap(scorer, [{"query": "q", "rules": ["Answer in one sentence."]}] * 3)
    novel = cluster_gap(scorer, [{"query": "q", "rules": ["Start with TL;DR.", "Be nice."]}] * 3)
    assert usual["min_novelty"] < cal.threshold  # → expert
    assert novel["max_novelty"] >= cal.threshold and novel["min_novelty"] < cal.threshold  # min, as the paper
    all_novel = cluster_gap(scorer, [{"query": "q", "rules": ["Start with TL;DR."]}] * 3)
    assert all_novel["min_novelty"] >= cal.threshold  # → critic
    assert cluster_gap(scorer, [{"query": "q", "rules": []}])["scored_logs"] == 0


def test_verifier_bleu_guard_and_ties():
    items = [{"query": "q", "rules": [], "chosen": "TL;DR: go. Take the train to Rome.",
              "rejected": "Take the train to Rome."}] * 2
    base = ["Take the train to Rome."] * 2
    better = simulated_win_rate(items, base, ["TL;DR: go. Take the train to Rome."] * 2, ContrastJudge())
    same = simulated_win_rate(items, base, base, ContrastJudge())
    drift = simulated_win_rate(items, base, ["zebra zebra zebra"] * 2, ContrastJudge())
    assert better.win_rate == 1.0 and drift.win_rate == 0.0
    assert same.win_rate == 0.0 and same.details[0]["flaw"] == "repeats_base"  # was a tie: nothing learned


def test_verifier_lets_an_expert_win_when_users_asked_for_brevity():
    base = ("The capital of Peru is Lima. Lima is a large city on the Pacific coast, founded in 1535, and it is "
            "home to many museums, markets and historic churches that visitors enjoy throughout the year.")
    items = [{"query": "Capital of Peru?", "rules": [], "chosen": "The capital of Peru is Lima.", "rejected": base}]
    short = simulated_win_rate(items, [base], ["The capital of Peru is Lima."], ContrastJudge())
    assert short.win_rate == 1.0  # < 10 % of base's length and BLEU's brevity penalty would have sunk it
    unrelated = simulated_win_rate(items, [base], ["Bananas grow in warm places; monkeys like them a lot."], ContrastJudge())
    assert unrelated.win_rate == 0.0  # anchored to the user's answer: no overlap, no win


def test_drift_guard_applies_to_llm_judges_not_to_the_anchored_contrast_judge():
    class Gullible:  # an LLM-like judge that loves anything
        def scores(self, items):
            return [9.0 if "zebra" in it["answer"] else 5.0 for it in items]

    items = [{"query": "q", "rules": [], "chosen": "Take the train.", "rejected": "Walk."}]
    gamed = simulated_win_rate(items, ["Take the bus to Rome, it is quick."], ["zebra zebra zebra zebra"], Gullible())
    assert gamed.win_rate == 0.0  # BLEU drift guard
    fixed = simulated_win_rate(items, ["Walk to Rome, it is far."], ["Take the train."], ContrastJudge())
    assert fixed.win_rate == 1.0  # fixes the content users corrected, shares little with base: still wins


def test_torn_tail_is_dropped_and_stage_resumes(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n" + '{"id": 2, "x"')  # killed mid-write
    assert read_jsonl(path) == [{"id": 1}]
    app = JsonlAppender(path)
    app.write({"id": 3})
    app.close()
    assert read_jsonl(path) == [{"id": 1}, {"id": 3}]
    wd = Workdir(tmp_path / "w").create()
    assert wd.begin("s", "fp1") is True
    wd.mark_done("s", "fp1")
    assert wd.begin("s", "fp1") is False
    assert wd.begin("s", "fp2") is True  # inputs changed: redo


def test_learn_flags_reach_the_training_settings():
    from uno_graph.cli import _config, build_parser

    args = build_parser().parse_args(["learn", "logs.jsonl", "--workdir", "w", "--epochs", "3", "--batch-size", "4"])
    cfg = _config(args)
    assert (cfg.train.epochs, cfg.train.batch_size) == (3, 4)
    assert _config(build_parser().parse_args(["learn", "l", "--workdir", "w"])).train == UnoConfig().train


class FixedGapScorer:
    """Mean log-likelihood: the model's own words are likely; capitals, 'Pineapple' and another
    question's answer are not."""

    def mean_logprob(self, prompts_, answers):
        def own(prompt, answer):
            return not prompt or f"Answer {prompt[0]['content'][1:]}." in answer
        return [-3.0 if (a.isupper() or "Pineapple" in a or not own(p, a)) else -1.0 for p, a in zip(prompts_, answers)]


def test_likelihood_gap_calibrates_on_anchors_and_orders_clusters():
    from uno_graph.gap import calibrate_likelihood, cluster_likelihood_gap

    logs = [{"prompt": [{"role": "user", "content": f"q{i}"}], "answer": f"Answer {i}. More words here."}
            for i in range(6)]
    cal = calibrate_likelihood(FixedGapScorer(), logs, per_anchor=6)
    assert cal.covered_gap < cal.threshold < cal.novel_gap and cal.auc > 0.9
    near = [{"prompt": [], "chosen": "1. Answer.", "rejected": "Answer."}] * 3
    far = [{"prompt": [], "chosen": "PINEAPPLE: ANSWER!!!", "rejected": "Answer."}] * 3
    approvals = [{"prompt": [], "chosen": "Same.", "rejected": "Same."}]
    assert cluster_likelihood_gap(FixedGapScorer(), near + approvals)["gap"] < cal.threshold
    assert cluster_likelihood_gap(FixedGapScorer(), far + approvals)["gap"] >= cal.threshold
    assert cluster_likelihood_gap(FixedGapScorer(), approvals)["scored_logs"] == 0


def test_clusters_of_one_want_merge_and_small_ones_join_by_rules():
    from uno_graph.cluster import merge_by_rules

    blob = _blobs(seed=2)
    want_a, want_b = np.eye(8)[0], np.eye(8)[1]
    rule_vecs = np.vstack([blob(want_a, 6), blob(want_a, 6), blob(want_b, 6), blob(want_b, 2), blob(np.eye(8)[5], 2)])
    # Ward split want A by subject (two groups of 6); want B has a straggler group of 2; one odd group of 2
    groups = [list(range(0, 6)), list(range(6, 12)), list(range(12, 18)), [18, 19], [20, 21]]
    merged = sorted(sorted(g) for g in merge_by_rules(groups, rule_vecs, merge_similarity=0.75, min_size=4,
                                                      join_similarity=0.5))
    assert merged == [list(range(12)), list(range(12, 20)), [20, 21]]  # the odd one stays small → base
    # merging off (the default): the subject groups stay apart, the small ones still join by rules
    kept = sorted(sorted(g) for g in merge_by_rules(groups, rule_vecs, merge_similarity=None, min_size=4,
                                                    join_similarity=0.5))
    assert kept == [list(range(6)), list(range(6, 12)), list(range(12, 20)), [20, 21]]


def test_cluster_purity_against_topic_labels():
    from uno_graph.pipeline import cluster_purity

    clusters = [{"topics": {"a": 9, "b": 1}}, {"topics": {"b": 8}}, {"topics": {"a": 2}}]
    assert cluster_purity(clusters) == {"purity": 0.95, "completeness": 0.85, "clusters": 3, "topics": 2,
                                       "split_topics": ["a"]}
    assert cluster_purity([{"topics": {"-": 3}}]) is None


def test_contrast_judge_sees_the_form_a_user_edit_added():
    # the edit only appended a question: the words barely change, the form does
    rejected = "Restart the router, then check the cable. Most drops come from a loose plug."
    item = {"query": "wifi keeps dropping", "rules": [], "chosen": rejected + " Did that fix it?", "rejected": rejected}
    other_topic_base = "Update the driver and reboot the laptop. Old drivers often cause it."
    in_form = other_topic_base + " Is it stable now?"
    words_only, with_form = ContrastJudge(form_weight=0), ContrastJudge()
    gain = lambda j: j.scores([{**item, "answer": in_form}])[0] - j.scores([{**item, "answer": other_topic_base}])[0]  # noqa: E731
    assert gain(with_form) > 2 * gain(words_only) > 0
    bullets = "- Restart the router\n- Check the cable\n- Move closer"
    prose = "Restart the router and check the cable, or move closer to it."
    list_item = {"query": "q", "rules": [], "chosen": "- Plug it in\n- Wait a minute\n- Try again",
                 "rejected": "Plug it in, wait a minute and then try again."}
    s_list, s_prose = with_form.scores([{**list_item, "answer": bullets}, {**list_item, "answer": prose}])
    assert s_list > s_prose


def test_shape_keeps_structure_and_forgets_content():
    from uno_graph.metrics import rouge_l_shape, shape

    assert shape("Short answer: yes.\n- one\n- two words here") == [
        "short", "answer", ":", "yes", ".", "\n", "-", "w1", "\n", "-", "w1", "\n"]
    a = "Well, here goes. 1. Boil the water\n2. Add the pasta\n3. Drain it"
    b = "Well, here goes. 1. Chop the onions\n2. Fry them slowly\n3. Serve them"
    assert rouge_l_shape(a, b) == 1.0
    assert rouge_l_shape(a, "Well, here goes. Boil water, add pasta and drain it.") < 0.6


def test_clustering_on_queries_ignores_how_users_phrased_the_same_want():
    from uno_graph.cluster import cluster_logs

    blob = _blobs(seed=3)
    # two subjects; within each, users phrase their complaint in two unrelated ways
    q = np.vstack([blob(np.eye(8)[0], 8), blob(np.eye(8)[1], 8)])
    r = np.vstack([blob(np.eye(8)[2], 4), blob(np.eye(8)[3], 4), blob(np.eye(8)[2], 4), blob(np.eye(8)[3], 4)])
    ids = [f"x{i:02d}" for i in range(16)]
    on_queries = sorted(c.members for c in cluster_logs(ids, q, r, [["r"]] * 16, threshold=1.0, on="query"))
    assert on_queries == [ids[:8], ids[8:]]
    on_both = sorted(c.members for c in cluster_logs(ids, q, r, [["r"]] * 16, threshold=1.0, on="query+rules"))
    assert len(on_both) == 4  # [query ⊕ rules] also splits each subject by phrasing


def test_the_silhouette_cut_does_not_depend_on_how_close_the_subjects_sit():
    from uno_graph.cluster import agglomerate, best_cut

    blob = _blobs(seed=4)
    expected = [list(range(0, 8)), list(range(8, 16)), list(range(16, 24))]
    for shared in (0.0, 4.0):  # 4.0: the three subjects share most of their direction (long questions
        # that open with context about the asker sit closer together than short one-line questions)
        centers = [np.eye(8)[7] * shared + np.eye(8)[k] for k in range(3)]
        q = np.vstack([blob(c / np.linalg.norm(c), 8, 0.02) for c in centers])
        labels = best_cut(q, min_size=6)
        groups = sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in set(labels.tolist()))
        assert groups == expected, shared
        # the paper's fixed merge height separates the distant subjects and merges the close ones
        assert len(set(agglomerate(q, 1.5).tolist())) == (3 if shared == 0.0 else 1)
    assert set(best_cut(q[:10], min_size=6).tolist()) == {0}  # too few logs for two clusters of min_size


def test_on_queries_approvals_are_clustered_with_the_rest_and_small_groups_stay_apart():
    from uno_graph.cluster import cluster_logs

    blob = _blobs(seed=5)
    q = np.vstack([blob(np.eye(8)[0], 8), blob(np.eye(8)[1], 8), blob(np.eye(8)[2], 3)])
    r = np.vstack([blob(np.eye(8)[3], 19)])
    rules = [["r"]] * 6 + [[]] * 2 + [["r"]] * 6 + [[]] * 2 + [["r"]] * 3  # approvals in both subjects
    ids = [f"x{i:02d}" for i in range(19)]
    clusters = cluster_logs(ids, q, r, rules, threshold=None, on="query", min_size=6)
    groups = sorted(c.members for c in clusters)
    assert groups == [ids[:8], ids[8:16], ids[16:]]  # the 3-log group did not join a cluster by its rules


def test_edit_directions_tell_one_want_from_another_across_subjects():
    from uno_graph.want import edit_directions

    def bulleted(i):
        return f"- point {i}\n- second point\n- third point"

    plain = "This is a long plain answer about the subject that goes on for a while. It says little."
    lowercase = [(f"a short lower answer number {i}.", f"A Long Answer Number {i}. It Says Little.") for i in range(6)]
    bullets = [(bulleted(i), plain) for i in range(6)]
    directions, has = edit_directions(lowercase + bullets + [None])
    assert has.tolist() == [True] * 12 + [False]
    assert not directions[12].any()  # no edit, no direction
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True).clip(min=1e-12)
    same = float(unit[0] @ unit[1]), float(unit[6] @ unit[7])
    other = float(unit[0] @ unit[6])
    assert min(same) > 0.5 > other


def test_edit_directions_tell_two_added_labelled_lines_apart():
    # one want adds a "Warning:" line inside the answer, the other a "Sources:" line there: to the
    # answer's form alone both add a line that opens with a capitalised word and a colon
    from uno_graph.want import edit_directions

    def answer(i, extra=""):
        return f"Answer number {i} says what to do.\n{extra}It goes on with a detail."

    warning = [(answer(i, "Warning: check the gear first.\n"), answer(i)) for i in range(6)]
    sources = [(answer(i, f"Sources: guide {i}, manual.\n"), answer(i)) for i in range(6)]
    # other changes of other wants, so that the mean change is neither
    shorter = [(f"Answer {i}.", answer(i)) for i in range(6)]
    bullets = [(answer(i, "- first\n- second\n"), answer(i)) for i in range(6)]
    lowercase = [(answer(i).lower(), answer(i)) for i in range(6)]
    directions, _ = edit_directions(warning + sources + shorter + bullets + lowercase)
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True).clip(min=1e-12)
    mean = lambda rows: unit[rows].mean(axis=0) / np.linalg.norm(unit[rows].mean(axis=0))  # noqa: E731
    assert float(mean(slice(0, 3)) @ mean(slice(3, 6))) > 0.9  # one want, two halves
    # both add one line, so much of the change is shared; the line's first token sets them apart
    # (answer_form alone: cosine 0.998)
    assert float(mean(slice(0, 6)) @ mean(slice(6, 12))) < 0.7


def test_query_groups_of_one_want_merge_and_are_routed_to_through_each_group():
    from uno_graph.cluster import cluster_logs, merge_by_want
    from uno_graph.router import RouteTable

    blob = _blobs(seed=6)
    # four subjects; users of subjects 0 and 2 made one change, users of 1 and 3 another
    q = np.vstack([blob(np.eye(8)[k], 6) for k in range(4)])
    r = np.zeros((24, 1))
    change = {0: np.eye(4)[0], 1: np.eye(4)[1], 2: np.eye(4)[0], 3: np.eye(4)[1]}
    directions = np.vstack([blob(np.pad(change[k], (0, 4)), 6, 0.3) for k in range(4)])
    has = np.ones(24, dtype=bool)
    has[23] = False
    ids = [f"x{i:02d}" for i in range(24)]
    groups = [list(range(6 * k, 6 * k + 6)) for k in range(4)]
    merged = merge_by_want(groups, directions, has, similarity=0.5)
    assert sorted(sorted(sum(m, [])) for m in merged) == [groups[0] + groups[2], groups[1] + groups[3]]
    # a group with fewer than two changed answers has no direction and stays as it is
    lone = merge_by_want(groups + [[23]], directions, has, similarity=0.5)
    assert [[23]] in lone
    clusters = cluster_logs(ids, q, r, [["r"]] * 24, threshold=None, on="query", min_size=6,
                            directions=directions, has_direction=has, want_similarity=0.5)
    assert sorted(c.members for c in clusters) == [sorted(ids[0:6] + ids[12:18]), sorted(ids[6:12] + ids[18:24])]
    assert all(len(c.parts) == 2 for c in clusters)
    off = cluster_logs(ids, q, r, [["r"]] * 24, threshold=None, on="query", min_size=6)
    assert len(off) == 4 and not any(c.parts for c in off)

    class Store:  # the table as the store reads it: a want cluster's row lists its query groups
        def read_clusters(self):
            c = clusters[0]
            parts = json.dumps([{"radius": p.radius, "centroid": p.centroid.tolist()} for p in c.parts])
            return [c.id], np.asarray([c.centroid], dtype=np.float32), [{"radius": c.radius, "parts": parts}]

    table = RouteTable.read(Store())
    assert table.ids == (clusters[0].id, clusters[0].id)
    member = q[ids.index(clusters[0].parts[1].members[0])]
    row, distance = table.nearest(member)
    assert row["id"] == clusters[0].id and distance <= row["radius"] * 1.5
    # the mean of the two subjects sits far from either: one centroid would not have reached the query
    assert float(np.linalg.norm(clusters[0].centroid - member)) > distance


def test_incremental_extension_attaches_a_new_log_to_the_nearest_query_group_of_a_want_cluster():
    from uno_graph.cluster import cluster_logs
    from uno_graph.incremental import extend_clusters

    blob = _blobs(seed=7)
    q = np.vstack([blob(np.eye(8)[k], 6) for k in range(2)] + [np.zeros((1, 8))])
    q[12] = q[6:12].mean(axis=0)  # a new question at the heart of the second subject
    directions = np.vstack([blob(np.eye(8)[0], 12, 0.3), np.zeros((1, 8))])
    has = np.asarray([True] * 12 + [False])
    ids = [f"x{i:02d}" for i in range(13)]
    first = cluster_logs(ids[:12], q[:12], np.zeros((12, 1)), [["r"]] * 12, threshold=None, on="query", min_size=6,
                         directions=directions[:12], has_direction=has[:12], want_similarity=0.5)
    assert len(first) == 1 and len(first[0].parts) == 2
    previous = [{"id": c.id, "members": c.members, "centroid": c.centroid.tolist(), "radius": c.radius,
                 "parts": [{"members": p.members, "centroid": p.centroid.tolist(), "radius": p.radius} for p in c.parts]}
                for c in first]
    grown, attached = extend_clusters(previous, ids, q, np.zeros((13, 1)), [["r"]] * 13, None, margin=1.5)
    assert attached == 1 and [c.id for c in grown] == [first[0].id]
    assert ids[12] in grown[0].members and len(grown[0].parts) == 2
    assert ids[12] in next(p.members for p in grown[0].parts if ids[6] in p.members)
