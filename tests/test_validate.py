"""Path validation: degenerate answers lose, decisions use a confidence bound, every outcome of a cluster."""

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from tests.fakes import FakeAdapterSlots
from uno_graph import prompts
from uno_graph.adapters.train import TrainResult
from uno_graph.adapters.validate import ClusterData, PathValidator, make_folds, pick_epoch
from uno_graph.verify import ContrastJudge, VerifierResult, degenerate, simulated_win_rate, wilson_bounds

Q = "What is the longest river in Spain?"
BASE = "Spain has many rivers. The Ebro flows through the north and the Tagus through the centre of the country."
EDIT = "The longest river in Spain is the Tagus."


def _win(candidate, finish=None, base=BASE):
    item = [{"query": Q, "rules": [], "chosen": EDIT, "rejected": base}]
    return simulated_win_rate(item, [base], [candidate], ContrastJudge(), finish_reasons=[finish])


def test_a_good_candidate_wins():
    assert _win(EDIT).win_rate == 1.0 and _win(EDIT).details[0]["flaw"] is None


def test_empty_candidate_loses():
    assert degenerate("  \n", query=Q, base=BASE) == "empty" and _win("").win_rate == 0.0


def test_echoing_the_question_loses():
    # "Sure. <question>" shares the question's words with the user's short edit, so ROUGE alone rewards it
    echo = "Sure. What is the longest river in Spain?"
    assert degenerate(echo, query=Q, base=BASE) == "echoes_question"
    assert _win(echo).win_rate == 0.0
    assert degenerate("The longest river in Spain is the Tagus.", query=Q, base=BASE) is None  # restates, answers


def test_repeating_the_base_answer_loses():
    assert degenerate(BASE + " ", query=Q, base=BASE) == "repeats_base"
    assert _win(BASE).win_rate == 0.0  # a tie before; an adapter that changes nothing has learned nothing


def test_an_answer_cut_off_mid_sentence_loses():
    cut = "The longest river in Spain is the Tagus, which flows from the mountains of"
    assert degenerate(cut, query=Q, base=BASE, finish_reason="length") == "cut_off"
    assert _win(cut, finish="length").win_rate == 0.0
    assert degenerate(cut, query=Q, base=BASE, finish_reason="stop") is None  # ended by the model itself
    assert degenerate("- one\n- two\n- three.", query=Q, base=BASE, finish_reason="length") is None


def test_an_answer_in_another_language_loses():
    spanish = "El río más largo de España es el Tajo, que nace en la sierra y llega hasta Lisboa."
    greek = "Ο μεγαλύτερος ποταμός της Ισπανίας είναι ο Τάγος."
    assert degenerate(spanish, query=Q, base=BASE) == "other_language"
    assert degenerate(greek, query=Q, base=BASE) == "other_language"
    assert _win(spanish).win_rate == 0.0
    code = "```python\nimport random\nprint(random.randint(1, 10))\n```"
    assert degenerate(code, query="How do I get a random number in Python?", base=BASE) is None


def test_decision_uses_a_lower_bound_not_the_point_estimate():
    seven, nine = wilson_bounds(7, 10)[0], wilson_bounds(9, 10)[0]
    assert seven < 0.5 < nine  # 70 % of 10 is not reliably better than a coin flip; 90 % is
    assert wilson_bounds(2, 2)[0] < 0.5 < wilson_bounds(8, 8)[0]  # 2 of 2 decides nothing
    folds = [VerifierResult(1.0, 2, 2, [{"credit": 1.0, "score": 1, "base_score": 0}] * 2),
             VerifierResult(0.5, 1, 2, [{"credit": 1.0, "score": 1, "base_score": 0}, {"credit": 0.0, "score": 0,
                                                                                       "base_score": 1}])]
    both = VerifierResult.combine(folds)
    assert (both.n, both.wins, both.win_rate) == (4, 3.0, 0.75) and both.lower_bound == wilson_bounds(3, 4)[0]


def test_folds_cover_every_judgeable_pair_once():
    ids = [f"p{i}" for i in range(11)]
    folds = make_folds(ids, 2)
    assert sorted(i for f in folds for i in f) == sorted(ids) and [len(f) for f in folds] == [6, 5]
    assert make_folds(ids, 2) == folds  # deterministic
    edits = set(ids[:4])  # stratified: the ids in `first` are spread evenly over the folds
    for fold in make_folds(ids, 2, first=edits):
        assert len(edits & set(fold)) == 2


