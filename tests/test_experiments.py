"""Comparing runs, the run index and TensorBoard curves, on three tiny trainings.

`base` and `changed` finish and differ in exactly two params (train.lr, train.seed); `crashed` has
base's params and dies in its second epoch (a crash after the first checkpoint, as a kill would).
"""

from __future__ import annotations

import csv
import json
import os
import shutil

import nbformat
import pytest
import torch
from helpers import tiny_params, tiny_synthetic

import posecore
from posecore import checkpoints, data, experiments
from posecore.errors import RunLockedError
from posecore.files import read_jsonl
from posecore.params import load_params
from posecore.runs import run_lock

SETTINGS = {
    "train.epochs": 2,
    "train.lr_steps": [100],
    "train.warmup_iters": 0,
    "train.val_every": 1,
    "eval.batch_size": 16,
    "train.tensorboard_images": 0,
}
CHANGED = {"train.lr": 3e-3, "train.seed": 1}


class SimulatedCrash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """outputs/ with base, changed (2 params differ) and crashed (died in epoch 1 of 2)."""
    root = tmp_path_factory.mktemp("experiments")
    outputs = root / "outputs"
    previous = os.environ.get("POSECORE_OUTPUTS")
    os.environ["POSECORE_OUTPUTS"] = str(outputs)  # papermill kernels inherit it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = tiny_params(tiny_synthetic(root), **SETTINGS)
        posecore.train(params, run_name="base")
        posecore.train(load_params(params, CHANGED), run_name="changed")
        steps_per_epoch = len(data.build_dataset(params, "train")) // params.train.batch_size
        _train_crashing_at(params, "crashed", steps_per_epoch + 2)
        yield {"outputs": outputs, "params": params, "steps_per_epoch": steps_per_epoch}
    finally:
        torch.set_num_threads(threads)
        if previous is None:
            del os.environ["POSECORE_OUTPUTS"]
        else:
            os.environ["POSECORE_OUTPUTS"] = previous


def _train_crashing_at(params, run_name: str, crash_at: int) -> None:
    """Train until the training forward pass number `crash_at` raises (validation does not count)."""
    build, calls = checkpoints.build_model, []

    def crash(module, inputs, output):
        if module.training:
            calls.append(1)
            if len(calls) == crash_at:
                raise SimulatedCrash("the machine went away")

    def build_crashing(p):
        model = build(p)
        model.register_forward_hook(crash)
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "build_model", build_crashing)
        with pytest.raises(SimulatedCrash):
            posecore.train(params, run_name=run_name)


def test_compare_runs_lists_only_the_differing_params_and_the_states(runs):
    comparison = posecore.compare_runs(["base", "changed", "crash*"])
    assert comparison.names == ["base", "changed", "crashed"]
    assert comparison.differing == {
        "train.lr": {"base": 2e-3, "changed": 3e-3, "crashed": 2e-3},
        "train.seed": {"base": 0, "changed": 1, "crashed": 0},
    }
    by_run = {r["run"]: r for r in comparison.runs}
    assert by_run["base"]["state"] == by_run["changed"]["state"] == "finished"
    crashed = by_run["crashed"]
    assert crashed["state"] == "stopped"
    assert (crashed["epochs_done"], crashed["epochs_planned"], crashed["last_epoch"]) == (1, 2, 1)
    assert crashed["steps"] == runs["steps_per_epoch"] + 1  # the crashing step is not logged
    assert crashed["last"] == crashed["best"] is not None  # its one validation
    assert by_run["base"]["epochs_done"] == 2 and by_run["base"]["world_size"] == 1
    assert any("crashed stopped in epoch 1" in note for note in comparison.notes)
    assert not any(note.startswith("not comparable") for note in comparison.notes)


def test_a_run_being_trained_is_running_and_a_second_trainer_is_refused(runs):
    folder = runs["outputs"] / "crashed"
    with run_lock(folder, "training"):
        assert experiments.read_run("crashed")["state"] == "running"
        with pytest.raises(RunLockedError, match="'crashed'.*being written by training"):
            posecore.train(runs["params"], run_name="crashed")
    assert experiments.read_run("crashed")["state"] == "stopped"


def test_other_data_or_protocol_is_noted_as_not_comparable(runs):
    other = runs["outputs"] / "other-protocol"
    shutil.copytree(runs["outputs"] / "base", other)
    posecore.save_params(load_params(other / "params.yaml", {"eval.flip_test": False}), other / "params.yaml")
    notes = posecore.compare_runs(["base", "other-protocol"]).notes
    assert [n for n in notes if n.startswith("not comparable")] == [
        "not comparable: different validation protocol (base: COCOeval, OKS-NMS 0.9, flip test, "
        "default decoding; other-protocol: COCOeval, OKS-NMS 0.9, no flip test, default decoding)"
    ]
    with pytest.raises(FileNotFoundError, match=r"no run folder .* matches 'nope\*'.*base"):
        posecore.compare_runs(["base", "nope*"])


