"""Shared fixtures: the real samples beside the repo (skipped when absent) and a scratch outputs root."""
from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
_WHY = f"real samples not found at {SAMPLES} (they sit beside the project root in CI)"


@pytest.fixture(scope="session")
def coco_root() -> Path:
    if not (SAMPLES / "coco" / "annotations").is_dir():
        pytest.skip(_WHY)
    return SAMPLES / "coco"


@pytest.fixture(scope="session")
def mpii_root() -> Path:
    if not (SAMPLES / "mpii" / "annotations").is_dir():
        pytest.skip(_WHY)
    return SAMPLES / "mpii"


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    """Run folders go to a temp dir, never into the repo's outputs/."""
    root = tmp_path / "outputs"
    monkeypatch.setenv("POSECORE_OUTPUTS", str(root))
    return root
