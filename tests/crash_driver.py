"""Runs `learn` in its own process on the tiny test LM, for the kill-and-rerun tests (`test_crash_resume.py`).

    python -m tests.crash_driver LOGS WORKDIR TINY_LM CALLS_FILE

The teacher is the deterministic `RuleTeacher`, and every call it receives is appended to CALLS_FILE
(one JSON string per line, written before the reply is returned), so a test can count across runs
which teacher calls a rerun made again.

`UNO_GRAPH_TEST_KILL=<point>:<n>` makes the process SIGKILL itself at the n-th occurrence of a point,
so a kill lands at an exact place instead of wherever a timer happens to fire:

* `distill` / `verify` / `gap`: right after the n-th record of that stage is durably appended;
* `cluster`: after the n-th write of the cluster table into Chroma (rows pending), before
  `clusters.jsonl` is written;
* `fit`: right after the n-th adapter training (a validation fold or a final fit) returns, while
  its cluster is still being validated;
* `step`: inside the n-th optimiser step of any training, once its backward pass has filled the
  gradients and before AdamW updates a weight (mid-fit, with the trainer's temporary files open);
* `publish-tmp`: in the n-th publish, once the new version is complete in its hidden temp folder,
  before it is renamed into `v<N>`;
* `publish-renamed`: in the n-th publish, after the rename into `v<N>` and before `served.json`
  names it;
* `publish-served`: after the n-th publish returned, before the train stage records it.

Distill and verify run in batches of 4 here (16 in `learn`), so a kill can fall between two batches,
when every teacher call made so far has its result written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

BATCH = 4


def config(tiny_lm: str):
    """The tiny settings every run of a test uses (as in `test_pipeline._config`)."""
    from uno_graph.config import TrainSettings, UnoConfig

    return UnoConfig(base_model=tiny_lm, min_cluster_size=4, max_new_tokens=6, gap_threshold=0.99,
                     win_rate_threshold=0.0, min_win_lower_bound=0.0,
                     train=TrainSettings(epochs=1, batch_size=4, max_prompt_tokens=64, max_answer_tokens=32))


def recording_teacher(calls_file: Path):
    """A `RuleTeacher` that appends each call's text to `calls_file` before answering."""
    from tests.fakes import RuleTeacher

    lock = threading.Lock()  # `batch` calls the teacher from a thread pool

    class RecordingTeacher(RuleTeacher):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            text = "\n".join(str(m.content) for m in messages)
            with lock, open(calls_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(text) + "\n")
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    return RecordingTeacher(keyword_rules={"number": "Give numbered steps.", "sentence": "Answer in one sentence."},
                            calls=[])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def count_calls(owner, name: str, tick, *, before: bool = False) -> None:
    """Replace `owner.name` (a module's function, a class's method) with a wrapper that calls `tick()`
    after each call returns, or, with `before`, as each call starts."""
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        if before:
            tick()
        result = real(*args, **kwargs)
        if not before:
            tick()
        return result

    setattr(owner, name, counted)


def install_kill(spec: str) -> None:
    """Make this process kill itself at the n-th occurrence of the point `spec` names (`<point>:<n>`)."""
    point, _, n = spec.partition(":")
    target = int(n or 1)
    seen = [0]

    def tick() -> None:
        seen[0] += 1
        if seen[0] == target:
            _die()

    if point in ("distill", "verify", "gap"):
        from uno_graph import workdir

        write = workdir.JsonlAppender.write

        def counted_write(self, record):
            write(self, record)
            if self.path.name == f"{point}.jsonl":
                tick()

        workdir.JsonlAppender.write = counted_write
    elif point == "cluster":
        from uno_graph import pipeline

        count_calls(pipeline, "_store_clusters", tick)
    elif point == "fit":
        from uno_graph.adapters import train

        count_calls(train, "train_adapter", tick)
    elif point == "step":
        import torch

        count_calls(torch.optim.AdamW, "step", tick, before=True)  # dies before the n-th step updates a weight
    elif point in ("publish-tmp", "publish-renamed"):
        from uno_graph.adapters import registry

        class RenameHook:
            """`os` for the registry module, with the rename of a temp folder into `v<N>` counted."""

            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def rename(src, dst):
                into_version = ".tmp-" in Path(src).name and Path(dst).name.startswith("v")
                if into_version and point == "publish-tmp":
                    tick()
                os.rename(src, dst)
                if into_version and point == "publish-renamed":
                    tick()

        registry.os = RenameHook()
    elif point == "publish-served":
        from uno_graph.adapters import versions

        count_calls(versions, "publish_version", tick)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def _small_batches() -> None:
    """Distill and verify in batches of `BATCH`, so a kill can fall between two batches."""
    from uno_graph import distill, verify

    real_distill, real_verify = distill.distill, verify.verify_pairs

    def distill_small(*args, **kwargs):
        return real_distill(*args, **{**kwargs, "batch_size": BATCH})

    def verify_small(*args, **kwargs):
        return real_verify(*args, **{**kwargs, "batch_size": BATCH})

    distill.distill, verify.verify_pairs = distill_small, verify_small


def main(argv: list[str]) -> int:
    logs, work, tiny_lm, calls_file = argv
    from uno_graph import pipeline

    _small_batches()
    if os.environ.get("UNO_GRAPH_TEST_KILL"):
        install_kill(os.environ["UNO_GRAPH_TEST_KILL"])
    pipeline.learn([logs], work, config(tiny_lm), teacher=recording_teacher(Path(calls_file)), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
