""".venv/bin/python examples/unseen/add_test_users.py

Writes `examples/unseen/test_users.jsonl`: the 40 test items of `test.jsonl`, each with the `user_id`
of a user who wrote logs in its topic (a returning user asking a new question), so that routing by
user (`uno-graph eval --systems uno_user`) can be measured on this development set. The test set
was made without user ids; they are added here afterwards, deterministically: in a want topic the
topic's want users (the users with at least 3 of its logs) in turn, in `inconsistent` its users in
turn, in the order of their first log.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def topic_users(logs: list[dict]) -> dict[str, list[str]]:
    counts: dict[str, Counter] = {}
    for log in logs:
        counts.setdefault(log["metadata"]["topic"], Counter())[log["user_id"]] += 1
    out = {}
    for topic, users in counts.items():
        regular = [u for u in users if users[u] >= 3] if topic != "inconsistent" else list(users)
        out[topic] = regular
    return out


def main() -> None:
    logs = [json.loads(line) for line in (HERE / "logs.jsonl").read_text().splitlines() if line.strip()]
    users = topic_users(logs)
    seen: Counter = Counter()
    lines = []
    for line in (HERE / "test.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        topic = item["metadata"]["topic"]
        item["user_id"] = users[topic][seen[topic] % len(users[topic])]
        seen[topic] += 1
        lines.append(json.dumps(item, ensure_ascii=False))
    (HERE / "test_users.jsonl").write_text("\n".join(lines) + "\n")
    print({t: u for t, u in users.items()})


if __name__ == "__main__":
    main()
