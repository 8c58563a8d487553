"""UnoMemoryStore: the read-only LangGraph store view of a work directory (clusters, rules, feedback)."""

from __future__ import annotations

import asyncio
import json

import pytest
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

from tests.fakes import KeywordEmbedder, keyword_router
from uno_graph.errors import ConfigError
from uno_graph.memory_store import ReadOnlyStoreError, UnoMemoryStore, matches_filter

RULES = [("r1", "Give the steps as a numbered list.", "c-egg", "l1", "u1"),
         ("r2", "Say how many minutes.", "c-egg", "l2", "u2"),
         ("r3", "Name one museum only.", "c-paris", "l3", "u1")]
DISTILL = [{"id": "l1", "user_id": "u1", "query": "how to boil an egg", "answer": "Boil it.",
            "feedback": "numbered steps please", "rating": -1, "edited": "1. Boil water. 2. Add the egg.",
            "rules": ["Give the steps as a numbered list."]},
           {"id": "l2", "user_id": "u2", "query": "egg timing", "answer": "A while.", "feedback": "how many minutes?",
            "rating": None, "edited": None, "rules": ["Say how many minutes."]},
           {"id": "l3", "user_id": "u1", "query": "what to see in paris", "answer": "Everything.",
            "feedback": "just one museum", "rating": 0, "edited": None, "rules": ["Name one museum only."]},
           {"id": "l4", "user_id": None, "query": "anonymous", "answer": "x", "feedback": "y", "rules": []}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    router = keyword_router(root / "chroma")
    emb = KeywordEmbedder()
    router.store.put_rules([{"id": i, "rule": rule, "cluster_id": c, "log_id": log, "user_id": u}
                            for i, rule, c, log, u in RULES], emb.encode([r[1] + " " + r[2] for r in RULES]))
    stages = root / "stages"
    stages.mkdir()
    (stages / "distill.jsonl").write_text("".join(json.dumps(r) + "\n" for r in DISTILL))
    (stages / "clusters.jsonl").write_text(json.dumps({"id": "c-egg", "members": ["l1", "l2"]}) + "\n"
                                           + json.dumps({"id": "c-paris", "members": ["l3"]}) + "\n")
    return root, router


@pytest.fixture(scope="module")
def memory(workdir):
    root, router = workdir
    return UnoMemoryStore(router.store, root, embedder=KeywordEmbedder())


def test_is_a_langgraph_store_with_the_learned_namespaces(memory):
    assert isinstance(memory, BaseStore)
    assert memory.list_namespaces(prefix=("uno",)) == [
        ("uno", "clusters"), ("uno", "feedback", "u1"), ("uno", "feedback", "u2"),
        ("uno", "rules", "c-egg"), ("uno", "rules", "c-paris")]
    assert memory.list_namespaces(prefix=("uno", "rules")) == [("uno", "rules", "c-egg"), ("uno", "rules", "c-paris")]
    assert memory.list_namespaces(suffix=("u2",)) == [("uno", "feedback", "u2")]
    assert memory.list_namespaces(prefix=("uno", "*", "c-paris")) == [("uno", "rules", "c-paris")]
    assert memory.list_namespaces(max_depth=2) == [("uno", "clusters"), ("uno", "feedback"), ("uno", "rules")]
    assert memory.list_namespaces(limit=1, offset=1) == [("uno", "feedback", "u1")]


def test_get_rules_clusters_and_feedback(memory):
    rule = memory.get(("uno", "rules", "c-egg"), "r1")
    assert rule.value == {"rule": "Give the steps as a numbered list.", "cluster_id": "c-egg", "log_id": "l1",
                          "user_id": "u1"}
    cluster = memory.get(("uno", "clusters"), "c-egg").value
    assert (cluster["route"], cluster["adapter"], cluster["size"]) == ("expert", "adapters/c-egg/expert", 5)
    fb = memory.get(("uno", "feedback", "u1"), "l1").value
    assert (fb["feedback"], fb["edited_response"], fb["cluster_id"]) == ("numbered steps please",
                                                                          "1. Boil water. 2. Add the egg.", "c-egg")
    assert memory.get(("uno", "rules", "c-egg"), "nope") is None
    assert memory.get(("uno", "feedback", "None"), "l4") is None  # no user id: no namespace


def test_search_lists_filters_and_ranks_by_query(memory):
    egg_rules = memory.search(("uno", "rules", "c-egg"))
    assert [i.key for i in egg_rules] == ["r1", "r2"] and all(i.score is None for i in egg_rules)
    assert [i.key for i in memory.search(("uno", "rules"), filter={"user_id": "u1"})] == ["r1", "r3"]
    ranked = memory.search(("uno", "rules"), query="what is in paris", limit=2)
    assert ranked[0].key == "r3" and ranked[0].score == pytest.approx(1.0) and ranked[1].score == pytest.approx(0.0)
    mine = memory.search(("uno", "feedback", "u1"), query="boiling an egg")
    assert [i.key for i in mine] == ["l1", "l3"] and mine[0].score > mine[1].score
    assert [i.key for i in memory.search(("uno", "clusters"), query="train times", limit=1)] == ["c-train"]
    assert [i.key for i in memory.search(("uno", "feedback"), filter={"rating": {"$lt": 0}})] == ["l1"]


def test_async_reads(memory):
    async def read():
        return await memory.aget(("uno", "rules", "c-paris"), "r3"), await memory.alist_namespaces(prefix=("uno", "feedback"))

    item, namespaces = asyncio.run(read())
    assert item.value["rule"] == "Name one museum only." and namespaces == [("uno", "feedback", "u1"), ("uno", "feedback", "u2")]


def test_writes_raise_a_clear_error(memory):
    with pytest.raises(ReadOnlyStoreError, match="read-only view"):
        memory.put(("uno", "rules", "c-egg"), "r9", {"rule": "x"})
    with pytest.raises(ReadOnlyStoreError):
        memory.delete(("uno", "rules", "c-egg"), "r1")
    with pytest.raises(ReadOnlyStoreError):
        asyncio.run(memory.aput(("app",), "k", {"v": 1}))
    assert memory.get(("uno", "rules", "c-egg"), "r1") is not None


def test_refresh_sees_what_learn_or_forget_changed(workdir, tmp_path):
    root, router = workdir
    memory = UnoMemoryStore(router.store, root, embedder=KeywordEmbedder())
    router.store.put_rules([{"id": "r4", "rule": "Use the 24-hour clock.", "cluster_id": "c-train", "log_id": "l5"}],
                           KeywordEmbedder().encode(["train"]))
    try:
        assert memory.get(("uno", "rules", "c-train"), "r4") is None  # a snapshot
        memory.refresh()
        assert memory.get(("uno", "rules", "c-train"), "r4").value["rule"] == "Use the 24-hour clock."
    finally:
        router.store.rules.delete(ids=["r4"])


def test_a_node_reads_it_through_the_runtime_store(memory):
    from langgraph.runtime import Runtime

    def remember(state: MessagesState, runtime: Runtime) -> dict:
        rules = runtime.store.search(("uno", "rules"), query=state["messages"][-1].content, limit=1)
        return {"messages": [("ai", rules[0].value["rule"])]}

    graph = StateGraph(MessagesState).add_node(remember).add_edge(START, "remember").compile(store=memory)
    assert graph.invoke({"messages": [("user", "boil an egg")]})["messages"][-1].content == "Give the steps as a numbered list."


def test_query_search_without_an_embedder_or_workdir_says_what_to_pass(workdir):
    _, router = workdir
    memory = UnoMemoryStore(router.store)
    assert memory.search(("uno", "feedback")) == []  # no work directory: no feedback items
    with pytest.raises(ConfigError, match="embedder="):
        memory.search(("uno", "rules"), query="egg")


def test_from_workdir_needs_a_work_directory(tmp_path):
    with pytest.raises(ConfigError, match="system.json"):
        UnoMemoryStore.from_workdir(tmp_path)


def test_filter_semantics():
    value = {"rating": -1, "rules": ["a", "b"], "user_id": "u1"}
    assert matches_filter(value, {"rules": "a", "user_id": "u1", "rating": {"$gte": -1, "$ne": 0}})
    assert not matches_filter(value, {"rating": {"$gt": 0}}) and not matches_filter({"rating": None}, {"rating": {"$lt": 0}})
    with pytest.raises(ConfigError, match=r"\$in"):
        matches_filter(value, {"rating": {"$in": [1]}})
