"""MemoryBench scoring: per-dataset averages, Norm-Score (min–max) and z-score from per-item records.

MemoryBench's `src/single_summary.py` (LittleDinoC/MemoryBench-code @ 59d1b60, the version the published
constants and UNO's summaries come from) scores a run like this:

1. one number per test item: the dataset's only test metric (`configs/datasets/each.json`), or, for
   datasets with several metrics, the one `evaluate_single_only_one_metric` picks or merges
   (`_SCORE_METRIC` below); a boolean counts as 1/0;
2. each item is normalised with fixed per-dataset constants of the task or domain group
   (`configs/final_evaluate_summary_wo_details.json`):
   min–max ``(s - min) / (max - min)`` (0 when max <= min) and z ``(s - mu) / sigma``
   (0 when sigma <= 1e-6); nothing is clipped;
3. per dataset: mean raw score, and ``[sum, n, mean]`` of the normalised items;
4. per run: ``average`` = mean over datasets of the min–max means; ``weighted_average`` = sum of all
   normalised items / number of items (the Norm-Score the leaderboard shows); ``z_score`` = sum of
   all z items / number of items. Locomo-0 … Locomo-9 count as one dataset, "Locomo".

(Later THUIR/MemoryBench versions read one ``llm_judge_score`` in [0, 1] per item instead; the
published constants are on the per-dataset scales above, so this module follows the earlier rule.)

    >>> from uno_graph.memorybench import format_table, load_constants, norm_score, read_item_scores
    >>> constants = load_constants("memorybench-data")                          # doctest: +SKIP
    >>> items = read_item_scores("task/Long-Long/uno/evaluate_details.json")      # doctest: +SKIP
    >>> report = norm_score(items, constants, group="task/Long-Long")           # doctest: +SKIP
    >>> print(format_table(report))                                              # doctest: +SKIP

Unlike user logs, a score file is all-or-nothing: one bad record raises `LogFormatError` naming the
file, the record and the field, because dropping it would silently change the score.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uno_graph.errors import ArtifactError, ConfigError, LogFormatError

DATA_ENV = "UNO_GRAPH_MEMORYBENCH_DATA"
CONSTANTS_FILE = Path("THUIR-MemoryBench/configs/final_evaluate_summary_wo_details.json")
REGISTRY_FILE = Path("THUIR-MemoryBench/configs/datasets/each.json")

LLM_MERGE_METRIC = "llm_as_judge_score"
# Datasets with several test metrics: the one score per item that MemoryBench's
# `evaluate_single_only_one_metric` returns (MemoryBench src/dataset/<Name>.py).
_SCORE_METRIC = {
    "LimitGen-Syn": "rating",  # best 1-5 judge rating among the three generated limitations
    "JRE-L": LLM_MERGE_METRIC,  # LLM merges Rouge-L, BERTScore-F1, CLI, FKGL, DCRS into an integer 1-10
    "JuDGE": LLM_MERGE_METRIC,  # LLM merges the ten JuDGE metrics into an integer 1-10
    "IdeaBench": LLM_MERGE_METRIC,  # LLM merges BERTScore and the three LLM ranking scores into 1-10
}
_Z_MIN_SIGMA = 1e-6  # MemoryBench: a z-score is 0 when the dataset's sigma is at most this


# --------------------------------------------------------------------------------------------------
# Constants and registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of MemoryBench's registry and the metric its items are scored by."""

    name: str
    task: str
    domain: str
    test_metrics: tuple[str, ...]

    @property
    def score_metric(self) -> str | None:
        """The per-item metric the Norm-Score uses; None when MemoryBench's rule for it is unknown here."""
        if len(self.test_metrics) == 1:
            return self.test_metrics[0]
        return _SCORE_METRIC.get(self.name)

    @property
    def needs_llm_merge(self) -> bool:
        """True when the per-item score is an LLM merge of several metrics (not recomputable offline)."""
        return self.score_metric == LLM_MERGE_METRIC


@dataclass(frozen=True)
class GroupConstants:
    """Normalisation constants of one task or domain group, e.g. ``task/Short-Short``."""

    group: str
    dataset_min: Mapping[str, float]
    dataset_max: Mapping[str, float]
    dataset_mu: Mapping[str, float] | None = None
    dataset_sigma: Mapping[str, float] | None = None

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.dataset_min)

    @property
    def has_z(self) -> bool:
        return self.dataset_mu is not None and self.dataset_sigma is not None


