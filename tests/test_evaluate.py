"""The evaluation harness with fakes: batched runs match the graph, metrics, resume, judge, plots."""

import json
from types import SimpleNamespace

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tests.fakes import AdapterEcho, KeywordEmbedder
from tests.requires import require_module
from uno_graph.config import UnoConfig
from uno_graph.errors import ConfigError, LogFormatError
from uno_graph.evaluate import (
    SystemRunner,
    evaluate,
    format_summary,
    load_callable,
    pairwise_win_rate,
    read_testset,
)
from uno_graph.graph import build_graph
from uno_graph.metrics import edit_distance
from uno_graph.router import Router
from uno_graph.store import UnoStore

CHECKS = '''
def check(item, answer):
    return answer.startswith("[c-egg/expert]") if item["metadata"]["topic"] == "eggs" else len(answer) > 0
'''


@pytest.fixture()
def system(tmp_path):
    store = UnoStore.persistent(tmp_path / "chroma")
    emb = KeywordEmbedder()
    store.put_cluster("c-egg", emb.encode(["egg"])[0], {"size": 5, "radius": 0.1, "route": "expert", "adapter": "a/e"})
    store.put_cluster("c-paris", emb.encode(["paris"])[0], {"size": 5, "radius": 0.1, "route": "critic", "adapter": "a/c"})
    store.put_rules([{"id": "r1", "rule": "Give the steps as a numbered list.", "cluster_id": "c-egg", "log_id": "l1"},
                     {"id": "r2", "rule": "Answer in one sentence.", "cluster_id": "c-paris", "log_id": "l2"}],
                    emb.encode(["egg", "paris"]))
    model = AdapterEcho(calls=[])
    router = Router(store, emb, UnoConfig())
    return SimpleNamespace(model=model, router=router, store=store,
                           graph=lambda mode="uno": build_graph(model, router, mode).compile())


