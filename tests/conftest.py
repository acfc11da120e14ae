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
def default_outputs(tmp_path_factory):
    """Without POSECORE_OUTPUTS set, what the tests write (annotation caches of build_dataset, runs
    of tests without the `outputs` fixture) goes to a temp folder, never into the repo's outputs/."""
    if os.environ.get("POSECORE_OUTPUTS"):
        yield Path(os.environ["POSECORE_OUTPUTS"])
        return
    os.environ["POSECORE_OUTPUTS"] = str(tmp_path_factory.mktemp("default-outputs"))
    yield Path(os.environ["POSECORE_OUTPUTS"])
    os.environ.pop("POSECORE_OUTPUTS", None)
