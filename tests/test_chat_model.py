"""UnoChatModel on the tiny random Llama: adapters, streaming, async, batching, usage, standard suite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.unit_tests import ChatModelUnitTests

from tests.fakes import make_lora
from uno_graph.chat_model import UnoChatModel, messages_to_dicts
from uno_graph.errors import AdapterNotFoundError, UnoGraphError

EGG = "How do I boil an egg?"
PROMPTS = [EGG, "Explain recursion in Python", "hi", "What is the capital of France?"]
MAX_NEW = 16


@pytest.fixture(scope="module")
def adapter_dirs(tiny_lm_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_lora(tiny_lm_dir, root / name, seed) for name, seed in (("a1", 100), ("a2", 101))}


@pytest.fixture(scope="module")
def llm(tiny_lm_dir, adapter_dirs) -> UnoChatModel:
    return UnoChatModel.from_pretrained(str(tiny_lm_dir), adapters=adapter_dirs, max_new_tokens=MAX_NEW)


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.starts = 0

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts += 1


def _raw_greedy(model_dir: Path, messages: list, max_new: int) -> tuple[list[int], list[int], str]:
    """Prompt ids, generated ids and text straight from transformers (fresh model from disk)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    enc = tok.apply_chat_template(messages_to_dicts(messages), add_generation_prompt=True, tokenize=True,
                                  return_dict=True)
    ids = list(enc["input_ids"])
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new, do_sample=False, repetition_penalty=1.2,
                         pad_token_id=tok.pad_token_id)
    gen = out[0, len(ids):].tolist()
    return ids, gen, tok.decode(gen, skip_special_tokens=True)


# -- adapters ---------------------------------------------------------------------------------------


def test_base_and_adapters_answer_differently(llm, tiny_lm_dir, adapter_dirs):
    base = llm.invoke(EGG)
    a1 = llm.invoke(EGG, adapter="a1")
    a2 = llm.bind(adapter="a2").invoke(EGG)
    assert len({base.content, a1.content, a2.content}) == 3
    assert [m.response_metadata["adapter"] for m in (base, a1, a2)] == [None, "a1", "a2"]
    assert llm.bind(adapter="a1").invoke(EGG).content == a1.content
    assert llm.invoke(EGG, adapter="__base__").content == base.content
    assert sorted(llm.adapter_names) == ["a1", "a2"]

    # another model on the same path reuses the loaded base and the loaded adapter (no reload)
    peft_names = set(llm.hf_model.peft_config)
    other = UnoChatModel(model=str(tiny_lm_dir), adapters={"x": adapter_dirs["a1"]}, adapter="x",
                         max_new_tokens=MAX_NEW)
    assert other._engine is llm._engine
    assert set(other.hf_model.peft_config) == peft_names
    assert other.invoke(EGG).content == a1.content
    assert other.bind(adapter=None).invoke(EGG).content == base.content


def test_unknown_adapter_lists_loaded_names(llm):
    with pytest.raises(AdapterNotFoundError) as err:
        llm.invoke(EGG, adapter="expert-c9")
    assert isinstance(err.value, KeyError) and isinstance(err.value, UnoGraphError)
    assert "'expert-c9'" in str(err.value) and "'a1'" in str(err.value) and "'a2'" in str(err.value)
    with pytest.raises(AdapterNotFoundError):
        llm.bind(adapter="nope").invoke(EGG)
    with pytest.raises(AdapterNotFoundError):
        llm.unload_adapter("nope")


