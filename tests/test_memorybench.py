"""MemoryBench Norm-Score: reproduce UNO's published summaries and the leaderboard; bad input is named.

The reproduction tests read the offline MemoryBench slice at ``../shared/memorybench-data`` (beside the
repository) or ``$UNO_GRAPH_MEMORYBENCH_DATA``; without it they skip, or fail in CI on a machine whose
shared folder lacks it (the `memorybench_data` fixture). The unit tests build tiny constants in a temporary folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.requires import missing
from uno_graph.errors import ArtifactError, ConfigError, LogFormatError
from uno_graph.memorybench import (
    DATA_ENV,
    ItemScore,
    format_table,
    load_constants,
    norm_score,
    read_item_scores,
)

_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "memorybench-data",  # beside the checkout
               Path("/work/shared/memorybench-data")]  # where this project's machines keep it
DATA = Path(os.environ.get(DATA_ENV) or next((c for c in _CANDIDATES if c.is_dir()), _CANDIDATES[0]))
UNO_RUNS = DATA / "bebr2-UNO" / "raw-result" / "off-policy-Qwen3-8B" / "task"
LEADERBOARD = DATA / "THUIR-MemoryBench-LeaderBoard" / "src" / "data" / "summaryAverages.json"
BASELINES = DATA / "LittleDinoC-MemoryBench-code" / "configs" / "final_evaluate_summary_wo_details.json"
TASKS = ("Short-Short", "Short-Long", "Long-Short", "Long-Long")
SYSTEMS = ("uno", "uno-single")
# Datasets whose per-item score is MemoryBench's LLM merge of several metrics; UNO's evaluate_details
# keep only the merged-from metrics, so their mean comes from summary.json. Every other dataset is
# scored from the per-item records.
LLM_MERGED = {"Short-Short": {"JRE-L"}, "Short-Long": {"JuDGE"}, "Long-Short": {"IdeaBench"}, "Long-Long": set()}
TOL = {"rel": 1e-9, "abs": 1e-12}


@pytest.fixture
def memorybench_data() -> None:
    """Skip without the MemoryBench slice, or fail (`tests.requires.missing`) where it should be.

    The slice lives outside the repository, in the machine's shared folder (`../shared` or
    `/work/shared`). A machine with that folder but without the slice lost a component the tests need:
    under `UNO_GRAPH_REQUIRE_ALL=1` or `CI` that fails the run. A machine with no shared folder at all
    (a user's own clone) skips, naming the variable that points at a copy.
    """
    if DATA.is_dir():
        return
    reason = f"MemoryBench data not found at {DATA} (set {DATA_ENV} to the memorybench-data folder)"
    if any(c.parent.is_dir() for c in _CANDIDATES):
        missing(reason)
    pytest.skip(reason)


needs_data = pytest.mark.usefixtures("memorybench_data")


def _run_dir(task: str, system: str) -> Path:
    details = sorted((UNO_RUNS / task / system).glob("*/evaluate_details.json"))
    if not details:  # the slice is there but incomplete: a broken copy, not an absent one
        missing(f"no evaluate_details.json for UNO {task}/{system} in {UNO_RUNS}")
    return details[-1].parent


def _score_published_run(task: str, system: str):
    run = _run_dir(task, system)
    published = json.loads((run / "summary.json").read_text())
    constants = load_constants(DATA)
    given = {d: published["average"][d] for d in LLM_MERGED[task]}
    report = norm_score(read_item_scores(run / "evaluate_details.json"), constants, f"task/{task}", given)
    return report, published


# --------------------------------------------------------------------------------------------------
# Reproduction of published numbers
# --------------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("task", TASKS)
def test_reproduces_uno_summary(task: str, system: str) -> None:
    report, published = _score_published_run(task, system)
    ours = report.to_summary()

    assert list(ours["average"]) == list(published["average"])  # same datasets, same order
    for dataset, row in ((r.dataset, r) for r in report.rows):
        assert row.from_items == (dataset not in LLM_MERGED[task])
        assert ours["average"][dataset] == pytest.approx(published["average"][dataset], **TOL)
        for key in ("minmax_normalized_average", "z_normalized_average"):
            got, want = ours[key][dataset], published[key][dataset]
            assert got[1] == want[1]  # item count
            assert got[0] == pytest.approx(want[0], **TOL) and got[2] == pytest.approx(want[2], **TOL)
    for key in ("average", "weighted_average", "z_score"):
        assert ours["summary"][key] == pytest.approx(published["summary"][key], **TOL)


@needs_data
def test_long_long_is_reproduced_from_items_alone() -> None:
    """Long-Long has no LLM-merged dataset: every number comes from the per-item records."""
    report, published = _score_published_run("Long-Long", "uno")
    assert all(r.from_items for r in report.rows) and report.n == 275
    assert report.weighted_average == pytest.approx(published["summary"]["weighted_average"], **TOL)


@needs_data
def test_llm_merged_dataset_without_stored_score_is_named() -> None:
    run = _run_dir("Short-Short", "uno")
    items = read_item_scores(run / "evaluate_details.json")
    with pytest.raises(LogFormatError, match=r"metrics\.llm_as_judge_score.*JRE-L.*given_averages"):
        norm_score(items, load_constants(DATA), "task/Short-Short")


@needs_data
@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("task", TASKS)
def test_leaderboard_shows_item_weighted_norm_score_and_z(task: str, system: str) -> None:
    entry = json.loads(LEADERBOARD.read_text()).get(f"task/{task}", {}).get(f"{system}-Qwen3-8B")
    if entry is None:
        pytest.skip(f"the leaderboard has no {system}-Qwen3-8B entry for task/{task}")
    report, _ = _score_published_run(task, system)
    assert entry["weighted_average"] == pytest.approx(report.weighted_average, **TOL)
    assert entry["z_score"] == pytest.approx(report.z_score, **TOL)
    if abs(report.average - report.weighted_average) > 1e-6:  # the leaderboard is not the dataset mean
        assert entry["weighted_average"] != pytest.approx(report.average, abs=1e-6)


@needs_data
def test_aggregation_reproduces_memorybench_baseline_summaries() -> None:
    """MemoryBench's published baseline summaries (52 system x group cells) from per-dataset means and counts."""
    constants = load_constants(BASELINES, registry=DATA / "THUIR-MemoryBench/configs/datasets/each.json")
    data = json.loads(BASELINES.read_text())
    checked = 0
    for tag_type, groups in data.items():
        for tag, body in groups.items():
            for system, weighted in body["summary"]["weighted_average"].items():
                items, given = [], {}
                for dataset, per_system in body["average"].items():
                    n = body["minmax_normalized_average"][dataset][system][1]
                    name = "Locomo-0" if dataset == "Locomo" else dataset
                    items += [ItemScore(name, i, {}) for i in range(n)]
                    given[dataset] = per_system[system]
                report = norm_score(items, constants, f"{tag_type}/{tag}", given)
                assert report.weighted_average == pytest.approx(weighted, **TOL)
                assert report.average == pytest.approx(body["summary"]["average"][system], **TOL)
                assert report.z_score == pytest.approx(body["summary"]["z_score"][system], **TOL)
                checked += 1
    assert checked == 52  # 8 systems x 7 groups, less mem0 and wo_memory in Long-Short and Open-Domain


# --------------------------------------------------------------------------------------------------
# Unit tests on tiny constants
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """A memorybench-data layout with two groups and four datasets."""
    configs = tmp_path / "THUIR-MemoryBench" / "configs"
    (configs / "datasets").mkdir(parents=True)
    registry = {
        "QA": {"task_tag": "T1", "domain_tag": "D", "test_metrics": ["rougel"]},
        "Judge": {"task_tag": "T1", "domain_tag": "D", "test_metrics": ["score"]},
        "JRE-L": {"task_tag": "T1", "domain_tag": "D", "test_metrics": ["Rouge-L", "CLI"]},
        "Locomo-0": {"task_tag": "T2", "domain_tag": "D", "test_metrics": ["f1"]},
        "Locomo-1": {"task_tag": "T2", "domain_tag": "D", "test_metrics": ["f1"]},
        "Acc": {"task_tag": "T2", "domain_tag": "D", "test_metrics": ["accuracy"]},
    }
    constants = {"task": {
        "T1": {"summary": {"dataset_min": {"QA": 0.0, "Judge": 1, "JRE-L": 2},
                           "dataset_max": {"QA": 0.5, "Judge": 5, "JRE-L": 8},
                           "dataset_mu": {"QA": 0.25, "Judge": 3, "JRE-L": 5},
                           "dataset_sigma": {"QA": 0.1, "Judge": 0, "JRE-L": 2}}},
        "T2": {"summary": {"dataset_min": {"Locomo": 0, "Acc": 0}, "dataset_max": {"Locomo": 1, "Acc": 1}}},
    }}
    (configs / "datasets" / "each.json").write_text(json.dumps(registry))
    (configs / "final_evaluate_summary_wo_details.json").write_text(json.dumps(constants))
    return tmp_path


def test_hand_computed_norm_score(tiny: Path) -> None:
    items = [ItemScore("QA", 0, {"rougel": 0.5}), ItemScore("QA", 1, {"rougel": 0.0}),
             ItemScore("QA", 2, {"rougel": 0.75}),  # above max: not clipped
             ItemScore("Judge", 0, {"score": 5})]
    report = norm_score(items, load_constants(tiny), "task/T1")
    qa, judge = report.row("QA"), report.row("Judge")
    assert (qa.n, qa.average, qa.norm_sum, qa.norm_score) == (3, pytest.approx(1.25 / 3), 2.5, pytest.approx(2.5 / 3))
    assert qa.z_sum == pytest.approx(2.5 - 2.5 + 5.0)
    assert (judge.norm_score, judge.z_mean) == (1.0, 0.0)  # sigma 0 -> z 0
    assert report.average == pytest.approx((2.5 / 3 + 1.0) / 2)
    assert report.weighted_average == pytest.approx(3.5 / 4)
    assert report.z_score == pytest.approx(5.0 / 4)
    assert report.missing == ("JRE-L",)
    table = format_table(report)
    assert "| QA | rougel | 3 |" in table and "0.8750" in table and "Not in this run: JRE-L." in table


def test_locomo_folds_into_one_dataset_and_booleans_count(tiny: Path) -> None:
    items = [ItemScore("Locomo-0", 0, {"f1": 0.5}), ItemScore("Locomo-1", 0, {"f1": 1.0}),
             ItemScore("Acc", 0, {"accuracy": True}), ItemScore("Acc", 1, {"accuracy": False})]
    report = norm_score(items, load_constants(tiny), "T2")  # a bare group name resolves when unique
    assert [r.dataset for r in report.rows] == ["Locomo", "Acc"]
    assert report.row("Locomo").average == 0.75 and report.row("Acc").average == 0.5
    assert report.z_score is None and "z_normalized_average" not in report.to_summary()


def test_given_average_for_llm_merged_dataset(tiny: Path) -> None:
    items = [ItemScore("JRE-L", i, {"Rouge-L": 0.1, "CLI": 12.0}) for i in range(4)]
    constants = load_constants(tiny)
    with pytest.raises(LogFormatError, match=r"metrics\.llm_as_judge_score"):
        norm_score(items, constants, "task/T1")
    report = norm_score(items, constants, "task/T1", given_averages={"JRE-L": 7.0})
    row = report.row("JRE-L")
    assert not row.from_items and row.norm_sum == pytest.approx(4 * 5 / 6) and row.z_mean == pytest.approx(1.0)
    stored = [ItemScore("JRE-L", i, {"llm_as_judge_score": s}) for i, s in enumerate([6, 7, 8, 7])]
    assert norm_score(stored, constants, "task/T1").weighted_average == pytest.approx(report.weighted_average)
    with pytest.raises(ConfigError, match="given_averages names \\['QA'\\]"):
        norm_score(items, constants, "task/T1", given_averages={"QA": 0.2})


def test_bad_record_names_file_index_and_field(tmp_path: Path) -> None:
    path = tmp_path / "evaluate_details.json"
    path.write_text(json.dumps([{"test_idx": 0, "dataset": "QA", "metrics": {"rougel": 0.1}},
                                {"test_idx": "1", "dataset": "QA", "metrics": {"rougel": 0.2}}]))
    with pytest.raises(LogFormatError, match=r"evaluate_details\.json' index 1: field 'test_idx'"):
        read_item_scores(path)
    jsonl = tmp_path / "scores.jsonl"
    jsonl.write_text('{"test_idx": 0, "dataset": "QA", "metrics": {"rougel": 0.1}}\n\n'
                     '{"test_idx": 1, "dataset": "QA"}\n')
    with pytest.raises(LogFormatError, match=r"scores\.jsonl' line 3: field 'metrics'"):
        read_item_scores(jsonl)


def test_bad_metric_value_names_the_record(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text('{"test_idx": 0, "dataset": "QA", "metrics": {"rougel": 0.1}}\n'
                    '{"test_idx": 1, "dataset": "QA", "metrics": {"rougel": "high"}}\n')
    with pytest.raises(LogFormatError, match=r"line 2: field 'metrics\.rougel' must be a finite number"):
        norm_score(read_item_scores(path), load_constants(tiny), "task/T1")


def test_unknown_dataset_wrong_group_duplicate_and_group_are_errors(tiny: Path) -> None:
    constants = load_constants(tiny)
    with pytest.raises(LogFormatError, match=r"x\.jsonl line 4: unknown dataset 'NoSuch'.*knows \['Acc'"):
        norm_score([ItemScore("NoSuch", 0, {}, source="x.jsonl line 4")], constants, "task/T1")
    with pytest.raises(ConfigError, match=r"'Acc' is not in group 'task/T1' \(its groups are task/T2"):
        norm_score([ItemScore("Acc", 0, {"accuracy": 1})], constants, "task/T1")
    with pytest.raises(LogFormatError, match="repeats dataset 'QA' test_idx 3"):
        norm_score([ItemScore("QA", 3, {"rougel": 0.1}), ItemScore("QA", 3, {"rougel": 0.2})], constants, "task/T1")
    with pytest.raises(ConfigError, match=r"group 'task/T9' is not in .*\['task/T1', 'task/T2'\]"):
        constants.group("task/T9")


def test_constants_location_and_errors(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tiny))
    assert set(load_constants().groups) == {"task/T1", "task/T2"}
    constants_file = tiny / "THUIR-MemoryBench" / "configs" / "final_evaluate_summary_wo_details.json"
    assert load_constants(constants_file).registry_path.name == "each.json"  # found beside the file
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(ConfigError, match=DATA_ENV):
        load_constants()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"task": {"T1": {"summary": {"dataset_min": {"QA": 0}, "dataset_max": {"QA": "1"}}}}}))
    with pytest.raises(ArtifactError, match=r"task/T1\.summary\.dataset_max\['QA'\] must be a finite number"):
        load_constants(bad, registry=tiny / "THUIR-MemoryBench/configs/datasets/each.json")
    with pytest.raises(ArtifactError, match="dataset registry .* does not exist"):
        load_constants(constants_file, registry=tmp_path / "missing.json")
