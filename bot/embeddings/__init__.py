"""Offline sentence embeddings for matching paraphrased questions to FAQ topics."""

from bot.embeddings.minilm import (
    EmbeddingModelError,
    SentenceEncoder,
    installed_model_dir,
)

__all__ = ["EmbeddingModelError", "SentenceEncoder", "installed_model_dir"]
