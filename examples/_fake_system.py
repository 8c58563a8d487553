"""A self-contained fake UNO system for the examples' `--offline-fake` mode (no model, no download).

`fake_system()` returns a `System` whose `model` is `EchoAdapterModel` (answers
"[<adapter or base>] ..." and honours `adapter=`) and whose `router` routes over a temporary Chroma
store with three keyword clusters: "egg" → Expert, "paris" → Critic, "train" → a cluster with no
adapter (base); anything else is out of distribution (base). The egg and Paris clusters hold a few
rules (`FAKE_RULES`), as `uno-graph learn` would have stored them. `load_system(args)` picks this fake or a
learned work directory (`UnoSystem.load`), and `add_system_args(parser)` adds the shared options.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

DEMO_QUESTIONS = ["How long should I boil an egg?", "What should I see in Paris?", "Tell me a joke."]
FAKE_RULES = {"c-egg": ["Give the steps as a numbered list.", "Say how many minutes."],
              "c-paris": ["Name one museum only."]}  # what the fake system "learned" (rules in Chroma)


class EchoAdapterModel(BaseChatModel):
    """Fake chat model: replies '[<adapter or base>] <start of the last message>' with token usage."""

    calls: list = []

    @property
    def _llm_type(self) -> str:
        return "echo-adapter"

    def _generate(self, messages, stop=None, run_manager=None, adapter: str | None = None, **kwargs: Any) -> ChatResult:
        last = str(messages[-1].content)
        self.calls.append(adapter)
        text = f"[{adapter or 'base'}] {' '.join(last.split())[:60]}"
        n_in, n_out = len(last.split()), len(text.split())
        msg = AIMessage(content=text, usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                                                      "total_tokens": n_in + n_out})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class KeywordEmbedder:
    """Unit vectors by keyword: 'egg' → axis 0, 'paris' → axis 1, 'train' → axis 2, else axis 3."""

    dim = 4
    WORDS = ("egg", "paris", "train")

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, next((k for k, w in enumerate(self.WORDS) if w in text.lower()), 3)] = 1.0
        return out


@dataclass
class System:
    model: Any
    router: Any
    _keep: Any = None  # the temporary directory behind the fake store (removed with the process)


def fake_system() -> System:
    from uno_graph.config import UnoConfig
    from uno_graph.router import Router
    from uno_graph.store import UnoStore

    tmp = tempfile.TemporaryDirectory(prefix="uno-fake-", ignore_cleanup_errors=True)
    store = UnoStore.persistent(f"{tmp.name}/chroma")
    emb = KeywordEmbedder()
    for cid, word, route in (("c-egg", "egg", "expert"), ("c-paris", "paris", "critic"), ("c-train", "train", "base")):
        adapter = f"adapters/{cid}/{route}" if route != "base" else ""
        store.put_cluster(cid, emb.encode([word])[0], {"size": 5, "radius": 0.1, "route": route, "adapter": adapter})
    rules = [(cid, f"{cid}-r{i}", rule) for cid, texts in FAKE_RULES.items() for i, rule in enumerate(texts)]
    store.put_rules([{"id": rid, "rule": rule, "cluster_id": cid, "log_id": rid, "user_id": "u1"} for cid, rid, rule in rules],
                    emb.encode([cid.removeprefix("c-") for cid, _, _ in rules]))
    return System(EchoAdapterModel(calls=[]), Router(store, emb, UnoConfig()), tmp)


def add_system_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="a learned work directory (`uno-graph learn LOGS --workdir DIR`)")
    parser.add_argument("--offline-fake", action="store_true",
                        help="use a built-in fake model and router (the default when no --workdir is given)")
    parser.add_argument("--mode", default="uno", choices=["uno", "uno_single"])


def load_system(args: argparse.Namespace) -> System:
    if args.offline_fake or not args.workdir:
        return fake_system()
    from uno_graph.graph import UnoSystem

    system = UnoSystem.load(args.workdir)
    return System(system.model, system.router)


def describe(message) -> str:
    meta = message.response_metadata or {}
    return f"route={meta.get('uno_route')} cluster={meta.get('uno_cluster')} adapter={meta.get('uno_adapter')}"
