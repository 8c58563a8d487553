"""`langgraph dev` serves the graph named in langgraph.json; a `langgraph_sdk` client gets a routed answer
and its stream. A real server in a subprocess, on a work directory made here: the tiny random LM as base
model, two random (untrained) LoRAs published as an Expert and a Critic, the real embedded embedder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.requires import require_module

require_module("langgraph_cli", "pip install 'uno-graph[server]' (langgraph-cli[inmem]; `make install` installs it)")

from tests.fakes import make_lora  # noqa: E402
from tests.test_serving_remote import publish  # noqa: E402
from uno_graph.config import UnoConfig  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
EGG, PARIS, JOKE = "How long do I boil an egg?", "What is there to see in Paris?", "Tell me a joke about cats."
STARTUP_S = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_served_workdir(root: Path, tiny_lm_dir: Path) -> Path:
    """A learned-looking work directory routed by the real embedder: c-egg → Expert, c-paris → Critic."""
    from uno_graph.embeddings import shared_embedder
    from uno_graph.store import UnoStore

    work = root / "work"
    work.mkdir(parents=True)
    config = UnoConfig(base_model=str(tiny_lm_dir), max_new_tokens=8)
    (work / "system.json").write_text(json.dumps({"base_model": config.base_model, "config": config.to_dict()}))
    embedder = shared_embedder(config.embedder)
    store = UnoStore.persistent(work / "chroma")
    for cluster, role, query, seed in (("c-egg", "expert", EGG, 1), ("c-paris", "critic", PARIS, 2)):
        adapter = publish(work, cluster, role, make_lora(tiny_lm_dir, root / f"lora-{cluster}", seed), config.base_model)
        store.put_cluster(cluster, embedder.encode([query])[0],
                          {"size": 5, "radius": 0.3, "route": role, "adapter": adapter, "status": "ready"})
    return work


@pytest.fixture(scope="module")
def server_url(tmp_path_factory, tiny_lm_dir):
    """`langgraph dev` on langgraph.json, serving a fresh work directory (its own cwd: the in-memory
    runtime writes `.langgraph_api/` there)."""
    root = tmp_path_factory.mktemp("langgraph-server")
    work = make_served_workdir(root, tiny_lm_dir)
    exe = shutil.which("langgraph") or str(Path(sys.executable).with_name("langgraph"))
    port = _free_port()
    env = {**os.environ, "UNO_GRAPH_WORKDIR": str(work), "UNO_GRAPH_MODE": "uno", "HF_HUB_OFFLINE": "1",
           "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
                                 "--config", str(REPO / "langgraph.json")],
                                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"langgraph dev not up after {STARTUP_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server_url):
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=server_url)


def stream_turn(client, content) -> tuple[list[tuple[dict, dict]], list[dict], dict]:
    """(messages-tuple pieces, custom events, the final answer) of one streamed, threadless run."""
    pieces, events, final = [], [], None
    for part in client.runs.stream(None, "uno", input={"messages": [{"role": "user", "content": content}]},
                                   stream_mode=["messages-tuple", "custom", "values"]):
        if part.event == "messages":
            pieces.append(tuple(part.data))
        elif part.event == "custom":
            events.append(part.data)
        elif part.event == "values":
            final = part.data["messages"][-1]
        assert part.event != "error", part.data
    return pieces, events, final


def test_server_serves_the_graph_and_answers_by_route(client):
    assert [a["graph_id"] for a in client.assistants.search(graph_id="uno")] == ["uno"]
    routed = {}
    for query in (EGG, PARIS, JOKE):
        out = client.runs.wait(None, "uno", input={"messages": [{"role": "user", "content": query}]})
        human, answer = out["messages"]  # the output schema holds messages only
        assert human["type"] == "human" and answer["type"] == "ai"
        routed[query] = (answer["response_metadata"]["uno_route"], answer["response_metadata"]["uno_adapter"])
        assert answer["usage_metadata"]["output_tokens"] > 0
    assert routed == {EGG: ("expert", "c-egg/expert"), PARIS: ("critic", "c-paris/critic"), JOKE: ("base", None)}


def test_server_streams_the_critic_answer_once_with_custom_events(client):
    pieces, events, final = stream_turn(client, PARIS)
    assert final["response_metadata"]["uno_route"] == "critic" and final["response_metadata"]["uno_calls"] == 3
    assert {meta["langgraph_node"] for _, meta in pieces} == {"revise"}  # no draft, no critique tokens
    assert {msg["id"] for msg, _ in pieces} == {final["id"]}  # one model call; the answer is not re-sent
    assert "".join(msg["content"] for msg, _ in pieces) == final["content"]
    assert [e["uno_event"] for e in events] == ["routed", "critique"]
    assert events[0]["route"] == "critic" and events[0]["cluster_id"] == "c-paris"


def test_server_streams_an_expert_answer_to_a_content_part_list(client):
    pieces, events, final = stream_turn(client, [{"type": "text", "text": EGG}])
    assert events[0]["route"] == "expert" and events[0]["adapter"] == "c-egg/expert"
    assert final["response_metadata"]["uno_route"] == "expert"
    assert {meta["langgraph_node"] for _, meta in pieces} == {"expert_generate"}
    assert {msg["id"] for msg, _ in pieces} == {final["id"]}
    # an Expert answer that hits its budget may be trimmed to its last sentence after streaming
    assert "".join(msg["content"] for msg, _ in pieces).startswith(final["content"])
