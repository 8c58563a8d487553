"""The llama.cpp engine's merged-adapter mode (``backend_options={"merge_adapters": True}``) on the real
embedded model (SmolLM2-135M's Q4_1 GGUF), against the runtime-LoRA mode with the same adapters.

The adapters are random PEFT LoRAs on all seven projections (as in `test_engines_llamacpp`): "mild"
evenly, "qk" mostly on q/k, where the rotary row permutation matters. A merged file rounds the adapted
weights to Q8_0 once more, so its numbers differ slightly from the runtime LoRA's: the tests compare the
adapter's shift of the next-token log-probabilities (merged vs runtime) and the first words of greedy
answers. Merged files go to a temporary cache directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.llamacpp_helpers import SIGINT_AT_IMPORT, agrees, c_handler
from tests.requires import require_module

require_module("xllamacpp", "pip install 'uno-graph[llamacpp]'")
require_module("gguf", "pip install 'uno-graph[llamacpp]'")
pytestmark = pytest.mark.integration

PROMPTS = ["What is the capital of France?", "How do I boil an egg?", "Why is the sky blue?", "Name three fruits.",
           "Give me a tip for learning Python.", "Write one sentence about autumn."]
TOKENS = 24
THREADS = 1


@pytest.fixture(scope="module")
def merged_cache(tmp_path_factory):
    """Merged GGUFs of this module go to a temporary directory (`merged_cache_dir`)."""
    import uno_graph.engines.gguf_merge as gguf_merge

    root = tmp_path_factory.mktemp("merged-gguf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gguf_merge, "merged_cache_dir", lambda: root)
        yield root


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """{name: PEFT adapter directory} of two random LoRAs (r 8, alpha 16, all projections)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from uno_graph.engines.gguf_lora import PROJECTIONS
    from uno_graph.models import load_model, quiet_checkpointing_deprecation

    lm = load_model()
    root = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)
    with quiet_checkpointing_deprecation():
        peft = get_peft_model(lm.model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                   target_modules=list(PROJECTIONS)))
    dirs = {}
    for name, qk_std, other_std in (("mild", 0.06, 0.06), ("qk", 0.15, 0.04)):
        torch.manual_seed(1 if name == "qk" else 0)
        with torch.no_grad():
            for pname, param in peft.named_parameters():
                if "lora_B" in pname:
                    param.normal_(std=qk_std if ("q_proj" in pname or "k_proj" in pname) else other_std)
        peft.save_pretrained(root / name)
        dirs[name] = str(root / name)
    peft.unload()
    return dirs


@pytest.fixture(scope="module")
def lora_gguf(adapters):
    """(base GGUF, the "mild" adapter's GGUF LoRA)."""
    from uno_graph.engines.gguf_lora import base_model_info, ensure_gguf_lora
    from uno_graph.engines.llamacpp import base_gguf

    base = base_gguf()
    return base, ensure_gguf_lora(adapters["mild"], base_model_info(base).heads)


@pytest.fixture(scope="module")
def models(adapters, merged_cache):
    """(runtime-LoRA chat model, merged-mode chat model) on the same adapters."""
    from uno_graph.chat_model import UnoChatModel

    params = dict(max_new_tokens=TOKENS, repetition_penalty=1.0)
    runtime = UnoChatModel(adapters=adapters, backend="llamacpp",
                           backend_options={"n_threads": THREADS, "n_parallel": 4}, **params)
    merged = UnoChatModel(adapters=adapters, backend="llamacpp",
                          backend_options={"n_threads": THREADS, "n_parallel": 4, "merge_adapters": True,
                                           "merged_parallel": 2}, **params)
    assert merged._engine is not runtime._engine
    yield runtime, merged
    merged._engine.close()


