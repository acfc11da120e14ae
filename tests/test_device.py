import contextlib

import pytest
import torch

from posecore import device


def test_cpu_machine_picks_cpu_and_gloo():
    # CI and this machine have no accelerator and no torch_npu.
    assert device.device_type() == "cpu"
    assert device.dist_backend() == "gloo"
    assert device.get_device() == torch.device("cpu")
    assert device.get_rng_state() == []


@pytest.mark.parametrize("kind, backend", [("npu", "hccl"), ("cuda", "nccl"), ("cpu", "gloo")])
def test_backend_follows_device(monkeypatch, kind, backend):
    monkeypatch.setenv("POSECORE_DEVICE", kind)
    assert device.dist_backend() == backend


def test_too_many_accelerators_names_what_exists(monkeypatch):
    monkeypatch.setattr(device, "device_type", lambda: "cuda")
    monkeypatch.setattr(device, "device_count", lambda: 1)
    monkeypatch.setattr(device, "device_names", lambda: ["Fake GPU"])
    with pytest.raises(RuntimeError, match=r"asked for 8 cuda devices but this machine has 1 \(Fake GPU\)"):
        device.check_device_count(8)
    device.check_device_count(1)


def test_cpu_workers_are_not_limited_by_device_count():
    device.check_device_count(2)  # two gloo processes on one CPU is how DDP is tested here


def test_autocast_modes():
    assert isinstance(device.autocast("off"), contextlib.nullcontext)
    layer = torch.nn.Linear(4, 4)
    with device.autocast("bf16"):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16


def test_fixed_loss_scale_stays_fixed_and_skips_inf_steps():
    scaler = device.grad_scaler("fp16", 32768.0)
    assert scaler.is_enabled() and scaler.get_scale() == 32768.0
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler.scale((weight * float("inf")).sum()).backward()
    scaler.step(optimizer)  # the inf gradient must be detected and the step skipped
    scaler.update()
    assert weight.item() == 1.0
    assert scaler.get_scale() == pytest.approx(32768.0)


def test_dynamic_and_disabled_scalers():
    assert device.grad_scaler("fp16").is_enabled()
    assert not device.grad_scaler("bf16").is_enabled()
    assert not device.grad_scaler("off", 32768.0).is_enabled()


def test_describe_has_env_fields():
    info = device.describe()
    for key in (
        "device_type",
        "device_count",
        "device_names",
        "torch",
        "torch_npu",
        "cuda",
        "cann",
        "dist_backend",
        "hostname",
    ):
        assert key in info
    assert info["torch"] == torch.__version__
