""".venv/bin/python benchmarks/bench_trainer.py [--steps N] [--out benchmarks/results/trainer.json] [--objectives dpo_sft,sft] [--ablations]

TRL training, as configured by `uno_graph.adapters.train`, against a plain torch loop on the same
batches, on the real default model (SmolLM2-135M-Instruct, LoRA r16 on all seven projections).

* DPO+SFT (Expert): batches of 4 pairs (~138 tokens per sequence). The plain loop computes the
  same loss — reference forward with the adapter disabled under no_grad, policy forward +
  backward, grad clipping, AdamW step. TRL precomputes the reference log-probs once before
  training instead; that time is reported separately and amortised over one epoch's steps.
* SFT (Critic): batches of 4 (prompt, answer), loss on the answer tokens only.

The batches TRL builds are recorded and replayed in the plain loop, so both see the same tensors.
Step times are wall-clock from one optimizer step's end to the next (data loading included); the
first (warm-up) step is excluded, the median is reported. `--ablations` also times TRL without
the compact LM head, and with TRL's default speed settings (gradient checkpointing on, reference
computed in every step; fp32 — TRL's default bf16 autocast is left out: measured once at
~229 s/step, 30x slower, it would take the run past half an hour).

The machine is shared: the load average at start/end is recorded; rerun if it was high.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from uno_graph.adapters import train as T  # noqa: E402
from uno_graph.config import DEFAULT_MODEL, LoraSettings, TrainSettings  # noqa: E402

WORDS = (
    "the answer should list steps clearly explain each part give a short example avoid jargon keep it brief and "
    "polite mention safety first then details water minutes heat pan egg boil recipe code python function list "
    "loop value returns error check input user question"
).split()


def make_examples(n: int, seed: int = 0) -> list[T.TrainExample]:
    """Synthetic pairs: prompt ~100 tokens (with the template's system turn), answers ~38 tokens."""
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [
        T.TrainExample(
            prompt=[{"role": "user", "content": f"Question: {text(64)}?"}],
            chosen=text(38) + ".",
            rejected=text(38) + ".",
            id=f"ex{i}",
        )
        for i in range(n)
    ]


def _timer_and_recorder(trainer):
    """Time every optimizer step, record the collated batches and the per-step loss."""
    from transformers import TrainerCallback

    marks: list[float] = []
    batches: list[dict] = []
    losses: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            marks.append(time.perf_counter())

        def on_step_end(self, *args, **kwargs):
            marks.append(time.perf_counter())

    collate = trainer.data_collator

    def recording_collator(rows):
        batch = collate(rows)
        batches.append({k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
        return batch

    trainer.data_collator = recording_collator
    compute_loss = trainer.compute_loss

    def recording_loss(*args, **kwargs):
        out = compute_loss(*args, **kwargs)
        losses.append(float((out[0] if isinstance(out, tuple) else out).detach()))
        return out

    trainer.compute_loss = recording_loss
    trainer.add_callback(StepTimer())
    return marks, batches, losses


def _step_stats(marks: list[float]) -> dict:
    steps = [b - a for a, b in zip(marks, marks[1:])]
    timed = steps[1:]  # the first step warms up
    return {
        "s_per_step": statistics.median(timed),
        "s_per_step_mean": statistics.fmean(timed),
        "s_per_step_min": min(timed),
        "warmup_s": steps[0],
        "steps_timed": len(timed),
        "all_steps_s": [round(s, 3) for s in steps],
    }


def run_trl(objective: str, examples, settings: TrainSettings, lora: LoraSettings, variant: str = "uno") -> dict:
    """Train one epoch through uno_graph's trainer builder (variant 'uno'), or an ablation."""
    import trl

    patches = []
    if variant in ("no_compact_head", "trl_defaults_fp32"):
        patches.append((T, "_score_labelled_positions_only", lambda *a, **k: None))
    if variant == "trl_defaults_fp32":
        stock = {"activation_checkpointing": True, "gradient_checkpointing": True}
        args = T._common_args
        patches.append((T, "_common_args", lambda *a, **k: {**args(*a, **k), **stock}))
        config = trl.DPOConfig
        patches.append((trl, "DPOConfig", lambda **k: config(**{**k, "precompute_ref_log_probs": False})))
    precompute_s: list[float] = []
    original_precompute = trl.DPOTrainer._precompute_ref_logps

    def timed_precompute(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return original_precompute(self, *args, **kwargs)
        finally:
            precompute_s.append(time.perf_counter() - t)

    patches.append((trl.DPOTrainer, "_precompute_ref_logps", timed_precompute))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            trainer, _ = T.build_trainer(
                DEFAULT_MODEL, examples, objective, Path(tmp), lora=lora, settings=settings, progress=False
            )
            setup_s = time.perf_counter() - t0  # model load + tokenising (+ reference log-probs)
            marks, batches, losses = _timer_and_recorder(trainer)
            trainer.train()
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
    stats = _step_stats(marks)
    stats.update(setup_s=setup_s, reference_precompute_s=sum(precompute_s), variant=variant)
    stats.update(first_loss=losses[0], losses=[round(x, 5) for x in losses])
    stats["tokens_per_step"] = statistics.fmean(int(b["attention_mask"].sum()) for b in batches)
    return {"stats": stats, "batches": batches}


def _plain_model(lora: LoraSettings, seed: int):
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    from uno_graph.models import load_model

    lm = load_model()
    set_seed(seed)  # as TRL does before wrapping, so the LoRA init matches
    model = get_peft_model(
        lm.model,
        LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                   target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM"),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.98), weight_decay=1e-4)
    return model, params, opt


def _token_logps(model, batch, completion_mask):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    labels = batch["input_ids"][:, 1:]
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return logps * completion_mask


def run_plain_dpo(batches, settings: TrainSettings, lora: LoraSettings) -> dict:
    model, params, opt = _plain_model(lora, settings.seed)
    w_dpo, w_sft = 1.0 - settings.sft_weight, settings.sft_weight
    marks, losses = [time.perf_counter()], []
    for batch in batches:
        mask = batch["completion_mask"][:, 1:].float()
        with torch.no_grad(), model.disable_adapter():
            ref = _token_logps(model, batch, mask).sum(1)
        policy_tok = _token_logps(model, batch, mask)
        policy = policy_tok.sum(1)
        (pc, pr), (rc, rr) = policy.chunk(2), ref.chunk(2)
        dpo = -F.logsigmoid(settings.beta * ((pc - rc) - (pr - rr))).mean()
        sft = -policy_tok.chunk(2)[0][mask.chunk(2)[0].bool()].mean()
        loss = w_dpo * dpo + w_sft * sft
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        marks.append(time.perf_counter())
    stats = _step_stats(marks)
    stats.update(first_loss=losses[0], losses=[round(x, 5) for x in losses])
    return stats


def run_plain_sft(batches, settings: TrainSettings, lora: LoraSettings) -> dict:
    model, params, opt = _plain_model(lora, settings.seed)
    marks, losses = [time.perf_counter()], []
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        marks.append(time.perf_counter())
    stats = _step_stats(marks)
    stats.update(first_loss=losses[0], losses=[round(x, 5) for x in losses])
    return stats


def compare(name: str, objective: str, plain_fn, steps: int, settings, lora, ablations: bool) -> dict:
    examples = make_examples(settings.batch_size * (steps + 1))
    print(f"[{name}] TRL ({steps + 1} steps) ...", flush=True)
    trl_run = run_trl(objective, examples, settings, lora)
    trl_stats = trl_run["stats"]
    print(f"[{name}] plain torch loop on the same batches ...", flush=True)
    plain = plain_fn(trl_run["batches"], settings, lora)
    result = {"trl": trl_stats, "plain": plain}
    trl_s, plain_s = trl_stats["s_per_step"], plain["s_per_step"]
    result["throughput_ratio_trl_over_plain"] = plain_s / trl_s
    if objective == "dpo_sft":
        # TRL computes the reference log-probs before training: charge them to one epoch's steps
        amortised = trl_s + trl_stats["reference_precompute_s"] / (steps + 1)
        trl_stats["s_per_step_with_reference"] = amortised
        result["throughput_ratio_trl_over_plain_with_reference"] = plain_s / amortised
    result["first_loss_abs_diff"] = abs(trl_stats["first_loss"] - plain["first_loss"])
    if ablations:
        for variant in (["no_compact_head", "trl_defaults_fp32"] if objective == "dpo_sft" else ["no_compact_head"]):
            print(f"[{name}] ablation: TRL {variant} ...", flush=True)
            result[f"trl_{variant}"] = run_trl(objective, examples, settings, lora, variant)["stats"]
    print(f"[{name}] TRL {trl_s:.2f} s/step, plain {plain_s:.2f} s/step, ratio {plain_s / trl_s:.2f}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run (one warm-up step is added)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trainer.json"))
    parser.add_argument("--objectives", default="dpo_sft,sft", help="comma-separated: dpo_sft (Expert), sft (Critic)")
    parser.add_argument("--ablations", action="store_true", help="also time TRL without uno-graph's speed options")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    settings, lora = TrainSettings(epochs=1, batch_size=4), LoraSettings()
    started = time.time()
    results = {
        "model": DEFAULT_MODEL,
        "torch_threads": torch.get_num_threads(),
        "lora": {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
                 "target_modules": list(lora.target_modules)},
        "batch_size": settings.batch_size,
        "steps_timed": args.steps,
        "loadavg_start": os.getloadavg(),
    }
    from uno_graph.models import resolve_model_path

    resolve_model_path(DEFAULT_MODEL)  # converts and caches the default model on first use
    plain_loops = {"dpo_sft": run_plain_dpo, "sft": run_plain_sft}
    for objective in args.objectives.split(","):
        if objective not in plain_loops:
            parser.error(f"unknown objective {objective!r}; allowed: {sorted(plain_loops)}")
        results[objective] = compare(objective, objective, plain_loops[objective], args.steps, settings, lora,
                                     args.ablations)
    results["loadavg_end"] = os.getloadavg()
    results["wall_s"] = time.time() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k in ("dpo_sft", "sft")}, indent=1)[:4000])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
