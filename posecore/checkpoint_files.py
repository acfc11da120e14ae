"""Checkpoint files as posecore reads them: torch.load restricted to tensors and plain containers,
the upstream formats told apart, and their keys renamed to posecore's.

Formats, detected from the file's structure and keys (a "module." / "_orig_mod." prefix from
DataParallel / torch.compile is dropped first):
- posecore: {"format": "posecore/1", "model_name", "num_joints", "model": state_dict, ...},
  or a bare `model.state_dict()` of a posecore model.
- Any of these saved the common ways: the state_dict itself, or a dict holding exactly one
  state_dict under "model", "state_dict", "net" or "module" (`torch.save({"model":
  model.state_dict(), "optimizer": ..., "epoch": ...}, path)`); the other entries are not read.
- alphapose: a FastPose or FastPose_DUC state_dict (preact.*, duc1.*, duc2.*, [duc3.*,] conv_out.*).
- mmpose: {"state_dict": {backbone.*, keypoint_head.*}} (0.x) or {"state_dict": {backbone.*,
  head.*}, "meta": ...} (1.x); HourglassNet with the multi-stage / CPM head, ResNet with the simple
  heatmap head (SimpleBaseline), HRNet with its 1x1 head, or RTMPose (CSPNeXt + RTMCCHead).
  posecore keeps mmpose 1.x's names, so MMPOSE_PREFIXES is the one mapping of both versions.
- hrnet-official: the HRNet repository's pose_hrnet state_dict (conv1.*, layer1.*, transition1.*,
  stage2.*, ..., final_layer.*): mmpose's backbone names without the prefix.
- torchvision-resnet: an ImageNet ResNet state_dict (conv1.*, layer1.*, fc.*); it initializes
  the model's ResNet backbone as AlphaPose does (every tensor that fits; SE gates keep their
  initialization, fc is dropped).

Every file is read with torch.load(weights_only=True): tensors and plain containers only, so
nothing in a checkpoint can run code.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import numpy as np
import torch

POSECORE_FORMAT = "posecore/1"


# where a dict saved by torch.save keeps a state_dict: {"model": model.state_dict()} and the like
# (mmpose: "state_dict"); a file with exactly one of them holding a state_dict loads from it
STATE_DICT_KEYS = ("model", "state_dict", "net", "module")


WRAPPER_PREFIXES = ("module.", "_orig_mod.")


# upstream prefix -> posecore prefix (first match wins; order matters only for overlaps)
ALPHAPOSE_PREFIXES = {
    "preact.": "backbone.",
    "duc1.": "head.duc1.",
    "duc2.": "head.duc2.",
    "duc3.": "head.duc3.",  # FastPose_DUC
    "conv_out.": "head.final_layer.",
}


# AlphaPose's SE block holds its two Linear layers in a Sequential (indices 0 and 2).
ALPHAPOSE_PARTS = {".se.fc.0.": ".se.fc1.", ".se.fc.2.": ".se.fc2."}


MMPOSE_PREFIXES = {
    "keypoint_head.multi_final_layers.": "head.final_layers.",  # 0.x multi-stage head
    "head.multi_final_layers.": "head.final_layers.",  # 1.x CPMHead
    "keypoint_head.": "head.",  # 0.x simple head (deconvs)
}


# the official HRNet repository's pose_hrnet: the backbone unprefixed, its 1x1 conv as final_layer
HRNET_OFFICIAL_PREFIXES = {"final_layer.": "head.final_layer.", "": "backbone."}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> Any:
    """torch.load with weights_only=True on the CPU; refusals become a CheckpointError.

    `mmap`: map the tensors instead of reading them (a cheap look at the counters of a large
    checkpoint; needs torch's zip format, which posecore writes).

    NumPy arrays are allowed (mmpose stores dataset metadata as arrays); their contents go
    through the same restricted unpickler.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused to load: it holds a Python object{what} other than tensors and "
            f"plain containers, which could run code when unpickled (torch.load with "
            f"weights_only=True). If you trust the file, re-save just its weights with "
            f"torch.save(state_dict, new_path)"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None


def split_checkpoint(checkpoint: Any, path: str | os.PathLike = "checkpoint") -> tuple[str, dict[str, torch.Tensor]]:
    """(format, state_dict with wrapper prefixes removed) of a loaded checkpoint object; a state
    whose keys are not all text naming tensors is a CheckpointError naming the file and the key."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: expected a dict (a state_dict or a checkpoint with one), got {type(checkpoint).__name__}"
        )
    if "format" in checkpoint:
        if checkpoint["format"] != POSECORE_FORMAT:
            raise CheckpointError(
                f"{path}: unsupported checkpoint format "
                f"{str(checkpoint['format'])[:80]!r}; this posecore reads "
                f"{POSECORE_FORMAT!r}"
            )
        if not _is_state_dict(checkpoint.get("model")):
            raise CheckpointError(
                f"{path}: a posecore checkpoint whose 'model' is {_kind(checkpoint.get('model'))}; expected "
                "the model's state_dict (text keys -> tensors)"
            )
        return "posecore", _strip_wrappers(checkpoint["model"])
    holder = _state_dict_holder(checkpoint, path)
    wrapped = holder == "state_dict"  # mmpose's layout: {"state_dict": ..., "meta": ...}
    state = _strip_wrappers(checkpoint if holder is None else checkpoint[holder])
    keys = list(state)
    if _any_prefix(keys, "preact."):
        return "alphapose", state
    if _any_prefix(keys, "transition1.") and _any_prefix(keys, "stage2."):
        return "hrnet-official", state
    if _any_prefix(keys, "keypoint_head."):
        return "mmpose-0.x", state
    if _any_prefix(keys, "backbone.") and (wrapped or _any_prefix(keys, "head.multi_final_")):
        return "mmpose-1.x", state
    if _any_prefix(keys, "backbone.") and _any_prefix(keys, "head."):
        return "posecore", state
    if "conv1.weight" in state and _any_prefix(keys, "layer1."):
        return "torchvision-resnet", state
    raise CheckpointError(
        f"{path}: unrecognized checkpoint; first keys {keys[:5]} match none of"
        f" posecore, AlphaPose, mmpose, the official HRNet or torchvision ResNet"
    )


def _state_dict_holder(checkpoint: dict, path: str | os.PathLike) -> str | None:
    """Where a loaded file keeps its weights: None when it is a state_dict itself (text keys ->
    tensors), else the one key of STATE_DICT_KEYS ({"model": model.state_dict()}, mmpose's
    "state_dict", ...) that holds a state_dict. A CheckpointError says what was found and what
    was expected otherwise."""
    if _is_state_dict(checkpoint):
        return None
    holders = [key for key in STATE_DICT_KEYS if _is_state_dict(checkpoint.get(key))]
    if len(holders) == 1:
        return holders[0]
    expected = (
        f"a state_dict (text keys -> tensors), or a dict holding exactly one under "
        f"{' / '.join(repr(key) for key in STATE_DICT_KEYS)}"
    )
    if holders:
        raise CheckpointError(
            f"{path}: holds a state_dict under each of {holders}; expected {expected}. Save the "
            "weights you mean on their own: torch.save(model.state_dict(), path)"
        )
    others = [(key, value) for key, value in checkpoint.items() if not _is_state_dict({key: value})]
    listed = ", ".join(f"{str(key)[:40]!r}: {_kind(value)}" for key, value in others[:8])
    more = f", ... ({len(others) - 8} more)" if len(others) > 8 else ""
    tensors = len(checkpoint) - len(others)
    found = f"{tensors} tensors under text keys and {{{listed}{more}}}" if tensors else f"{{{listed}{more}}}"
    raise CheckpointError(f"{path}: found a dict of {found}; expected {expected}")


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items())
    )


def _kind(value: Any) -> str:
    """A value's type in words: 'a tensor', 'a dict of 3 tensors', 'a dict', 'an int', ..."""
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, dict):
        tensors = sum(isinstance(item, torch.Tensor) for item in value.values())
        return f"a dict of {len(value)} entries ({tensors} tensors)"
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def to_posecore_keys(fmt: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an upstream state_dict's keys to posecore's (identity for posecore)."""
    if fmt == "alphapose":
        state = _rename(state, ALPHAPOSE_PREFIXES)
        return {_replace_parts(key, ALPHAPOSE_PARTS): value for key, value in state.items()}
    if fmt.startswith("mmpose"):
        return _rename(state, MMPOSE_PREFIXES)
    if fmt == "hrnet-official":
        return _rename(state, HRNET_OFFICIAL_PREFIXES)
    return state


def _strip_wrappers(state: dict[str, Any]) -> dict[str, Any]:
    stripped = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def _rename(state: dict[str, Any], prefixes: dict[str, str]) -> dict[str, Any]:
    renamed = {}
    for key, value in state.items():
        for old, new in prefixes.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


def _replace_parts(key: str, parts: dict[str, str]) -> str:
    for old, new in parts.items():
        key = key.replace(old, new)
    return key


def _any_prefix(keys: list[str], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in keys)


def _numpy_globals() -> list[Any]:
    """What unpickling a plain NumPy array needs (numpy 1 and 2 module names)."""
    core = getattr(np, "_core", None) or np.core
    found = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    found += [type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGO"]
    return found
