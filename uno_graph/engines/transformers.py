"""The transformers + PEFT engine behind `UnoChatModel` (``backend="transformers"``), the reference.

One base model per process (a cache keyed by the resolved model directory, or by the model object
for `loaded=` models), shared by every `UnoChatModel` built on it, with every LoRA adapter loaded
onto it once under its own PEFT name. Choosing an adapter is per call and costs a pointer flip on
each LoRA layer (`_switch`), never a reload; a batch whose rows want different adapters runs as one
PEFT mixed-adapter batch (`adapter_names`). Adapter layers stay disabled between calls, so the base
model object behaves as the base model for anyone else holding it (training, the verifier).

The chat model renders the chat template and tokenizes; this engine generates from token ids, stops
each row on EOS or a stop string (`_StopCriteria`, so padding is never counted), and streams through
transformers' `TextIteratorStreamer` on a worker thread that a cancel event stops.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from uno_graph.engines.base import GenParams, LiveUsers, Row, adapter_key, free_name
from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError
from uno_graph.models import LoadedModel, load_model, quiet_checkpointing_deprecation, resolve_model_path

BASE_ADAPTER = "__base__"
"""Adapter name meaning "the base model" (PEFT's name for it in mixed-adapter batches)."""


@dataclass
class _Slot:
    key: tuple[str, int, int]  # (resolved dir, weights mtime_ns, weights size): a retrained adapter reloads
    path: Path


class _StopCriteria(StoppingCriteria):
    """Per-row stop on EOS or on a stop string; records where each row ended (so padding is never counted)."""

    def __init__(self, prompt_len: int, eos_ids: frozenset[int], stops: list[tuple[str, ...]], tokenizer: Any,
                 cancel: threading.Event | None) -> None:
        self.prompt_len = prompt_len
        self.eos_ids = eos_ids
        self.stops = stops
        self.tokenizer = tokenizer
        self.cancel = cancel
        self.ends: list[int | None] = [None] * len(stops)
        self.reasons: list[str | None] = [None] * len(stops)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        length = input_ids.shape[1]
        cancelled = self.cancel is not None and self.cancel.is_set()
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i in range(input_ids.shape[0]):
            if self.ends[i] is None:
                reason = None
                if int(input_ids[i, -1]) in self.eos_ids:
                    reason = "eos"
                elif self.stops[i]:
                    text = self.tokenizer.decode(input_ids[i, self.prompt_len:].tolist(), skip_special_tokens=True)
                    if any(s in text for s in self.stops[i]):
                        reason = "stop_string"
                if reason is None and cancelled:
                    reason = "cancel"
                if reason is not None:
                    self.ends[i], self.reasons[i] = length, reason
            done[i] = self.ends[i] is not None
        return done


class TransformersEngine:
    """A base model shared by every `UnoChatModel` built on it, plus the LoRA adapters loaded onto it.

    Adapter layers stay *disabled* between calls, so the raw base model object behaves as the base model
    for anyone else holding it; a call enables them under the lock and disables them again afterwards.
    This is the transformers + PEFT implementation of `uno_graph.engines.base.Engine`;
    `uno_graph.engines.llamacpp.LlamaCppEngine` is the other.
    """

    backend = "transformers"

    def __init__(self, loaded: LoadedModel) -> None:
        try:
            from peft import PeftModel
        except ImportError:  # pragma: no cover - peft is a hard dependency
            PeftModel = ()  # noqa: N806
        if PeftModel and isinstance(loaded.model, PeftModel):
            raise ConfigError(
                "UnoChatModel needs the plain base model (e.g. `uno_graph.models.load_model(path)`), not a PeftModel; "
                "save the adapter with `save_pretrained` and pass its directory in `adapters={name: dir}`"
            )
        self.loaded = loaded
        self.root = loaded.model  # identity key; PEFT injects LoRA layers into this object in place
        self.base = loaded.model
        self.tokenizer = loaded.tokenizer
        self.peft: Any = None
        self.lock = threading.Lock()
        self.slots: dict[str, _Slot] = {}
        self._layers: list[Any] | None = None  # PEFT's LoRA layers, cached for the fast adapter switch
        self._active: str | None = None
        self.users = LiveUsers()  # the UnoChatModels on this engine: collect keeps what they name
        self.base.eval()
        eos: set[int] = set()
        gen_eos = getattr(getattr(self.base, "generation_config", None), "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                eos.add(value)
            elif isinstance(value, (list, tuple)):
                eos.update(int(v) for v in value)
        self.eos_ids = frozenset(eos)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(eos) if eos else 0)

    # -- adapters (all under self.lock) ----------------------------------------------------------------

    def acquire(self, path: Path, preferred: str) -> str:
        """The internal PEFT name of the adapter at `path`, loading it unless an identical one is loaded."""
        key = adapter_key(path)
        with self.lock:
            for internal, slot in self.slots.items():
                if slot.key == key:
                    return internal
            internal = self._free_name(preferred)
            self._load(path, internal)
            self.slots[internal] = _Slot(key=key, path=path)
            return internal

    def _free_name(self, preferred: str) -> str:  # PEFT adapter names are module attributes: no "/" or "."
        return free_name(preferred, self.slots, allowed="A-Za-z0-9_-", reserved=BASE_ADAPTER)

    def _load(self, path: Path, internal: str) -> None:
        from peft import PeftModel

        try:
            if self.peft is None:
                with quiet_checkpointing_deprecation():
                    self.peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=internal, is_trainable=False)
            else:
                self.peft.load_adapter(str(path), adapter_name=internal, is_trainable=False)
        except Exception as exc:
            self._discard(internal)
            raise ArtifactError(
                f"could not load the LoRA adapter at {str(path)!r} onto {self.loaded.model_id!r}: {exc}; "
                "the adapters loaded before keep answering"
            ) from exc
        finally:
            self._layers, self._active = None, None
        self.peft.eval()
        self.peft.base_model.disable_adapter_layers()

    def _discard(self, internal: str) -> None:
        """Remove what a failed load of `internal` left in the model.

        PEFT injects an adapter's LoRA layers before it reads the weights, so files that match their
        checksums but not the model (wrong shapes, a module the model lacks) fail half-way: on the first
        adapter the base model is left wrapped in *enabled* LoRA layers holding whatever initial weights
        the config asks for (random ones change every answer, base ones included); on a later one the
        half-made adapter stays in the `PeftModel`.
        """
        from peft.tuners.tuners_utils import BaseTunerLayer

        if self.peft is not None:
            if internal in self.peft.peft_config:
                with warnings.catch_warnings():  # "adapter X was active ... setting active adapter to Y"
                    warnings.simplefilter("ignore", UserWarning)
                    self.peft.delete_adapter(internal)
            self.peft.base_model.disable_adapter_layers()
            return
        for name, module in list(self.base.named_modules()):  # the wrappers the failed PeftModel put in place
            if isinstance(module, BaseTunerLayer):
                parent, _, child = name.rpartition(".")
                setattr(self.base.get_submodule(parent), child, module.get_base_layer())
        if hasattr(self.base, "peft_config"):
            del self.base.peft_config

    def _switch(self, internal: str | None, enabled: bool) -> None:
        """Point every LoRA layer at `internal` and turn the layers on or off.

        PEFT's `set_adapter` / `enable_adapter_layers` walk the whole module tree and reset
        `requires_grad` on every adapter's weights (~30-65 ms with a few adapters on 210 layers); an
        inference-only engine needs neither, so this sets the two attributes PEFT's forward reads.
        """
        if self._layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            self._layers = [m for m in self.peft.modules() if isinstance(m, BaseTunerLayer)]
        if internal is not None and internal != self._active:
            for layer in self._layers:
                layer._active_adapter = internal  # noqa: SLF001 - what BaseTunerLayer.set_adapter assigns
            self.peft.base_model.active_adapter = internal
            self._active = internal
        for layer in self._layers:
            layer._disable_adapters = not enabled  # noqa: SLF001 - what enable_adapters assigns

    def add_user(self, user: Any) -> None:
        with self.lock:
            self.users.add(user)

    def collect(self) -> None:
        """Free the adapters that no live `UnoChatModel` refers to; unwrap PEFT when none is left."""
        with self.lock:
            used = self.users.handles()
            for internal in [name for name in self.slots if name not in used]:
                del self.slots[internal]
                self._layers, self._active = None, None
                if self.slots:
                    with warnings.catch_warnings():  # "adapter X was active ... setting active adapter to Y"
                        warnings.simplefilter("ignore", UserWarning)
                        self.peft.delete_adapter(internal)
                else:
                    self.base = self.peft.base_model.unload()  # removes every LoRA layer, returns the base model
                    self.peft = None

    # -- generation ------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    def generate(self, prompts: list[list[int]], internals: list[str | None], params: GenParams | Sequence[GenParams],
                 stops: list[tuple[str, ...]], *, streamer: Any = None,
                 cancel: threading.Event | None = None) -> list[Row]:
        if not isinstance(params, GenParams):  # one per prompt: a batched generate per distinct setting
            per_item = list(params)
            rows: list[Row | None] = [None] * len(prompts)
            for setting in dict.fromkeys(per_item):
                part = [i for i, p in enumerate(per_item) if p == setting]
                out = self.generate([prompts[i] for i in part], [internals[i] for i in part], setting,
                                    [stops[i] for i in part], streamer=streamer, cancel=cancel)
                for i, row in zip(part, out):
                    rows[i] = row
            return rows  # type: ignore[return-value]
        with self.lock:
            missing = sorted({i for i in internals if i is not None and i not in self.slots})
            if missing:
                raise AdapterNotFoundError(f"adapter(s) {missing} were unloaded while the call was queued")
            wanted = set(internals)
            extra: dict[str, Any] = {}
            if wanted == {None}:
                model = self.base  # adapter layers are disabled at rest: this is the base model
                enabled = False
            else:
                model = self.peft
                if len(wanted) == 1:
                    self._switch(next(iter(wanted)), enabled=True)
                else:
                    extra["adapter_names"] = [i if i is not None else BASE_ADAPTER for i in internals]
                    self._switch(None, enabled=True)
                enabled = True
            try:
                return self._generate_locked(model, prompts, params, stops, streamer, cancel, extra)
            finally:
                if enabled:
                    self._switch(None, enabled=False)

    def _generate_locked(self, model: Any, prompts: list[list[int]], params: GenParams, stops: list[tuple[str, ...]],
                         streamer: Any, cancel: threading.Event | None, extra: dict[str, Any]) -> list[Row]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompts):  # left padding
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids):] = 1
        sampling = params.temperature > 0
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            repetition_penalty=params.repetition_penalty,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids) or None,
            **({"temperature": params.temperature, "top_p": params.top_p, "top_k": 0} if sampling else {}),
        )
        criteria = _StopCriteria(width, self.eos_ids, stops, self.tokenizer, cancel)
        kwargs = dict(input_ids=input_ids, attention_mask=attention, generation_config=config,
                      stopping_criteria=StoppingCriteriaList([criteria]), **extra)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if sampling and params.seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(params.seed)
                out = model.generate(**kwargs)
        else:
            out = model.generate(**kwargs)
        rows = []
        for i in range(len(prompts)):
            end = criteria.ends[i] if criteria.ends[i] is not None else out.shape[1]
            rows.append(Row(ids=out[i, width:end].tolist(), reason=criteria.reasons[i] or "length"))
        return rows

    def stream(self, prompt: list[int], internal: str | None, params: GenParams, stops: tuple[str, ...],
               cancel: threading.Event) -> Iterator[str | Row]:
        """Text pieces as `generate` produces them (in a worker thread), then the finished row."""
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["row"] = self.generate([prompt], [internal], params, [stops], streamer=streamer, cancel=cancel)[0]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                box["error"] = exc
                streamer.end()

        thread = threading.Thread(target=work, name="uno-graph-generate", daemon=True)
        thread.start()
        try:
            yield from streamer
            thread.join()
            if "error" in box:
                raise box["error"]
            yield box["row"]
        finally:
            cancel.set()  # stops generation early if the consumer went away
            thread.join()


