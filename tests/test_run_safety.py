"""Runs that survive misuse: one writer per run, crash-consistent records, params checked at load."""
from __future__ import annotations

import dataclasses
import gc
import io
import json
import os
import socket
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest

from posecore import params as params_module
from posecore.params import ParamsError, load_params, resume_changes
from posecore.runs import (DiskFullError, RunLockedError, append_jsonl, atomic_write, check_run_name,
                           default_run_name, is_training, read_jsonl, repair_jsonl, resolve_path, run_dir,
                           run_lock, run_writer)

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- one writer per run

def _lock_holder(folder) -> subprocess.Popen:
    """Another process holding the training lock of `folder` (for 60 s, or until killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from posecore.runs import run_lock\n"
         "with run_lock(sys.argv[1], 'training'):\n    print('locked', flush=True); time.sleep(60)",
         str(folder)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_writer_is_refused_naming_run_pid_and_host(outputs):
    folder = run_dir("shared-run")
    holder = _lock_holder(folder)
    try:
        assert is_training(folder) and run_writer(folder)["pid"] == holder.pid
        with pytest.raises(RunLockedError) as info:
            with run_lock(folder, "evaluation"):
                pass
        message = str(info.value)
        for word in ("'shared-run'", f"process {holder.pid}", socket.gethostname(), "training",
                     "another run_name"):
            assert word in message
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its process: nothing stale is left to clean up by hand
    assert run_writer(folder) is None and not is_training(folder)
    with run_lock(folder, "evaluation"):
        assert run_writer(folder)["purpose"] == "evaluation" and not is_training(folder)
        with pytest.raises(RunLockedError):  # one writer, in this process too
            with run_lock(folder, "training"):
                pass


def test_taking_the_lock_removes_temp_files_of_interrupted_writes(outputs, capsys):
    folder = run_dir("killed")
    orphans = [folder / "checkpoints" / ".last.pt.k3j_x9a2.tmp", folder / ".log.jsonl.ab12cd34.tmp"]
    kept = [folder / "checkpoints" / "last.pt", folder / ".notes.tmp", folder / "weights.tmp"]
    for path in orphans + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    with run_lock(folder, "training"):
        assert not any(path.exists() for path in orphans)
        assert all(path.exists() for path in kept)
    assert "removed 2 temp file(s)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- crash-consistent records

def test_torn_last_log_line_is_skipped_then_cut_off(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"type": "train", "step": 1}\n{"type": "train", "step": 2}\n{"type": "tra')
    with pytest.warns(UserWarning, match=r"log\.jsonl.*line 3"):
        assert [r["step"] for r in read_jsonl(log)] == [1, 2]
    with pytest.warns(UserWarning, match=r"log\.jsonl: removed a torn last line"):
        append_jsonl(log, {"type": "train", "step": 3})
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
    # a whole record that only lost its newline is kept
    log.write_text('{"step": 1}\n{"step": 2}')
    assert repair_jsonl(log) == 0 and log.read_text() == '{"step": 1}\n{"step": 2}\n'


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip() or done.returncode}")
    yield mount_point
    gc.collect()  # a failed run's datasets still map their annotation cache on the disk: release them
    subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_names_path_and_size_and_keeps_previous_files(small_disk):
    import torch

    last = small_disk / "checkpoints" / "last.pt"
    atomic_write(last, lambda f: torch.save({"w": torch.zeros(1000)}, f))
    before = last.read_bytes()
    big = {"w": torch.zeros(200_000)}  # 800 KB of float32 on a 256 KB disk
    with pytest.raises(DiskFullError) as info:
        atomic_write(last, lambda f: torch.save(big, f))
    size = io.BytesIO()
    torch.save(big, size)
    message = str(info.value)
    assert f"{last}: it needs {len(size.getvalue()) / 1024:.1f} KB" in message
    assert "left as it was" in message
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]  # no temp file left

    results = small_disk / "results.json"
    with pytest.raises(DiskFullError, match=r"results\.json: it needs 300\.0 KB.*was not written"):
        atomic_write(results, b"0" * 300 * 1024)
    assert not results.exists()

    log = small_disk / "log.jsonl"
    append_jsonl(log, {"step": 1})
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk up to its last page
        while os.write(filler, b"0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    with pytest.raises(DiskFullError, match=r"log\.jsonl: it needs 9\.8 KB"):
        append_jsonl(log, {"step": 2, "note": "x" * 10_000})
    assert log.read_text() == '{"step": 1}\n'  # whole lines only


# ----------------------------------------------------------------------------- run names and folders

@pytest.mark.parametrize("name, words", [
    ("run\n", ["control character", "newline"]),
    ("a\tb", ["control character"]),
    ("../escape", ["plain folder name"]),
    ("x" * 300, ["300 characters", "at most 255"]),
])
def test_bad_run_names_are_refused(outputs, name, words):
    with pytest.raises(ValueError) as info:
        check_run_name(name)
    assert all(word in str(info.value) for word in words)
    assert not outputs.exists() or not any(outputs.iterdir())


def test_default_run_name_fits_any_params_name():
    name = default_run_name("my params (v2)\n")
    check_run_name(name)
    assert name.startswith("my-params-v2-")


def test_outputs_paths_follow_posecore_outputs(outputs):
    # params/demo.yaml's data.root: synthetic data goes where the user's outputs go
    from posecore.data import dataset_root

    assert resolve_path("outputs/data/synthetic_coco") == outputs / "data" / "synthetic_coco"
    assert dataset_root(load_params("demo").data) == outputs / "data" / "synthetic_coco"
    assert dataset_root(load_params("demo", {"data.root": ""}).data) == outputs / "data" / "synthetic_coco"
    assert resolve_path("params/demo.yaml") == ROOT / "params" / "demo.yaml"


# ----------------------------------------------------------------------------- params at the door

@pytest.mark.parametrize("overrides, words", [
    ({"train.epochs": 0}, ["train.epochs", "> 0"]),
    ({"train.batch_size": -4}, ["train.batch_size", "> 0"]),
    ({"train.lr": float("nan")}, ["train.lr", "finite"]),
    ({"train.lr": float("inf")}, ["train.lr", "finite"]),
    ({"train.lr": "1e-3"}, ["train.lr", "write it with a dot"]),
    ({"train.lr": 0.0}, ["train.lr", "> 0"]),
    ({"train.log_every": 0}, ["train.log_every", "> 0"]),
    ({"train.momentum": 1.5}, ["train.momentum", "[0, 1]"]),
    ({"train.lr_steps": [90, -1]}, ["train.lr_steps", "each value", "-1"]),
    ({"train.seed": -1}, ["train.seed", "[0, 4294967295]"]),
    ({"train.dpg_epoch": -2}, ["train.dpg_epoch", ">= -1"]),
    ({"train.accept_changes": ["train.lrr"]}, ["train.accept_changes", "did you mean 'train.lr'"]),
    ({"data.workers": -1}, ["data.workers", ">= 0"]),
    ({"data.sigma": 0.0}, ["data.sigma", "> 0"]),
    ({"data.std": [1.0, 0.0, 1.0]}, ["data.std", "> 0"]),
    ({"data.rot_prob": 2.0}, ["data.rot_prob", "[0, 1]"]),
    ({"data.dataset": "lsp"}, ["data.dataset", "'coco'"]),
    ({"model.name": "fastpos"}, ["model.name", "did you mean 'fastpose'"]),
    ({"model.depth": 20}, ["model.depth", "ResNet depth"]),
    ({"model.num_stacks": 0}, ["model.num_stacks", "> 0"]),
    ({"model.num_joints": 16}, ["model.num_joints is 16", "'coco' has 17"]),
    ({"data.input_size": [100, 128]}, ["data.input_size [100, 128]", "multiples of 32", "[96, 128]"]),
    ({"data.heatmap_size": [48, 64]}, ["data.heatmap_size [48, 64]", "[96, 128] / 4 = [24, 32]"]),
    ({"data.input_size": [0, 128]}, ["data.input_size", "> 0"]),
    ({"dist.nnodes": 2, "dist.node_rank": 2}, ["dist.node_rank 2", "below dist.nnodes 2"]),
    ({"dist.master_port": 70000}, ["dist.master_port", "[1, 65535]"]),
    ({"eval.dark_kernel": 10}, ["eval.dark_kernel", "odd"]),
    ({"eval.oks_nms": -0.1}, ["eval.oks_nms", "[0, 1]"]),
    ({"eval.batch_size": 0}, ["eval.batch_size", "> 0"]),
])
def test_bad_values_are_refused_at_load_naming_the_key(overrides, words):
    with pytest.raises(ParamsError) as info:
        load_params("demo", overrides)
    message = str(info.value)
    assert "demo.yaml" in message
    for word in words:
        assert word in message, message


def test_the_oracle_may_use_any_heatmap_size_but_training_may_not(outputs):
    import posecore

    coarse = load_params("demo", {"eval.oracle": True, "data.heatmap_size": [6, 8]})
    with pytest.raises(ParamsError, match=r"data\.heatmap_size \[6, 8\] must be .* = \[24, 32\]"):
        posecore.train(coarse, run_name="coarse")
    assert not (outputs / "coarse").exists()


def test_hourglass_needs_inputs_in_multiples_of_128():
    with pytest.raises(ParamsError, match=r"multiples of 128 for hourglass.*\[128, 128\]"):
        load_params("hourglass", {"data.input_size": [96, 128], "data.heatmap_size": [24, 32]})
    assert load_params("hourglass", {"data.input_size": [128, 256], "data.heatmap_size": [32, 64]})


def test_every_numeric_key_has_a_range():
    numeric = []
    for section, section_type in typing.get_type_hints(params_module.Params).items():
        if not dataclasses.is_dataclass(section_type):
            continue
        for key, hint in typing.get_type_hints(section_type).items():
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
            if base in (int, float):
                numeric.append(f"{section}.{key}")
    assert numeric and sorted(numeric) == sorted(params_module.NUMBER_RANGES)


def test_model_geometry_matches_the_models():
    import inspect

    import torch
    from posecore import models

    assert sorted(params_module.MODEL_GEOMETRY) == sorted(models.MODELS)
    assert params_module.RESNET_DEPTHS == tuple(sorted(models.RESNET_BLOCKS))
    for name in ("fastpose", "simplebaseline"):
        stride, multiple = params_module.MODEL_GEOMETRY[name]
        network = models.build_model(name, depth=18).eval()
        with torch.no_grad():
            assert network(torch.zeros(1, 3, 2 * multiple, multiple)).shape[-2:] == (
                2 * multiple // stride, multiple // stride)
            off = multiple + multiple // 2  # off the multiple the heatmaps are not input / stride
            assert network(torch.zeros(1, 3, multiple, off)).shape[-1] != off // stride
    # Hourglass: a stride-4 stem, then `downsample_times` halvings that must divide evenly
    halvings = inspect.signature(models.HourglassNet).parameters["downsample_times"].default
    assert params_module.MODEL_GEOMETRY["hourglass"] == (4, 4 * 2 ** halvings)


# ----------------------------------------------------------------------------- resume changes

def test_resume_changes_sort_harmless_from_refused():
    saved = load_params("demo")
    accepted, refused = resume_changes(saved, load_params("demo", {
        "train.epochs": 20, "data.workers": 0, "eval.flip_test": False, "train.log_every": 5,
        "train.batch_size": 16, "model.depth": 34, "train.seed": 1}))
    assert accepted == {"train.epochs": [10, 20], "data.workers": [2, 0], "eval.flip_test": [True, False],
                        "train.log_every": [10, 5]}
    assert refused == {"train.batch_size": [32, 16], "model.depth": [18, 34], "train.seed": [0, 1]}
    opted_in = load_params("demo", {"train.batch_size": 16, "train.accept_changes": ["train.batch_size"]})
    accepted, refused = resume_changes(saved, opted_in)
    assert refused == {} and accepted["train.batch_size"] == [32, 16]


# ----------------------------------------------------------------------------- boxes given by hand

def _onnx_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("onnx_infer", ROOT / "examples" / "onnx_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("box", [
    [10, 10, 0, 50], [10, 10, 40, -5], [float("nan"), 10, 40, 50], [10, 10, float("inf"), 50],
    [80, 10, 40, 50], [10, 100, 40, 50], [-50, 10, 50, 50], [10, -60, 40, 50],
])
def test_bad_hand_boxes_are_refused(box):
    image = np.zeros((100, 80, 3), np.uint8)  # h 100, w 80
    with pytest.raises(SystemExit, match=r"--box .*W and H > 0.*80 x 100 image"):
        _onnx_example().check_box(box, image)


def test_partly_outside_hand_box_is_fine():
    _onnx_example().check_box([-20, 90, 40, 50], np.zeros((100, 80, 3), np.uint8))


# ----------------------------------------------------------------------------- training runs

TINY = {"model.depth": 18, "data.input_size": [32, 32], "data.heatmap_size": [8, 8], "data.workers": 0,
        "train.batch_size": 4, "train.epochs": 2, "train.lr": 1e-3, "train.lr_steps": [100],
        "train.warmup_iters": 0, "train.val_every": 0, "train.log_every": 1, "train.perf_warmup_steps": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from posecore import data

    root = data.make_synthetic(tmp_path_factory.mktemp("synthetic") / "coco", "coco", num_train=4,
                               num_val=1, image_size=64)

    def make(**overrides):
        return load_params("demo", {**TINY, "data.root": str(root), **overrides})
    return make


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """One uninterrupted tiny run (2 epochs of 2 steps), on one thread so runs compare bitwise."""
    import torch
    import posecore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    outputs = tmp_path_factory.mktemp("reference")
    os.environ["POSECORE_OUTPUTS"] = str(outputs)
    try:
        yield posecore.train(tiny(), run_name="reference")
    finally:
        del os.environ["POSECORE_OUTPUTS"]
        torch.set_num_threads(threads)


def _copy_run(reference, outputs, name):
    import shutil

    return Path(shutil.copytree(reference["run_dir"], outputs / name))


def _weights(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_and_evaluation_refuse_a_run_another_process_writes(tiny, outputs):
    import posecore

    folder = run_dir("busy")
    holder = _lock_holder(folder)
    try:
        with pytest.raises(RunLockedError, match=rf"'busy'.*training in process {holder.pid}"):
            posecore.train(tiny(), run_name="busy")
        with pytest.raises(RunLockedError, match=rf"'busy'.*process {holder.pid}"):
            posecore.evaluate(tiny(**{"eval.oracle": True}), None, run_name="busy")
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == [".writer.lock"]  # nothing else written


@pytest.mark.parametrize("overrides, key", [
    ({"model.depth": 34}, "model.depth: 18 -> 34"),
    ({"model.name": "simplebaseline"}, "model.name: 'fastpose' -> 'simplebaseline'"),
    ({"data.input_size": [64, 64], "data.heatmap_size": [16, 16]}, "data.input_size: [32, 32] -> [64, 64]"),
    ({"train.batch_size": 2}, "train.batch_size: 4 -> 2"),
    ({"train.optimizer": "sgd"}, "train.optimizer: 'adam' -> 'sgd'"),
    ({"train.seed": 1}, "train.seed: 0 -> 1"),
    ({"train.lr": 0.01}, "train.lr: 0.001 -> 0.01"),
    ({"train.amp": "bf16"}, "train.amp: 'off' -> 'bf16'"),
    ({"data.group_by_image": False}, "data.group_by_image: True -> False"),
])
def test_resume_refuses_changes_that_would_mix_two_runs(tiny, reference, overrides, key):
    import posecore
    from posecore.engine import TrainingError

    folder = Path(reference["run_dir"])
    before = _snapshot(folder)
    with pytest.raises(TrainingError) as info:
        posecore.train(tiny(**overrides), run_name="reference")
    message = str(info.value)
    for word in (key, "Nothing was written", "another run_name", '"train.accept_changes": ['):
        assert word in message, message
    assert _snapshot(folder) == before


def test_resume_accepts_harmless_and_opted_in_changes_and_records_them(tiny, reference, outputs):
    import posecore

    folder = _copy_run(reference, outputs, "extended")
    params = tiny(**{"train.epochs": 3, "train.log_every": 2, "eval.flip_test": False,
                     "train.lr": 0.002, "train.accept_changes": ["train.lr"]})
    result = posecore.train(params, run_name="extended")
    assert result["epochs"] == 3
    assert load_params(folder / "params.yaml") == params
    changed = [r for r in read_jsonl(folder / "log.jsonl") if r["type"] == "params_changed"]
    assert len(changed) == 1 and changed[0]["changed"] == {
        "train.epochs": [2, 3], "train.lr": [0.001, 0.002], "train.accept_changes": [[], ["train.lr"]],
        "train.log_every": [1, 2], "eval.flip_test": [True, False]}


def test_resume_after_a_torn_log_line_and_an_interrupted_checkpoint_write(tiny, reference, outputs):
    import posecore

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


def test_sigterm_mid_epoch_saves_the_step_and_resumes_equal(tiny, reference, outputs, monkeypatch):
    import signal

    import torch
    import posecore
    from posecore import checkpoints

    calls, per_epoch = [], reference["steps"] // reference["epochs"]

    def terminate(module, inputs, output):
        calls.append(1)
        if len(calls) == per_epoch + 1:  # the 1st step of epoch 1
            os.kill(os.getpid(), signal.SIGTERM)  # as SLURM / Kubernetes before a kill

    load_model = checkpoints.load_model

    def hooked(*args, **kwargs):
        model, *rest = load_model(*args, **kwargs)
        model.register_forward_hook(terminate)
        return (model, *rest)

    with monkeypatch.context() as patch:
        patch.setattr(posecore.engine, "load_model", hooked)
        with pytest.raises(SystemExit) as info:
            posecore.train(tiny(), run_name="terminated")
    assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    last = outputs / "terminated" / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["epoch_step"]) == (1, 1)  # the running step finished

    posecore.train(tiny(), run_name="terminated")
    reference_weights = _weights(reference["checkpoint"])
    resumed = _weights(last)
    assert resumed.keys() == reference_weights.keys()
    assert all(torch.equal(resumed[k], reference_weights[k]) for k in resumed)


def test_disk_full_during_training_names_the_checkpoint(tiny, small_disk, monkeypatch):
    import posecore

    monkeypatch.setenv("POSECORE_OUTPUTS", str(small_disk))
    with pytest.raises(DiskFullError, match=r"checkpoints/last\.pt: it needs [\d.]+ MB"):
        posecore.train(tiny(**{"train.epochs": 1}), run_name="full")
    assert [p.name for p in (small_disk / "full").rglob("*.tmp")] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the log holds whole records only
        assert read_jsonl(small_disk / "full" / "log.jsonl")


# ----------------------------------------------------------------------------- annotations and detections

@pytest.fixture
def coco_copy(tiny, tmp_path):
    """A writable copy of the tiny synthetic COCO set, and params reading it."""
    import shutil

    root = Path(shutil.copytree(tiny().data.root, tmp_path / "coco"))
    return root, tiny(**{"data.root": str(root)})


def _edit_json(path, edit):
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def test_a_category_with_another_joint_count_is_an_error(coco_copy):
    from posecore.data import build_dataset

    root, params = coco_copy
    path = root / "annotations" / "person_keypoints_val2017.json"
    _edit_json(path, lambda c: c["categories"][0].update(keypoints=c["categories"][0]["keypoints"][:16]))
    with pytest.raises(ValueError, match=r"person_keypoints_val2017\.json: category 'person' has 16 "
                                         r"keypoints but the params have 17 joints"):
        build_dataset(params, "val")


@pytest.mark.parametrize("field, value, reason", [
    ("keypoints", list(range(48)), "48 keypoint values, not 51"),
    ("keypoints", None, "keypoints is not a list of numbers"),
    ("keypoints", ["x"] * 51, "keypoints is not a list of numbers"),
    ("bbox", [1, 2, 3], "bbox is not 4 finite numbers"),
    ("image_id", "0001", "image_id is not an integer"),
])
def test_bad_person_entries_are_counted_and_reported_once(coco_copy, outputs, field, value, reason):
    from posecore import workbook
    from posecore.data import build_dataset, check_annotations

    root, params = coco_copy
    path = root / "annotations" / "person_keypoints_val2017.json"
    total = len(json.loads(path.read_text())["annotations"])
    clean = len(build_dataset(params, "val"))
    _edit_json(path, lambda c: [c["annotations"][i].update({field: value}) for i in (0, 1)])
    ids = [a["id"] for a in json.loads(path.read_text())["annotations"][:2]]
    with pytest.warns(UserWarning) as caught:
        assert len(build_dataset(params, "val")) == clean - 2
    messages = [str(w.message) for w in caught if "person entries" in str(w.message)]
    assert len(messages) == 1 and f"skipped 2 of {total}" in messages[0] and reason in messages[0]
    assert f"ids {ids}" in messages[0]
    bad = check_annotations(path, "coco")
    assert bad.count == 2 and bad.examples == {next(iter(bad.counts)): ids}
    check = workbook.LayoutCheck(root, "coco", [], False)
    table = workbook.annotation_checks("prepared", params, check)
    assert table.rows[1][:4] == ["val", path.name, total, 2] and reason in table.rows[1][4]
    assert (outputs / "prepared" / "tables" / "data_annotation_checks.json").is_file()


def test_bad_mpii_entries_are_counted(tmp_path):
    from posecore.data import check_annotations

    path = tmp_path / "mpii_val.json"
    good = {"image": "000001.jpg", "center": [50.0, 60.0], "scale": 1.2,
            "joints": [[10.0, 20.0]] * 16, "joints_vis": [1] * 16}
    path.write_text(json.dumps([good, {**good, "joints": [[1.0, 2.0]] * 15}, {**good, "scale": -1},
                                {**good, "joints_vis": [1] * 17}, {**good, "center": [1.0]}]))
    bad = check_annotations(path, "mpii")
    assert (bad.total, bad.count) == (5, 4)
    assert bad.examples["joints is not 16 (x, y) pairs of numbers"] == ["#1 (000001.jpg)"]
    assert set(bad.counts) >= {"scale is not a positive number", "joints_vis is not 16 numbers",
                               "center is not 2 finite numbers"}


def _first_val_image(root):
    return json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())["images"][0]["id"]


@pytest.mark.parametrize("entry, problem", [
    ("not a dict", "is not an object"),
    ({"bbox": [1, 2, 3, 4], "score": 1.0}, "has no 'image_id'"),
    ({"image_id": 1, "bbox": [1, 2, 3], "score": 1.0}, "bbox that is not 4 numbers"),
    ({"image_id": 1, "bbox": "1 2 3 4", "score": 1.0}, "bbox that is not 4 numbers"),
    ({"image_id": 1, "bbox": [1, 2, 3, float("nan")], "score": 1.0}, "non-finite bbox or score"),
    ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": float("inf")}, "non-finite bbox or score"),
    ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}, "score that is not a number"),
    ({"image_id": [1], "bbox": [1, 2, 3, 4], "score": 1.0}, "image_id that is neither"),
])
def test_malformed_detection_entries_name_file_and_index(coco_copy, tmp_path, entry, problem):
    from posecore.data import build_dataset

    root, params = coco_copy
    image_id = _first_val_image(root)
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([{"image_id": image_id, "bbox": [1, 2, 10, 20], "score": 0.9}, entry]))
    params = load_params(params, {"data.det_file": str(det_file), "eval.use_gt_boxes": False})
    with pytest.raises(ValueError, match=rf"dets\.json: entry 1 .*{problem}"):
        build_dataset(params, "test")


def test_zero_and_negative_detection_boxes_are_counted(coco_copy, tmp_path):
    from posecore.data import build_dataset

    root, params = coco_copy
    image_id = _first_val_image(root)
    boxes = [[1, 2, 10, 20], [1, 2, 0, 20], [1, 2, 10, -5], [3, 4, 12, 22]]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([{"image_id": image_id, "bbox": b, "score": 0.9} for b in boxes]))
    params = load_params(params, {"data.det_file": str(det_file), "eval.use_gt_boxes": False})
    with pytest.warns(UserWarning, match=r"dets\.json: 2 of 4 detections have a box of zero or negative "
                                         r"width or height and were skipped \(entries \[1, 2\]\)"):
        assert len(build_dataset(params, "test")) == 2
