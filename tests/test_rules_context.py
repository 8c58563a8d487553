"""Rules in context as a serving mode: the graph's and the middleware's ``rules_in_context`` (no adapter,
the nearest clusters' rules in the system prompt), sharing `uno_graph.rules_context` with the eval baseline."""

from __future__ import annotations

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tests.fakes import KeywordEmbedder, keyword_router
from tests.requires import require_module
from uno_graph.graph import build_graph
from uno_graph.rules_context import RULES_SYSTEM, RetrievedRules, RulesInContext, with_rules
from uno_graph.state import UnoContext


class PromptRecorder(BaseChatModel):
    """Replies 'ok', recording each call's adapter and full prompt."""

    calls: list = []

    @property
    def _llm_type(self) -> str:
        return "prompt-recorder"

    def _generate(self, messages, stop=None, run_manager=None, adapter=None, **kwargs) -> ChatResult:
        self.calls.append((adapter, list(messages)))
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    router = keyword_router(tmp_path_factory.mktemp("rules") / "chroma")
    rows = [{"id": "r1", "rule": "Give the steps as a numbered list.", "cluster_id": "c-egg", "log_id": "l1"},
            {"id": "r2", "rule": "Say how many minutes.", "cluster_id": "c-egg", "log_id": "l2"},
            {"id": "r3", "rule": "Name one museum only.", "cluster_id": "c-paris", "log_id": "l3"}]
    router.store.put_rules(rows, KeywordEmbedder().encode(["egg", "egg", "paris"]))
    return router


def test_retrieve_gives_the_nearest_clusters_rules(router):
    found = RulesInContext.from_router(router, k_clusters=1).retrieve("how to boil an egg")
    assert found.cluster_id == "c-egg"
    assert found.rules == ("Give the steps as a numbered list.", "Say how many minutes.")
    assert found.system_prompt() == RULES_SYSTEM.format(rules="1. Give the steps as a numbered list.\n2. Say how many minutes.")
    assert RulesInContext.from_router(router, k_clusters=2, max_rules=1).retrieve("egg").rules == (
        "Give the steps as a numbered list.",)
    assert RetrievedRules().system_prompt() is None


def test_with_rules_merges_into_a_leading_system_message():
    merged = with_rules([("system", "Be kind."), ("user", "hi")], "RULES")
    assert [m.type for m in merged] == ["system", "human"] and merged[0].content == "Be kind.\n\nRULES"
    assert with_rules([("user", "hi")], "RULES")[0] == SystemMessage("RULES")
    assert len(with_rules([("user", "hi")], None)) == 1


def test_graph_mode_answers_with_the_base_model_and_the_rules(router):
    model = PromptRecorder(calls=[])
    graph = build_graph(model, router, "rules_in_context").compile()
    answer = graph.invoke({"messages": [("user", "how long to boil an egg")]})["messages"][-1]
    (adapter, prompt), = model.calls
    assert adapter is None and prompt[0].type == "system" and "1. Give the steps as a numbered list." in prompt[0].content
    meta = answer.response_metadata
    assert (meta["uno_route"], meta["uno_cluster"], meta["uno_adapter"], meta["uno_calls"]) == ("rules", "c-egg", None, 1)


def test_a_run_can_switch_a_uno_graph_to_rules_in_context(router):
    model = PromptRecorder(calls=[])
    graph = build_graph(model, router, "uno").compile()
    answer = graph.invoke({"messages": [("user", "what is in paris")]}, context=UnoContext(mode="rules_in_context"))
    assert len(model.calls) == 1 and model.calls[0][0] is None  # no critique, no adapter
    assert "Name one museum only." in model.calls[0][1][0].content
    assert answer["messages"][-1].response_metadata["uno_route"] == "rules"
    model.calls.clear()
    graph.invoke({"messages": [("user", "what is in paris")]})  # the graph's own mode: Critic path
    assert [a for a, _ in model.calls] == [None, "c-paris/critic", None]


def test_middleware_mode_puts_the_rules_in_the_agents_system_prompt(router):
    require_module("langchain.agents", "pip install 'uno-graph[agents]'")
    from langchain.agents import create_agent

    from uno_graph.middleware import UnoMiddleware

    model = PromptRecorder(calls=[])
    agent = create_agent(model, tools=[], system_prompt="You are terse.",
                         middleware=[UnoMiddleware(router, mode="rules_in_context")])
    answer = agent.invoke({"messages": [("user", "boil an egg")]})["messages"][-1]
    (adapter, prompt), = model.calls
    assert adapter is None and prompt[0].content.startswith("You are terse.\n\nUsers of this assistant")
    assert "2. Say how many minutes." in prompt[0].content
    assert (answer.response_metadata["uno_route"], answer.response_metadata["uno_cluster"]) == ("rules", "c-egg")
