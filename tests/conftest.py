"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The repository's embedded real sample data (``data/``, see ``data/PROVENANCE.md``)."""
    return DATA
