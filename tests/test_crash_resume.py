"""Real crashes: `learn` in a subprocess, SIGKILLed inside a stage, then rerun to the end.

Each kill lands at an exact point (`tests/crash_driver.py` reads `UNO_GRAPH_TEST_KILL` and kills its
own process there). The rerun must finish, ask the teacher nothing it had already answered, leave no
temporary folder behind, and produce the cluster table and published adapters of a run that was
never interrupted (the reference, run once per module).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TOPICS = {
    "cook": ("How do I cook {}?", "Please number the steps.", "1. Heat it.\n2. Serve it.\n3. Eat.",
             ["rice", "pasta", "eggs", "beans", "soup", "fish", "tofu"]),
    "where": ("Where is the city of {}?", "Answer in one short sentence only.", "{} is in Europe.",
              ["Paris", "Rome", "Berlin", "Madrid", "Vienna", "Prague", "Lisbon"]),
}

# kill point (driver spec) -> what the killed run must have left, checked before the rerun.
# Distill and verify run in batches of 4 in the driver: 8 records = two whole batches.
# Each cluster trains 3 adapters (2 validation folds + the final fit): fit 4 is inside the second cluster,
# and optimiser step 3 inside the first cluster's second fold (each fold is a step or two here).
KILLS = {
    "mid-distill": "distill:8",
    "mid-verify": "verify:8",
    "mid-cluster": "cluster:1",
    "mid-gap": "gap:1",
    "mid-training": "fit:4",
    "mid-optimizer-step": "step:3",
    "publish-before-rename": "publish-tmp:2",
    "publish-between-renames": "publish-renamed:2",
}


_HASH_SEEDS = itertools.count(1)


def _logs(path: Path) -> Path:
    """Two topics of 7 logs; every other log has no edit, so the teacher revises it and judges the revision."""
    lines = []
    for topic, (q, complaint, edit, items) in TOPICS.items():
        for i, item in enumerate(items):
            line = {"id": f"{topic}-{i}", "user_id": f"u{i % 3}", "metadata": {"topic": topic},
                    "messages": [{"role": "user", "content": q.format(item)},
                                 {"role": "assistant", "content": f"Well, about {item}, it depends on many things."},
                                 {"role": "user", "content": complaint}]}
            if i % 2 == 0:
                line["feedback"] = {"edited_response": edit.format(item)}
            lines.append(line)
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _run(logs: Path, work: Path, tiny_lm: Path, calls: Path, cache: Path, kill: str | None = None):
    """One `learn` process; each gets its own string-hash seed, as separate runs of `uno-graph` do."""
    env = {**os.environ, "UNO_GRAPH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONHASHSEED": str(next(_HASH_SEEDS))}
    env.pop("UNO_GRAPH_TEST_KILL", None)
    if kill:
        env["UNO_GRAPH_TEST_KILL"] = kill
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tests.crash_driver", str(logs), str(work), str(tiny_lm), str(calls)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return proc, time.perf_counter() - start


def _calls(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    return Counter(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


def _leftovers(work: Path) -> list[str]:
    """Temporary files and folders of the patterns `learn` writes: training's `tmp/`, a publish's
    `.<name>.tmp-*` and `.<name>.old-*` folders, `atomic_write_text`'s `.<name>.*.tmp` files, a
    training epoch's `.epoch-<k>.tmp`."""
    found = [work / "tmp"] if (work / "tmp").exists() else []
    found += [p for p in work.rglob(".*") if p.name != ".lock"
              and (".tmp" in p.name or ".old-" in p.name)]
    return sorted(str(p.relative_to(work)) for p in found)


def _outcome(work: Path) -> dict:
    """What must equal between an interrupted-then-resumed run and an uninterrupted one."""
    from uno_graph.adapters.versions import served_version, version_dirs
    from uno_graph.store import UnoStore

    clusters = [{"id": c["id"], "members": c["members"], "eligible": c["eligible"]}
                for c in map(json.loads, (work / "stages" / "clusters.jsonl").read_text().splitlines())]
    store = UnoStore.persistent(work / "chroma")
    table = [{k: row.get(k) for k in ("id", "route", "adapter", "status", "size", "win_rate", "lower_bound",
                                      "reason", "max_new_tokens", "users")} for row in store.table()]
    adapters = {}
    for role_dir in sorted(p for p in (work / "adapters").glob("*/*") if p.is_dir()):
        versions = {}
        for number, path in version_dirs(role_dir).items():
            manifest = json.loads((path / "manifest.json").read_text())
            manifest.pop("created")  # the clock
            manifest["metrics"].pop("train_seconds")
            manifest["base_model"] = Path(manifest["base_model"]).name
            weights = (path / "adapter_model.safetensors").read_bytes()
            versions[number] = {"manifest": manifest, "weights_sha256": hashlib.sha256(weights).hexdigest()}
        adapters[str(role_dir.relative_to(work))] = {"served": served_version(role_dir), "versions": versions}
    train_rows = (work / "stages" / "train.jsonl").read_text().splitlines()
    trained = Counter(json.loads(line)["cluster_id"] for line in train_rows)
    return {"clusters": clusters, "table": table, "adapters": adapters, "train_rows": dict(trained)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_lm_dir):
    """The logs, a GGUF cache kept out of the user's, and the outcome of one uninterrupted run."""
    base = tmp_path_factory.mktemp("crash")
    logs = _logs(base / "logs.jsonl")
    cache = base / "cache"
    work, calls = base / "reference", base / "reference.calls"
    proc, seconds = _run(logs, work, tiny_lm_dir, calls, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"reference run: {seconds:.1f} s")
    reference = _outcome(work)
    assert len(reference["adapters"]) == 2 and all(a["served"] == 1 for a in reference["adapters"].values())
    return {"base": base, "logs": logs, "cache": cache, "outcome": reference, "calls": _calls(calls),
            "tiny_lm": tiny_lm_dir}


