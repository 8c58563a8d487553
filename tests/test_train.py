"""Adapter training (TRL, tiny random Llama) and the adapter registry."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.requires import require_module
from uno_graph.adapters import (
    LEARNS_FROM_NEGATIVES,
    OBJECTIVES,
    TrainExample,
    build_manifest,
    examples_fingerprint,
    list_adapters,
    load_manifest,
    publish_adapter,
    train_adapter,
    validate_adapter,
)
from uno_graph.adapters.train import _TruncatingCollator, build_trainer
from uno_graph.config import EXPERT_OBJECTIVES, LoraSettings, TrainSettings, UnoConfig
from uno_graph.errors import ArtifactError, ConfigError

require_module("trl", "pip install 'uno-graph[train]'")

LORA = LoraSettings(r=4, alpha=8, dropout=0.0)
SETTINGS = TrainSettings(epochs=2, batch_size=2, learning_rate=5e-3, max_prompt_tokens=48, max_answer_tokens=16)

QA = [
    ("How do I boil an egg?", "Put the egg in boiling water for nine minutes.", "No idea."),
    ("What is the capital of France?", "The capital of France is Paris.", "Berlin, probably."),
    ("Explain recursion in Python.", "A function that calls itself with a smaller input.", "Recursion is a loop."),
    ("Write a short email to my landlord.", "Dear landlord, the heater is broken.", "Fix it now."),
]


def _examples() -> list[TrainExample]:
    return [
        TrainExample(prompt=[{"role": "user", "content": q}], chosen=good, rejected=bad, id=f"ex{i}")
        for i, (q, good, bad) in enumerate(QA)
    ]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model trains ~10x faster on one thread: a second OpenMP thread only adds barrier waits,
    which become long stalls when the 2-core machine is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def expert(tiny_lm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("expert")
    return train_adapter(tiny_lm_dir, _examples(), "dpo_sft", out, lora=LORA, settings=SETTINGS, progress=False)


# -- training -----------------------------------------------------------------------------------------


def test_objective_table_lists_expert_and_critic():
    assert list(OBJECTIVES) == ["dpo_sft", "sft", "edit_sft", "edit_dpo", "early_ensemble", "kto"]
    assert set(EXPERT_OBJECTIVES) <= set(OBJECTIVES)
    # the user-edits paper's names for the two existing Expert losses
    assert OBJECTIVES["edit_sft"] is OBJECTIVES["sft"] and OBJECTIVES["early_ensemble"] is OBJECTIVES["dpo_sft"]
    assert LEARNS_FROM_NEGATIVES == {"kto"}


def test_config_accepts_every_expert_objective_and_rejects_others():
    for name in EXPERT_OBJECTIVES:
        assert UnoConfig(expert_objective=name).expert_objective == name
    assert UnoConfig().expert_objective == "sft"
    for bad in ("orpo", "late_ensemble", "DPO"):
        with pytest.raises(ConfigError, match="expert_objective") as info:
            UnoConfig(expert_objective=bad)
        assert "kto" in str(info.value) and "edit_dpo" in str(info.value)


def test_cli_expert_objective_choices_follow_the_config(capsys):
    from uno_graph.cli import _config, build_parser

    parser = build_parser()
    assert _config(parser.parse_args(["learn", "--workdir", "w"])).expert_objective == "sft"  # the config's default
    learners = _config(parser.parse_args(["learn", "--workdir", "w", "--learner", "kto", "--learner", "sft"]))
    assert (learners.expert_objective, learners.learners) == ("kto", ("kto", "sft"))  # the first --learner decides
    for name in EXPERT_OBJECTIVES:
        assert parser.parse_args(["learn", "--workdir", "w", "--expert-objective", name]).expert_objective == name
    with pytest.raises(SystemExit):
        parser.parse_args(["learn", "--workdir", "w", "--expert-objective", "orpo"])
    assert "invalid choice: 'orpo'" in capsys.readouterr().err


def test_lora_weights_change_and_base_weights_do_not(tiny_lm_dir, tmp_path):
    trainer, _ = build_trainer(tiny_lm_dir, _examples(), "dpo_sft", tmp_path, lora=LORA, settings=SETTINGS,
                               progress=False)
    model = trainer.model

    def snapshot(lora: bool) -> dict:
        return {n: p.detach().clone() for n, p in model.named_parameters() if ("lora_" in n) == lora}

    base_before, lora_before = snapshot(False), snapshot(True)
    assert lora_before and base_before
    trainer.train()
    base_after, lora_after = snapshot(False), snapshot(True)
    assert base_after.keys() == base_before.keys()
    for name, tensor in base_before.items():
        assert (tensor == base_after[name]).all(), f"base weight {name} changed"
    changed = [n for n, t in lora_before.items() if not (t == lora_after[n]).all()]
    assert any("lora_B" in n for n in changed), "no LoRA B matrix was updated"
    assert len(changed) == len(lora_before)


def test_top_layers_adapts_only_the_last_layers_and_the_adapter_loads_again(tiny_lm_dir, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    lora = LoraSettings(r=4, alpha=8, dropout=0.0, top_layers=1)  # the tiny model has 2 layers
    trained = train_adapter(tiny_lm_dir, _examples(), "sft", tmp_path, lora=lora, settings=SETTINGS, progress=False)
    names = list(load_file(str(trained.epoch_dirs[-1] / "adapter_model.safetensors")))
    assert names and all(".layers.1." in n for n in names), names
    base = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), torch_dtype=torch.float32)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, str(trained.epoch_dirs[-1])).merge_and_unload().state_dict()
    moved = {k for k in before if not torch.equal(before[k], merged[k])}
    assert moved and all(".layers.1." in k for k in moved)
    with pytest.raises(ConfigError, match="lora.top_layers"):
        UnoConfig.from_dict({"lora": {"top_layers": 0}})


def test_one_adapter_saved_per_epoch(expert, tiny_lm_dir):
    assert [p.name for p in expert.epoch_dirs] == ["epoch-1", "epoch-2"]
    for path in expert.epoch_dirs:
        config = json.loads((path / "adapter_config.json").read_text())
        assert config["r"] == LORA.r and config["lora_alpha"] == LORA.alpha
        assert (path / "adapter_model.safetensors").is_file()
    assert not [p for p in expert.epoch_dirs[0].parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    assert len(expert.losses) == 2 and all(math.isfinite(x) for x in expert.losses)
    assert expert.final_loss == expert.losses[-1]
    assert expert.objective == "dpo_sft" and expert.n_examples == len(QA)
    assert expert.tokens > 0 and expert.tokens_per_second > 0 and expert.train_seconds > 0
    assert "rewards/margins" in expert.metrics  # TRL's DPO metrics of the last epoch


def test_saved_adapter_loads_on_a_fresh_base(expert, tiny_lm_dir):
    from peft import PeftModel

    from uno_graph.models import load_model

    lm = load_model(str(tiny_lm_dir))
    model = PeftModel.from_pretrained(lm.model, str(expert.epoch_dirs[-1]))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained: B starts at zero


def test_sft_objective_trains_and_is_deterministic(tiny_lm_dir, tmp_path):
    examples = [TrainExample(prompt=e.prompt, chosen=e.chosen, id=e.id) for e in _examples()]  # no rejected
    settings = TrainSettings(epochs=1, batch_size=2, learning_rate=5e-3)
    first = train_adapter(tiny_lm_dir, examples, "sft", tmp_path / "a", lora=LORA, settings=settings, progress=False)
    again = train_adapter(tiny_lm_dir, examples, "sft", tmp_path / "b", lora=LORA, settings=settings, progress=False)
    assert first.objective == "sft" and [p.name for p in first.epoch_dirs] == ["epoch-1"]
    assert (first.epoch_dirs[0] / "adapter_config.json").is_file()
    assert math.isfinite(first.final_loss)
    # every call starts from a fresh base model: same data and seed give the same run
    assert again.losses == pytest.approx(first.losses, rel=1e-5)


def test_unknown_objective_lists_the_allowed_names(tiny_lm_dir, tmp_path):
    with pytest.raises(ConfigError) as info:
        train_adapter(tiny_lm_dir, _examples(), "orpo", tmp_path, lora=LORA, settings=SETTINGS, progress=False)
    assert "'orpo'" in str(info.value) and "dpo_sft" in str(info.value) and "kto" in str(info.value)


def test_dpo_needs_rejected_answers(tiny_lm_dir, tmp_path):
    examples = _examples()
    examples[1].rejected = None
    with pytest.raises(ConfigError, match="ex1"):
        train_adapter(tiny_lm_dir, examples, "dpo_sft", tmp_path, lora=LORA, settings=SETTINGS, progress=False)


def _negatives() -> list[TrainExample]:
    """Thumbs-down answers with nothing better to pair them with (pairs.jsonl rows with `chosen: null`)."""
    return [TrainExample(prompt=[{"role": "user", "content": q}], chosen=None, rejected=bad, id=f"neg{i}")
            for i, (q, _, bad) in enumerate(QA[:2])]


def _lora_weights(trainer) -> dict:
    """The adapter's weights under the names `save_pretrained` writes them with."""
    return {n.replace(".default.", "."): p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("objective", ["edit_sft", "edit_dpo", "early_ensemble", "kto"])
def test_learner_trains_and_saves_an_adapter_that_moved(objective, tiny_lm_dir, tmp_path):
    from safetensors.torch import load_file

    examples = _examples() + (_negatives() if objective == "kto" else [])
    settings = TrainSettings(epochs=1, batch_size=1, learning_rate=5e-3, max_prompt_tokens=48, max_answer_tokens=16)
    trainer, record = build_trainer(tiny_lm_dir, examples, objective, tmp_path, lora=LORA, settings=settings,
                                    progress=False)
    initial = _lora_weights(trainer)
    trainer.train()
    assert [p.name for p in record["epoch_dirs"]] == ["epoch-1"]
    assert len(record["losses"]) == 1 and math.isfinite(record["losses"][0])
    saved = load_file(str(record["epoch_dirs"][0] / "adapter_model.safetensors"))
    assert saved.keys() == initial.keys()
    moved = [n for n, t in saved.items() if not (t == initial[n]).all()]
    assert any("lora_B" in n for n in moved), f"{objective}: no LoRA B matrix was updated"


def test_edit_dpo_leaves_out_examples_without_a_distinct_rejected_answer(tiny_lm_dir, tmp_path):
    examples = _examples()
    examples[0].rejected = None
    examples[1].rejected = examples[1].chosen  # an approval: nothing to prefer
    settings = TrainSettings(epochs=1, batch_size=2, learning_rate=5e-3, max_prompt_tokens=48, max_answer_tokens=16)
    result = train_adapter(tiny_lm_dir, examples, "edit_dpo", tmp_path / "a", lora=LORA, settings=settings,
                           progress=False)
    assert result.n_examples == 2 and math.isfinite(result.final_loss)
    assert "rewards/margins" in result.metrics
    with pytest.raises(ConfigError, match="edit_dpo.*differs"):
        train_adapter(tiny_lm_dir, examples[:2], "edit_dpo", tmp_path / "b", lora=LORA, settings=settings,
                      progress=False)


def test_kto_learns_from_both_kinds_and_refuses_one_kind_alone(tiny_lm_dir, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=1, learning_rate=5e-3, max_prompt_tokens=48, max_answer_tokens=16)
    result = train_adapter(tiny_lm_dir, _examples()[:2] + _negatives(), "kto", tmp_path / "ok", lora=LORA,
                           settings=settings, progress=False)
    assert result.objective == "kto" and result.n_examples == 4 and math.isfinite(result.final_loss)
    assert "kl" in result.metrics  # TRL's KTO metrics of the last epoch
    approvals = [TrainExample(prompt=e.prompt, chosen=e.chosen, rejected=e.chosen, id=e.id) for e in _examples()]
    with pytest.raises(ConfigError, match="kto.*4 desirable and 0 undesirable"):
        train_adapter(tiny_lm_dir, approvals, "kto", tmp_path / "good", lora=LORA, settings=settings, progress=False)
    with pytest.raises(ConfigError, match="kto.*0 desirable and 2 undesirable"):
        train_adapter(tiny_lm_dir, _negatives(), "kto", tmp_path / "bad", lora=LORA, settings=settings, progress=False)


@pytest.mark.parametrize("objective", ["sft", "edit_dpo", "dpo_sft"])
def test_negatives_are_refused_by_objectives_that_need_a_chosen_answer(objective, tiny_lm_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"'{objective}'.*neg0"):
        train_adapter(tiny_lm_dir, _examples() + _negatives(), objective, tmp_path, lora=LORA, settings=SETTINGS,
                      progress=False)


def test_no_examples_is_a_config_error(tiny_lm_dir, tmp_path):
    with pytest.raises(ConfigError, match="no training examples"):
        train_adapter(tiny_lm_dir, [], "sft", tmp_path, lora=LORA, settings=SETTINGS, progress=False)


def test_length_limits_keep_prompt_end_and_answer_start():
    seen = []
    collate = _TruncatingCollator(seen.extend, TrainSettings(max_prompt_tokens=3, max_answer_tokens=2))
    collate([{"prompt_ids": [1, 2, 3, 4, 5], "chosen_ids": [6, 7, 8], "rejected_ids": [9]}])
    assert seen[-1] == {"prompt_ids": [3, 4, 5], "chosen_ids": [6, 7], "rejected_ids": [9]}
    collate([{"input_ids": [1, 2, 3, 4, 5, 6, 7, 8], "labels": [-100] * 5 + [6, 7, 8]}])
    assert seen[-1] == {"input_ids": [3, 4, 5, 6, 7], "labels": [-100, -100, -100, 6, 7]}
    collate([{"prompt_ids": [1, 2, 3, 4], "completion_ids": [6, 7, 8], "KL_completion_ids": [9, 10, 11], "label": True}])
    assert seen[-1] == {"prompt_ids": [2, 3, 4], "completion_ids": [6, 7], "KL_completion_ids": [9, 10], "label": True}


def test_long_prompts_are_truncated_in_training(tiny_lm_dir, tmp_path):
    long = [TrainExample(prompt=[{"role": "user", "content": "steps rules answer " * 200}], chosen="Paris " * 50,
                         rejected="no " * 50, id="long")] * 2
    settings = TrainSettings(epochs=1, batch_size=2, max_prompt_tokens=32, max_answer_tokens=8)
    result = train_adapter(tiny_lm_dir, long, "dpo_sft", tmp_path, lora=LORA, settings=settings, progress=False)
    # one step over 2 pairs: 4 sequences of at most 32 + 8 tokens
    assert 0 < result.tokens <= 4 * (32 + 8)


# -- registry -----------------------------------------------------------------------------------------


def _fake_adapter(directory: Path, payload: bytes = b"weights-v1") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text(json.dumps({"r": 4, "peft_type": "LORA"}))
    (directory / "adapter_model.safetensors").write_bytes(payload)
    return directory


def _manifest(base_model: str = "tiny-base", metrics: dict | None = None) -> dict:
    return build_manifest(role="expert", cluster_id="c1", base_model=base_model, objective="dpo_sft",
                          lora=LORA, train=SETTINGS, data_hash=examples_fingerprint(_examples()),
                          metrics=metrics or {"win_rate": 0.6})


def test_publish_then_validate_a_trained_adapter(expert, tmp_path):
    root = tmp_path / "adapters"
    path = publish_adapter(root, "c1", "expert", expert.epoch_dirs[-1], _manifest())
    assert path == root / "c1" / "expert"
    manifest = validate_adapter(path, "tiny-base")
    assert manifest["role"] == "expert" and manifest["cluster_id"] == "c1"
    assert manifest["base_model"] == "tiny-base" and manifest["objective"] == "dpo_sft"
    assert manifest["lora"]["target_modules"] == list(LORA.target_modules)
    assert manifest["train"]["epochs"] == SETTINGS.epochs and manifest["metrics"] == {"win_rate": 0.6}
    assert manifest["data_hash"] == examples_fingerprint(_examples()) and manifest["version"] and manifest["created"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(manifest["files"])
    assert load_manifest(path) == manifest == load_manifest(path / "manifest.json")
    assert [p.name for p in (root / "c1").iterdir()] == ["expert"]  # no temp or old dirs left


def test_tampered_file_fails_validation(tmp_path):
    path = publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "src"), _manifest())
    (path / "adapter_model.safetensors").write_bytes(b"weights-evil")
    with pytest.raises(ArtifactError, match="adapter_model.safetensors") as info:
        validate_adapter(path, "tiny-base")
    assert "uno-graph learn" in str(info.value)