def test_base_weights_untouched_and_unload(tiny_lm_dir, adapter_dirs):
    import torch
    from transformers import AutoModelForCausalLM

    from uno_graph.models import load_model

    loaded = load_model(str(tiny_lm_dir))  # its own object -> its own engine
    model = UnoChatModel(loaded=loaded, max_new_tokens=MAX_NEW)
    before = model.invoke(EGG).content
    model.load_adapter("a1", adapter_dirs["a1"])
    model.load_adapter("a2", adapter_dirs["a2"])
    assert model.invoke(EGG, adapter="a1").content != before
    assert model.invoke(EGG).content == before

    fresh = dict(AutoModelForCausalLM.from_pretrained(tiny_lm_dir).named_parameters())
    served = {n.replace(".base_layer", ""): p for n, p in loaded.model.named_parameters() if "lora_" not in n}
    assert served.keys() == fresh.keys()
    assert all(torch.equal(served[n], fresh[n]) for n in fresh)

    # between calls the caller's own model object still answers as the base model
    prompt = model.tokenizer(model._render([HumanMessage(EGG)]), add_special_tokens=False, return_tensors="pt")
    raw = loaded.model.generate(**prompt, max_new_tokens=MAX_NEW, do_sample=False, repetition_penalty=1.2)
    assert model.tokenizer.decode(raw[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True) == before

    model.unload_adapter("a1")
    assert model.adapter_names == ["a2"] and "a1" not in model.adapters
    model.unload_adapter("a2")
    assert model.hf_model is loaded.model
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())
    assert model.invoke(EGG).content == before


# -- usage, stop ------------------------------------------------------------------------------------


def test_usage_metadata_matches_tokenizer_and_plain_transformers(llm, tiny_lm_dir):
    messages = [SystemMessage("Be brief."), HumanMessage(EGG)]
    ids, gen, text = _raw_greedy(tiny_lm_dir, messages, MAX_NEW)
    answer = llm.invoke(messages)
    assert answer.content == text
    assert answer.usage_metadata == {"input_tokens": len(ids), "output_tokens": len(gen),
                                     "total_tokens": len(ids) + len(gen)}
    assert answer.response_metadata["finish_reason"] == ("length" if len(gen) == MAX_NEW else "stop")
    assert answer.response_metadata["model_name"] == str(tiny_lm_dir)
    assert llm.get_num_tokens_from_messages(messages) == len(ids)


def test_stop_sequences_truncate_invoke_and_stream(llm):
    full = llm.invoke(EGG, adapter="a2").content
    words = [w for w in full.split(" ") if w]
    assert len(words) >= 3, full
    stop = " " + words[2]
    expected = full[: full.find(stop)]
    cut = llm.invoke(EGG, adapter="a2", stop=[stop])
    assert cut.content == expected and cut.response_metadata["finish_reason"] == "stop"
    streamed = "".join(c.content for c in llm.stream(EGG, adapter="a2", stop=[stop]))
    assert streamed == expected


# -- streaming and async ----------------------------------------------------------------------------


def test_stream_chunks_concatenate_to_invoke(llm):
    expected = llm.invoke(EGG, adapter="a2")
    handler = _Tokens()
    chunks = list(llm.bind(adapter="a2").stream(EGG, config={"callbacks": [handler]}))
    assert len([c for c in chunks if c.content]) >= 3
    assert "".join(c.content for c in chunks) == expected.content
    assert handler.tokens and "".join(handler.tokens) == expected.content
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == expected.usage_metadata
    assert last.response_metadata["adapter"] == "a2"
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.usage_metadata == expected.usage_metadata
    assert merged.response_metadata["finish_reason"] == expected.response_metadata["finish_reason"]

    for _ in llm.stream(EGG, adapter="a2", max_new_tokens=200):  # leaving early stops generation
        break
    assert not llm._engine.lock.locked()


def test_async_invoke_and_stream(llm):
    expected = llm.invoke(EGG, adapter="a1").content

    base = llm.invoke(EGG).content

    async def main() -> tuple[str, list[str], int, list[str]]:
        answer = await llm.ainvoke(EGG, adapter="a1")
        handler = _Tokens()
        pieces = [c.content async for c in llm.astream(EGG, adapter="a1", config={"callbacks": [handler]})]
        concurrent = await asyncio.gather(llm.ainvoke(EGG, adapter="a1"), llm.ainvoke(EGG), llm.ainvoke(EGG, adapter="a1"))
        return answer.content, pieces, len(handler.tokens), [m.content for m in concurrent]

    content, pieces, n_tokens, concurrent = asyncio.run(main())
    assert content == expected
    assert "".join(pieces) == expected and n_tokens >= 1
    assert concurrent == [expected, base, expected]  # the lock keeps set_adapter and generate together


