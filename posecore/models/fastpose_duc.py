"""AlphaPose's FastPose_DUC: a ResNet (SE or plain) and three DUC stages, each PixelShuffle(2)
then a stack of 3x3 conv + BN + ReLU (AlphaPose's STAGE1-3 NUM_CONV), then a 3x3 conv to K.

Widths (AlphaPose's, for the 2048-channel ResNet-50/101/152): 2048 -> shuffle 512 -> 1024,
1024 -> 256 -> 512, 512 -> 128 -> 256, 256 -> K. Each stage is a Sequential whose indices are
AlphaPose's (0 the shuffle; 1, 2, 3 the first conv, BN, ReLU; ...), so its checkpoints map by
prefix alone (posecore.checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from posecore.models.layers import conv3x3
from posecore.models.resnet import ResNet

BACKBONES = ("se-resnet", "resnet")


class DUCStage(nn.Sequential):
    """[N, C, H, W] -> PixelShuffle(2) -> (num_convs - 1) x (conv C/4 -> C/4, BN, ReLU) ->
    (conv C/4 -> out_channels, BN, ReLU): [N, out_channels, 2H, 2W]."""

    def __init__(self, in_channels: int, out_channels: int, num_convs: int) -> None:
        if num_convs < 1:
            raise ValueError(f"a DUC stage needs at least one conv, got {num_convs}")
        channels = in_channels // 4
        layers: list[nn.Module] = [nn.PixelShuffle(2)]
        for index in range(num_convs):
            width = out_channels if index == num_convs - 1 else channels
            layers += [conv3x3(channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class DUCStagesHead(nn.Module):
    """Three DUC stages then a 3x3 conv: [N, C, h, w] -> [N, K, 8h, 8w]."""

    def __init__(self, in_channels: int, num_joints: int, num_convs: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        if len(num_convs) != 3:
            raise ValueError(f"FastPose_DUC has three DUC stages; got conv counts {list(num_convs)}")
        self.duc1 = DUCStage(in_channels, in_channels // 2, num_convs[0])
        self.duc2 = DUCStage(in_channels // 2, in_channels // 4, num_convs[1])
        self.duc3 = DUCStage(in_channels // 4, out_channels, num_convs[2])
        self.final_layer = nn.Conv2d(out_channels, num_joints, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.duc3(self.duc2(self.duc1(x))))


class FastPoseDUC(nn.Module):
    """AlphaPose FastPose_DUC. [N, 3, H, W] -> [N, K, H/4, W/4].

    depth: NUM_LAYERS (50, 101, 152); backbone: BACKBONE ("se-resnet" or "resnet");
    duc_convs: STAGE1-3 NUM_CONV.
    """

    model_name = "fastpose_duc"

    def __init__(
        self, num_joints: int = 17, depth: int = 152, backbone: str = "se-resnet", duc_convs: Sequence[int] = (4, 2, 1)
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"FastPose_DUC backbone must be one of {BACKBONES}, got {backbone!r}")
        if depth < 50:
            raise ValueError(f"FastPose_DUC needs a 2048-channel ResNet (depth 50, 101, 152), got {depth}")
        self.num_joints = num_joints
        self.backbone = ResNet(depth, se=backbone == "se-resnet")
        self.head = DUCStagesHead(self.backbone.out_channels, num_joints, duc_convs)
        # AlphaPose's _initialize: small output conv, PyTorch defaults elsewhere.
        nn.init.normal_(self.head.final_layer.weight, std=0.001)
        nn.init.zeros_(self.head.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