def test_compare_notebook_shows_the_two_params_the_crashed_state_and_curves(runs):
    from posecore import demo

    parameters = {"runs": ["base", "changed", "crashed"], "metric": "AP", "run_name": "comparison"}
    output = demo.run_notebook("compare", "comparison", parameters, stream=False)
    tables = runs["outputs"] / "comparison" / "tables"
    params_table = json.loads((tables / "compare_runs_differing.json").read_text())
    assert [row[0] for row in params_table["rows"]] == ["train.lr", "train.seed"]
    runs_table = json.loads((tables / "compare_runs.json").read_text())
    crashed = dict(zip(runs_table["columns"], next(r for r in runs_table["rows"] if r[0] == "crashed")))
    assert crashed["state"].startswith("stopped") and crashed["epochs"] == "1 of 2"
    assert (runs["outputs"] / "comparison" / "figures" / "compare_curves.png").is_file()
    executed = nbformat.read(output, as_version=4)
    images = sum("image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    assert images >= 1
    assert "report.html of run comparison" in json.dumps([c.get("outputs") for c in executed.cells])
    report = (runs["outputs"] / "comparison" / "report.html").read_text()
    assert "train.seed" in report and "crashed" in report and "data:image/png;base64" in report
    with open(runs["outputs"] / "runs.csv") as f:
        index = {row["run"]: row for row in csv.DictReader(f)}
    assert {"base", "changed", "crashed"} <= index.keys() and "comparison" not in index
    assert index["crashed"]["state"] == "stopped" and index["base"]["epochs_done"] == "2"


def test_tensorboard_curves_of_a_resumed_run_have_each_step_once(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = runs["outputs"] / "resumed"
    shutil.copytree(runs["outputs"] / "crashed", folder)
    posecore.train(load_params(runs["params"], {"train.tensorboard_images": 2}), run_name="resumed")
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    log = read_jsonl(folder / "log.jsonl")
    train_steps = [r["step"] for r in log if r["type"] == "train"]
    val_steps = [r["step"] for r in log if r["type"] == "val"]
    assert train_steps == list(range(1, 2 * runs["steps_per_epoch"] + 1))
    assert [e.step for e in events.Scalars("train/loss")] == train_steps
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(
        [r["loss"] for r in log if r["type"] == "train"]
    )
    for tag in ("train/lr", "train/images_per_s", "train/data_wait", "train/skipped_steps"):
        assert [e.step for e in events.Scalars(tag)] == train_steps, tag
    assert (
        [e.step for e in events.Scalars("val/AP")]
        == val_steps
        == [runs["steps_per_epoch"], 2 * runs["steps_per_epoch"]]
    )
    assert [e.step for e in events.Images("val/predictions")] == val_steps[1:]  # images from the resume on
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # the crashed attempt's and the resume's


def test_states_and_index_from_written_records(outputs):
    """No training needed: the state follows from the records a run folder holds."""

    def folder(name: str, records: list[dict], tail: str = "") -> None:
        (outputs / name).mkdir(parents=True)
        posecore.save_params(load_params("demo"), outputs / name / "params.yaml")
        if records or tail:
            (outputs / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)

    train = {"type": "train", "epoch": 0, "step": 5, "loss": 0.1, "images_per_s": 40.0}
    folder("evaluated-only", [])
    folder("measured", [train, {"type": "summary", "epochs": 0, "stopped": "max_steps", "images_per_s": 50.0}])
    folder("killed-mid-append", [train], tail='{"type": "train", "epo')
    (outputs / "broken").mkdir()
    (outputs / "broken" / "params.yaml").write_text("model: [unclosed\n")
    assert experiments.read_run("evaluated-only")["state"] == "untrained"
    measured = experiments.read_run("measured")
    assert measured["state"] == "measured" and measured["images_per_s"] == 50.0
    killed = experiments.read_run("killed-mid-append")
    assert killed["state"] == "stopped" and killed["steps"] == 5 and killed["images_per_s"] == 40.0
    with open(experiments.write_run_index(), newline="") as f:
        index = {row["run"]: row for row in csv.DictReader(f)}
    assert sorted(index) == ["broken", "evaluated-only", "killed-mid-append", "measured"]
    assert index["broken"]["state"].startswith("unreadable: ") and index["measured"]["state"] == "measured"
