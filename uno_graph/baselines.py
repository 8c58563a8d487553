"""The naive baseline UNO has to beat: one SFT LoRA per known topic, trained on that topic's edits alone.

The topics are known in advance (`metadata.topic` of each log) — information UNO does not get; it
must find its clusters itself. Each topic's adapter is trained with TRL's SFT on (question, the
user's edited answer) for `epochs` epochs and published like any adapter (`registry.publish_adapter`,
atomic, with a manifest) to `<workdir>/baselines/topic_sft/<topic>/expert/`.
`uno-graph eval --systems ...,topic_sft` then answers each test item with its own topic's adapter
(an oracle router). Example::

    >>> train_topic_sft(["examples/logs.jsonl"], "runs/demo")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from uno_graph.config import TrainSettings, UnoConfig
from uno_graph.logs import read_logs
from uno_graph.workdir_lock import writer_lock

DIR = Path("baselines") / "topic_sft"
ROLE = "expert"  # the topic's adapter answers directly


def _name(topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", topic)


def topic_dir(workdir: str | Path, topic: str) -> Path:
    from uno_graph.adapters.registry import adapter_path

    return adapter_path(Path(workdir) / DIR, _name(topic), ROLE)


def train_topic_sft(log_paths, workdir: str | Path, config: UnoConfig | None = None, *, epochs: int = 4,
                    progress: bool = True) -> dict[str, dict]:
    """Train (or keep, when already there) one SFT adapter per topic; returns topic -> manifest.

    Holds the work directory's writer lock (`workdir_lock.py`): `learn` clears the same `tmp/`."""
    with writer_lock(workdir, "baseline"):
        return _train_topic_sft(log_paths, workdir, config or UnoConfig(), epochs, progress)


def _train_topic_sft(log_paths, workdir: str | Path, config: UnoConfig, epochs: int, progress: bool) -> dict[str, dict]:
    from uno_graph.adapters.registry import publish_adapter
    from uno_graph.adapters.train import TrainExample, train_adapter
    from uno_graph.models import resolve_model_path

    settings = TrainSettings(**{**vars(config.train), "epochs": epochs})
    by_topic: dict[str, list[TrainExample]] = {}
    for r in read_logs(*log_paths).records:
        topic = r.metadata.get("topic")
        if topic is not None and r.feedback.edited_response:
            by_topic.setdefault(str(topic), []).append(
                TrainExample(prompt=list(r.prompt_messages), chosen=r.feedback.edited_response, id=r.id))
    out = {}
    for topic, examples in sorted(by_topic.items()):
        target = topic_dir(workdir, topic)
        if (target / "manifest.json").exists():
            out[topic] = json.loads((target / "manifest.json").read_text())
            continue
        if len(examples) < 2:
            continue
        tmp = Path(workdir) / "tmp" / "topic_sft" / _name(topic)
        shutil.rmtree(tmp, ignore_errors=True)
        trained = train_adapter(resolve_model_path(config.base_model), examples, "sft", tmp, lora=config.lora,
                                settings=settings, progress=progress)
        manifest = {"topic": topic, "n_examples": len(examples), "epochs": epochs, "objective": "sft",
                    "base_model": config.base_model, "train_seconds": round(trained.train_seconds, 1),
                    "final_loss": trained.final_loss}
        publish_adapter(Path(workdir) / DIR, _name(topic), ROLE, trained.epoch_dirs[-1], manifest)
        shutil.rmtree(tmp, ignore_errors=True)
        out[topic] = json.loads((target / "manifest.json").read_text())
    return out
