"""Print parameters and GFLOPs (torch.utils.flop_counter: a multiply-add counts 2) per model.

    .venv/bin/python benchmarks/model_summary.py [--models fastpose hourglass ...]

The counts run on meta tensors, so this takes seconds even for Hourglass-52 at 384x384.
"""

from __future__ import annotations

import argparse

from posecore.models import build_model, model_summary

# (label, model name, build kwargs, input size (w, h)): the upstream reference settings
CONFIGS = [
    ("FastPose ResNet-50, COCO", "fastpose", {"depth": 50, "num_joints": 17}, (192, 256)),
    ("FastPose ResNet-18, COCO (demo)", "fastpose", {"depth": 18, "num_joints": 17}, (192, 256)),
    ("FastPose ResNet-18, demo input", "fastpose", {"depth": 18, "num_joints": 17}, (96, 128)),
    ("FastPose ResNet-101, COCO", "fastpose", {"depth": 101, "num_joints": 17}, (192, 256)),
    ("FastPose ResNet-152, COCO", "fastpose", {"depth": 152, "num_joints": 17}, (192, 256)),
    (
        "FastPose ResNet-50 CONV_DIM 256, Halpe-136",
        "fastpose",
        {"depth": 50, "num_joints": 136, "conv_dim": 256},
        (192, 256),
    ),
    ("FastPose_DUC SE-ResNet-152, COCO", "fastpose_duc", {"depth": 152, "num_joints": 17}, (192, 256)),
    ("Hourglass-52, MPII", "hourglass", {"num_stacks": 1, "num_joints": 16}, (384, 384)),
    ("Hourglass-52, COCO", "hourglass", {"num_stacks": 1, "num_joints": 17}, (256, 256)),
    ("SimpleBaseline ResNet-50, COCO", "simplebaseline", {"depth": 50, "num_joints": 17}, (192, 256)),
    ("HRNet-W32, COCO", "hrnet", {"width": 32, "num_joints": 17}, (192, 256)),
    ("HRNet-W48, COCO", "hrnet", {"width": 48, "num_joints": 17}, (192, 256)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="only these model names")
    args = parser.parse_args()
    print(f"{'model':42} {'input (w x h)':>14} {'params':>14} {'GFLOPs':>9}")
    for label, name, kwargs, size in CONFIGS:
        if args.models and name not in args.models:
            continue
        summary = model_summary(build_model(name, **kwargs), size)
        print(f"{label:42} {f'{size[0]} x {size[1]}':>14} {summary['params']:>14,} {summary['gflops']:>9.2f}")


if __name__ == "__main__":
    main()
