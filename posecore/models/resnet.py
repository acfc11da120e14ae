"""ResNet backbones in torchvision's layout, plain or with AlphaPose's squeeze-excite gates.

State_dict names below the backbone are torchvision's (conv1, bn1, layer1.0.conv1, ..., plus
`se.fc1` / `se.fc2` in SE blocks), so ImageNet weights load as they are.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from posecore.models.layers import conv1x1_bn, conv3x3

RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


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

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None, se: bool = False
    ) -> None:
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

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None, se: bool = False
    ) -> None:
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
            stages.append(_resnet_stage(block, in_channels, channels, num_blocks, stride=1 if index == 0 else 2, se=se))
            in_channels = channels * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _resnet_stage(
    block: type[BasicBlock | Bottleneck], in_channels: int, channels: int, num_blocks: int, stride: int, se: bool
) -> nn.Sequential:
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = conv1x1_bn(in_channels, out_channels, stride)
    blocks = [block(in_channels, channels, stride, downsample, se=se and downsample is not None)]
    blocks += [block(out_channels, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)
