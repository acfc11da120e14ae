"""mmpose's stacked hourglass: HourglassNet (Hourglass-52 per stack) and a 1x1 conv per stack.

State_dict names follow mmpose (stem, hourglass_modules, out_convs, ...).
"""

from __future__ import annotations

from torch import Tensor, nn

from posecore.models.layers import ConvBN, conv1x1_bn, init_normal
from posecore.models.resnet import BasicBlock


def _basic_stage(
    in_channels: int, out_channels: int, num_blocks: int, stride: int = 1, project_last: bool = False
) -> nn.Sequential:
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

    def __init__(self, depth: int, stage_channels: tuple[int, ...], stage_blocks: tuple[int, ...]) -> None:
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

    def __init__(
        self,
        num_stacks: int = 1,
        downsample_times: int = 5,
        stage_channels: tuple[int, ...] = (256, 256, 384, 384, 384, 512),
        stage_blocks: tuple[int, ...] = (2, 2, 2, 2, 2, 4),
        feat_channels: int = 256,
    ) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        channels = stage_channels[0]
        self.num_stacks = num_stacks
        self.stem = nn.Sequential(ConvBN(3, 128, 7, stride=2), _basic_stage(128, 256, 1, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, stage_channels, stage_blocks) for _ in range(num_stacks)
        )
        # mmpose builds one intermediate block even for a single stack (it is then unused);
        # kept so that parameter counts and checkpoints match upstream exactly, and frozen so
        # that DDP does not wait for gradients that never come.
        self.inters = _basic_stage(channels, channels, max(num_stacks - 1, 1))
        if num_stacks == 1:
            self.inters.requires_grad_(False)
        self.conv1x1s = nn.ModuleList(ConvBN(channels, channels, 1, relu=False) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(ConvBN(channels, feat_channels, 3) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(ConvBN(feat_channels, channels, 1, relu=False) for _ in range(num_stacks - 1))
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


class MultiStageHead(nn.Module):
    """A 1x1 conv per stack (mmpose's CPM / multi-stage head without deconvs)."""

    def __init__(self, in_channels: int, num_joints: int, num_stages: int) -> None:
        super().__init__()
        self.final_layers = nn.ModuleList(nn.Conv2d(in_channels, num_joints, 1) for _ in range(num_stages))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [layer(feature) for layer, feature in zip(self.final_layers, features)]


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
        init_normal(self)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        heatmaps = self.head(self.backbone(x))
        if self.training and len(heatmaps) > 1:
            return heatmaps
        return heatmaps[-1]