def test_merged_file_is_cached_reused_and_typed(lora_gguf, tmp_path):
    import gguf

    from uno_graph.engines.gguf_merge import ensure_merged_gguf

    base, lora = lora_gguf
    start = time.perf_counter()
    first = ensure_merged_gguf(base, lora, cache=tmp_path)
    merge_s = time.perf_counter() - start
    stat = first.stat()
    start = time.perf_counter()
    again = ensure_merged_gguf(base, lora, cache=tmp_path)
    assert again == first and again.stat().st_mtime_ns == stat.st_mtime_ns  # reused, not rewritten
    assert time.perf_counter() - start < max(1.0, merge_s / 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no temporary file left

    base_types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(base)).tensors}
    merged = gguf.GGUFReader(str(first))
    types = {t.name: t.tensor_type.name for t in merged.tensors}
    assert types.keys() == base_types.keys()
    assert types["blk.0.attn_q.weight"] == "Q8_0" and base_types["blk.0.attn_q.weight"] == "Q4_1"
    assert all(types[n] == base_types[n] for n in types if not n.startswith("blk.") or "norm" in n)
    assert merged.fields["general.architecture"].contents() == "llama"
    assert len(merged.fields["tokenizer.ggml.tokens"].contents()) == 49152

    from uno_graph.engines.gguf_merge import _lora_pairs

    base_tensors = {t.name: t for t in gguf.GGUFReader(str(base)).tensors}
    merged_tensors = {t.name: t for t in merged.tensors}
    assert np.array_equal(merged_tensors["token_embd.weight"].data, base_tensors["token_embd.weight"].data)
    pairs, alpha = _lora_pairs(lora)
    for name in ("blk.0.attn_q.weight", "blk.7.ffn_down.weight"):  # W' = W + alpha / r · B·A, in Q8_0
        a, b = pairs[name]
        w = gguf.quants.dequantize(base_tensors[name].data, base_tensors[name].tensor_type)
        want = w + (b @ a) * (alpha / a.shape[0])
        got = gguf.quants.dequantize(merged_tensors[name].data, merged_tensors[name].tensor_type)
        step = np.abs(want).reshape(-1, 32).max(axis=1) / 127  # Q8_0: one scale per block of 32
        ratio = (np.abs(got - want).reshape(-1, 32) / step[:, None]).max()
        assert ratio <= 0.6, ratio  # half a step, plus the float16 rounding of the block scale

    kept = ensure_merged_gguf(base, lora, qtype="base", cache=tmp_path)  # the base's own types: another file
    assert kept != first and kept.stat().st_size == base.stat().st_size


def test_a_failed_or_killed_merge_leaves_no_file_that_is_served(lora_gguf, tmp_path, monkeypatch):
    import gguf

    from uno_graph.engines import gguf_merge

    base, lora = lora_gguf
    calls = {"n": 0}
    real = gguf.quants.quantize

    def failing(data, qtype):
        calls["n"] += data.size > 32  # a tensor, not the one-block type check
        if calls["n"] > 40:
            raise OSError("disk full")
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "quantize", failing)
    with pytest.raises(OSError, match="disk full"):
        gguf_merge.ensure_merged_gguf(base, lora, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary copy
    monkeypatch.setattr(gguf.quants, "quantize", real)

    killed = textwrap.dedent(f"""
        import os, signal, gguf
        from uno_graph.engines.gguf_merge import ensure_merged_gguf
        real, n = gguf.quants.quantize, [0]
        def dying(data, qtype):
            n[0] += data.size > 32
            if n[0] > 40:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(data, qtype)
        gguf.quants.quantize = dying
        ensure_merged_gguf({str(base)!r}, {str(lora)!r}, cache={str(tmp_path)!r})
    """)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", killed], cwd=root, capture_output=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    left = list(tmp_path.iterdir())
    assert left and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in left)  # only the temp file
    assert not list(tmp_path.glob("*.gguf"))  # nothing a server would be given

    path = gguf_merge.ensure_merged_gguf(base, lora, cache=tmp_path)  # merges anew, removes the dead temp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert len(gguf.GGUFReader(str(path)).tensors) == len(gguf.GGUFReader(str(base)).tensors)


