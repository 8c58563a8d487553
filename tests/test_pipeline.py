"""`learn` end to end on a tiny random LM with a fake teacher: artifacts, table, resume after a crash."""

import json

import pytest

from tests.fakes import RuleTeacher
from uno_graph import pipeline
from uno_graph.config import TrainSettings, UnoConfig

TOPICS = {
    "cook": ("How do I cook {}?", "Please number the steps.", "1. Heat it.\n2. Serve it.\n3. Eat.",
             ["rice", "pasta", "eggs", "beans", "soup", "fish", "tofu"]),
    "where": ("Where is the city of {}?", "Answer in one short sentence only.", "{} is in Europe.",
              ["Paris", "Rome", "Berlin", "Madrid", "Vienna", "Prague", "Lisbon"]),
}


def _logs(path):
    lines = []
    for topic, (q, complaint, edit, items) in TOPICS.items():
        for i, item in enumerate(items):
            lines.append({"id": f"{topic}-{i}", "user_id": f"u{i % 3}",
                          "messages": [{"role": "user", "content": q.format(item)},
                                       {"role": "assistant", "content": f"Well, about {item}, it depends on many things."},
                                       {"role": "user", "content": complaint}],
                          "feedback": {"edited_response": edit.format(item)}, "metadata": {"topic": topic}})
    lines.append({"id": "broken"})  # reported, not fatal
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    return path


def _config(tiny_lm_dir):
    return UnoConfig(base_model=str(tiny_lm_dir), min_cluster_size=4, max_new_tokens=6, gap_threshold=0.99,
                     win_rate_threshold=0.0, min_win_lower_bound=0.0, train=TrainSettings(epochs=1, batch_size=4, max_prompt_tokens=64,
                                                                 max_answer_tokens=32))


@pytest.fixture()
def teacher():
    return RuleTeacher(keyword_rules={"number": "Give numbered steps.", "sentence": "Answer in one sentence."}, calls=[])


