"""Shared fixtures: the real samples beside the repo (skipped when absent), a scratch outputs root,
the tiny training run (params, one reference run, one thread) and a small disk to fill."""

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


# --- the tiny training run (helpers.TINY + helpers.TRAIN) --------------------------------------


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """helpers.tiny_synthetic data, made once per session."""
    from helpers import tiny_synthetic

    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def tiny(tiny_root):
    """tiny(**overrides) -> the tiny training params (three epochs without an LR step) on tiny_root."""
    from helpers import TRAIN, tiny_params

    def make(**overrides):
        return tiny_params(tiny_root, **{**TRAIN, **overrides})

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Runs compared bitwise use the same thread count; one thread also keeps a shared
    2-core machine from stalling OpenMP barriers. Modules use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tiny_root, tmp_path_factory, one_thread):
    """One uninterrupted tiny run (posecore.train's result), shared by the tests of a module
    that compare against it; its folder is outside the tests' `outputs`."""
    from helpers import TRAIN, tiny_params

    import posecore

    outputs = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(outputs))
        return posecore.train(tiny_params(tiny_root, **TRAIN), run_name="reference")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    import gc
    import subprocess

    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip() or done.returncode}")
    yield mount_point
    gc.collect()  # a failed run's datasets still map their annotation cache on the disk: release them
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
        # something of the run still holds a file there (a mapped cache page): detach it lazily
        subprocess.run(["umount", "-l", str(mount_point)], check=True)
