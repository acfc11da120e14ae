"""The seeds' global batch on any device count: batch_plan, the micro-batch order, and
1 process accumulating 2 micro-batches training the weights of 2 DDP (gloo) workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from helpers import tiny_params, tiny_synthetic

import posecore
from posecore import checkpoints, resume
from posecore.data import grouped_order, step_order
from posecore.errors import TrainingError
from posecore.files import read_json, read_jsonl, write_json
from posecore.optim import batch_plan
from posecore.params import ParamsError, load_params, save_params
from posecore.resume import check_resume
from posecore.runs import Run

# 12 people (4 images), micro-batches of 2: 3 optimizer steps of 4 images
RECIPE = {
    "train.batch_size": 2,
    "train.epochs": 1,
    "train.lr_steps": [100],
    "train.warmup_iters": 2,
    "train.perf_warmup_steps": 0,
}


def test_seed_params_state_their_global_batch():
    assert load_params("fastpose").train.global_batch == 256
    assert load_params("hourglass").train.global_batch == 256
    assert load_params("demo").train.global_batch == 0


@pytest.mark.parametrize("world, expected", [(1, 8), (2, 4), (4, 2), (8, 1)])
def test_batch_plan_keeps_the_seed_step_on_any_device_count(world, expected):
    train = load_params("fastpose").train
    assert batch_plan(train, world) == (256, expected)


def test_batch_plan_without_a_global_batch_and_its_errors():
    demo = load_params("demo").train  # batch_size 32, global_batch 0
    assert batch_plan(demo, 2) == (64, 1)
    assert batch_plan(load_params("demo", {"train.accumulate": 3}).train, 2) == (192, 3)
    uneven = load_params("fastpose", {"train.batch_size": 48}).train
    with pytest.raises(
        ParamsError,
        match=r"global_batch 256 .*batch_size 48 on 2 device\(s\) "
        r"\(48 x 2 = 96",
    ):
        batch_plan(uneven, 2)
    with pytest.raises(ParamsError, match=r"global_batch 256 .*batch_size 32 on 16 device"):
        batch_plan(load_params("fastpose").train, 16)  # one micro-batch step is already 512 images
    disagreeing = load_params("fastpose", {"train.accumulate": 4}).train
    with pytest.raises(ParamsError, match=r"train.accumulate 4 disagrees .* = 8"):
        batch_plan(disagreeing, 1)
    assert batch_plan(disagreeing, 2) == (256, 4)
    with pytest.raises(ParamsError, match="train.global_batch must be >= 0"):
        load_params("demo", {"train.global_batch": -1})


def test_micro_batches_are_the_batches_of_the_larger_world():
    groups = [[0, 1, 2], [3], [4, 5], [6, 7, 8, 9], [10], [11, 12]]
    for epoch in range(3):
        ranks = [grouped_order(groups, 5, epoch, world=4, rank=r) for r in range(4)]
        for world, accumulate in ((1, 4), (2, 2), (4, 1)):
            for rank in range(world):
                samples, steps = step_order(groups, 5, epoch, 2, world, rank, accumulate)
                assert steps == len(ranks[0]) // 2 == 2
                micro = [samples[i : i + 2] for i in range(0, len(samples), 2)]
                # step s, micro-batch a of this rank = step s of rank rank * accumulate + a
                assert micro == [
                    ranks[rank * accumulate + a][2 * s : 2 * s + 2] for s in range(steps) for a in range(accumulate)
                ]


def test_a_resume_on_another_device_count_keeps_a_set_global_batch(tmp_path, monkeypatch):
    """8 devices x 32 -> 2 devices x 32 x accumulate 4: the same steps, so the resume is accepted
    (and recorded); without train.global_batch the step would shrink, which stays refused."""
    # the placeholder last.pt stands for a sound training state (test_resume checks damaged ones)
    monkeypatch.setattr(resume, "read_checkpoint", lambda path, mmap=False: {})
    monkeypatch.setattr(resume, "check_training_state", lambda state, path: None)
    for global_batch in (256, 0):
        folder = tmp_path / str(global_batch)
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.pt").write_bytes(b"")
        params = load_params("fastpose", {"train.global_batch": global_batch})
        save_params(params, folder / "params.yaml")
        write_json(folder / "env.json", {"world_size": 8})
        if global_batch:
            assert check_resume(Run.at(folder), params, world_size=2) == {"world_size": [8, 2]}
        else:
            with pytest.raises(TrainingError, match=r"world_size: 8 -> 2"):
                check_resume(Run.at(folder), params, world_size=2)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=4)


@pytest.fixture(scope="module")
def one_thread_workers(one_thread):
    """This process (conftest's one_thread) and the workers it starts compute with one thread
    each: the same float rounding in both runs (other thread counts agree to ~1e-5 here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def accumulated(synthetic_root, tmp_path_factory, one_thread_workers):
    """1 process, micro-batches of 2, accumulate 2: the reference of the tests below."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(tmp_path_factory.mktemp("outputs")))
        params = tiny_params(synthetic_root, **RECIPE, **{"train.accumulate": 2})
        return posecore.train(params, run_name="accumulated")


def _parameters(result: dict) -> dict[str, torch.Tensor]:
    """The trained parameters (not the BatchNorm running statistics, see docs/training.md)."""
    params = load_params(Path(result["run_dir"]) / "params.yaml")
    model = checkpoints.load_model(params, result["checkpoint"])[0]
    return {name: p.detach() for name, p in model.named_parameters()}


def _train_losses(result: dict) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(Path(result["run_dir"]) / "log.jsonl") if r["type"] == "train"]


def test_accumulating_two_micro_batches_trains_like_two_ddp_workers(synthetic_root, accumulated, outputs):
    two = posecore.train(tiny_params(synthetic_root, **RECIPE), npus=2, run_name="two-workers")
    assert (accumulated["global_batch"], accumulated["accumulate"], accumulated["world_size"]) == (4, 2, 1)
    assert (two["global_batch"], two["accumulate"], two["world_size"]) == (4, 1, 2)
    assert accumulated["steps"] == two["steps"] == 3  # optimizer steps: the LR schedule's count
    env = read_json(Path(accumulated["run_dir"]) / "env.json")
    assert (env["global_batch"], env["accumulate"]) == (4, 2)
    mine, theirs = _train_losses(accumulated), _train_losses(two)
    assert [step for step, _ in mine] == [step for step, _ in theirs] == [1, 2, 3]
    for (_, a), (_, b) in zip(mine, theirs):
        assert a == pytest.approx(b, rel=1e-4)
    single, double = _parameters(accumulated), _parameters(two)
    torch.manual_seed(0)  # train.seed: the initialization both runs started from
    initial = dict(checkpoints.load_model(tiny_params(synthetic_root, **RECIPE))[0].named_parameters())
    assert single.keys() == double.keys() and len(single) > 50
    for name in single:
        assert torch.allclose(single[name], double[name], rtol=0, atol=1e-4), name
    # the comparison is of trained weights: Adam moved every parameter by ~lr per step
    assert all(not torch.allclose(single[name], initial[name], rtol=0, atol=1e-4) for name in single)


def test_an_interrupt_between_micro_batches_resumes_bitwise(synthetic_root, accumulated, outputs, monkeypatch):
    """SIGINT during the first micro-batch of the 2nd step: that step finishes, last.pt is written
    at the step boundary, and the resumed run ends bitwise equal to the uninterrupted one."""
    params = tiny_params(synthetic_root, **RECIPE, **{"train.accumulate": 2})
    forwards = []
    build = checkpoints.build_model

    def build_hooked(p):
        model = build(p)

        def interrupt(module, inputs, output):
            forwards.append(1)
            if len(forwards) == 2 + 1:  # step 0's 2 micro-batches, then step 1's first
                os.kill(os.getpid(), signal.SIGINT)

        model.register_forward_hook(interrupt)
        return model

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "build_model", build_hooked)
        with pytest.raises(KeyboardInterrupt):
            posecore.train(params, run_name="interrupted")
    last = outputs / "interrupted" / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["epoch_step"], checkpoint["step"]) == (0, 2, 2)
    result = posecore.train(params, run_name="interrupted")
    assert _train_losses(result) == _train_losses(accumulated)
    mine = torch.load(last, weights_only=True)["model"]
    reference = torch.load(accumulated["checkpoint"], weights_only=True)["model"]
    assert mine.keys() == reference.keys()
    for key in mine:
        assert torch.equal(mine[key], reference[key]), key
