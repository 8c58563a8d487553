"""Live reload: a compiled graph picks up adapters published after it was built, never a half-written one."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.fakes import KeywordEmbedder, make_lora
from tests.test_serving_remote import (
    EGG,
    MAX_NEW,
    PARIS,
    TRAIN,
    ask,
    make_workdir,
    publish,
)
from uno_graph.errors import ArtifactError


@pytest.fixture(scope="module")
def loras(tiny_lm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reload-loras")
    return {name: make_lora(tiny_lm_dir, root / name, seed)
            for name, seed in (("egg", 11), ("paris", 12), ("train", 13), ("egg-v2", 14))}


@pytest.fixture(scope="module")
def reference(tiny_lm_dir, loras):
    """Each LoRA loaded from its source directory: what an answer with it must look like."""
    from uno_graph.chat_model import UnoChatModel

    # names get a prefix: PEFT refuses adapter names that are nn.Module attributes ("train")
    return UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW,
                                        adapters={f"ref-{name}": path for name, path in loras.items()})


@pytest.fixture()
def system(tmp_path, tiny_lm_dir, loras):
    """A served system whose egg cluster has no adapter yet and whose paris cluster has a Critic."""
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.graph import UnoSystem

    work = make_workdir(tmp_path / "work", tiny_lm_dir, loras, {"paris": "critic"})
    model = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=MAX_NEW)
    return UnoSystem.load(work, model=model, embedder=KeywordEmbedder())


def _publish_and_route(system, word: str, role: str, source) -> None:
    """What `learn` does: publish the adapter atomically, then point the cluster's row at it."""
    rel = publish(system.root, f"c-{word}", role, source, system.config.base_model)
    system.store.update_cluster(f"c-{word}", route=role, adapter=rel, status="ready")


def test_compiled_graph_serves_new_and_retrained_adapters_after_reload(system, loras, reference):
    graph = system.graph()
    assert ask(graph, EGG).response_metadata["uno_route"] == "base"

    _publish_and_route(system, "egg", "expert", loras["egg"])
    assert ask(graph, EGG).response_metadata["uno_route"] == "base"  # table changed, not yet reloaded
    done = system.reload()
    assert done.added == ("c-egg/expert",) and set(done.adapters) == {"c-egg/expert", "c-paris/critic"}
    answer = ask(graph, EGG)  # the graph compiled before the reload
    assert answer.response_metadata["uno_route"] == "expert"
    assert answer.response_metadata["uno_adapter"] == "c-egg/expert"
    assert answer.content == reference.invoke(EGG, adapter="ref-egg").content

    _publish_and_route(system, "egg", "expert", loras["egg-v2"])  # retrained: same name, new files
    assert system.reload().added == ()
    retrained = ask(graph, EGG)
    assert retrained.content == reference.invoke(EGG, adapter="ref-egg-v2").content
    assert retrained.content != answer.content
    assert ask(graph, PARIS).response_metadata["uno_route"] == "critic"


def test_half_written_adapters_are_refused_and_the_old_state_keeps_serving(system, loras, reference):
    _publish_and_route(system, "egg", "expert", loras["egg"])
    system.reload()
    graph = system.graph()
    before = ask(graph, EGG)
    served = dict(system.served)

    # a new cluster whose adapter lost its weights
    _publish_and_route(system, "train", "expert", loras["train"])
    (system.root / "adapters/c-train/expert/adapter_model.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"reload refused.*adapter_model.safetensors is missing"):
        system.reload()
    assert system.served == served and "c-train/expert" not in system.model.adapter_names
    assert ask(graph, TRAIN).response_metadata["uno_route"] == "base"
    shutil.rmtree(system.root / "adapters/c-train")
    system.store.update_cluster("c-train", route="base", adapter="")

    # a served adapter overwritten in place (its files no longer match the manifest)
    weights = system.root / "adapters/c-egg/expert/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    with pytest.raises(ArtifactError, match="modified or corrupted"):
        system.reload()
    again = ask(graph, EGG)
    assert again.content == before.content == reference.invoke(EGG, adapter="ref-egg").content
    assert again.response_metadata["uno_adapter"] == "c-egg/expert"


def test_dropped_adapters_are_unloaded_one_reload_later(system):
    system.store.update_cluster("c-paris", route="base", adapter="")
    done = system.reload()
    assert done.dropped == ("c-paris/critic",) and "c-paris/critic" in system.model.adapter_names
    assert ask(system.graph(), PARIS).response_metadata["uno_route"] == "base"
    system.reload()
    assert "c-paris/critic" not in system.model.adapter_names


def test_watch_reloads_when_a_learn_run_finishes(system, loras):
    graph = system.graph()
    watcher = system.watch(0.05)
    try:
        system.store.update_cluster("c-train", status="pending")  # a `learn` run is mid-way
        _publish_and_route(system, "egg", "expert", loras["egg"])
        system.store.update_cluster("c-egg", status="pending")
        time.sleep(0.4)
        assert "c-egg/expert" not in system.served
        system.store.update_cluster("c-train", status="ready")
        system.store.update_cluster("c-egg", status="ready")
        deadline = time.monotonic() + 10
        while "c-egg/expert" not in system.served and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ask(graph, EGG).response_metadata["uno_adapter"] == "c-egg/expert"
    finally:
        watcher.stop()