def test_missing_file_directory_or_manifest_fails_validation(tmp_path):
    path = publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "src"), _manifest())
    (path / "adapter_config.json").unlink()
    with pytest.raises(ArtifactError, match="adapter_config.json.*missing"):
        validate_adapter(path, "tiny-base")
    with pytest.raises(ArtifactError, match="does not exist"):
        validate_adapter(tmp_path / "c9" / "critic", "tiny-base")
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json"):
        validate_adapter(path, "tiny-base")


def test_wrong_base_model_fails_validation(tmp_path):
    path = publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "src"), _manifest())
    with pytest.raises(ArtifactError, match="other-model") as info:
        validate_adapter(path, "other-model")
    assert "tiny-base" in str(info.value)


def test_list_adapters_ignores_leftover_temp_dirs(tmp_path):
    publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "src"), _manifest())
    critic = {**_manifest(), "role": "critic", "objective": "sft"}
    publish_adapter(tmp_path, "c2", "critic", _fake_adapter(tmp_path / "src2"), critic)
    leftover = _fake_adapter(tmp_path / "c1" / ".critic.tmp-dead")  # a publish killed mid-copy
    (leftover / "manifest.json").write_text(json.dumps({"role": "critic"}))
    _fake_adapter(tmp_path / ".hidden-cluster" / "expert")
    found = list_adapters(tmp_path)
    assert [(m["cluster_id"], m["role"]) for m in found] == [("c1", "expert"), ("c2", "critic")]
    assert found[0]["path"] == str(tmp_path / "c1" / "expert")
    assert list_adapters(tmp_path / "missing") == []


