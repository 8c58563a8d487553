"""The UNO serving graph: route → expert_generate | base_generate → critique → revise.

    >>> system = UnoSystem.load("runs/demo")                                  # doctest: +SKIP
    >>> graph = build_graph(system.model, system.router).compile()            # doctest: +SKIP
    >>> graph.invoke({"messages": [("user", "How do I make pancakes?")]})     # doctest: +SKIP

Modes: ``uno`` (Critic clusters go through critique → revise) and ``uno_single`` (Critic clusters
are answered by the base model: one call, no extra tokens). The builder is returned uncompiled, with
no checkpointer, so a parent graph or `langgraph.json` brings its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from langgraph.graph import END, START, StateGraph

from uno_graph.config import UnoConfig
from uno_graph.errors import ArtifactError, ConfigError
from uno_graph.nodes import (make_base_generate, make_critique, make_expert_generate, make_revise, make_route,
                             next_after_base, next_after_route)
from uno_graph.router import Router, adapter_name
from uno_graph.state import MessagesIO, UnoContext, UnoState

MODES = ("uno", "uno_single")


def build_graph(model, router: Router, mode: str = "uno") -> StateGraph:
    """An uncompiled UNO graph whose input and output schemas hold `messages` only."""
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not known; expected one of {list(MODES)}")
    builder = StateGraph(UnoState, context_schema=UnoContext, input_schema=MessagesIO, output_schema=MessagesIO)
    builder.add_node("route", make_route(router))
    builder.add_node("expert_generate", make_expert_generate(model))
    builder.add_node("base_generate", make_base_generate(model, mode))
    builder.add_node("critique", make_critique(model))
    builder.add_node("revise", make_revise(model))
    builder.add_edge(START, "route")
    builder.add_conditional_edges("route", next_after_route, ["expert_generate", "base_generate"])
    builder.add_edge("expert_generate", END)
    builder.add_conditional_edges("base_generate", next_after_base(mode), ["critique", END])
    builder.add_edge("critique", "revise")
    builder.add_edge("revise", END)
    return builder


@dataclass
class UnoSystem:
    """Everything a work directory serves with: chat model (+ adapters), store, router."""

    root: Path
    config: UnoConfig
    model: object
    store: object
    router: Router

    @classmethod
    def load(cls, workdir: str | Path, *, model=None, store=None, embedder=None) -> "UnoSystem":
        """Load and validate a learned system; fails before the first answer if anything is off."""
        from uno_graph.adapters.registry import validate_adapter
        from uno_graph.embeddings import shared_embedder
        from uno_graph.store import UnoStore

        root = Path(workdir)
        system_file = root / "system.json"
        if not system_file.exists():
            raise ArtifactError(f"{root} has no system.json; run `uno-graph learn LOGS --workdir {root}` first")
        config = UnoConfig.from_dict(json.loads(system_file.read_text())["config"])
        store = store or UnoStore.persistent(root / "chroma")
        if model is None:
            from uno_graph.chat_model import UnoChatModel

            model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=config.max_new_tokens)
        for row in store.table():
            if row.get("route") in ("expert", "critic") and row.get("adapter"):
                path = root / row["adapter"]
                validate_adapter(path, config.base_model)
                name = adapter_name(row["id"], row["route"])
                if name not in model.adapter_names:
                    model.load_adapter(name, path)
        router = Router(store, embedder or shared_embedder(config.embedder), config)
        return cls(root, config, model, store, router)

    def graph(self, mode: str = "uno"):
        """The compiled graph (no checkpointer)."""
        return build_graph(self.model, self.router, mode).compile(name=f"uno-{mode}")
