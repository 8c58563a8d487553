"""Training one LoRA adapter with TRL: an Expert (one of `config.EXPERT_OBJECTIVES`) or a Critic (SFT).

`train_adapter` loads a fresh base model, wraps it in a LoRA adapter and trains it with the
objective named in `OBJECTIVES`; the adapter is saved after every epoch (`<out_dir>/epoch-<k>/`)
so the verifier can pick an epoch afterwards. Example::

    >>> result = train_adapter("smollm2-135m-instruct", examples, "dpo_sft", Path("runs/x"),
    ...                        lora=LoraSettings(), settings=TrainSettings())   # doctest: +SKIP
    >>> result.epoch_dirs[-1]                                                    # doctest: +SKIP
    PosixPath('runs/x/epoch-3')

Speed on CPU (numbers: benchmarks/bench_trainer.py). With its defaults TRL 1.16 ran a DPO step
about twice as slow as a plain torch loop on the same batches. None of the changes below alters
the loss (the benchmark checks the first-step loss against the plain loop):

* `gradient_checkpointing=False` (public field; TRL turns it on by default): it re-runs every
  layer's forward in the backward pass, and a 135M model needs no memory saving.
* `precompute_ref_log_probs=True` (DPO and KTO, public field): the reference (base, adapter
  disabled) is fixed, so its log-probs are computed once for the data set, in batches of 16,
  instead of once per step in every epoch.
* `bf16=False`, `use_cpu=True`: TRL defaults to bf16 autocast, which is slow on most CPUs.
* `dataloader_num_workers=0`, `dataloader_pin_memory=False`: no GPU to pin for, and worker
  processes would compete with the two training threads.
* `report_to=[]`, `save_strategy="no"`, `logging_strategy="epoch"`: no per-step writes or syncs.
* `max_length=None` + `_TruncatingCollator`: the length limits are applied explicitly
  (`max_prompt_tokens` keeping the prompt's end, `max_answer_tokens` keeping the answer's start).
* The biggest one has no config field: TRL's fused LM head scores every position of the batch on
  CPU (prompt and padding included) and computes its logging metrics (entropy, top-1, mean logit)
  over all of them; on CUDA it scores only the labelled positions. `_score_labelled_positions_only`
  gives CPU the CUDA path (TRL's own autograd function, the same outputs); DPO and KTO need a
  one-method subclass so that it is in place before the reference log-probs are precomputed.

The Expert's objectives, and what each learns from (the edit learners are named as in "Post-Training
LLMs with User-Edits Deployment Data"):

* `sft` = `edit_sft`: SFT on the endorsed answers (edits, verified revisions; approvals if asked).
* `dpo_sft` = `early_ensemble`: one policy trained on DPO (edit ≻ logged answer) and SFT jointly.
* `edit_dpo`: DPO alone on (edit ≻ logged answer); examples without a distinct rejected answer are left out.
* `kto`: TRL's KTO on unpaired ratings: endorsed answers are desirable, logged answers users rejected
  (including thumbs-down negatives with no better answer) undesirable; see `_train_kto`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uno_graph.config import LoraSettings, TrainSettings
from uno_graph.errors import ConfigError, require
from uno_graph.models import quiet_checkpointing_deprecation
from uno_graph.workdir import fingerprint

Messages = list[dict[str, str]]


@dataclass
class TrainExample:
    """One training example: a chat prompt, the preferred answer and (for DPO and KTO) a worse one.

    A *negative* — a logged answer the user rated down with nothing better to pair it with — is
    `chosen=None` (or "") with `rejected` set; only objectives in `LEARNS_FROM_NEGATIVES` take them."""

    prompt: Messages
    chosen: str | None
    rejected: str | None = None
    id: str = ""
    user_id: str | None = None


@dataclass
class TrainResult:
    """What one `train_adapter` call produced."""

    objective: str
    epoch_dirs: list[Path]  # out_dir/epoch-1 ... epoch-K, one saved adapter per epoch
    losses: list[float]  # mean training loss of each epoch
    final_loss: float  # mean training loss of the last epoch
    train_seconds: float  # trainer construction (tokenising, reference log-probs) + training + saving
    tokens_per_second: float  # non-padding tokens through the trained model / train_seconds
    n_examples: int
    tokens: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # TRL's logged metrics of the last epoch

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["epoch_dirs"] = [str(p) for p in self.epoch_dirs]
        return data


def examples_fingerprint(examples: list[TrainExample]) -> str:
    """The `data_hash` of a manifest: a short hash of the examples' ids and texts."""
    return fingerprint([[e.id, e.prompt, e.chosen, e.rejected] for e in examples])


