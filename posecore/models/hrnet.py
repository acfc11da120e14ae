"""HRNet (Sun et al. 2019) for top-down pose: mmpose's HRNet backbone and a 1x1 heatmap head.

Four stages keep a high-resolution branch alive and add a branch at half the resolution per stage
(widths w, 2w, 4w, 8w at 1/4 .. 1/32 of the input); every HR module exchanges information between
branches (fuse layers). The last module keeps only the highest-resolution output, which a 1x1
conv turns into heatmaps [N, K, H/4, W/4]. HRNet-W32 / W48 at 256x192: model.width 32 / 48.

State_dict names are mmpose's (backbone: conv1, bn1, conv2, bn2, layer1, transition1..3,
stage2..4.<module>.branches / fuse_layers; head.final_layer), which are also the official HRNet
repository's without the `backbone.` / `head.` prefixes, so both checkpoint families map by prefix
(posecore.checkpoints).
"""

from __future__ import annotations

from torch import Tensor, nn

from posecore.models.layers import conv1x1_bn, conv3x3, init_normal
from posecore.models.resnet import BasicBlock, Bottleneck
from posecore.models.simplebaseline import DeconvHead

HRNET_WIDTHS = (18, 32, 48)  # the published widths (mmpose configs: w32, w48; w18 in HRNet's own)
STEM_CHANNELS = 64
# (HR modules, branches) of stages 2-4; every branch is 4 BasicBlocks. Stage 1 (`layer1`) is four
# Bottlenecks at 64 channels (256 out) on the 1/4-resolution stem output.
STAGES = ((1, 2), (4, 3), (3, 4))
BLOCKS_PER_BRANCH = 4


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, relu: bool) -> nn.Sequential:
    """conv (no bias) at indices 0, BN at 1, optional ReLU at 2: upstream's Sequential layout."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _branch(channels: int, num_blocks: int) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(channels, channels) for _ in range(num_blocks)])


class HRModule(nn.Module):
    """Parallel branches (4 BasicBlocks each) then the exchange: output i sums every branch j
    brought to branch i's resolution and width (j > i: 1x1 conv + BN + nearest upsample x2^(j-i);
    j < i: (i - j) stride-2 3x3 convs, ReLU between them) followed by a ReLU.

    `outputs`: how many of the branches' fused maps the module returns (the last module of the
    network returns only the highest-resolution one). xs: list of [N, C_b, H_b, W_b].
    """

    def __init__(self, channels: list[int], outputs: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_branch(c, BLOCKS_PER_BRANCH) for c in channels)
        self.fuse_layers = (
            nn.ModuleList(
                nn.ModuleList(self._exchange(channels, j, i) for j in range(len(channels))) for i in range(outputs)
            )
            if len(channels) > 1
            else None
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _exchange(channels: list[int], source: int, target: int) -> nn.Module | None:
        if source == target:
            return None
        if source > target:
            return nn.Sequential(
                *_conv_bn(channels[source], channels[target], 1, 1, relu=False),
                nn.Upsample(scale_factor=2 ** (source - target), mode="nearest"),
            )
        steps = target - source
        return nn.Sequential(
            *[
                _conv_bn(
                    channels[source],
                    channels[target] if step == steps - 1 else channels[source],
                    3,
                    2,
                    relu=step < steps - 1,
                )
                for step in range(steps)
            ]
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for layers in self.fuse_layers:
            total = None
            for x, layer in zip(xs, layers):
                part = x if layer is None else layer(x)
                total = part if total is None else total + part
            fused.append(self.relu(total))
        return fused


class HRNetBackbone(nn.Module):
    """images [N, 3, H, W] -> [N, width, H/4, W/4] (the highest-resolution branch).

    H and W must be multiples of 32 (the 1/32 branch is upsampled x8 back onto the 1/4 one).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.conv1 = conv3x3(3, STEM_CHANNELS, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = conv3x3(STEM_CHANNELS, STEM_CHANNELS, stride=2)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        stage1_out = STEM_CHANNELS * Bottleneck.expansion
        self.layer1 = nn.Sequential(
            Bottleneck(STEM_CHANNELS, STEM_CHANNELS, downsample=conv1x1_bn(STEM_CHANNELS, stage1_out)),
            *[Bottleneck(stage1_out, STEM_CHANNELS) for _ in range(BLOCKS_PER_BRANCH - 1)],
        )
        previous = [stage1_out]
        for index, (num_modules, num_branches) in enumerate(STAGES, start=2):
            channels = [width * 2**b for b in range(num_branches)]
            setattr(self, f"transition{index - 1}", self._transition(previous, channels))
            last_stage = index == len(STAGES) + 1
            setattr(
                self,
                f"stage{index}",
                nn.Sequential(
                    *[
                        HRModule(channels, outputs=1 if last_stage and m == num_modules - 1 else num_branches)
                        for m in range(num_modules)
                    ]
                ),
            )
            previous = channels
        self.out_channels = width

    @staticmethod
    def _transition(previous: list[int], channels: list[int]) -> nn.ModuleList:
        """Existing branches: a 3x3 conv where the width changes (else None); the new branch: stride-2
        3x3 convs from the lowest-resolution input (keys transition<s>.<branch>.<step>.<0|1>)."""
        layers: list[nn.Module | None] = []
        for branch, width in enumerate(channels):
            if branch < len(previous):
                layers.append(None if previous[branch] == width else _conv_bn(previous[branch], width, 3, 1, relu=True))
                continue
            steps = branch + 1 - len(previous)
            layers.append(
                nn.Sequential(
                    *[
                        _conv_bn(previous[-1], width if step == steps - 1 else previous[-1], 3, 2, relu=True)
                        for step in range(steps)
                    ]
                )
            )
        return nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            inputs = []
            for branch, layer in enumerate(transition):
                if branch >= len(xs):  # a new, lower-resolution branch
                    inputs.append(layer(xs[-1]))
                else:
                    inputs.append(xs[branch] if layer is None else layer(xs[branch]))
            xs = stage(inputs)
        return xs[0]


class HRNet(nn.Module):
    """HRNet-W<width> + mmpose's HeatmapHead without deconvolutions (a 1x1 conv to K joints).

    [N, 3, H, W] -> heatmaps [N, K, H/4, W/4]; H, W multiples of 32.
    """

    model_name = "hrnet"

    def __init__(self, num_joints: int = 17, width: int = 32) -> None:
        super().__init__()
        if width not in HRNET_WIDTHS:
            raise ValueError(f"HRNet width must be one of {HRNET_WIDTHS}, got {width}")
        self.num_joints = num_joints
        self.backbone = HRNetBackbone(width)
        self.head = DeconvHead(width, num_joints, channels=())
        init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
