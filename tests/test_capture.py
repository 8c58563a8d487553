"""Recording served answers as logs (uno_graph.capture): graph, middleware, OpenAI server, CLI, feedback, durability."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from tests.fakes import AdapterEcho, KeywordEmbedder, keyword_router
from tests.requires import require_module
from uno_graph.capture import (BaseStoreLogStore, FeedbackError, JsonlLogStore, Recorder, UnknownLogError, export,
                               feedback)
from uno_graph.config import UnoConfig
from uno_graph.graph import build_graph
from uno_graph.logs import read_logs
from uno_graph.state import UnoContext
from uno_graph.store import UnoStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def router(tmp_path):
    return keyword_router(tmp_path / "chroma")


@pytest.fixture()
def events(tmp_path) -> Path:
    return tmp_path / "events.jsonl"


def _turn(graph, text, thread="t1", user="u1"):
    out = graph.invoke({"messages": [("user", text)]}, {"configurable": {"thread_id": thread}},
                       context=UnoContext(user_id=user))
    return out["messages"][-1]


class BrokenStore:
    """A store whose every write fails (a full disk, a database that is down)."""

    def add_answer(self, record):
        raise OSError("disk full")

    def add_followup(self, log_id, message):
        raise OSError("disk full")

    def add_feedback(self, log_id, feedback):
        raise OSError("disk full")

    def last_in_thread(self, user_id, thread_id):
        raise OSError("disk full")

    def get(self, log_id):
        return None

    def records(self):
        return iter(())


# -- the graph --------------------------------------------------------------------------------------------

def test_graph_records_answers_and_follow_ups(router, events):
    recorder = Recorder(events)
    graph = build_graph(AdapterEcho(calls=[]), router, recorder=recorder).compile(checkpointer=InMemorySaver())
    assert set(graph.get_input_jsonschema()["properties"]) == {"messages"}
    assert set(graph.get_output_jsonschema()["properties"]) == {"messages"}

    first = _turn(graph, "how long to boil an egg")
    log_id = first.response_metadata["uno_log_id"]
    assert first.response_metadata["uno_route"] == "expert" and first.content.startswith("[c-egg/expert]")
    record = JsonlLogStore(events).get(log_id)  # a second reader of the same file
    assert record["id"] == log_id and record["user_id"] == "u1"
    assert record["messages"] == [{"role": "user", "content": "how long to boil an egg"},
                                  {"role": "assistant", "content": first.content}]
    meta = record["metadata"]
    assert (meta["user_id"], meta["thread_id"], meta["route"], meta["cluster"], meta["adapter"], meta["source"]) == (
        "u1", "t1", "expert", "c-egg", "c-egg/expert", "graph")

    second = _turn(graph, "too long, and what is in paris")  # the follow-up, and a new question (critic route)
    assert second.response_metadata["uno_route"] == "critic"
    folded = {r["id"]: r for r in recorder.records()}
    assert [m["role"] for m in folded[log_id]["messages"]] == ["user", "assistant", "user"]
    assert folded[log_id]["messages"][-1]["content"] == "too long, and what is in paris"
    critic = folded[second.response_metadata["uno_log_id"]]
    assert (critic["metadata"]["route"], critic["metadata"]["cluster"], critic["metadata"]["adapter"]) == (
        "critic", "c-paris", "c-paris/critic")
    assert critic["messages"][0] == {"role": "user", "content": "too long, and what is in paris"}

    _turn(graph, "which train to take", thread="t2")  # another thread: no follow-up to either
    assert len(recorder.records()) == 3 and len(folded[log_id]["messages"]) == 3


def test_follow_up_by_thread_id_without_history_and_after_a_restart(router, events):
    model = AdapterEcho(calls=[])
    graph = build_graph(model, router, recorder=Recorder(events)).compile()  # no checkpointer: no history
    first = _turn(graph, "boil an egg please")
    _turn(graph, "thanks, that worked")
    restarted = build_graph(model, router, recorder=Recorder(events)).compile()  # a new process, same file
    _turn(restarted, "one more thing")
    _turn(restarted, "unrelated", thread="other")
    store = JsonlLogStore(events)
    assert [m["content"] for m in store.get(first.response_metadata["uno_log_id"])["messages"]][2:] == [
        "thanks, that worked"]
    second = [r for r in store.records() if r["messages"][0]["content"] == "thanks, that worked"][0]
    assert second["messages"][-1] == {"role": "user", "content": "one more thing"}
    no_thread = graph.invoke({"messages": [("user", "boil an egg")]})["messages"][-1]  # no thread: recorded, unlinked
    assert store.get(no_thread.response_metadata["uno_log_id"])["metadata"]["thread_id"] is None


def test_system_graph_takes_a_recorder(router, events):
    from uno_graph.graph import UnoSystem

    system = UnoSystem(Path("."), UnoConfig(), AdapterEcho(calls=[]), None, router)
    reply = _turn(system.graph(recorder=events), "boil an egg")  # a path makes a JsonlLogStore
    assert JsonlLogStore(events).get(reply.response_metadata["uno_log_id"]) is not None
    assert "uno_log_id" not in _turn(system.graph(), "boil an egg").response_metadata


def test_a_failing_store_never_breaks_the_answer(router, caplog):
    recorder = Recorder(BrokenStore())
    graph = build_graph(AdapterEcho(calls=[]), router, recorder=recorder).compile(checkpointer=InMemorySaver())
    with caplog.at_level(logging.WARNING, logger="uno_graph.capture.recorder"):
        reply = _turn(graph, "how long to boil an egg")
        again = _turn(graph, "and in paris?")
    assert reply.content.startswith("[c-egg/expert]") and "uno_log_id" not in reply.response_metadata
    assert again.response_metadata["uno_route"] == "critic"
    assert recorder.failures >= 2 and "disk full" in caplog.text and "served unrecorded" in caplog.text
    with pytest.raises(OSError):  # explicit feedback does raise: its caller must know
        recorder.feedback("uno-x", rating=1)


# -- feedback ---------------------------------------------------------------------------------------------

def test_feedback_from_python_and_cli_keeps_the_latest_value_of_each_field(router, events, capsys):
    from uno_graph.cli import main

    recorder = Recorder(events)
    graph = build_graph(AdapterEcho(calls=[]), router, recorder=recorder).compile()
    log_id = _turn(graph, "boil an egg").response_metadata["uno_log_id"]
    assert recorder.feedback(log_id, rating=1) == {"rating": 1.0}
    assert feedback(recorder.store, log_id, comment="good") == {"comment": "good"}
    assert main(["feedback", str(events), log_id, "--rating", "-0.5", "--edit", "1. Boil water.\n2. Add the egg."]) == 0
    assert "feedback recorded" in capsys.readouterr().out
    assert recorder.store.get(log_id)["feedback"] == {"rating": -0.5, "comment": "good",
                                                      "edited_response": "1. Boil water.\n2. Add the egg."}

    assert main(["feedback", str(events), "uno-nope", "--rating", "1"]) == 2
    assert "no recorded answer has log id 'uno-nope'" in capsys.readouterr().err
    assert main(["feedback", str(events), log_id, "--rating", "3"]) == 2
    assert "rating: is 3.0; it must be in [-1, 1]" in capsys.readouterr().err
    assert main(["feedback", str(events), log_id]) == 2
    assert "give at least one of rating, edited_response, comment" in capsys.readouterr().err
    assert main(["feedback", str(events.with_name("missing.jsonl")), log_id, "--rating", "1"]) == 2
    assert "no event file" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, field", [
    ({"rating": 1.5}, "rating"), ({"rating": True}, "rating"), ({"rating": "1"}, "rating"),
    ({"rating": float("nan")}, "rating"), ({"edited_response": "  "}, "edited_response"), ({"comment": 3}, "comment"),
    ({}, "feedback"),
])
def test_feedback_validation_names_the_field(events, kwargs, field):
    recorder = Recorder(events)
    log_id = recorder.record_turn([("user", "q")], AIMessage("a"))
    with pytest.raises(FeedbackError) as err:
        recorder.feedback(log_id, **kwargs)
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")
    with pytest.raises(UnknownLogError, match="uno_log_id"):
        recorder.feedback("uno-unknown", rating=0)
    with pytest.raises(FeedbackError, match="log_id"):
        recorder.feedback("", rating=0)


# -- export -----------------------------------------------------------------------------------------------

def test_export_is_read_by_read_logs_without_problems(router, events, tmp_path):
    recorder = Recorder(events)
    graph = build_graph(AdapterEcho(calls=[]), router, recorder=recorder).compile(checkpointer=InMemorySaver())
    a = _turn(graph, "how long to boil an egg").response_metadata["uno_log_id"]
    _turn(graph, "too long; what is in paris")
    b = _turn(graph, "which train to take", thread="t2", user="u2").response_metadata["uno_log_id"]
    recorder.feedback(a, rating=-1, edited_response="Nine minutes.")
    recorder.feedback(b, comment="fine")
    with events.open("ab") as fh:  # a line cut short by a crash: skipped, and the next append starts afresh
        fh.write(b'{"event": "feedback", "log_id": "')
    recorder.feedback(b, rating=1)
    out = tmp_path / "logs.jsonl"
    assert recorder.export(out) == 3
    report = read_logs(out)
    assert report.problems == [] and report.warnings == [] and report.duplicates == 0
    by_id = {r.id: r for r in report.records}
    assert by_id[a].feedback.rating == -1 and by_id[a].feedback.edited_response == "Nine minutes."
    assert by_id[a].feedback_text == "too long; what is in paris" and by_id[a].query == "how long to boil an egg"
    assert by_id[b].feedback.rating == 1 and by_id[b].feedback.comment == "fine" and by_id[b].user_id == "u2"
    assert by_id[b].metadata["route"] == "base" and by_id[b].metadata["cluster"] == "c-train"


# -- durability -------------------------------------------------------------------------------------------

def test_a_recorded_turn_survives_sigkill(events):
    script = f"""
