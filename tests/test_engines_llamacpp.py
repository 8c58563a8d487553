"""The llama.cpp engine on the real embedded model (SmolLM2-135M's Q4_1 GGUF), against the transformers
engine with the same adapters.

The adapters are PEFT LoRAs on all seven projections with random non-zero B (no training): "mild"
changes answers the way a small fine-tune does; "qk" puts most of its weight on q/k, where the
rotary row permutation of the conversion matters, and "qk_wrong" is "qk" with its q/k rows left in the
Hugging Face order, i.e. what a conversion without the permutation would serve.

The two engines do not compute the same numbers: llama.cpp multiplies Q4_1 weights with 8-bit
quantized activations, transformers the same weights dequantized to fp32, and their next-token
log-probabilities differ by ~0.1 nat. Greedy answers therefore agree until the first near-tie and
then may drift apart; the tests assert agreement on the first words of most answers and compare the
adapters' effect on the log-probabilities, where a wrong conversion stands out.
"""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import pytest

from tests.llamacpp_helpers import SIGINT_AT_IMPORT, WORDS, agrees, c_handler, prefix
from tests.requires import require_module

require_module("xllamacpp", "pip install 'uno-graph[llamacpp]'")
pytestmark = pytest.mark.integration

PROMPTS = ["What is the capital of France?", "How do I boil an egg?", "Give me a tip for learning Python.",
           "What should I pack for a weekend in Lisbon?", "Why is the sky blue?", "Name three fruits.",
           "How do I get from Rome to Florence?", "Write one sentence about autumn."]