_ENGINES: dict[str, TransformersEngine] = {}  # resolved model dir -> engine (process-wide cache)
_ENGINES_BY_OBJECT: dict[int, TransformersEngine] = {}  # id(base model) -> engine, for `loaded=` models
_ENGINES_LOCK = threading.Lock()


def engine_for_path(name_or_path: str) -> TransformersEngine:
    path = resolve_model_path(name_or_path)  # raises ArtifactError for a bad path; converts the default once
    key = str(path.resolve())
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = TransformersEngine(load_model(name_or_path))
            _ENGINES[key] = engine
            _ENGINES_BY_OBJECT[id(engine.root)] = engine
        return engine


def engine_for_loaded(loaded: LoadedModel) -> TransformersEngine:
    with _ENGINES_LOCK:
        engine = _ENGINES_BY_OBJECT.get(id(loaded.model))
        if engine is None or engine.root is not loaded.model:
            engine = TransformersEngine(loaded)
            _ENGINES_BY_OBJECT[id(loaded.model)] = engine
        return engine


def clear_model_cache() -> None:
    """Forget the process-wide cache of loaded base models (existing `UnoChatModel`s keep theirs)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
        _ENGINES_BY_OBJECT.clear()


__all__ = ["BASE_ADAPTER", "TransformersEngine", "clear_model_cache", "engine_for_loaded", "engine_for_path"]
