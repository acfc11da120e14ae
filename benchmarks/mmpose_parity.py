"""Check posecore's reimplementations against mmpose 1.x's own modules (needs mmpose installed).

For each model: parameter counts (posecore vs mmpose), then seeded weights (tests/helpers'
randomized_model: random convs and BatchNorm statistics) saved as an mmpose 1.x checkpoint
({"state_dict", "meta"}, mmpose's keys), loaded strictly into mmpose's modules and through
posecore.checkpoints.load_model; both run a seeded batch at 256x192 and the max abs difference is
printed, then mmpose's output on the small input tests/test_hrnet.py uses (its checksums are what
the test pins) and the sha256 of the sorted "key shape" lines of the state_dict. HRNet is also
saved in the official HRNet repository's layout (no prefixes, module.-wrapped).

Run it from a posecore checkout with a Python that has mmpose (CI cannot: it prints figures and
exits non-zero on a mismatch):
    PYTHONPATH=$PWD /work/scratch/mmpose/bin/python benchmarks/mmpose_parity.py [hrnet-w32 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from posecore.checkpoints import load_model
from posecore.params import load_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import randomized_model  # noqa: E402  (the recipe the tests pin outputs of)

TOLERANCE = 1e-4
TEST_INPUT = (1, 3, 128, 96)  # tests/test_hrnet.py's seeded input (torch.Generator seed 1)
HRNET_STAGES = {  # mmpose's `extra` of td-hm_hrnet-w*_coco-256x192: (modules, branches)
    "stage2": (1, 2),
    "stage3": (4, 3),
    "stage4": (3, 4),
}
MODELS = {  # name: (params shortcut, overrides)
    "hrnet-w32": ("hrnet", {}),
    "hrnet-w48": ("hrnet", {"model.width": 48}),
    "simplebaseline-r50": ("simplebaseline", {}),
}


class MMPoseTopDown(nn.Module):
    """mmpose's backbone + head as TopdownPoseEstimator names them (backbone.*, head.*)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def mmpose_model(name: str) -> nn.Module:
    from mmpose.models.backbones import HRNet, ResNet
    from mmpose.models.heads import HeatmapHead

    if name.startswith("hrnet"):
        width = int(name.split("-w")[1])
        extra = {"stage1": dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(4,), num_channels=(64,))}
        for stage, (modules, branches) in HRNET_STAGES.items():
            extra[stage] = dict(
                num_modules=modules,
                num_branches=branches,
                block="BASIC",
                num_blocks=(4,) * branches,
                num_channels=tuple(width * 2**b for b in range(branches)),
            )
        return MMPoseTopDown(
            HRNet(extra=extra), HeatmapHead(in_channels=width, out_channels=17, deconv_out_channels=None)
        )
    return MMPoseTopDown(ResNet(depth=50), HeatmapHead(in_channels=2048, out_channels=17))


def layout_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the sorted "key (shape)" lines: one string pins every name and shape."""
    lines = sorted(f"{key} {tuple(value.shape)}" for key, value in state.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def check(name: str, workdir: Path) -> bool:
    shortcut, overrides = MODELS[name]
    params = load_params(shortcut, overrides)
    ours = randomized_model(params)
    theirs = mmpose_model(name)
    count_ours = sum(p.numel() for p in ours.parameters())
    count_theirs = sum(p.numel() for p in theirs.parameters())
    state = ours.state_dict()
    theirs.load_state_dict(state, strict=True)  # the same names, or this raises naming them
    theirs.eval()
    path = workdir / f"{name}.pth"
    torch.save({"meta": {"mmpose_version": "1.x"}, "state_dict": state}, path)
    loaded, fmt = load_model(params, path)
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), loaded(x)
        small = theirs(torch.randn(*TEST_INPUT, generator=torch.Generator().manual_seed(1)))
    diff = (expected - got).abs().max().item()
    ok = count_ours == count_theirs and diff <= TOLERANCE
    print(
        f"{name}: params posecore {count_ours:,} mmpose {count_theirs:,}; {fmt} checkpoint -> max abs "
        f"diff {diff:.2e} at {tuple(x.shape)} (|out| max {expected.abs().max():.3f}) "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    print(
        f"  mmpose output at {TEST_INPUT}: sum {small.sum():.6f}, abs sum {small.abs().sum():.6f}, "
        f"[0, 0, 0, :4] {[round(v, 6) for v in small[0, 0, 0, :4].tolist()]}"
    )
    print(f"  state_dict: {len(state)} keys, layout sha256 {layout_digest(state)}")
    if name.startswith("hrnet"):
        official = {
            ("final_layer." + k[len("head.final_layer.") :]) if k.startswith("head.") else k[len("backbone.") :]: v
            for k, v in state.items()
        }
        torch.save({f"module.{k}": v for k, v in official.items()}, workdir / "official.pth")
        loaded, fmt = load_model(params, workdir / "official.pth")
        with torch.no_grad():
            official_diff = (expected - loaded(x)).abs().max().item()
        print(f"  {fmt} layout ({len(official)} keys, module.-prefixed): max abs diff {official_diff:.2e}")
        ok = ok and official_diff <= TOLERANCE
    return ok


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        results = [check(name, Path(tmp)) for name in args.models]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
