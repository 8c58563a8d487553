"""Serving while adapters change: a version that matches its checksums but does not load changes nothing
(at load, at reload, from served.json), a lazily registered adapter is checked again before its weights
load, and answers during repeated retrains always come from one whole version, old or new.

Everything runs on the tiny random LM; "retraining" publishes another version of a cluster's adapter
with `publish_version` (what `learn` does) and points the cluster's row at it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.fakes import KeywordEmbedder, make_lora
from tests.requires import require_module
from tests.test_serving_remote import EGG, MAX_NEW, PARIS, ask, make_workdir
from uno_graph.errors import ArtifactError

VERSIONS = ("egg", "egg-v2", "egg-v3")  # the sources that successive retrains publish, in turn


@pytest.fixture(autouse=True)
def _no_gguf(monkeypatch):
    monkeypatch.setenv("UNO_GRAPH_GGUF_ON_PUBLISH", "0")  # serving here never needs the llama.cpp copy


@pytest.fixture(scope="module")
def loras(tiny_lm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("change-loras")
    made = {name: make_lora(tiny_lm_dir, root / name, seed) for name, seed in zip(VERSIONS, (21, 22, 23))}
    made["shapes"] = unloadable(made["egg"], root / "shapes", "shapes")
    made["module"] = unloadable(made["egg"], root / "module", "module")
    return made


@pytest.fixture(scope="module")
def reference(tiny_lm_dir, loras):
    """Each good LoRA loaded from its source directory: what an answer with it must be."""
    from uno_graph.chat_model import UnoChatModel

    return UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW,
                                        adapters={f"ref-{name}": loras[name] for name in VERSIONS})


@pytest.fixture()
def fresh(tiny_lm_dir):
    """A chat model on its own copy of the tiny LM (no adapter of another test on it)."""
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.models import load_model

    return UnoChatModel(loaded=load_model(str(tiny_lm_dir)), max_new_tokens=MAX_NEW)


def unloadable(source: Path, out: Path, kind: str) -> Path:
    """A copy of `source` that publishes with matching checksums but whose weights cannot be loaded:
    `shapes` = LoRA matrices of twice the rank the config says, `module` = a config naming a module the
    model lacks."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, out)
    if kind == "shapes":
        weights = load_file(out / "adapter_model.safetensors")
        for key, value in weights.items():  # rank r -> 2r: lora_A is (r, in), lora_B is (out, r)
            rows, cols = value.shape
            weights[key] = torch.zeros(2 * rows, cols) if "lora_A" in key else torch.zeros(rows, 2 * cols)
        save_file(weights, out / "adapter_model.safetensors")
    else:
        config = json.loads((out / "adapter_config.json").read_text())
        (out / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["no_such_proj"]}))
    return out


def retrain(work: Path, source: Path, store=None) -> Path:
    """What `learn` does when c-egg's Expert is retrained: publish the next version (served.json names
    it) and, given the store, point the cluster's row at it. Returns the version's directory."""
    from uno_graph.adapters.registry import build_manifest
    from uno_graph.adapters.versions import publish_version

    base_model = json.loads((work / "system.json").read_text())["base_model"]
    manifest = build_manifest(role="expert", cluster_id="c-egg", base_model=base_model, objective="sft",
                              lora={"r": 4}, train={}, data_hash=source.name)
    path = publish_version(work / "adapters", "c-egg", "expert", source, manifest)
    if store is not None:
        store.update_cluster("c-egg", route="expert", adapter=str(path.relative_to(work)), status="ready")
    return path


def tamper(path: Path) -> None:
    """Change the weights file in place (same length): its sha256 no longer matches the manifest."""
    weights = path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


def wait_for(predicate, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def has_lora_layers(model) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.hf_model.modules())


@pytest.fixture()
def system(tmp_path, tiny_lm_dir, loras):
    """A served work directory whose egg cluster's Expert is at v1 (the `egg` LoRA)."""
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.graph import UnoSystem
    from uno_graph.store import UnoStore

    work = make_workdir(tmp_path / "work", tiny_lm_dir, {}, {})
    retrain(work, loras["egg"], UnoStore.persistent(work / "chroma"))
    model = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW)
    return UnoSystem.load(work, model=model, embedder=KeywordEmbedder())


