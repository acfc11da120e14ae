"""Top-down pose networks: images [N, 3, H, W] -> heatmaps [N, K, H/4, W/4], or for RTMPose the
SimCC pair (simcc_x [N, K, W * 2], simcc_y [N, K, H * 2]) (a tuple; posecore.codec.simcc).

H and W must be multiples of 32 for the ResNet models, HRNet and RTMPose and of 128 for
Hourglass-52 (4 x 2^5), as with the upstream models (256x192, 384x384).

- fastpose: AlphaPose's FastPose, an SE-ResNet backbone then PixelShuffle and two DUC upsamplers.
- fastpose_duc: AlphaPose's FastPose_DUC, an SE- or plain ResNet then three DUC stages.
- simplebaseline: Xiao et al.'s ResNet + three stride-2 deconvolutions.
- hrnet: mmpose's HRNet-W32 / W48 (model.width) with a 1x1 heatmap head.
- hourglass: mmpose's HourglassNet (Hourglass-52 per stack) with a 1x1 conv per stack.
- rtmpose: mmpose's RTMPose t / s / m / l (model.variant): CSPNeXt + the RTMCC head.

One file per family (timm style); this module builds them by name and holds what applies to
all: `final_output`, `unwrap_model`, `model_summary`. State_dict names: `backbone.*` then
`head.*`, each family with its upstream's names below; the mapping from upstream checkpoints
lives in posecore.checkpoints, never here.

The forwards use the same ops as the upstream modules (in-place ReLU and residual add, no extra
copies) and no data-dependent Python control flow, so they compile and export to ONNX as is.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from posecore.models.fastpose import DUC, DUCHead, FastPose
from posecore.models.fastpose_duc import DUCStage, DUCStagesHead, FastPoseDUC
from posecore.models.hourglass import Hourglass, HourglassModule, HourglassNet, MultiStageHead
from posecore.models.hrnet import HRNET_WIDTHS, HRModule, HRNet, HRNetBackbone
from posecore.models.layers import ConvBN, conv1x1_bn, conv3x3, init_normal
from posecore.models.resnet import RESNET_BLOCKS, BasicBlock, Bottleneck, ResNet, SqueezeExcite
from posecore.models.rtmpose import RTMPOSE_VARIANTS, RTMPose
from posecore.models.simplebaseline import DeconvHead, SimpleBaseline

__all__ = [
    "MODELS",
    "RESNET_BLOCKS",
    "build_model",
    "final_output",
    "unwrap_model",
    "model_summary",
    "FastPose",
    "FastPoseDUC",
    "DUCStage",
    "DUCStagesHead",
    "SimpleBaseline",
    "Hourglass",
    "ResNet",
    "SqueezeExcite",
    "BasicBlock",
    "Bottleneck",
    "HourglassNet",
    "HourglassModule",
    "MultiStageHead",
    "DUC",
    "DUCHead",
    "DeconvHead",
    "ConvBN",
    "conv1x1_bn",
    "conv3x3",
    "init_normal",
    "RTMPose",
    "RTMPOSE_VARIANTS",
    "HRNet",
    "HRNetBackbone",
    "HRModule",
    "HRNET_WIDTHS",
]


MODELS: dict[str, type[nn.Module]] = {
    "fastpose": FastPose,
    "fastpose_duc": FastPoseDUC,
    "hourglass": Hourglass,
    "hrnet": HRNet,
    "simplebaseline": SimpleBaseline,
    "rtmpose": RTMPose,
}


def build_model(name: Any, **kwargs: Any) -> nn.Module:
    """Build a model by name (a key of MODELS), from a Params (its .model), or a ModelParams.

    kwargs (num_joints, depth, num_stacks, conv_dim, backbone, duc_convs, variant, width) override the
    params; from a Params, a model that takes them also gets data.input_size and
    data.simcc_split_ratio (RTMPose's head is sized for its input). The weights are the
    initialization: loading any (model.pretrained, model.init_checkpoint, a checkpoint) is
    posecore.checkpoints' job (load_model).
    """
    data = getattr(name, "data", None)
    if data is not None and data.dataset == "custom" and not data.joint_names:
        raise ValueError(
            "data.dataset custom: these params do not say the keypoint set yet, so the model's joint "
            "count is unknown (model.num_joints would silently stay at its default). Resolve it first: "
            "posecore.data.resolve_keypoints on these params reads it from the annotation file, or load the "
            "params of the run that trained on it (posecore.Run(name).params())"
        )
    model_params = getattr(name, "model", name)
    data = getattr(name, "data", None)  # a Params: its data section too
    settings: dict[str, Any] = {}
    if dataclasses.is_dataclass(model_params) and not isinstance(model_params, type):
        settings = dataclasses.asdict(model_params)
        name = settings.pop("name")
    if data is not None:
        settings.update(input_size=tuple(data.input_size), split_ratio=data.simcc_split_ratio)
    settings.update(kwargs)
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    model_class = MODELS[name]
    accepted = inspect.signature(model_class).parameters
    # ModelParams carries every model's fields; only explicit kwargs must fit this model.
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise TypeError(f"model {name!r} takes {sorted(accepted)}, not {unknown}")
    return model_class(**{key: value for key, value in settings.items() if key in accepted})


def final_output(output: Any) -> Any:
    """The prediction of a model's output: a list (a stacked hourglass's per-stack heatmaps in
    training mode) -> its last element; anything else (a heatmap tensor [N, K, H, W], RTMPose's
    tuple (simcc_x, simcc_y)) as it is."""
    return output[-1] if isinstance(output, list) else output


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside torch.compile / DataParallel / DistributedDataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_summary(model: nn.Module, input_size: tuple[int, int] | list[int]) -> dict[str, Any]:
    """Parameter count and GFLOPs of one forward pass at input_size (w, h), batch 1.

    FLOPs come from torch.utils.flop_counter (a multiply-add counts as 2). The pass runs on
    meta tensors, so it costs no compute and leaves the model's weights and BN statistics alone.
    """
    model = unwrap_model(model)
    width, height = input_size
    params = sum(p.numel() for p in model.parameters())
    tensors = {name: t.to("meta") for name, t in model.state_dict(keep_vars=True).items()}
    image = torch.empty(1, 3, height, width, device="meta")
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()  # batch-1 BN in training mode rejects 1x1 maps; the FLOPs are the same
    try:
        with counter, torch.no_grad():
            torch.func.functional_call(model, tensors, (image,))
    finally:
        model.train(was_training)
    return {"params": params, "gflops": counter.get_total_flops() / 1e9}