@dataclass(frozen=True)
class MemoryBenchConstants:
    """The normalisation constants of every group plus the dataset registry."""

    groups: Mapping[str, GroupConstants]
    datasets: Mapping[str, DatasetSpec]
    constants_path: Path
    registry_path: Path

    def group(self, name: str) -> GroupConstants:
        """Look up ``task/<T>`` or ``domain/<D>``; a bare ``<T>`` works when only one group has that name."""
        if name in self.groups:
            return self.groups[name]
        matches = [g for g in self.groups if g.split("/", 1)[1] == name]
        if len(matches) == 1:
            return self.groups[matches[0]]
        raise ConfigError(f"group {name!r} is not in {str(self.constants_path)!r}; "
                          f"use one of {sorted(self.groups)}")


def data_root(path: str | Path | None = None) -> Path:
    """The memorybench-data folder: `path`, else ``$UNO_GRAPH_MEMORYBENCH_DATA``.

    Raises:
        ConfigError: neither is given, or the folder does not exist.
    """
    if path is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise ConfigError(f"no MemoryBench data given; pass the memorybench-data folder or the constants "
                              f"file, or set {DATA_ENV} to the memorybench-data folder")
        path = env
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"MemoryBench data folder {str(root)!r} does not exist")
    return root


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ArtifactError(f"{what} {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{what} {str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc


def _number_map(value: Any, path: Path, where: str, *, required: bool = True) -> dict[str, float] | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise ArtifactError(f"{str(path)!r}: {where} must be an object of dataset -> number, "
                            f"got {type(value).__name__}")
    out: dict[str, float] = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ArtifactError(f"{str(path)!r}: {where}[{name!r}] must be a finite number, got {number!r}")
        out[name] = float(number)
    return out


def _load_groups(path: Path) -> dict[str, GroupConstants]:
    data = _read_json(path, "MemoryBench constants file")
    if not isinstance(data, dict) or not data:
        raise ArtifactError(f"{str(path)!r} must be an object {{'task'|'domain': {{group: {{'summary': ...}}}}}}")
    groups: dict[str, GroupConstants] = {}
    for tag_type, tags in data.items():
        if not isinstance(tags, dict):
            raise ArtifactError(f"{str(path)!r}: {tag_type} must be an object of groups")
        for tag, body in tags.items():
            where = f"{tag_type}/{tag}.summary"
            summary = body.get("summary") if isinstance(body, dict) else None
            if not isinstance(summary, dict):
                raise ArtifactError(f"{str(path)!r}: {where} is missing")
            lo = _number_map(summary.get("dataset_min"), path, f"{where}.dataset_min")
            hi = _number_map(summary.get("dataset_max"), path, f"{where}.dataset_max")
            mu = _number_map(summary.get("dataset_mu"), path, f"{where}.dataset_mu", required=False)
            sigma = _number_map(summary.get("dataset_sigma"), path, f"{where}.dataset_sigma", required=False)
            for field_name, other in (("dataset_max", hi), ("dataset_mu", mu), ("dataset_sigma", sigma)):
                if other is not None and set(other) != set(lo):
                    raise ArtifactError(f"{str(path)!r}: {where}.{field_name} names {sorted(other)} but "
                                        f"dataset_min names {sorted(lo)}")
            groups[f"{tag_type}/{tag}"] = GroupConstants(f"{tag_type}/{tag}", lo, hi, mu, sigma)
    return groups


def _load_registry(path: Path) -> dict[str, DatasetSpec]:
    data = _read_json(path, "MemoryBench dataset registry")
    if not isinstance(data, dict):
        raise ArtifactError(f"{str(path)!r} must be an object of dataset name -> config")
    # each.json maps name -> config (the key is the name); task.json / domain.json map group -> [config, ...]
    entries: list[tuple[str, str | None, Any]] = []  # (where, default name, config)
    for key, value in data.items():
        if isinstance(value, list):
            entries += [(f"{key}[{i}]", None, e) for i, e in enumerate(value)]
        else:
            entries.append((key, key, value))
    specs: dict[str, DatasetSpec] = {}
    for where, default_name, entry in entries:
        if not isinstance(entry, dict):
            raise ArtifactError(f"{str(path)!r}: entry {where!r} must be an object, got {type(entry).__name__}")
        name = entry.get("dataset_name", default_name)
        metrics = entry.get("test_metrics")
        for field_name, value in (("dataset_name", name), ("task_tag", entry.get("task_tag")),
                                  ("domain_tag", entry.get("domain_tag"))):
            if not isinstance(value, str) or not value:
                raise ArtifactError(f"{str(path)!r}: entry {where!r} field {field_name!r} must be a non-empty "
                                    f"string, got {value!r}")
        if not (isinstance(metrics, list) and metrics and all(isinstance(m, str) for m in metrics)):
            raise ArtifactError(f"{str(path)!r}: entry {where!r} field 'test_metrics' must be a non-empty list "
                                f"of metric names, got {metrics!r}")
        specs[name] = DatasetSpec(name, entry["task_tag"], entry["domain_tag"], tuple(metrics))
    return specs


def load_constants(path: str | Path | None = None, registry: str | Path | None = None) -> MemoryBenchConstants:
    """Load MemoryBench's normalisation constants and dataset registry.

    Args:
        path: the constants JSON (``final_evaluate_summary_wo_details.json``, THUIR or LittleDinoC copy)
            or the memorybench-data folder; default ``$UNO_GRAPH_MEMORYBENCH_DATA``.
        registry: the dataset registry (``configs/datasets/each.json``; ``task.json`` / ``domain.json``
            work too); default ``datasets/each.json`` beside the constants file, or the data folder's copy.

    Raises:
        ConfigError: no path and no environment variable.
        ArtifactError: a file is missing or malformed (the message names the file and the field).
    """
    if path is not None and Path(path).is_file():
        constants_path = Path(path)
        default_registry = constants_path.parent / "datasets" / "each.json"
    else:
        root = data_root(path)
        constants_path, default_registry = root / CONSTANTS_FILE, root / REGISTRY_FILE
    registry_path = Path(registry) if registry is not None else default_registry
    return MemoryBenchConstants(_load_groups(constants_path), _load_registry(registry_path),
                                constants_path, registry_path)


# --------------------------------------------------------------------------------------------------
# Per-item records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemScore:
    """One evaluated test item: ``{test_idx, dataset, metrics}`` as in MemoryBench's evaluate_details.json."""

    dataset: str
    test_idx: int
    metrics: Mapping[str, Any]
    source: str = "<memory>"  # where the record came from, for error messages


def _parse_record(obj: Any, source: str) -> ItemScore:
    if not isinstance(obj, dict):
        raise LogFormatError(f"{source}: a record must be a JSON object, got {type(obj).__name__}")
    dataset, test_idx, metrics = obj.get("dataset"), obj.get("test_idx"), obj.get("metrics")
    if not isinstance(dataset, str) or not dataset:
        raise LogFormatError(f"{source}: field 'dataset' must be a non-empty string, got {dataset!r}")
    if isinstance(test_idx, bool) or not isinstance(test_idx, int):
        raise LogFormatError(f"{source}: field 'test_idx' must be an integer, got {test_idx!r}")
    if not isinstance(metrics, dict):
        raise LogFormatError(f"{source}: field 'metrics' must be an object of metric -> value, got {metrics!r}")
    return ItemScore(dataset, test_idx, metrics, source)


def read_item_scores(path: str | Path) -> list[ItemScore]:
    """Read per-item records: a JSON list (evaluate_details.json) or JSONL of the same objects.

    Raises:
        LogFormatError: the file is missing, empty, not JSON, or a record lacks a field
            (the message names the file, the index or line, and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"score file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    items: list[ItemScore] = []
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LogFormatError(f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        for i, obj in enumerate(records):
            items.append(_parse_record(obj, f"{str(path)!r} index {i}"))
    else:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            source = f"{str(path)!r} line {line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LogFormatError(f"{source}: not valid JSON ({exc.msg})") from exc
            items.append(_parse_record(obj, source))
    if not items:
        raise LogFormatError(f"score file {str(path)!r} holds no record")
    return items


def item_score(item: ItemScore, spec: DatasetSpec) -> float:
    """The one number MemoryBench scores `item` by (booleans count 1/0).

    Raises:
        LogFormatError: the metric is missing or not a finite number.
        ConfigError: the dataset has several metrics and no known rule picks one.
    """
    metric = spec.score_metric
    if metric is None:
        raise ConfigError(f"dataset {spec.name!r} has several test metrics {list(spec.test_metrics)} and no "
                          f"known rule for its single score; store it as metrics[{LLM_MERGE_METRIC!r}]")
    if metric not in item.metrics:
        hint = ""
        if spec.needs_llm_merge:
            hint = (f"; {spec.name}'s per-item score is MemoryBench's LLM merge of {list(spec.test_metrics)}, "
                    f"which this record does not store: add it, or pass given_averages={{{spec.name!r}: <mean>}} "
                    f"(e.g. the 'average' of a published summary.json)")
        raise LogFormatError(f"{item.source}: field 'metrics.{metric}' is missing (dataset {item.dataset!r}, "
                             f"test_idx {item.test_idx}); the record has {sorted(item.metrics)}{hint}")
    value = item.metrics[metric]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise LogFormatError(f"{item.source}: field 'metrics.{metric}' must be a finite number or a boolean, "
                             f"got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRow:
    """One dataset's result. ``norm_sum / n = norm_score``; ``z_sum / n = z_mean``."""

    dataset: str
    metric: str
    n: int
    average: float  # mean raw score
    norm_sum: float
    norm_score: float  # mean min–max normalised score
    z_sum: float | None
    z_mean: float | None
    from_items: bool  # False: `average` was given (an LLM-merged score not stored per item)


@dataclass(frozen=True)
class NormScoreReport:
    """MemoryBench's summary of one run in one group."""

    group: str
    rows: tuple[DatasetRow, ...]
    average: float  # mean over datasets of the Norm-Scores
    weighted_average: float  # Norm-Score over all items; what the MemoryBench leaderboard shows
    z_score: float | None
    missing: tuple[str, ...]  # datasets of the group without items (MemoryBench averages what is there)

    @property
    def n(self) -> int:
        return sum(r.n for r in self.rows)

    def row(self, dataset: str) -> DatasetRow:
        for r in self.rows:
            if r.dataset == dataset:
                return r
        raise KeyError(f"no row for dataset {dataset!r}; rows: {[r.dataset for r in self.rows]}")

    def to_summary(self) -> dict[str, Any]:
        """The report in the shape of MemoryBench's summary.json."""
        summary: dict[str, Any] = {"average": self.average, "weighted_average": self.weighted_average}
        if self.z_score is not None:
            summary["z_score"] = self.z_score
        out: dict[str, Any] = {
            "summary": summary,
            "average": {r.dataset: r.average for r in self.rows},
            "minmax_normalized_average": {r.dataset: [r.norm_sum, r.n, r.norm_score] for r in self.rows},
        }
        if self.z_score is not None:
            out["z_normalized_average"] = {r.dataset: [r.z_sum, r.n, r.z_mean] for r in self.rows}
        return out


def _constants_name(dataset: str) -> str:
    # MemoryBench folds the ten LoCoMo conversations into one dataset for normalisation and averaging.
    return "Locomo" if dataset.startswith("Locomo") else dataset


def _minmax(score: float, lo: float, hi: float) -> float:
    return (score - lo) / (hi - lo) if hi > lo else 0.0


def _z(score: float, mu: float, sigma: float) -> float:
    return (score - mu) / sigma if sigma > _Z_MIN_SIGMA else 0.0


def norm_score(items: Iterable[ItemScore], constants: MemoryBenchConstants, group: str = "task/Short-Short",
               given_averages: Mapping[str, float] | None = None) -> NormScoreReport:
    """Score per-item records the way MemoryBench's summary does (see the module docstring).

    Args:
        items: the run's records, e.g. from `read_item_scores`.
        constants: from `load_constants`.
        group: ``task/<T>`` or ``domain/<D>`` whose constants normalise the scores.
        given_averages: dataset -> mean raw score, used instead of the items' scores for datasets whose
            per-item score is an LLM merge the records do not store (JRE-L, JuDGE, IdeaBench). Both
            normalisations are linear, so a dataset's normalised mean follows from its raw mean; the
            item count still comes from the records.

    Raises:
        LogFormatError: a record names an unknown dataset, repeats an item, or lacks its metric.
        ConfigError: unknown group, a dataset outside the group, or a given average for an absent dataset.
    """
    consts = constants.group(group)
    given = dict(given_averages or {})
    by_dataset: dict[str, list[ItemScore]] = {}
    seen: dict[tuple[str, int], str] = {}
    for item in items:
        if item.dataset not in constants.datasets:
            raise LogFormatError(f"{item.source}: unknown dataset {item.dataset!r}; the registry "
                                 f"{str(constants.registry_path)!r} knows {sorted(constants.datasets)}")
        name = _constants_name(item.dataset)
        if name not in consts.dataset_min:
            spec = constants.datasets[item.dataset]
            raise ConfigError(f"{item.source}: dataset {item.dataset!r} is not in group {consts.group!r} (its groups "
                              f"are task/{spec.task} and domain/{spec.domain}); {consts.group} has "
                              f"{list(consts.datasets)}")
        key = (item.dataset, item.test_idx)
        if key in seen:
            raise LogFormatError(f"{item.source}: repeats dataset {item.dataset!r} test_idx {item.test_idx} "
                                 f"of {seen[key]}; each item must be scored once")
        seen[key] = item.source
        by_dataset.setdefault(name, []).append(item)
    if not by_dataset:
        raise LogFormatError("no item to score")
    absent = sorted(set(given) - set(by_dataset))
    if absent:
        raise ConfigError(f"given_averages names {absent}, which have no item in this run; "
                          f"datasets present: {list(by_dataset)}")

    rows = []
    for name, group_items in by_dataset.items():
        lo, hi = consts.dataset_min[name], consts.dataset_max[name]
        mu = consts.dataset_mu[name] if consts.dataset_mu is not None else None
        sigma = consts.dataset_sigma[name] if consts.dataset_sigma is not None else None
        n = len(group_items)
        spec = constants.datasets[group_items[0].dataset]
        metric = spec.score_metric or "?"
        if name in given:
            average = float(given[name])
            norm_mean = _minmax(average, lo, hi)
            norm_sum = norm_mean * n
            z_mean = _z(average, mu, sigma) if mu is not None and sigma is not None else None
            z_sum = z_mean * n if z_mean is not None else None
            rows.append(DatasetRow(name, metric, n, average, norm_sum, norm_mean, z_sum, z_mean, from_items=False))
            continue
        # MemoryBench sorts by (dataset, test_idx) before summing; same order, same rounding.
        ordered = sorted(group_items, key=lambda it: (it.dataset, it.test_idx))
        scores = [item_score(it, constants.datasets[it.dataset]) for it in ordered]
        norm_sum = sum(_minmax(s, lo, hi) for s in scores)
        z_sum = sum(_z(s, mu, sigma) for s in scores) if mu is not None and sigma is not None else None
        rows.append(DatasetRow(name, metric, n, sum(scores) / n, norm_sum, norm_sum / n, z_sum,
                               z_sum / n if z_sum is not None else None, from_items=True))

    total = sum(r.n for r in rows)
    z_score = sum(r.z_sum for r in rows if r.z_sum is not None) / total if consts.has_z else None
    return NormScoreReport(
        group=consts.group,
        rows=tuple(rows),
        average=sum(r.norm_score for r in rows) / len(rows),
        weighted_average=sum(r.norm_sum for r in rows) / total,
        z_score=z_score,
        missing=tuple(d for d in consts.datasets if d not in by_dataset),
    )


def format_table(report: NormScoreReport, digits: int = 4) -> str:
    """A Markdown table of the report: one row per dataset, then the totals."""
    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [f"MemoryBench {report.group} ({report.n} items)", "",
             "| dataset | metric | n | average | Norm-Score | z |", "|---|---|---:|---:|---:|---:|"]
    for r in report.rows:
        metric = r.metric if r.from_items else f"{r.metric} (given mean)"
        lines.append(f"| {r.dataset} | {metric} | {r.n} | {num(r.average)} | {num(r.norm_score)} | {num(r.z_mean)} |")
    lines.append(f"| **all (item-weighted)** | | {report.n} | | **{num(report.weighted_average)}** "
                 f"| {num(report.z_score)} |")
    lines.append(f"| all (mean of datasets) | | {len(report.rows)} | | {num(report.average)} | |")
    if report.missing:
        lines += ["", f"Not in this run: {', '.join(report.missing)}."]
    return "\n".join(lines)


__all__ = [
    "DATA_ENV", "LLM_MERGE_METRIC", "DatasetRow", "DatasetSpec", "GroupConstants", "ItemScore",
    "MemoryBenchConstants", "NormScoreReport", "data_root", "format_table", "item_score",
    "load_constants", "norm_score", "read_item_scores"
]