# -- pieces every objective shares ---------------------------------------------------------------


@dataclass
class TrainJob:
    """Everything an objective needs to build its trainer; see `OBJECTIVES`."""

    model: Any  # a freshly loaded base model (never shared, never reused)
    tokenizer: Any
    examples: list[TrainExample]
    peft_config: Any  # peft.LoraConfig built from LoraSettings
    settings: TrainSettings
    args: dict[str, Any]  # TrainingArguments fields common to every objective (optimiser, schedule, CPU)
    callbacks: list[Any]


class _TruncatingCollator:
    """Applies `max_prompt_tokens` (keeping the prompt's end) and `max_answer_tokens` (keeping the
    answer's start) to tokenised examples, then calls the trainer's own collator.

    Handles TRL's layouts: preference rows (`prompt_ids`, `chosen_ids`, `rejected_ids`), unpaired
    rows (KTO: `prompt_ids`, `completion_ids`, `KL_completion_ids`) and prompt-completion rows
    (`input_ids` with `labels` = -100 on the prompt).
    """

    def __init__(self, inner: Callable[[list[dict[str, Any]]], Any], settings: TrainSettings) -> None:
        self.inner = inner
        self.max_prompt = settings.max_prompt_tokens
        self.max_answer = settings.max_answer_tokens

    def truncate(self, row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        if "prompt_ids" in row:
            row["prompt_ids"] = list(row["prompt_ids"])[-self.max_prompt:]
            for key in ("chosen_ids", "rejected_ids", "completion_ids", "KL_completion_ids"):
                if key in row:
                    row[key] = list(row[key])[: self.max_answer]
        elif "labels" in row:
            ids, labels = list(row["input_ids"]), list(row["labels"])
            n_prompt = next((i for i, lab in enumerate(labels) if lab != -100), len(labels))
            keep_prompt = slice(max(0, n_prompt - self.max_prompt), n_prompt)
            keep_answer = slice(n_prompt, n_prompt + self.max_answer)
            row["input_ids"] = ids[keep_prompt] + ids[keep_answer]
            row["labels"] = labels[keep_prompt] + labels[keep_answer]
        return row

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        return self.inner([self.truncate(r) for r in rows])


def _top_layers(model: Any, top: int | None) -> list[int] | None:
    """PEFT's `layers_to_transform` for `LoraSettings.top_layers`: the indices of the model's last
    `top` decoder layers (all of them when `top` is None or not smaller than the model's depth)."""
    depth = int(model.config.num_hidden_layers)
    return None if top is None or top >= depth else list(range(depth - top, depth))


def _common_args(out_dir: Path, settings: TrainSettings, progress: bool) -> dict[str, Any]:
    """TrainingArguments shared by every objective: the paper's optimiser, CPU, no saving or reporting."""
    return dict(
        output_dir=str(out_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        optim="adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.98,
        weight_decay=1e-4,
        max_grad_norm=1.0,
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,  # TRL turns it on by default
        gradient_checkpointing=False,  # (deprecated alias, still read by TRL)
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        max_length=None,  # lengths are limited by _TruncatingCollator, explicitly
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="epoch",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not progress,
    )


def stable_config(path: Path, **overrides: Any) -> None:
    """Rewrite a saved PEFT config with its module lists sorted.

    PEFT keeps `target_modules` as a set and writes it in the set's order, which changes with every
    process's string hashing: the same training would publish a config of another sha256 each time,
    so a rerun could neither recognise an adapter it had already published nor match its manifest."""
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "exclude_modules", "modules_to_save"):
        if isinstance(config.get(key), list) and all(isinstance(x, str) for x in config[key]):
            config[key] = sorted(config[key])
    config.update(overrides)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _epoch_callback(out_dir: Path, record: dict[str, Any]):
    """A TrainerCallback saving the adapter after every epoch and collecting the logged losses.

    `record["stop_after_epoch"]` ends training after that epoch; the learning-rate schedule stays
    the one of the full run, so epoch k equals epoch k of a run that went on (validation picked k).
    """
    from transformers import TrainerCallback

    class EpochSaver(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            k = len(record["epoch_dirs"]) + 1
            target = out_dir / f"epoch-{k}"
            tmp = out_dir / f".epoch-{k}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)  # PEFT: adapter_config.json + adapter_model.safetensors
            stable_config(tmp / "adapter_config.json")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
            record["epoch_dirs"].append(target)
            if record.get("stop_after_epoch") and k >= record["stop_after_epoch"]:
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                record["losses"].append(float(logs["loss"]))
                record["metrics"] = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}

    return EpochSaver()


# TRL's fused LM head fields each trainer logs (see DPOTrainer/SFTTrainer/KTOTrainer.__init__ in trl 1.16)
_DPO_HEAD_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")
_SFT_HEAD_OUTPUTS = ("log_probs", "entropy", "is_top1")
_KTO_HEAD_OUTPUTS = ("log_probs", "entropy", "mean_logits")


def _score_labelled_positions_only(model: Any, outputs: tuple[str, ...]) -> None:
    """Make TRL's fused LM head score only the positions that have a label, on CPU too.

    TRL's trainers patch the model (`trl.trainer.utils.add_fused_lm_head`) so that
    `model(..., labels=..., fused_lm_head=True)` returns per-token log-probs computed in vocabulary
    tiles by `trl.kernels.ChunkedLogProbFunction`. On CUDA/XPU it feeds that function only the
    labelled positions ("compact"); on any other device it scores every position — prompt and
    padding included — to keep tensor shapes static for compiled backends (Neuron). On CPU that
    triples the head's work and runs the whole-tile metric math (entropy, top-1, mean logit) on
    every position: in a 138-token DPO batch the head took longer than the 30 layers.

    This wraps TRL's forward with the compact path, copied from TRL's own code and using TRL's own
    autograd function: the log-probs, the loss and the logged metrics are the same (unlabelled
    positions are zero either way). Configurations the copy does not cover (logit scaling,
    soft-capping, MoE router logits, pre-shifted labels, non-CPU devices) go to TRL's forward.
    Idempotent.
    """
    import types

    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, FusedCausalLMOutput

    if getattr(model, "_uno_compact_lm_head", False):
        return
    cfg = model.config.get_text_config()
    scaled = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    if any(getattr(cfg, name, None) is not None for name in scaled) or getattr(cfg, "output_router_logits", False):
        return
    trl_forward = model.forward

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        head = self.get_output_embeddings()
        if (
            not fused_lm_head
            or labels is None
            or shift_labels is not None
            or kwargs.get("output_router_logits")
            or head.weight.device.type != "cpu"
        ):
            return trl_forward(
                *args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch, **kwargs,
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        labels = labels[:, 1:]
        mask = labels != -100
        per_token = ChunkedLogProbFunction.apply(
            hidden[mask], head.weight, head.bias, labels[mask], 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs
        )
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
            None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token
        )
        loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        return FusedCausalLMOutput(
            loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits, is_top1=is_top1, label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
    model._uno_compact_lm_head = True


def _reference_trainer(trainer_class: type, head_outputs: tuple[str, ...], job: TrainJob, config: Any,
                       rows: list[dict[str, Any]], collator: Any):
    """A trainer with a fixed reference — the base with the adapter disabled, its log-probs precomputed
    once (DPO, KTO) — on `rows`, with the compact LM head. `trainer_class` gets one override: the
    compact head is installed before the reference log-probs are precomputed (TRL installs its own
    head, then precomputes, inside `__init__`)."""
    from datasets import Dataset

    class CompactHead(trainer_class):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            _score_labelled_positions_only(self.model.get_base_model(), head_outputs)
            return super()._precompute_ref_logps(dataset, name, batch_size)

    trainer = CompactHead(
        model=job.model,
        ref_model=None,  # with peft_config: reference = the base with the adapter disabled
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
        data_collator=_TruncatingCollator(collator, job.settings),
    )
    _score_labelled_positions_only(trainer.model.get_base_model(), head_outputs)  # no-op if precomputed
    return trainer


# -- objectives: (TrainJob) -> a ready-to-train TRL trainer ----------------------------------------


def _train_dpo_sft(job: TrainJob):
    """Expert: DPO (sigmoid) + SFT on the chosen answer, weighted 1-sft_weight / sft_weight (paper).

    Also the `early_ensemble` learner of the user-edits paper: one policy trained on both losses
    jointly. An approval (chosen = rejected) leaves the DPO term constant: only its SFT term acts.
    """
    missing = [e.id or str(i) for i, e in enumerate(job.examples) if not e.rejected]
    if missing:
        raise ConfigError(
            f"objective 'dpo_sft' (= 'early_ensemble') needs a rejected answer for every example; missing for "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    s = job.settings
    return _dpo_trainer(job, ["sigmoid", "sft"], [1.0 - s.sft_weight, s.sft_weight])


def _train_edit_dpo(job: TrainJob):
    """Expert `edit_dpo`: DPO (sigmoid) on (edit ≻ logged answer) alone, no SFT term.

    Only examples whose rejected answer exists and differs from the chosen one carry a preference;
    the others (approvals) are left out, and `job.examples` is narrowed to what is trained on."""
    kept = [e for e in job.examples if e.rejected and e.rejected != e.chosen]
    if not kept:
        raise ConfigError(f"objective 'edit_dpo' needs examples whose rejected answer differs from the chosen "
                          f"one; none of the {len(job.examples)} has one")
    job.examples = kept
    return _dpo_trainer(job, ["sigmoid"], [1.0])


def _dpo_trainer(job: TrainJob, loss_type: list[str], loss_weights: list[float]):
    """TRL's DPOTrainer on `job.examples` with these losses (`DPOConfig.loss_type`, `loss_weights`).

    The reference model is the base model itself (adapter disabled), its log-probs precomputed once.
    """
    trl = require("trl", "train")
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    rows = [
        {
            "prompt": e.prompt,
            "chosen": [{"role": "assistant", "content": e.chosen}],
            "rejected": [{"role": "assistant", "content": e.rejected}],
        }
        for e in job.examples
    ]
    s = job.settings
    config = trl.DPOConfig(
        **job.args,
        beta=s.beta,
        loss_type=loss_type,
        loss_weights=loss_weights,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=max(16, 4 * s.batch_size),
        disable_dropout=False,  # keep LoraSettings.dropout (the paper's 0.05); the base has no dropout
    )
    return _reference_trainer(trl.DPOTrainer, _DPO_HEAD_OUTPUTS, job, config, rows,
                              DataCollatorForPreference(pad_token_id=job.tokenizer.pad_token_id))


def _train_sft(job: TrainJob):
    """Critic, and the Expert's `sft` = `edit_sft`: supervised fine-tuning on (prompt, chosen), the
    loss on the answer tokens only."""
    trl = require("trl", "train")
    from datasets import Dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.chosen}]} for e in job.examples]
    config = trl.SFTConfig(**job.args, completion_only_loss=True, packing=False, padding_free=False)
    trainer = trl.SFTTrainer(
        model=job.model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
        data_collator=_TruncatingCollator(
            DataCollatorForLanguageModeling(pad_token_id=job.tokenizer.pad_token_id), job.settings
        ),
    )
    _score_labelled_positions_only(trainer.model.get_base_model(), _SFT_HEAD_OUTPUTS)
    return trainer