def test_epoch_choice_prefers_the_lower_bound_then_earliest():
    r = lambda w, n: VerifierResult(w / n, w, n, [], wilson_bounds(w, n)[0])  # noqa: E731
    assert pick_epoch([r(5, 10), r(9, 10), r(9, 10), r(8, 10)]) == 2


# -- every outcome of a cluster, with a fake model and a fake trainer ---------------------------------


class FakeModel(FakeAdapterSlots):
    """Answers by which (fake) adapter is active: 'good' experts give the edit, 'echo' experts echo the question;
    a 'good' critic writes a critique the fake base model follows when revising."""

    def generate_batch(self, conversations, adapters=None):
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            kind = self.loaded.get(adapters, "") if adapters else ""
            if "## Suggestion" in text:  # revise (base model)
                query = text.split("## User Question\n", 1)[1].split("\n\n", 1)[0]
                answer = (f"The answer to '{query}' is short." if "Be short" in text
                          else text.split("## Initial Answer\n", 1)[1].split("\n\n## Suggestion", 1)[0])
            elif text.startswith(prompts.CRITIC_USER.split("\n", 1)[0]):  # critique (critic adapter)
                answer = "1. Be short." if "good" in kind else "1. Write more."
            elif "good" in kind:
                answer = f"The answer to '{text}' is short."
            elif "echo" in kind:
                answer = f"Sure. {text}"
            else:
                answer = f"Well, {text} is a long story with many sides. It depends on a great many things indeed."
            out.append(AIMessage(answer, response_metadata={"finish_reason": "stop"}))
        return out


def _data(n=8):
    pairs, rows = [], []
    for i in range(n):
        q = f"question number {i} about rivers"
        base = f"Well, {q} is a long story with many sides. It depends on a great many things indeed."
        pairs.append({"id": f"p{i}", "query": q, "prompt": [{"role": "user", "content": q}], "rules": ["Be short."],
                      "chosen": f"The answer to '{q}' is short.", "rejected": base})
        rows.append({"id": f"p{i}", "query": q, "answer": base, "rules": ["Be short."]})
    pairs.append({"id": "ok", "query": "q", "prompt": [{"role": "user", "content": "q"}], "rules": [],
                  "chosen": "fine", "rejected": "fine"})  # an approval: not judged, trains only when asked
    return ClusterData(pairs=pairs, rows=rows)


def _validator(expert_kind, critic_kind, calls):
    def fit(role, objective, examples, tag, stop):
        calls.append((role, tag, len(examples)))
        kind = expert_kind if role == "expert" else critic_kind
        return TrainResult(objective, [Path(f"{kind}/{tag}/epoch-{k}") for k in (1, 2)], [1.0, 0.5], 0.5, 1.0, 1.0,
                           len(examples))

    return PathValidator(FakeModel(), ContrastJudge(), fit, folds=2, val_every=1)


def test_expert_that_beats_base_is_served_and_validated_on_every_pair():
    calls = []
    route, verdicts = _validator("good", "bad", calls).choose("c1", _data(), "expert")
    assert route == "expert" and len(verdicts) == 1
    v = verdicts[0]
    assert v.accepted and v.n_val == 8 and v.win_rate == 1.0 and v.lower_bound > 0.5 and v.epoch == 1
    assert calls == [("expert", "fold-1", 4), ("expert", "fold-2", 4)]  # the other fold's 4 edits; no approval


def test_the_expert_learns_from_changed_answers_and_from_approvals_only_when_asked():
    data = _data()
    assert sorted(e.id for e in data.expert_examples()) == [f"p{i}" for i in range(8)]
    data.train_on_approvals = True
    assert "ok" in {e.id for e in data.expert_examples()} and len(data.expert_examples({"p0"})) == 8
    # an objective that learns from ratings (kto) also gets the thumbs-down answers, outside held-out folds
    data.train_on_approvals = False
    data.negatives = [{"id": "bad", "prompt": [{"role": "user", "content": "q"}], "chosen": None, "rejected": "meh"}]
    assert "bad" not in {e.id for e in data.expert_examples()}
    data.ratings = True
    got = {e.id: e for e in data.expert_examples()}
    assert {"ok", "bad"} <= set(got) and got["bad"].chosen is None and got["bad"].rejected == "meh"
    assert "bad" not in {e.id for e in data.expert_examples({"bad"})}


