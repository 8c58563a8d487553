"""Skips that depend on the environment, and a CI that cannot pass by skipping them.

A test that needs an optional package (one of the `[test]` extras) or a tool the install brings (the
`chroma` CLI) calls `require_module` or `missing` rather than `pytest.importorskip` / `pytest.skip`.
Locally it skips, with the reason and the install command. With `UNO_GRAPH_REQUIRE_ALL=1` (set by
`make test`, which installs every extra) or `CI` set, it fails instead: a CI environment that lost a
dependency would otherwise go green on the tests it could not run. `UNO_GRAPH_REQUIRE_ALL=0` turns
that off again.

Skips that hold on a complete install stay plain `pytest.skip` with their reason (the published
MemoryBench leaderboard lacks some entries; a user's own clone on a machine with no shared folder has
no MemoryBench slice, see the `memorybench_data` fixture in `tests/test_memorybench.py`); `-rs` (pyproject's `addopts`) lists
every skip with its reason at the end of a run.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ALL_ENV = "UNO_GRAPH_REQUIRE_ALL"


def require_all() -> bool:
    """Whether a missing dependency fails the run (`UNO_GRAPH_REQUIRE_ALL`, else `CI`)."""
    value = os.environ.get(REQUIRE_ALL_ENV, os.environ.get("CI", ""))
    return value.strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip for `reason`, or fail when every dependency is required; also works at module level."""
    if require_all():
        pytest.fail(f"{reason} [{REQUIRE_ALL_ENV} or CI is set: a missing dependency fails the run]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, install: str = "make install") -> ModuleType:
    """Import `name`, or skip (fail, see `require_all`) naming the command that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} cannot be imported ({exc}); install it with: {install}")
