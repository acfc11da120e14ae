"""Load weights into posecore models from this project's and upstream checkpoint files, and write
and check posecore's own training checkpoint.

Reading a file and telling its format (posecore, AlphaPose, mmpose 0.x / 1.x, the official HRNet,
torchvision ResNet) is posecore.checkpoint_files'; this module fits what it reads to a model.
posecore's own training checkpoint (written by the engine through `save_checkpoint`, read back by
`read_checkpoint`) holds CHECKPOINT_KEYS; its RNG states are tensors and plain values
(`capture_rng` / `restore_rng`) so that it stays weights_only-loadable. `load_model` is the one
way to get a model with weights: from a checkpoint, or as params say.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posecore import device as devices
from posecore.checkpoint_files import (
    POSECORE_FORMAT,
    CheckpointError,
    read_checkpoint,
    split_checkpoint,
    to_posecore_keys,
)
from posecore.codec import checkpoint_codec_name
from posecore.files import atomic_write, finite_number
from posecore.keypoints import check_num_joints
from posecore.models import build_model, unwrap_model
from posecore.params import Params, load_params
from posecore.runs import resolve_path

log = logging.getLogger(__name__)


# which posecore model a state_dict holds, told by a key only that model has
MODEL_MARKERS = {
    "backbone.transition1.": "hrnet",
    "backbone.hourglass_modules.": "hourglass",
    "head.duc3.": "fastpose_duc",  # before fastpose: both have head.duc1
    "head.duc1.": "fastpose",
    "head.deconv_layers.": "simplebaseline",
    "head.gau.": "rtmpose",
}
# the final conv, whose output channels are the joints
JOINT_KEYS = {
    "hrnet": "head.final_layer.weight",
    "fastpose": "head.final_layer.weight",
    "fastpose_duc": "head.final_layer.weight",
    "simplebaseline": "head.final_layer.weight",
    "hourglass": "head.final_layers.0.weight",
    "rtmpose": "head.final_layer.weight",
}
# the final layer(s), one output channel per joint: what fine-tuning onto another keypoint set relearns
HEAD_OUTPUT_PREFIXES = {
    "hrnet": "head.final_layer.",
    "fastpose": "head.final_layer.",
    "fastpose_duc": "head.final_layer.",
    "simplebaseline": "head.final_layer.",
    "hourglass": "head.final_layers.",
    "rtmpose": "head.final_layer.",  # the GAU, MLP and classifiers are shared by all joints
}
MAX_LISTED = 30
# the training checkpoint: format, model_name, num_joints, model (state_dict without wrapper
# prefixes), params, epoch (epochs completed), epoch_step (steps done in epoch `epoch`; 0 at epoch
# ends), step (all steps), optimizer, scheduler, scaler, rng, best_metric, skipped_steps
CHECKPOINT_KEYS = (
    "format",
    "model_name",
    "num_joints",
    "model",
    "params",
    "epoch",
    "epoch_step",
    "step",
    "optimizer",
    "scheduler",
    "scaler",
    "rng",
    "best_metric",
    "skipped_steps",
)


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike, strict: bool = True, skip_head: bool = False
) -> dict[str, Any]:
    """Load `path` into `model` (plain, DataParallel/DDP-wrapped or compiled).

    strict=True: every model tensor must be in the file with the same shape and nothing else
    may be there, otherwise CheckpointError lists the missing / unexpected / mismatched keys and
    the model is left untouched. strict=False loads the tensors that fit (e.g. a checkpoint with
    another joint count, all but the final layer) and reports the rest.
    skip_head=True (fine-tuning onto another keypoint set): the final layer's tensors whose shape
    differs (another joint count) keep their initialization and are listed in "skipped"; the
    rest loads as `strict` says.
    Returns {"format", "missing", "unexpected", "mismatched", "skipped"} (lists of keys).
    """
    model = unwrap_model(model)
    checkpoint = read_checkpoint(path)
    fmt, state = split_checkpoint(checkpoint, path)
    if fmt == "torchvision-resnet":
        return {**_load_backbone(model, state, path, strict), "skipped": []}
    state = to_posecore_keys(fmt, state)
    skipped = _mismatched_head(model, state) if skip_head else []
    _check_same_model(model, checkpoint, fmt, state, path, strict and not skipped)
    kept = {key: value for key, value in state.items() if key not in skipped}
    return {**_load_state(model, kept, path, fmt, strict, optional=set(skipped)), "skipped": skipped}


def _mismatched_head(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of the model's final layer whose checkpoint tensors have another shape."""
    prefix = HEAD_OUTPUT_PREFIXES.get(model_identity(model)[0] or "")
    if prefix is None:
        raise CheckpointError(
            f"skip_head: {type(model).__name__} is not a posecore model with a "
            f"known final layer ({sorted(HEAD_OUTPUT_PREFIXES)})"
        )
    own = model.state_dict()
    return [
        key for key, value in state.items() if key.startswith(prefix) and key in own and value.shape != own[key].shape
    ]


