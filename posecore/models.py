"""Top-down pose networks: images [N, 3, H, W] -> heatmaps [N, K, H/4, W/4].

H and W must be multiples of 32 for the ResNet models and of 128 for Hourglass-52 (4 x 2^5), as
with the upstream models (256x192, 384x384).

- fastpose: AlphaPose's FastPose, an SE-ResNet backbone then PixelShuffle and two DUC upsamplers.
- simplebaseline: Xiao et al.'s ResNet + three stride-2 deconvolutions.
- hourglass: mmpose's HourglassNet (Hourglass-52 per stack) with a 1x1 conv per stack.

State_dict names: `backbone.*` then `head.*`. Below `backbone.`, ResNets use torchvision's names
(conv1, bn1, layer1.0.conv1, ..., plus `se.fc1` / `se.fc2` in SE blocks) so ImageNet weights load
as they are; the hourglass uses mmpose's names (stem, hourglass_modules, out_convs, ...). The
mapping from upstream checkpoints lives in posecore.checkpoints.

The forwards use the same ops as the upstream modules (in-place ReLU and residual add, no extra
copies) and no data-dependent Python control flow, so they compile and export to ONNX as is.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------
def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """The projection shortcut: named downsample.0 (conv) and downsample.1 (BN) as upstream."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class SqueezeExcite(nn.Module):
    """AlphaPose's SE gate: global average -> Linear(C, C) -> ReLU -> Linear(C, C) -> sigmoid.

    AlphaPose uses no channel reduction and Linear layers with biases; x [N, C, H, W] is scaled
    per channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(self.relu(self.fc1(x.mean((2, 3)))))
        return x * torch.sigmoid(gate)[:, :, None, None]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; `se` gates the residual branch before the add."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None, se: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels) if se else None
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, as torchvision v1.5 and AlphaPose) -> 1x1 with 4x expansion."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None, se: bool = False) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(out_channels) if se else None
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ConvBN(nn.Sequential):
    """mmpose's ConvModule: conv (no bias) -> BN -> optional in-place ReLU; keys conv.*, bn.*."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 relu: bool = True) -> None:
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False),
            "bn": nn.BatchNorm2d(out_channels),
        }
        if relu:
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(OrderedDict(layers))


class DUC(nn.Module):
    """Dense upsampling convolution: 3x3 conv + BN + ReLU, then PixelShuffle.

    [N, in_channels, H, W] -> [N, conv_channels / upscale^2, upscale * H, upscale * W].
    """

    def __init__(self, in_channels: int, conv_channels: int, upscale: int = 2) -> None:
        super().__init__()
        self.conv = conv3x3(in_channels, conv_channels)
        self.bn = nn.BatchNorm2d(conv_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pixel_shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: Tensor) -> Tensor:
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


