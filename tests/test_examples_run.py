"""The runnable examples (chatbot, parent graph, agent middleware, agent with tools, memory migration) in
`--offline-fake` mode, as subprocesses."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.requires import require_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CASES = {
    "chatbot.py": (["--ask", "How long to boil an egg?", "--ask", "What is in Paris?", "--ask", "Tell me a joke"],
                   ["route=expert cluster=c-egg adapter=c-egg/expert", "route=critic cluster=c-paris",
                    "route=base cluster=None", "thread holds 6 messages"]),
    "parent_agent.py": (["--ask", "What is in Paris?"],
                        ["messages: ['system', 'human', 'ai']", "route=critic cluster=c-paris adapter=c-paris/critic"]),
    "agent_middleware.py": (["--ask", "How long to boil an egg?"],
                            ["answer: [c-egg/expert]", "route=expert cluster=c-egg adapter=c-egg/expert"]),
    "agent_tools.py": ([], ["model: FAKE", "ai → lookup({'topic': 'egg'})", "ai → add({'a': 6, 'b': 2})", "tool: 8",
                            "ai: [c-egg/expert] A soft egg boils for 6 minutes. That makes 8.",
                            "route=expert cluster=c-egg adapter=c-egg/expert",
                            "ai: [base] revised: The Louvre opens at 9 and closes at 18. That makes 9.",
                            "route=critic cluster=c-paris adapter=c-paris/critic", "critiques: 1"]),
    "memory_migration.py": ([], ["before | bot: [base] And for a soft one?", "migrated: thread s1 holds 4 messages",
                                 "before | bot: [base] Something quick, please.",
                                 # the FAKE model's summary: the start of ConversationSummaryMemory's prompt
                                 "before | summary memory: '[base] Progressively summarize the lines",
                                 "migrated: thread s2 holds 3 messages, the old summary first",
                                 "after  | bot: [c-egg/expert] How many eggs per guest?",
                                 "the model was given the old summary: True",
                                 "route=expert cluster=c-egg adapter=c-egg/expert (thread holds 6 messages)",
                                 "a summary first", "learned rule for 'What about a hard-boiled egg then?': "
                                 "Give the steps as a numbered list. (cluster c-egg)",
                                 "rules of the last answer's cluster c-paris: ['Name one museum only.']"]),
}
NEEDS_AGENTS = {"agent_middleware.py", "agent_tools.py", "memory_migration.py"}
NEEDS_MIGRATION = {"memory_migration.py"}  # runs the deprecated memory classes of langchain_classic


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), "--offline-fake", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_offline(script):
    if script in NEEDS_AGENTS:
        require_module("langchain.agents", "pip install 'uno-graph[agents]'")
    if script in NEEDS_MIGRATION:
        require_module("langchain_classic.memory", "pip install 'uno-graph[migration]'")
    args, expected = CASES[script]
    proc = _run(script, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in expected:
        assert text in proc.stdout, proc.stdout


def test_memory_migration_without_langchain_classic_names_the_extra():
    """The deprecated classes come from the `migration` extra: without it the example says so and stops."""
    hide = ("import runpy, sys; sys.modules['langchain_classic'] = None; sys.path.insert(0, sys.argv[1]); "
            "sys.argv = [sys.argv[2], '--offline-fake']; runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide, str(EXAMPLES), str(EXAMPLES / "memory_migration.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "pip install 'uno-graph[migration]'" in proc.stderr and "langchain_classic" in proc.stderr
    assert "before |" not in proc.stdout  # stopped before running anything


def test_uno_single_mode_skips_the_critic():
    proc = _run("parent_agent.py", "--ask", "What is in Paris?", "--mode", "uno_single")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "route=base cluster=c-paris adapter=None" in proc.stdout


@pytest.mark.parametrize("script", sorted(CASES))
def test_docstring_starts_with_its_command(script):
    doc = ast.get_docstring(ast.parse((EXAMPLES / script).read_text(encoding="utf-8")))
    assert doc.splitlines()[0].startswith(f".venv/bin/python examples/{script} --workdir ")