TOKENS = 32
THREADS = 1


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """{name: directory} of the random adapters, and the base model (LoRA layers removed again)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    from uno_graph.engines.gguf_lora import PROJECTIONS, HeadCounts, unpermute
    from uno_graph.models import load_model, quiet_checkpointing_deprecation

    lm = load_model()
    root = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)  # lora_A's initialisation
    with quiet_checkpointing_deprecation():
        peft = get_peft_model(lm.model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                   target_modules=list(PROJECTIONS)))
    dirs = {}
    for name, qk_std, other_std in (("mild", 0.06, 0.06), ("qk", 0.15, 0.04)):
        torch.manual_seed(0)
        with torch.no_grad():
            for pname, param in peft.named_parameters():
                if "lora_B" in pname:
                    param.normal_(std=qk_std if ("q_proj" in pname or "k_proj" in pname) else other_std)
        peft.save_pretrained(root / name)
        dirs[name] = root / name
    heads = HeadCounts.from_hf_config(lm.path)
    wrong = root / "qk_wrong"
    shutil.copytree(dirs["qk"], wrong)
    weights = load_file(str(wrong / "adapter_model.safetensors"))
    for key, value in weights.items():
        if "lora_B" in key and ("q_proj" in key or "k_proj" in key):
            n_kv = heads.n_head if "q_proj" in key else heads.n_head_kv
            weights[key] = torch.from_numpy(unpermute(value.numpy(), heads.n_head, n_kv).copy())
    save_file(weights, str(wrong / "adapter_model.safetensors"))
    dirs["qk_wrong"] = wrong
    lm.model = peft.unload()
    return dirs, lm


@pytest.fixture(scope="module")
def engines(adapters):
    from uno_graph.chat_model import UnoChatModel

    dirs, lm = adapters
    params = dict(max_new_tokens=TOKENS, repetition_penalty=1.0)  # the model's own greedy choice, no sampler
    hf = UnoChatModel(loaded=lm, adapters={k: str(v) for k, v in dirs.items()}, **params)
    lc = UnoChatModel(adapters={"mild": str(dirs["mild"]), "qk": str(dirs["qk"])}, backend="llamacpp",
                      backend_options={"n_threads": THREADS, "n_parallel": 4}, **params)
    return hf, lc


def test_greedy_answers_agree_with_the_same_adapter(engines, record_property):
    hf, lc = engines
    start = time.perf_counter()
    answers = {}
    for name, model in (("hf", hf), ("lc", lc)):
        for adapter in (None, "mild"):
            answers[name, adapter] = [m.content for m in model.generate_batch(PROMPTS, adapters=adapter)]
    report = {
        "prompts": len(PROMPTS), "tokens": TOKENS, "words": WORDS,
        "base_agree": sum(map(agrees, answers["hf", None], answers["lc", None])),
        "adapter_agree": sum(map(agrees, answers["hf", "mild"], answers["lc", "mild"])),
        "adapter_prefix_words": [prefix(a, b) for a, b in zip(answers["hf", "mild"], answers["lc", "mild"])],
        "base_prefix_words": [prefix(a, b) for a, b in zip(answers["hf", None], answers["lc", None])],
        "llamacpp_adapter_changed": sum(a != b for a, b in zip(answers["lc", None], answers["lc", "mild"])),
        "transformers_adapter_changed": sum(a != b for a, b in zip(answers["hf", None], answers["hf", "mild"])),
        "seconds": round(time.perf_counter() - start, 1),
    }
    record_property("parity", report)
    print("\nparity:", report)
    for a, b in zip(answers["hf", "mild"], answers["lc", "mild"]):
        print(f"  transformers: {a[:80]!r}\n  llama.cpp:    {b[:80]!r}")
    assert report["adapter_agree"] >= len(PROMPTS) // 2 + 1  # most answers: the same first words
    assert report["base_agree"] >= len(PROMPTS) // 2
    assert report["llamacpp_adapter_changed"] >= len(PROMPTS) - 2  # the adapter acts in llama.cpp
    assert all(answers["lc", "mild"])


def test_adapter_shifts_the_same_log_probabilities(engines, adapters, record_property):
    """The adapter's change of each next-token log-probability (adapter minus base) is the same in both
    engines, and clearly not what an unpermuted q/k conversion ("qk_wrong") would give."""
    import torch

    hf, lc = engines
    engine, handle = lc._engine, lc._handles["qk"]
    peft = hf.hf_model
    hf_engine = hf._engine

    def hf_logprobs(ids: list[int], adapter: str | None) -> np.ndarray:
        with hf_engine.lock, torch.no_grad():
            hf_engine._switch(hf._handles[adapter] if adapter else None, enabled=adapter is not None)
            try:
                logits = peft(torch.tensor([ids])).logits[0, -1]
            finally:
                hf_engine._switch(None, enabled=False)
        return torch.log_softmax(logits.float(), -1).numpy()

    lc_shift, right, wrong = [], [], []
    for prompt in PROMPTS:
        ids = lc.get_token_ids(lc._render(lc._convert_input(prompt).to_messages()))
        lc_base, lc_tuned = engine.next_token_logprobs(ids, None), engine.next_token_logprobs(ids, handle)
        hf_base, hf_right, hf_wrong = hf_logprobs(ids, None), hf_logprobs(ids, "qk"), hf_logprobs(ids, "qk_wrong")
        for token in set(lc_base) & set(lc_tuned):
            lc_shift.append(lc_tuned[token] - lc_base[token])
            right.append(hf_right[token] - hf_base[token])
            wrong.append(hf_wrong[token] - hf_base[token])
    lc_shift, right, wrong = map(np.asarray, (lc_shift, right, wrong))
    report = {"tokens": len(lc_shift), "mean_abs_shift": float(np.abs(lc_shift).mean()),
              "mae_vs_transformers": float(np.abs(lc_shift - right).mean()),
              "mae_vs_unpermuted": float(np.abs(lc_shift - wrong).mean()),
              "corr_vs_transformers": float(np.corrcoef(lc_shift, right)[0, 1]),
              "corr_vs_unpermuted": float(np.corrcoef(lc_shift, wrong)[0, 1])}
    record_property("logprob_shift", report)
    print("\nadapter log-prob shift:", {k: round(v, 3) for k, v in report.items()})
    assert report["tokens"] >= 8 * len(PROMPTS)
    assert report["corr_vs_transformers"] > 0.8
    assert report["mae_vs_transformers"] < 0.5 * report["mae_vs_unpermuted"]
    assert report["mean_abs_shift"] > 1.5 * report["mae_vs_transformers"]


def test_llamacpp_chat_model_behaves_like_the_transformers_one(engines):
    _, lc = engines
    question = "How do I boil an egg?"
    expected = lc.invoke(question, adapter="mild", max_new_tokens=12)
    assert expected.response_metadata == {"model_name": "smollm2-135m-instruct", "adapter": "mild",
                                          "finish_reason": "length"}
    assert expected.usage_metadata["output_tokens"] == 12
    assert expected.usage_metadata["input_tokens"] == len(lc.get_token_ids(lc._render(
        lc._convert_input(question).to_messages())))

    chunks = list(lc.bind(adapter="mild").stream(question, max_new_tokens=12))
    assert len(chunks) > 3 and "".join(c.content for c in chunks) == expected.content
    assert chunks[-1].usage_metadata == expected.usage_metadata
    assert chunks[-1].response_metadata == expected.response_metadata

    words = expected.content.split()
    stop = words[2]
    cut = lc.invoke(question, adapter="mild", max_new_tokens=12, stop=[stop])
    assert cut.content == expected.content[: expected.content.find(stop)]
    assert cut.response_metadata["finish_reason"] == "stop"
    streamed = list(lc.stream(question, adapter="mild", max_new_tokens=12, stop=[stop]))
    assert "".join(c.content for c in streamed) == cut.content

    short = lc.invoke("Say hi.", max_new_tokens=TOKENS)  # the model ends the answer itself
    assert short.response_metadata["finish_reason"] in ("stop", "length")

    for _ in lc.stream(question, max_new_tokens=TOKENS):  # leaving early ends the request
        break
    assert lc.invoke(question, max_new_tokens=4).content  # and the engine still answers


def test_adapters_do_not_leak_between_requests_or_slots(engines):
    _, lc = engines
    question = "Name three fruits."
    base = lc.invoke(question, max_new_tokens=16).content
    tuned = lc.invoke(question, adapter="mild", max_new_tokens=16).content
    assert tuned != base
    assert lc.invoke(question, max_new_tokens=16).content == base  # no KV cache reused from the adapter's run
    mixed = lc.generate_batch([question] * 4, adapters=[None, "mild", None, "mild"], max_new_tokens=16)
    for message, want in zip(mixed, [base, tuned, base, tuned]):  # concurrent slots, two adapters
        assert prefix(message.content, want) >= min(WORDS, len(want.split()))


def test_adapters_load_and_unload_at_run_time(engines, adapters):
    dirs, _ = adapters
    _, lc = engines
    engine = lc._engine
    question = "Why is the sky blue?"
    before = engine.restarts
    lc.load_adapter("mild_again", dirs["mild"])  # the same files: shared, no restart
    assert lc._handles["mild_again"] == lc._handles["mild"]
    lc.load_adapter("qk_wrong", dirs["qk_wrong"])
    wrong = lc.invoke(question, adapter="qk_wrong", max_new_tokens=8).content
    assert engine.restarts == before + 1 and wrong
    lc.unload_adapter("qk_wrong")
    lc.unload_adapter("mild_again")
    assert lc.invoke(question, adapter="qk", max_new_tokens=8).content
    assert engine.restarts == before + 1  # dropping an adapter needs no restart
    assert "qk_wrong" not in lc._handles and lc._handles["qk"] in engine.slots
    with pytest.raises(KeyError, match="qk_wrong"):
        lc.invoke(question, adapter="qk_wrong")
    lc.load_adapter("qk_wrong", dirs["qk_wrong"])  # back again: its GGUF is cached, one restart
    assert lc.invoke(question, adapter="qk_wrong", max_new_tokens=8).content == wrong
    assert engine.restarts == before + 2
    lc.unload_adapter("qk_wrong")
    assert c_handler(signal.SIGINT) == SIGINT_AT_IMPORT  # llama.cpp's handler did not stay (Ctrl-C works)


def test_a_prompt_longer_than_a_slot_is_refused():
    from uno_graph.chat_model import UnoChatModel

    small = UnoChatModel(backend="llamacpp", backend_options={"n_threads": THREADS, "n_parallel": 1,
                                                              "ctx_per_slot": 256}, max_new_tokens=4)
    with pytest.raises(ValueError, match="ctx_per_slot"):
        small.invoke("word " * 600)
    assert small.invoke("Hi").content is not None
    small._engine.close()