@pytest.mark.parametrize("where", list(KILLS))
def test_a_run_killed_inside_a_stage_resumes_to_the_uninterrupted_result(setup, where):
    work, calls = setup["base"] / where, setup["base"] / f"{where}.calls"
    args = (setup["logs"], work, setup["tiny_lm"], calls, setup["cache"])

    killed, killed_s = _run(*args, kill=KILLS[where])
    assert killed.returncode == -signal.SIGKILL, f"the kill point was not reached:\n{killed.stderr[-3000:]}"
    stages = work / "stages"
    assert not (stages / "train.done").exists()
    if where in ("mid-distill", "mid-verify"):
        stage = where.removeprefix("mid-")
        assert len((stages / f"{stage}.jsonl").read_text().splitlines()) == 8
        assert not (stages / f"{stage}.done").exists()
    if where == "publish-before-rename":  # the complete new version waits in its hidden temp folder
        assert len(list((work / "adapters").glob("*/*/.v1.tmp-*"))) == 1
    if where == "publish-between-renames":  # renamed into place, not yet named served
        renamed = [p for p in (work / "adapters").glob("*/*/v1") if not (p.parent / "served.json").exists()]
        assert len(renamed) == 1
    before = _calls(calls)

    rerun, rerun_s = _run(*args)
    print(f"{where}: killed after {killed_s:.1f} s, rerun {rerun_s:.1f} s")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    asked_again = _calls(calls) - before
    assert not (asked_again & before), "the rerun asked the teacher again what it had already answered"
    assert before + asked_again == setup["calls"]  # and nothing the uninterrupted run asked is missing
    assert _leftovers(work) == []
    assert _outcome(work) == setup["outcome"]


def test_the_hidden_folders_of_a_killed_publish_are_removed_and_a_version_renamed_aside_comes_back(tmp_path):
    from uno_graph.adapters.registry import remove_interrupted

    role = tmp_path / "c-1" / "expert"
    for name in (".v3.tmp-ab12", "v2", ".v2.old-1234abcd", "v1"):
        (role / name).mkdir(parents=True)
    (tmp_path / "c-1" / ".critic.old-5678abcd").mkdir()  # renamed aside; the new one never took its place
    (tmp_path / "c-1" / ".critic.old-5678abcd" / "manifest.json").write_text("{}")
    removed = remove_interrupted(tmp_path)
    assert sorted(p.name for p in removed) == [".critic.old-5678abcd", ".v2.old-1234abcd", ".v3.tmp-ab12"]
    assert sorted(p.name for p in role.iterdir()) == ["v1", "v2"]
    assert (tmp_path / "c-1" / "critic" / "manifest.json").exists()
    assert remove_interrupted(tmp_path) == []


def test_publishing_the_same_adapter_again_keeps_one_version(tmp_path, tiny_lm_dir, monkeypatch):
    from tests.fakes import make_lora
    from uno_graph.adapters.versions import publish_version, served_version

    monkeypatch.setenv("UNO_GRAPH_GGUF_ON_PUBLISH", "0")
    source = make_lora(tiny_lm_dir, tmp_path / "lora", seed=1)
    manifest = {"base_model": "tiny", "objective": "sft", "data_hash": "d1", "metrics": {"train_seconds": 1.0}}
    first = publish_version(tmp_path / "adapters", "c-1", "expert", source, manifest)
    (first.parent / "served.json").unlink()  # killed before `served.json` named it
    again = publish_version(tmp_path / "adapters", "c-1", "expert", source,
                            {**manifest, "metrics": {"train_seconds": 2.5}})  # the rerun took another time
    assert again == first and first.name == "v1" and served_version(first.parent) == 1
    assert (first.parent / "served.json").exists()
    other = publish_version(tmp_path / "adapters", "c-1", "expert", source, {**manifest, "data_hash": "d2"})
    assert other.name == "v2" and served_version(first.parent) == 2