def load_model(
    params: Params, checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, str | None]:
    """params.model with weights, in eval mode on `device` -> (model, checkpoint format or None).

    `checkpoint`: a file of any format load_checkpoint detects, loaded strictly over every weight
    (model.pretrained / model.init_checkpoint are then not read); None: the weights params name
    (model.pretrained backbone, then model.init_checkpoint), else the initialization. A checkpoint
    of another model, depth or joint count is a CheckpointError naming both and the fix.
    """
    check_num_joints(params)
    model = build_model(params)
    checkpoint_format = None
    if checkpoint is None:
        initialize_weights(model, params.model)
    else:
        try:
            checkpoint_format = load_checkpoint(model, checkpoint, strict=True)["format"]
        except CheckpointError as error:
            raise CheckpointError(
                f"cannot use {checkpoint} as model {params.model.name!r} with {params.model.num_joints} "
                f"joints: {error}. Use the params it was trained with (model.name, model.depth, "
                "model.num_stacks, model.variant, model.width, model.num_joints; AlphaPose's: model.conv_dim, "
                "model.backbone, model.duc_convs)"
            ) from error
    return model.to(device).eval(), checkpoint_format


def with_trained_codec(params: Params, checkpoint: str | os.PathLike | None) -> Any:
    """params with the data.codec `checkpoint` was trained with, so that evaluation, export and
    inference decode the way the run encoded. Only posecore training checkpoints record it;
    params stay as they are for other files (upstream checkpoints are trained with the params' own codec)."""
    if checkpoint is None:
        return params
    try:
        saved = read_checkpoint(checkpoint, mmap=True)
    except CheckpointError:
        saved = read_checkpoint(checkpoint)  # a legacy (non-zip) file cannot be mapped
    if not (isinstance(saved, dict) and saved.get("format") == POSECORE_FORMAT):
        return params
    trained = checkpoint_codec_name(saved.get("params", {}))  # older checkpoints: the legacy codec
    if trained == params.data.codec:
        return params
    log.warning("%s was trained with data.codec %r: using it instead of %r", checkpoint, trained, params.data.codec)
    return load_params(params, {"data.codec": trained})


def initialize_weights(model: nn.Module, model_params: Any) -> nn.Module:
    """model_params.pretrained (an ImageNet ResNet backbone), then model_params.init_checkpoint
    (any checkpoint format, strict; with model_params.skip_mismatched_head a final layer of
    another joint count is skipped, with a warning naming its keys); relative paths are relative
    to the repository root."""
    if model_params.pretrained:
        load_pretrained_backbone(model, resolve_path(model_params.pretrained))
    if model_params.init_checkpoint:
        path = resolve_path(model_params.init_checkpoint)
        report = load_checkpoint(model, path, skip_head=model_params.skip_mismatched_head)
        if report["skipped"]:
            warnings.warn(
                f"model.init_checkpoint {path} ({report['format']}) has another joint count: "
                f"loaded every tensor except the final layer; skipped {report['skipped']}, "
                f"which start from their initialization for {model_params.num_joints} joints",
                stacklevel=2,
            )
    return model


