"""Incremental `learn`, safe promotion and rollback, the per-user share cap and forgetting a user,
on the tiny random LM with the fake teacher of test_pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fakes import KeywordEmbedder, RuleTeacher
from tests.test_pipeline import TOPICS, _config
from tests.test_reload import loras, reference  # noqa: F401  (module fixtures: LoRAs and their reference answers)
from tests.test_serving_remote import EGG, MAX_NEW, ask, make_workdir
from uno_graph import pipeline
from uno_graph.errors import ArtifactError

PRINTER = ("What does error code {} mean on my printer?", "Tell me the fix first, please.", "Fix: restart it. {} is a paper jam.",
        ["E01", "E02", "E05", "E13", "E22", "E40"])  # a third topic, far from both (beyond each cluster's reach)


def _line(topic, i, item, spec, user):
    q, complaint, edit, _ = spec
    return {"id": f"{topic}-{i}", "user_id": user,
            "messages": [{"role": "user", "content": q.format(item)},
                         {"role": "assistant", "content": f"Well, about {item}, it depends on many things."},
                         {"role": "user", "content": complaint}],
            "feedback": {"edited_response": edit.format(item)}, "metadata": {"topic": topic}}


def _write(path: Path, *, extra_cook=(), printer: int = 0, users=None, plant: str | None = None) -> Path:
    """test_pipeline's cook and where logs (users u0-u2), plus extra cook items and `printer` logs of a third topic.

    `users`: topic -> list of user ids by position; `plant`: text added to every log of user u1."""
    lines = []
    for topic, spec in TOPICS.items():
        items = list(spec[3]) + (list(extra_cook) if topic == "cook" else [])
        for i, item in enumerate(items):
            user = (users or {}).get(topic, [])[i] if i < len((users or {}).get(topic, [])) else f"u{i % 3}"
            lines.append(_line(topic, i, item, spec, user))
    lines += [_line("printer", i, item, PRINTER, f"r{i % 3}") for i, item in enumerate(PRINTER[3][:printer])]
    if plant:
        for line in lines:
            if line["user_id"] == "u1":
                line["messages"][0]["content"] += f" {plant}"
                line["messages"][2]["content"] += f" Mention {plant} always."
                line["feedback"]["edited_response"] += f" {plant}"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture()
def teacher():
    return RuleTeacher(keyword_rules={"number": "Give numbered steps.", "sentence": "Answer in one sentence.",
                                      "fix": "Give the fix first."}, calls=[])


@pytest.fixture()
def fits(monkeypatch):
    """Cluster ids of every `_fit` call (fold and final adapters alike)."""
    calls: list[str] = []
    real = pipeline._fit

    def counting(run, cluster_id, *args, **kwargs):
        calls.append(cluster_id)
        return real(run, cluster_id, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_fit", counting)
    return calls


def _summary(work: Path) -> dict:
    return json.loads((work / "summary.json").read_text())


def _by_topic(result) -> dict[str, dict]:
    return {next(iter(c["topics"])): c for c in result.clusters if len(c["topics"]) == 1}


def _train_rows(work: Path) -> dict[str, dict]:
    return {json.loads(x)["cluster_id"]: json.loads(x) for x in (work / "stages" / "train.jsonl").read_text().splitlines()}


# -- incremental learn ------------------------------------------------------------------------------------

def test_a_grown_log_set_reuses_finished_work_keeps_ids_and_retrains_only_changed_clusters(
        tmp_path, tiny_lm_dir, teacher, fits):
    work = tmp_path / "work"
    first = pipeline.learn([_write(tmp_path / "a.jsonl")], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    before = _by_topic(first)
    assert {t: c["status"] for t, c in before.items()} == {"cook": "new", "where": "new"}
    where_row = _train_rows(work)[before["where"]["id"]]
    where_manifest = (work / before["where"]["adapter"] / "manifest.json").read_text()
    assert before["where"]["adapter"].endswith("/expert/v1")

    teacher.calls.clear()
    fits.clear()
    grown = _write(tmp_path / "b.jsonl", extra_cook=["quinoa", "lentils"], printer=6)
    second = pipeline.learn([grown], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    after = _by_topic(second)
    # the teacher saw only the new logs
    assert teacher.calls and all("cook rice?" not in c and "of Paris?" not in c for c in teacher.calls)
    assert any("quinoa" in c for c in teacher.calls) and any("E01" in c for c in teacher.calls)
    # ids kept; the new cook logs joined their cluster, the far ones made a new one
    assert after["cook"]["id"] == before["cook"]["id"] and after["where"]["id"] == before["where"]["id"]
    assert after["cook"]["size"] == 9 and after["printer"]["size"] == 6
    assert {t: c["status"] for t, c in after.items()} == {"cook": "retrained", "where": "unchanged", "printer": "new"}
    assert set(fits) == {after["cook"]["id"], after["printer"]["id"]}  # where was not trained again
    assert _train_rows(work)[after["where"]["id"]] == where_row
    assert (work / after["where"]["adapter"] / "manifest.json").read_text() == where_manifest
    summary = _summary(work)
    assert summary["reuse"]["distill"] == {"reused": 14, "computed": 8}
    assert summary["reuse"]["train"] == {"reused": 1, "computed": 2}
    assert [c["status"] for c in summary["clusters"]] == [c["status"] for c in second.clusters]

    # the same logs again: nothing is computed or trained
    fits.clear()
    third = pipeline.learn([grown], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert fits == [] and {c["status"] for c in third.clusters} == {"unchanged"}

    # shrunk back: the printer cluster is gone, cook retrains on its 7 logs, where stays
    teacher.calls.clear()
    shrunk = pipeline.learn([_write(tmp_path / "c.jsonl")], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert teacher.calls == [] and set(fits) == {after["cook"]["id"]}
    assert {t: (c["id"], c["status"]) for t, c in _by_topic(shrunk).items()} == {
        "cook": (before["cook"]["id"], "retrained"), "where": (before["where"]["id"], "unchanged")}
    from uno_graph.store import UnoStore

    assert {r["id"] for r in UnoStore.persistent(work / "chroma").table()} == {before["cook"]["id"], before["where"]["id"]}


def test_the_previous_clusters_are_read_before_the_stage_is_reset(tmp_path, tiny_lm_dir, teacher, monkeypatch):
    """Other clustering settings recluster everything, and ids still carry over by overlap."""
    work = tmp_path / "work"
    monkeypatch.setattr(pipeline, "_train", lambda *a, **k: {})
    first = pipeline.learn([_write(tmp_path / "a.jsonl")], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    config = _config(tiny_lm_dir)
    config.join_similarity = 0.49  # another clustering setting: not incremental
    again = pipeline.learn([_write(tmp_path / "b.jsonl", extra_cook=["corn"])], work, config, teacher=teacher,
                           progress=False)
    assert not json.loads((work / "stages" / "clusters.done").read_text())["summary"]["incremental"]
    assert _by_topic(again)["cook"]["id"] == _by_topic(first)["cook"]["id"]
    assert _by_topic(again)["where"]["id"] == _by_topic(first)["where"]["id"]


def test_a_work_directory_from_before_keys_stays_finished_and_becomes_incremental(tmp_path, tiny_lm_dir, teacher,
                                                                                  fits, monkeypatch):
    work = tmp_path / "work"
    _verdicts(monkeypatch, [(0.7, 0.6)] * 3)
    first = _by_topic(pipeline.learn([_write(tmp_path / "a.jsonl")], work, _config(tiny_lm_dir), teacher=teacher,
                                     progress=False))
    # what an older version left: no keys files, no clustering settings, no data hashes in the summary
    for path in (work / "stages").glob("*.keys.json"):
        path.unlink()
    (work / "stages" / "gap.calibration.json").unlink()
    done = json.loads((work / "stages" / "clusters.done").read_text())
    del done["summary"]["settings"]
    (work / "stages" / "clusters.done").write_text(json.dumps(done))
    summary = _summary(work)
    for c in summary["clusters"]:
        del c["data_hash"], c["status"]
    (work / "summary.json").write_text(json.dumps(summary))

    teacher.calls.clear()
    fits.clear()
    again = pipeline.learn([_write(tmp_path / "a.jsonl")], work, _config(tiny_lm_dir), teacher=teacher, progress=False)
    assert teacher.calls == [] and fits == [] and {c["status"] for c in again.clusters} == {"unchanged"}
    assert {p.name for p in (work / "stages").glob("*.keys.json")} == {
        "distill.keys.json", "verify.keys.json", "gap.keys.json", "train.keys.json"}

    grown = _by_topic(pipeline.learn([_write(tmp_path / "b.jsonl", extra_cook=["corn"])], work, _config(tiny_lm_dir),
                                     teacher=teacher, progress=False))
    assert len(teacher.calls) == 1 and "corn" in teacher.calls[0]
    assert grown["cook"]["id"] == first["cook"]["id"] and grown["cook"]["status"] == "retrained"
    assert grown["where"]["status"] == "unchanged" and set(fits) == {first["cook"]["id"]}


# -- promotion and rollback -------------------------------------------------------------------------------

def _verdicts(monkeypatch, numbers: list[tuple[float, float]]):
    """Make validation accept the Expert with the given (win rate, lower bound), one per call."""
    from uno_graph.adapters.validate import PathValidator, PathVerdict

    queue = list(numbers)

    def choose(self, cluster_id, data, first, budget=None, order="gap"):
        win, low = queue.pop(0)
        return "expert", [PathVerdict("expert", True, f"beats base: win rate {win:.2f}", win, low, 7, epoch=1)]

    monkeypatch.setattr(PathValidator, "choose", choose)


def test_a_retrained_adapter_is_served_only_if_at_least_as_good_and_rollback_brings_back_the_last(
        tmp_path, tiny_lm_dir, teacher, fits, monkeypatch, capsys):
    from uno_graph.adapters.registry import list_adapters
    from uno_graph.cli import main
    from uno_graph.graph import UnoSystem
    from uno_graph.promotion import rollback
    from uno_graph.store import UnoStore

    work = tmp_path / "work"
    _verdicts(monkeypatch, [(0.7, 0.6), (0.7, 0.6)])
    first = _by_topic(pipeline.learn([_write(tmp_path / "a.jsonl")], work, _config(tiny_lm_dir), teacher=teacher,
                                     progress=False))
    cook = first["cook"]["id"]
    role_dir = work / "adapters" / cook / "expert"
    v1 = json.loads((role_dir / "v1" / "manifest.json").read_text())
    pairs = {json.loads(x)["id"] for x in (work / "stages" / "pairs.jsonl").read_text().splitlines()}
    assert v1["log_ids"] == sorted(i for i in pairs if i.startswith("cook-")) and v1["adapter_version"] == 1

    # worse on validation: v1 stays served, nothing is trained on the full data or published
    _verdicts(monkeypatch, [(0.6, 0.65)])
    fits.clear()
    second = _by_topic(pipeline.learn([_write(tmp_path / "b.jsonl", extra_cook=["corn"])], work, _config(tiny_lm_dir),
                                      teacher=teacher, progress=False))
    assert second["cook"]["status"] == "retrained" and second["cook"]["promotion"] == "kept"
    assert second["cook"]["adapter"] == f"adapters/{cook}/expert/v1" and second["cook"]["win_rate"] == 0.7
    assert fits == [] and not (role_dir / "v2").exists()
    assert "not at least as good" in second["cook"]["reason"]
    assert UnoStore.persistent(work / "chroma").cluster(cook)["adapter"] == f"adapters/{cook}/expert/v1"

    # better: promoted as v2, learned from the new log too
    _verdicts(monkeypatch, [(0.9, 0.8)])
    third = _by_topic(pipeline.learn([_write(tmp_path / "c.jsonl", extra_cook=["corn", "kale"])], work,
                                     _config(tiny_lm_dir), teacher=teacher, progress=False))
    assert third["cook"]["promotion"] == "promoted" and third["cook"]["adapter"] == f"adapters/{cook}/expert/v2"
    v2 = json.loads((role_dir / "v2" / "manifest.json").read_text())
    assert {"cook-7", "cook-8"} <= set(v2["log_ids"]) and v2["metrics"]["win_rate"] == 0.9
    assert json.loads((role_dir / "served.json").read_text())["version"] == 2
    assert (role_dir / "v1" / "manifest.json").exists()  # earlier versions are kept

    # rollback: v1 is served again, by the table, the served pointer and the train row
    done = rollback(work, cook)
    assert (done.version, done.previous) == (1, "expert v2")
    store = UnoStore.persistent(work / "chroma")
    row = store.cluster(cook)
    assert row["adapter"] == f"adapters/{cook}/expert/v1" and row["win_rate"] == pytest.approx(0.7)
    assert row["route"] == "expert" and row["status"] == "ready"
    assert _train_rows(work)[cook]["adapter"] == f"adapters/{cook}/expert/v1"
    assert [m["path"] for m in list_adapters(work / "adapters") if m["cluster_id"] == cook] == [str(role_dir / "v1")]
    system = UnoSystem.load(work, store=store)
    assert system.served[f"{cook}/expert"][1] == role_dir / "v1"
    out = system.graph().invoke({"messages": [("user", "How do I cook rice?")]})["messages"][-1]
    assert out.response_metadata["uno_adapter"] == f"{cook}/expert"
    with pytest.raises(ArtifactError, match="no earlier expert version"):
        rollback(work, cook, store=store)

    # an unchanged rerun keeps the rolled-back version
    fits.clear()
    again = _by_topic(pipeline.learn([_write(tmp_path / "c.jsonl", extra_cook=["corn", "kale"])], work,
                                     _config(tiny_lm_dir), teacher=teacher, store=store, progress=False))
    assert fits == [] and again["cook"]["adapter"] == f"adapters/{cook}/expert/v1"
    del system, store
    assert main(["rollback", "--workdir", str(work), cook, "--role", "expert"]) == 2  # nothing older than v1
    assert "no earlier expert version" in capsys.readouterr().err


def test_a_rollback_is_served_after_reload_and_picked_up_by_watch(tmp_path, tiny_lm_dir, loras, reference):  # noqa: F811
    from uno_graph.adapters.registry import build_manifest, list_adapters
    from uno_graph.adapters.versions import publish_version
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.graph import UnoSystem
    from uno_graph.promotion import rollback

    work = make_workdir(tmp_path / "work", tiny_lm_dir, loras, {"paris": "critic"})  # paris: an unversioned adapter
    config_model = str(tiny_lm_dir)
    for source, win in ((loras["egg"], 0.7), (loras["egg-v2"], 0.8)):
        manifest = build_manifest(role="expert", cluster_id="c-egg", base_model=config_model, objective="sft",
                                  lora={"r": 4}, train={}, data_hash="test", metrics={"win_rate": win, "lower_bound": 0.5})
        path = publish_version(work / "adapters", "c-egg", "expert", source, manifest)
    model = UnoChatModel.from_pretrained(config_model, max_new_tokens=MAX_NEW)
    system = UnoSystem.load(work, model=model, embedder=KeywordEmbedder())
    system.store.update_cluster("c-egg", route="expert", adapter=str(path.relative_to(work)), status="ready")
    system.reload()
    graph = system.graph()
    assert ask(graph, EGG).content == reference.invoke(EGG, adapter="ref-egg-v2").content

    watcher = system.watch(0.05)
    try:
        done = rollback(work, "c-egg", store=system.store)
        assert done.path == "adapters/c-egg/expert/v1" and "was expert v2" in done.describe()
        deadline = time.monotonic() + 10
        while system.served["c-egg/expert"][1] != work / "adapters/c-egg/expert/v1" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    answer = ask(graph, EGG)  # compiled before the rollback
    assert answer.response_metadata["uno_adapter"] == "c-egg/expert"
    assert answer.content == reference.invoke(EGG, adapter="ref-egg").content
    assert {m["cluster_id"]: Path(m["path"]).name for m in list_adapters(work / "adapters")} == {
        "c-egg": "v1", "c-paris": "critic"}


# -- per-user scope ---------------------------------------------------------------------------------------

def test_user_share_limit_and_deterministic_choice():
    from uno_graph.scope import cap_user_share, user_share_limit

    def examples(counts, anonymous=0):
        out = [{"id": f"{u}-{k}", "user_id": u} for u, n in counts.items() for k in range(n)]
        return out + [{"id": f"anon-{k}", "user_id": None} for k in range(anonymous)]

    assert cap_user_share(examples({"a": 3, "b": 2, "c": 2}), 0.25) == set()  # 3 users: an equal split is 3
    dropped = cap_user_share(examples({"a": 4, "b": 1, "c": 1, "d": 1}), 0.25)
    assert len(dropped) == 2 and all(i.startswith("a-") for i in dropped)
    assert cap_user_share(list(reversed(examples({"a": 4, "b": 1, "c": 1, "d": 1}))), 0.25) == dropped
    assert user_share_limit(20, 10, 0.25) == 5 and user_share_limit(20, 2, 0.25) == 10
    with_anonymous = cap_user_share(examples({"a": 9}, anonymous=11), 0.25)
    assert len(with_anonymous) == 4 and all(i.startswith("a-") for i in with_anonymous)  # a keeps max(5, ⌈20/12⌉)
    assert cap_user_share(examples({"a": 9, "b": 1}), 1.0) == set()


def test_a_user_whose_edits_look_like_what_the_others_rejected_is_a_dissenter():
    from uno_graph.scope import dissenting_users
    from uno_graph.want import Labelled

    prose = "Well, this is a long story with many sides, and it depends on a great many things indeed."
    labelled, user_of = [], {}
    for u in range(6):  # six users want bullets; u5 turns the answer into more prose
        for k in range(2):
            log = f"u{u}-{k}"
            user_of[log] = f"u{u}"
            edit = f"{prose} Also, item {k} has more background." if u == 5 else f"- point {k}\n- another point"
            labelled += [Labelled(log, f"{prose} Part {k}.", 0), Labelled(log, edit, 1)]
    assert set(dissenting_users(labelled, user_of)) == {"u5"}
    assert dissenting_users(labelled, user_of)["u5"] < -2.0
    # fewer than five users with endorsed answers: no majority to dissent from
    few = [x for x in labelled if user_of[x.log_id] in {"u0", "u1", "u2", "u5"}]
    assert dissenting_users(few, user_of) == {}
    assert dissenting_users(labelled, user_of, min_agreement=-100.0) == {}


def test_no_user_makes_up_more_than_the_share_of_a_clusters_training_examples(tmp_path, tiny_lm_dir, teacher,
                                                                              monkeypatch):
    from uno_graph.config import UnoConfig
    from uno_graph.errors import ConfigError

    with pytest.raises(ConfigError, match="max_user_share"):
        UnoConfig(max_user_share=0.0)
    _verdicts(monkeypatch, [(0.7, 0.6), (0.7, 0.6)])
    logs = _write(tmp_path / "logs.jsonl", users={"cook": ["u0", "u0", "u0", "u0", "u1", "u2", "u3"]})
    result = _by_topic(pipeline.learn([logs], tmp_path / "work", _config(tiny_lm_dir), teacher=teacher, progress=False))
    cook = result["cook"]
    assert cook["capped"] == 2 and result["where"]["capped"] == 0  # u0 keeps max(⌊0.25 × 7⌋, ⌈7/4⌉) = 2 of 4
    learned = json.loads((tmp_path / "work" / cook["adapter"] / "manifest.json").read_text())["log_ids"]
    assert len(learned) == 5 and len({"cook-0", "cook-1", "cook-2", "cook-3"} & set(learned)) == 2
    assert _train_rows(tmp_path / "work")[cook["id"]]["capped"] == 2


def test_forget_removes_a_users_text_from_every_stage_and_chroma_and_retrains_their_clusters(
        tmp_path, tiny_lm_dir, fits):
    from uno_graph.cli import main
    from uno_graph.scope import forget_user
    from uno_graph.store import UnoStore

    plant = "ZEBRAQUOKKA"
    logs = _write(tmp_path / "logs.jsonl", plant=plant)
    work = tmp_path / "work"
    first = pipeline.learn([logs], work, _config(tiny_lm_dir), progress=False)  # no teacher: users' words are the rules

    def files_with_plant() -> list[str]:
        found = [p.name for p in (work / "stages").iterdir() if p.is_file() and plant.encode() in p.read_bytes()]
        found += [str(p) for p in (work / "chroma").rglob("*") if p.is_file() and plant.encode() in p.read_bytes()]
        return found

    assert {"distill.jsonl", "pairs.jsonl", "clusters.jsonl"} <= set(files_with_plant())
    assert any(plant in d for d in UnoStore.persistent(work / "chroma").rules.get()["documents"])

    report = forget_user(work, "u1")
    assert report.log_ids and all(i.split("-")[1] in ("1", "4") for i in report.log_ids)
    assert sorted(report.clusters) == sorted(c["id"] for c in first.clusters if c["size"] >= 4)
    assert files_with_plant() == []
    store = UnoStore.persistent(work / "chroma")
    got = store.rules.get(include=["documents", "metadatas"])
    assert got["ids"] and all(plant not in d for d in got["documents"])
    assert all(m.get("user_id") != "u1" for m in got["metadatas"])
    assert not any(i in m["members"] for m in map(json.loads, (work / "stages" / "clusters.jsonl").read_text().splitlines())
                   for i in report.log_ids)
    assert "u1" not in (work / "forgotten.json").read_text()  # kept as a hash
    del store

    # learning again from the same files: the user's logs are skipped and their clusters retrained
    fits.clear()
    assert main(["forget", "--workdir", str(work), "--user", "nobody", "--logs", str(logs), "-q"]) == 0
    summary = _summary(work)
    assert summary["forgotten_logs"] == len(report.log_ids)
    assert {c["status"] for c in summary["clusters"] if c["size"] >= 4} == {"retrained"}
    assert set(fits) == set(report.clusters)
    assert files_with_plant() == []


def test_a_version_learned_from_a_forgotten_user_is_withdrawn_once_no_cluster_serves_it(tmp_path, tiny_lm_dir,
                                                                                        teacher, monkeypatch):
    from uno_graph.adapters.registry import list_adapters
    from uno_graph.adapters.validate import PathValidator, PathVerdict
    from uno_graph.adapters.versions import served_version
    from uno_graph.promotion import rollback
    from uno_graph.scope import forget_user

    _verdicts(monkeypatch, [(0.7, 0.6), (0.7, 0.6)])
    logs = _write(tmp_path / "logs.jsonl")  # u1 wrote logs of both topics
    work = tmp_path / "work"
    first = _by_topic(pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False))
    role_dirs = [work / "adapters" / first[t]["id"] / "expert" for t in ("cook", "where")]
    assert [served_version(d) for d in role_dirs] == [1, 1] and len(list_adapters(work / "adapters")) == 2

    forget_user(work, "u1")
    assert len(list_adapters(work / "adapters")) == 2  # served until their clusters are retrained

    def loses(self, cluster_id, data, first, budget=None, order="gap"):
        return "base", [PathVerdict("expert", False, "win rate 0.30 < 0.53", 0.3, 0.1, 7, epoch=1)]

    monkeypatch.setattr(PathValidator, "choose", loses)
    again = _by_topic(pipeline.learn([logs], work, _config(tiny_lm_dir), teacher=teacher, progress=False))
    assert {t: (c["route"], c["adapter"]) for t, c in again.items()} == {"cook": ("base", None), "where": ("base", None)}
    for role_dir in role_dirs:
        assert json.loads((role_dir / "served.json").read_text())["version"] is None
        assert served_version(role_dir) is None and (role_dir / "v1" / "manifest.json").exists()
    assert list_adapters(work / "adapters") == []  # what the OpenAI-compatible server and from_workdir offer
    with pytest.raises(ArtifactError, match="learned from forgotten logs"):
        rollback(work, first["cook"]["id"], role="expert")
