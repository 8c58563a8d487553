"""Serving across processes: a real `chroma run` server as the store, and an OpenAI-compatible LoRA endpoint
(`uno_graph.openai_server`) as the model of some graph steps, on the tiny random LM."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakes import AdapterEcho, KeywordEmbedder, make_lora
from tests.requires import missing, require_module
from uno_graph.config import UnoConfig
from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError

EGG, PARIS, TRAIN = "How long do I boil an egg?", "What is there to see in Paris?", "Which train goes north?"
MAX_NEW = 10


# -- helpers shared with test_reload.py ------------------------------------------------------------------

def publish(work: Path, cluster_id: str, role: str, source: Path, base_model: str) -> str:
    """Publish `source` as the (cluster, role) adapter, as the pipeline does; returns its workdir-relative path."""
    from uno_graph.adapters.registry import build_manifest, publish_adapter

    manifest = build_manifest(role=role, cluster_id=cluster_id, base_model=base_model, objective="sft",
                              lora={"r": 4}, train={}, data_hash="test")
    return str(publish_adapter(work / "adapters", cluster_id, role, source, manifest).relative_to(work))


def make_workdir(work: Path, tiny_lm_dir: Path, loras: dict[str, Path], routes: dict[str, str]) -> Path:
    """A learned-looking work directory: system.json, clusters egg/paris/train in Chroma, published adapters.

    `routes`: cluster word -> "expert" | "critic" | "base"; `loras`: cluster word -> LoRA source directory.
    """
    from uno_graph.store import UnoStore

    config = UnoConfig(base_model=str(tiny_lm_dir), max_new_tokens=MAX_NEW)
    work.mkdir(parents=True, exist_ok=True)
    (work / "system.json").write_text(json.dumps({"base_model": config.base_model, "config": config.to_dict()}))
    store = UnoStore.persistent(work / "chroma")
    emb = KeywordEmbedder()
    for word in ("egg", "paris", "train"):
        route = routes.get(word, "base")
        adapter = publish(work, f"c-{word}", route, loras[word], config.base_model) if route != "base" else ""
        store.put_cluster(f"c-{word}", emb.encode([word])[0],
                          {"size": 5, "radius": 0.1, "route": route, "adapter": adapter, "status": "ready"})
    rules = [{"id": f"r-{word}", "rule": f"Rule about {word}.", "cluster_id": f"c-{word}", "log_id": f"l-{word}"}
             for word in ("egg", "paris")]
    store.put_rules(rules, emb.encode([r["rule"] for r in rules]))
    return work


def ask(graph, text: str):
    return graph.invoke({"messages": [("user", text)]})["messages"][-1]


# -- fixtures ------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    """A real `chroma run` server (the Rust binary shipped in the chromadb wheel) on a free port."""
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    if not Path(exe).exists():
        missing(f"the `chroma` CLI is not at {exe} (it ships with the chromadb wheel: make install)")
    root = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    with (root / "server.log").open("wb") as out:
        proc = subprocess.Popen([exe, "run", "--path", str(root / "db"), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}: {(root / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def remote_store(chroma_url):
    """An empty `UnoStore` on the server (each test starts from empty collections)."""
    from uno_graph.store import CLUSTERS, RULES, UnoStore

    store = UnoStore.connect(chroma_url)
    for name in (CLUSTERS, RULES):
        store.client.delete_collection(name)
    return UnoStore.connect(chroma_url)


@pytest.fixture(scope="module")
def loras(tiny_lm_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {word: make_lora(tiny_lm_dir, root / word, seed) for word, seed in (("egg", 1), ("paris", 2), ("train", 3))}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_lm_dir, loras) -> Path:
    return make_workdir(tmp_path_factory.mktemp("work") / "w", tiny_lm_dir, loras, {"egg": "expert", "paris": "critic"})


@pytest.fixture(scope="module")
def llm(tiny_lm_dir, workdir):
    """The local model, with the work directory's adapters under their serving names."""
    from uno_graph.chat_model import UnoChatModel

    return UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW, adapters={
        "c-egg/expert": workdir / "adapters/c-egg/expert", "c-paris/critic": workdir / "adapters/c-paris/critic"})


@pytest.fixture(scope="module")
def server(llm):
    from uno_graph.openai_server import OpenAIServer

    srv = OpenAIServer(llm, port=0, served_model_name="tiny").start()
    yield srv
    srv.close()


@pytest.fixture()
def remote(server):
    require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")
    from uno_graph.endpoint import EndpointChatModel

    return EndpointChatModel(base_url=server.url, model="tiny", timeout=30)


# -- A. the store on a real Chroma server -------------------------------------------------------------

