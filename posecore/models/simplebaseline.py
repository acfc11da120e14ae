"""Xiao et al.'s SimpleBaseline: a ResNet and three stride-2 deconvolutions."""

from __future__ import annotations

from torch import Tensor, nn

from posecore.models.layers import init_normal
from posecore.models.resnet import ResNet


class DeconvHead(nn.Module):
    """SimpleBaseline head: 3 x (4x4 stride-2 deconv, BN, ReLU) then a 1x1 conv to K joints.

    deconv_layers indices 0/1 (deconv/BN), 3/4, 6/7 as mmpose's TopdownHeatmapSimpleHead.
    """

    def __init__(self, in_channels: int, num_joints: int, channels: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, num_joints, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.deconv_layers(x))


class SimpleBaseline(nn.Module):
    """ResNet + deconv head (Xiao et al. 2018). [N, 3, H, W] -> [N, K, H/4, W/4]."""

    model_name = "simplebaseline"

    def __init__(self, num_joints: int = 17, depth: int = 50) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.backbone = ResNet(depth)
        self.head = DeconvHead(self.backbone.out_channels, num_joints)
        init_normal(self.head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
