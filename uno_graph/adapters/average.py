"""One adapter that is the average of several LoRA adapters of one base model (a "soup").

The validator trains one adapter per fold, each on the cluster's data less one fold. Their average,
ΔW = (1/k) Σ B_i A_i in every adapted projection, is exact as one LoRA of rank k·r: the A matrices
stacked, the B matrices side by side (PEFT's `add_weighted_adapter(..., combination_type="cat")`).
Every training example was seen by k - 1 of the k adapters.

    >>> average_adapters("models/base", ["tmp/fold-1", "tmp/fold-2", "tmp/fold-3"], "tmp/average")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from uno_graph.adapters.train import stable_config
from uno_graph.errors import require


def average_adapters(base_path: str | Path, adapter_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write the average of `adapter_dirs` (PEFT LoRA adapters of the model at `base_path`) to `out_dir`."""
    if not adapter_dirs:
        raise ValueError("average_adapters: no adapters given")
    peft = require("peft", "train")
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    base = AutoModelForCausalLM.from_pretrained(str(base_path), torch_dtype=torch.float32)
    names = [f"part{i}" for i in range(len(adapter_dirs))]
    model = peft.PeftModel.from_pretrained(base, str(adapter_dirs[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapter_dirs[1:]):
        model.load_adapter(str(path), adapter_name=name)
    weight = 1.0 / len(adapter_dirs)
    model.add_weighted_adapter(names, [weight] * len(names), adapter_name="average", combination_type="cat")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        model.save_pretrained(tmp, selected_adapters=["average"])
        saved = Path(tmp) / "average"
        stable_config(saved / "adapter_config.json", inference_mode=True)  # the same bytes in every process
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(saved), str(out))
    return out