@pytest.fixture()
def testset(tmp_path):
    rows = [{"id": "e1", "messages": [{"role": "user", "content": "how to boil an egg"}], "metadata": {"topic": "eggs"}},
            {"id": "p1", "messages": [{"role": "user", "content": "what to see in paris"}], "metadata": {"topic": "paris"},
             "reference": "[base] what to see in paris"},
            {"id": "o1", "query": "tell me a joke", "metadata": {"topic": "other"}}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_batched_state_machine_matches_the_graph(system, testset):
    items, _ = read_testset(testset)
    runner = SystemRunner(system)
    for mode in ("uno", "uno_single"):
        batched = runner.answer(mode, items, batched=True)
        per_item = runner.answer(mode, items, batched=False)
        for b, g in zip(batched, per_item):
            assert (b.text, b.route, b.cluster, b.adapter, b.calls) == (g.text, g.route, g.cluster, g.adapter, g.calls)
            assert (b.input_tokens, b.output_tokens) == (g.input_tokens, g.output_tokens)
    uno = {a.route for a in runner.answer("uno", items)}
    assert uno == {"expert", "critic", "base"}


def test_evaluate_rows_summary_and_check_by_file(system, testset, tmp_path):
    (tmp_path / "mychecks.py").write_text(CHECKS)
    out = tmp_path / "pred.jsonl"
    result = evaluate(None, testset, out, system=system, check=f"{tmp_path / 'mychecks.py'}:check", progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 * 4
    assert {"id", "system", "answer", "route", "cluster", "input_tokens", "output_tokens", "latency_s"} <= set(rows[0])
    s = result.summary["systems"]
    assert s["base"]["extra_input_tokens"] == 0
    assert s["rules_in_context"]["extra_input_tokens"] > 0  # the rules cost prompt tokens
    assert s["uno_single"]["extra_input_tokens"] == 0  # one call, same prompt as base (Expert or base)
    assert s["uno"]["extra_input_tokens"] > 0  # critique + revise on the Paris item
    eggs = result.summary["topics"]["eggs"]
    assert eggs["uno"]["check"] == 1.0 and eggs["base"]["check"] == 0.0
    assert s["base"]["rouge_l"] == 1.0  # the echo reproduces the reference exactly
    # the edit distance to the reference: on the items that have one, in every row and as each system's mean
    for row in rows:
        if row["id"] == "p1":
            assert row["edit_distance"] == round(edit_distance(row["answer"], "[base] what to see in paris"), 4)
        else:
            assert row["edit_distance"] is None
    assert s["base"]["edit_distance"] == 0.0 and s["uno_single"]["edit_distance"] == 0.0
    assert 0 < s["uno"]["edit_distance"] <= 1  # critique + revise rewrote the answer
    table = format_summary(result.summary)
    assert "satisfaction per topic" in table and "rules_in_context" in table
    header, base_line = table.splitlines()[:2]
    assert header.index("ROUGE-L") < header.index("edit dist") and "0.000" in base_line
    assert json.loads(out.with_name("pred.jsonl.summary.json").read_text())["n_items"] == 3


def test_edit_distance_on_known_strings():
    assert edit_distance("Boil the egg.", "Boil the egg.") == 0.0
    assert edit_distance("boil THE egg", "Boil the egg") == 0.0  # words as ROUGE-L counts them: lowercased
    assert edit_distance("yes", "no") == 1.0  # nothing in common
    assert edit_distance("a b c d", "a x c") == pytest.approx(2 / 4)  # one substitution, one deletion
    assert edit_distance("Boil the egg.", "Boil the egg for nine minutes.") == pytest.approx(3 / 7)
    assert edit_distance("a b", "b a") == 1.0  # order matters: two substitutions over 2 words
    assert edit_distance("", "") == 0.0 and edit_distance("", "something") == 1.0
    assert edit_distance("one two three", "three two one") == edit_distance("three two one", "one two three")


def test_rules_in_context_puts_the_nearest_clusters_rules_in_the_prompt(system, testset):
    items, _ = read_testset(testset)
    system.model.calls.clear()
    SystemRunner(system).answer("rules_in_context", items[:1])
    assert system.model.calls == [(None, "how to boil an egg")]
    runner = SystemRunner(system, rules_k_clusters=1)
    rules, cluster = runner.rules_for_query("how to boil an egg")
    assert rules == ["Give the steps as a numbered list."] and cluster == "c-egg"


def test_resume_answers_only_missing_items(system, testset, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(None, testset, out, system=system, systems=["base"], progress=False)
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:20])  # one finished line, one torn by a kill
    system.model.calls.clear()
    result = evaluate(None, testset, out, system=system, systems=["base"], progress=False, batch_size=1)
    assert len(system.model.calls) == 2 and len(result.rows) == 3
    assert sorted(r["id"] for r in result.rows) == ["e1", "o1", "p1"]


def test_bad_items_reported_and_rest_kept(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "query": "hi"}\nnot json\n{"id": "b", "messages": [{"role": "user"}]}\n'
                    '{"id": "a", "query": "again"}\n{"id": "c", "messages": [{"role": "user", "content": "q"}, '
                    '{"role": "assistant", "content": "x"}]}\n')
    items, problems = read_testset(path)
    assert [i.id for i in items] == ["a"]
    assert [(p.line, p.field) for p in problems] == [(2, "<json>"), (3, "messages[0].content"), (4, "id"), (5, "messages")]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("nope\n")
    with pytest.raises(LogFormatError, match="no valid test item"):
        read_testset(empty)


def test_config_errors(system, testset, tmp_path):
    with pytest.raises(ConfigError, match="unknown system"):
        evaluate(None, testset, tmp_path / "p.jsonl", system=system, systems=["gpt"], progress=False)
    with pytest.raises(ConfigError, match="module:function"):
        load_callable("nocolon")
    with pytest.raises(ConfigError, match="no function"):
        load_callable("json:not_there")


class ScriptedJudge(FakeListChatModel):
    """q1: prefers the non-base answer; q2: always says A (pure position bias); q3: unreadable."""

    responses: list[str] = ["-"]

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        text = messages[-1].content
        if "q1" in text:
            return "A" if "## Answer A\no1" in text else "B"
        return "A" if "q2" in text else "maybe"


def test_pairwise_judge_cancels_position_bias():
    res = pairwise_win_rate(ScriptedJudge(), ["q1", "q2", "q3"], ["b1", "b2", "b3"], ["o1", "o2", "o3"])
    assert res["pairs"] == 3 and res["judged"] == 2  # q3 had no readable verdict in either order
    assert res["win_rate"] == pytest.approx((1.0 + 0.5) / 2)  # q2's bias splits into a tie


