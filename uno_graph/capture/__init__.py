"""Closing the loop: record what a running app answers, and what its users do next, as UNO logs.

`uno-graph learn` learns from logs (README "Log format"); this package writes them while serving.

- `store`: the `LogStore` protocol and the default `JsonlLogStore`, an append-only, fsync'ed JSONL
  event file (answers, follow-ups, feedback) that `fold`/`export` turn into log-format records.
- `langgraph_store`: `BaseStoreLogStore`, records kept in an app's LangGraph `BaseStore`.
- `recorder`: `Recorder`, which every serving path calls: it records each answer (returning its log
  id) and appends the user's next turn in the same thread to the previous answer's log.
- `feedback`: `feedback(store, log_id, rating=, edited_response=, comment=)`, validated.
- `threads`: `read_threads`/`export_threads`, an app's LangGraph checkpointer threads as logs
  (no recorder needed: the history it already keeps), from the checkpointer or a `SqliteSaver` file.
- `checkpointer_path`: `open_checkpointer("app.memory:saver")`, a checkpointer named by its import
  path, as the command line's `--checkpointer MODULE:NAME` does.

    >>> recorder = Recorder("runs/demo/events.jsonl")                      # doctest: +SKIP
    >>> graph = UnoSystem.load("runs/demo").graph(recorder=recorder)       # doctest: +SKIP
    >>> recorder.export("runs/demo/recorded.jsonl")                        # then: uno-graph learn ... # doctest: +SKIP
"""

from uno_graph.capture.feedback import FeedbackError, feedback, validate_feedback
from uno_graph.capture.langgraph_store import BaseStoreLogStore
from uno_graph.capture.recorder import Recorder, as_recorder, new_log_id, run_ids
from uno_graph.capture.store import JsonlLogStore, LogStore, UnknownLogError, export, fold
from uno_graph.capture.threads import export_threads, read_threads

__all__ = ["BaseStoreLogStore", "FeedbackError", "JsonlLogStore", "LogStore", "Recorder", "UnknownLogError",
           "as_recorder", "export", "export_threads", "feedback", "fold", "new_log_id", "read_threads", "run_ids",
           "validate_feedback"]
