"""Building blocks shared by the model families: convs with upstream state_dict names, and mmpose's init."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """The projection shortcut: named downsample.0 (conv) and downsample.1 (BN) as upstream."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class ConvBN(nn.Sequential):
    """mmpose's ConvModule: conv (no bias) -> BN -> optional in-place ReLU; keys conv.*, bn.*."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = True
    ) -> None:
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(
                in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
            ),
            "bn": nn.BatchNorm2d(out_channels),
        }
        if relu:
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(OrderedDict(layers))


def init_normal(module: nn.Module) -> None:
    """mmpose's init: conv / deconv weights N(0, 0.001), biases 0, BN weight 1 bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
