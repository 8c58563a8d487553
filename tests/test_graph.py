"""The serving graph with fakes: topology per mode, routing, token accounting, mounting in a parent."""

import numpy as np
import pytest
from langgraph.graph import START, MessagesState, StateGraph

from tests.fakes import AdapterEcho, SampleEcho, keyword_router
from uno_graph.errors import ConfigError
from uno_graph.graph import build_graph
from uno_graph.state import UnoContext


@pytest.fixture()
def router(tmp_path):
    return keyword_router(tmp_path / "chroma")


def _ask(graph, text, **kw):
    out = graph.invoke({"messages": [("user", text)]}, **kw)
    return out["messages"][-1]


def test_topology_and_schemas(router):
    graph = build_graph(AdapterEcho(calls=[]), router).compile()
    assert set(graph.get_graph().nodes) >= {"route", "expert_generate", "base_generate", "critique", "revise"}
    assert set(graph.get_input_jsonschema()["properties"]) == {"messages"}
    assert set(graph.get_output_jsonschema()["properties"]) == {"messages"}
    with pytest.raises(ConfigError, match="uno_single"):
        build_graph(AdapterEcho(calls=[]), router, mode="bogus")


def test_routes_expert_critic_base_and_ood(router):
    model = AdapterEcho(calls=[])
    graph = build_graph(model, router, mode="uno").compile()
    expert = _ask(graph, "how long to boil an egg")
    assert expert.content.startswith("[c-egg/expert]")
    assert expert.response_metadata["uno_route"] == "expert" and expert.response_metadata["uno_cluster"] == "c-egg"
    model.calls.clear()
    critic = _ask(graph, "what is in paris")
    assert [a for a, _ in model.calls] == [None, "c-paris/critic", None]  # base → critique → revise
    assert critic.response_metadata["uno_route"] == "critic" and critic.response_metadata["uno_calls"] == 3
    assert critic.usage_metadata["input_tokens"] == sum(len(t.split()) for _, t in model.calls)
    assert "## Suggestion" in model.calls[-1][1]
    based = _ask(graph, "which train to take")  # cluster without adapter
    assert based.response_metadata["uno_route"] == "base" and based.content.startswith("[base]")
    ood = _ask(graph, "tell me a joke")  # far from every centroid
    assert ood.response_metadata["uno_route"] == "base" and ood.response_metadata["uno_cluster"] is None


def test_uno_single_answers_critic_clusters_with_one_base_call(router):
    model = AdapterEcho(calls=[])
    single = build_graph(model, router, mode="uno_single").compile()
    msg = _ask(single, "what is in paris")
    assert len(model.calls) == 1 and model.calls[0][0] is None and msg.response_metadata["uno_calls"] == 1
    model.calls.clear()
    uno = build_graph(model, router, mode="uno").compile()
    _ask(uno, "what is in paris", context=UnoContext(mode="uno_single"))  # per-run override
    assert len(model.calls) == 1


def test_stream_events_and_parent_mount(router):
    model = AdapterEcho(calls=[])
    uno = build_graph(model, router).compile()
    events = [chunk for mode, chunk in uno.stream({"messages": [("user", "boil an egg")]}, stream_mode=["custom", "updates"]) if mode == "custom"]
    assert events[0]["uno_event"] == "routed" and events[0]["route"] == "expert"
    parent = StateGraph(MessagesState)
    parent.add_node("uno", uno)
    parent.add_edge(START, "uno")
    out = parent.compile().invoke({"messages": [("user", "boil an egg")]})
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    assert "route" not in out and out["messages"][-1].response_metadata["uno_adapter"] == "c-egg/expert"


def test_a_cluster_learned_from_one_users_logs_serves_only_that_user(tmp_path):
    import json

    from uno_graph.config import UnoConfig
    from uno_graph.router import Router
    from uno_graph.rules_context import RulesInContext

    by_query = keyword_router(tmp_path / "chroma")
    store = by_query.store
    store.update_cluster("c-egg", owner="alice", users=json.dumps(["alice"]))  # `user_scope`: alice's own
    store.put_rules([{"id": "a#0", "rule": "Answer in lowercase.", "cluster_id": "c-egg", "log_id": "a", "user_id": "alice"},
                     {"id": "p#0", "rule": "Add a map.", "cluster_id": "c-paris", "log_id": "p", "user_id": "bob"}],
                    by_query.embedder.encode(["egg", "paris"]))
    for by_user in (False, True):
        router = Router(store, by_query.embedder, UnoConfig(route_by_user=by_user))
        assert router.route("boil an egg", "alice").adapter == "c-egg/expert"
        # however near the query, nobody else reaches it: the next visible cluster is too far, so base
        for other in ("bob", None):
            decision = router.route("boil an egg", other)
            assert decision.route == "base" and decision.cluster_id != "c-egg"
        assert router.route("what is in paris", "bob").adapter == "c-paris/critic"  # shared clusters serve everyone
    rules = RulesInContext(store, by_query.embedder, k_clusters=1)
    assert rules.retrieve("boil an egg", "alice").rules == ("Answer in lowercase.",)
    found = rules.retrieve("boil an egg", "bob")  # past alice's cluster to the nearest shared one
    assert found.cluster_id not in (None, "c-egg") and "Answer in lowercase." not in found.rules
    assert "Answer in lowercase." not in rules.retrieve("boil an egg").rules


