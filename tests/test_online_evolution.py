"""`examples/online_evolution.py`: serve → simulated users react → incremental learn → reload, on the tiny LM;
and the simulated users of `examples/simulated_users.py`, who react as the example logs' users did."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.requires import require_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TINY = {"min_cluster_size": 4, "max_new_tokens": 8, "gap_threshold": 0.99, "win_rate_threshold": 0.0,
        "min_win_lower_bound": 0.0, "train": {"epochs": 1, "batch_size": 4, "max_prompt_tokens": 64,
                                              "max_answer_tokens": 32}}  # test_pipeline's settings for speed


@pytest.fixture()
def users(monkeypatch):
    """The simulated-users module, imported with examples/ on the path (and forgotten afterwards)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("checks", "make_example_logs", "simulated_users"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import simulated_users

    yield simulated_users
    for name in ("checks", "make_example_logs", "simulated_users"):
        sys.modules.pop(name, None)


def test_simulated_users_react_by_their_topics_want(users):
    from checks import check
    from make_example_logs import COMPLAINTS, NOISY_REACTIONS, THANKS

    rng = random.Random(0)
    good = users.react("recipes", "How do I make an omelette?", "1. Beat eggs.\n2. Heat the pan.\n3. Cook.", rng)
    assert good.satisfied and good.followup in THANKS and good.feedback() == {"rating": 1.0}

    reactions = [users.react("travel", "How do I plan a two-week trip to Vietnam?",
                             "Vietnam is long. Start in Hanoi and go south.", random.Random(k)) for k in range(200)]
    assert not any(r.satisfied for r in reactions) and all(r.followup in COMPLAINTS["travel"] for r in reactions)
    edits = [r.edited_response for r in reactions if r.edited_response]
    assert 0.6 < len(edits) / len(reactions) < 0.8  # the example logs' ~70 % of failing answers
    assert all(check({"metadata": {"topic": "travel"}}, e) for e in edits)
    assert all(e.startswith("TL;DR: Vietnam is long.") for e in edits)

    # a python question the users know a snippet for gets it; another one only when the answer holds code
    known = users.edit_for("python", "How do I reverse a list in Python?", "Use slicing.")
    assert known is not None and "items[::-1]" in known
    assert users.edit_for("python", "How can I swap two variables in Python?", "Use a tuple.") is None
    fenced = users.edit_for("python", "How can I swap two variables in Python?", "Like so:\n```\na, b = b, a\n```")
    assert fenced == "Here's how:\n\n```python\na, b = b, a\n```"
    assert users.edit_for("geography", "What is the capital of Japan?", "Japan is an island country. Big.") == \
        "The capital of Japan is Tokyo."

    noisy = [users.react("smalltalk-noisy", "Any tips for starting a book club?", "Pick a short novel first.",
                         random.Random(k)) for k in range(50)]
    turns = {turn for turn, *_ in NOISY_REACTIONS}
    assert all(r.followup in turns for r in noisy) and {r.rating for r in noisy} >= {-1, 1}


def test_two_rounds_on_the_tiny_lm_learn_incrementally_from_recorded_logs_and_feedback(tmp_path, tiny_lm_dir):
    require_module("matplotlib", "pip install 'uno-graph[eval]'")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    work, out = tmp_path / "work", tmp_path / "report"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    # sampled answers: greedy, the random tiny LM answers only blank lines, which are not exported for learning
    proc = subprocess.run([sys.executable, str(EXAMPLES / "online_evolution.py"), "--rounds", "2", "--per-round", "5",
                           "--topics", "recipes,travel", "--workdir", str(work), "--out", str(out),
                           "--base-model", str(tiny_lm_dir), "--epochs", "1", "--config", str(config),
                           "--temperature", "1.0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "round 2:" in proc.stdout

    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [1, 2]
    assert [json.loads((out / f"round-0{n}.json").read_text()) for n in (1, 2)] == rounds
    first, second = rounds
    for r in rounds:
        assert set(r["satisfaction"]) == {"recipes", "travel"} and r["questions"] == 10 and r["learned"]
        assert all(0 <= v <= 1 for v in r["satisfaction"].values()) and r["learn_s"] > 0
    assert first["logs"]["total"] == 10 and second["logs"]["total"] == 20

    # round 1 learned from scratch and the reloaded system served round 2 with its adapters
    round1_ids = {c["id"] for c in first["cluster_table"]}
    assert first["clusters"]["new"] and set(first["clusters"]["new"]) == round1_ids
    assert first["reload"]["added"] and set(first["routes"]) == {"base"}
    # through an Expert or a Critic adapter: which path the gap test picks for the random tiny LM varies
    assert sum(n for route, n in second["routes"].items() if route in ("expert", "critic")) > 0
    # round 2 was incremental: round 1's logs reused, its clusters kept with their ids
    assert second["reuse"]["distill"]["reused"] == first["logs"]["exported"]
    assert second["reuse"]["distill"]["computed"] == second["logs"]["exported"] - first["logs"]["exported"]
    kept = {c["id"]: c["status"] for c in second["cluster_table"] if c["id"] in round1_ids}
    assert kept and set(kept.values()) <= {"retrained", "unchanged"}
    assert not set(second["clusters"]["new"]) & round1_ids

    # what was learned from: recorded logs with user ids, follow-ups and feedback (ratings and edits)
    logs = [json.loads(x) for x in (work / "recorded_logs.jsonl").read_text().splitlines()]
    assert len(logs) == second["logs"]["exported"]
    assert all(r["user_id"] and r["user_id"] == r["metadata"]["user_id"] for r in logs)
    assert all(len(r["messages"]) == 3 and r["messages"][2]["role"] == "user" for r in logs)
    assert all(r["metadata"]["source"] == "graph" and r["metadata"]["topic"] in ("recipes", "travel") for r in logs)
    assert any("edited_response" in r["feedback"] for r in logs) and any("rating" in r["feedback"] for r in logs)
    events = [json.loads(x)["event"] for x in (work / "events.jsonl").read_text().splitlines()]
    assert {"answer", "followup", "feedback"} <= set(events)
    assert (out / "online_evolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
