"""Engines behind `UnoChatModel`: the PEFT -> GGUF LoRA converter, the publish hook, and the chat model's
plumbing for an engine that returns text (llama.cpp's kind), all on the tiny in-process LM.

The llama.cpp engine itself runs in tests/test_engines_llamacpp.py (it needs a real GGUF model)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.requires import require_module
from uno_graph.engines import BACKENDS, GenParams, Row
from uno_graph.engines.gguf_lora import (
    PROJECTIONS,
    HeadCounts,
    adapter_hash,
    convert_peft_lora,
    ensure_gguf_lora,
    permute,
    unpermute,
)
from uno_graph.errors import ConfigError

R, ALPHA = 4, 8


def _peft_model(tiny_lm_dir: Path, **config):
    """A fresh copy of the tiny Llama with a LoRA on all seven projections, A and B random (non-zero)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from uno_graph.models import load_model, quiet_checkpointing_deprecation

    torch.manual_seed(7)
    lm = load_model(str(tiny_lm_dir))
    with quiet_checkpointing_deprecation():
        peft = get_peft_model(lm.model, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                                   target_modules=list(PROJECTIONS), **config))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_" in name:
                param.normal_(std=0.3)
    return peft


def _heads(tiny_lm_dir: Path) -> HeadCounts:
    return HeadCounts.from_hf_config(tiny_lm_dir)


@pytest.fixture(scope="module")
def lora(tiny_lm_dir, tmp_path_factory):
    """(PEFT model, its saved adapter directory)."""
    peft = _peft_model(tiny_lm_dir)
    directory = tmp_path_factory.mktemp("lora")
    peft.save_pretrained(directory)
    return peft, directory


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: np.array(t.data) for t in reader.tensors}


def _delta(peft, layer: int, module: str):
    block = peft.base_model.model.model.layers[layer]
    owner = block.self_attn if module in ("q_proj", "k_proj", "v_proj", "o_proj") else block.mlp
    return getattr(owner, module).get_delta_weight("default").detach().numpy()


# -- the permutation ---------------------------------------------------------------------------------


