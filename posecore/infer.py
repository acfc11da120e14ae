"""`python -m posecore.infer SOURCE --checkpoint CKPT [--params NAME] [--run-name RUN] [--detector DET]
[--out DIR] [--no-track] [--no-video] [--flip]`: the command line of posecore.inference.infer.

In Python call `posecore.infer(...)` (or posecore.inference.infer); this module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posecore.errors import ParamsError
from posecore.files import parse_yaml
from posecore.inference import infer
from posecore.params import load_params
from posecore.runs import Run


def main(argv: list[str] | None = None) -> int:
    """`python -m posecore.infer SOURCE --checkpoint CKPT [...]`: infer() from a shell."""
    parser = argparse.ArgumentParser(
        prog="python -m posecore.infer", description="Poses of every person in an image, a folder of images or a video."
    )
    parser.add_argument("source", help="an image, a folder of images (sorted by name) or a video file")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="posecore / AlphaPose / mmpose checkpoint, best or last of --run-name, or a posecore .onnx",
    )
    parser.add_argument(
        "--params",
        default=None,
        help="params name in params/ or a path (default: the saved params of --run-name, else "
        "fastpose; not needed with an .onnx)",
    )
    parser.add_argument(
        "--detector",
        default="whole-image",
        help="whole-image (default), a detections .json (COCO results) or a YOLO person detector .onnx",
    )
    parser.add_argument("--out", default=None, help="output folder (default: outputs/<run>/infer/<source stem>)")
    parser.add_argument("--run-name", default=None, help="run whose best/last checkpoint to use; default output run")
    parser.add_argument("--no-track", action="store_true", help="number people per frame instead of tracking them")
    parser.add_argument("--no-video", action="store_true", help="write no drawn output (no .mp4, no vis/)")
    parser.add_argument("--flip", action="store_true", help="flip test: average with the mirrored crops")
    parser.add_argument("--batch-size", type=int, default=None, help="people per pose batch (default eval.batch_size)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override, e.g. --set infer.detector_score_thr=0.4 (repeatable; YAML values)",
    )
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. infer.track_max_missed=5")
        try:
            overrides[key.strip()] = parse_yaml(value, f"--set {item}")
        except ParamsError as error:
            parser.error(str(error))
    params = (
        load_params(cli_params(args.params, args.run_name), overrides)
        if (args.params or args.run_name or overrides or not is_onnx(args.checkpoint))
        else None
    )
    infer(
        params,
        args.checkpoint,
        args.source,
        detector=args.detector,
        out_dir=args.out,
        track=False if args.no_track else None,
        flip=args.flip,
        draw=not args.no_video,
        run_name=args.run_name,
        batch_size=args.batch_size,
    )
    return 0


def cli_params(params: str | None, run_name: str | None) -> Any:
    """--params, else the run's saved params (its keypoint set and codec), else fastpose's."""
    if params:
        return params
    if run_name and Run(run_name).exists():
        return Run(run_name).params()
    return "fastpose"


def is_onnx(checkpoint: str) -> bool:
    return str(checkpoint).lower().endswith(".onnx")


if __name__ == "__main__":
    sys.exit(main())