# -- batching ---------------------------------------------------------------------------------------


def test_mixed_adapter_batch_equals_one_at_a_time(llm):
    adapters = [None, "a1", "a2", "a1"]
    singles = [llm.invoke(p, adapter=a) for p, a in zip(PROMPTS, adapters)]
    batched = llm.generate_batch(PROMPTS, adapters=adapters)
    assert [m.content for m in batched] == [m.content for m in singles]
    assert [m.usage_metadata for m in batched] == [m.usage_metadata for m in singles]
    assert [m.response_metadata["adapter"] for m in batched] == adapters


def test_batch_uses_one_generate_and_keeps_callbacks(llm, monkeypatch):
    singles = [llm.invoke(p, adapter="a1").content for p in PROMPTS]
    engine = llm._engine
    calls: list[int] = []
    original = engine.generate

    def spy(prompts, *args, **kwargs):
        calls.append(len(prompts))
        return original(prompts, *args, **kwargs)

    monkeypatch.setattr(engine, "generate", spy)
    handler = _Tokens()
    out = llm.bind(adapter="a1").batch(PROMPTS, config={"callbacks": [handler]})
    assert [m.content for m in out] == singles
    assert calls == [len(PROMPTS)] and handler.starts == len(PROMPTS)
    assert all(isinstance(m, AIMessage) and m.usage_metadata for m in out)

    calls.clear()
    out = asyncio.run(llm.abatch(PROMPTS[:2], adapter="a1"))
    assert [m.content for m in out] == singles[:2] and calls == [2]

    calls.clear()  # an input that can't be served falls back to per-item calls and per-item errors
    out = llm.batch([EGG, EGG], adapter="missing", return_exceptions=True)
    assert all(isinstance(e, AdapterNotFoundError) for e in out)


def test_message_conversion():
    dicts = messages_to_dicts([
        SystemMessage("s"), HumanMessage([{"type": "text", "text": "a"}, "b"]),
        AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}]),
        ToolMessage("3", tool_call_id="c1"),
    ])
    assert [d["role"] for d in dicts] == ["system", "user", "assistant", "tool"]
    assert dicts[1]["content"] == "ab" and dicts[2]["tool_calls"][0]["function"]["name"] == "f"
    assert dicts[3]["tool_call_id"] == "c1"


# -- langchain-tests standard unit suite ------------------------------------------------------------


class TestUnoChatModelStandard(ChatModelUnitTests):
    _model_dir: str = ""

    @pytest.fixture(autouse=True)
    def _tiny_model_dir(self, tiny_lm_dir):
        type(self)._model_dir = str(tiny_lm_dir)

    @property
    def chat_model_class(self) -> type[UnoChatModel]:
        return UnoChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": self._model_dir}  # the process-wide cache makes every construction cheap

    @property
    def has_tool_calling(self) -> bool:
        return True  # tools are rendered and parsed (tests/test_tool_calls.py); whether a model calls them is its own

    @property
    def has_structured_output(self) -> bool:
        return True


def test_lazy_adapter_loads_on_first_use(tiny_lm_dir, tmp_path):
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.errors import ArtifactError

    lora = make_lora(tiny_lm_dir, tmp_path / "lora", seed=7)
    eager = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=5)
    eager.load_adapter("e", lora)
    lazy = UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=5)
    lazy.load_adapter("l", lora, lazy=True)
    assert "l" in lazy.adapter_names and "l" not in lazy._handles  # registered, not loaded
    assert lazy.invoke("hello", adapter="l").content == eager.invoke("hello", adapter="e").content
    assert "l" in lazy._handles
    with pytest.raises(ArtifactError):
        lazy.load_adapter("missing", tmp_path / "nope", lazy=True)
    lazy.load_adapter("m", lora, lazy=True)
    lazy.unload_adapter("m")
    assert "m" not in lazy.adapter_names
