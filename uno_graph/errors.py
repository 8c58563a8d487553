"""Exceptions. Every error uno-graph raises derives from `UnoGraphError` and the matching builtin."""

from __future__ import annotations


class UnoGraphError(Exception):
    """Root of uno-graph's exceptions."""


class ConfigError(UnoGraphError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what is allowed."""


class LogFormatError(UnoGraphError, ValueError):
    """A log file holds no usable record (single bad records are reported, not raised)."""


class ArtifactError(UnoGraphError, RuntimeError):
    """A work-directory artifact (adapter, manifest, store) is missing, incomplete or mismatched."""


class MissingDependencyError(UnoGraphError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def require(module: str, extra: str):
    """Import an optional dependency or raise with the `pip install` hint for its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is needed here but is not installed; run: pip install 'uno-graph[{extra}]'"
        ) from exc


class AdapterNotFoundError(UnoGraphError, KeyError):
    """A LoRA adapter name is not loaded on the chat model; the message lists the loaded names."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class WorkdirBusyError(UnoGraphError, RuntimeError):
    """Another process (or thread) is writing the work directory; the message names it (`workdir_lock.py`)."""