def test_learn_end_to_end_then_resume_after_crash(tmp_path, tiny_lm_dir, teacher, monkeypatch):
    logs = _logs(tmp_path / "logs.jsonl")
    work = tmp_path / "work"
    real = pipeline._train_cluster
    trained = []

    def crash_on_second(run, cluster, *args):
        if trained:
            raise KeyboardInterrupt("simulated kill")
        trained.append(cluster["id"])
        return real(run, cluster, *args)

    monkeypatch.setattr(pipeline, "_train_cluster", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert (work / "stages" / "distill.done").exists() and not (work / "stages" / "train.done").exists()
    assert not list((work / "adapters").glob("*/*/.tmp*"))

    monkeypatch.setattr(pipeline, "_train_cluster", real)
    teacher.calls.clear()
    result = pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert teacher.calls == []  # distill and verify were not redone
    assert len(result.report.problems) == 2 and len(result.report.records) == 14
    routed = [c for c in result.clusters if c["route"] != "base"]
    assert sorted(json.dumps(c["topics"]) for c in result.clusters if c["size"] >= 4) == ['{"cook": 7}', '{"where": 7}']
    assert len(routed) == 2
    train_rows = [json.loads(x) for x in (work / "stages" / "train.jsonl").read_text().splitlines()]
    assert sorted(r["cluster_id"] for r in train_rows) == sorted(c["id"] for c in routed)  # each trained once
    for c in routed:
        manifest = json.loads((work / c["adapter"] / "manifest.json").read_text())
        assert manifest["cluster_id"] == c["id"] and manifest["base_model"] == str(tiny_lm_dir)

    # a third run with the same inputs changes nothing and keeps cluster ids
    again = pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert [c["id"] for c in again.clusters] == [c["id"] for c in result.clusters]

    # the learned system serves: the graph routes a cook question to its cluster's adapter
    from uno_graph.graph import UnoSystem

    system = UnoSystem.load(work)
    out = system.graph("uno").invoke({"messages": [("user", "How do I cook rice?")]})
    meta = out["messages"][-1].response_metadata
    cook = next(c for c in result.clusters if c["topics"] == {"cook": 7})
    assert meta["uno_cluster"] == cook["id"] and meta["uno_route"] == cook["route"]
    # each cluster row counts its logs per user, for routing by user (`route_by_user`)
    row = next(r for r in system.router.table.rows if r["id"] == cook["id"])
    assert json.loads(row["users"]) == {"u0": 3, "u1": 2, "u2": 2}


def test_clusters_whose_paths_both_lose_are_served_by_base_and_say_why(tmp_path, tiny_lm_dir, teacher, capsys):
    from uno_graph.cli import main

    logs = _logs(tmp_path / "logs.jsonl")
    work = tmp_path / "work"
    config = _config(tiny_lm_dir)
    config.win_rate_threshold = 1.0  # a random tiny LM cannot beat base on every held-out log
    config.path_order = "gap"  # every cluster tries both paths (by default a low-gap one tries the Expert alone)
    result = pipeline.learn([logs], work, config, teacher=teacher, progress=False)
    eligible = [c for c in result.clusters if c["size"] >= 4]
    assert eligible and all(c["route"] == "base" and c["adapter"] is None for c in eligible)
    for c in eligible:
        assert c["reason"].startswith("served by base: expert win rate") and "critic win rate" in c["reason"]
    assert not list((work / "adapters").glob("*/*"))  # nothing published
    rows = {json.loads(x)["cluster_id"]: json.loads(x) for x in (work / "stages" / "train.jsonl").read_text().splitlines()}
    for c in eligible:
        for role in ("expert", "critic"):  # every edit validated, unless the path had lost after fold 1
            verdict = rows[c["id"]][role]
            assert verdict["n_val"] == 7 or (verdict["n_val"] == 3 and "stopped after fold 1 of 3" in verdict["reason"])
    summary = json.loads((work / "summary.json").read_text())
    assert {c["reason"] for c in summary["clusters"] if c["size"] >= 4} == {c["reason"] for c in eligible}
    assert main(["inspect", "--workdir", str(work)]) == 0
    assert capsys.readouterr().out.count("why: served by base") == len(eligible)


def test_fold_average_serves_the_mean_of_the_validated_fold_adapters(tmp_path, tiny_lm_dir, teacher):
    logs = _logs(tmp_path / "logs.jsonl")
    work = tmp_path / "work"
    config = _config(tiny_lm_dir)
    config.final_adapter = "fold_average"
    result = pipeline.learn([logs], work, config, teacher=teacher, progress=False)
    experts = [c for c in result.clusters if c["route"] == "expert"]
    assert experts
    rows = {json.loads(x)["cluster_id"]: json.loads(x) for x in (work / "stages" / "train.jsonl").read_text().splitlines()}
    for c in experts:
        manifest = json.loads((work / c["adapter"] / "manifest.json").read_text())
        assert manifest["metrics"]["averaged_folds"] == config.val_folds and manifest["metrics"]["final_loss"] is None
        adapter = json.loads((work / c["adapter"] / "adapter_config.json").read_text())
        assert adapter["r"] == config.val_folds * config.lora.r  # the fold adapters side by side
        times = rows[c["id"]]["time_s"]
        assert "final_average" in times and "final_training" not in times and times["validation_training"] > 0
        assert "fold_adapters" not in rows[c["id"]]["expert"]  # work-directory paths stay out of the record
        assert manifest["want"]["weights"] and "intercept" in manifest["want"]  # the best of n's picker
    from uno_graph.graph import UnoSystem

    system = UnoSystem.load(work)
    assert set(system.wants) == {f"{c['id']}/expert" for c in experts}  # read from the manifests
    out = system.graph("uno").invoke({"messages": [("user", "How do I cook rice?")]})
    reply = out["messages"][-1]
    assert reply.response_metadata["uno_route"] in {"expert", "base"}
    if reply.response_metadata["uno_route"] == "expert":  # the default best of 5: 5 answers, one chosen
        assert reply.response_metadata["uno_calls"] == config.expert_best_of
        assert len(reply.response_metadata["uno_best_of"]["scores"]) == config.expert_best_of


def test_naive_topic_sft_baseline_trains_per_topic_and_is_evaluated_with_intervals(tmp_path, tiny_lm_dir, teacher):
    from uno_graph.baselines import topic_dir, train_topic_sft
    from uno_graph.evaluate import evaluate

    logs = _logs(tmp_path / "logs.jsonl")
    work = tmp_path / "work"
    pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    trained = train_topic_sft([logs], work, _config(tiny_lm_dir), epochs=1, progress=False)
    assert {t: m["n_examples"] for t, m in trained.items()} == {"cook": 7, "where": 7}
    assert (topic_dir(work, "cook") / "adapter_model.safetensors").exists()
    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps({"id": f"t{i}", "query": q, "metadata": {"topic": t}}) for i, (q, t) in
                              enumerate([("How do I cook corn?", "cook"), ("Where is Oslo?", "where"),
                                         ("Hi there", "other")])) + "\n")
    result = evaluate(work, test, tmp_path / "pred.jsonl", systems=["base", "topic_sft"], check=lambda item, a: True,
                      progress=False)
    routes = {r["id"]: (r["route"], r["adapter"]) for r in result.rows if r["system"] == "topic_sft"}
    assert routes == {"t0": ("topic", "topic-sft/cook"), "t1": ("topic", "topic-sft/where"), "t2": ("base", None)}
    ci = result.summary["topics"]["cook"]["topic_sft"]["ci95"]
    assert ci[0] < 1.0 and ci[1] == 1.0  # one passing item: a wide interval, not a certainty