def training_checkpoint(
    params: Params,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler_state: dict[str, Any],
    *,
    epoch: int,
    epoch_step: int,
    step: int,
    lr: float,
    best_metric: float | None,
    skipped_steps: int,
) -> dict[str, Any]:
    """The training checkpoint (CHECKPOINT_KEYS) of the bare `model` at this point of training.

    `scaler_state`: the AMP loss scaler's state_dict (torch's or apex's); the RNG states are
    captured now. The LR is a pure function of (params, epoch, step): the "scheduler" entry only
    records it.
    """
    return {
        "format": POSECORE_FORMAT,
        "model_name": params.model.name,
        "num_joints": params.model.num_joints,
        "model": model.state_dict(),
        "params": params.to_dict(),
        "epoch": epoch,
        "epoch_step": epoch_step,
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"lr": lr},
        "scaler": scaler_state,
        "rng": capture_rng(),
        "best_metric": best_metric,
        "skipped_steps": skipped_steps,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """torch.save through atomic_write: a kill mid-write leaves the previous file intact."""
    return atomic_write(path, lambda f: torch.save(checkpoint, f))


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch CPU and device RNG states as tensors/ints (torch.load weights_only)."""
    version, state, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "device": devices.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    python, numpy_state = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    devices.set_rng_state(state["device"])


def load_pretrained_backbone(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Initialize the ResNet backbone from a torchvision-layout ImageNet state_dict, or HRNet's
    from an ImageNet HRNet (strict: every backbone tensor must be in the file and fit, so a file
    of another depth or width is an error)."""
    model = unwrap_model(model)
    fmt, state = split_checkpoint(read_checkpoint(path), path)
    if fmt == "hrnet-official" and hasattr(getattr(model, "backbone", None), "transition1"):
        return _load_hrnet_backbone(model.backbone, state, path)
    if fmt != "torchvision-resnet":
        raise CheckpointError(
            f"{path}: expected a torchvision ResNet state_dict (conv1.*, "
            f"layer1.*, ...) or, for hrnet, an ImageNet HRNet (transition1.*, stage2.*, "
            f"...) for model.pretrained, got a {fmt} checkpoint; use "
            f"model.init_checkpoint for whole-model weights"
        )
    return _load_backbone(model, state, path, strict=True)


def _load_hrnet_backbone(
    backbone: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike
) -> dict[str, Any]:
    """An ImageNet HRNet (the classification HRNet's names, as mmpose's hrnet_w32-36af842e.pth)
    -> the pose HRNet backbone. The classifier's own parts (incre_modules, downsamp_modules,
    final_layer, classifier, stage 4's lower-resolution fuse outputs) are dropped and listed."""
    own = backbone.state_dict()
    used = {key: value for key, value in state.items() if key in own}
    missing, _, mismatched = _compare(own, used, optional=lambda key: False)
    if missing or mismatched:
        raise CheckpointError(
            f"{path}: the ImageNet HRNet does not fit the HRNet-W{backbone.width} backbone (another "
            f"width? set model.width): " + _describe(missing, [], mismatched, used, own)
        )
    _load_fitting(backbone, own, used)
    return {
        "format": "hrnet-imagenet",
        "missing": [],
        "mismatched": [],
        "unexpected": [key for key in state if key not in own],
    }


def check_training_state(checkpoint: Any, path: str | os.PathLike) -> None:
    """The training state a run resumes from (its checkpoints/last.pt, as the engine writes it):
    model tensors, the optimizer's state, the counters, the best metric and the RNG states, each
    checked; a CheckpointError names the file and the key otherwise."""
    fmt, _ = split_checkpoint(checkpoint, path)
    if fmt != "posecore" or "format" not in checkpoint:
        raise CheckpointError(
            f"{path}: not a posecore training checkpoint (a {fmt} state_dict); a run "
            "resumes from the last checkpoint its training wrote"
        )

    def fail(key: str, expected: str) -> None:
        value = checkpoint.get(key, "missing")
        raise CheckpointError(
            f"{path}: {key} is {str(value)[:80]!r} ({type(value).__name__}), expected "
            f"{expected}; the checkpoint is damaged: restore it, or start the run again"
        )

    for key in ("epoch", "epoch_step", "step", "skipped_steps"):
        value = checkpoint.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            fail(key, "a non-negative integer")
    best = checkpoint.get("best_metric", "missing")
    if best is not None and not finite_number(best):
        fail("best_metric", "a number or null")
    optimizer = checkpoint.get("optimizer")
    if not (
        isinstance(optimizer, dict)
        and isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
        and all(isinstance(group, dict) for group in optimizer["param_groups"])
    ):
        fail("optimizer", "an optimizer state_dict (state, param_groups)")
    if not isinstance(checkpoint.get("scaler", "missing"), (dict, type(None))):
        fail("scaler", "a grad scaler state_dict")
    rng = checkpoint.get("rng")
    python, numpy_state = (rng.get("python"), rng.get("numpy")) if isinstance(rng, dict) else (None, None)
    if not (
        isinstance(python, dict)
        and isinstance(python.get("state"), torch.Tensor)
        and isinstance(numpy_state, dict)
        and isinstance(numpy_state.get("keys"), torch.Tensor)
        and isinstance(numpy_state.get("name"), str)
        and isinstance(rng.get("torch"), torch.Tensor)
        and all(isinstance(numpy_state.get(k), (int, float)) for k in ("pos", "has_gauss", "cached_gaussian"))
    ):
        fail("rng", "the RNG states posecore saves (python, numpy, torch, device)")


