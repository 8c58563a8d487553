"""The UNO serving graph: route → expert_generate | base_generate → critique → revise.

    >>> system = UnoSystem.load("runs/demo")                                  # doctest: +SKIP
    >>> graph = build_graph(system.model, system.router).compile()            # doctest: +SKIP
    >>> graph.invoke({"messages": [("user", "How do I make pancakes?")]})     # doctest: +SKIP

Modes: ``uno`` (Critic clusters go through critique → revise), ``uno_single`` (Critic clusters
are answered by the base model: one call, no extra tokens) and ``rules_in_context`` (no routing, no
adapter: the rules of the query's nearest clusters go into a system prompt for the base model, the
evaluation's retrieval baseline served; `uno_graph.rules_context`). `UnoContext.mode` picks another
mode per run. The builder is returned uncompiled, with
no checkpointer, so a parent graph or `langgraph.json` brings its own.

Each step can use its own chat model (``models={"expert": ..., "critic": ..., "base": ...}``), e.g.
Expert answers from an OpenAI-compatible LoRA server (`uno_graph.endpoint.EndpointChatModel`) and
the rest from the local `UnoChatModel`. A `UnoSystem` picks up newly published adapters with
`reload()` (or `watch()`), and graphs already compiled from it follow on their next call.

Streaming: with ``stream_mode="messages"`` the answer's tokens come out once (the Expert's or the base
model's, or on UNO's Critic path the revision's); the Critic path's draft and critique are tagged
``nostream`` and come out as ``custom`` events with the route and cluster instead (the rules are in
`uno_graph.nodes.common`).

With ``recorder=`` (`uno_graph.capture`), every answer is recorded as a log in the README's format,
the user's next turn in the thread is appended as its follow-up, and the answer carries its log id
(``response_metadata["uno_log_id"]``) for `feedback`.

Late ensemble: when the cluster table lists several Expert variants for a cluster, `UnoSystem`
attaches a `uno_graph.learners.LateEnsemble` (state in ``<workdir>/ensemble.json``) to its router,
which then draws the variant of each request; feedback given through the recorder passed to
`UnoSystem.graph` (``recorder.feedback(log_id, ...)``) updates the drawn variant's arm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph

from uno_graph.capture.recorder import as_recorder
from uno_graph.config import UnoConfig
from uno_graph.errors import AdapterNotFoundError, ArtifactError, ConfigError
from uno_graph.nodes import (
    make_base_generate,
    make_critique,
    make_expert_generate,
    make_record,
    make_revise,
    make_route,
    make_rules_generate,
    next_after_base,
    next_after_route,
    with_followups,
)
from uno_graph.nodes.best_of import BestOf
from uno_graph.router import Router, RouteTable
from uno_graph.state import MessagesIO, UnoContext, UnoState
from uno_graph.want import WantScorer

log = logging.getLogger(__name__)

MODES = ("uno", "uno_single", "rules_in_context")
STEPS = ("expert", "critic", "base")  # Expert answers, critiques, base answers (drafts and revisions too)


def step_models(model, models: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chat model of each step: `models[step]` where given, else `model`."""
    models = dict(models or {})
    unknown = sorted(set(models) - set(STEPS))
    if unknown:
        raise ConfigError(f"models has unknown step(s) {unknown}; allowed: {list(STEPS)}")
    chosen = {step: models.get(step, model) for step in STEPS}
    missing = [step for step, m in chosen.items() if m is None]
    if missing:
        raise ConfigError(f"no chat model for step(s) {missing}; pass `model`, or models={{step: chat model}} for each")
    return chosen