import time
from langchain_core.messages import AIMessage
from uno_graph.capture import Recorder
recorder = Recorder({str(events)!r})
log_id = recorder.record_turn([("user", "How do I boil an egg?")], AIMessage("Nine minutes."), user_id="u1",
                              thread_id="t1", metadata={{"route": "expert"}})
recorder.feedback(log_id, rating=-1)
recorder.record_turn([("user", "How do I boil an egg?"), ("ai", "Nine minutes."), ("user", "Too long.")],
                     AIMessage("Seven, then."), user_id="u1", thread_id="t1")
print(log_id, flush=True)
time.sleep(120)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        log_id = proc.stdout.readline().strip()
        assert log_id.startswith("uno-"), proc.stderr.read() if proc.poll() is not None else log_id
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    record = JsonlLogStore(events).get(log_id)
    assert record["feedback"] == {"rating": -1.0} and record["metadata"]["route"] == "expert"
    assert [m["content"] for m in record["messages"]] == ["How do I boil an egg?", "Nine minutes.", "Too long."]
    assert len(list(JsonlLogStore(events).records())) == 2


# -- a LangGraph BaseStore --------------------------------------------------------------------------------

def test_basestore_log_store_with_inmemorystore(router, tmp_path):
    lg_store = InMemoryStore()
    graph = build_graph(AdapterEcho(calls=[]), router, recorder=lg_store).compile()  # a BaseStore is wrapped
    first = _turn(graph, "how long to boil an egg").response_metadata["uno_log_id"]
    _turn(graph, "shorter please")
    item = lg_store.get(("uno_logs",), first)
    assert [m["content"] for m in item.value["messages"]][-1] == "shorter please"
    assert item.value["metadata"]["route"] == "expert" and item.value["metadata"]["thread_id"] == "t1"

    logs = BaseStoreLogStore(lg_store)
    feedback(logs, first, rating=0.5)
    feedback(logs, first, comment="ok")
    assert lg_store.get(("uno_logs",), first).value["feedback"] == {"rating": 0.5, "comment": "ok"}
    assert logs.last_in_thread("u1", "t1") != first and logs.last_in_thread("u1", "nope") is None
    with pytest.raises(UnknownLogError):
        feedback(logs, "uno-missing", rating=1)
    assert [r["id"] for r in logs.records()][0] == first and len(list(logs.records())) == 2
    assert export(logs, tmp_path / "logs.jsonl") == 2 and read_logs(tmp_path / "logs.jsonl").problems == []


