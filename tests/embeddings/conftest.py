"""Fixtures for the sentence-encoder tests: the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import pytest

from bot.embeddings import SentenceEncoder
from bot.embeddings.minilm import BACKENDS


@pytest.fixture(scope="session")
def encoders() -> dict[str, SentenceEncoder]:
    """Return an uncached, loaded encoder over the installed model for each backend.

    Loading reads 90 MB and checks its digest, so the encoders are shared; with
    the cache off, every test still runs the full forward pass it is checking.
    """
    shared = {backend: SentenceEncoder.from_installed_package(cache_size=0, backend=backend) for backend in BACKENDS}
    for encoder in shared.values():
        encoder.load()
    return shared


@pytest.fixture(params=BACKENDS)
def encoder(request: pytest.FixtureRequest, encoders: dict[str, SentenceEncoder]) -> SentenceEncoder:
    """Return the shared encoder of each backend in turn, so every contract test covers both."""
    return encoders[request.param]