def build_graph(model, router: Router, mode: str = "uno", *, models: Mapping[str, Any] | None = None,
                recorder: Any = None, rules: Any = None, best_of: BestOf | None = None) -> StateGraph:
    """An uncompiled UNO graph whose input and output schemas hold `messages` only.

    Args:
        model: the chat model of every step: called as `model.invoke(messages, adapter=name_or_None)`
            (`UnoChatModel`, `EndpointChatModel`), with ``config=`` tagged ``nostream`` for the
            Critic path's draft and critique.
        router: routes a query to expert | critic | base.
        mode: "uno", "uno_single" or "rules_in_context".
        models: per-step overrides, keys from `STEPS`: "expert" answers Expert clusters with their
            adapter, "critic" writes critiques with the Critic adapter, "base" answers everything else
            and drafts and revises on Critic clusters.
        recorder: record every answer as a log (`uno_graph.capture.Recorder`, a `LogStore`, a LangGraph
            `BaseStore` or an event-file path): the user's next turn in the thread becomes its
            follow-up, and the answer carries ``response_metadata["uno_log_id"]`` for feedback.
            Adds a final ``record`` node; the user id comes from `UnoContext.user_id`, the thread
            from ``config["configurable"]["thread_id"]``.
        rules: the rules retrieval of mode ``rules_in_context`` (a `uno_graph.rules_context.RulesInContext`;
            default: over the router's store and embedder).
        best_of: the Expert answers with the best of several candidates where its adapter has a want
            model (`uno_graph.nodes.best_of`); None: one greedy answer.

    Example:
        >>> remote = EndpointChatModel(base_url="http://127.0.0.1:8001/v1", model="smollm2")   # doctest: +SKIP
        >>> build_graph(local, router, models={"expert": remote}).compile()                  # doctest: +SKIP
    """
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not known; expected one of {list(MODES)}")
    chosen = step_models(model, models)
    recorder = as_recorder(recorder)
    finish = END if recorder is None else "record"  # where an answer goes
    builder = StateGraph(UnoState, context_schema=UnoContext, input_schema=MessagesIO, output_schema=MessagesIO)
    route = make_route(router, mode, rules)
    builder.add_node("route", route if recorder is None else with_followups(route, recorder))
    builder.add_node("expert_generate", make_expert_generate(chosen["expert"], best_of))
    builder.add_node("base_generate", make_base_generate(chosen["base"], mode))
    builder.add_node("critique", make_critique(chosen["critic"]))
    builder.add_node("revise", make_revise(chosen["base"]))
    builder.add_node("rules_generate", make_rules_generate(chosen["base"]))
    builder.add_edge(START, "route")
    builder.add_conditional_edges("route", next_after_route, ["expert_generate", "base_generate", "rules_generate"])
    builder.add_edge("expert_generate", finish)
    builder.add_edge("rules_generate", finish)
    builder.add_conditional_edges("base_generate", next_after_base(mode), {"critique": "critique", END: finish})
    builder.add_edge("critique", "revise")
    builder.add_edge("revise", finish)
    if recorder is not None:
        builder.add_node("record", make_record(recorder))
        builder.add_edge("record", END)
    return builder


@dataclass(frozen=True)
class Reloaded:
    """What `UnoSystem.reload` changed."""

    adapters: tuple[str, ...]  # adapters the new table routes to (all validated and loaded)
    added: tuple[str, ...]  # of those, the ones not served before
    dropped: tuple[str, ...]  # served before, no longer routed to (unloaded at the next reload)
    pending: tuple[str, ...]  # clusters a running `learn` has not finished (served by the base model)


class Watcher:
    """The background thread of `UnoSystem.watch`; `stop()` ends it."""

    def __init__(self, system: UnoSystem, interval_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(system, interval_s), name="uno-graph-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self, system: UnoSystem, interval_s: float) -> None:
        refused = None
        while not self._stop.wait(interval_s):
            stamp = None
            try:
                table = RouteTable.read(system.store)
                stamp = system.stamp(table)
                if table.pending() or stamp in (system.served_stamp, refused):
                    continue  # unchanged, already refused, or a `learn` run is mid-way: keep serving
                system.reload()
            except ArtifactError as exc:
                refused = stamp
                log.error("%s", exc)
            except Exception:  # e.g. the Chroma server is restarting: try again on the next tick
                log.warning("checking the work directory for changes failed; retrying", exc_info=True)

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)


