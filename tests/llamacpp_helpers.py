"""Helpers shared by the llama.cpp engine tests: answer agreement and the process's C-level signal handler."""

from __future__ import annotations

import ctypes
import signal

WORDS = 5  # "agreement" = the first WORDS words of both answers are equal


def c_handler(sig: int) -> bytes:
    """The C-level handler of `sig` (sigaction's sa_handler): llama.cpp installs its own at server start."""
    buf = ctypes.create_string_buffer(512)
    ctypes.CDLL(None).sigaction(sig, None, buf)
    return buf.raw[:8]


SIGINT_AT_IMPORT = c_handler(signal.SIGINT)  # before any test module starts a llama.cpp server


def prefix(a: str, b: str) -> int:
    """How many leading words two answers share."""
    a_words, b_words = a.split(), b.split()
    n = 0
    while n < min(len(a_words), len(b_words)) and a_words[n] == b_words[n]:
        n += 1
    return n


def agrees(a: str, b: str) -> bool:
    """The first WORDS words are equal (fewer when an answer is shorter), and both or neither are empty."""
    return prefix(a, b) >= min(WORDS, len(a.split()), len(b.split())) and bool(a.split()) == bool(b.split())
