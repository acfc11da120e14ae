"""Runs that survive misuse: one writer per run, crash-consistent records, params checked at load."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from posecore import params as params_module
from posecore.params import ParamsError, load_params, resume_changes
from posecore.runs import (DiskFullError, RunLockedError, append_jsonl, atomic_write, check_run_name,
                           default_run_name, read_jsonl, repair_jsonl, resolve_path, run_dir, run_lock)

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- one writer per run

def test_second_writer_is_refused_naming_run_pid_and_host(outputs):
    folder = run_dir("shared-run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from posecore.runs import run_lock\n"
         "with run_lock(sys.argv[1], 'training'):\n    print('locked', flush=True); time.sleep(60)",
         str(folder)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
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
    with run_lock(folder, "training"):
        with run_lock(folder, "evaluation"):  # the same process may nest
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
    assert resolve_path("outputs/data/synthetic_coco") == outputs / "data" / "synthetic_coco"
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
    import torch
    from posecore import models

    assert sorted(params_module.MODEL_GEOMETRY) == sorted(models.MODELS)
    assert params_module.RESNET_DEPTHS == tuple(sorted(models.RESNET_BLOCKS))
    for name, (stride, multiple) in params_module.MODEL_GEOMETRY.items():
        with torch.device("meta"):
            model = models.build_model(name, **({} if name == "hourglass" else {"depth": 18})).eval()
            width, height = multiple, 2 * multiple
            heatmaps = model(torch.empty(1, 3, height, width))
            assert tuple(heatmaps.shape[-2:]) == (height // stride, width // stride)
            try:  # off the multiple the heatmaps are not input / stride
                off = model(torch.empty(1, 3, height, width + multiple // 2))
                assert off.shape[-1] != (width + multiple // 2) // stride
            except RuntimeError:
                pass


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
