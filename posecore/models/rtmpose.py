"""RTMPose (Jiang et al., 2023): a CSPNeXt backbone and the RTMCC head, predicting SimCC vectors.

images [N, 3, H, W] -> (simcc_x [N, K, W * split_ratio], simcc_y [N, K, H * split_ratio]), a
tuple in training and in eval mode (decoded by posecore.codec.simcc). H and W must be multiples
of 32 (the head flattens the stride-32 feature map: its MLP is sized for one input size).

- Backbone: mmpose's CSPNeXt, arch P5 (RTMDet's), with channel attention in every CSP layer,
  expand ratio 0.5, SiLU, BatchNorm (eps 1e-5, momentum 0.1: RTMPose's configs ask for SyncBN
  with its defaults), only the last stage's output. The variant sets depth and width:
  t 0.167 / 0.375, s 0.33 / 0.5, m 0.67 / 0.75, l 1 / 1.
- Head (mmpose's RTMCCHead): a 7x7 conv to K channels, each joint's flattened map through
  ScaleNorm + a linear layer to 256 dims, one gated attention unit (GAU: s 128, expansion 2,
  SiLU, ScaleNorm, no relative bias, no rotary encoding) across the K joint tokens, then one
  linear classifier per axis.

Parameter names are mmpose 1.x's (`backbone.stem.0.conv.weight`, `backbone.stage4.1.conv1...`,
`head.final_layer`, `head.mlp.0.g`, `head.gau.uv`, `head.cls_x`, ...), so its checkpoints load
as they are.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

# (deepen, widen) per variant, as in rtmpose-{t,s,m,l}_8xb256-420e_coco-256x192
RTMPOSE_VARIANTS = {"t": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75), "l": (1.0, 1.0)}
# CSPNeXt P5 stages: in channels, out channels, blocks, identity in blocks, spatial pyramid pooling
CSPNEXT_P5 = (
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
)
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


class ConvBNAct(nn.Sequential):
    """mmcv's ConvModule as CSPNeXt uses it: conv (no bias) -> BN -> SiLU; keys conv.*, bn.*."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(
                    in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
                ),
                bn=nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
                activate=nn.SiLU(inplace=True),
            )
        )


class DepthwiseSeparable(nn.Sequential):
    """Depthwise k x k ConvBNAct then pointwise 1x1 ConvBNAct (keys depthwise_conv, pointwise_conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            OrderedDict(
                depthwise_conv=ConvBNAct(in_channels, in_channels, kernel_size, groups=in_channels),
                pointwise_conv=ConvBNAct(in_channels, out_channels, 1),
            )
        )


class CSPNeXtBlock(nn.Module):
    """3x3 ConvBNAct, then a depthwise-separable 5x5, plus the input when `identity`."""

    def __init__(self, channels: int, identity: bool, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.conv2 = DepthwiseSeparable(channels, channels, kernel_size)
        self.identity = identity

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.identity else out


class ChannelAttention(nn.Module):
    """x * hardsigmoid(1x1 conv (with bias) of the global average): one gate per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: two 1x1 branches of half the channels, blocks on the main one,
    concatenated (main first), channel attention, 1x1 back to `channels`."""

    def __init__(self, channels: int, blocks: int, identity: bool, expand_ratio: float = 0.5) -> None:
        super().__init__()
        middle = int(channels * expand_ratio)
        self.main_conv = ConvBNAct(channels, middle, 1)
        self.short_conv = ConvBNAct(channels, middle, 1)
        self.final_conv = ConvBNAct(2 * middle, channels, 1)
        self.blocks = nn.Sequential(*(CSPNeXtBlock(middle, identity) for _ in range(blocks)))
        self.attention = ChannelAttention(2 * middle)

    def forward(self, x: Tensor) -> Tensor:
        merged = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        return self.final_conv(self.attention(merged))


class SPPBottleneck(nn.Module):
    """1x1 to half the channels, concatenated with its 5/9/13 max-pools (stride 1), 1x1 out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes=(5, 9, 13)) -> None:
        super().__init__()
        middle = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, middle, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvBNAct(middle * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.poolings)], dim=1))