def test_a_fold_that_cannot_be_trained_loses_that_path_instead_of_stopping_learn():
    from uno_graph.errors import ConfigError

    def fit(role, objective, examples, tag, stop):
        if role == "expert":
            raise ConfigError("kto needs desirable and undesirable answers; got 4 desirable and 0 undesirable")
        return TrainResult(objective, [Path(f"good/{tag}/epoch-{k}") for k in (1, 2)], [1.0, 0.5], 0.5, 1.0, 1.0,
                           len(examples))

    route, (expert, critic) = PathValidator(FakeModel(), ContrastJudge(), fit, folds=2, val_every=1).choose("c1", _data(), "expert")
    assert route == "critic" and not expert.accepted and critic.accepted
    assert expert.reason.startswith("fold 1: cannot train on its 4 examples: kto needs")


def test_expert_echoing_the_question_fails_and_a_working_critic_is_served():
    calls = []
    route, verdicts = _validator("echo", "good", calls).choose("c1", _data(), "expert")
    assert route == "critic"
    expert, critic = verdicts
    assert not expert.accepted and expert.flaws == {"echoes_question": 4}
    # 0 of 4 after fold 1: winning all 4 of fold 2 cannot pass, so fold 2 is never trained
    assert "stopped after fold 1 of 2" in expert.reason and expert.n_val == 4
    assert critic.accepted and critic.n_val == 8
    assert [c[:2] for c in calls] == [("expert", "fold-1"), ("critic", "fold-1"), ("critic", "fold-2")]


def test_validation_continues_while_the_remaining_folds_could_still_make_a_path_pass():
    from uno_graph.adapters.validate import PathValidator

    v = PathValidator(None, ContrastJudge(), None)
    r = lambda w, n: VerifierResult(w / n, w, n, [], wilson_bounds(w, n)[0])  # noqa: E731
    assert v._could_pass([r(12, 13)], 13)  # 25 of 26 passes
    assert v._could_pass([r(6, 13)], 13)  # 19 of 26: rate 0.73, lower bound 0.57
    assert not v._could_pass([r(4, 13)], 13)  # 17 of 26: lower bound 0.48


def test_critic_path_that_makes_answers_worse_is_not_served():
    # the gap test sent the cluster to the Critic; its revisions are no better than base, the Expert echoes
    route, verdicts = _validator("echo", "bad", []).choose("c1", _data(), "critic")
    assert route == "base"
    critic, expert = verdicts
    assert critic.role == "critic" and not critic.accepted and critic.flaws == {"repeats_base": 4}
    assert not expert.accepted


def test_critic_first_falls_back_to_a_good_expert():
    route, verdicts = _validator("good", "bad", []).choose("c1", _data(), "critic")
    assert route == "expert" and [v.role for v in verdicts] == ["critic", "expert"]


def test_expert_first_order_tries_the_critic_only_after_a_high_gap_clusters_expert_failed():
    calls = []  # high gap, the Expert wins: no Critic is trained at all
    route, verdicts = _validator("good", "good", calls).choose("c1", _data(), "critic", order="expert_first")
    assert route == "expert" and [v.role for v in verdicts] == ["expert"] and {c[0] for c in calls} == {"expert"}
    calls = []  # high gap, the Expert loses: then the Critic
    route, verdicts = _validator("echo", "good", calls).choose("c1", _data(), "critic", order="expert_first")
    assert route == "critic" and [v.role for v in verdicts] == ["expert", "critic"]
    calls = []  # low gap, the Expert loses: base serves, no Critic trained
    route, verdicts = _validator("echo", "good", calls).choose("c1", _data(), "expert", order="expert_first")
    assert route == "base" and [v.role for v in verdicts] == ["expert"] and {c[0] for c in calls} == {"expert"}


def test_an_unknown_path_order_is_a_config_error():
    from uno_graph.adapters.validate import paths_to_try
    from uno_graph.config import UnoConfig
    from uno_graph.errors import ConfigError

    with pytest.raises(ConfigError, match="path order 'critic_first'"):
        paths_to_try("expert", "critic_first")
    with pytest.raises(ConfigError, match="path_order"):
        UnoConfig(path_order="critic_first")


