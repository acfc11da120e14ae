"""Typed experiment parameters: YAML in params/ -> dataclasses, then dotted overrides.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posecore import alphapose_config
from posecore.codec import check_decode
from posecore.errors import ParamsError
from posecore.files import REPO_ROOT, atomic_write, read_yaml
from posecore.keypoints import DATASETS, KeypointSetError, keypoint_info

log = logging.getLogger(__name__)

PARAMS_DIR = REPO_ROOT / "params"
SHORTCUTS = {
    "fastpose": "fastpose_coco",
    "hourglass": "hourglass_mpii",
    "rtmpose": "rtmpose_m_coco",
    "hrnet": "hrnet_w32_coco",
    "simplebaseline": "simplebaseline_r50_coco",
}
AMP_ALIASES = {"O0": "off", "O1": "fp16", "O2": "fp16", "none": "off", "fp32": "off"}
AMP_MODES = ("off", "fp16", "bf16")
# Per model (posecore.models.MODELS): heatmap stride, and what input sizes must be multiples of for
# the heatmaps to come out at exactly input / stride (ResNet: 5 halvings; Hourglass: /4, then 5 levels;
# HRNet: its 1/32 branch is upsampled x8 onto the 1/4 one).
# RTMPose predicts SimCC vectors, not heatmaps: its stride is the backbone's (data.heatmap_size unused).
MODEL_GEOMETRY = {
    "fastpose": (4, 32),
    "fastpose_duc": (4, 32),
    "simplebaseline": (4, 32),
    "hourglass": (4, 128),
    "hrnet": (4, 32),
    "rtmpose": (32, 32),
}
SIMCC_MODELS = ("rtmpose",)  # the models that predict (simcc_x, simcc_y): data.codec simcc
RTMPOSE_VARIANTS = ("t", "s", "m", "l")  # posecore.models.rtmpose.RTMPOSE_VARIANTS
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("step", "cosine")
LOSSES = ("auto", "joints_mse", "keypoint_mse", "kl_discret")  # posecore.optim.build_loss
RESNET_DEPTHS = (18, 34, 50, 101, 152)  # posecore.models.RESNET_BLOCKS
HRNET_WIDTHS = (18, 32, 48)  # posecore.models.HRNET_WIDTHS
MAX_INT = 2**63 - 1  # integers must fit int64 (numpy, torch)
FASTPOSE_BACKBONES = ("se-resnet", "resnet")


@dataclass
class ModelParams:
    name: str = "fastpose"  # key of posecore.models.MODELS
    num_joints: int = 17
    depth: int = 50  # ResNet depth of fastpose / simplebaseline (18, 34, 50, 101, 152)
    num_stacks: int = 1  # hourglass stacks
    # fastpose: the last DUC's width (AlphaPose's CONV_DIM, 128 or 256) for a 2048-channel backbone
    conv_dim: int = 128
    backbone: str = "se-resnet"  # fastpose_duc: se-resnet | resnet (AlphaPose's BACKBONE)
    duc_convs: list[int] = field(default_factory=lambda: [4, 2, 1])  # fastpose_duc: STAGE1-3 NUM_CONV
    variant: str = "m"  # rtmpose size: t | s | m | l
    width: int = 32  # hrnet: width of the highest-resolution branch (HRNet-W32 / W48)
    pretrained: str = ""  # local ImageNet backbone init: torchvision ResNet state_dict, or an HRNet's
    init_checkpoint: str = ""  # start from these weights (own, AlphaPose or mmpose format)
    skip_mismatched_head: bool = False  # init_checkpoint of another joint count: load all but the final layer


@dataclass
class DataParams:
    dataset: str = "coco"  # coco | mpii | custom (COCO layout, any keypoint category)
    root: str = ""  # dataset root in the official layout; "" = synthetic demo data
    det_file: str = ""  # COCO-results person boxes for the `test` split
    det_score_thr: float = 0.0  # drop detections below this score
    input_size: list[int] = field(default_factory=lambda: [192, 256])  # (w, h)
    heatmap_size: list[int] = field(default_factory=lambda: [48, 64])  # (w, h)
    sigma: float = 2.0
    codec: str = "msra"  # msra | dark | udp (heatmaps) | simcc (RTMPose) (posecore.codec)
    # simcc codec: Gaussian label sigma (x, y) in bins and bins per input pixel (data.heatmap_size,
    # data.sigma are the heatmap codecs' and unused with it)
    simcc_sigma: list[float] = field(default_factory=lambda: [4.9, 5.66])
    simcc_split_ratio: float = 2.0
    # Normalization: (rgb / 255 - mean) / std. AlphaPose uses std 1 and its own mean.
    mean: list[float] = field(default_factory=lambda: [0.406, 0.457, 0.480])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    bbox_padding: float = 1.25
    flip: bool = True
    scale_factor: float = 0.3
    rot_factor: float = 40.0
    rot_prob: float = 0.6
    half_body_prob: float = 0.0  # AlphaPose's COCO config disables it (PROB_HALF_BODY -1)
    half_body_min_joints: int = 8
    workers: int = 4  # DataLoader workers per device
    # Two speed-ups the seeds do not have (off in every seed params file; docs/data.md "Data loading"):
    # group_by_image: train order shuffles images and keeps an image's people adjacent (one decode
    # serves them all) instead of shuffling people uniformly as AlphaPose's and mmpose's loaders do.
    # reduced_decode: training decodes a JPEG at 1/2..1/8 scale when the person's crop box is that
    # much larger than the input (evaluation always decodes at full resolution).
    group_by_image: bool = False
    reduced_decode: bool = False
    # Keypoint set (posecore.keypoints): joints by name or 0-based index. Empty = the dataset's own;
    # for custom, joint_names/skeleton come from the annotation file and a run records all of them.
    joint_names: list[str] = field(default_factory=list)
    skeleton: list[Any] = field(default_factory=list)  # [[a, b], ...]
    flip_pairs: list[Any] = field(default_factory=list)  # [[left, right], ...]; custom: inferred
    upper_body: list[Any] = field(default_factory=list)  # custom: inferred where names allow
    joint_weights: list[float] = field(default_factory=list)  # loss weight per joint; empty = all 1


@dataclass
class TrainParams:
    epochs: int = 200
    batch_size: int = 32  # per device (one micro-batch)
    # images per optimizer step over all devices; 0 = batch_size x devices x accumulate. With it
    # set, the step is the same on any device count: accumulate = global_batch / (batch_size x
    # world size) micro-batches per step (posecore.optim.batch_plan)
    global_batch: int = 0
    accumulate: int = 0  # micro-batches per optimizer step; 0 = from global_batch (else 1)
    optimizer: str = "adam"  # adam | adamw | sgd (adamw: no decay on norm layers and biases)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    # The loss (posecore.optim.build_loss), times loss_weight: joints_mse = mean(((out - target) *
    # w)^2) (mmpose 0.x's JointsMSELoss; AlphaPose's MSELoss on masked heatmaps, which its train.py
    # halves: loss_weight 0.5), keypoint_mse = mean(w * (out - target)^2) (mmpose 1.x's
    # KeypointMSELoss), kl_discret (RTMPose's KLDiscretLoss); stacked outputs add their losses.
    # auto: kl_discret for the simcc codec, else joints_mse.
    loss: str = "auto"
    loss_weight: float = 1.0
    lr_schedule: str = "step"  # step: lr_factor at lr_steps | cosine: cosine_begin -> epochs
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])
    lr_factor: float = 0.1
    cosine_begin: int = 0  # cosine: the epoch the cosine decay starts (lr constant before)
    min_lr_ratio: float = 0.0  # cosine: the LR at the end is lr * min_lr_ratio
    warmup_iters: int = 0  # linear warmup length in iterations
    warmup_ratio: float = 0.001  # warmup starts at lr * warmup_ratio
    # AlphaPose's DPG_MILESTONE: once this (0-based) epoch has finished, DPG box jitter turns on and
    # the LR restarts at `lr`; -1 = never.
    dpg_epoch: int = -1
    # AlphaPose's DPG_STEP: the restarted LR is multiplied by dpg_lr_factor from epoch step + 1 on
    # (alphapose/opt.py makes them offsets from DPG_MILESTONE for the scheduler train.py restarts
    # there: with 140 and [160, 190], epochs 161 and 191).
    dpg_lr_steps: list[int] = field(default_factory=list)
    dpg_lr_factor: float = 0.1  # that scheduler's gamma (AlphaPose's train.py: 0.1, not LR_FACTOR)
    seed: int = 0
    amp: str = "off"  # off | fp16 | bf16 (aliases O0 -> off, O1/O2 -> fp16)
    amp_backend: str = "torch"  # torch | apex
    loss_scale: float = 0.0  # 0 = dynamic loss scaling; e.g. 32768 = the seeds' fixed scale
    sync_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    grad_clip: float = 0.0  # max grad norm; 0 = off
    val_every: int = 10  # epochs; 0 = never
    resume: bool = True  # continue from last.pt of the same run
    # keys a resume may change although they alter the run (model, optimizer state, data order;
    # "world_size" for another npus x dist.nnodes): an explicit, recorded opt-in; see
    # RESUME_HARMLESS for the keys that never need it
    accept_changes: list[str] = field(default_factory=list)
    max_steps: int = 0  # performance mode: stop after this many steps (0 = full run)
    perf_warmup_steps: int = 5  # steps left out of the reported images/s
    log_every: int = 20  # steps
    max_nan_steps: int = 20  # consecutive non-finite losses before stopping
    tensorboard_images: int = 4  # val images in the TensorBoard prediction grid; 0 = none
    # deterministic kernels (torch.use_deterministic_algorithms, cuDNN deterministic without
    # benchmark, CUBLAS_WORKSPACE_CONFIG): "auto" = on for CPU runs, off on GPUs / NPUs; true | false
    deterministic: Any = "auto"


@dataclass
class DistParams:
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    backend: str = ""  # "" = the device layer's choice (hccl / nccl / gloo)
    # torchrun's --max-restarts: after a worker dies the launcher restarts every worker this many
    # times (they resume from last.pt); 0 = the job stops
    max_restarts: int = 0
    rdzv_timeout: int = 600  # seconds a node waits for the others to join (torchrun's 600)
    # torch intra-op threads per worker; 0 = OMP_NUM_THREADS when set, else the cores / the workers
    # on this node (a lone worker in the calling process keeps that process's torch thread count).
    # Thread counts change float rounding: env.json records the number, reproduce uses it.
    threads: int = 0


@dataclass
class EvalParams:
    use_gt_boxes: bool = True  # COCO: GT person boxes; false = data.det_file boxes
    oracle: bool = False  # score encoded GT heatmaps instead of a model
    flip_test: bool = True
    shift_heatmap: bool = True  # re-align flipped heatmaps by the codec's flip shift (msra: 1 px right)
    decode: str = "default"  # default (the codec's own) | dark (DARK on msra heatmaps)
    dark_kernel: int = 11
    in_vis_thr: float = 0.2
    oks_nms: float = 0.9
    batch_size: int = 64
    pckh_thr: float = 0.5
    sigmas: Any = field(default_factory=list)  # OKS sigma per joint, or "uniform"; custom sets need it


@dataclass
class InferParams:
    """posecore.infer on images and videos (detector, tracking, drawing)."""

    detector_score_thr: float = 0.25  # person boxes of an .onnx detector or a detections .json below this are dropped
    detector_nms_iou: float = 0.7  # .onnx detector: class-agnostic NMS IoU threshold (Ultralytics' default)
    person_class: int = 0  # .onnx detector: the class index of "person" (COCO-trained YOLO: 0)
    track_iou_weight: float = 0.5  # similarity = w * box IoU + (1 - w) * keypoint OKS
    track_min_similarity: float = 0.3  # a track and a person below this similarity are not matched
    track_max_missed: int = 10  # frames an id survives without being seen
    track_max_centre_distance: float = 0.5  # second pass: leftover people and tracks pair when their box
    # centres are this close, in box heights
    draw_min_score: float = 0.3  # joints below this score are not drawn
    threads: int = 0  # onnxruntime intra-op threads of an .onnx pose model; 0 = onnxruntime's default
    # video keypoints: none (as predicted) | one_euro (the One-Euro filter per track and joint,
    # posecore.smoothing; reset when a track is lost). The results keep the raw keypoints too.
    smoothing: str = "none"
    smoothing_min_cutoff: float = 1.0  # One-Euro min cutoff, Hz: lower smooths a still joint harder
    smoothing_beta: float = 0.003  # One-Euro speed coefficient, 1/px: higher follows fast moves sooner


@dataclass
class ExportParams:
    """ONNX exports in three precisions, each scored (posecore.export_onnx, posecore.score_export)."""

    calibration_images: int = 128  # int8: person crops of the training split its ranges are measured on
    max_metric_drop: float = 1.0  # an export losing more AP / PCKh points than this is flagged


@dataclass
class Params:
    name: str = ""
    model: ModelParams = field(default_factory=ModelParams)
    data: DataParams = field(default_factory=DataParams)
    train: TrainParams = field(default_factory=TrainParams)
    dist: DistParams = field(default_factory=DistParams)
    eval: EvalParams = field(default_factory=EvalParams)
    infer: InferParams = field(default_factory=InferParams)
    export: ExportParams = field(default_factory=ExportParams)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


# Range of every numeric key (each item of a list); floats must also be finite. A new numeric
# key needs an entry here (tests/test_params.py checks that none is missing).
_POSITIVE, _NON_NEGATIVE, _FRACTION = (0, None, True), (0, None, False), (0, 1, False)
NUMBER_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    # key: (low, high, low excluded); None = unbounded
    "model.num_joints": _POSITIVE,
    "model.depth": _POSITIVE,
    "model.num_stacks": _POSITIVE,
    "model.conv_dim": _POSITIVE,
    "model.duc_convs": _POSITIVE,
    "model.width": _POSITIVE,
    "data.det_score_thr": (None, None, False),
    "data.input_size": _POSITIVE,
    "data.heatmap_size": _POSITIVE,
    "data.sigma": _POSITIVE,
    "data.mean": (None, None, False),
    "data.std": _POSITIVE,
    "data.bbox_padding": _POSITIVE,
    "data.scale_factor": _NON_NEGATIVE,
    "data.rot_factor": _NON_NEGATIVE,
    "data.rot_prob": _FRACTION,
    "data.half_body_prob": _FRACTION,
    "data.half_body_min_joints": _NON_NEGATIVE,
    "data.workers": _NON_NEGATIVE,
    "data.joint_weights": _NON_NEGATIVE,
    "data.simcc_sigma": _POSITIVE,
    "data.simcc_split_ratio": _POSITIVE,
    "train.epochs": _POSITIVE,
    "train.batch_size": _POSITIVE,
    "train.global_batch": _NON_NEGATIVE,
    "train.accumulate": _NON_NEGATIVE,
    "train.lr": _POSITIVE,
    "train.momentum": _FRACTION,
    "train.weight_decay": _NON_NEGATIVE,
    "train.lr_steps": _NON_NEGATIVE,
    "train.lr_factor": _POSITIVE,
    "train.dpg_lr_factor": _POSITIVE,
    "train.loss_weight": _POSITIVE,
    "train.cosine_begin": _NON_NEGATIVE,
    "train.min_lr_ratio": _FRACTION,
    "train.warmup_iters": _NON_NEGATIVE,
    "train.warmup_ratio": _FRACTION,
    "train.dpg_epoch": (-1, None, False),
    "train.dpg_lr_steps": _NON_NEGATIVE,
    "train.seed": (0, 2**32 - 1, False),  # numpy's seed range
    "train.loss_scale": _NON_NEGATIVE,
    "train.grad_clip": _NON_NEGATIVE,
    "train.val_every": _NON_NEGATIVE,
    "train.max_steps": _NON_NEGATIVE,
    "train.perf_warmup_steps": _NON_NEGATIVE,
    "train.log_every": _POSITIVE,
    "train.max_nan_steps": _NON_NEGATIVE,
    "train.tensorboard_images": _NON_NEGATIVE,
    "dist.nnodes": _POSITIVE,
    "dist.node_rank": _NON_NEGATIVE,
    "dist.master_port": (1, 65535, False),
    "dist.max_restarts": _NON_NEGATIVE,
    "dist.rdzv_timeout": _POSITIVE,
    "dist.threads": _NON_NEGATIVE,
    "eval.dark_kernel": _POSITIVE,
    "eval.in_vis_thr": _NON_NEGATIVE,
    "eval.oks_nms": _FRACTION,
    "eval.batch_size": _POSITIVE,
    "eval.pckh_thr": _POSITIVE,
    "infer.detector_score_thr": _NON_NEGATIVE,
    "infer.detector_nms_iou": _FRACTION,
    "infer.person_class": _NON_NEGATIVE,
    "infer.track_iou_weight": _FRACTION,
    "infer.track_min_similarity": _FRACTION,
    "infer.track_max_missed": _NON_NEGATIVE,
    "infer.track_max_centre_distance": _NON_NEGATIVE,
    "infer.draw_min_score": _NON_NEGATIVE,
    "infer.threads": _NON_NEGATIVE,
    "infer.smoothing_min_cutoff": _POSITIVE,
    "infer.smoothing_beta": _NON_NEGATIVE,
    "export.calibration_images": _POSITIVE,
    "export.max_metric_drop": _NON_NEGATIVE,
}
SMOOTHINGS = ("none", "one_euro")


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
