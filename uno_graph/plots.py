"""PNG plots of an evaluation summary (`uno-graph eval --plot DIR`; needs the `eval` extra: matplotlib).

* ``before_after.png``: per topic, the share of answers that pass the check, one bar per system.
* ``score_vs_tokens.png``: each system's score against its extra input tokens over base (the shape
  of the paper's Figure 2: better answers for fewer added tokens is up and to the left).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uno_graph.errors import MissingDependencyError

COLORS = {"base": "#8c8c8c", "uno": "#1f77b4", "uno_single": "#2ca02c", "rules_in_context": "#ff7f0e",
          "topic_sft": "#9467bd", "uno_user": "#17becf", "uno_query": "#aec7e8"}


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependencyError("plots need matplotlib: pip install 'uno-graph[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _score_name(summary: dict[str, Any]) -> str:
    """The headline score: the check when one ran, else ROUGE-L, else the judge's win rate."""
    first = next(iter(summary["systems"].values()))
    for key in ("check", "rouge_l", "judge_win_rate"):
        if first.get(key) is not None:
            return key
    return "check"


def plot_summary(summary: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the PNGs for `summary` (from `evaluate`) into `out_dir`; returns their paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    systems = list(summary["systems"])
    written = []

    topics = list(summary["topics"]) or ["all"]
    per_topic = summary["topics"] or {"all": summary["systems"]}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(topics) + 2), 4.2))
    width = 0.8 / max(len(systems), 1)
    for k, name in enumerate(systems):
        values = [(per_topic[t].get(name, {}).get("check") or 0.0) * 100 for t in topics]
        xs = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(topics))]
        ax.bar(xs, values, width, label=name, color=COLORS.get(name))
    ax.set_xticks(range(len(topics)), topics, rotation=15)
    ax.set_ylabel("answers satisfying the topic's users (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Before / after: satisfaction per topic")
    ax.legend(fontsize=8, ncols=min(len(systems), 4), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.tight_layout()
    path = out / "before_after.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    key = _score_name(summary)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name in systems:
        row = summary["systems"][name]
        x, y = row.get("extra_input_tokens"), row.get(key)
        if x is None or y is None:
            continue
        ax.scatter([x], [y * 100 if key == "check" else y], s=80, color=COLORS.get(name), label=name)
        ax.annotate(name, (x, y * 100 if key == "check" else y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("extra input tokens per query (vs base)")
    ax.set_ylabel({"check": "answers passing the check (%)", "rouge_l": "ROUGE-L",
                   "judge_win_rate": "judge win rate vs base"}[key])
    ax.set_title("Score against added input tokens")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "score_vs_tokens.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
