"""PEFT LoRA adapter -> GGUF LoRA adapter (what llama.cpp loads with `--lora`), cached by content hash.

A PEFT adapter trained on the Hugging Face layout of a Llama model stores, per projection,
``lora_A`` (r × in) and ``lora_B`` (out × r); PEFT adds ``B @ A · alpha / r`` to the weight.
llama.cpp's GGUF adapter format stores the same two matrices under the base tensor's name
(``blk.N.attn_q.weight.lora_a`` / ``.lora_b``) and scales by ``adapter.lora.alpha / r`` itself.

One layout detail differs: llama.cpp's converter reorders the rows of the Llama q/k projections
into its rotary order (`permute` below, as `convert_hf_to_gguf.py` does to ``q_proj``/``k_proj``),
so the rows of those ``lora_B`` matrices (the output dimension) get the same permutation; ``lora_A``
acts on the input dimension and stays as it is.

    >>> from uno_graph.engines.gguf_lora import ensure_gguf_lora
    >>> gguf_file = ensure_gguf_lora("runs/demo/adapters/c1/expert", n_head=9, n_head_kv=3)  # doctest: +SKIP

Converted files live in ``<cache>/lora-gguf/<sha256>.gguf`` (`uno_graph.models.cache_dir`), keyed by
the adapter's files, the head counts and the converter version: a retrained adapter gets a new
file, an unchanged one is converted once per machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uno_graph.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
"""Bumped whenever the output of `convert_peft_lora` changes (it is part of the cache key)."""

# Hugging Face Llama module -> llama.cpp tensor base name (gguf.TENSOR_NAMES for MODEL_ARCH.LLAMA)
PROJECTIONS: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
_KEY = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(?:self_attn|mlp)\.("
    + "|".join(PROJECTIONS) + r")\.lora_([AB])(?:\.[^.]+)?\.weight$"
)


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's q/k row order for Llama models (`LlamaModel.permute` in `convert_hf_to_gguf.py`):
    within each head, the rotary halves ``[0:d/2]`` / ``[d/2:d]`` become interleaved pairs.
    Acts on the first (output) dimension; `n_head_kv` (if it differs) sets the head count, as for k."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = weights.shape[0]
    if rows % (2 * n_head):
        raise ConfigError(f"cannot permute {rows} rows into {n_head} heads of two rotary halves")
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def unpermute(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """The inverse of `permute` (llama.cpp row order back to the Hugging Face one)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = weights.shape[0]
    return (weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


@dataclass(frozen=True)
class HeadCounts:
    """What the q/k permutation needs to know about the base model."""

    n_head: int
    n_head_kv: int

    @classmethod
    def from_hf_config(cls, config: dict[str, Any] | str | Path) -> HeadCounts:
        """From a Hugging Face `config.json` (a dict, the file, or its directory)."""
        if not isinstance(config, dict):
            path = Path(config)
            path = path / "config.json" if path.is_dir() else path
            config = json.loads(path.read_text(encoding="utf-8"))
        n_head = int(config["num_attention_heads"])
        return cls(n_head, int(config.get("num_key_value_heads") or n_head))

    @classmethod
    def from_gguf(cls, path: str | Path) -> HeadCounts:
        """From a base model GGUF's metadata (``<arch>.attention.head_count[_kv]``)."""
        return base_model_info(path).heads


@dataclass(frozen=True)
class TensorLayout:
    """Where a tensor's data sits in a GGUF file: its GGML type, absolute byte offset and size."""

    qtype: Any  # gguf.GGMLQuantizationType
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class BaseModelInfo:
    """What the LoRA side needs from a base model GGUF: architecture, head counts, tensor shapes (GGML
    order), and each tensor's place in the file (for merging an adapter into a copy of it)."""

    arch: str
    heads: HeadCounts
    shapes: dict[str, tuple[int, ...]]
    layout: dict[str, TensorLayout] = field(default_factory=dict)


def base_model_info(path: str | Path) -> BaseModelInfo:
    """Read once per file version (parsing a GGUF's 49k-token vocabulary takes seconds)."""
    path = Path(path)
    st = path.stat()
    return _base_model_info(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _base_model_info(path: str, mtime_ns: int, size: int) -> BaseModelInfo:
    import gguf

    reader = gguf.GGUFReader(path)

    def value_of(key: str) -> Any:
        value = reader.fields.get(key)
        return None if value is None else value.contents()

    arch = str(value_of("general.architecture"))
    n_head = int(value_of(f"{arch}.attention.head_count"))
    n_head_kv = int(value_of(f"{arch}.attention.head_count_kv") or n_head)
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    layout = {t.name: TensorLayout(t.tensor_type, int(t.data_offset), int(t.n_bytes)) for t in reader.tensors}
    return BaseModelInfo(arch=arch, heads=HeadCounts(n_head, n_head_kv), shapes=shapes, layout=layout)


def gguf_metadata(path: str | Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The given metadata keys of a GGUF file (missing keys are left out)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key in keys:
        entry = reader.fields.get(key)
        if entry is not None:
            out[key] = entry.contents()
    return out


# -- reading a PEFT adapter ------------------------------------------------------------------------


def _adapter_files(adapter_dir: Path) -> tuple[Path, Path]:
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise ArtifactError(f"{str(adapter_dir)!r} is not a PEFT LoRA adapter directory (no adapter_config.json)")
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (adapter_dir / name).is_file():
            return config, adapter_dir / name
    raise ArtifactError(f"the adapter directory {str(adapter_dir)!r} has no adapter_model.safetensors or .bin")


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(path)).items()}
        except TypeError:  # bfloat16 has no numpy dtype: go through torch
            pass
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as load_torch

        tensors = load_torch(str(path))
    else:
        tensors = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v.to(torch.float32).numpy() for k, v in tensors.items()}


