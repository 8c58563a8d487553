"""The late ensemble (uno_graph.learners): reward mapping, the bandit, persistence, routing among a
cluster's Expert variants, feedback through the recorder, and convergence with simulated users."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import AdapterEcho, KeywordEmbedder
from tests.requires import require_module
from uno_graph.capture import JsonlLogStore, Recorder
from uno_graph.config import UnoConfig
from uno_graph.errors import ArtifactError, ConfigError
from uno_graph.learners import ENSEMBLE_FILE, LateEnsemble, feedback_reward
from uno_graph.router import Router, RouteTable, variant_name
from uno_graph.state import UnoContext
from uno_graph.store import UnoStore

require_module("bayesianbandits", "pip install 'uno-graph[bandit]'")

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["adapters/c/expert/v1", "adapters/c/expert@kto/v1", "adapters/c/expert@dpo_sft/v1"]
EGG_VARIANTS = {"sft": "adapters/c-egg/expert/v2", "kto": "adapters/c-egg/expert@kto/v1",
                "dpo_sft": "adapters/c-egg/expert@dpo_sft/v1"}


@pytest.mark.parametrize(("feedback", "reward"), [
    ({"rating": 1.0}, 1.0), ({"rating": 0.5}, 1.0), ({"rating": -1.0}, 0.0), ({"rating": -0.2}, 0.0),
    ({"edited_response": "better"}, 0.0), ({"rating": 1.0, "edited_response": "better"}, 0.0),
    ({"rating": 0.0}, None), ({"comment": "hm"}, None), ({}, None), (None, None),
])
def test_feedback_reward_mapping(feedback, reward):
    assert feedback_reward(feedback) == reward


def test_choices_are_reproducible_with_a_seed_and_one_arm_needs_no_draw():
    def run(seed):
        ensemble, out = LateEnsemble(None, seed=seed), []
        for t in range(30):
            arm = ensemble.choose("c", ARMS)
            out.append(arm)
            ensemble.update("c", arm, float(t % 3 == 0))
        return out

    assert run(7) == run(7)
    assert len(set(run(7))) > 1  # an untrained bandit explores
    assert LateEnsemble(None, seed=0).choose("c", ARMS[:1]) == ARMS[0]


def test_thompson_moves_to_the_best_arm_and_ucb_too():
    rates = dict(zip(ARMS, (0.3, 0.8, 0.5)))
    for policy in ("thompson", "ucb"):
        ensemble, users, picks = LateEnsemble(None, policy=policy, seed=3), np.random.default_rng(3), []
        for _ in range(300):
            arm = ensemble.choose("c", ARMS)
            picks.append(arm)
            ensemble.update("c", arm, float(users.random() < rates[arm]))
        assert picks[-100:].count(ARMS[1]) >= 80, policy
        assert ensemble.best("c", ARMS) == ARMS[1]


def test_counts_persist_atomically_and_a_restart_keeps_them(tmp_path):
    path = tmp_path / ENSEMBLE_FILE
    ensemble = LateEnsemble(path, seed=0)
    ensemble.update("c", ARMS[1], 1.0)
    ensemble.update("c", ARMS[1], 1.0)
    ensemble.update("c", ARMS[0], 0.0)
    ensemble.update("c", ARMS[2], 0.25)  # a fractional reward: a quarter success, three quarters failure
    data = json.loads(path.read_text())
    assert data["clusters"]["c"][ARMS[1]] == {"successes": 2.0, "failures": 0.0}
    assert not list(tmp_path.glob(".*.tmp"))
    again = LateEnsemble(path, seed=0)
    assert again.stats("c") == ensemble.stats("c")
    assert again.stats("c")[ARMS[2]].failures == 0.75
    assert again.best("c", ARMS) == ARMS[1]


def test_bad_inputs_and_a_corrupt_state_file_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="thompson"):
        LateEnsemble(None, policy="greedy")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        LateEnsemble(None).update("c", ARMS[0], 2.0)
    with pytest.raises(ConfigError, match="no arm"):
        LateEnsemble(None).choose("c", [])
    with pytest.raises(ConfigError, match="ensemble_policy"):
        UnoConfig(ensemble_policy="greedy")
    bad = tmp_path / ENSEMBLE_FILE
    bad.write_text("{not json")
    with pytest.raises(ArtifactError, match="delete it"):
        LateEnsemble(bad)


def test_an_answer_counts_once_by_its_latest_feedback():
    ensemble = LateEnsemble(None, seed=0)
    record = {"metadata": {"cluster": "c", "arm": ARMS[1]}, "feedback": {}}
    ensemble.on_feedback(record, {"comment": "nice"})  # no preference expressed
    assert ensemble.stats("c") == {}
    ensemble.on_feedback(record, {"rating": 1.0})
    assert ensemble.stats("c")[ARMS[1]].successes == 1.0
    ensemble.on_feedback({**record, "feedback": {"rating": 1.0}}, {"rating": 1.0})  # the same thumbs again
    ensemble.on_feedback({**record, "feedback": {"rating": 1.0}}, {"edited_response": "fixed"})  # then an edit
    stats = ensemble.stats("c")[ARMS[1]]
    assert (stats.successes, stats.failures) == (0.0, 1.0)
    ensemble.on_feedback({"metadata": {"cluster": "c"}, "feedback": {}}, {"rating": 1.0})  # no arm: not chosen
    assert ensemble.stats("c")[ARMS[1]].observations == 1.0


def test_rebuild_from_records_and_prune():
    ensemble = LateEnsemble(None, seed=0)
    ensemble.update("c", ARMS[0], 1.0)
    records = [{"metadata": {"cluster": "c", "arm": ARMS[1]}, "feedback": {"rating": 1.0}},
               {"metadata": {"cluster": "c", "arm": ARMS[1]}, "feedback": {"edited_response": "x"}},
               {"metadata": {"cluster": "d", "arm": "adapters/d/expert/v1"}, "feedback": {"rating": -1.0}},
               {"metadata": {"cluster": "c", "arm": ARMS[2]}, "feedback": {"comment": "ok"}},
               {"metadata": {"cluster": "c"}, "feedback": {"rating": 1.0}}]
    assert ensemble.rebuild(records) == 3
    assert set(ensemble.stats("c")) == {ARMS[1]} and ensemble.clusters() == ["c", "d"]
    assert ensemble.prune({"c": ARMS}) == ["d:adapters/d/expert/v1"]
    assert ensemble.clusters() == ["c"]


def test_concurrent_choices_and_updates_lose_no_count(tmp_path):
    ensemble = LateEnsemble(tmp_path / ENSEMBLE_FILE, seed=0)

    def serve():
        for _ in range(40):
            ensemble.update("c", ensemble.choose("c", ARMS), 1.0)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(s.observations for s in ensemble.stats("c").values()) == 160
    assert sum(s.observations for s in LateEnsemble(tmp_path / ENSEMBLE_FILE).stats("c").values()) == 160


# -- routing and serving --------------------------------------------------------------------------------


def _variant_store(path, variants=EGG_VARIANTS) -> UnoStore:
    store = UnoStore.persistent(path)
    emb = KeywordEmbedder()
    store.put_cluster("c-egg", emb.encode(["egg"])[0], {"size": 5, "radius": 0.1, "route": "expert",
                                                         "adapter": "adapters/c-egg/expert/v2",
                                                         "variants": json.dumps(variants)})
    store.put_cluster("c-paris", emb.encode(["paris"])[0], {"size": 5, "radius": 0.1, "route": "critic",
                                                             "adapter": "adapters/c-paris/critic"})
    return store


def test_table_lists_every_variant_and_the_router_draws_among_them(tmp_path):
    store = _variant_store(tmp_path / "chroma")
    table = RouteTable.read(store)
    assert table.adapters() == {"c-egg/expert": ("expert", "adapters/c-egg/expert/v2"),
                                "c-egg/expert@kto": ("expert", "adapters/c-egg/expert@kto/v1"),
                                "c-egg/expert@dpo_sft": ("expert", "adapters/c-egg/expert@dpo_sft/v1"),
                                "c-paris/critic": ("critic", "adapters/c-paris/critic")}
    assert table.arms() == {"c-egg": tuple(EGG_VARIANTS[k] for k in sorted(EGG_VARIANTS))}

    plain = Router(store, KeywordEmbedder(), UnoConfig()).route("boil an egg")  # no ensemble: as before
    assert (plain.adapter, plain.arm) == ("c-egg/expert", None)

    router = Router(store, KeywordEmbedder(), UnoConfig(), ensemble=LateEnsemble(None, seed=1))
    decisions = [router.route("boil an egg") for _ in range(30)]
    assert {d.adapter for d in decisions} == {"c-egg/expert", "c-egg/expert@kto", "c-egg/expert@dpo_sft"}
    for d in decisions:
        assert d.route == "expert" and d.arm == EGG_VARIANTS[d.learner]
        assert d.adapter == ("c-egg/expert" if d.learner == "sft" else variant_name("c-egg", d.learner))
    critic = router.route("what is in paris")
    assert (critic.route, critic.arm) == ("critic", None)

    for _ in range(5):
        router.ensemble.update("c-egg", EGG_VARIANTS["kto"], 1.0)
    assert {router.route("egg", explore=False).learner for _ in range(5)} == {"kto"}  # evaluation: no draw


def test_one_variant_or_a_malformed_row(tmp_path):
    single = _variant_store(tmp_path / "one", {"kto": "adapters/c-egg/expert/v2"})
    router = Router(single, KeywordEmbedder(), UnoConfig(), ensemble=LateEnsemble(None, seed=0))
    decision = router.route("egg")
    assert (decision.adapter, decision.arm) == ("c-egg/expert", None)
    assert RouteTable.read(single).arms() == {}
    broken = _variant_store(tmp_path / "bad", ["not", "an", "object"])
    with pytest.raises(ArtifactError, match="rerun `uno-graph learn`"):
        RouteTable.read(broken).adapters()


def _system(tmp_path, store):
    from uno_graph.graph import UnoSystem

    router = Router(store, KeywordEmbedder(), UnoConfig())
    system = UnoSystem(tmp_path / "work", UnoConfig(), AdapterEcho(calls=[]), store, router)
    system.use_ensemble(router.table)
    system.ensemble._rng = np.random.default_rng(5)  # a reproducible draw for the test
    return system


def test_graph_records_the_arm_and_feedback_through_the_recorder_moves_the_ensemble(tmp_path):
    system = _system(tmp_path, _variant_store(tmp_path / "chroma"))
    assert system.router.ensemble is system.ensemble
    recorder = Recorder(JsonlLogStore(tmp_path / "events.jsonl"))
    graph = system.graph(recorder=recorder)
    system.graph(recorder=recorder)  # a second graph on the same recorder: the listener is added once

    served = []
    for n in range(60):  # simulated users: only the kto variant's answers are what they want
        out = graph.invoke({"messages": [("user", f"how do I boil an egg {n}")]},
                           {"configurable": {"thread_id": f"t{n}"}}, context=UnoContext(user_id="u1"))
        answer = out["messages"][-1]
        meta = answer.response_metadata
        learner = next(k for k, v in EGG_VARIANTS.items() if v == meta["uno_arm"])
        assert answer.content.startswith(f"[{meta['uno_adapter']}]")  # the drawn variant answered
        served.append(learner)
        if learner == "kto":
            recorder.feedback(meta["uno_log_id"], rating=1)
        else:
            recorder.feedback(meta["uno_log_id"], edited_response="1. Boil. 2. Cool.")
    assert served[-20:].count("kto") >= 16
    log = recorder.store.get(meta["uno_log_id"])
    assert log["metadata"]["arm"] == EGG_VARIANTS[served[-1]] and log["metadata"]["cluster"] == "c-egg"
    stats = system.ensemble.stats("c-egg")
    assert sum(s.observations for s in stats.values()) == 60
    assert stats[EGG_VARIANTS["kto"]].failures == 0 and stats[EGG_VARIANTS["kto"]].successes >= 20
    on_disk = json.loads((tmp_path / "work" / ENSEMBLE_FILE).read_text())
    assert on_disk["clusters"]["c-egg"][EGG_VARIANTS["kto"]]["successes"] == stats[EGG_VARIANTS["kto"]].successes

    # the rebuilt counts from the event file equal what the listener learned
    assert LateEnsemble(None).rebuild(recorder.records()) == 60

    # a critic answer carries no arm and its feedback does not touch the ensemble
    out = graph.invoke({"messages": [("user", "what is in paris")]}, {"configurable": {"thread_id": "p"}})
    assert "uno_arm" not in out["messages"][-1].response_metadata
    recorder.feedback(out["messages"][-1].response_metadata["uno_log_id"], rating=1)
    assert sum(s.observations for s in system.ensemble.stats("c-egg").values()) == 60
    assert "arm" not in recorder.store.get(out["messages"][-1].response_metadata["uno_log_id"])["metadata"]


def test_a_table_without_variants_serves_as_before_and_a_new_table_prunes_old_arms(tmp_path):
    from tests.fakes import keyword_router
    from uno_graph.graph import UnoSystem

    router = keyword_router(tmp_path / "plain")
    system = UnoSystem(tmp_path / "work", UnoConfig(), AdapterEcho(calls=[]), router.store, router)
    system.use_ensemble(router.table)
    assert system.ensemble is None and router.ensemble is None
    assert not (tmp_path / "work" / ENSEMBLE_FILE).exists()

    system = _system(tmp_path, _variant_store(tmp_path / "chroma"))
    system.ensemble.update("c-egg", EGG_VARIANTS["kto"], 1.0)
    system.ensemble.update("c-egg", EGG_VARIANTS["sft"], 0.0)
    retrained = {**EGG_VARIANTS, "kto": "adapters/c-egg/expert@kto/v2"}  # a new version is a new arm
    system.store.update_cluster("c-egg", variants=json.dumps(retrained))
    system.use_ensemble(RouteTable.read(system.store))
    assert set(system.ensemble.stats("c-egg")) == {EGG_VARIANTS["sft"]}


def test_feedback_listener_failure_keeps_the_feedback(tmp_path, caplog):
    recorder = Recorder(JsonlLogStore(tmp_path / "events.jsonl"))
    log_id = recorder.record_answer([("user", "egg?")], "boil it", metadata={"cluster": "c", "arm": ARMS[0]})
    seen = []
    recorder.add_feedback_listener(lambda record, fields: seen.append((record["feedback"], fields)))
    recorder.add_feedback_listener(lambda record, fields: 1 / 0)
    assert recorder.feedback(log_id, rating=1) == {"rating": 1.0}
    recorder.feedback(log_id, comment="thanks")
    assert seen == [({}, {"rating": 1.0}), ({"rating": 1.0}, {"comment": "thanks"})]
    assert "feedback listener" in caplog.text
    assert recorder.store.get(log_id)["feedback"] == {"rating": 1.0, "comment": "thanks"}


# -- convergence with simulated users (benchmarks/bandit_convergence.py) -----------------------------------


def _benchmark():
    spec = importlib.util.spec_from_file_location("bandit_convergence", ROOT / "benchmarks" / "bandit_convergence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulated_users_move_the_ensemble_to_the_best_variant_after_exploring():
    bench = _benchmark()
    clusters = {"c-clear": {"sft": 0.45, "dpo_sft": 0.75, "kto": 0.5}}
    found = bench.simulate(clusters, rounds=300, runs=4, policy="thompson", feedback_rate=0.5, seed=0)["c-clear"]
    share = found["best_share_by_round"]
    assert found["best"] == "dpo_sft"
    assert np.mean(share[-50:]) > 0.8  # settled on the best variant
    assert np.mean(share[:10]) < 0.7  # ... after trying the others first
    early = found["pulls_first_rounds"]["by_learner"]
    assert early["sft"] > 0 and early["kto"] > 0
    regret = found["cumulative_regret"]
    assert regret["200"] - regret["100"] < regret["100"] - 0  # regret grows more slowly once it has settled


# -- learn --learner: one Expert variant per learner, served by the ensemble (tiny random LM) --------------


def test_learn_with_several_learners_publishes_variants_that_serving_draws_among(tmp_path, tiny_lm_dir):
    from tests.fakes import RuleTeacher
    from tests.test_pipeline import _config, _logs
    from uno_graph import pipeline
    from uno_graph.adapters.registry import list_adapters
    from uno_graph.graph import UnoSystem

    teacher = RuleTeacher(keyword_rules={"number": "Give numbered steps.", "sentence": "Answer in one sentence."},
                          calls=[])
    config = _config(tiny_lm_dir)
    config.expert_learners = ("sft", "dpo_sft")
    work = tmp_path / "work"
    result = pipeline.learn([_logs(tmp_path / "logs.jsonl")], work, config, teacher=teacher, progress=False)
    experts = [c for c in result.clusters if c["route"] == "expert"]
    assert experts
    rows = {json.loads(x)["cluster_id"]: json.loads(x) for x in (work / "stages" / "train.jsonl").read_text().splitlines()}
    for c in experts:
        row = rows[c["id"]]
        assert row["learners"]["dpo_sft"]["accepted"]  # validated like the Expert (the bar is 0 here)
        assert set(row["variants"]) == {"sft", "dpo_sft"} and row["variants"]["sft"] == row["adapter"]
        manifest = json.loads((work / row["variants"]["dpo_sft"] / "manifest.json").read_text())
        assert manifest["objective"] == "dpo_sft" and manifest["role"] == "expert@dpo_sft"
    names = {f'{m["cluster_id"]}/{m["role"]}' for m in list_adapters(work / "adapters")}
    assert {f'{c["id"]}/expert@dpo_sft' for c in experts} <= names

    system = UnoSystem.load(work)
    assert system.ensemble is not None and (work / ENSEMBLE_FILE).name == ENSEMBLE_FILE
    cook = next(c for c in experts if c["topics"] == {"cook": 7})
    assert system.router.table.arms()[cook["id"]] == tuple(rows[cook["id"]]["variants"][k] for k in ("dpo_sft", "sft"))
    import numpy as np

    system.ensemble._rng = np.random.default_rng(0)  # a seeded draw: an unseeded one can pick one arm 12 times
    recorder = Recorder(JsonlLogStore(tmp_path / "events.jsonl"))
    graph = system.graph(recorder=recorder)
    seen = set()
    for n in range(12):
        answer = graph.invoke({"messages": [("user", f"How do I cook rice? ({n})")]})["messages"][-1]
        meta = answer.response_metadata
        assert meta["uno_cluster"] == cook["id"] and meta["uno_arm"] in rows[cook["id"]]["variants"].values()
        seen.add(meta["uno_adapter"])
        recorder.feedback(meta["uno_log_id"], rating=1 if meta["uno_adapter"].endswith("@dpo_sft") else -1)
    assert seen == {f'{cook["id"]}/expert', f'{cook["id"]}/expert@dpo_sft'}
    saved = json.loads((work / ENSEMBLE_FILE).read_text())["clusters"][cook["id"]]
    assert sum(v["successes"] + v["failures"] for v in saved.values()) == 12


def test_one_learners_variants_serve_without_the_ensemble_for_evaluation(tmp_path):
    from uno_graph.evaluate import SystemRunner, _parse_item, is_learner_system

    store = _variant_store(tmp_path / "chroma")
    router = Router(store, KeywordEmbedder(), UnoConfig(), ensemble=LateEnsemble(None, seed=0))
    for learner in EGG_VARIANTS:
        decision = router.route("boil an egg", learner=learner)
        assert decision.learner == learner and decision.arm == EGG_VARIANTS[learner]
    assert router.route("boil an egg", learner="edit_dpo").learner in EGG_VARIANTS  # no such variant: as uno
    assert router.route("what is in paris", learner="kto").route == "critic"
    assert is_learner_system("uno@kto") and not is_learner_system("uno@bogus") and not is_learner_system("base@kto")

    from uno_graph.graph import UnoSystem

    model = AdapterEcho(calls=[])
    runner = SystemRunner(UnoSystem(tmp_path / "work", UnoConfig(), model, store, router))
    item = _parse_item({"id": "q1", "query": "how to boil an egg"}, 1)
    (answer,) = runner.answer("uno@kto", [item])
    assert answer.text.startswith("[c-egg/expert@kto]") and answer.adapter == "c-egg/expert@kto"
