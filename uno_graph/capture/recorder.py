"""`Recorder`: turns served answers and the user's next turns into log records, without ever failing an answer.

    >>> recorder = Recorder("runs/demo/events.jsonl")              # a JsonlLogStore  # doctest: +SKIP
    >>> graph = system.graph(recorder=recorder)                                # doctest: +SKIP
    >>> out = graph.invoke({"messages": [("user", "How do I boil an egg?")]},            # doctest: +SKIP
    ...                    {"configurable": {"thread_id": "t1"}}, context=UnoContext(user_id="u1"))
    >>> reply = out["messages"][-1]                                            # doctest: +SKIP
    >>> recorder.feedback(reply.response_metadata["uno_log_id"], rating=-1)     # doctest: +SKIP

Design. Every serving path (the graph's `record` node, `UnoMiddleware`, the OpenAI-compatible
server, `uno-graph ask`/`chat`) calls `record_turn(messages, answer, user_id=, thread_id=, metadata=)`
after an answer is generated. It does two things:

1. The user messages that arrived since the previous answer are that answer's *follow-up* (the
   complaint, correction or thanks UNO learns from) and are appended to its log. The previous
   answer's log id is found, in order: in the `uno_log_id` of the last answer in `messages` (a
   checkpointed thread, an agent's state); by the text of that answer (a client that resends the
   history, like an OpenAI chat UI); or as the latest answer of the same (user, thread) (a client
   that sends only the new turn with a thread id), asking the store when this process has not
   seen the thread (after a restart).
2. The answer becomes a new log: the question (the last user turn, with any tool calls and results
   after it) and the answer, `user_id`, and `metadata` with `user_id`, `thread_id`, `route`,
   `cluster`, `adapter`, `source` and `recorded_at`. Its id is returned for the caller to attach
   to the answer (`response_metadata["uno_log_id"]`, the HTTP completion id).

A store that fails is logged as a warning and `None` is returned: an answer is never lost or
delayed beyond its appends for the sake of its log. `feedback()` on the other hand raises, since it
is an explicit request whose caller must know it failed.

Feedback listeners (`add_feedback_listener`) hear of each feedback stored through this recorder,
with the record as it was before it: the late ensemble (`uno_graph.learners.LateEnsemble.on_feedback`)
learns that way which Expert variant users prefer. A listener that fails is logged; the feedback
itself is stored already and stays stored.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages, convert_to_openai_messages

from uno_graph.capture.feedback import feedback as _feedback
from uno_graph.capture.store import JsonlLogStore, LogStore, export, now
from uno_graph.errors import ConfigError

log = logging.getLogger(__name__)

FeedbackListener = Callable[[dict[str, Any], dict[str, Any]], None]  # (record before the feedback, fields stored)


def new_log_id() -> str:
    """A fresh log id (`uno-` + 32 hex digits)."""
    return f"uno-{uuid.uuid4().hex}"


def run_ids(context: Any = None, config: Mapping[str, Any] | None = None,
            runtime: Any = None) -> tuple[str | None, str | None]:
    """(user_id, thread_id) of a LangGraph run: `context.user_id` (`UnoContext`) or
    `configurable.user_id`; `configurable.thread_id` or the runtime's execution info."""
    configurable = (config or {}).get("configurable") or {}
    user_id = getattr(context, "user_id", None) or configurable.get("user_id")
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        thread_id = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
    return (None if user_id is None else str(user_id)), (None if thread_id is None else str(thread_id))


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else message.text


def _is_answer(message: BaseMessage) -> bool:
    """A final answer: an AI message with text and no tool calls."""
    return isinstance(message, AIMessage) and not message.tool_calls and bool(_text(message).strip())