# -- create_agent middleware ------------------------------------------------------------------------------

def test_middleware_records_final_answers_and_follow_ups(router, events):
    require_module("langchain.agents", "pip install 'uno-graph[agents]'")
    from langchain.agents import create_agent

    from uno_graph.middleware import UnoMiddleware

    recorder = Recorder(events)
    agent = create_agent(AdapterEcho(calls=[]), tools=[], middleware=[UnoMiddleware(router, recorder=recorder)],
                         checkpointer=InMemorySaver(), context_schema=UnoContext)
    config = {"configurable": {"thread_id": "a1"}}
    first = agent.invoke({"messages": [("user", "what is in paris")]}, config, context=UnoContext(user_id="u9"))
    answer = first["messages"][-1]
    log_id = answer.response_metadata["uno_log_id"]
    agent.invoke({"messages": [("user", "not what I asked about the egg")]}, config, context=UnoContext(user_id="u9"))
    record = recorder.store.get(log_id)
    assert record["messages"][-1] == {"role": "user", "content": "not what I asked about the egg"}
    meta = record["metadata"]
    assert (meta["route"], meta["cluster"], meta["adapter"], meta["user_id"], meta["thread_id"], meta["source"]) == (
        "critic", "c-paris", "c-paris/critic", "u9", "a1", "agent")
    assert record["messages"][1]["content"] == answer.content  # the revised answer, as served