def test_permute_moves_rotary_halves_into_interleaved_pairs():
    n_head, d = 3, 8
    rows = np.arange(n_head * d)[:, None]
    out = permute(rows, n_head)[:, 0]
    for h in range(n_head):
        for i in range(d // 2):  # llama.cpp rotates pairs (2i, 2i+1); Hugging Face rotates (i, i + d/2)
            assert out[h * d + 2 * i] == h * d + i
            assert out[h * d + 2 * i + 1] == h * d + i + d // 2
    x = np.random.default_rng(0).normal(size=(n_head * d, 5))
    assert np.array_equal(unpermute(permute(x, n_head), n_head), x)
    assert np.array_equal(permute(x, 9, n_head), permute(x, n_head))  # k: the kv head count decides
    assert not np.array_equal(permute(x, n_head), x)


def test_permuted_rows_under_interleaved_rope_equal_hf_rope():
    """Why q/k rows are permuted: HF's rotate-half RoPE on q, then permuted, equals llama.cpp's
    adjacent-pair RoPE on the permuted q (same angles)."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    n_head, d, pos = 2, 8, 5
    rng = np.random.default_rng(1)
    q = rng.normal(size=(n_head, d))  # one token's query, per head
    inv = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
    angles = pos * inv  # theta_i for pair i
    emb = np.concatenate([angles, angles])  # HF layout: (i, i + d/2) share theta_i
    cos, sin = torch.tensor(np.cos(emb))[None, None], torch.tensor(np.sin(emb))[None, None]
    hf, _ = apply_rotary_pos_emb(torch.tensor(q)[None, :, None], torch.tensor(q)[None, :, None], cos, sin)
    hf = hf[0, :, 0].numpy()

    qp = permute(q.reshape(-1, 1), n_head).reshape(n_head, d)  # llama.cpp's row order
    out = qp.copy()
    for i in range(d // 2):  # ggml's normal RoPE: rotate (x[2i], x[2i+1]) by theta_i
        c, s = np.cos(angles[i]), np.sin(angles[i])
        out[:, 2 * i] = qp[:, 2 * i] * c - qp[:, 2 * i + 1] * s
        out[:, 2 * i + 1] = qp[:, 2 * i] * s + qp[:, 2 * i + 1] * c
    assert np.allclose(out, permute(hf.reshape(-1, 1), n_head).reshape(n_head, d))


# -- the converter -----------------------------------------------------------------------------------


def test_converter_writes_llama_cpp_names_shapes_and_metadata(lora, tiny_lm_dir, tmp_path):
    peft, directory = lora
    out = convert_peft_lora(directory, tmp_path / "a.gguf", _heads(tiny_lm_dir))
    fields, tensors = _read(out)
    assert fields["general.architecture"] == "llama"
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(ALPHA)
    n_layers = peft.base_model.model.config.num_hidden_layers
    expected = {f"blk.{i}.{name}.weight.lora_{ab}" for i in range(n_layers) for name in PROJECTIONS.values()
                for ab in "ab"}
    assert set(tensors) == expected and len(expected) == n_layers * 7 * 2
    config = peft.base_model.model.config
    hidden, inter, kv = config.hidden_size, config.intermediate_size, config.num_key_value_heads * config.head_dim
    shapes = {"attn_q": (hidden, hidden), "attn_k": (kv, hidden), "attn_v": (kv, hidden),
              "attn_output": (hidden, hidden), "ffn_gate": (inter, hidden), "ffn_up": (inter, hidden),
              "ffn_down": (hidden, inter)}  # (out, in) as PyTorch stores them
    for name, (rows, cols) in shapes.items():
        assert tensors[f"blk.0.{name}.weight.lora_a"].shape == (R, cols)  # GGML ne = (in, r)
        assert tensors[f"blk.0.{name}.weight.lora_b"].shape == (rows, R)  # GGML ne = (r, out)
        assert tensors[f"blk.1.{name}.weight.lora_a"].dtype == np.float32


def test_converted_delta_unpermuted_equals_the_peft_delta(lora, tiny_lm_dir, tmp_path):
    """llama.cpp adds B·A·alpha/r in its own q/k row order; undoing that order gives PEFT's B@A·scale."""
    peft, directory = lora
    heads = _heads(tiny_lm_dir)
    _, tensors = _read(convert_peft_lora(directory, tmp_path / "a.gguf", heads))
    n_layers = peft.base_model.model.config.num_hidden_layers
    for layer in range(n_layers):
        for module, name in PROJECTIONS.items():
            a = tensors[f"blk.{layer}.{name}.weight.lora_a"]
            b = tensors[f"blk.{layer}.{name}.weight.lora_b"]
            delta = b @ a * (ALPHA / a.shape[0])  # what llama.cpp adds (scale 1)
            if module == "q_proj":
                delta = unpermute(delta, heads.n_head, heads.n_head)
            elif module == "k_proj":
                delta = unpermute(delta, heads.n_head, heads.n_head_kv)
            assert np.allclose(delta, _delta(peft, layer, module), atol=1e-6), (layer, module)
    q_b = tensors["blk.0.attn_q.weight.lora_b"]
    raw_q_b = peft.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight.detach().numpy()
    assert not np.allclose(q_b, raw_q_b)  # the permutation did happen


def test_rslora_and_alpha_pattern_scales_are_kept(tiny_lm_dir, tmp_path):
    peft = _peft_model(tiny_lm_dir, use_rslora=True, alpha_pattern={"q_proj": 3})
    peft.save_pretrained(tmp_path / "rs")
    heads = _heads(tiny_lm_dir)
    fields, tensors = _read(convert_peft_lora(tmp_path / "rs", tmp_path / "rs.gguf", heads))
    alpha = fields["adapter.lora.alpha"]
    for module, name in PROJECTIONS.items():
        a, b = tensors[f"blk.1.{name}.weight.lora_a"], tensors[f"blk.1.{name}.weight.lora_b"]
        delta = b @ a * (alpha / a.shape[0])
        if module in ("q_proj", "k_proj"):
            delta = unpermute(delta, heads.n_head, heads.n_head if module == "q_proj" else heads.n_head_kv)
        assert np.allclose(delta, _delta(peft, 1, module), atol=1e-6), module


def test_what_llama_cpp_lora_cannot_hold_is_refused(lora, tiny_lm_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    _, directory = lora
    heads = _heads(tiny_lm_dir)
    dora = Path(shutil.copytree(directory, tmp_path / "dora"))
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ConfigError, match="DoRA"):
        convert_peft_lora(dora, tmp_path / "x.gguf", heads)

    emb = Path(shutil.copytree(directory, tmp_path / "emb"))
    weights = load_file(str(emb / "adapter_model.safetensors"))
    weights["base_model.model.model.embed_tokens.lora_embedding_A"] = np.zeros((R, 10), dtype=np.float32)
    save_file(weights, str(emb / "adapter_model.safetensors"))
    with pytest.raises(ConfigError, match="embed_tokens"):
        convert_peft_lora(emb, tmp_path / "y.gguf", heads)

    with pytest.raises(ConfigError, match="permute"):  # head counts that do not fit the rows
        convert_peft_lora(directory, tmp_path / "z.gguf", HeadCounts(5, 5))


def test_cache_is_keyed_by_the_adapter_content(lora, tiny_lm_dir, tmp_path):
    _, directory = lora
    heads = _heads(tiny_lm_dir)
    first = ensure_gguf_lora(directory, heads, cache=tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    again = ensure_gguf_lora(directory, heads, cache=tmp_path / "cache")
    assert again == first and again.stat().st_mtime_ns == stamp  # not converted twice
    assert first.name == f"{adapter_hash(directory, heads)}.gguf"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no temp file left

    other_heads = ensure_gguf_lora(directory, HeadCounts(heads.n_head, heads.n_head), cache=tmp_path / "cache")
    assert other_heads != first
    changed = Path(shutil.copytree(directory, tmp_path / "retrained"))
    config = json.loads((changed / "adapter_config.json").read_text())
    (changed / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": ALPHA * 2}))
    retrained = ensure_gguf_lora(changed, heads, cache=tmp_path / "cache")
    assert retrained != first
    assert _read(retrained)[0]["adapter.lora.alpha"] == pytest.approx(2 * ALPHA)
    with pytest.raises(ConfigError, match="head counts"):
        ensure_gguf_lora(directory, cache=tmp_path / "cache")


# -- the publish hook --------------------------------------------------------------------------------


def _publish(root: Path, source: Path, base_model: str) -> Path:
    from uno_graph.adapters.registry import build_manifest, publish_adapter
    from uno_graph.config import LoraSettings, TrainSettings

    manifest = build_manifest(role="expert", cluster_id="c1", base_model=base_model, objective="sft",
                              lora=LoraSettings(), train=TrainSettings(), data_hash="x")
    return publish_adapter(root, "c1", "expert", source, manifest)


def test_publishing_converts_the_adapter_for_llama_cpp(lora, tiny_lm_dir, tmp_path, monkeypatch):
    _, directory = lora
    monkeypatch.setenv("UNO_GRAPH_CACHE", str(tmp_path / "cache"))
    published = _publish(tmp_path / "adapters", directory, str(tiny_lm_dir))
    expected = tmp_path / "cache" / "lora-gguf" / f"{adapter_hash(published, _heads(tiny_lm_dir))}.gguf"
    assert expected.is_file()
    assert _read(expected)[0]["adapter.type"] == "lora"

    monkeypatch.setenv("UNO_GRAPH_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setenv("UNO_GRAPH_GGUF_ON_PUBLISH", "0")
    _publish(tmp_path / "adapters2", directory, str(tiny_lm_dir))
    assert not (tmp_path / "cache2" / "lora-gguf").exists()


def test_a_failing_publish_hook_never_fails_the_publish(lora, tmp_path, monkeypatch, caplog):
    from uno_graph.adapters.registry import register_publish_hook, validate_adapter

    _, directory = lora
    monkeypatch.setenv("UNO_GRAPH_CACHE", str(tmp_path / "cache"))
    seen = []

    def broken(path, manifest):
        seen.append(manifest["cluster_id"])
        raise RuntimeError("disk full")

    remove = register_publish_hook(broken)
    try:
        published = _publish(tmp_path / "adapters", directory, "not-a-local-model")
    finally:
        remove()
    assert seen == ["c1"] and "disk full" in caplog.text
    assert validate_adapter(published, "not-a-local-model")["role"] == "expert"
    assert not (tmp_path / "cache" / "lora-gguf").exists()  # no local base model: nothing converted


# -- the chat model over an engine that returns text -------------------------------------------------


class TextEngine:
    """A stand-in for `LlamaCppEngine`: answers with text and token counts, records what it was asked."""

    backend = "llamacpp"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.slots: dict[str, Path] = {}
        self.users: list = []
        self.calls: list[tuple] = []

    @property
    def model_id(self) -> str:
        return "fake"

    def acquire(self, path: Path, preferred: str) -> str:
        handle = f"h-{preferred}"
        self.slots[handle] = Path(path)
        return handle

    def add_user(self, user) -> None:
        self.users.append(user)

    def collect(self) -> None:
        used = {h for u in self.users for h in u._handles.values()}
        self.slots = {h: p for h, p in self.slots.items() if h in used}

    def _answer(self, internal, params: GenParams, stops) -> Row:
        text = f"answer from {internal or 'base'}. STOP here and more"
        if stops and any(s in text for s in stops):
            return Row(ids=[], reason="stop", text=text[: min(text.find(s) for s in stops if s in text)], n_tokens=4)
        words = text.split(" ")
        if params.max_new_tokens < len(words):
            return Row(ids=[], reason="length", text=" ".join(words[: params.max_new_tokens]),
                       n_tokens=params.max_new_tokens)
        return Row(ids=[], reason="stop", text=text, n_tokens=len(words))

    def generate(self, prompts, internals, params, stops, *, cancel=None):
        per_item = [params] * len(prompts) if isinstance(params, GenParams) else list(params)
        self.calls.append((len(prompts), tuple(internals), tuple(p.max_new_tokens for p in per_item)))
        return [self._answer(i, p, s) for i, p, s in zip(internals, per_item, stops)]

    def stream(self, prompt, internal, params, stops, cancel: threading.Event) -> Iterator:
        row = self._answer(internal, params, stops)
        for word in row.text.split(" "):
            yield word + " "
        yield Row(ids=[], reason=row.reason, text=row.text.rstrip() + " ", n_tokens=row.n_tokens)


@pytest.fixture()
def text_llm(tiny_lm, lora, monkeypatch):
    import uno_graph.engines.llamacpp as llamacpp
    from uno_graph.chat_model import UnoChatModel

    engine = TextEngine(tiny_lm.tokenizer)
    monkeypatch.setattr(llamacpp, "engine_for_model", lambda *a, **k: engine)
    _, directory = lora
    return UnoChatModel(model="whatever", backend="llamacpp", adapters={"a1": str(directory)}, max_new_tokens=50), engine


def test_chat_model_on_a_text_engine(text_llm):
    from langchain_core.messages import AIMessage

    llm, engine = text_llm
    assert llm.adapter_names == ["a1"] and llm._identifying_params["backend"] == "llamacpp"
    reply = llm.invoke("hi")
    assert reply.content == "answer from base. STOP here and more"
    assert reply.response_metadata == {"model_name": "whatever", "adapter": None, "finish_reason": "stop"}
    assert reply.usage_metadata["output_tokens"] == 7 and reply.usage_metadata["input_tokens"] > 0
    tuned = llm.bind(adapter="a1").invoke("hi", max_new_tokens=2)
    assert tuned.content == "answer from" and tuned.response_metadata["finish_reason"] == "length"
    assert tuned.response_metadata["adapter"] == "a1" and tuned.usage_metadata["output_tokens"] == 2
    cut = llm.invoke("hi", stop=["STOP"])
    assert cut.content == "answer from base. " and cut.response_metadata["finish_reason"] == "stop"

    engine.calls.clear()
    out = llm.generate_batch(["a", "b", "c"], adapters=["a1", None, "a1"], max_new_tokens=3)
    assert all(isinstance(m, AIMessage) for m in out)
    assert engine.calls == [(3, ("h-a1", None, "h-a1"), (3, 3, 3))]  # one call, per-item adapters and budgets
    assert [m.response_metadata["adapter"] for m in out] == ["a1", None, "a1"]
    engine.calls.clear()
    batched = llm.batch(["a", "b"], max_new_tokens=9)
    assert len(engine.calls) == 1 and [m.content for m in batched] == [reply.content] * 2


def test_streaming_on_a_text_engine(text_llm):
    llm, _ = text_llm
    expected = llm.invoke("hi", adapter="a1", stop=["here"])
    chunks = list(llm.stream("hi", adapter="a1", stop=["here"]))
    assert len(chunks) > 2 and chunks[-1].chunk_position == "last"
    assert "".join(c.content for c in chunks).strip() == expected.content.strip()
    assert chunks[-1].usage_metadata == expected.usage_metadata
    assert chunks[-1].response_metadata["finish_reason"] == "stop"


def test_adapters_load_and_unload_through_the_engine(text_llm, lora):
    llm, engine = text_llm
    _, directory = lora
    llm.load_adapter("a2", directory)
    assert set(engine.slots) == {"h-a1", "h-a2"}
    llm.unload_adapter("a1")
    assert set(engine.slots) == {"h-a2"}
    with pytest.raises(KeyError, match="a1"):
        llm.invoke("hi", adapter="a1")


def test_backend_settings_are_checked(tiny_lm, tiny_lm_dir):
    from uno_graph.chat_model import UnoChatModel

    assert BACKENDS == ("transformers", "llamacpp")
    with pytest.raises(ValueError, match="backend"):
        UnoChatModel(model=str(tiny_lm_dir), backend="vllm")
    # (pydantic reports a ConfigError raised while building the model as a ValidationError: both are ValueErrors)
    with pytest.raises(ValueError, match="backend_options"):
        UnoChatModel(model=str(tiny_lm_dir), backend_options={"n_threads": 1})
    with pytest.raises(ValueError, match="loaded"):
        UnoChatModel(loaded=tiny_lm, backend="llamacpp")
    with pytest.raises(ValueError, match="GGUF"):  # a HF directory without a GGUF in it
        UnoChatModel(model=str(tiny_lm_dir), backend="llamacpp")


def test_transformers_engine_takes_per_item_params(tiny_lm):
    from uno_graph.chat_model import UnoChatModel

    llm = UnoChatModel(loaded=tiny_lm, max_new_tokens=5)
    engine = llm._engine
    assert engine.backend == "transformers" and engine.model_id == tiny_lm.model_id
    ids = [llm.get_token_ids(llm._render(llm._convert_input(q).to_messages())) for q in ("hi", "boil an egg")]
    short, long = GenParams(2, 0.0, 1.0, 1.2, None), GenParams(5, 0.0, 1.0, 1.2, None)
    rows = engine.generate([ids[0], ids[1], ids[0]], [None] * 3, [short, long, long], [(), (), ()])
    assert [r.ids for r in rows] == [engine.generate([i], [None], p, [()])[0].ids
                                     for i, p in zip([ids[0], ids[1], ids[0]], [short, long, long])]
    assert len(rows[0].ids) <= 2 and rows[0].output_tokens == len(rows[0].ids)


# -- work directories and the command line -----------------------------------------------------------


def test_from_workdir_serves_every_published_adapter(lora, tiny_lm_dir, tmp_path, monkeypatch):
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.config import UnoConfig

    _, directory = lora
    monkeypatch.setenv("UNO_GRAPH_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    config = UnoConfig(base_model=str(tiny_lm_dir), max_new_tokens=3)
    (work / "system.json").write_text(json.dumps({"config": config.to_dict()}))
    _publish(work / "adapters", directory, str(tiny_lm_dir))
    llm = UnoChatModel.from_workdir(work)
    assert llm.adapter_names == ["c1/expert"] and llm.max_new_tokens == 3
    reply = llm.invoke("hi", adapter="c1/expert")
    assert reply.response_metadata["adapter"] == "c1/expert" and reply.usage_metadata["output_tokens"] <= 3


def test_cli_backend_flag(tmp_path):
    from uno_graph import cli

    parser = cli.build_parser()
    assert parser.parse_args(["ask", "--workdir", "w", "q"]).backend == "auto"  # serving: llama.cpp where it can
    assert parser.parse_args(["serve-openai", "--workdir", "w"]).backend == "auto"
    assert parser.parse_args(["eval", "t.jsonl", "--workdir", "w", "--out", "o"]).backend == "transformers"
    assert parser.parse_args(["ask", "--workdir", "w", "--backend", "llamacpp", "q"]).backend == "llamacpp"
    assert parser.parse_args(["chat", "--workdir", "w", "--backend", "llamacpp"]).backend == "llamacpp"
    assert parser.parse_args(["eval", "t.jsonl", "--workdir", "w", "--out", "o", "--backend", "llamacpp"]).backend \
        == "llamacpp"
    serve = parser.parse_args(["serve-openai", "--workdir", "w", "--backend", "llamacpp"])
    assert serve.backend == "llamacpp" and serve.func is cli.cmd_serve_openai_backend
    with pytest.raises(SystemExit):
        parser.parse_args(["ask", "--workdir", "w", "--backend", "vllm", "q"])
    assert cli.serving_model(str(tmp_path), "transformers") is None  # UnoSystem.load builds the default


def test_auto_backend_serves_on_llamacpp_where_the_base_model_has_a_gguf(tmp_path):
    """`--backend auto` (ask, chat, serve-openai): llama.cpp for the embedded default, whose GGUF comes with
    the install; transformers for a base model without a GGUF, and for a folder that is no work directory
    (its load then names the problem)."""
    from uno_graph.engines.select import serving_backend
    from uno_graph.config import UnoConfig

    require_module("xllamacpp", "pip install 'uno-graph[llamacpp]'")

    def workdir(name: str, base_model: str) -> str:
        work = tmp_path / name
        work.mkdir()
        config = UnoConfig(base_model=base_model)
        (work / "system.json").write_text(json.dumps({"base_model": base_model, "config": config.to_dict()}))
        return str(work)

    assert serving_backend(workdir("default", UnoConfig().base_model), "auto") == "llamacpp"
    assert serving_backend(workdir("no-gguf", str(tmp_path)), "auto") == "transformers"
    assert serving_backend(str(tmp_path / "missing"), "auto") == "transformers"
    assert serving_backend(str(tmp_path / "missing"), "llamacpp") == "llamacpp"  # asked for: no fallback
    with pytest.raises(ConfigError, match="vllm"):
        serving_backend(str(tmp_path), "vllm")
