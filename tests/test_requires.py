"""An environment-dependent skip is a skip locally and a failure under `make test` / CI (tests/requires.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS_MISSING = """
from tests.requires import missing, require_module

require_module("no_such_module_for_uno_graph", "pip install nothing")


def test_never_runs():
    pass
"""
NEEDS_TOOL = """
from tests.requires import missing


def test_needs_a_tool():
    missing("the frobnicator CLI is not installed")
"""


def _pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_case.py"
    test.write_text(source)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "UNO_GRAPH_REQUIRE_ALL")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test)],
                          cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("source", [NEEDS_MISSING, NEEDS_TOOL], ids=["module", "tool"])
def test_a_missing_dependency_skips_with_its_reason_locally_and_fails_when_all_are_required(tmp_path, source):
    ok = (0, 5)  # 5: the module itself was skipped, so no test was collected
    local = _pytest(tmp_path, source)
    assert local.returncode in ok, local.stdout
    assert "SKIPPED" in local.stdout and ("pip install nothing" in local.stdout or "frobnicator" in local.stdout)
    required = _pytest(tmp_path, source, UNO_GRAPH_REQUIRE_ALL="1")
    assert required.returncode not in ok and "UNO_GRAPH_REQUIRE_ALL or CI is set" in required.stdout, required.stdout


def test_ci_requires_every_dependency_unless_told_otherwise(tmp_path):
    assert _pytest(tmp_path, NEEDS_TOOL, CI="true").returncode == 1
    opted_out = _pytest(tmp_path, NEEDS_TOOL, CI="true", UNO_GRAPH_REQUIRE_ALL="0")
    assert opted_out.returncode == 0 and "SKIPPED" in opted_out.stdout
