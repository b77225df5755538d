"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The workplace's real sample data (``../shared/data`` beside the checkout, see its
    PROVENANCE.md), or ``$SPARSEGRAD_SHARED_DATA``. Missing data is an error, not a skip."""
    root = Path(os.environ.get("SPARSEGRAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "PROVENANCE.md").is_file():
        raise FileNotFoundError(
            f"real sample data not found at {root}; place shared/data beside the checkout or set "
            "SPARSEGRAD_SHARED_DATA"
        )
    return root
