"""uno-graph: make a deployed LLM system learn from its own user logs (UNO, served as a LangGraph)."""

__version__ = "0.1.0"

from uno_graph.config import UnoConfig  # noqa: E402
from uno_graph.errors import ArtifactError, ConfigError, LogFormatError, UnoGraphError  # noqa: E402
from uno_graph.logs import Feedback, LogRecord, read_logs  # noqa: E402


_CAPTURE = ("BaseStoreLogStore", "JsonlLogStore", "LogStore", "Recorder", "feedback")


def __getattr__(name: str):
    # Heavy modules (torch, transformers, chromadb) load only when used.
    if name == "learn":
        from uno_graph.pipeline import learn

        return learn
    if name == "UnoChatModel":
        from uno_graph.chat_model import UnoChatModel

        return UnoChatModel
    if name in _CAPTURE:  # recording answers and feedback (uno_graph.capture)
        import uno_graph.capture

        return getattr(uno_graph.capture, name)
    raise AttributeError(f"module 'uno_graph' has no attribute {name!r}")


__all__ = sorted([
    "ArtifactError", "ConfigError", "Feedback", "LogFormatError", "LogRecord", "UnoChatModel",
    "UnoConfig", "UnoGraphError", "__version__", "learn", "read_logs", *_CAPTURE,
])
