"""Fixtures for the risk screen tests: one screen per session (building it loads spaCy)."""

from __future__ import annotations

import pytest

from bot.risk import RiskScreen


@pytest.fixture(scope="session")
def screen() -> RiskScreen:
    return RiskScreen.load()