def test_judge_and_plots_from_evaluate(system, testset, tmp_path):
    require_module("matplotlib", "pip install 'uno-graph[eval]'")
    judge = FakeListChatModel(responses=["T"] * 100)
    result = evaluate(None, testset, tmp_path / "p.jsonl", system=system, judge=judge, progress=False,
                      plot_dir=tmp_path / "plots", check=lambda item, answer: len(answer) > 3)
    assert result.summary["systems"]["uno"]["judge_win_rate"] == 0.5
    for name in ("before_after.png", "score_vs_tokens.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_batched_run_on_a_real_lm_matches_the_graph(tmp_path, tiny_lm_dir):
    """Tiny random LM with PEFT adapters: mixed-adapter batches give the graph's own greedy answers."""
    from tests.fakes import make_lora
    from tests.test_serving_remote import make_workdir
    from uno_graph.graph import UnoSystem

    loras = {w: make_lora(tiny_lm_dir, tmp_path / "loras" / w, seed) for w, seed in (("egg", 1), ("paris", 2), ("train", 3))}
    work = make_workdir(tmp_path / "w", tiny_lm_dir, loras, {"egg": "expert", "paris": "critic"})
    system = UnoSystem.load(work, embedder=KeywordEmbedder())
    items = [{"id": f"q{i}", "query": q} for i, q in enumerate(
        ["How long do I boil an egg?", "What is there to see in Paris?", "Which train goes north?", "egg salad?"])]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    batched = evaluate(None, path, tmp_path / "b.jsonl", system=system, progress=False, batch_size=4)
    single = evaluate(None, path, tmp_path / "s.jsonl", system=system, progress=False, batch_size=1)
    key = lambda r: (r["id"], r["system"])
    for b, s in zip(sorted(batched.rows, key=key), sorted(single.rows, key=key)):
        assert (b["answer"], b["route"], b["adapter"], b["input_tokens"]) == (s["answer"], s["route"], s["adapter"], s["input_tokens"])
    routes = {r["id"]: r["route"] for r in batched.rows if r["system"] == "uno"}
    assert routes == {"q0": "expert", "q1": "critic", "q2": "base", "q3": "expert"}


def test_uno_routes_a_returning_user_by_their_logs_and_uno_query_by_the_query_alone(system, tmp_path):
    system.store.update_cluster("c-egg", users=json.dumps({"alice": 5}))
    system.store.update_cluster("c-paris", users=json.dumps({"bob": 5}))
    system.router.use(system.router.read_table())
    path = tmp_path / "users.jsonl"
    path.write_text(json.dumps({"id": "j1", "user_id": "alice", "messages": [{"role": "user", "content": "tell me a joke"}]})
                    + "\n")
    items, _ = read_testset(path)
    runner = SystemRunner(system)
    assert [a.adapter for a in runner.answer("uno", items)] == ["c-egg/expert"]  # route_by_user: the default
    assert [a.adapter for a in runner.answer("uno_user", items)] == ["c-egg/expert"]
    assert [a.route for a in runner.answer("uno_query", items)] == ["base"]  # far from every cluster


def test_batched_state_machine_answers_with_the_best_of_n_as_the_graph_does(system, testset):
    from tests.fakes import SampleEcho
    from uno_graph.nodes.best_of import BestOf
    from uno_graph.want import WantScorer

    model = SampleEcho(calls=[])
    best_of = BestOf(lambda a: WantScorer({"head=- ": 2.0}, -1.0) if a == "c-egg/expert" else None, n=4)
    served = SimpleNamespace(model=model, router=system.router, store=system.store, best_of=lambda: best_of,
                             graph=lambda mode="uno": build_graph(model, system.router, mode, best_of=best_of).compile())
    items, _ = read_testset(testset)
    runner = SystemRunner(served)
    answers = {i.id: a for i, a in zip(items, runner.answer("uno", items, batched=True))}
    via_graph = {i.id: a for i, a in zip(items, runner.answer("uno", items, batched=False))}
    assert answers["e1"].text == via_graph["e1"].text == "- one\n- two"  # the Expert cluster: best of 4
    assert answers["e1"].calls == via_graph["e1"].calls == 4
    assert answers["e1"].output_tokens == via_graph["e1"].output_tokens
