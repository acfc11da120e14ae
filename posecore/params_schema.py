"""The params schema: one typed dataclass per section (model, data, train, dist, eval, infer,
export) with every key's default, the values a key may take, and the range of every number.

posecore.params loads YAML into these classes and checks values against these tables; nothing
here reads files. Comments beside a key say what it mirrors upstream (AlphaPose's config names,
mmpose's) and why its default is what it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from posecore.codec.base import DEFAULT_CODEC

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
    codec: str = DEFAULT_CODEC  # msra | dark | udp (heatmaps) | simcc (RTMPose) (posecore.codec)
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
