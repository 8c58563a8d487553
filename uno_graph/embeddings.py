"""Sentence embeddings for clustering and routing (L2-normalised float32 rows)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from uno_graph.config import DEFAULT_EMBEDDER


class Embedder:
    """Wraps a sentence-transformers model; `encode` returns unit-length rows.

    Example:
        >>> emb = Embedder()                      # doctest: +SKIP
        >>> emb.encode(["hello"]).shape           # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, name_or_path: str = DEFAULT_EMBEDDER, model=None) -> None:
        self.name = name_or_path
        if model is None:
            from uno_graph.models import load_embedder

            model = load_embedder(name_or_path)
        self.model = model

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def shared_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Embedder:
    """One embedder per process and name (loading takes ~2 s)."""
    return Embedder(name_or_path)