def _train_kto(job: TrainJob):
    """Expert `kto`: TRL's KTOTrainer on unpaired ratings, so a cluster with thumbs but few edits learns.

    Each example gives up to two unpaired rows: its chosen answer (an edit, a verified revision or an
    approval) is *desirable*; its rejected answer, when there is one and it differs from the chosen
    one, is *undesirable* — the logged answer the user changed, or a negative's (chosen empty)
    thumbs-down answer. Both kinds are needed: KTO's loss moves each answer's likelihood relative to
    a reference point, and one kind alone only pushes the model one way.

    * The two kinds are weighted to equal total weight (the larger kind's weight is n_small/n_large),
      the lower end of the range the KTO paper recommends (Eq. 8) for unbalanced data.
    * TRL estimates KTO's reference point (the KL term) from mismatched (prompt, answer) pairs within a
      batch and refuses batch size 1, so the batch is at least 2. TRL samples KTO rows in order; they
      are shuffled once here (seeded) so a batch mixes kinds and prompts.
    * The reference is the base with the adapter disabled, its log-probs precomputed once, as for DPO.
    """
    import random

    trl = require("trl", "train")
    from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

    rows = []
    for e in job.examples:
        if e.chosen:
            rows.append({"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.chosen}], "label": True})
        if e.rejected and e.rejected != e.chosen:
            rows.append({"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.rejected}],
                         "label": False})
    n_good = sum(r["label"] for r in rows)
    n_bad = len(rows) - n_good
    if not n_good or not n_bad:
        raise ConfigError(
            f"objective 'kto' needs desirable answers (a chosen answer) and undesirable ones (a rejected answer "
            f"that differs from the chosen one, or a negative); got {n_good} desirable and {n_bad} undesirable "
            f"from {len(job.examples)} examples"
        )
    s = job.settings
    random.Random(s.seed).shuffle(rows)
    config = trl.KTOConfig(
        **{**job.args, "per_device_train_batch_size": max(2, s.batch_size)},
        beta=s.beta,
        loss_type="kto",
        desirable_weight=min(1.0, n_bad / n_good),
        undesirable_weight=min(1.0, n_good / n_bad),
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=max(16, 4 * s.batch_size),
        disable_dropout=False,  # keep LoraSettings.dropout, as for DPO
    )
    return _reference_trainer(trl.KTOTrainer, _KTO_HEAD_OUTPUTS, job, config, rows,
                              DataCollatorForUnpairedPreference(pad_token_id=job.tokenizer.pad_token_id))


OBJECTIVES: dict[str, Callable[[TrainJob], Any]] = {
    "dpo_sft": _train_dpo_sft,  # Expert with --expert-objective dpo_sft (the paper)
    "sft": _train_sft,  # Critic, and the Expert by default
    "edit_sft": _train_sft,  # the user-edits paper's name for the Expert's "sft"
    "edit_dpo": _train_edit_dpo,
    "early_ensemble": _train_dpo_sft,  # the user-edits paper's name for "dpo_sft"
    "kto": _train_kto,
}

# objectives that take negatives (TrainExample with no chosen answer, a rejected one); the others refuse them
LEARNS_FROM_NEGATIVES = frozenset({"kto"})


# -- entry point ------------------------------------------------------------------------------------


def build_trainer(
    base_model_path: str | Path,
    examples: list[TrainExample],
    objective: str,
    out_dir: Path,
    *,
    lora: LoraSettings,
    settings: TrainSettings,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The configured TRL trainer `train_adapter` runs, and the record its callback fills
    (`epoch_dirs`, `losses`, `metrics`, `loaded_at`; `n_examples`: the examples it trains on, which
    `edit_dpo` narrows). Loads a fresh base model. Used by the benchmark."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown training objective {objective!r}; allowed: {sorted(OBJECTIVES)}")
    if not examples:
        raise ConfigError(f"objective {objective!r} got no training examples")
    negatives = [e.id or str(i) for i, e in enumerate(examples) if not e.chosen]
    if negatives and objective not in LEARNS_FROM_NEGATIVES:
        raise ConfigError(f"objective {objective!r} learns from chosen answers; examples without one (negatives) "
                          f"are for {sorted(LEARNS_FROM_NEGATIVES)}: {negatives[:5]}{' ...' if len(negatives) > 5 else ''}")
    require("trl", "train")
    from peft import LoraConfig
    from transformers import PrinterCallback

    from uno_graph.models import load_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = load_model(str(base_model_path))
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        layers_to_transform=_top_layers(lm.model, lora.top_layers),
        bias="none",
        task_type="CAUSAL_LM",
    )
    record: dict[str, Any] = {"epoch_dirs": [], "losses": [], "metrics": {}, "loaded_at": time.perf_counter(),
                              "stop_after_epoch": stop_after_epoch}
    job = TrainJob(
        model=lm.model,
        tokenizer=lm.tokenizer,
        examples=list(examples),
        peft_config=peft_config,
        settings=settings,
        args=_common_args(out_dir, settings, progress),
        callbacks=[_epoch_callback(out_dir, record)],
    )
    trainer = OBJECTIVES[objective](job)
    record["n_examples"] = len(job.examples)
    if not progress:
        trainer.remove_callback(PrinterCallback)  # it prints every log when tqdm is disabled
    return trainer, record


def train_adapter(
    base_model_path: str | Path,
    examples: list[TrainExample],
    objective: str,
    out_dir: Path,
    *,
    lora: LoraSettings,
    settings: TrainSettings,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Train one LoRA adapter on `examples` with `objective` and save it after every epoch.

    A fresh copy of the base model is loaded from `base_model_path` on every call, so calls never
    share or mutate a model. Returns the saved epoch directories and training statistics.
    `stop_after_epoch` ends the run after that epoch (the schedule is still the full run's).
    Raises ConfigError for an unknown objective, no examples, a negative (no chosen answer) for an
    objective that does not take them, (dpo_sft) an example without a rejected answer, (edit_dpo) no
    example with a distinct rejected answer, or (kto) only desirable or only undesirable answers.
    """
    with _quiet(not progress), quiet_checkpointing_deprecation():
        trainer, record = build_trainer(
            base_model_path, examples, objective, out_dir, lora=lora, settings=settings, progress=progress,
            stop_after_epoch=stop_after_epoch,
        )
        trainer.train()
        seconds = time.perf_counter() - record["loaded_at"]  # model loading excluded
    tokens = int(trainer.state.num_input_tokens_seen)
    losses = record["losses"]
    return TrainResult(
        objective=objective,
        epoch_dirs=list(record["epoch_dirs"]),
        losses=losses,
        final_loss=losses[-1] if losses else float("nan"),
        train_seconds=seconds,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        n_examples=record["n_examples"],
        tokens=tokens,
        metrics=record["metrics"],
    )


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence the progress bars of datasets/transformers/TRL for the duration (restored after)."""
    if not enabled:
        yield
        return
    import datasets
    import transformers

    ds_bars = datasets.is_progress_bar_enabled()
    tf_bars = transformers.utils.logging.is_progress_bar_enabled()
    env = os.environ.get("TQDM_DISABLE")
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if ds_bars:
            datasets.enable_progress_bars()
        if tf_bars:
            transformers.utils.logging.enable_progress_bar()
        if env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = env
