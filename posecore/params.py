"""Typed experiment parameters: YAML in params/ -> the dataclasses of posecore.params_schema,
then dotted overrides.

A params file is plain YAML data (posecore.files.read_yaml: `yaml.safe_load`, its errors a
ParamsError naming the file, line and column); nothing in it is evaluated. Every key must
exist in the dataclasses below and have the declared type, otherwise the error names the file,
the key and the closest valid key. `save_params` writes the resolved params, and
`load_params(saved_path)` gives back an equal object: that file is what workers read.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from posecore import alphapose_config
from posecore.codec import check_decode
from posecore.errors import ParamsError
from posecore.files import REPO_ROOT, atomic_write, read_yaml
from posecore.keypoints import DATASETS, KeypointSetError, keypoint_info
from posecore.params_schema import (
    AMP_ALIASES,
    AMP_MODES,
    FASTPOSE_BACKBONES,
    HRNET_WIDTHS,
    LOSSES,
    LR_SCHEDULES,
    MAX_INT,
    MODEL_GEOMETRY,
    NUMBER_RANGES,
    OPTIMIZERS,
    RESNET_DEPTHS,
    RTMPOSE_VARIANTS,
    SIMCC_MODELS,
    SMOOTHINGS,
    DataParams,
    EvalParams,
    ExportParams,
    InferParams,
    ModelParams,
    Params,
    TrainParams,
)

log = logging.getLogger(__name__)

PARAMS_DIR = REPO_ROOT / "params"
SHORTCUTS = {
    "fastpose": "fastpose_coco",
    "hourglass": "hourglass_mpii",
    "rtmpose": "rtmpose_m_coco",
    "hrnet": "hrnet_w32_coco",
    "simplebaseline": "simplebaseline_r50_coco",
}


def load_params(name_or_path: str | os.PathLike | Params, overrides: dict[str, Any] | None = None) -> Params:
    """Resolve a params file and apply dotted overrides, e.g. {"train.lr": 5e-4}.

    `name_or_path`: an existing path, a shortcut (a key of SHORTCUTS: "fastpose",
    "hourglass", "hrnet", "rtmpose", "simplebaseline"), or a name in params/.
    A Params object is copied and the overrides applied to it. An AlphaPose config (upper-case
    DATASET / DATA_PRESET / MODEL / TRAIN sections) is converted by posecore.alphapose_config,
    which logs (INFO) where each of its keys went.
    """
    mapped: list[str] = []
    if isinstance(name_or_path, Params):
        params, source = dataclasses.replace(name_or_path), "params"
        raw = params.to_dict()
    else:
        path = resolve_params_path(name_or_path)
        source = str(path)
        raw = read_yaml(path)
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ParamsError(f"{path}: expected a mapping of sections at the top level")
        raw, mapped = _from_alphapose(raw, source)
        raw.setdefault("name", path.stem)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, source)
    try:
        return _build(Params, raw, source, prefix="")
    except ParamsError as error:
        origin = _mapped_from(str(error), mapped)
        if origin:
            raise ParamsError(f"{error} (read from AlphaPose {origin})") from None
        raise


def _mapped_from(message: str, mapped: list[str]) -> str:
    """The AlphaPose mapping line behind the posecore key a ParamsError message starts with."""
    key = message.split(": ", 1)[-1].split(" ", 1)[0].split("[", 1)[0]  # model.duc_convs[0] -> model.duc_convs
    return next((line for line in mapped if f"-> {key} " in f"{line} "), "")


def _from_alphapose(raw: dict, source: str) -> tuple[dict, list[str]]:
    """An AlphaPose config converted to a posecore params mapping (others as they are), and the
    lines saying where its keys went."""
    if not alphapose_config.is_alphapose_config(raw):
        return raw, []
    converted, mapped = alphapose_config.convert(raw, source)
    log.info("%s is an AlphaPose config; read as:\n  %s", source, "\n  ".join(mapped))
    return converted, mapped


def resolve_params_path(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ParamsError(f"params file {path} does not exist")
        return path
    name = SHORTCUTS.get(str(name_or_path), str(name_or_path))
    candidate = PARAMS_DIR / f"{name}.yaml"
    if not candidate.exists():
        known = sorted(SHORTCUTS) + sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        hint = _closest(name, known)
        raise ParamsError(f"no params named {name_or_path!r} in {PARAMS_DIR}; known: {known}{hint}")
    return candidate


def save_params(params: Params, path: str | os.PathLike) -> Path:
    text = yaml.safe_dump(params.to_dict(), sort_keys=False, default_flow_style=None)
    return atomic_write(path, text)


def _set_dotted(raw: dict, dotted: str, value: Any, source: str) -> None:
    if not isinstance(dotted, str):
        raise ParamsError(f"override {dotted!r}: keys are dotted text like 'train.lr' ({source})")
    section, _, key = dotted.partition(".")
    if not key:
        if section == "name":
            raw["name"] = value
            return
        raise ParamsError(f"override {dotted!r}: use a dotted key like 'train.lr' ({source})")
    sections = [item.name for item in dataclasses.fields(Params) if item.name != "name"]
    if section not in sections:
        raise ParamsError(
            f"override {dotted!r}: unknown section {section!r}{_closest(section, sections)}; "
            f"sections: {sections} ({source})"
        )
    sub = raw.setdefault(section, {})
    if not isinstance(sub, dict):
        raise ParamsError(f"override {dotted!r}: {section!r} is not a section ({source})")
    sub[key] = value


def _build(cls: type, raw: dict, source: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in hints]
    if unknown:
        key = unknown[0]
        raise ParamsError(
            f"{source}: unknown key '{prefix}{key}'{_closest(key, names, prefix)}; "
            f"valid keys in {prefix.rstrip('.') or 'the top level'}: {names}"
        )
    values = {}
    for key, value in raw.items():
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, source, f"{prefix}{key}.")
        else:
            values[key] = _coerce(value, expected, source, f"{prefix}{key}")
    obj = cls(**values)
    _check(obj, source, prefix)
    return obj


def _coerce(value: Any, expected: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ParamsError(f"{source}: {key} must be a list, got {value!r}")
        (item_type,) = typing.get_args(expected)
        return [_coerce(v, item_type, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ParamsError(
            f"{source}: {key} is an integer of {len(str(abs(value)))} digits; values must stay within +-2^63"
        )
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ParamsError(f"{source}: {key} must be true or false, got {value!r}")
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{source}: {key} must be an integer, got {value!r}")
    if expected in (float, str) and not isinstance(value, expected):
        hint = ""
        if expected is float and isinstance(value, str) and _is_number_text(value):
            hint = f" (YAML reads {value} as text: write it with a dot, e.g. 1.0e-3)"
        raise ParamsError(f"{source}: {key} must be a {expected.__name__}, got {value!r}{hint}")
    if expected is float and not math.isfinite(value):
        raise ParamsError(f"{source}: {key} must be a finite number, got {value!r}")
    return value


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check(obj: Any, source: str, prefix: str) -> None:
    """Value checks that types alone cannot express."""

    def fail(key: str, message: str) -> None:
        raise ParamsError(f"{source}: {prefix}{key} {message}")

    for item in dataclasses.fields(obj):
        if f"{prefix}{item.name}" in NUMBER_RANGES:
            _check_range(getattr(obj, item.name), f"{prefix}{item.name}", fail_key=item.name, fail=fail)
    if isinstance(obj, ModelParams):
        if obj.name not in MODEL_GEOMETRY:
            fail(
                "name",
                f"must be one of {sorted(MODEL_GEOMETRY)}, got {obj.name!r}"
                f"{_closest(str(obj.name), sorted(MODEL_GEOMETRY))}",
            )
        if obj.variant not in RTMPOSE_VARIANTS:
            fail("variant", f"must be one of {RTMPOSE_VARIANTS} (the RTMPose size), got {obj.variant!r}")
        if obj.name == "hrnet" and obj.width not in HRNET_WIDTHS:
            fail("width", f"must be an HRNet width {HRNET_WIDTHS} for hrnet, got {obj.width}")
        if obj.name not in ("hourglass", "hrnet", *SIMCC_MODELS) and obj.depth not in RESNET_DEPTHS:
            fail("depth", f"must be a ResNet depth {RESNET_DEPTHS} for {obj.name}, got {obj.depth}")
        if obj.name == "fastpose_duc" and obj.depth < 50:
            fail(
                "depth",
                f"must be 50, 101 or 152 for fastpose_duc (its DUC stages take a 2048-channel "
                f"backbone), got {obj.depth}",
            )
        if obj.conv_dim not in (128, 256):
            fail("conv_dim", f"must be 128 or 256 (AlphaPose's FastPose CONV_DIM), got {obj.conv_dim}")
        if obj.backbone not in FASTPOSE_BACKBONES:
            fail("backbone", f"must be one of {FASTPOSE_BACKBONES}, got {obj.backbone!r}")
        if len(obj.duc_convs) != 3:
            fail("duc_convs", f"must be three conv counts (AlphaPose's STAGE1-3 NUM_CONV), got {obj.duc_convs}")
    if isinstance(obj, DataParams):
        for key in ("input_size", "heatmap_size"):
            size = getattr(obj, key)
            if len(size) != 2:
                fail(key, f"must be two positive integers (w, h), got {size}")
        if len(obj.simcc_sigma) not in (1, 2):
            fail("simcc_sigma", f"must be one or two positive numbers (x, y), got {obj.simcc_sigma}")
        for key in ("mean", "std"):
            if len(getattr(obj, key)) != 3:
                fail(key, "must have 3 values (R, G, B)")
        if obj.dataset not in (*DATASETS, "custom"):
            fail("dataset", f"must be one of {[*sorted(DATASETS), 'custom']}, got {obj.dataset!r}")
    if isinstance(obj, TrainParams):
        obj.amp = AMP_ALIASES.get(obj.amp, obj.amp)
        if obj.amp not in AMP_MODES:
            fail("amp", f"must be one of {AMP_MODES} (or O0/O1/O2), got {obj.amp!r}")
        if obj.amp_backend not in ("torch", "apex"):
            fail("amp_backend", f"must be 'torch' or 'apex', got {obj.amp_backend!r}")
        if not (isinstance(obj.deterministic, bool) or obj.deterministic == "auto"):
            fail("deterministic", f"must be true, false or 'auto', got {obj.deterministic!r}")
        if obj.optimizer not in OPTIMIZERS:
            fail("optimizer", f"must be one of {OPTIMIZERS}, got {obj.optimizer!r}")
        if obj.loss not in LOSSES:
            fail("loss", f"must be one of {LOSSES}, got {obj.loss!r}{_closest(str(obj.loss), list(LOSSES))}")
        if obj.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"must be one of {LR_SCHEDULES}, got {obj.lr_schedule!r}")
        if obj.lr_schedule == "cosine" and obj.cosine_begin >= obj.epochs:
            fail(
                "cosine_begin",
                f"must be below train.epochs {obj.epochs} (the cosine runs from it to the end), got {obj.cosine_begin}",
            )
        known = [*flat_params(Params()), "world_size"]  # world_size: npus x dist.nnodes
        for key in obj.accept_changes:
            if key not in known:
                fail("accept_changes", f"lists {key!r}, which is not a params key{_closest(key, known)}")
    if isinstance(obj, InferParams) and obj.smoothing not in SMOOTHINGS:
        fail("smoothing", f"must be one of {SMOOTHINGS}, got {obj.smoothing!r}")
    if isinstance(obj, EvalParams) and obj.dark_kernel % 2 == 0:
        fail("dark_kernel", f"must be odd (a Gaussian kernel's size), got {obj.dark_kernel}")
    if isinstance(obj, EvalParams) and obj.sigmas != "uniform":
        obj.sigmas = list(obj.sigmas) if isinstance(obj.sigmas, tuple) else obj.sigmas
        if not isinstance(obj.sigmas, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in obj.sigmas
        ):
            fail(
                "sigmas", f"must be a list of positive numbers (finite, one per joint) or 'uniform', got {obj.sigmas!r}"
            )
        obj.sigmas = [float(v) for v in obj.sigmas]
    if isinstance(obj, Params):
        try:
            check_decode(obj.data.codec, obj.eval.decode)
        except ValueError as error:
            raise ParamsError(f"{source}: {error}") from None
        _check_across_sections(obj, source)


def _check_range(value: Any, key: str, fail_key: str, fail: Any) -> None:
    low, high, low_excluded = NUMBER_RANGES[key]
    for item in value if isinstance(value, list) else [value]:
        too_low = low is not None and (item <= low if low_excluded else item < low)
        if too_low or (high is not None and item > high):
            if low is None:
                bounds = f"<= {high}"
            elif high is None:
                bounds = f"{'>' if low_excluded else '>='} {low}"
            else:
                bounds = f"in [{low}, {high}]"
            shown = f"contains {item}" if isinstance(value, list) else f"got {item}"
            fail(fail_key, f"must be {bounds}{' (each value)' if isinstance(value, list) else ''}, {shown}")


def _check_across_sections(params: Params, source: str) -> None:
    """Keys that must agree with each other: checked here rather than inside the loss or the loader."""
    model, data = params.model, params.data
    # a custom set's joint count is its file's, recorded in data.joint_names before a run starts
    joints = len(data.joint_names) if data.dataset == "custom" else DATASETS[data.dataset].num_joints
    if joints and model.num_joints != joints:
        raise ParamsError(
            f"{source}: model.num_joints is {model.num_joints} but data.dataset "
            f"{data.dataset!r} has {joints} joints: set model.num_joints: {joints}"
        )
    simcc_model, simcc_codec = model.name in SIMCC_MODELS, data.codec == "simcc"
    if simcc_model != simcc_codec and not params.eval.oracle:
        fitting = "simcc" if simcc_model else "msra (or dark / udp)"
        raise ParamsError(
            f"{source}: model.name {model.name!r} predicts "
            f"{'SimCC vectors' if simcc_model else 'heatmaps'} but data.codec is "
            f"{data.codec!r}: set data.codec: {fitting}"
        )
    loss = params.train.loss
    if loss != "auto" and (loss == "kl_discret") != simcc_codec:
        raise ParamsError(
            f"{source}: train.loss {loss!r} does not fit data.codec {data.codec!r}: the simcc "
            f"codec trains with kl_discret, heatmap codecs with joints_mse or keypoint_mse "
            f"(or set train.loss: auto)"
        )
    if not params.eval.oracle:  # the oracle scores encoded targets: no model, any heatmap size
        check_model_geometry(params, source)
    if params.dist.node_rank >= params.dist.nnodes:
        raise ParamsError(
            f"{source}: dist.node_rank {params.dist.node_rank} must be below dist.nnodes "
            f"{params.dist.nnodes} (machines are numbered 0..nnodes-1)"
        )
    if data.dataset in DATASETS:  # a built-in set's keypoint keys: checked now, not at the first run
        try:
            keypoint_info(params)
        except KeypointSetError as error:
            raise KeypointSetError(f"{source}: {error}") from None


def check_model_geometry(params: Params, source: str = "params") -> None:
    """data.input_size a multiple of what the model needs and data.heatmap_size = input / its
    stride, or a ParamsError naming both keys (load_params checks it unless eval.oracle is on;
    training checks it always)."""
    model, data = params.model, params.data
    stride, multiple = MODEL_GEOMETRY[model.name]
    if any(size % multiple for size in data.input_size):
        fitting = [max(multiple, round(size / multiple) * multiple) for size in data.input_size]
        raise ParamsError(
            f"{source}: data.input_size {data.input_size} (w, h) must be multiples of {multiple} for "
            f"{model.name} (its heatmaps are then exactly 1/{stride} of the input); e.g. "
            f"data.input_size {fitting} with data.heatmap_size {[size // stride for size in fitting]}"
        )
    expected = [size // stride for size in data.input_size]
    if model.name not in SIMCC_MODELS and data.heatmap_size != expected:
        raise ParamsError(
            f"{source}: data.heatmap_size {data.heatmap_size} must be data.input_size "
            f"{data.input_size} / {stride} = {expected} for {model.name}, whose heatmaps are 1/{stride} "
            f"of its input: set data.heatmap_size: {expected}"
        )


# Keys a resumed run may change freely: they leave the model, the optimizer state's meaning and
# the data order alone. Changing any other key needs it listed in train.accept_changes.
RESUME_HARMLESS = (
    "name",
    "data.workers",
    "data.det_file",
    "data.det_score_thr",
    "train.epochs",
    "train.val_every",
    "train.resume",
    "train.accept_changes",
    "train.max_steps",
    "train.perf_warmup_steps",
    "train.log_every",
    "train.max_nan_steps",
    "train.tensorboard_images",
    "train.compile",
    "train.channels_last",
    "dist.node_rank",
    "dist.master_addr",
    "dist.master_port",
    "dist.backend",
    "dist.max_restarts",
    "dist.rdzv_timeout",
    "dist.threads",
    "train.deterministic",
    *(f"eval.{item.name}" for item in dataclasses.fields(EvalParams)),
    *(f"infer.{item.name}" for item in dataclasses.fields(InferParams)),
    *(f"export.{item.name}" for item in dataclasses.fields(ExportParams)),
)


def flat_params(params: Params) -> dict[str, Any]:
    """{dotted key: value} of every key, e.g. {"train.lr": 0.001, ...}."""
    flat = {}
    for key, value in params.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{sub}": item for sub, item in value.items()})
        else:
            flat[key] = value
    return flat


def resume_changes(saved: Params, new: Params) -> tuple[dict[str, list], dict[str, list]]:
    """What resuming a run saved with `saved` under `new` changes: (accepted, refused), each
    {dotted key: [saved value, new value]}. Accepted: RESUME_HARMLESS keys and those `new` lists
    in train.accept_changes; refused: every other difference."""
    before, after = flat_params(saved), flat_params(new)
    accepted, refused = {}, {}
    for key, value in after.items():
        if before.get(key) != value:
            harmless = key in RESUME_HARMLESS or key in new.train.accept_changes
            (accepted if harmless else refused)[key] = [before.get(key), value]
    return accepted, refused


def _closest(key: str, names: list[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f" (did you mean '{prefix}{match[0]}'?)" if match else ""