def _scales(config: dict[str, Any], ranks: dict[str, int]) -> dict[str, float]:
    """PEFT's scaling factor per module name (``alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA)."""
    alpha = float(config.get("lora_alpha", 8))
    alpha_pattern = config.get("alpha_pattern") or {}
    out = {}
    for module, rank in ranks.items():
        a = alpha
        for pattern, value in alpha_pattern.items():  # PEFT matches a pattern against the module name's end
            if re.search(rf"(^|\.){pattern}$", module):
                a = float(value)
        out[module] = a / (rank ** 0.5) if config.get("use_rslora") else a / rank
    return out


def convert_peft_lora(adapter_dir: str | Path, out_path: str | Path, heads: HeadCounts, *,
                      arch: str = "llama") -> Path:
    """Write the PEFT LoRA adapter in `adapter_dir` as a GGUF LoRA adapter at `out_path`.

    Every ``lora_A``/``lora_B`` pair becomes ``blk.N.<tensor>.weight.lora_a`` / ``.lora_b`` (float32);
    q and k ``lora_B`` rows are permuted into llama.cpp's rotary order. The file carries
    ``general.type = adapter``, ``adapter.type = lora`` and ``adapter.lora.alpha``. If PEFT's scaling
    is not ``alpha / r`` for one alpha (rsLoRA, `alpha_pattern`), each ``lora_B`` is rescaled so that
    llama.cpp's ``alpha / r`` gives PEFT's product exactly.

    Raises `ConfigError` for what llama.cpp's LoRA cannot express here (DoRA, trained biases,
    `modules_to_save`, modules other than the seven Llama projections, another architecture).
    """
    import gguf

    adapter_dir = Path(adapter_dir)
    config_file, weights_file = _adapter_files(adapter_dir)
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if arch != "llama":
        raise ConfigError(f"converting LoRA adapters for architecture {arch!r} is not supported (llama only)")
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"{adapter_dir} is a {config.get('peft_type')} adapter; only LoRA converts to GGUF")
    if config.get("use_dora"):
        raise ConfigError(f"{adapter_dir} is a DoRA adapter; llama.cpp's LoRA cannot apply its magnitude vectors")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise ConfigError(f"{adapter_dir} trains biases or whole modules (bias / modules_to_save); "
                          "a GGUF LoRA holds only the low-rank pairs")

    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in _load_weights(weights_file).items():
        match = _KEY.match(key)
        if match is None:
            raise ConfigError(f"{adapter_dir}: tensor {key!r} is not a LoRA pair of a Llama projection "
                              f"({', '.join(PROJECTIONS)}); it cannot be converted")
        layer, module, which = int(match.group(1)), match.group(2), match.group(3)
        pairs.setdefault((layer, module), {})[which] = value
    if not pairs:
        raise ArtifactError(f"{adapter_dir}: the adapter holds no LoRA tensors")

    ranks = {}
    for (layer, module), ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ArtifactError(f"{adapter_dir}: layer {layer} {module} lacks lora_{'B' if 'A' in ab else 'A'}")
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ArtifactError(f"{adapter_dir}: layer {layer} {module}: lora_A {a.shape} and lora_B {b.shape} "
                                "do not form a rank-r pair")
        ranks[f"model.layers.{layer}.{module}"] = a.shape[0]
    scales = _scales(config, ranks)
    alpha = float(config.get("lora_alpha", 8))
    exact = all(abs(scales[m] - alpha / r) <= 1e-12 * max(1.0, alpha / r) for m, r in ranks.items())

    out_path = Path(out_path)
    writer = gguf.GGUFWriter(str(out_path), arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for (layer, module), ab in sorted(pairs.items()):
        a, b = ab["A"], ab["B"]
        if not exact:  # fold PEFT's own factor in: llama.cpp multiplies by alpha / r
            b = b * (scales[f"model.layers.{layer}.{module}"] * a.shape[0] / alpha)
        if module == "q_proj":
            b = permute(b, heads.n_head, heads.n_head)
        elif module == "k_proj":
            b = permute(b, heads.n_head, heads.n_head_kv)
        name = f"blk.{layer}.{PROJECTIONS[module]}.weight"
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return out_path


# -- the cache ---------------------------------------------------------------------------------------


def adapter_hash(adapter_dir: str | Path, heads: HeadCounts) -> str:
    """sha256 of what the converted file depends on: the adapter's config and weights, the head
    counts and the converter version."""
    config_file, weights_file = _adapter_files(Path(adapter_dir))
    digest = hashlib.sha256(f"uno-graph-lora-gguf:{CONVERTER_VERSION}:{heads.n_head}:{heads.n_head_kv}\n".encode())
    for path in (config_file, weights_file):
        digest.update(f"{path.name}\n".encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def gguf_cache_dir() -> Path:
    from uno_graph.models import cache_dir

    return cache_dir() / "lora-gguf"


@contextmanager
def writing_into(target: Path, *, prefix: str) -> Iterator[str]:
    """A hidden temporary path beside `target` to write a cached file to: renamed onto `target` when the
    block ends, removed when it raises, so `target` only ever names a complete file (across processes too)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_gguf_lora(adapter_dir: str | Path, heads: HeadCounts | None = None, *, n_head: int | None = None,
                     n_head_kv: int | None = None, cache: str | Path | None = None) -> Path:
    """The GGUF version of the PEFT adapter in `adapter_dir`, converting it unless the cache has it.

    Give the base model's head counts as `heads` or `n_head`/`n_head_kv`. The file is written under
    a temporary name and renamed into place, so concurrent processes never read half a file.
    """
    if heads is None:
        if n_head is None:
            raise ConfigError("ensure_gguf_lora needs the base model's head counts (heads= or n_head=)")
        heads = HeadCounts(n_head, n_head_kv or n_head)
    root = Path(cache) if cache is not None else gguf_cache_dir()
    target = root / f"{adapter_hash(adapter_dir, heads)}.gguf"
    if target.is_file():
        return target
    with writing_into(target, prefix=f".{target.stem[:16]}.") as tmp:
        convert_peft_lora(adapter_dir, tmp, heads)
    log.info("converted LoRA adapter %s to %s", adapter_dir, target)
    return target


def convert_on_publish(adapter_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """Publish hook (see `uno_graph.adapters.registry`): convert a just-published adapter for the
    llama.cpp engine, so serving with ``backend="llamacpp"`` finds it in the cache.

    The head counts come from the manifest's base model (its Hugging Face `config.json`: the cached
    default model, or the local model directory). Returns the GGUF path, or None when that config is
    not on this machine (nothing is downloaded or converted for it) or the model is not a Llama.
    """
    from uno_graph.config import DEFAULT_MODEL
    from uno_graph.models import cache_dir

    base = str(manifest.get("base_model") or "")
    if not base:
        return None
    config_file = (cache_dir() / "models" / DEFAULT_MODEL if base == DEFAULT_MODEL else Path(base)) / "config.json"
    if not config_file.is_file():
        log.debug("not converting %s to GGUF: no config.json for base model %r here", adapter_dir, base)
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        log.debug("not converting %s to GGUF: base model type %r is not llama", adapter_dir, config.get("model_type"))
        return None
    return ensure_gguf_lora(adapter_dir, HeadCounts.from_hf_config(config))


__all__ = ["CONVERTER_VERSION", "PROJECTIONS", "BaseModelInfo", "HeadCounts", "TensorLayout", "adapter_hash", "base_model_info", "convert_on_publish",
           "convert_peft_lora", "ensure_gguf_lora", "gguf_cache_dir", "gguf_metadata", "permute", "unpermute"]
