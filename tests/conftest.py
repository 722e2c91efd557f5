"""Shared fixtures. Real recordings live in ../shared/data/realus beside the checkout (never in git);
tests that need them take the ``realus`` fixture and skip with a message when it is absent.
Set SONOEDGE_REALUS to point elsewhere."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def realus_path() -> Path:
    env = os.environ.get("SONOEDGE_REALUS")
    return Path(env) if env else REPO.parent / "shared" / "data" / "realus"


@pytest.fixture(scope="session")
def realus() -> Path:
    path = realus_path()
    if not path.is_dir():
        pytest.skip(f"real ultrasound data not found at {path} (set SONOEDGE_REALUS to its folder)")
    return path