def test_a_returning_user_is_routed_by_the_query_and_their_own_logs(tmp_path):
    import json

    from uno_graph.config import UnoConfig
    from uno_graph.router import Router

    by_query = keyword_router(tmp_path / "chroma")
    store = by_query.store
    # users keep to their clusters: alice's and dave's logs are egg questions, bob's paris ones, carol's trains
    store.update_cluster("c-egg", users=json.dumps({"alice": 4, "dave": 3}))
    store.update_cluster("c-paris", users=json.dumps({"bob": 4, "erin": 3}))
    store.update_cluster("c-train", users=json.dumps({"carol": 4}))
    router = Router(store, by_query.embedder, UnoConfig())  # route_by_user is on by default
    assert router.table.user_prior_strength <= 1.0  # learned from the table: users' logs predict their cluster
    # alice asks about a subject no log mentions: her own cluster answers, however far it is
    assert router.route("tell me a joke", "alice").adapter == "c-egg/expert"
    assert router.route("tell me a joke", "bob").adapter == "c-paris/critic"
    assert router.route("tell me a joke", "carol").route == "base"  # her cluster is served by base
    # a question plainly about another cluster's subject goes there: the query outweighs the prior
    assert router.route("what is in paris", "alice").adapter == "c-paris/critic"
    # no user, an unknown user, or the option off: by the query alone
    assert router.route("tell me a joke").route == "base"
    assert router.route("tell me a joke", "frank").route == "base"
    off = Router(store, by_query.embedder, UnoConfig(route_by_user=False))
    assert off.route("tell me a joke", "alice").route == "base"
    assert off.route("tell me a joke", "alice", by_user=True).adapter == "c-egg/expert"  # as `uno_user` in eval
    # through the graph, the user comes from the run's context
    graph = build_graph(AdapterEcho(calls=[]), router, mode="uno").compile()
    assert _ask(graph, "tell me a joke", context=UnoContext(user_id="alice")).content.startswith("[c-egg/expert]")
    assert _ask(graph, "tell me a joke").response_metadata["uno_route"] == "base"


def test_where_users_write_in_every_cluster_the_query_alone_decides(tmp_path):
    import json

    from uno_graph.config import UnoConfig
    from uno_graph.router import Router

    by_query = keyword_router(tmp_path / "chroma")
    store = by_query.store
    spread = {"alice": 3, "bob": 3, "carol": 3}
    for cid in ("c-egg", "c-paris", "c-train"):  # everyone asks about everything, alice a little more about eggs
        store.update_cluster(cid, users=json.dumps({**spread, "alice": 4} if cid == "c-egg" else spread))
    router = Router(store, by_query.embedder, UnoConfig())
    assert router.table.user_prior_strength >= 100  # the users' logs say nothing about where they ask next
    for user in ("alice", "bob", None):
        assert router.route("tell me a joke", user).route == "base"  # far from every cluster: no user's own
        assert router.route("what is in paris", user).adapter == "c-paris/critic"
        assert router.route("boil an egg", user).adapter == "c-egg/expert"


def test_user_counts_read_older_rows_that_list_user_ids():
    from uno_graph.router import users_of

    assert users_of({"users": '["a", "b"]'}) == {"a": 1, "b": 1}
    assert users_of({"users": '{"a": 3}'}) == {"a": 3}
    assert users_of({"users": ""}) == {} and users_of({"users": "not json"}) == {}



def test_expert_answers_with_the_best_of_n_by_its_want_model(router):
    from uno_graph.nodes.best_of import BestOf
    from uno_graph.want import WantScorer

    lists = WantScorer({"head=- ": 2.0}, -1.0)  # a cluster whose users want `- ` lists
    model = SampleEcho(calls=[])
    graph = build_graph(model, router, best_of=BestOf(lambda a: lists if a == "c-egg/expert" else None, n=4)).compile()
    reply = _ask(graph, "how long to boil an egg")
    assert reply.content == "- one\n- two"  # the third sample; greedy and the other samples are prose
    assert model.calls == [("c-egg/expert", 0.0, 0), ("c-egg/expert", 0.8, 0), ("c-egg/expert", 0.8, 1),
                           ("c-egg/expert", 0.8, 2)]
    meta = reply.response_metadata
    assert meta["uno_best_of"]["picked"] == 3 and meta["uno_calls"] == 4 and meta["uno_route"] == "expert"
    assert reply.usage_metadata["output_tokens"] == 3 + 2 + 2 + 4  # every candidate's tokens count
    model.calls.clear()
    streamed = [m for m, _ in graph.stream({"messages": [("user", "boil an egg")]}, stream_mode="messages")]
    assert [m.content for m in streamed] == ["- one\n- two"]  # the candidates are internal: one message
    model.calls.clear()
    plain = build_graph(model, router, best_of=BestOf(lambda a: None, n=4)).compile()
    assert _ask(plain, "how long to boil an egg").content == "Plain prose answer." and len(model.calls) == 1


def test_best_of_keeps_the_greedy_answer_on_a_tie():
    from langchain_core.messages import AIMessage

    from uno_graph.nodes.best_of import pick
    from uno_graph.want import WantScorer

    replies = [AIMessage(content="First answer."), AIMessage(content="Second answer."),
               AIMessage(content="A cut off answer. And then", response_metadata={"finish_reason": "length"})]
    chosen = pick(WantScorer({}, 0.0), replies)
    assert chosen.index == 0 and chosen.text == "First answer."
    chosen = pick(WantScorer({"open1=A": 1.0}, 0.0), replies)  # users who want answers opening with "A"
    assert chosen.index == 2 and chosen.text == "A cut off answer."  # ended at its last sentence
