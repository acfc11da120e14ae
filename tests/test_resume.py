"""Resuming a run (posecore.resume.check_resume through posecore.train): refused changes leave
the run untouched, accepted ones are recorded, and a torn log line or an interrupted checkpoint
write does not stop a resume."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

import posecore
from posecore.errors import TrainingError
from posecore.files import read_jsonl
from posecore.params import load_params

pytestmark = pytest.mark.usefixtures("one_thread")


def _copy_run(reference, outputs, name):
    return Path(shutil.copytree(reference["run_dir"], outputs / name))


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"model.depth": 34}, "model.depth: 18 -> 34"),
        ({"model.name": "simplebaseline"}, "model.name: 'fastpose' -> 'simplebaseline'"),
        ({"data.input_size": [64, 64], "data.heatmap_size": [16, 16]}, "data.input_size: [32, 32] -> [64, 64]"),
        ({"train.batch_size": 2}, "train.batch_size: 4 -> 2"),
        ({"train.optimizer": "sgd"}, "train.optimizer: 'adam' -> 'sgd'"),
        ({"train.seed": 1}, "train.seed: 0 -> 1"),
        ({"train.lr": 0.01}, "train.lr: 0.001 -> 0.01"),
        ({"train.amp": "bf16"}, "train.amp: 'off' -> 'bf16'"),
        ({"data.group_by_image": False}, "data.group_by_image: True -> False"),
    ],
)
def test_resume_refuses_changes_that_would_mix_two_runs(tiny, reference, overrides, key, monkeypatch):
    folder = Path(reference["run_dir"])
    monkeypatch.setenv("POSECORE_OUTPUTS", str(folder.parent))
    before = _snapshot(folder)
    with pytest.raises(TrainingError) as info:
        posecore.train(tiny(**overrides), run_name="reference")
    message = str(info.value)
    for word in (key, "Nothing was written", "another run_name", '"train.accept_changes": ['):
        assert word in message, message
    assert _snapshot(folder) == before


def test_resume_accepts_harmless_and_opted_in_changes_and_records_them(tiny, reference, outputs):
    folder = _copy_run(reference, outputs, "extended")
    params = tiny(
        **{
            "train.epochs": 4,
            "train.log_every": 2,
            "eval.flip_test": False,
            "train.lr": 0.002,
            "train.accept_changes": ["train.lr"],
        }
    )
    result = posecore.train(params, run_name="extended")
    assert result["epochs"] == 4
    assert load_params(folder / "params.yaml") == params
    changed = [r for r in read_jsonl(folder / "log.jsonl") if r["type"] == "params_changed"]
    assert len(changed) == 1 and changed[0]["changed"] == {
        "train.epochs": [3, 4],
        "train.lr": [0.001, 0.002],
        "train.accept_changes": [[], ["train.lr"]],
        "train.log_every": [1, 2],
        "eval.flip_test": [True, False],
    }


def test_resume_after_a_torn_log_line_and_an_interrupted_checkpoint_write(tiny, reference, outputs):
    folder = _copy_run(reference, outputs, "torn")
    orphan = folder / "checkpoints" / ".last.pt.x1y2z3w4.tmp"
    orphan.write_bytes(b"half a checkpoint")
    with open(folder / "log.jsonl", "a") as f:
        f.write('{"type": "train", "epo')
    with pytest.warns(UserWarning, match=r"log\.jsonl"):
        posecore.train(tiny(), run_name="torn")
    assert not orphan.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every line reads now
        records = read_jsonl(folder / "log.jsonl")
    assert [r["type"] for r in records].count("summary") == 2