# ---------------------------------------------------------------------------------------------
# Backbones
# ---------------------------------------------------------------------------------------------
class ResNet(nn.Module):
    """torchvision-layout ResNet without the classifier: [N, 3, H, W] -> [N, C, H/32, W/32].

    With `se=True` it is AlphaPose's SE-ResNet: the first block of every stage that has a
    projection shortcut (all four stages for bottlenecks; stages 2-4 for basic blocks) gets an
    SE gate.
    """

    def __init__(self, depth: int = 50, se: bool = False) -> None:
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
        block = BasicBlock if depth < 50 else Bottleneck
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        stages = []
        for index, num_blocks in enumerate(RESNET_BLOCKS[depth]):
            channels = 64 * 2**index
            stages.append(_resnet_stage(block, in_channels, channels, num_blocks,
                                        stride=1 if index == 0 else 2, se=se))
            in_channels = channels * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _resnet_stage(block: type[BasicBlock | Bottleneck], in_channels: int, channels: int,
                  num_blocks: int, stride: int, se: bool) -> nn.Sequential:
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = conv1x1_bn(in_channels, out_channels, stride)
    blocks = [block(in_channels, channels, stride, downsample, se=se and downsample is not None)]
    blocks += [block(out_channels, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


def _basic_stage(in_channels: int, out_channels: int, num_blocks: int, stride: int = 1,
                 project_last: bool = False) -> nn.Sequential:
    """mmpose's ResLayer of BasicBlocks; the channel change / stride sits on the first block,
    or on the last one with `project_last` (mmpose's downsample_first=False)."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = conv1x1_bn(in_channels, out_channels, stride)
    if project_last:
        blocks = [BasicBlock(in_channels, in_channels) for _ in range(num_blocks - 1)]
        blocks.append(BasicBlock(in_channels, out_channels, stride, downsample))
    else:
        blocks = [BasicBlock(in_channels, out_channels, stride, downsample)]
        blocks += [BasicBlock(out_channels, out_channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class HourglassModule(nn.Module):
    """One recursive hourglass level: x + upsample(low path at half resolution)."""

    def __init__(self, depth: int, stage_channels: tuple[int, ...],
                 stage_blocks: tuple[int, ...]) -> None:
        super().__init__()
        channels, inner_channels = stage_channels[0], stage_channels[1]
        self.up1 = _basic_stage(channels, channels, stage_blocks[0])
        self.low1 = _basic_stage(channels, inner_channels, stage_blocks[0], stride=2)
        self.low2: nn.Module
        if depth > 1:
            self.low2 = HourglassModule(depth - 1, stage_channels[1:], stage_blocks[1:])
        else:
            self.low2 = _basic_stage(inner_channels, inner_channels, stage_blocks[1])
        self.low3 = _basic_stage(inner_channels, channels, stage_blocks[0], project_last=True)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class HourglassNet(nn.Module):
    """mmpose's HourglassNet: stem to 1/4 resolution, then `num_stacks` hourglasses.

    Returns one feature map [N, feat_channels, H/4, W/4] per stack (a list).
    """

    def __init__(self, num_stacks: int = 1, downsample_times: int = 5,
                 stage_channels: tuple[int, ...] = (256, 256, 384, 384, 384, 512),
                 stage_blocks: tuple[int, ...] = (2, 2, 2, 2, 2, 4),
                 feat_channels: int = 256) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        channels = stage_channels[0]
        self.num_stacks = num_stacks
        self.stem = nn.Sequential(ConvBN(3, 128, 7, stride=2), _basic_stage(128, 256, 1, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, stage_channels, stage_blocks)
            for _ in range(num_stacks))
        # mmpose builds one intermediate block even for a single stack (it is then unused);
        # kept so that parameter counts and checkpoints match upstream exactly, and frozen so
        # that DDP does not wait for gradients that never come.
        self.inters = _basic_stage(channels, channels, max(num_stacks - 1, 1))
        if num_stacks == 1:
            self.inters.requires_grad_(False)
        self.conv1x1s = nn.ModuleList(
            ConvBN(channels, channels, 1, relu=False) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(
            ConvBN(channels, feat_channels, 3) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(
            ConvBN(feat_channels, channels, 1, relu=False) for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = feat_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        inter = self.stem(x)
        features = []
        for index in range(self.num_stacks):
            feature = self.out_convs[index](self.hourglass_modules[index](inter))
            features.append(feature)
            if index < self.num_stacks - 1:
                inter = self.conv1x1s[index](inter) + self.remap_convs[index](feature)
                inter = self.inters[index](self.relu(inter))
        return features


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------
class DUCHead(nn.Module):
    """FastPose head: PixelShuffle(2), DUC x2, DUC x2, 3x3 conv; [N, C, h, w] -> [N, K, 8h, 8w].

    For C = 2048 the DUCs are 512 -> 1024 and 256 -> 512 (AlphaPose); every width scales with
    C, so C = 512 (ResNet-18/34) gives AlphaPose's small head 128 -> 256, 64 -> 128, 32 -> K.
    """

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__()
        width = in_channels // 4
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.duc1 = DUC(width, 2 * width)
        self.duc2 = DUC(width // 2, width)
        self.final_layer = nn.Conv2d(width // 4, num_joints, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.duc2(self.duc1(self.pixel_shuffle(x))))


class DeconvHead(nn.Module):
    """SimpleBaseline head: 3 x (4x4 stride-2 deconv, BN, ReLU) then a 1x1 conv to K joints.

    deconv_layers indices 0/1 (deconv/BN), 3/4, 6/7 as mmpose's TopdownHeatmapSimpleHead.
    """

    def __init__(self, in_channels: int, num_joints: int,
                 channels: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1,
                                          bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            in_channels = out_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, num_joints, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.deconv_layers(x))


class MultiStageHead(nn.Module):
    """A 1x1 conv per stack (mmpose's CPM / multi-stage head without deconvs)."""

    def __init__(self, in_channels: int, num_joints: int, num_stages: int) -> None:
        super().__init__()
        self.final_layers = nn.ModuleList(
            nn.Conv2d(in_channels, num_joints, 1) for _ in range(num_stages))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [layer(feature) for layer, feature in zip(self.final_layers, features)]


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
class FastPose(nn.Module):
    """AlphaPose FastPose: SE-ResNet + DUC head. [N, 3, H, W] -> [N, K, H/4, W/4]."""

    model_name = "fastpose"

    def __init__(self, num_joints: int = 17, depth: int = 50) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.backbone = ResNet(depth, se=True)
        self.head = DUCHead(self.backbone.out_channels, num_joints)
        # AlphaPose's _initialize: small output conv, PyTorch defaults elsewhere.
        nn.init.normal_(self.head.final_layer.weight, std=0.001)
        nn.init.zeros_(self.head.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


class SimpleBaseline(nn.Module):
    """ResNet + deconv head (Xiao et al. 2018). [N, 3, H, W] -> [N, K, H/4, W/4]."""

    model_name = "simplebaseline"

    def __init__(self, num_joints: int = 17, depth: int = 50) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.backbone = ResNet(depth)
        self.head = DeconvHead(self.backbone.out_channels, num_joints)
        _init_normal(self.head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


class Hourglass(nn.Module):
    """Stacked hourglass (mmpose HourglassNet + multi-stage head). [N, 3, H, W] -> [N, K, H/4, W/4].

    With num_stacks > 1 training mode returns the list of per-stack heatmaps (intermediate
    supervision); eval mode returns the last stack's.
    """

    model_name = "hourglass"

    def __init__(self, num_joints: int = 16, num_stacks: int = 1) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.backbone = HourglassNet(num_stacks)
        self.head = MultiStageHead(self.backbone.out_channels, num_joints, num_stacks)
        _init_normal(self)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        heatmaps = self.head(self.backbone(x))
        if self.training and len(heatmaps) > 1:
            return heatmaps
        return heatmaps[-1]


def _init_normal(module: nn.Module) -> None:
    """mmpose's init: conv / deconv weights N(0, 0.001), biases 0, BN weight 1 bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


MODELS: dict[str, type[nn.Module]] = {
    "fastpose": FastPose,
    "hourglass": Hourglass,
    "simplebaseline": SimpleBaseline,
}


def build_model(name: Any, **kwargs: Any) -> nn.Module:
    """Build a model by name (a key of MODELS), from a Params (its .model), or a ModelParams.

    kwargs (num_joints, depth, num_stacks) override the params. The weights are the
    initialization: loading any (model.pretrained, model.init_checkpoint, a checkpoint) is
    posecore.checkpoints' job (load_model).
    """
    model_params = getattr(name, "model", name)
    settings: dict[str, Any] = {}
    if dataclasses.is_dataclass(model_params) and not isinstance(model_params, type):
        settings = dataclasses.asdict(model_params)
        name = settings.pop("name")
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
