"""The one place that knows device types: npu (torch_npu), cuda, or cpu.

Other modules ask this layer for the device, the distributed backend, autocast, a GradScaler
and device RNG state, so none of them names a device type.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import platform
import socket
from typing import Any

import torch

BACKENDS = {"npu": "hccl", "cuda": "nccl", "cpu": "gloo"}
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@functools.lru_cache(maxsize=1)
def _torch_npu() -> Any | None:
    """torch_npu if installed (importing it registers the npu device); else None."""
    try:
        return importlib.import_module("torch_npu")
    except Exception:
        return None


def device_type() -> str:
    """'npu' when torch_npu imports and sees a card, else 'cuda' when available, else 'cpu'.

    POSECORE_DEVICE=cpu forces the CPU (tests, debugging on an accelerator machine).
    """
    forced = os.environ.get("POSECORE_DEVICE")
    if forced:
        return forced
    if _torch_npu() is not None and torch.npu.is_available():  # type: ignore[attr-defined]
        return "npu"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _module(kind: str | None = None) -> Any:
    return getattr(torch, kind or device_type())


def device_count() -> int:
    kind = device_type()
    return 1 if kind == "cpu" else _module(kind).device_count()


def get_device(local_rank: int = 0) -> torch.device:
    kind = device_type()
    if kind == "cpu":
        return torch.device("cpu")
    _module(kind).set_device(local_rank)
    return torch.device(kind, local_rank)


def dist_backend() -> str:
    return BACKENDS[device_type()]


def check_device_count(requested: int) -> None:
    """Refuse to start more accelerator workers than there are devices (CPU workers are free)."""
    kind = device_type()
    if kind == "cpu" or requested <= device_count():
        return
    raise RuntimeError(
        f"asked for {requested} {kind} devices but this machine has {device_count()} "
        f"({', '.join(device_names()) or 'none'}); lower npus"
    )


def device_names() -> list[str]:
    kind = device_type()
    if kind == "cpu":
        return [platform.processor() or platform.machine()]
    return [_module(kind).get_device_name(i) for i in range(device_count())]


def autocast(amp: str) -> contextlib.AbstractContextManager:
    """Autocast for 'fp16' / 'bf16' on the current device; a no-op for 'off'."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(), dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str, loss_scale: float = 0.0) -> torch.amp.GradScaler:
    """GradScaler for fp16 (dynamic when loss_scale == 0, else held at loss_scale); off otherwise."""
    enabled = amp == "fp16"
    if loss_scale > 0:
        # A huge growth interval and a backoff of ~1 keep the scale fixed; inf/NaN steps are
        # still detected and skipped, as apex does with a static loss scale.
        return torch.amp.GradScaler(
            device_type(),
            init_scale=loss_scale,
            growth_factor=1.0 + 1e-12,
            backoff_factor=1.0 - 1e-12,
            growth_interval=2**31 - 1,
            enabled=enabled,
        )
    return torch.amp.GradScaler(device_type(), enabled=enabled)


def synchronize() -> None:
    kind = device_type()
    if kind != "cpu":
        _module(kind).synchronize()


def reset_peak_memory() -> None:
    """Start a new peak for peak_memory_bytes on the current device (a no-op on CPU)."""
    kind = device_type()
    if kind != "cpu":
        _module(kind).reset_peak_memory_stats()


def peak_memory_bytes() -> int | None:
    """The most memory tensors held on the current device since reset_peak_memory; None on CPU."""
    kind = device_type()
    return None if kind == "cpu" else int(_module(kind).max_memory_allocated())


def release_cached_memory() -> None:
    """Hand the allocator's cached blocks back to the device (after an out-of-memory error)."""
    kind = device_type()
    if kind != "cpu":
        _module(kind).empty_cache()


def get_rng_state() -> list[torch.Tensor]:
    """Device RNG states (one uint8 tensor per device; empty on CPU)."""
    kind = device_type()
    if kind == "cpu":
        return []
    return [t.cpu() for t in _module(kind).get_rng_state_all()]


def set_rng_state(states: list[torch.Tensor]) -> None:
    kind = device_type()
    if kind != "cpu" and states:
        _module(kind).set_rng_state_all(states)


def deterministic_setting(setting: Any, kind: str | None = None) -> bool:
    """train.deterministic resolved for a device type: "auto" is on for CPU, off on GPUs / NPUs."""
    return (kind or device_type()) == "cpu" if setting == "auto" else bool(setting)


def set_deterministic(on: bool) -> None:
    """Deterministic kernels or not: torch.use_deterministic_algorithms (warn_only: an op without a
    deterministic kernel warns instead of failing), cuDNN deterministic with benchmark off, and
    CUBLAS_WORKSPACE_CONFIG=:4096:8 (deterministic cuBLAS; an explicit value is kept)."""
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def deterministic_restored():
    """Restore the determinism flags (set_deterministic's) after the block: training in a
    notebook's process leaves them as they were."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def describe() -> dict[str, Any]:
    """Versions and devices for env.json."""
    npu = _torch_npu()
    info: dict[str, Any] = {
        "device_type": device_type(),
        "device_count": device_count(),
        "device_names": device_names(),
        "torch": torch.__version__,
        "torch_npu": getattr(npu, "__version__", None),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cann": os.environ.get("ASCEND_TOOLKIT_VERSION") or _cann_version(),
        "dist_backend": dist_backend(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
    }
    return info


def _cann_version() -> str | None:
    path = os.environ.get("ASCEND_HOME_PATH", "/usr/local/Ascend/ascend-toolkit/latest")
    for name in ("version.cfg", "version.info"):
        try:
            with open(os.path.join(path, name)) as f:
                return f.read().strip().splitlines()[0]
        except OSError:
            continue
    return None
