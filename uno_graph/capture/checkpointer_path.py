"""`--checkpointer MODULE:NAME`: any LangGraph checkpointer, named on the command line by an import path.

A `SqliteSaver` file is opened from its path alone. Every other checkpointer (`PostgresSaver`, a
Redis or MongoDB saver, an app's own) needs the app's code to connect: a connection string from its
settings, credentials, a pool. So rather than one option per backend, the command line imports the
checkpointer the way the app builds it. `NAME` in `MODULE` may be:

- a checkpointer (`BaseCheckpointSaver`), or a graph compiled with `checkpointer=`;
- a context manager that yields one, such as the savers' own `from_conn_string(...)`: entered for
  the read and exited after it, so the connection is closed;
- a function taking no arguments that returns any of the above, so nothing connects at import time:

    # app/memory.py
    def checkpointer():
        return PostgresSaver.from_conn_string(os.environ["DATABASE_URL"])

    uno-graph export-threads --checkpointer app.memory:checkpointer threads.jsonl
    uno-graph learn --checkpointer app.memory:checkpointer --workdir runs/next

Only the checkpointer's `list` is called (`uno_graph.capture.threads.read_threads`); connecting is the
app's code. The current directory is put on the import path (after the installed packages), so an
app's module beside the user imports without installing the app. Async savers (`AsyncPostgresSaver`,
...) need the event loop they were made on, which a command has not: name the synchronous saver of
the same database instead.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from uno_graph.capture.threads import checkpointer_of
from uno_graph.errors import ConfigError

CHECKPOINTER_FIX = ("give MODULE:NAME where NAME is a LangGraph checkpointer, a graph compiled with one, a context "
                    "manager yielding one (PostgresSaver.from_conn_string(URL)) or a function of no arguments "
                    "returning one of these")


def import_object(spec: str) -> Any:
    """The object `spec` (`package.module:name`) names; ConfigError naming the fix if it cannot be imported."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ConfigError(f"--checkpointer {spec!r} is not an import path; {CHECKPOINTER_FIX}")
    if os.getcwd() not in sys.path and "" not in sys.path:  # the `uno-graph` script's own directory is first
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # a misspelt module, or one the app's module imports and is not installed
        raise ConfigError(f"--checkpointer {spec!r}: cannot import {module_name!r} ({exc}); {CHECKPOINTER_FIX}") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigError(f"--checkpointer {spec!r}: module {module_name!r} has no {name!r}; "
                          f"{CHECKPOINTER_FIX}") from None


def _is_checkpointer(obj: Any) -> bool:
    """A checkpointer or a graph compiled with one: used as it is (neither is entered nor called)."""
    return isinstance(obj, BaseCheckpointSaver) or isinstance(getattr(obj, "checkpointer", None), BaseCheckpointSaver)


def _made(spec: str, factory: Any) -> Any:
    """What the zero-argument `factory` returns; ConfigError if it needs arguments."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check (a builtin): the call says what is wrong
        return factory()
    try:
        signature.bind()
    except TypeError:
        needed = ", ".join(name for name, p in signature.parameters.items()
                           if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        raise ConfigError(f"--checkpointer {spec!r} needs arguments ({needed}): wrap the call in a function of no "
                          f"arguments; {CHECKPOINTER_FIX}") from None
    return factory()


def _saver(spec: str, obj: Any) -> BaseCheckpointSaver:
    try:
        return checkpointer_of(obj)
    except ConfigError:
        if hasattr(obj, "__aenter__"):
            raise ConfigError(f"--checkpointer {spec!r} gives an async context manager ({type(obj).__name__}); "
                              "name the synchronous saver of the same database") from None
        raise ConfigError(f"--checkpointer {spec!r} gives a {type(obj).__name__}, not a LangGraph checkpointer; "
                          f"{CHECKPOINTER_FIX}") from None


@contextmanager
def open_checkpointer(spec: str) -> Iterator[BaseCheckpointSaver]:
    """The checkpointer `spec` names (see the module docstring), for the time of the `with` block.

    Raises:
        ConfigError: the import path is malformed or cannot be imported, or what it names is not (and
            does not give) a checkpointer; the message names the path and what to give instead.
    """
    obj = import_object(spec)
    if callable(obj) and not _is_checkpointer(obj) and not isinstance(obj, AbstractContextManager):
        obj = _made(spec, obj)
    if isinstance(obj, AbstractContextManager) and not _is_checkpointer(obj):
        with obj as entered:
            yield _saver(spec, entered)
    else:
        yield _saver(spec, obj)


__all__ = ["CHECKPOINTER_FIX", "import_object", "open_checkpointer"]