def test_middleware_with_a_failing_store_still_answers(router, caplog):
    require_module("langchain.agents", "pip install 'uno-graph[agents]'")
    import asyncio

    from langchain.agents import create_agent

    from uno_graph.middleware import UnoMiddleware

    agent = create_agent(AdapterEcho(calls=[]), tools=[], middleware=[UnoMiddleware(router, recorder=BrokenStore())])
    with caplog.at_level(logging.WARNING):
        out = asyncio.run(agent.ainvoke({"messages": [("user", "boil an egg")]}))
    assert out["messages"][-1].content.startswith("[c-egg/expert]") and "disk full" in caplog.text


# -- the OpenAI-compatible server -------------------------------------------------------------------------

class ServedEcho(AdapterEcho):
    """`AdapterEcho` with what `OpenAIServer` asks of its model."""

    model_name: str = "echo"
    adapter_names: list[str] = ["c-egg/expert"]


def _http(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read().decode()
            payload = json.loads(raw) if not raw.startswith("data:") else {"sse": raw}
            return resp.status, payload, resp.headers  # case-insensitive, as HTTP header names are
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_server_records_completions_follow_ups_and_feedback(events):
    from uno_graph.openai_server import OpenAIServer

    question = {"role": "user", "content": "How long do I boil an egg?"}
    with OpenAIServer(ServedEcho(calls=[]), port=0, recorder=events).start() as srv:
        status, body, headers = _http(f"{srv.url}/chat/completions", {
            "model": "c-egg/expert", "user": "u7", "messages": [question]}, {"X-Uno-Thread-Id": "h1"})
        assert status == 200
        log_id = body["id"]
        assert log_id.startswith("chatcmpl-") and headers["X-Uno-Log-Id"] == log_id
        answer = body["choices"][0]["message"]["content"]
        # an OpenAI chat UI resends the conversation (no thread header): the new turn is the follow-up
        status, second, _ = _http(f"{srv.url}/chat/completions", {"model": "echo", "user": "u7", "messages": [
            question, {"role": "assistant", "content": answer}, {"role": "user", "content": "Too long."}]})
        assert status == 200
        # a client that sends only the new turn, with the thread: linked to the thread's latest answer
        status, streamed, headers = _http(f"{srv.url}/chat/completions", {
            "model": "echo", "stream": True, "user": "u7", "metadata": {"thread_id": "h1"},
            "messages": [{"role": "user", "content": "And a train?"}]})
        stream_id = headers["X-Uno-Log-Id"]
        assert status == 200 and f'"id": "{stream_id}"' in streamed["sse"]

        status, ok, _ = _http(f"{srv.url}/feedback", {"log_id": log_id, "rating": -1, "edited_response": "9 minutes."})
        assert status == 200 and ok == {"object": "feedback", "log_id": log_id,
                                        "feedback": {"rating": -1.0, "edited_response": "9 minutes."}}
        assert _http(f"{srv.url}/feedback", {"completion_id": log_id, "comment": "close"})[0] == 200
        status, err, _ = _http(f"{srv.url}/feedback", {"log_id": "chatcmpl-nope", "rating": 1})
        assert status == 404 and err["error"]["code"] == "log_not_found" and err["error"]["param"] == "log_id"
        status, err, _ = _http(f"{srv.url}/feedback", {"log_id": log_id, "rating": 2})
        assert status == 400 and err["error"]["param"] == "rating" and "[-1, 1]" in err["error"]["message"]
        status, err, _ = _http(f"{srv.url}/feedback", {"log_id": log_id, "ratign": 1})
        assert status == 400 and "did you mean `rating`" in err["error"]["message"]
        assert _http(f"{srv.url}/feedback", {"rating": 1})[1]["error"]["param"] == "log_id"
        assert _http(f"{srv.url}/chat/completions", {"model": "echo", "user": 5,
                                                     "messages": [question]})[1]["error"]["param"] == "user"

    store = JsonlLogStore(events)
    record = store.get(log_id)
    assert record["user_id"] == "u7" and record["metadata"]["thread_id"] == "h1"
    assert (record["metadata"]["route"], record["metadata"]["cluster"], record["metadata"]["adapter"]) == (
        "expert", "c-egg", "c-egg/expert")
    assert [m["content"] for m in record["messages"]] == [question["content"], answer, "Too long.", "And a train?"]
    assert record["feedback"] == {"rating": -1.0, "edited_response": "9 minutes.", "comment": "close"}
    assert store.get(second["id"])["metadata"]["route"] == "base"
    assert [m["content"] for m in store.get(second["id"])["messages"]] == ["Too long.", second["choices"][0]["message"]["content"]]
    assert store.get(stream_id)["metadata"]["thread_id"] == "h1"


def test_server_without_a_recorder_refuses_feedback_and_records_nothing():
    from uno_graph.openai_server import OpenAIServer

    with OpenAIServer(ServedEcho(calls=[]), port=0).start() as srv:
        status, body, headers = _http(f"{srv.url}/chat/completions", {"model": "echo",
                                                                       "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200 and "X-Uno-Log-Id" not in headers
        status, err, _ = _http(f"{srv.url}/feedback", {"log_id": body["id"], "rating": 1})
        assert status == 404 and "--record" in err["error"]["message"]


def test_server_on_the_tiny_lm_records_the_completion_id(tiny_lm_dir, events):
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.openai_server import OpenAIServer

    llm = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=6)
    with OpenAIServer(llm, port=0, served_model_name="tiny", recorder=Recorder(events)).start() as srv:
        status, body, _ = _http(f"{srv.url}/chat/completions", {
            "model": "tiny", "messages": [{"role": "user", "content": "How do I boil an egg?"}]})
    assert status == 200
    record = JsonlLogStore(events).get(body["id"])
    assert record["messages"][1] == {"role": "assistant", "content": body["choices"][0]["message"]["content"]}
    assert record["metadata"]["source"] == "openai" and record["metadata"]["model"] == "tiny"


# -- the command line -------------------------------------------------------------------------------------

class LoadableEcho(AdapterEcho):
    """`AdapterEcho` that accepts adapters (what `UnoSystem.load` asks of its model)."""

    def load_adapter(self, name, path):
        pass


@pytest.fixture()
def fake_workdir(tmp_path, monkeypatch):
    """A work directory (egg: expert, paris: critic, train: base) served by fakes: `UnoSystem.load` gets
    `AdapterEcho` and `KeywordEmbedder`, and adapters pass validation unchecked."""
    import uno_graph.adapters.registry as registry
    from uno_graph.graph import UnoSystem

    work = tmp_path / "work"
    work.mkdir()
    config = UnoConfig(base_model="fake-base")
    (work / "system.json").write_text(json.dumps({"base_model": config.base_model, "config": config.to_dict()}))
    store = UnoStore.persistent(work / "chroma")
    emb = KeywordEmbedder()
    for word, route in (("egg", "expert"), ("paris", "critic"), ("train", "base")):
        adapter = f"adapters/c-{word}/{route}" if route != "base" else ""
        store.put_cluster(f"c-{word}", emb.encode([word])[0], {"size": 5, "radius": 0.1, "route": route,
                                                              "adapter": adapter, "status": "ready"})
    del store
    original = UnoSystem.load.__func__
    model = LoadableEcho(calls=[])
    monkeypatch.setattr(registry, "validate_adapter", lambda path, base_model: None)
    monkeypatch.setattr(UnoSystem, "load", classmethod(
        lambda cls, workdir, **kw: original(cls, workdir, **{**kw, "model": model, "embedder": emb})))
    return work


def test_cli_ask_records_and_links_the_thread_then_feedback_and_export(fake_workdir, tmp_path, capsys):
    from uno_graph.cli import main

    events, out = tmp_path / "events.jsonl", tmp_path / "logs.jsonl"
    ask = ["ask", "--workdir", str(fake_workdir), "--record", str(events), "--user-id", "u1", "--thread-id", "t1"]
    assert main([*ask, "--json", "how long to boil an egg"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["route"] == "expert" and first["log_id"].startswith("uno-")
    assert main([*ask, "that was far too long"]) == 0  # a second process-like run: linked through the file
    assert "· log uno-" in capsys.readouterr().out
    assert main(["feedback", str(events), first["log_id"], "--rating", "-1", "--comment", "too long"]) == 0
    assert main(["export-logs", str(events), "--out", str(out)]) == 0
    assert "2 log(s) written" in capsys.readouterr().out
    report = read_logs(out)
    assert report.problems == [] and report.warnings == []
    record = next(r for r in report.records if r.id == first["log_id"])
    assert record.feedback_text == "that was far too long\ntoo long" and record.feedback.rating == -1
    assert record.metadata["route"] == "expert" and record.metadata["thread_id"] == "t1"


def test_cli_chat_records_turns_and_inline_feedback(fake_workdir, tmp_path, capsys, monkeypatch):
    from uno_graph.cli import main

    events = tmp_path / "events.jsonl"
    lines = iter(["/rate 1", "how long to boil an egg", "/rate -1", "/edit Nine minutes.", "/rate lots",
                  "too long", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--workdir", str(fake_workdir), "--record", str(events), "--user-id", "u3"]) == 0
    shown = capsys.readouterr().out
    assert "no recorded answer yet" in shown and "feedback not recorded" in shown and shown.count("[log uno-") == 2
    records = list(JsonlLogStore(events).records())
    assert len(records) == 2 and records[0]["feedback"] == {"rating": -1.0, "edited_response": "Nine minutes."}
    assert records[0]["messages"][-1] == {"role": "user", "content": "too long"}
    assert records[0]["metadata"]["thread_id"].startswith("cli-") and records[0]["user_id"] == "u3"


def test_an_answer_text_shared_by_two_logs_links_a_resent_history_to_neither(tmp_path):
    from langchain_core.messages import AIMessage, HumanMessage

    from uno_graph.capture import Recorder

    rec = Recorder(tmp_path / "events.jsonl")
    first = rec.record_turn([HumanMessage("Boil an egg?")], AIMessage("Ten minutes."), user_id=None)
    second = rec.record_turn([HumanMessage("Boil an egg?")], AIMessage("Ten minutes."), user_id=None)
    assert first and second and first != second
    assert rec._previous_id(AIMessage("Ten minutes."), None, None) is None  # ambiguous: linked to neither