class CSPNeXt(nn.Module):
    """CSPNeXt P5: a 3-conv stem (stride 2) and 4 stages (stride 2 each): [N, 3, H, W] ->
    [N, C, H/32, W/32] with C = int(1024 * widen)."""

    def __init__(self, deepen: float, widen: float) -> None:
        super().__init__()
        stem = int(CSPNEXT_P5[0][0] * widen)
        self.stem = nn.Sequential(
            ConvBNAct(3, stem // 2, 3, stride=2), ConvBNAct(stem // 2, stem // 2, 3), ConvBNAct(stem // 2, stem, 3)
        )
        for index, (in_channels, out_channels, blocks, identity, spp) in enumerate(CSPNEXT_P5, start=1):
            in_channels, out_channels = int(in_channels * widen), int(out_channels * widen)
            layers: list[nn.Module] = [ConvBNAct(in_channels, out_channels, 3, stride=2)]
            if spp:
                layers.append(SPPBottleneck(out_channels, out_channels))
            layers.append(CSPLayer(out_channels, max(round(blocks * deepen), 1), identity))
            self.add_module(f"stage{index}", nn.Sequential(*layers))
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index in range(1, len(CSPNEXT_P5) + 1):
            x = getattr(self, f"stage{index}")(x)
        return x


class ScaleNorm(nn.Module):
    """x / max(||x||_2 / sqrt(dim), eps) * g over the last axis; g one learned scalar."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Elementwise learned scale (the GAU's residual scale)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class GatedAttentionUnit(nn.Module):
    """RTMCCBlock (self-attention, no relative bias): tokens [N, T, dims] -> [N, T, dims].

    ScaleNorm, one linear to (u [e], v [e], base [s]) through SiLU, q and k = base * gamma + beta,
    attention relu(q k^T / sqrt(s))^2, out = o(u * (attention v)) + res_scale * input.
    """

    def __init__(self, dims: int, s: int = 128, expansion: int = 2) -> None:
        super().__init__()
        self.s, self.e = s, int(dims * expansion)
        # registered in upstream's order, so state_dict keys come in its order too
        self.o = nn.Linear(self.e, dims, bias=False)
        self.uv = nn.Linear(dims, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.rand(2, s))
        self.beta = nn.Parameter(torch.rand(2, s))
        self.ln = ScaleNorm(dims)
        self.act_fn = nn.SiLU(inplace=True)
        self.res_scale = Scale(dims)
        nn.init.xavier_uniform_(self.uv.weight)

    def forward(self, tokens: Tensor) -> Tensor:
        uv = self.act_fn(self.uv(self.ln(tokens)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta
        q, k = torch.unbind(base, dim=2)
        kernel = torch.square(torch.relu(torch.bmm(q, k.permute(0, 2, 1)) / math.sqrt(self.s)))
        return self.res_scale(tokens) + self.o(u * torch.bmm(kernel, v))


class RTMCCHead(nn.Module):
    """features [N, C, H/32, W/32] -> (simcc_x [N, K, Wx], simcc_y [N, K, Wy])."""

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        input_size: tuple[int, int],
        split_ratio: float = 2.0,
        kernel_size: int = 7,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        width, height = input_size
        self.final_layer = nn.Conv2d(in_channels, num_joints, kernel_size, padding=kernel_size // 2)
        tokens = (width // 32) * (height // 32)
        self.mlp = nn.Sequential(ScaleNorm(tokens), nn.Linear(tokens, hidden, bias=False))
        self.gau = GatedAttentionUnit(hidden)
        self.cls_x = nn.Linear(hidden, int(width * split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden, int(height * split_ratio), bias=False)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.gau(self.mlp(torch.flatten(self.final_layer(features), 2)))
        return self.cls_x(tokens), self.cls_y(tokens)


class RTMPose(nn.Module):
    """CSPNeXt + RTMCC head: [N, 3, H, W] -> (simcc_x [N, K, W * 2], simcc_y [N, K, H * 2]).

    variant t | s | m | l; input_size (w, h), multiples of 32; split_ratio bins per input pixel.
    """

    model_name = "rtmpose"

    def __init__(
        self, num_joints: int = 17, variant: str = "m", input_size=(192, 256), split_ratio: float = 2.0
    ) -> None:
        super().__init__()
        if variant not in RTMPOSE_VARIANTS:
            raise ValueError(f"RTMPose variant must be one of {sorted(RTMPOSE_VARIANTS)}, got {variant!r}")
        width, height = (int(v) for v in input_size)
        if width % 32 or height % 32:
            raise ValueError(f"RTMPose needs an input size (w, h) in multiples of 32, got {(width, height)}")
        self.num_joints, self.variant = num_joints, variant
        self.input_size, self.split_ratio = (width, height), float(split_ratio)
        self.backbone = CSPNeXt(*RTMPOSE_VARIANTS[variant])
        self.head = RTMCCHead(self.backbone.out_channels, num_joints, (width, height), split_ratio)
        _init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.backbone(x))


def _init_weights(model: RTMPose) -> None:
    """mmpose's initialization: backbone convs Kaiming-uniform (a = sqrt 5, PyTorch's default)
    with zero biases; head convs N(0, 0.001), head linears N(0, 0.01), zero biases."""
    for module in model.backbone.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for module in model.head.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=0.001 if isinstance(module, nn.Conv2d) else 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
