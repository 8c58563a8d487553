"""Entry point for `langgraph.json` / LangGraph servers: the UNO graph of `$UNO_GRAPH_WORKDIR`.

    UNO_GRAPH_WORKDIR=runs/demo langgraph dev

The graph is compiled without a checkpointer: the server brings its own persistence.
"""

from __future__ import annotations

import os

from uno_graph.graph import UnoSystem

_system = UnoSystem.load(os.environ.get("UNO_GRAPH_WORKDIR", "runs/demo"))
graph = _system.graph(os.environ.get("UNO_GRAPH_MODE", "uno"))