def split_turn(messages: Sequence[BaseMessage]) -> tuple[AIMessage | None, list[HumanMessage], list[BaseMessage]]:
    """(previous answer, follow-ups, prompt) of the newest turn in `messages`.

    The previous answer is the last final answer before the last user message; the follow-ups are the
    user messages after it (all user messages if there is none); the prompt is the last user message
    and what follows it (an agent's tool calls and results).
    """
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=None)
    if last_user is None:
        return None, [], []
    previous = max((i for i in range(last_user) if _is_answer(messages[i])), default=None)
    start = 0 if previous is None else previous + 1
    followups = [m for m in messages[start:] if isinstance(m, HumanMessage) and _text(m).strip()]
    answer = None if previous is None else messages[previous]
    return answer, followups, list(messages[last_user:])  # type: ignore[return-value]


def _digest(user_id: str | None, text: str) -> str:
    """Key of an answer's text for a chat UI that resends the history without a thread id."""
    return hashlib.sha256(f"{user_id}\x00{text}".encode()).hexdigest()


class _LRU:
    """A small thread-safe mapping that forgets its oldest keys beyond `size`."""

    def __init__(self, size: int) -> None:
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any) -> str | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: Any, value: str) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class Recorder:
    """Records answers, follow-ups and feedback into a `LogStore`.

    Args:
        store: a `LogStore`, or the path of a JSONL event file (`JsonlLogStore`).
        max_threads: how many threads and answers are remembered in memory for linking follow-ups
            (older threads are looked up in the store).
    """

    def __init__(self, store: LogStore | str | Path, *, max_threads: int = 10_000) -> None:
        self.store: LogStore = JsonlLogStore(store) if isinstance(store, (str, Path)) else store
        self._threads = _LRU(max_threads)  # (user_id, thread_id) -> latest log id
        self._answers = _LRU(max_threads)  # digest of (user_id, answer text) -> log id
        self.failures = 0  # writes that failed (each logged as a warning)
        self._listeners: list[FeedbackListener] = []
        self._feedback_lock = threading.Lock()  # a listener sees each log's feedback in the order it was stored

    def __repr__(self) -> str:
        return f"Recorder({self.store!r})"

    # -- recording (never raises) ----------------------------------------------------------------

    def record_turn(self, messages: Sequence[Any], answer: Any, *, user_id: str | None = None,
                    thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                    log_id: str | None = None, source: str = "python") -> str | None:
        """Record the follow-ups in `messages` to the previous answer, then `answer` as a new log.

        `messages` is the conversation the answer responded to (LangChain messages or OpenAI dicts);
        returns the new log id, or None if nothing was recorded (no user message, or a store failure).
        """
        msgs = convert_to_messages(messages)
        self.record_followup(msgs, user_id=user_id, thread_id=thread_id)
        return self.record_answer(msgs, answer, user_id=user_id, thread_id=thread_id, metadata=metadata,
                                  log_id=log_id, source=source)

    def record_followup(self, messages: Sequence[Any], *, user_id: str | None = None,
                        thread_id: str | None = None) -> str | None:
        """Append the user messages since the previous answer to its log; returns that log id (or None)."""
        try:
            previous, followups, _ = split_turn(convert_to_messages(messages))
            if not followups:
                return None
            log_id = self._previous_id(previous, user_id, thread_id)
            if log_id is None:
                return None
            for message in followups:
                self.store.add_followup(log_id, {"role": "user", "content": _text(message)})
            return log_id
        except Exception as exc:
            self._failed("a follow-up", exc)
            return None

    def record_answer(self, messages: Sequence[Any], answer: Any, *, user_id: str | None = None,
                      thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      log_id: str | None = None, source: str = "python") -> str | None:
        """Store `answer` (an AIMessage or text) to the last user turn of `messages` as a new log; its id."""
        try:
            _, _, prompt = split_turn(convert_to_messages(messages))
            if not prompt:
                log.debug("no user message before the answer: nothing to record")
                return None
            log_id = log_id or new_log_id()
            text = answer if isinstance(answer, str) else _text(answer)
            meta = {"user_id": user_id, "thread_id": thread_id, "route": None, "cluster": None, "adapter": None,
                    **dict(metadata or {}), "source": source, "recorded_at": now()}
            record = {"id": log_id, "user_id": user_id,
                      "messages": [*convert_to_openai_messages(prompt), {"role": "assistant", "content": text}],
                      "feedback": {}, "metadata": meta}
            self.store.add_answer(record)
        except Exception as exc:
            self._failed("an answer", exc)
            return None
        if thread_id is not None:
            self._threads.put((user_id, thread_id), log_id)
        key = _digest(user_id, text)
        known = self._answers.get(key)
        # the same answer text for two logs of one user (or of two anonymous users): a follow-up could belong to either,
        # so the text links to neither ("" = ambiguous)
        self._answers.put(key, "" if known is not None and known != log_id else log_id)
        return log_id

    # -- feedback (raises on bad input) ---------------------------------------------------------

    def feedback(self, log_id: str, *, rating: float | None = None, edited_response: str | None = None,
                 comment: str | None = None) -> dict[str, Any]:
        """Attach feedback to a recorded answer (see `uno_graph.capture.feedback.feedback`), then tell
        the feedback listeners."""
        if not self._listeners:
            return _feedback(self.store, log_id, rating=rating, edited_response=edited_response, comment=comment)
        with self._feedback_lock:
            before = self._before(log_id)  # read first: listeners need the feedback as it was
            fields = _feedback(self.store, log_id, rating=rating, edited_response=edited_response, comment=comment)
            for listener in list(self._listeners) if before is not None else ():
                try:
                    listener(before, dict(fields))
                except Exception as exc:
                    log.warning("feedback listener %r failed on %s (%s: %s); the feedback is stored", listener, log_id,
                                type(exc).__name__, exc)
            return fields

    def add_feedback_listener(self, listener: FeedbackListener) -> None:
        """Call `listener(record_before, fields)` after each feedback this recorder stores (once per
        listener, however often it is added)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_feedback_listener(self, listener: FeedbackListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _before(self, log_id: Any) -> dict[str, Any] | None:
        """The stored record, or None (no such record, or an id the store cannot look up: `feedback`
        then raises the error that names the fix)."""
        try:
            record = self.store.get(log_id) if isinstance(log_id, str) else None
        except Exception:
            return None
        return None if record is None else dict(record)

    # -- reading ---------------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """The store's records in the log format."""
        return list(self.store.records())

    def export(self, path: str | Path) -> int:
        """Write the records as log-format JSONL for `uno-graph learn`; returns how many."""
        return export(self.store, path)

    # -- helpers ---------------------------------------------------------------------------------

    def _previous_id(self, previous: AIMessage | None, user_id: str | None, thread_id: str | None) -> str | None:
        if previous is not None:
            found = (previous.response_metadata or {}).get("uno_log_id") or self._answers.get(
                _digest(user_id, _text(previous)))
            if found:
                return str(found)
        if thread_id is None:
            return None
        return self._threads.get((user_id, thread_id)) or self.store.last_in_thread(user_id, thread_id)

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        log.warning("recording %s in %r failed (%s: %s); the answer is served unrecorded", what, self.store,
                    type(exc).__name__, exc)
        log.debug("recording failure", exc_info=True)


def as_recorder(value: Any) -> Recorder | None:
    """A `Recorder` from a recorder, a `LogStore`, a LangGraph `BaseStore`, or an event-file path (None stays None)."""
    if value is None or isinstance(value, Recorder):
        return value
    if isinstance(value, (str, Path)):
        return Recorder(value)
    if isinstance(value, LogStore):
        return Recorder(value)
    try:
        from langgraph.store.base import BaseStore
    except ImportError:  # pragma: no cover
        BaseStore = ()  # type: ignore[assignment,misc]
    if isinstance(value, BaseStore):
        from uno_graph.capture.langgraph_store import BaseStoreLogStore

        return Recorder(BaseStoreLogStore(value))
    raise ConfigError(f"recorder is a {type(value).__name__}; give a Recorder, a LogStore (e.g. JsonlLogStore), "
                      "a LangGraph BaseStore, or the path of a JSONL event file")


__all__ = ["FeedbackListener", "Recorder", "as_recorder", "new_log_id", "run_ids", "split_turn"]
