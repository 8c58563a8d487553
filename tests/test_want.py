"""The learned judge: a model of the form of a cluster's endorsed answers (uno_graph/want.py)."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import FakeAdapterSlots
from uno_graph import prompts
from uno_graph.adapters.train import TrainResult
from uno_graph.adapters.validate import ClusterData, PathValidator
from uno_graph.want import Labelled, WantJudge, WantModel, answer_form, auc, complete_part, cross_validated_auc

SUBJECTS = ["tomatoes", "roses", "a leaky tap", "a squeaky door", "basil", "a cracked tile", "mint", "a loose hinge",
            "lettuce", "a stuck window", "carrots", "a dripping shower"]


def prose(s: str) -> str:
    return (f"Caring for {s} takes some patience. You should check it every few days and adjust what you do. "
            f"Many people find that {s} needs less effort than they expected, and that is usually good news")


def bullets(s: str) -> str:
    return f"For {s}:\n- check it every few days\n- adjust what you do\n- keep notes on {s}"


def test_complete_part_hides_a_cut_off_ending():
    assert complete_part("One sentence here. Another that stops mid") == "One sentence here."
    assert complete_part("Ends well.") == "Ends well."
    assert answer_form("A complete sentence comes first. Then one is cut off mid") == \
        answer_form("A complete sentence comes first.")


def test_form_features_see_openings_line_heads_case_and_questions():
    f = answer_form("Short answer: no.\n- one\n- two?")
    assert f["open1=Short"] == 1 and f["head=- "] == 2 / 3 and f["end=?"] == 1 and f["lines=3"] == 1
    assert answer_form("all lower case here.")["no_capitals"] == 1


def test_a_want_learned_on_some_subjects_ranks_answers_on_others():
    train = SUBJECTS[:8]
    model = WantModel().fit([bullets(s) for s in train] + [prose(s) for s in train], [1] * 8 + [0] * 8)
    new = ["the car battery", "tyre pressure", "a flat bike tyre", "an oil change"]
    good, bad = model.score([bullets(s) for s in new]), model.score([prose(s) for s in new])
    assert auc(good + bad, [1] * 4 + [0] * 4) == 1.0
    assert dict(model.top_features(50))["head=- "] > 0


def test_consistency_separates_a_shared_want_from_contradicting_users():
    ids = [f"l{i}" for i in range(12)]
    folds = [ids[i::4] for i in range(4)]
    consistent = [x for i, s in zip(ids, SUBJECTS) for x in (Labelled(i, bullets(s), 1), Labelled(i, prose(s), 0))]
    assert cross_validated_auc(consistent, folds).auc >= 0.9
    # half the users want the list, the other half want it turned back into prose
    mixed = [x for k, (i, s) in enumerate(zip(ids, SUBJECTS))
             for x in ((Labelled(i, bullets(s), 1), Labelled(i, prose(s), 0)) if k % 2 else
                       (Labelled(i, prose(s), 1), Labelled(i, bullets(s), 0)))]
    assert cross_validated_auc(mixed, folds).auc < 0.8


def test_a_judge_fitted_on_one_label_only_calls_every_answer_a_tie():
    judge = WantJudge().fit([Labelled("a", "x", 1), Labelled("b", "y", 1)])
    assert judge.scores([{"answer": "anything"}, {"answer": "else"}]) == [0.0, 0.0]


# -- the validator with the learned judge ------------------------------------------------------------

class ListModel(FakeAdapterSlots):
    """Serving model stand-in: base answers in prose; an adapter path containing 'good' answers in bullets."""

    def generate_batch(self, conversations, adapters=None, **_):
        from langchain_core.messages import AIMessage

        good = "good" in self.loaded.get(adapters, "") if adapters else False
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            if "## Suggestion" in text:  # revise (base model): it does not follow the critique
                answer = text.split("## Initial Answer\n", 1)[1].split("\n\n## Suggestion", 1)[0]
            elif text.startswith(prompts.CRITIC_USER.split("\n", 1)[0]):  # critique
                answer = "1. Use a list."
            else:
                subject = text.removeprefix("How do I look after ").rstrip("?")
                answer = bullets(subject) if good else prose(subject)
            out.append(AIMessage(answer, response_metadata={"finish_reason": "stop"}))
        return out


def _cluster(contradicting: bool = False) -> ClusterData:
    pairs, rows = [], []
    for k, s in enumerate(SUBJECTS):
        q = f"How do I look after {s}?"
        logged, edit = prose(s), bullets(s)
        if contradicting and k % 2:
            logged, edit = bullets(s), prose(s)
        rows.append({"id": f"l{k}", "query": q, "prompt": [{"role": "user", "content": q}], "answer": logged,
                     "rules": ["Use a list."], "rule_source": "feedback"})
        if k % 3 != 2:  # a third of the users only complained: their answers still count as rejected
            pairs.append({"id": f"l{k}", "query": q, "prompt": [{"role": "user", "content": q}], "rules": ["Use a list."],
                          "chosen": edit, "rejected": logged})
    return ClusterData(pairs=pairs, rows=rows)


def _validator(kind, calls):
    def fit(role, objective, examples, tag, stop):
        calls.append((role, tag, len(examples)))
        return TrainResult(objective, [Path(f"{kind}/{tag}/epoch-{k}") for k in (1, 2)], [1.0, 0.5], 0.5, 1.0, 1.0,
                           len(examples))

    return PathValidator(ListModel(), WantJudge(), fit, folds=2, val_every=1)


def test_an_expert_in_the_wanted_form_wins_on_every_member_question():
    calls = []
    data = _cluster()
    assert len(data.judgeable) == 8 and len(data.rows) == 12
    route, verdicts = _validator("good", calls).choose("c1", data, "expert")
    assert route == "expert"
    v = verdicts[0]
    assert v.accepted and v.n_val == 12 and v.win_rate == 1.0  # complaint-only logs are validated too
    assert v.want["auc"] >= 0.9 and v.want["n_rejected"] == 12
    assert [c[:2] for c in calls] == [("expert", "fold-1"), ("expert", "fold-2")]


def test_an_expert_that_writes_like_base_is_not_served():
    route, verdicts = _validator("bad", []).choose("c1", _cluster(), "expert")
    assert route == "base" and not any(v.accepted for v in verdicts)
    expert, critic = verdicts
    assert expert.flaws == {"repeats_base": 6} and critic.flaws == {"repeats_base": 6}  # each stopped after fold 1


def test_contradicting_users_are_served_by_base_without_training():
    calls = []
    route, verdicts = _validator("good", calls).choose("c1", _cluster(contradicting=True), "expert")
    assert route == "base" and calls == []
    assert "no consistent want" in verdicts[0].reason and verdicts[0].want["auc"] < 0.8


def test_answers_of_the_same_form_tie_under_the_learned_judge():
    from uno_graph.verify import simulated_win_rate

    judge = WantJudge().fit([Labelled(f"l{k}", bullets(s), 1) for k, s in enumerate(SUBJECTS[:6])]
                            + [Labelled(f"l{k}", prose(s), 0) for k, s in enumerate(SUBJECTS[:6])])
    item = {"query": "How do I look after a fern?", "rules": [], "chosen": None, "rejected": prose("a fern")}
    same_form = ("Caring for ferns is easy. Look at them twice a week and change what is not working. Most owners "
                 "say a fern asks for less time than they feared, which is pleasant to hear")  # other words, same form
    result = simulated_win_rate([item], [prose("a fern")], [same_form], judge)
    assert result.details[0]["credit"] == 0.5
    assert simulated_win_rate([item], [prose("a fern")], [bullets("a fern")], judge).details[0]["credit"] == 1.0