def test_store_round_trip_on_chroma_server(remote_store):
    emb = KeywordEmbedder()
    assert remote_store.nearest(emb.encode(["egg"])[0]) == [] and remote_store.dimension() is None
    remote_store.put_cluster("c-egg", emb.encode(["egg"])[0], {"size": 7, "radius": 0.2, "route": "base", "adapter": None})
    remote_store.put_cluster("c-paris", emb.encode(["paris"])[0], {"size": 3, "radius": 0.1, "route": "critic",
                                                                  "adapter": "adapters/c-paris/critic"})
    remote_store.update_cluster("c-egg", route="expert", adapter="adapters/c-egg/expert")
    remote_store.put_rules([{"id": "r1", "rule": "Number the steps.", "cluster_id": "c-egg", "log_id": "l1"}],
                           emb.encode(["egg steps"]))

    assert [r["id"] for r in remote_store.table()] == ["c-egg", "c-paris"]  # largest first
    assert remote_store.cluster("c-egg") == {"size": 7, "radius": 0.2, "route": "expert",
                                             "adapter": "adapters/c-egg/expert"}
    hit = remote_store.nearest(emb.encode(["paris at night"])[0], k=2)
    assert [h.cluster_id for h in hit] == ["c-paris", "c-egg"]
    assert hit[0].distance == pytest.approx(0.0, abs=1e-6) and hit[1].distance == pytest.approx(2 ** 0.5, rel=1e-5)
    assert remote_store.rules_for("c-egg") == ["Number the steps."]
    assert remote_store.search_rules(emb.encode(["egg"])[0])[0][0] == "Number the steps."
    assert remote_store.dimension() == emb.dim
    with pytest.raises(ArtifactError, match="embedder gives 3"):
        remote_store.check_dimension(3)


def test_connect_rejects_a_bad_url():
    from uno_graph.store import UnoStore

    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        UnoStore.connect("127.0.0.1:8000")


def test_workdir_store_pushed_to_server_routes_like_embedded(workdir, llm, remote_store, chroma_url):
    from uno_graph.graph import UnoSystem
    from uno_graph.store import UnoStore

    emb = KeywordEmbedder()
    remote_store.put_cluster("stale", emb.encode(["x"])[0], {"size": 1, "radius": 0.1})  # not in the workdir
    embedded = UnoStore.persistent(workdir / "chroma")
    embedded.copy_to(remote_store)
    assert remote_store.table() == embedded.table()
    assert remote_store.rules_for("c-egg") == embedded.rules_for("c-egg") == ["Rule about egg."]

    local = UnoSystem.load(workdir, model=llm, embedder=emb)
    served = UnoSystem.load(workdir, model=llm, embedder=emb, chroma_url=chroma_url)
    assert served.store.client.get_settings().chroma_api_impl == "chromadb.api.fastapi.FastAPI"  # over HTTP
    def by_id(system):
        return sorted(system.router.table.rows, key=lambda row: row["id"])

    assert by_id(served) == by_id(local) and len(by_id(local)) == 3
    for query in (EGG, PARIS, TRAIN, "tell me a joke"):
        assert served.router.route(query) == local.router.route(query)
    a, b = ask(local.graph(), EGG), ask(served.graph(), EGG)
    assert a.content == b.content and a.response_metadata == b.response_metadata
    assert b.response_metadata["uno_route"] == "expert" and b.response_metadata["uno_adapter"] == "c-egg/expert"
    with pytest.raises(ConfigError, match="not both"):
        UnoSystem.load(workdir, model=llm, embedder=emb, chroma_url=chroma_url, store=embedded)


# -- B. the OpenAI-compatible LoRA endpoint ------------------------------------------------------------

