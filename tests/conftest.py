"""Shared fixtures: the real samples beside the repo (skipped when absent) and a scratch outputs root."""
from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def annotation_cache(tmp_path_factory):
    """Parsed annotation files (posecore.data.cache) go to a temp folder, never into the repo's
    outputs/; a test that sets POSECORE_CACHE itself wins."""
    before = os.environ.get("POSECORE_CACHE")
    os.environ["POSECORE_CACHE"] = str(tmp_path_factory.mktemp("annotation-cache"))
    yield Path(os.environ["POSECORE_CACHE"])
    if before is None:
        os.environ.pop("POSECORE_CACHE", None)
    else:
        os.environ["POSECORE_CACHE"] = before
