"""A GGUF LoRA adapter merged into its base model's GGUF: one model file per adapter, cached by content hash.

llama.cpp applies a runtime LoRA as two extra small matrix products per projection per token, and
batches only the slots that use the same adapter settings. A merged file ``W' = W + scale · B·A``
runs at the base model's speed instead, in a server of its own (see the ``merge_adapters`` option of
`uno_graph.engines.llamacpp.LlamaCppEngine`).

The merge reads the adapter's GGUF LoRA (`uno_graph.engines.gguf_lora`), whose ``lora_b`` rows
already carry llama.cpp's rotary q/k row order, so ``B·A`` is added to the base tensor as stored.
Each merged tensor is dequantized with `gguf.quants`, summed with the delta in float32 and quantized
again. Its type (`merge_lora_into_gguf`'s ``qtype``):

* default: F32, F16, BF16 and Q8_0 tensors keep their type; coarser ones (the embedded model's Q4_1,
  other 4/5-bit and K-quants) become Q8_0. A LoRA's delta is small next to a 4-bit grid's step
  (about half a step for a r16 adapter on the 135M model): requantized to Q4_1, most of it is rounded
  away (the merged model's log-prob shift correlates ~0.7 with the runtime LoRA's), in Q8_0 it stays
  (~0.98). On the 135M model a Q8_0 file is 145 MB instead of 98 MB and decodes as fast on a CPU.
* ``"base"``: every tensor keeps the base's type (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/F16/F32/BF16; types
  gguf-py cannot quantize raise `ConfigError`); the file is then a byte copy of the base with the
  merged tensors rewritten in place (same size).
* a type name (``"Q8_0"``, ``"F16"``): that type for every merged tensor.

Metadata, vocabulary and every other tensor are copied from the base.

    >>> from uno_graph.engines.gguf_merge import ensure_merged_gguf
    >>> merged = ensure_merged_gguf(base_gguf_path, lora_gguf_path)  # doctest: +SKIP

Files live in ``<cache>/merged-gguf/<sha256>.gguf``, keyed by the base file's bytes, the LoRA
file's bytes, the scale, the type choice and `MERGE_VERSION`; each is written under a hidden temporary name and
renamed into place, so a reader never sees half a file (a killed writer leaves only its temporary
file, removed by the next merge of the same adapter).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from uno_graph.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

MERGE_VERSION = "1"
"""Bumped whenever the output of `merge_lora_into_gguf` changes (it is part of the cache key)."""


def merged_cache_dir() -> Path:
    """``<cache>/merged-gguf``, next to the GGUF LoRA cache (`uno_graph.engines.gguf_lora.gguf_cache_dir`)."""
    from uno_graph.models import cache_dir

    return cache_dir() / "merged-gguf"


@functools.lru_cache(maxsize=None)
def _requantizable(qtype: Any) -> bool:
    """Whether `gguf.quants` can quantize to `qtype` (K- and IQ-quants it only dequantizes)."""
    import gguf

    block = gguf.GGML_QUANT_SIZES[qtype][0]
    try:
        gguf.quants.quantize(np.zeros((1, block), dtype=np.float32), qtype)
    except NotImplementedError:
        return False
    return True


def _lora_pairs(lora_file: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """{base tensor name: (A (r × in), B (out × r))} of a GGUF LoRA file, and its ``adapter.lora.alpha``."""
    import gguf

    reader = gguf.GGUFReader(str(lora_file))
    kind = reader.fields.get(gguf.Keys.General.TYPE)
    if kind is None or kind.contents() != gguf.GGUFType.ADAPTER:
        raise ArtifactError(f"{lora_file} is not a GGUF adapter (general.type is not 'adapter')")
    field = reader.fields.get(gguf.Keys.Adapter.LORA_ALPHA)
    alpha = float(field.contents()) if field is not None else 0.0
    tensors = {t.name: t for t in reader.tensors}
    pairs = {}
    for name, tensor in tensors.items():
        if not name.endswith(".lora_a"):
            continue
        target = name[: -len(".lora_a")]
        b = tensors.get(target + ".lora_b")
        if b is None:
            raise ArtifactError(f"{lora_file}: {target} has lora_a but no lora_b")
        pairs[target] = (gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(tensor.data.shape[0], -1),
                         gguf.quants.dequantize(b.data, b.tensor_type).reshape(b.data.shape[0], -1))
    if not pairs:
        raise ArtifactError(f"{lora_file} holds no LoRA pairs")
    return pairs, alpha


def _merged_tensor(raw: np.ndarray, qtype: Any, a: np.ndarray, b: np.ndarray, factor: float, out_type: Any) -> np.ndarray:
    """``W + factor · B·A`` for the stored bytes `raw` of W (type `qtype`), quantized to `out_type`."""
    import gguf

    rows, cols = b.shape[0], a.shape[1]
    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        stored = raw.view(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16)
    else:
        stored = raw.reshape(rows, -1)
    weights = gguf.quants.dequantize(stored, qtype).reshape(rows, cols)
    merged = weights + (b @ a) * np.float32(factor)
    return np.ascontiguousarray(gguf.quants.quantize(merged.astype(np.float32, copy=False), out_type))


def merge_lora_into_gguf(base_file: str | Path, lora_file: str | Path, out_file: str | Path, *,
                         scale: float = 1.0, qtype: str | None = None) -> dict[str, Any]:
    """Write `base_file` with the GGUF LoRA `lora_file` merged in (at `scale`, as llama.cpp's
    ``--lora-scaled``) to `out_file`. Returns what was done: merged tensors, their types, seconds.

    llama.cpp scales each pair by ``scale · alpha / r`` (just ``scale`` when the file's alpha is 0);
    the merge adds exactly that times ``B·A``. The type of the merged tensors: `qtype` ``"base"``
    keeps each base tensor's own; a type name (``"Q8_0"``, ``"F16"``, ...) sets it; None (auto) keeps
    F32/F16/BF16/Q8_0 and makes every coarser type Q8_0 (a 4- or 5-bit grid would round most of a
    LoRA's delta away). When every type is kept the file is the base's bytes with the merged tensors
    rewritten in place; otherwise it is rewritten (every other tensor and all metadata copied).
    Raises `ConfigError` when a type cannot be quantized by `gguf.quants`, `ArtifactError` when the
    adapter does not fit the base.
    """
    import gguf

    from uno_graph.engines.gguf_lora import base_model_info

    start = time.perf_counter()
    base_file, out_file = Path(base_file), Path(out_file)
    pairs, alpha = _lora_pairs(Path(lora_file))
    info = base_model_info(base_file)  # parsed once per file version (the engine has parsed it already)
    fine = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16,
            gguf.GGMLQuantizationType.Q8_0)
    kind = (qtype or "auto").upper()
    try:
        target_type = None if kind in ("AUTO", "BASE") else gguf.GGMLQuantizationType[kind]
    except KeyError:
        raise ConfigError(f"unknown GGML type {qtype!r} for merged tensors (e.g. 'Q8_0', 'F16', 'base')") from None

    def out_type_of(stored: Any) -> Any:
        if kind == "BASE":
            return stored
        if kind == "AUTO":
            return stored if stored in fine else gguf.GGMLQuantizationType.Q8_0
        return target_type

    for name, (a, b) in pairs.items():
        shape, place = info.shapes.get(name), info.layout.get(name)
        if shape is None or place is None or len(shape) != 2:
            raise ArtifactError(f"{lora_file}: {name} is not a matrix of {base_file.name}")
        cols, rows = shape  # GGML order: (in, out)
        if a.shape[1] != cols or b.shape[0] != rows or a.shape[0] != b.shape[1]:
            raise ArtifactError(f"{lora_file}: {name} is {rows}×{cols} in {base_file.name}, the adapter has "
                                f"lora_a {a.shape[::-1]}, lora_b {b.shape[::-1]} (another base model?)")
        if not _requantizable(out_type_of(place.qtype)):
                raise ConfigError(f"cannot merge an adapter into {base_file.name}: {name} would be "
                                  f"{out_type_of(place.qtype).name}, "
                                  "which gguf-py cannot quantize (use an F16, Q8_0, Q4_0/Q4_1 or Q5_0/Q5_1 GGUF, "
                                  "or runtime LoRA)")
    types: dict[str, int] = {}

    def merged(name: str, raw: np.ndarray) -> np.ndarray:
        a, b = pairs[name]
        place = info.layout[name]
        factor = scale * alpha / a.shape[0] if alpha else scale
        out_type = out_type_of(place.qtype)
        types[out_type.name] = types.get(out_type.name, 0) + 1
        return _merged_tensor(raw, place.qtype, a, b, factor, out_type)

    if all(out_type_of(info.layout[n].qtype) == info.layout[n].qtype for n in pairs):
        # same types, same sizes: a copy of the base with the adapted tensors' bytes rewritten in place
        shutil.copyfile(base_file, out_file)
        with base_file.open("rb") as src, out_file.open("r+b") as fh:
            for name in sorted(pairs):
                place = info.layout[name]
                src.seek(place.offset)
                data = merged(name, np.frombuffer(src.read(place.n_bytes), dtype=np.uint8))
                if data.nbytes != place.n_bytes:  # pragma: no cover - gguf-py's own invariant
                    raise ArtifactError(f"requantized {name} is {data.nbytes} bytes, the base tensor {place.n_bytes}")
                fh.seek(place.offset)
                fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
    else:
        _rewrite(base_file, out_file, info.arch, {n: (merged, out_type_of(info.layout[n].qtype)) for n in pairs})
    return {"tensors": len(pairs), "types": types, "seconds": round(time.perf_counter() - start, 3)}


def _rewrite(base_file: Path, out_file: Path, arch: str, replace: dict[str, tuple[Any, Any]]) -> None:
    """A new GGUF: the base's metadata and tensors, with ``make(name, raw bytes)`` of type ``out_type``
    for each ``replace[name] = (make, out_type)``."""
    import gguf

    reader = gguf.GGUFReader(str(base_file))
    writer = gguf.GGUFWriter(str(out_file), arch=arch)
    for entry in reader.fields.values():
        if entry.name == gguf.Keys.General.ARCHITECTURE or entry.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        kind = entry.types[0]
        sub = entry.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(entry.name, entry.contents(), kind, sub_type=sub)
    datas = {}
    for tensor in reader.tensors:
        if tensor.name in replace:
            raw = np.asarray(tensor.data).reshape(-1).view(np.uint8)
            make, out_type = replace[tensor.name]
            data = datas[tensor.name] = make(tensor.name, raw)
            writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, out_type)
        else:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                                   tensor.tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in reader.tensors:
            writer.write_tensor_data(datas.get(tensor.name, tensor.data))
        writer.fout[0].flush()
        os.fsync(writer.fout[0].fileno())
    finally:
        writer.close()


# -- the cache ---------------------------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    st = path.stat()
    return _file_digest_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _file_digest_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def merged_hash(base_file: str | Path, lora_file: str | Path, scale: float = 1.0, qtype: str | None = None) -> str:
    """sha256 of what a merged file depends on: both files' bytes, the scale, the merged tensors'
    type and the merge version."""
    kind = qtype.upper() if qtype else "AUTO"
    digest = hashlib.sha256(f"uno-graph-merged-gguf:{MERGE_VERSION}:{float(scale)!r}:{kind}\n".encode())
    digest.update(_file_digest(Path(base_file)).encode())
    digest.update(_file_digest(Path(lora_file)).encode())
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _remove_dead_temps(root: Path, stem: str) -> None:
    """Temporary files of this merge left by writers that no longer run (killed mid-write)."""
    for tmp in root.glob(f".{stem}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            tmp.unlink(missing_ok=True)


def ensure_merged_gguf(base_file: str | Path, lora_file: str | Path, *, scale: float = 1.0,
                       qtype: str | None = None, cache: str | Path | None = None) -> Path:
    """The merged GGUF of `lora_file` on `base_file`, merging it unless the cache has it.

    Written to a hidden temporary file in the cache directory, synced, then renamed into place:
    the returned path only ever names a complete file, also across processes.
    """
    root = Path(cache) if cache is not None else merged_cache_dir()
    key = merged_hash(base_file, lora_file, scale, qtype)
    target = root / f"{key}.gguf"
    if target.is_file():
        return target
    from uno_graph.engines.gguf_lora import writing_into

    root.mkdir(parents=True, exist_ok=True)
    stem = key[:16]
    _remove_dead_temps(root, stem)
    with writing_into(target, prefix=f".{stem}.{os.getpid()}.") as tmp:
        stats = merge_lora_into_gguf(base_file, lora_file, tmp, scale=scale, qtype=qtype)
    log.info("merged LoRA %s into %s: %s (%d tensors, %.1f s)", Path(lora_file).name, Path(base_file).name,
             target, stats["tensors"], stats["seconds"])
    return target


__all__ = ["MERGE_VERSION", "ensure_merged_gguf", "merge_lora_into_gguf", "merged_cache_dir", "merged_hash"]