def test_republish_replaces_the_adapter(tmp_path):
    publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "v1", b"weights-v1"), _manifest())
    path = publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "v2", b"weights-v2"),
                           _manifest(metrics={"win_rate": 0.7}))
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights-v2"
    assert validate_adapter(path, "tiny-base")["metrics"] == {"win_rate": 0.7}
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["expert"]


def test_failed_republish_keeps_the_old_adapter(tmp_path, monkeypatch):
    path = publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "v1", b"weights-v1"), _manifest())
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name.startswith(".expert.tmp-"):
            raise OSError("disk full")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        publish_adapter(tmp_path, "c1", "expert", _fake_adapter(tmp_path / "v2", b"weights-v2"), _manifest())
    monkeypatch.undo()
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights-v1"
    validate_adapter(path, "tiny-base")
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["expert"]  # temp and aside dirs cleaned up


def test_publish_rejects_bad_role_and_non_adapter_source(tmp_path):
    with pytest.raises(ConfigError, match="role"):
        publish_adapter(tmp_path, "c1", "judge", _fake_adapter(tmp_path / "src"), _manifest())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="adapter_config.json"):
        publish_adapter(tmp_path, "c1", "expert", tmp_path / "empty", _manifest())


def test_average_adapter_is_the_mean_of_its_parts_weight_changes(tiny_lm_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from uno_graph.adapters.average import average_adapters

    examples = [TrainExample(prompt=e.prompt, chosen=e.chosen, id=e.id) for e in _examples()]
    settings = TrainSettings(epochs=1, batch_size=1, learning_rate=5e-3)
    parts = [train_adapter(tiny_lm_dir, examples[k:] + examples[:k], "sft", tmp_path / f"part{k}", lora=LORA,
                           settings=TrainSettings(**{**vars(settings), "seed": k}), progress=False).epoch_dirs[-1]
             for k in range(3)]
    out = average_adapters(tiny_lm_dir, parts, tmp_path / "average")

    def merged_weights(adapter_dir):
        base = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), torch_dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        return {k: v.clone() for k, v in model.state_dict().items()}

    base = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), torch_dtype=torch.float32).state_dict()
    deltas = [{k: w[k] - base[k] for k in base} for w in map(merged_weights, parts)]
    averaged = merged_weights(out)
    changed = [k for k in base if deltas[0][k].abs().max() > 0]
    assert changed and all("proj" in k for k in changed)
    for k in changed:
        mean = sum(d[k] for d in deltas) / 3
        assert torch.allclose(averaged[k] - base[k], mean, atol=1e-6)
    assert (out / "adapter_config.json").is_file() and not (out / "average").exists()