def model_identity(model: nn.Module) -> tuple[str | None, int | None]:
    """(model_name, num_joints) of a posecore model; (None, None) for other modules."""
    model = unwrap_model(model)
    return getattr(model, "model_name", None), getattr(model, "num_joints", None)


# ---------------------------------------------------------------------------------------------
def _check_same_model(
    model: nn.Module, checkpoint: dict, fmt: str, state: dict[str, torch.Tensor], path: str | os.PathLike, strict: bool
) -> None:
    """A checkpoint of another architecture is always an error; another joint count only
    when strict (strict=False then loads all but the final layer)."""
    model_name, num_joints = model_identity(model)
    if model_name is None:
        return
    if "format" in checkpoint:
        ckpt_name, ckpt_joints = checkpoint.get("model_name"), checkpoint.get("num_joints")
    else:
        ckpt_name = next(
            (name for marker, name in MODEL_MARKERS.items() if any(key.startswith(marker) for key in state)), None
        )
        joint_tensor = state.get(JOINT_KEYS.get(ckpt_name, ""))
        ckpt_joints = None if joint_tensor is None else int(joint_tensor.shape[0])
    what = f"{path}: the {fmt} checkpoint holds {ckpt_name} with {ckpt_joints} joints"
    if ckpt_name is not None and ckpt_name != model_name:
        raise CheckpointError(
            f"{what}, but the model is {model_name} with {num_joints} joints; build a {ckpt_name} model to load it"
        )
    if strict and ckpt_joints is not None and ckpt_joints != num_joints:
        raise CheckpointError(
            f"{what}, but the model has {num_joints} joints. To fine-tune it onto this "
            "keypoint set, set model.skip_mismatched_head: true (load_checkpoint(..., "
            "skip_head=True)): everything but the final layer loads"
        )


def _load_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    path: str | os.PathLike,
    fmt: str,
    strict: bool,
    optional: set[str] = frozenset(),
) -> dict[str, Any]:
    own = model.state_dict()
    missing, unexpected, mismatched = _compare(own, state, optional=lambda key: key in optional)
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(
            f"{path}: the {fmt} checkpoint does not fit {type(model).__name__}: "
            + _describe(missing, unexpected, mismatched, state, own)
            + "; pass strict=False to load only the tensors that fit"
        )
    _load_fitting(model, own, state)
    return {"format": fmt, "missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def _load_backbone(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, strict: bool
) -> dict[str, Any]:
    """torchvision ResNet -> model.backbone; its classifier is dropped and the SE gates, which
    ImageNet ResNets do not have, keep their initialization (as AlphaPose does)."""
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "layer1"):
        raise CheckpointError(
            f"{path}: torchvision ResNet weights initialize a ResNet backbone; {type(model).__name__} has none"
        )
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    missing, unexpected, mismatched = _compare(own, state, optional=lambda key: ".se." in key)
    if strict and (missing or unexpected or mismatched):
        depth = getattr(backbone, "depth", "?")
        raise CheckpointError(
            f"{path}: the torchvision ResNet does not fit the ResNet-{depth} backbone (another "
            f"depth?): " + _describe(missing, unexpected, mismatched, state, own)
        )
    _load_fitting(backbone, own, state)
    prefix = "backbone." if backbone is not model else ""
    return {
        "format": "torchvision-resnet",
        "missing": [prefix + k for k in missing],
        "unexpected": unexpected,
        "mismatched": [prefix + k for k in mismatched],
    }


def _compare(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], optional: Callable[[str], bool]
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mismatched) keys of `state` against the module's `own` state_dict;
    keys for which `optional` is true may be missing."""
    # Checkpoints from before BatchNorm counted batches lack the counter; BN fills it in.
    missing = [k for k in own if k not in state and not optional(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    return missing, unexpected, mismatched


def _load_fitting(module: nn.Module, own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    module.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)


def _describe(
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
    state: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
) -> str:
    shapes = [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})" for k in mismatched]
    parts = [
        f"{label} ({len(keys)}): {_listing(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if keys
    ]
    return "; ".join(parts)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f", ... and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")