# -- (a) checksums match, weights do not load --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["shapes", "module"])
def test_a_load_that_fails_names_the_path_and_changes_nothing(fresh, loras, reference, kind):
    broken = loras[kind]
    base = fresh.invoke(EGG).content

    with pytest.raises(ArtifactError, match=f"could not load the LoRA adapter at '{re.escape(str(broken))}'"):
        fresh.load_adapter("first", broken)  # the first adapter: PEFT wraps the base model itself
    assert fresh.adapter_names == [] and not has_lora_layers(fresh)
    assert fresh.invoke(EGG).content == base

    fresh.load_adapter("c", loras["egg"])
    egg = reference.invoke(EGG, adapter="ref-egg").content
    assert fresh.invoke(EGG, adapter="c").content == egg
    loaded = list(fresh.hf_model.peft_config)
    with pytest.raises(ArtifactError, match=re.escape(str(broken))):
        fresh.load_adapter("c", broken)  # a new version of a served adapter
    assert fresh.invoke(EGG, adapter="c").content == egg and fresh.invoke(EGG).content == base
    assert list(fresh.hf_model.peft_config) == loaded and fresh.adapters["c"] == str(loras["egg"])

    with pytest.raises(ArtifactError, match=re.escape(str(broken))):  # several at once: all or nothing
        fresh.load_adapters({"c": loras["egg-v2"], "d": broken})
    assert fresh.adapter_names == ["c"] and fresh.invoke(EGG, adapter="c").content == egg
    assert list(fresh.hf_model.peft_config) == loaded


def test_a_reload_onto_a_version_that_does_not_load_keeps_the_old_one(system, loras, reference, caplog):
    from uno_graph.adapters.versions import served_version

    graph = system.graph()
    egg = reference.invoke(EGG, adapter="ref-egg").content
    assert ask(graph, EGG).content == egg
    v1 = system.served["c-egg/expert"][1]

    v2 = retrain(system.root, loras["shapes"], system.store)
    assert served_version(v2.parent) == 2  # served.json points at the broken version
    with pytest.raises(ArtifactError, match=f"reload refused.*{re.escape(str(v2))}"):
        system.reload()
    assert system.served["c-egg/expert"][1] == v1 and ask(graph, EGG).content == egg

    caplog.set_level(logging.WARNING)
    watcher = system.watch(0.05)  # a running server: the refusal is logged, the old version answers
    try:
        v3 = retrain(system.root, loras["module"], system.store)
        wait_for(lambda: any(str(v3) in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING))
        assert system.served["c-egg/expert"][1] == v1 and ask(graph, EGG).content == egg

        v4 = retrain(system.root, loras["egg-v2"], system.store)  # a good retrain is picked up again
        wait_for(lambda: system.served["c-egg/expert"][1] == v4)
    finally:
        watcher.stop()
    assert ask(graph, EGG).content == reference.invoke(EGG, adapter="ref-egg-v2").content


def test_the_openai_server_keeps_the_old_version_when_the_served_one_does_not_load(system, loras, reference,
                                                                                  caplog):
    require_module("fastapi", "pip install 'uno-graph[openai-server]'")
    from uno_graph.openai_server import OpenAIServer

    egg = reference.invoke(EGG, adapter="ref-egg").content
    caplog.set_level(logging.WARNING)
    with OpenAIServer.from_workdir(system.root, port=0) as srv:
        assert srv.model.invoke(EGG, adapter="c-egg/expert").content == egg
        v2 = retrain(system.root, loras["shapes"])  # served.json now names v2
        with pytest.raises(ArtifactError, match=re.escape(str(v2))):
            srv.reload()
        assert srv.model.adapters["c-egg/expert"].endswith("v1")
        assert srv.model.invoke(EGG, adapter="c-egg/expert").content == egg

        srv.watch(0.05)
        v3 = retrain(system.root, loras["module"])
        wait_for(lambda: any(str(v3) in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING))
        assert srv.model.invoke(EGG, adapter="c-egg/expert").content == egg
        v4 = retrain(system.root, loras["egg-v3"])
        wait_for(lambda: srv.model.adapters["c-egg/expert"] == str(v4))
        assert srv.model.invoke(EGG, adapter="c-egg/expert").content == reference.invoke(
            EGG, adapter="ref-egg-v3").content


# -- (b) a lazily registered adapter is checked again before its weights load ---------------------------------