@dataclass
class UnoSystem:
    """Everything a work directory serves with: chat model(s) and adapters, store, router.

    `reload()` serves what `uno-graph learn` published since loading, without a restart; graphs
    compiled from this system before (`graph()`) use the new table and adapters on their next call.
    """

    root: Path
    config: UnoConfig
    model: Any  # the local chat model; None when `models` gives every step its own
    store: Any
    router: Router
    models: dict[str, Any] = field(default_factory=dict)  # per-step chat models (see `build_graph`)
    served: dict[str, tuple[str, Path]] = field(default_factory=dict)  # adapter name -> (role, path) routed to
    served_stamp: str | None = None  # `stamp` of the table being served
    lazy_adapters: bool = False  # register adapters (files checked) and load their weights on first use
    ensemble: Any = None  # the late ensemble (`LateEnsemble`), once the table lists a cluster with several variants
    # adapter name -> its cluster's want model (the manifest's "want"), for the Experts' best of n
    wants: dict[str, WantScorer] = field(default_factory=dict, repr=False)
    _retired: dict[str, str] = field(default_factory=dict, repr=False)  # adapter name -> role, unloaded next reload
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, workdir: str | Path, *, model=None, store=None, embedder=None, chroma_url: str | None = None,
             models: Mapping[str, Any] | None = None, lazy_adapters: bool = False) -> UnoSystem:
        """Load and validate a learned system; fails before the first answer if anything is off.

        Args:
            workdir: a work directory written by `uno-graph learn` (adapters are read from it).
            model: the local chat model (default: a `UnoChatModel` of the base model in system.json,
                loaded only when some step has no model in `models`).
            store: a `UnoStore` (default: the server at `chroma_url`, else `<workdir>/chroma`).
            embedder: the query embedder (default: the one named in system.json).
            chroma_url: `http://host:port` of a `chroma run` server holding this work directory's
                table (push it there with `UnoStore.copy_to`).
            models: per-step chat models (see `build_graph`), e.g. `{"expert": EndpointChatModel(...)}`.
            lazy_adapters: validate every adapter now (manifest, checksums) but load its weights on the
                first call that needs it: a fast start for processes that use few of many adapters
                (`uno-graph ask`); a long-running server keeps the default and pays the loads up front.

        Example:
            >>> system = UnoSystem.load("runs/demo", chroma_url="http://127.0.0.1:8000")   # doctest: +SKIP
            >>> system.graph().invoke({"messages": [("user", "How do I boil an egg?")]})   # doctest: +SKIP
        """
        from uno_graph.embeddings import shared_embedder
        from uno_graph.store import UnoStore

        root = Path(workdir)
        config = load_config(root)
        if store is not None and chroma_url:
            raise ConfigError("pass either store= or chroma_url=, not both")
        if store is None:
            store = UnoStore.connect(chroma_url) if chroma_url else UnoStore.persistent(root / "chroma")
        models = dict(models or {})
        if model is None and any(step not in models for step in STEPS):
            from uno_graph.chat_model import UnoChatModel

            model = UnoChatModel.from_pretrained(config.base_model, max_new_tokens=config.max_new_tokens)
        step_models(model, models)
        router = Router(store, embedder or shared_embedder(config.embedder), config)
        system = cls(root, config, model, store, router, models, lazy_adapters=lazy_adapters)
        system.use_ensemble(router.table)  # first: a missing `bandit` extra fails before any adapter loads
        system.served = system._load_adapters(router.table)
        system.served_stamp = system.stamp(router.table)
        return system

    def model_for(self, step: str) -> Any:
        """The chat model that runs `step` ("expert", "critic" or "base")."""
        return step_models(self.model, self.models)[step]

    def graph(self, mode: str = "uno", *, recorder: Any = None):
        """The compiled graph (no checkpointer); `recorder` records every answer (see `build_graph`), and
        feedback given through it (`recorder.feedback`) reaches the late ensemble (`on_feedback`)."""
        recorder = as_recorder(recorder)
        if recorder is not None:
            recorder.add_feedback_listener(self.on_feedback)
        return build_graph(self.model, self.router, mode, models=self.models, recorder=recorder,
                           best_of=self.best_of()).compile(name=f"uno-{mode}")

    def best_of(self) -> BestOf | None:
        """How this system's Experts answer: the best of `config.expert_best_of` candidates by their
        cluster's want model (read from each adapter's manifest at load and reload), or None."""
        if self.config.expert_best_of <= 1:
            return None
        return BestOf(lambda adapter: self.wants.get(adapter), n=self.config.expert_best_of,
                      temperature=self.config.best_of_temperature)

    # -- the late ensemble --------------------------------------------------------------------------

    def use_ensemble(self, table: RouteTable) -> None:
        """Let the router choose among the Expert variants `table` lists, through the work directory's
        late ensemble (opened on the first table that has variants), and drop the counts of arms the
        table no longer offers (a retrained variant is a new arm). Without variants nothing changes."""
        from uno_graph.learners import ENSEMBLE_FILE, LateEnsemble

        arms = table.arms()
        if self.ensemble is None and not arms:
            return
        if self.ensemble is None:
            self.ensemble = LateEnsemble(self.root / ENSEMBLE_FILE, policy=self.config.ensemble_policy)
        dropped = self.ensemble.prune(arms)
        if dropped:
            log.info("late ensemble: dropped the counts of arms no longer served: %s", dropped)
        self.router.ensemble = self.ensemble

    def on_feedback(self, record: dict[str, Any], fields: dict[str, Any]) -> None:
        """A `Recorder` feedback listener: feedback on an answer the late ensemble chose updates its arm."""
        if self.ensemble is not None:
            self.ensemble.on_feedback(record, fields)

    # -- picking up new adapters ------------------------------------------------------------------

    def reload(self) -> Reloaded:
        """Serve the store's current cluster table: validate and load its new or retrained adapters,
        then switch routing to it in one step.

        All or nothing: if any adapter the table routes to is missing, incomplete or does not match
        its manifest, `ArtifactError` is raised and the previous table and adapters keep serving.
        Adapters no longer routed to are unloaded at the following reload, so a query routed just
        before this one still finds its adapter.

        Example:
            >>> graph = system.graph()                           # doctest: +SKIP
            >>> # ... `uno-graph learn` publishes new adapters into the work directory ...
            >>> system.reload().added                            # doctest: +SKIP
            ('c7/expert',)
        """
        with self._lock:
            config = load_config(self.root)
            for name in ("base_model", "embedder"):
                if getattr(config, name) != getattr(self.config, name):
                    raise ArtifactError(
                        f"reload refused: system.json now names {name} {getattr(config, name)!r} but this process "
                        f"serves {getattr(self.config, name)!r}; restart the server to switch models")
            table = self.router.read_table()
            pending = table.pending()
            if pending:
                log.warning("clusters %s are pending (a `learn` run is in progress); they route to the base model "
                            "until it finishes and the system is reloaded again", pending)
            try:
                served = self._load_adapters(table)
            except ArtifactError as exc:
                raise ArtifactError(f"reload refused, the previous table keeps serving: {exc}") from exc
            self.use_ensemble(table)
            self.router.use(table)
            previous, self.served, self.served_stamp = self.served, served, self.stamp(table)
            for name, role in self._retired.items():
                if name not in served:
                    with contextlib.suppress(AdapterNotFoundError):
                        self.model_for(role).unload_adapter(name)
            self._retired = {name: role for name, (role, _) in previous.items() if name not in served}
            return Reloaded(adapters=tuple(served), added=tuple(n for n in served if n not in previous),
                            dropped=tuple(self._retired), pending=tuple(pending))

    def watch(self, interval_s: float = 10.0) -> Watcher:
        """Reload in a background thread whenever the table or a routed adapter changes.

        Checks every `interval_s` seconds (one read of the cluster table and a `stat` per adapter),
        waits while a `learn` run has clusters pending, and logs a refused reload, retrying once
        the work directory changes again.

        Example:
            >>> watcher = system.watch(30)      # doctest: +SKIP
            >>> watcher.stop()                  # doctest: +SKIP
        """
        if interval_s <= 0:
            raise ConfigError(f"interval_s must be a positive number of seconds, got {interval_s}")
        return Watcher(self, interval_s)

    def stamp(self, table: RouteTable) -> str:
        """A fingerprint of what serving `table` depends on: its rows and centroids, and the
        manifest files of the adapters it routes to (publishing renames a new directory into place)."""
        digest = hashlib.sha256(json.dumps(table.rows, sort_keys=True, default=str).encode())
        digest.update(table.centroids.tobytes())
        for name, (_, rel) in sorted(table.adapters().items()):
            try:
                st = (self.root / rel / "manifest.json").stat()
                digest.update(f"{name}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}".encode())
            except OSError:
                digest.update(f"{name}:missing".encode())
        return digest.hexdigest()

    def _load_adapters(self, table: RouteTable) -> dict[str, tuple[str, Path]]:
        """Validate every adapter `table` routes to, then load them onto their steps' models.

        Nothing is loaded unless all are valid. Files can match their checksums and still fail to load
        (weights of the wrong shapes, a module the model lacks): a model that loads a set at once
        (`UnoChatModel.load_adapters`) then keeps serving all its previous versions, and adapters this
        call added to other models are unloaded again.
        """
        from uno_graph.adapters.registry import validate_adapter

        wanted = {name: (role, self.root / rel) for name, (role, rel) in table.adapters().items()}
        manifests = {name: validate_adapter(path, self.config.base_model) for name, (role, path) in wanted.items()}
        by_model: dict[int, tuple[Any, dict[str, Path]]] = {}
        for name, (role, path) in wanted.items():
            model = self.model_for(role)
            by_model.setdefault(id(model), (model, {}))[1][name] = path
        added = []
        try:
            for model, paths in by_model.values():
                if callable(getattr(model, "load_adapters", None)):  # all of them or none
                    model.load_adapters(paths, lazy=self.lazy_adapters)  # lazy: weights load on first use
                    added += [(model, name) for name in paths if name not in self.served]
                    continue
                for name, path in paths.items():
                    model.load_adapter(name, path)
                    if name not in self.served:
                        added.append((model, name))
        except BaseException:
            for model, name in added:
                with contextlib.suppress(AdapterNotFoundError):
                    model.unload_adapter(name)
            raise
        self.wants = {**self.wants, **{name: WantScorer.from_dict(m["want"]) for name, m in manifests.items()
                                       if (m or {}).get("want")}}
        return wanted


def load_config(workdir: str | Path) -> UnoConfig:
    """The `UnoConfig` a work directory was learned with (its `system.json`)."""
    root = Path(workdir)
    system_file = root / "system.json"
    if not system_file.exists():
        raise ArtifactError(f"{root} has no system.json; run `uno-graph learn LOGS --workdir {root}` first")
    return UnoConfig.from_dict(json.loads(system_file.read_text())["config"])
