"""AlphaPose's FastPose: an SE-ResNet backbone, PixelShuffle, then two DUC upsamplers."""

from __future__ import annotations

from torch import Tensor, nn

from posecore.models.layers import conv3x3
from posecore.models.resnet import ResNet


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


class DUCHead(nn.Module):
    """FastPose head: PixelShuffle(2), DUC x2, DUC x2, 3x3 conv; [N, C, h, w] -> [N, K, 8h, 8w].

    For C = 2048 the DUCs are 512 -> 1024 and 256 -> 4 * conv_dim (AlphaPose's CONV_DIM: 128,
    or 256 in its Halpe-136 model), then conv_dim -> K. Every width scales with C, so C = 512
    (ResNet-18/34) gives AlphaPose's small head 128 -> 256, 64 -> 128, 32 -> K.
    """

    def __init__(self, in_channels: int, num_joints: int, conv_dim: int = 128) -> None:
        super().__init__()
        width = in_channels // 4
        out_channels = conv_dim * in_channels // 2048
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.duc1 = DUC(width, 2 * width)
        self.duc2 = DUC(width // 2, 4 * out_channels)
        self.final_layer = nn.Conv2d(out_channels, num_joints, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.duc2(self.duc1(self.pixel_shuffle(x))))


class FastPose(nn.Module):
    """AlphaPose FastPose: SE-ResNet + DUC head. [N, 3, H, W] -> [N, K, H/4, W/4].

    depth: AlphaPose's NUM_LAYERS; conv_dim: its CONV_DIM (128 or 256), the last DUC's width.
    """

    model_name = "fastpose"

    def __init__(self, num_joints: int = 17, depth: int = 50, conv_dim: int = 128) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.backbone = ResNet(depth, se=True)
        self.head = DUCHead(self.backbone.out_channels, num_joints, conv_dim)
        # AlphaPose's _initialize: small output conv, PyTorch defaults elsewhere.
        nn.init.normal_(self.head.final_layer.weight, std=0.001)
        nn.init.zeros_(self.head.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
