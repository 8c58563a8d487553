"""Entry point for `langgraph.json` / LangGraph servers: the UNO graph of `$UNO_GRAPH_WORKDIR`.

    UNO_GRAPH_WORKDIR=runs/demo langgraph dev

Environment: `UNO_GRAPH_MODE` (uno | uno_single), `UNO_GRAPH_CHROMA_URL` (route through a `chroma run`
server instead of the work directory's embedded store), `UNO_GRAPH_WATCH_S` (reload newly published
adapters every so many seconds; 0 = never). The graph is compiled without a checkpointer: the
server brings its own persistence.
"""

from __future__ import annotations

import os

from uno_graph.graph import UnoSystem

_system = UnoSystem.load(os.environ.get("UNO_GRAPH_WORKDIR", "runs/demo"),
                         chroma_url=os.environ.get("UNO_GRAPH_CHROMA_URL") or None)
if float(os.environ.get("UNO_GRAPH_WATCH_S", "0")) > 0:
    _watcher = _system.watch(float(os.environ["UNO_GRAPH_WATCH_S"]))
graph = _system.graph(os.environ.get("UNO_GRAPH_MODE", "uno"))