def test_personal_data_in_logs_never_reaches_stage_outputs_the_store_or_training(tmp_path, tiny_lm_dir, teacher):
    card, email, key = "4111 1111 1111 1111", "ana.perez@example.org", "sk-" + "Zx81Qw" * 6
    lines = [json.loads(line) for line in _logs(tmp_path / "logs.jsonl").read_text().splitlines()[:-2]]
    for k, line in enumerate(lines):
        line["messages"][0]["content"] += f" My card is {card}." if k % 2 else f" Mail me at {email}."
        line["messages"][2]["content"] += f" Use my key {key}."
        line["feedback"]["edited_response"] += f" Contact: {email}"
    logs = tmp_path / "planted.jsonl"
    logs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    work = tmp_path / "work"
    pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    written = "".join(p.read_text(errors="replace") for p in (work / "stages").glob("*.jsonl"))
    assert "<EMAIL>" in written and "<CARD>" in written and "<SECRET>" in written
    chroma_bytes = b"".join(p.read_bytes() for p in (work / "chroma").rglob("*") if p.is_file())
    for secret in (card, email, key):
        assert secret not in written  # pairs.jsonl holds every adapter's training examples
        assert secret.encode() not in chroma_bytes  # rules, centroids, cluster table


def test_the_teacher_and_the_validation_judge_enter_fingerprints_with_their_settings(tmp_path):
    from uno_graph.pipeline import _Run, component_id
    from uno_graph.verify import ContrastJudge, LLMJudge
    from uno_graph.want import WantJudge
    from uno_graph.workdir import Workdir

    class Named:
        def __init__(self, model_name: str) -> None:
            self.model_name = model_name

    def run(teacher=None, judge=None, base_model="base-a") -> _Run:
        return _Run(Workdir(tmp_path), UnoConfig(base_model=base_model), teacher, judge, progress=False)

    assert run("serving").teacher_id != run("serving", base_model="base-b").teacher_id
    assert "base-a" in run("serving").teacher_id
    ids = {run(judge=j).judge_id for j in (WantJudge(min_auc=0.8), WantJudge(min_auc=0.7), WantJudge(c=2.0),
                                           ContrastJudge(), ContrastJudge(form_weight=0.5),
                                           LLMJudge(Named("judge-a")), LLMJudge(Named("judge-b")),
                                           LLMJudge(Named("judge-a"), max_tokens=8))}
    assert len(ids) == 8
    assert component_id(WantJudge(min_auc=0.7)) == "WantJudge(c=1.0, gate_folds=4, min_auc=0.7)"
    assert component_id(LLMJudge(Named("judge-a"))) == "LLMJudge(chat_model='Named:judge-a', max_tokens=None)"


def test_with_user_scope_one_users_logs_never_change_another_users_answers(tmp_path, tiny_lm_dir, teacher):
    """Bob's and Alice's logs ask the same questions and want different things. With `user_scope` each
    user's logs make their own clusters: Bob's answers are the same whether Alice's logs were learned
    or not, and nobody but Alice (no user id included) is ever routed to her cluster."""
    from uno_graph.graph import UnoContext, UnoSystem

    items = TOPICS["cook"][3]

    def log(user, i, complaint, edit):
        return {"id": f"{user}-{i}", "user_id": user, "metadata": {"topic": user},
                "messages": [{"role": "user", "content": f"How do I cook {items[i]}?"},
                             {"role": "assistant", "content": f"Well, about {items[i]}, it depends on many things."},
                             {"role": "user", "content": complaint}],
                "feedback": {"edited_response": edit.format(items[i])}}

    bob = [log("bob", i, "Please number the steps.", "1. Heat {}.\n2. Serve it.") for i in range(len(items))]
    alice = [log("alice", i, "Answer in one sentence.", "Boil the {} and eat it.") for i in range(len(items))]
    only_bob, both = tmp_path / "bob.jsonl", tmp_path / "both.jsonl"
    only_bob.write_text("\n".join(json.dumps(x) for x in bob) + "\n")
    both.write_text("\n".join(json.dumps(x) for x in bob + alice) + "\n")
    config = _config(tiny_lm_dir)
    config.user_scope = True

    def ask(work, user):
        system = UnoSystem.load(work)
        out = system.graph("uno").invoke({"messages": [("user", "How do I cook rice?")]},
                                         context=UnoContext(user_id=user))
        return out["messages"][-1]

    first = pipeline.learn([only_bob], tmp_path / "w1", config, teacher=teacher, progress=False)
    second = pipeline.learn([both], tmp_path / "w2", config, teacher=teacher, progress=False)
    owners = {c["id"]: c["owner"] for c in second.clusters}
    assert sorted(owners.values()) == ["alice", "bob"]
    assert [c["id"] for c in first.clusters] == [i for i, o in owners.items() if o == "bob"]
    before, after = ask(tmp_path / "w1", "bob"), ask(tmp_path / "w2", "bob")
    assert after.response_metadata["uno_cluster"] == before.response_metadata["uno_cluster"]
    assert after.response_metadata["uno_route"] == before.response_metadata["uno_route"] != "base"
    assert after.content == before.content
    mine = ask(tmp_path / "w2", "alice").response_metadata
    assert owners[mine["uno_cluster"]] == "alice"
    for stranger in ("carol", None):  # another user, or no user id: neither private cluster serves them
        assert ask(tmp_path / "w2", stranger).response_metadata["uno_route"] == "base"