def test_merged_adapter_shifts_log_probabilities_as_the_runtime_lora(models, record_property):
    """Per adapter, the merged model's change of each next-token log-probability (adapter minus base)
    matches the runtime LoRA's, and greedy answers start alike."""
    runtime, merged = models
    report = {}
    for name in ("mild", "qk"):
        shifts_runtime, shifts_merged = [], []
        for prompt in PROMPTS:
            ids = merged.get_token_ids(merged._render(merged._convert_input(prompt).to_messages()))
            lc, lm = runtime._engine, merged._engine
            r_base, r_tuned = lc.next_token_logprobs(ids, None), lc.next_token_logprobs(ids, runtime._handles[name])
            m_base, m_tuned = lm.next_token_logprobs(ids, None), lm.next_token_logprobs(ids, merged._handles[name])
            for token in set(r_base) & set(r_tuned) & set(m_base) & set(m_tuned):
                shifts_runtime.append(r_tuned[token] - r_base[token])
                shifts_merged.append(m_tuned[token] - m_base[token])
        a, b = np.asarray(shifts_runtime), np.asarray(shifts_merged)
        report[name] = {"tokens": len(a), "corr": float(np.corrcoef(a, b)[0, 1]),
                        "mean_abs_shift": float(np.abs(a).mean()), "mae": float(np.abs(a - b).mean())}
    answers = {label: [m.content for m in model.generate_batch(PROMPTS, adapters="mild")]
               for label, model in (("runtime", runtime), ("merged", merged))}
    report["greedy_agree"] = sum(map(agrees, answers["runtime"], answers["merged"]))
    record_property("merged_vs_runtime", report)
    print("\nmerged vs runtime LoRA:", report)
    for name in ("mild", "qk"):
        assert report[name]["tokens"] >= 8 * len(PROMPTS)
        assert report[name]["corr"] >= 0.95
        assert report[name]["mae"] < 0.35 * report[name]["mean_abs_shift"]
    assert report["greedy_agree"] >= len(PROMPTS) // 2 + 1
    assert merged._engine.fallbacks == 0 and merged._engine.merged_starts == 2


def test_concurrent_mixed_adapter_requests_get_their_own_answers(models):
    _, merged = models
    engine = merged._engine
    names = [None, "mild", "qk"]
    question = "Name three fruits."
    alone = {name: merged.invoke(question, adapter=name).content for name in names}
    assert len(set(alone.values())) == 3  # the adapters act
    mixed = names * 3
    with ThreadPoolExecutor(max_workers=len(mixed)) as pool:  # independent callers
        threaded = list(pool.map(lambda n: merged.invoke(question, adapter=n).content, mixed))
    batched = [m.content for m in merged.generate_batch([question] * len(mixed), adapters=mixed)]
    for name, a, b in zip(mixed, threaded, batched):
        assert agrees(a, alone[name]), (name, a, alone[name])
        assert agrees(b, alone[name]), (name, b, alone[name])
    streamed = "".join(c.content for c in merged.stream(question, adapter="qk"))
    assert streamed == alone["qk"]
    assert merged.invoke(question).content == alone[None]  # the base server reuses no adapter's KV cache
    assert set(engine._instances) == {merged._handles["mild"], merged._handles["qk"]}
    assert engine.fallbacks == 0
    assert c_handler(signal.SIGINT) == SIGINT_AT_IMPORT  # llama.cpp's handlers did not stay


def test_max_merged_evicts_the_least_recently_used_and_falls_back_to_runtime_lora(adapters, merged_cache, models):
    from uno_graph.chat_model import UnoChatModel

    runtime, _ = models
    one = UnoChatModel(adapters=adapters, backend="llamacpp", max_new_tokens=12, repetition_penalty=1.0,
                       backend_options={"n_threads": THREADS, "n_parallel": 2, "merge_adapters": True,
                                        "max_merged": 1, "merged_parallel": 1})
    engine = one._engine
    try:
        question = "Why is the sky blue?"
        mild = one.invoke(question, adapter="mild").content
        qk = one.invoke(question, adapter="qk").content  # takes mild's place
        assert list(engine._instances) == [one._handles["qk"]] and engine.merged_starts == 2
        assert engine.fallbacks == 0
        both = one.generate_batch([question] * 2, adapters=["mild", "qk"])  # mild evicts qk; qk: runtime LoRA
        assert engine.fallbacks == 1 and list(engine._instances) == [one._handles["mild"]]
        assert agrees(both[0].content, mild) and agrees(both[1].content, qk)
        want = runtime.invoke(question, adapter="qk", max_new_tokens=12).content
        assert agrees(both[1].content, want)  # the fallback is the runtime LoRA
        one.unload_adapter("mild")
        assert engine._instances == {}  # an idle merged server of a dropped adapter stops
    finally:
        engine.close()
    assert engine._instances == {} and engine._server is None