def test_too_few_judgeable_pairs_are_served_by_base_with_the_reason():
    calls = []
    route, verdicts = _validator("good", "good", calls).choose("c1", _data(n=3), "expert")
    assert route == "base" and calls == []  # nothing trained
    assert "only 3 judgeable" in verdicts[0].reason


def test_answer_budget_follows_the_endorsed_answers_and_ends_at_a_sentence():
    from uno_graph.budget import answer_budget, end_at_sentence

    assert answer_budget([30, 35, 40, 28], 128) == 51  # short edits: 1.3 × their 90th percentile
    assert answer_budget([120, 130, 90], 128) is None  # as long as the serving budget: no budget
    assert answer_budget([], 128) is None and answer_budget([3, 4], 128) == 16  # a floor
    assert end_at_sentence("The Tagus is long. It flows through Spain and Portu", "length") == ("The Tagus is long.", "stop")
    assert end_at_sentence("Short.", "stop") == ("Short.", "stop")
    assert end_at_sentence("no sentence end at all in this text", "length")[1] == "length"  # stays cut off


def test_expert_is_validated_with_its_answer_budget():
    seen = []

    class Budgeted(FakeModel):
        def generate_batch(self, conversations, adapters=None, max_new_tokens=None):
            seen.append((adapters is not None, max_new_tokens))
            return super().generate_batch(conversations, adapters)

    validator = _validator("good", "bad", [])
    validator.model = Budgeted()
    route, _ = validator.choose("c1", _data(), "expert", budget=40)
    assert route == "expert"
    assert seen[0] == (False, None)  # base answers: the model's own budget
    assert all(b == 40 for with_adapter, b in seen[1:] if with_adapter)


def test_expert_is_validated_at_every_other_epoch_and_the_last():
    from uno_graph.adapters.validate import validated_epochs

    assert validated_epochs(6, 2) == [2, 4, 6] and validated_epochs(5, 2) == [2, 4, 5]
    assert validated_epochs(3, 1) == [1, 2, 3]
    r = lambda w, n: VerifierResult(w / n, w, n, [], wilson_bounds(w, n)[0])  # noqa: E731
    assert pick_epoch([r(5, 10), r(9, 10), r(8, 10)], [2, 4, 6]) == 4


def test_expert_answer_at_the_model_budget_ends_at_its_last_complete_line():
    # no cluster budget (its endorsed answers are as long as the model's budget): the answer still ends
    # at a complete line instead of counting as cut off
    class Long(FakeModel):
        def generate_batch(self, conversations, adapters=None, max_new_tokens=None):
            replies = super().generate_batch(conversations, adapters)
            if adapters is None:
                return replies
            return [AIMessage(content="- one\n- two\n- thr", response_metadata={"finish_reason": "length"}) for _ in replies]

    validator = _validator("good", "bad", [])
    validator.model = Long()
    texts, finishes = validator._answers([[{"role": "user", "content": "q"}]], "a", None, complete=True)
    assert texts == ["- one\n- two"] and finishes == ["stop"]


def test_approvals_of_answers_that_miss_the_want_do_not_count_against_it():
    from uno_graph.want import WantJudge

    data = _data()
    for i in range(6):  # lenient thumbs-up on base answers that are not short
        q = f"question number {10 + i} about rivers"
        data.rows.append({"id": f"a{i}", "query": q, "rules": [], "rule_source": "satisfied",
                          "answer": f"Well, {q} is a long story with many sides. It depends on a great many things indeed."})
    labels = {x.log_id: x.label for x in data.labelled()}
    assert not any(k.startswith("a") for k in labels)  # left out, as they are from training
    judge = WantJudge()
    folds = [sorted({x.log_id for x in data.labelled()})[k::4] for k in range(4)]
    assert judge.consistency(data.labelled(), folds).auc > 0.9
    data.train_on_approvals = True  # an Expert that learns from approvals counts them as endorsed
    assert sum(x.label for x in data.labelled() if x.log_id.startswith("a")) == 6
    assert judge.consistency(data.labelled(), [sorted({x.log_id for x in data.labelled()})[k::4]
                                               for k in range(4)]).auc < 0.9
