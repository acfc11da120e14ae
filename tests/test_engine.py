"""Training engine: loss, schedule, checkpoints, resume after SIGKILL / interrupt, NaN steps, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import checkpoint_weights, lock_holder
from torch import nn

import posecore
from posecore import checkpoints, data, engine, models, optim
from posecore.errors import RunLockedError
from posecore.files import REPO_ROOT, DiskFullError, read_json, read_jsonl
from posecore.params import load_params, save_params
from posecore.runs import run_dir

pytestmark = pytest.mark.usefixtures("one_thread")


def _assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _train_losses(folder) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(Path(folder) / "log.jsonl") if r["type"] == "train"]


def _steps_per_epoch(params) -> int:
    return len(data.build_dataset(params, "train")) // params.train.batch_size


# --- pure pieces -------------------------------------------------------------------------------


def test_joints_mse_with_target_weights():
    torch.manual_seed(0)
    output, target = torch.rand(3, 5, 4, 6), torch.rand(3, 5, 4, 6)
    weight = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.5]]).repeat(3, 1)
    per_joint = [
        0.5 * nn.functional.mse_loss(output[:, j] * weight[:, j, None, None], target[:, j] * weight[:, j, None, None])
        for j in range(5)
    ]
    expected = torch.stack(per_joint).mean()
    assert torch.allclose(optim.joints_mse(output, target, weight, loss_weight=0.5), expected)
    assert torch.allclose(optim.joints_mse([output, output], target, weight, loss_weight=0.5), 2 * expected)
    # a zero-weight joint does not count, whatever its prediction
    changed = output.clone()
    changed[:, 1] += 100
    assert torch.allclose(optim.joints_mse(changed, target, weight, loss_weight=0.5), expected)


def _alphapose_lrs(lr, steps, factor, milestone, dpg_steps, epochs):
    """AlphaPose scripts/train.py's LR per epoch, replayed with torch's MultiStepLR: DPG_STEP
    becomes offsets from DPG_MILESTONE at config load (alphapose/opt.py), and a fresh scheduler
    with gamma 0.1 starts there."""
    dpg_offsets = [step - milestone for step in dpg_steps]
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=factor)
    lrs = []
    for epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if epoch == milestone:
            for group in optimizer.param_groups:
                group["lr"] = lr
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=dpg_offsets, gamma=0.1)
    return lrs


def test_learning_rate_follows_alphapose_multistep_and_dpg_restart():
    milestone, dpg_steps = 6, [9, 11]
    train = load_params(
        "fastpose_coco",
        {
            "train.lr": 1e-3,
            "train.lr_steps": [2, 4],
            "train.lr_factor": 0.1,
            "train.dpg_epoch": milestone,
            "train.dpg_lr_steps": dpg_steps,
            "train.epochs": 14,
        },
    ).train
    expected = _alphapose_lrs(1e-3, [2, 4], 0.1, milestone, dpg_steps, 14)
    got = optim.schedule(train, 1).tolist()
    assert np.allclose(got, expected, rtol=1e-9)
    assert got[milestone] == pytest.approx(1e-5) and got[milestone + 1] == pytest.approx(1e-3)
    assert got[dpg_steps[0]] == pytest.approx(1e-3) and got[dpg_steps[0] + 1] == pytest.approx(1e-4)


def test_seed_schedule_decays_after_dpg_steps():
    train = load_params("fastpose_coco").train
    per_epoch = optim.schedule(train, 3)[::3]
    lrs = {epoch: per_epoch[epoch] for epoch in (89, 90, 140, 141, 160, 161, 191)}
    assert lrs == pytest.approx({89: 1e-3, 90: 1e-4, 140: 1e-5, 141: 1e-3, 160: 1e-3, 161: 1e-4, 191: 1e-5})
    # the whole 200-epoch run, step for step, as AlphaPose's loop steps its schedulers
    expected = np.repeat(_alphapose_lrs(1e-3, [90, 120], 0.1, 140, [160, 190], 200), 3)
    np.testing.assert_allclose(optim.schedule(train, 3), expected, rtol=1e-12)


def test_learning_rate_linear_warmup():
    train = load_params(
        "demo", {"train.lr": 0.01, "train.warmup_iters": 10, "train.warmup_ratio": 0.1, "train.lr_steps": [1]}
    ).train
    lrs = optim.schedule(train, 8)  # epoch 1 starts at step 8, inside the warm-up
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[5] == pytest.approx(0.01 * (0.1 + 0.9 * 0.5))
    assert lrs[8] == pytest.approx(0.001 * (0.1 + 0.9 * 0.8))
    assert lrs[10] == pytest.approx(0.001)


def test_rng_states_survive_weights_only_checkpoint(tmp_path):
    import random

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    state = checkpoints.capture_rng()
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), torch.rand(3))
    checkpoints.save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    checkpoints.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.rand(3), torch.rand(3))
    assert got[:2] == expected[:2]
    assert np.array_equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


def test_checkpoint_write_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    checkpoints.save_checkpoint(path, {"epoch": 1, "model": {"w": torch.arange(1000.0)}})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        # the tensor is written first, then pickling fails mid-file
        checkpoints.save_checkpoint(path, {"model": {"w": torch.zeros(10**5)}, "epoch": Unpicklable()})
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.arange(1000.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


# --- refusals ----------------------------------------------------------------------------------


def test_apex_backend_without_apex_is_a_clear_error(tiny, outputs, monkeypatch):
    monkeypatch.setitem(sys.modules, "apex", None)  # import apex -> ImportError, here and on Ascend
    params = tiny(**{"train.amp": "O1", "train.amp_backend": "apex"})
    with pytest.raises(ImportError, match=r"apex.*amp_backend: torch"):
        posecore.train(params, run_name="apex")
    assert not (outputs / "apex").exists()


def test_more_devices_than_exist_names_what_exists(tiny, outputs, monkeypatch):
    monkeypatch.setattr(posecore.device, "device_type", lambda: "cuda")
    monkeypatch.setattr(posecore.device, "device_count", lambda: 1)
    monkeypatch.setattr(posecore.device, "device_names", lambda: ["Fake GPU"])
    with pytest.raises(RuntimeError, match=r"asked for 2 cuda devices.*has 1 \(Fake GPU\)"):
        posecore.train(tiny(), npus=2, run_name="too-many")
    assert not (outputs / "too-many").exists()


def test_refuses_to_overwrite_a_run_with_checkpoints(tiny, outputs):
    folder = outputs / "taken"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.pt").write_bytes(b"precious")
    with pytest.raises(engine.TrainingError, match=r"train\.resume is false"):
        posecore.train(tiny(**{"train.resume": False}), run_name="taken")
    assert (folder / "checkpoints" / "last.pt").read_bytes() == b"precious"
    assert not (folder / "params.yaml").exists()


# --- training runs -----------------------------------------------------------------------------


def test_run_records_and_falling_loss(reference):
    folder = Path(reference["run_dir"])
    assert reference["epochs"] == 3 and reference["stopped"] == "done"
    assert reference["steps"] == 3 * _steps_per_epoch(load_params(folder / "params.yaml"))
    assert reference["images_per_s"] > 0 and 0 <= reference["data_wait"] < 1
    records = read_jsonl(folder / "log.jsonl")
    train_records = [r for r in records if r["type"] == "train"]
    assert len(train_records) == reference["steps"]  # log_every 1
    assert {"epoch", "step", "loss", "lr", "images_per_s", "data_wait"} <= train_records[0].keys()
    losses = [r["loss"] for r in train_records]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2])
    assert records[-1]["type"] == "summary" and records[-1]["steps"] == reference["steps"]
    env = read_json(folder / "env.json")
    assert env["world_size"] == 1 and env["device_type"] == "cpu" and "commit" in env["git"]
    assert load_params(folder / "params.yaml").train.epochs == 3
    checkpoint = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert set(checkpoints.CHECKPOINT_KEYS) <= checkpoint.keys()
    assert checkpoint["epoch"] == 3 and checkpoint["epoch_step"] == 0
    assert checkpoint["step"] == reference["steps"] and checkpoint["format"] == "posecore/1"
    model = models.build_model(load_params(folder / "params.yaml"))
    model.load_state_dict(checkpoint["model"])  # no wrapper prefixes


def test_sigkill_after_first_checkpoint_then_resume_is_bitwise_equal(tiny, outputs, reference):
    params_path = save_params(tiny(), outputs / "tiny.yaml")
    env = {**os.environ, "POSECORE_OUTPUTS": str(outputs), "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-c",
        "import sys, posecore; posecore.train(sys.argv[1], run_name='killed')",
        str(params_path),
    ]
    last = outputs / "killed" / "checkpoints" / "last.pt"
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not last.exists() and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert torch.load(last, weights_only=True)["epoch"] < 3  # it was killed before the end

    result = posecore.train(params_path, run_name="killed")
    assert result["epochs"] == 3 and result["steps"] == reference["steps"]
    # the same seed gives the same losses, and each step is logged once
    assert _train_losses(outputs / "killed") == _train_losses(reference["run_dir"])
    _assert_bitwise_equal(checkpoint_weights(last), checkpoint_weights(Path(reference["checkpoint"])))


def _patch_model(monkeypatch, hook):
    """Build the real model with a forward hook (it leaves the state_dict names alone)."""
    build = checkpoints.build_model

    def build_hooked(params):
        model = build(params)
        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(checkpoints, "build_model", build_hooked)


def test_interrupt_saves_the_last_step_and_resumes_bitwise_equal(tiny, outputs, reference, monkeypatch):
    params = tiny()
    interrupt_at = _steps_per_epoch(params) + 2  # the 2nd step of epoch 1
    calls = []

    def interrupt(module, inputs, output):
        calls.append(1)
        if len(calls) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # as a notebook interrupt does

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    with monkeypatch.context() as patch:
        _patch_model(patch, interrupt)
        with pytest.raises(KeyboardInterrupt):
            posecore.train(params, run_name="interrupted")
    assert signal.getsignal(signal.SIGINT) is before  # the handler training replaced is back
    last = outputs / "interrupted" / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["epoch_step"]) == (1, 2)  # the running step finished

    posecore.train(params, run_name="interrupted")
    assert _train_losses(outputs / "interrupted") == _train_losses(reference["run_dir"])
    _assert_bitwise_equal(checkpoint_weights(last), checkpoint_weights(Path(reference["checkpoint"])))


def test_nan_steps_are_skipped_and_persistent_nan_stops(tiny, outputs, monkeypatch):
    params = tiny(**{"train.epochs": 2, "train.max_nan_steps": 3})
    per_epoch = _steps_per_epoch(params)
    calls = []

    def nan_on_steps(module, inputs, output):
        """NaN heatmaps on training steps 2 and 3, then on every step of epoch 1."""
        calls.append(1)
        if len(calls) in (2, 3) or len(calls) > per_epoch:
            return output * float("nan")
        return None

    _patch_model(monkeypatch, nan_on_steps)
    with pytest.raises(engine.TrainingError, match="NaN/inf for 3 consecutive steps"):
        posecore.train(params, run_name="nan")
    checkpoint = torch.load(outputs / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["skipped_steps"] == 2
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())
    epoch0 = [r for r in read_jsonl(outputs / "nan" / "log.jsonl") if r["epoch"] == 0]
    assert [r["skipped"] for r in epoch0][:4] == [0, 1, 2, 2]
    assert epoch0[1]["loss"] is None  # a window of only skipped steps


def test_out_of_memory_suggests_a_smaller_batch(tiny, outputs, monkeypatch):
    def out_of_memory(module, inputs, output):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _patch_model(monkeypatch, out_of_memory)
    with pytest.raises(engine.TrainingError, match=r"out of memory.*lower train\.batch_size \(e\.g\. 2\)"):
        posecore.train(tiny(), run_name="oom")


def test_performance_mode_stops_after_max_steps(tiny, outputs):
    result = posecore.train(tiny(**{"train.max_steps": 3, "train.perf_warmup_steps": 1}), run_name="perf")
    assert result["steps"] == 3 and result["stopped"] == "max_steps"
    assert result["measured_steps"] == 2 and result["images_per_s"] > 0
    assert result["checkpoint"] is None
    summary = read_jsonl(outputs / "perf" / "log.jsonl")[-1]
    assert summary["type"] == "summary" and summary["images_per_s"] == result["images_per_s"]


def test_workers_advice_names_the_workers_that_remove_the_wait(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    # 10 steps of 1 s, 0.75 s of each waiting: loading a batch in the training process takes
    # 0.75 s and the compute 0.25 s, so 3 workers keep up (and one spare)
    advice = engine.workers_advice(7.5, 10.0, 10, 32, 0)
    assert "75% of the step time with data.workers 0" in advice
    assert "one worker makes 43 samples/s" in advice and "data.workers 4 would" in advice
    # 2 workers deliver a batch a second: each makes one in 2 s, 8 compute times
    assert "data.workers 9 would" in engine.workers_advice(7.5, 10.0, 10, 32, 2)
    assert engine.workers_advice(0.4, 10.0, 10, 32, 2) is None  # 4% is below DATA_WAIT_WARNING
    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # 8 cores for 2 devices: 3 workers each
    assert "more than the 3 this machine's CPU cores allow" in engine.workers_advice(7.5, 10.0, 10, 32, 2, 2)


def test_the_engine_advises_on_workers_from_its_measured_steps(tiny, outputs, monkeypatch, capsys):
    get_item = data.PoseDataset.__getitem__

    def slow_get_item(dataset, index):
        time.sleep(0.02)
        return get_item(dataset, index)

    calls = []

    def advice(*args):
        calls.append(args)
        return "use more workers"

    monkeypatch.setattr(data.PoseDataset, "__getitem__", slow_get_item)
    monkeypatch.setattr(engine, "workers_advice", advice)
    posecore.train(tiny(), run_name="slow-loader")  # 12 steps, the first one left out
    ((wait, busy, steps, batch_size, workers, devices_per_node),) = calls
    assert (steps, batch_size, workers, devices_per_node) == (10, 4, 0, 1)
    assert 10 * 4 * 0.02 <= wait < busy  # the loading time of the measured steps
    assert "warning: use more workers" in capsys.readouterr().err


def test_several_nodes_need_a_run_name(tiny, outputs):
    with pytest.raises(engine.TrainingError, match="2 nodes needs a run_name, the same on every node"):
        posecore.train(tiny(**{"dist.nnodes": 2}))


# --- refusals and crashes ---------------------------------------------------------------------


def test_training_and_evaluation_refuse_a_run_another_process_writes(tiny, outputs):
    folder = run_dir("busy")
    holder = lock_holder(folder)
    try:
        with pytest.raises(RunLockedError, match=rf"'busy'.*training in process {holder.pid}"):
            posecore.train(tiny(), run_name="busy")
        with pytest.raises(RunLockedError, match=rf"'busy'.*process {holder.pid}"):
            posecore.evaluate(tiny(**{"eval.oracle": True}), None, run_name="busy")
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == [".writer.lock"]  # nothing else written


def test_sigterm_mid_epoch_saves_the_step_and_resumes_equal(tiny, reference, outputs, monkeypatch):
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
    reference_weights = checkpoint_weights(reference["checkpoint"])
    resumed = checkpoint_weights(last)
    assert resumed.keys() == reference_weights.keys()
    assert all(torch.equal(resumed[k], reference_weights[k]) for k in resumed)


def test_disk_full_during_training_names_the_checkpoint(tiny, small_disk, monkeypatch):
    monkeypatch.setenv("POSECORE_OUTPUTS", str(small_disk))
    with pytest.raises(DiskFullError, match=r"checkpoints/last\.pt: it needs [\d.]+ MB"):
        posecore.train(tiny(**{"train.epochs": 1}), run_name="full")
    assert [p.name for p in (small_disk / "full").rglob("*.tmp")] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the log holds whole records only
        assert read_jsonl(small_disk / "full" / "log.jsonl")
