"""Per-user scope: no user dominates a cluster's training data, and a user's logs can be forgotten.

**Share cap** (`cap_user_share`, `UnoConfig.max_user_share`, default 0.25; 1.0 = off). A cluster's
training examples are its members' pairs with an endorsed answer. Each user keeps at most
``L = max(⌊share × N⌋, ⌈N / U⌉)`` of them (N examples, U users; a log without a user id counts as a
user of its own and is never cut), chosen by the sha256 of the log id (the smallest first), so the
same data always keeps the same examples. The second term keeps a cap that no split can meet (fewer
than 1/share users) from emptying a cluster of few users: a user is never cut below an equal share.
A capped log leaves the cluster's data entirely: it is neither trained on (Expert or Critic) nor
validated on, and the want model does not see it.

**Dissent** (`dissenting_users`, `UnoConfig.min_user_agreement`, default -2.0 log-odds; None = off).
The cap bounds how much one user brings, not which way it points. In a cluster with at least five
users with endorsed answers, a user whose endorsed answers the other users' want model
(`want.WantModel`) scores at a mean log-odds below the bar — they look like what the others
rejected — asks for something else, and their logs leave the cluster's data like capped ones. On
the five example log sets' 20 want topics (`benchmarks/dissent_check.py`) the default left out 3 of
211 edits, none of which met its topic's check, and in the dissent benchmark's topic it left out the
dissenter's edits alone.

**Forgetting** (`forget_user`). Removes every log of a user from every stage output (distill,
verify, pairs; cluster members and rules; the gap and train rows of the clusters they were in, which
marks those clusters for retraining) and the user's rule rows from Chroma (the rules collection is
rebuilt so the text also leaves Chroma's write-ahead log, and an embedded store's SQLite file is
vacuumed so it leaves its free pages; a `chroma run` server needs `chroma vacuum` on its host). ``<workdir>/forgotten.json`` keeps the
sha256 of the user id and the forgotten log ids (no text), so a later `learn` on the same log files
skips those logs, and `promotion.rollback` refuses adapter versions that learned from them. The
adapters already trained on those logs keep serving until their clusters are retrained (the next
`learn`, or `uno-graph forget --logs ...` right away); a version that learned from them and that no
cluster routes to after that is withdrawn (`promotion.withdraw_forgotten`), so no server offers it. While `learn` or another writer runs on the
same work directory, `forget_user` is refused (`workdir_lock.py`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uno_graph.workdir import Workdir, atomic_write_text
from uno_graph.workdir_lock import writer_lock

FORGOTTEN_FILE = "forgotten.json"
THREADS_FILE = "threads.jsonl"  # `learn --threads` exports a checkpointer's threads here (cli._threads_as_logs)
PER_LOG_STAGES = ("distill", "verify", "pairs")
PER_CLUSTER_STAGES = ("gap", "train")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the share cap -------------------------------------------------------------------------------------

def user_share_limit(n_examples: int, n_users: int, share: float) -> int:
    """How many examples one user may keep (see the module docstring)."""
    if n_examples == 0:
        return 0
    return max(math.floor(share * n_examples), math.ceil(n_examples / max(n_users, 1)), 1)


def cap_user_share(examples: Iterable[dict[str, Any]], share: float) -> set[str]:
    """Ids of the examples to leave out so that no user keeps more than their limit.

    `examples`: dicts with `id` and `user_id` (pairs rows). `share` >= 1 caps nothing.
    """
    examples = list(examples)
    if share >= 1 or not examples:
        return set()
    by_user: dict[str, list[str]] = defaultdict(list)
    anonymous = 0
    for e in examples:
        if e.get("user_id") is None:
            anonymous += 1
        else:
            by_user[str(e["user_id"])].append(str(e["id"]))
    limit = user_share_limit(len(examples), len(by_user) + anonymous, share)
    dropped: set[str] = set()
    for ids in by_user.values():
        if len(ids) > limit:
            dropped.update(sorted(ids, key=lambda i: (_hash(i), i))[limit:])
    return dropped


def dissenting_users(labelled: Sequence[Any], user_of: Mapping[str, str | None], *, min_agreement: float = 0.0,
                     min_users: int = 5) -> dict[str, float]:
    """Users whose endorsed answers look, to everyone else's want, like the answers users rejected.

    `labelled`: the cluster's `want.Labelled` answers (endorsed 1, rejected 0); `user_of`: log id ->
    user id. For each user with an endorsed answer, a `want.WantModel` is fitted on the other users'
    labelled answers and scores this user's endorsed ones; a user whose mean log-odds is below
    `min_agreement` asks for something else than the cluster's other users, and is returned with that
    mean. Fewer than `min_users` users with endorsed answers: nobody is (no majority to differ from).

    The share cap bounds how much one user brings; this decides whether what they bring points the same
    way. A dissenter's logs then leave the cluster's data like capped ones (pipeline._train_cluster).
    """
    from uno_graph.want import WantModel

    users = sorted({str(user_of[x.log_id]) for x in labelled if x.label == 1 and user_of.get(x.log_id) is not None})
    if len(users) < min_users:
        return {}
    out: dict[str, float] = {}
    for user in users:
        others = [x for x in labelled if str(user_of.get(x.log_id)) != user]
        mine = [x.text for x in labelled if x.label == 1 and str(user_of.get(x.log_id)) == user]
        if sum(x.label for x in others) < 2 or all(x.label for x in others):
            continue
        scores = WantModel().fit([x.text for x in others], [x.label for x in others]).score(mine)
        agreement = sum(scores) / len(scores)
        if agreement < min_agreement:
            out[user] = round(agreement, 3)
    return out


# -- forgotten users ------------------------------------------------------------------------------------

@dataclass
class Forgotten:
    """Users (by sha256 of their id) and log ids a work directory has forgotten."""

    users: set[str] = field(default_factory=set)
    log_ids: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.log_ids)

    def covers(self, log_id: str, user_id: str | None) -> bool:
        return log_id in self.log_ids or (user_id is not None and _hash(str(user_id)) in self.users)


def load_forgotten(root: str | Path) -> Forgotten:
    path = Path(root) / FORGOTTEN_FILE
    if not path.exists():
        return Forgotten()
    data = json.loads(path.read_text(encoding="utf-8"))
    return Forgotten(set(data.get("users", [])), set(data.get("log_ids", [])))


def _save_forgotten(root: Path, forgotten: Forgotten) -> None:
    payload = {"users": sorted(forgotten.users), "log_ids": sorted(forgotten.log_ids),
               "note": "sha256 of forgotten user ids and the ids of their logs; `learn` skips these logs"}
    atomic_write_text(root / FORGOTTEN_FILE, json.dumps(payload, indent=2) + "\n")


@dataclass
class ForgetReport:
    """What `forget_user` removed."""

    user_id: str
    log_ids: list[str]
    removed: dict[str, int]  # stage -> records removed (clusters: members removed)
    clusters: list[str]  # clusters the user's logs were in: retrained by the next `learn`
    rules: int  # rule rows removed from Chroma


def _scrub_clusters(wd: Workdir, ids: set[str], rows: dict[str, dict[str, Any]], min_size: int) -> tuple[list[str], int]:
    """Remove `ids` from cluster members; recompute size, topics, rules and eligibility from what remains."""
    touched, removed, out = [], 0, []
    for c in wd.read("clusters"):
        gone = [m for m in c["members"] if m in ids]
        if not gone:
            out.append(c)
            continue
        touched.append(c["id"])
        removed += len(gone)
        members = [m for m in c["members"] if m not in ids]
        if not members:
            continue
        topics: dict[str, int] = {}
        seen: dict[str, None] = {}
        for m in members:
            row = rows.get(m, {})
            topic = str(row.get("metadata", {}).get("topic", "-"))
            topics[topic] = topics.get(topic, 0) + 1
            for rule in row.get("rules", []):
                seen.setdefault(rule, None)
        out.append({**c, "members": members, "size": len(members), "topics": topics, "rules": list(seen)[:20],
                    "eligible": len(members) >= min_size, "data_hash": None})
    if touched:
        wd.write("clusters", out)
    return touched, removed


def forget_user(workdir: str | Path, user_id: str, *, store=None) -> ForgetReport:
    """Remove a user's logs from every stage output and Chroma; mark their clusters for retraining.

    Example:
        >>> forget_user("runs/demo", "u7").clusters          # doctest: +SKIP
        ['c-1a2b3c4d']
    """
    from uno_graph.graph import load_config

    wd = Workdir(workdir)
    config = load_config(wd.root)
    with writer_lock(wd.root, "forget"):
        return _forget(wd, config.min_cluster_size, user_id, store)


def _forget(wd: Workdir, min_cluster_size: int, user_id: str, store) -> ForgetReport:
    """`forget_user`'s work, done while the work directory's writer lock is held."""
    from uno_graph.incremental import forget_keys
    from uno_graph.store import UnoStore

    distilled = wd.read("distill")
    ids = {r["id"] for r in distilled if r.get("user_id") is not None and str(r["user_id"]) == str(user_id)}
    ids |= {p["id"] for p in wd.read("pairs") if p.get("user_id") is not None and str(p["user_id"]) == str(user_id)}
    store = store or UnoStore.persistent(wd.chroma)
    ids |= store.rule_log_ids(user_id=str(user_id))
    forgotten = load_forgotten(wd.root)
    forgotten.users.add(_hash(str(user_id)))
    forgotten.log_ids |= ids
    _save_forgotten(wd.root, forgotten)  # first: a later `learn` skips these logs even if this stops midway

    removed: dict[str, int] = {}
    for stage in PER_LOG_STAGES:
        records = wd.read(stage)
        kept = [r for r in records if r.get("id") not in ids]
        removed[stage] = len(records) - len(kept)
        if removed[stage]:
            wd.write(stage, kept)
        forget_keys(wd, stage, ids)
    rows = {r["id"]: r for r in distilled if r["id"] not in ids}
    touched, removed["clusters"] = _scrub_clusters(wd, ids, rows, min_cluster_size)
    for stage in PER_CLUSTER_STAGES:  # their results no longer hold: retrain on the next `learn`
        records = wd.read(stage)
        kept = [r for r in records if r.get("cluster_id") not in set(touched)]
        removed[stage] = len(records) - len(kept)
        if removed[stage]:
            wd.write(stage, kept)
            (wd.stages / f"{stage}.done").unlink(missing_ok=True)
        forget_keys(wd, stage, set(touched))
    removed["threads"] = _scrub_exported_threads(wd.root / THREADS_FILE, str(user_id), ids)
    rules = store.forget_rules(user_id=str(user_id), log_ids=ids)
    store.compact()
    return ForgetReport(str(user_id), sorted(ids), removed, touched, rules)


def _scrub_exported_threads(path: Path, user_id: str, ids: set[str]) -> int:
    """Drop the user's records from `learn --threads`' copy of a checkpointer's threads (the work
    directory's own file; the checkpointer's database is the app's, and is not touched)."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)  # not a record: nothing of the user's to find in it
            continue
        mine = isinstance(record, dict) and (str(record.get("user_id")) == user_id or record.get("id") in ids)
        if not mine:
            kept.append(line)
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)