def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_lists_base_and_adapters_and_404s_unknown_models(server):
    with urllib.request.urlopen(f"{server.url}/models", timeout=10) as resp:
        listed = json.loads(resp.read())
    assert [(m["id"], m["parent"]) for m in listed["data"]] == [
        ("tiny", None), ("c-egg/expert", "tiny"), ("c-paris/critic", "tiny")]
    status, body = _post(server.url, {"model": "c-nope/expert", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 404
    assert body["error"]["code"] == "model_not_found" and body["error"]["type"] == "invalid_request_error"
    assert "c-nope/expert" in body["error"]["message"]
    status, body = _post(server.url, {"model": "tiny", "messages": []})
    assert status == 400 and body["error"]["param"] == "messages"
    status, body = _post(server.url, {"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                                      "temperature": -1})
    assert status == 400 and "temperature" in body["error"]["message"]


def test_endpoint_answers_equal_the_local_model(server, llm, remote):
    from langchain_openai import ChatOpenAI

    for adapter in ("c-egg/expert", "c-paris/critic", None):
        local = llm.invoke(EGG, adapter=adapter)
        far = remote.invoke(EGG, adapter=adapter)
        assert far.content == local.content, adapter
        assert far.usage_metadata["input_tokens"] == local.usage_metadata["input_tokens"]
        assert far.usage_metadata["output_tokens"] == local.usage_metadata["output_tokens"]
        assert far.response_metadata["adapter"] == adapter
    assert llm.invoke(EGG, adapter="c-egg/expert").content != llm.invoke(EGG).content  # the adapter matters

    plain = ChatOpenAI(model="c-egg/expert", base_url=server.url, api_key="EMPTY", temperature=0, max_tokens=4)
    assert plain.invoke(EGG).content == llm.invoke(EGG, adapter="c-egg/expert", max_new_tokens=4).content

    chunks = list(remote.stream(EGG, adapter="c-egg/expert"))
    assert "".join(str(c.content) for c in chunks) == llm.invoke(EGG, adapter="c-egg/expert").content
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert total.usage_metadata["output_tokens"] == llm.invoke(EGG, adapter="c-egg/expert").usage_metadata["output_tokens"]

    assert sorted(remote.adapter_names) == ["c-egg/expert", "c-paris/critic"]
    with pytest.raises(AdapterNotFoundError, match="c-nope/expert"):
        remote.invoke(EGG, adapter="c-nope/expert")


def test_adapter_name_mapping(server, llm):
    require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")
    from uno_graph.endpoint import EndpointChatModel

    mapped = EndpointChatModel(base_url=server.url, model="tiny", adapter_models={"eggs": "c-egg/expert"})
    assert mapped.invoke(EGG, adapter="eggs").content == llm.invoke(EGG, adapter="c-egg/expert").content
    assert "eggs" in mapped.adapter_names
    mapped.load_adapter("eggs", "unused")  # served: passes
    with pytest.raises(ArtifactError, match="serves no model 'c-x/expert'"):
        mapped.load_adapter("c-x/expert", "adapters/c-x/expert")


def test_graph_sends_chosen_steps_to_the_endpoint(workdir, llm, remote):
    from uno_graph.graph import UnoSystem, build_graph

    emb = KeywordEmbedder()
    echo = AdapterEcho(calls=[])
    system = UnoSystem.load(workdir, model=echo, embedder=emb, models={"expert": remote, "critic": remote})
    graph = system.graph()
    expert = ask(graph, EGG)
    assert expert.content == llm.invoke(EGG, adapter="c-egg/expert").content  # answered by the server
    assert expert.response_metadata["uno_route"] == "expert" and expert.response_metadata["uno_adapter"] == "c-egg/expert"
    assert echo.calls == []

    critic = ask(graph, PARIS)  # local base draft -> remote critique -> local revision
    assert [a for a, _ in echo.calls] == [None, None] and critic.response_metadata["uno_route"] == "critic"
    assert critic.response_metadata["uno_calls"] == 3 and critic.content.startswith("[base]")
    assert ask(graph, TRAIN).response_metadata["uno_route"] == "base"

    same = build_graph(llm, system.router).compile()  # everything local: same Expert answer
    assert ask(same, EGG).content == expert.content
    with pytest.raises(ConfigError, match="unknown step"):
        build_graph(llm, system.router, models={"revise": remote})


def test_system_refuses_an_endpoint_missing_a_routed_adapter(workdir, tiny_lm_dir, llm):
    require_module("langchain_openai", "pip install 'uno-graph[endpoint]'")
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.endpoint import EndpointChatModel
    from uno_graph.graph import UnoSystem
    from uno_graph.openai_server import OpenAIServer

    only_egg = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW,
                                            adapters={"c-egg/expert": workdir / "adapters/c-egg/expert"})
    with OpenAIServer(only_egg, port=0, served_model_name="tiny").start() as srv:
        partial = EndpointChatModel(base_url=srv.url, model="tiny")
        with pytest.raises(ArtifactError, match="serves no model 'c-paris/critic'"):
            UnoSystem.load(workdir, model=llm, embedder=KeywordEmbedder(), models={"critic": partial})


def test_server_from_workdir_serves_published_adapters_and_reloads(tmp_path, tiny_lm_dir, loras):
    from uno_graph.openai_server import OpenAIServer

    work = make_workdir(tmp_path / "w", tiny_lm_dir, loras, {"egg": "expert"})
    with OpenAIServer.from_workdir(work, port=0).start() as srv:
        assert srv.base_name == str(tiny_lm_dir) and srv.model.adapter_names == ["c-egg/expert"]
        publish(work, "c-paris", "critic", loras["paris"], str(tiny_lm_dir))
        assert srv.reload() == ["c-egg/expert", "c-paris/critic"]
        status, body = _post(srv.url, {"model": "c-paris/critic", "max_tokens": 3,
                                       "messages": [{"role": "user", "content": PARIS}]})
        assert status == 200 and body["usage"]["completion_tokens"] <= 3
        (work / "adapters/c-paris/critic/adapter_model.safetensors").write_bytes(b"half")  # corrupted
        with pytest.raises(ArtifactError, match="modified or corrupted"):
            srv.reload()
        assert srv.model.adapter_names == ["c-egg/expert", "c-paris/critic"]  # still serving both
