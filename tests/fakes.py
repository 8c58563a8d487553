"""A deterministic fake teacher: answers by what the prompt asks for (rules, revision, score, critique)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class RuleTeacher(BaseChatModel):
    """Extracts a fixed rule per keyword, revises by applying it, and judges by checking it.

    `keyword_rules` maps a word in the user's feedback to the rule it implies, e.g.
    {"numbered": "Give the steps as a numbered list."}.
    """

    keyword_rules: dict[str, str] = {}
    calls: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "rule-teacher"

    def _reply(self, text: str) -> str:
        if "## User feedback" in text:
            feedback = text.split("## User feedback", 1)[1].lower()
            rules = [rule for word, rule in self.keyword_rules.items() if word in feedback]
            return json.dumps({"rules": rules})
        if "## Suggestion" in text:
            answer = text.split("## Initial Answer", 1)[1].split("## Suggestion", 1)[0].strip()
            return "1. " + answer.replace(". ", ".\n2. ", 1)
        if "## Expert Suggestion" in text:
            answer = text.split("## Answer", 1)[1]
            return json.dumps({"score": 9 if "1. " in answer else 3, "reason": "checked"})
        return "A plain answer."

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        text = "\n".join(str(m.content) for m in messages)
        self.calls.append(text)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._reply(text)))])


class AdapterEcho(BaseChatModel):
    """Answers '[<adapter or base>] <last message start>' and reports token usage; records calls."""

    calls: list[tuple[str | None, str]] = []

    @property
    def _llm_type(self) -> str:
        return "adapter-echo"

    def _generate(self, messages, stop=None, run_manager=None, adapter: str | None = None, **kwargs) -> ChatResult:
        last = str(messages[-1].content)
        self.calls.append((adapter, last))
        text = f"[{adapter or 'base'}] {last[:40]}"
        n_in = sum(len(str(m.content).split()) for m in messages)  # the whole prompt, as a real model counts
        msg = AIMessage(content=text, usage_metadata={"input_tokens": n_in, "output_tokens": len(text.split()),
                                                      "total_tokens": n_in + len(text.split())})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class SampleEcho(AdapterEcho):
    """Prose when greedy; sampled (temperature > 0), a `- ` list for seed 2 and prose for other seeds.
    Records (adapter, temperature, seed) of every call."""

    def _generate(self, messages, stop=None, run_manager=None, adapter=None, temperature=0.0, seed=0, **kwargs):
        self.calls.append((adapter, temperature, seed))
        text = "Plain prose answer." if not temperature else ("- one\n- two" if seed == 2 else f"Prose {seed}.")
        usage = {"input_tokens": 3, "output_tokens": len(text.split()), "total_tokens": 3 + len(text.split())}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


class KeywordEmbedder:
    """Unit vectors by topic keyword: 'egg' → axis 0, 'paris' → axis 1, 'train' → axis 2, else axis 3."""

    dim = 4
    WORDS = ("egg", "paris", "train")

    def encode(self, texts):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            axis = next((k for k, w in enumerate(self.WORDS) if w in text.lower()), 3)
            out[i, axis] = 1.0
        return out


def make_lora(model_dir, out, seed: int):
    """A randomly initialised (non-zero) LoRA for the tiny test LM, saved in PEFT format."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def keyword_router(chroma_dir):
    """A router over three clusters keyed by a word: "egg" → Expert, "paris" → Critic, "train" → base."""
    from uno_graph.config import UnoConfig
    from uno_graph.router import Router
    from uno_graph.store import UnoStore

    store = UnoStore.persistent(chroma_dir)
    emb = KeywordEmbedder()
    store.put_cluster("c-egg", emb.encode(["egg"])[0], {"size": 5, "radius": 0.1, "route": "expert", "adapter": "adapters/c-egg/expert"})
    store.put_cluster("c-paris", emb.encode(["paris"])[0], {"size": 5, "radius": 0.1, "route": "critic", "adapter": "adapters/c-paris/critic"})
    store.put_cluster("c-train", emb.encode(["train"])[0], {"size": 5, "radius": 0.1, "route": "base", "adapter": ""})
    return Router(store, emb, UnoConfig())


class FakeAdapterSlots:
    """The adapter bookkeeping a validator needs from a serving model: which (fake) adapter path each name
    points at. Subclasses answer in `generate_batch` by the path of the adapter asked for."""

    def __init__(self):
        self.loaded = {}

    def load_adapter(self, name, path):
        self.loaded[name] = str(path)

    def unload_adapter(self, name):
        self.loaded.pop(name)
