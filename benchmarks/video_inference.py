"""Video inference speed: frames/s and ms per stage, PyTorch against the ONNX pose backend.

    .venv/bin/python benchmarks/video_inference.py [--params fastpose] [--checkpoint CKPT]
        [--frames 48] [--size 640 480] [--threads N] [--device cpu|cuda] [--set KEY=VALUE ...]

The source is posecore's synthetic walking video (three people, data.make_synthetic_video) and
the detector its detections file, so the detector stage is a lookup and the rest is what
posecore.infer itself costs. The pose model has --checkpoint's weights, or those it is built
with (the timing is the same); it is exported to ONNX in a temp folder for the second backend.
Each backend runs the video once to warm up, then once timed with the .mp4 written. The pose
stage is crop + forward + decode; its overhead is (crop + decode) / forward, the time spent
beyond the model's batched forward. Prints a markdown table; timings are not a test.

Then smoothing (infer.smoothing none against one_euro, the PyTorch backend, the params'
infer.smoothing_min_cutoff / infer.smoothing_beta): the mean keypoint acceleration (px/frame^2,
each track's consecutive frames) and the mean error against the video's truth (visible joints of
the person whose box the result's box overlaps most), and whether the track ids stay the same.
Smoothing is judged on a trained model (--checkpoint, e.g. make demo's
outputs/demo/checkpoints/best.pt with --params demo): an untrained model's keypoints are noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from posecore.data import make_synthetic_video
from posecore.detect import box_iou
from posecore.export import export_onnx
from posecore.inference import infer
from posecore.models import build_model
from posecore.params import load_params
from posecore.smoothing import mean_acceleration, result_tracks

OVERHEAD_AIM = 0.15
STAGES = ("read", "detect", "crop", "forward", "decode", "track", "write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="fastpose", help="params name or path")
    parser.add_argument("--checkpoint", help="pose weights (default: the model as built)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default=None, help="PyTorch device (default: posecore's choice)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override, YAML value, e.g. eval.batch_size=32",
    )
    args = parser.parse_args()
    params = load_params(args.params, dict(_override(text) for text in args.set))
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = make_synthetic_video(folder / "clip", num_frames=args.frames, size=tuple(args.size))
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = folder / "weights.pt"
            torch.save(build_model(params).state_dict(), checkpoint)
        onnx_path = folder / "pose.onnx"
        export_onnx(params, checkpoint, onnx_path, parity_batch_sizes=())
        rows = []
        run = {"source": clip["video"], "detector": clip["detections"], "device": args.device, "progress": False}
        for backend, weights in (("pytorch", checkpoint), ("onnxruntime", onnx_path)):
            infer(params, weights, **run, out_dir=folder / f"{backend}-warmup", draw=False)
            rows.append(infer(params, weights, **run, out_dir=folder / backend))
        truth = json.loads(clip["truth"].read_text())
        smoothing = {}
        for mode in ("none", "one_euro"):
            done = infer(params, checkpoint, **run, out_dir=folder / f"smoothing-{mode}", draw=False, smoothing=mode)
            results = json.loads(Path(done["results"]).read_text())
            smoothing[mode] = (mean_acceleration(result_tracks(results)), _truth_error(results, truth), results)

    w, h = params.data.input_size
    summary = rows[0]
    print(
        f"{params.model.name} ({params.name}), input {w}x{h}, batch {params.eval.batch_size}, "
        f"{args.threads} threads, device {args.device or 'default'}; {summary['frames']} frames of "
        f"{args.size[0]}x{args.size[1]}, {summary['persons']} persons, {summary['tracks']} tracks; "
        f"torch {torch.__version__}"
    )
    print(
        "| backend | end to end (frames/s) | pose stage (frames/s) | pose (persons/s) | "
        + " | ".join(f"{stage} (ms/frame)" for stage in STAGES)
        + " | pose overhead |"
    )
    print("|---" * (5 + len(STAGES)) + "|")
    for row in rows:
        overhead = row["pose_overhead"]
        verdict = (
            ""
            if overhead is None
            else (" (within" if overhead < OVERHEAD_AIM else " (above") + f" the {OVERHEAD_AIM:.0%} aim)"
        )
        print(
            f"| {row['pose_backend']} | {row['fps']['end_to_end']:.2f} | {row['fps']['pose']:.2f} | "
            f"{row['persons_per_s']['pose']:.1f} | "
            + " | ".join(f"{row['ms_per_frame'][stage]:.2f}" for stage in STAGES)
            + f" | {overhead:.1%}{verdict} |"
        )
    raw, smooth = smoothing["none"], smoothing["one_euro"]
    same_ids = [(r["image_id"], r["idx"]) for r in raw[2]] == [(r["image_id"], r["idx"]) for r in smooth[2]]
    print(
        f"\nsmoothing (One-Euro, min_cutoff {params.infer.smoothing_min_cutoff:g} Hz, beta "
        f"{params.infer.smoothing_beta:g}; {args.checkpoint or 'untrained weights'}), same track ids: {same_ids}"
    )
    print("| keypoints | mean acceleration (px/frame^2) | mean error against the truth (px) |")
    print("|---|---|---|")
    for name, (acceleration, error, _) in (("raw", raw), ("one_euro", smooth)):
        print(f"| {name} | {acceleration:.3f} | {error:.2f} |")
    print(f"acceleration {smooth[0] / raw[0] - 1:+.0%}, error {smooth[1] - raw[1]:+.2f} px")


def _truth_error(results: list[dict], truth: dict) -> float:
    """Mean distance (px) of the results' visible joints to the true person their box overlaps most."""
    errors = []
    for frame in range(truth["frames"]):
        rows = [r for r in results if r["image_id"] == f"{frame}.jpg"]
        people = [p for p in truth["people"] if p["frame"] == frame]
        if not rows or not people:
            continue
        boxes = [
            np.array([[x, y, x + w, y + h] for x, y, w, h in b])
            for b in ([r["box"] for r in rows], [p["bbox"] for p in people])
        ]
        for row, overlaps in zip(rows, box_iou(*boxes)):
            if overlaps.max() < 0.5:
                continue  # the false positive
            person = np.reshape(people[int(overlaps.argmax())]["keypoints"], (-1, 3))
            predicted = np.reshape(row["keypoints"], (-1, 3))[:, :2]
            visible = person[:, 2] > 0
            errors.extend(np.linalg.norm(predicted[visible] - person[visible, :2], axis=1))
    return float(np.mean(errors)) if errors else float("nan")


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--set {text!r}: expected KEY=VALUE, e.g. eval.batch_size=32")
    return key, yaml.safe_load(value)


if __name__ == "__main__":
    main()