def test_a_lazy_adapter_changed_after_registration_is_refused_at_first_use(system, fresh, reference):
    from uno_graph.graph import UnoSystem

    lazy = UnoSystem.load(system.root, model=fresh, embedder=KeywordEmbedder(), lazy_adapters=True)
    v1 = lazy.served["c-egg/expert"][1]
    assert "c-egg/expert" in lazy.model.adapter_names and "c-egg/expert" not in lazy.model._handles
    original = (v1 / "adapter_model.safetensors").read_bytes()
    tamper(v1)

    graph = lazy.graph()
    for _ in range(2):  # refused at every call, never loaded
        with pytest.raises(ArtifactError, match="adapter_model.safetensors was modified or corrupted"):
            ask(graph, EGG)
        assert "c-egg/expert" not in lazy.model._handles
    (v1 / "adapter_model.safetensors").write_bytes(original)  # fixed: the next call loads it
    assert ask(graph, EGG).content == reference.invoke(EGG, adapter="ref-egg").content


def test_a_lazy_version_that_fails_at_first_use_leaves_the_previous_one_answering(system, fresh, loras,
                                                                                  reference, caplog):
    v1 = system.served["c-egg/expert"][1]
    fresh.load_adapter("c", v1)
    egg = reference.invoke(EGG, adapter="ref-egg").content
    caplog.set_level(logging.WARNING)

    v2 = retrain(system.root, loras["shapes"])  # checksums match; the weights do not load
    fresh.load_adapter("c", v2, lazy=True)
    assert fresh.invoke(EGG, adapter="c").content == egg
    assert f"could not load the LoRA adapter at '{v2}'" in caplog.text and fresh.adapters["c"] == str(v1)

    v3 = retrain(system.root, loras["egg-v2"])
    fresh.load_adapter("c", v3, lazy=True)
    tamper(v3)  # changed after registration
    assert fresh.invoke(EGG, adapter="c").content == egg
    assert f"{v3 / 'adapter_model.safetensors'} was modified or corrupted" in caplog.text
    assert "c" not in fresh._lazy and fresh.adapters["c"] == str(v1)


# -- (c) answers while adapters are replaced -------------------------------------------------------------------


@pytest.mark.parametrize("call", ["invoke", "stream"])
def test_a_call_waiting_while_its_adapter_is_replaced_answers_with_the_new_version(fresh, loras, reference,
                                                                                   monkeypatch, call):
    """The call has resolved its adapter when a reload replaces it (and frees the old weights) before the
    engine runs it: it runs with the new version instead of failing."""
    fresh.load_adapter("c", loras["egg"])
    engine, real = fresh._engine, fresh._engine.generate
    replaced = []

    def generate_after_a_reload(*args, **kwargs):
        if not replaced:
            replaced.append(True)
            fresh.load_adapter("c", loras["egg-v2"])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "generate", generate_after_a_reload)
    if call == "invoke":
        answer = fresh.invoke(EGG, adapter="c").content
    else:
        answer = "".join(chunk.content for chunk in fresh.stream(EGG, adapter="c"))
    assert replaced and answer == reference.invoke(EGG, adapter="ref-egg-v2").content


def test_answers_during_repeated_retrains_come_from_whole_versions(system, loras, reference):
    """A publisher retrains c-egg again and again while threads ask (graph calls for two clusters and a
    token stream); the watcher picks each version up. Every answer is one version's, none fails."""
    graph = system.graph()
    expected = {reference.invoke(EGG, adapter=f"ref-{name}").content for name in VERSIONS}
    assert len(expected) == len(VERSIONS)
    paris = ask(graph, PARIS).content  # routed to the base model: unchanged by any retrain
    answers: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def client(kind: str) -> None:
        while not done.is_set():
            try:
                if kind == "stream":
                    text = "".join(c.content for c in system.model.stream(EGG, adapter="c-egg/expert"))
                else:
                    reply = ask(graph, EGG if kind == "egg" else PARIS)
                    text = reply.content
                answers.append((kind, text))
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

    clients = [threading.Thread(target=client, args=(kind,)) for kind in ("egg", "egg", "paris", "stream")]
    watcher = system.watch(0.02)
    served = []
    try:
        for thread in clients:
            thread.start()
        for i in range(1, 7):
            path = retrain(system.root, loras[VERSIONS[i % len(VERSIONS)]], system.store)
            wait_for(lambda: system.served["c-egg/expert"][1] == path)
            served.append(path.name)
            time.sleep(0.1)  # let a few answers come from this version
    finally:
        done.set()
        watcher.stop()
        for thread in clients:
            thread.join(30)
    assert not errors, errors[:3]
    assert served == [f"v{n}" for n in range(2, 8)]
    eggs = [text for kind, text in answers if kind != "paris"]
    assert eggs and set(eggs) <= expected and len(set(eggs)) >= 2
    assert {text for kind, text in answers if kind == "paris"} == {paris}
