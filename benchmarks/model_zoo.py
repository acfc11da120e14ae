"""The model zoo on the CPU: parameters, GFLOPs and persons/s (PyTorch eager and onnxruntime,
batch 1 and 8) of every model family build_model knows, at 256x192 (Hourglass-52 at 256x256),
next to each model's published COCO val AP.

    .venv/bin/python benchmarks/model_zoo.py [--models hrnet rtmpose ...] [--repeats 3] [--threads N]

Each row exports the model as built (the weights do not change the timing) to a temporary ONNX
file and times both runtimes alternately (posecore.export.latency_table: median of --repeats after
one warm-up). A family without an entry in ZOO gets one row from its params shortcut. Prints a
markdown table; on a shared machine the persons/s are indicative, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from posecore.export import export_onnx, latency_table
from posecore.models import MODELS, build_model, model_summary
from posecore.params import SHORTCUTS, load_params

COCO_256x192 = {
    "data.dataset": "coco",
    "model.num_joints": 17,
    "data.input_size": [192, 256],
    "data.heatmap_size": [48, 64],
}
# family: [(label, params overrides, published COCO val AP and its source)]; the params file is the
# family's shortcut, or PARAMS_FILES'
PARAMS_FILES = {"fastpose_duc": "fastpose_duc152_coco"}
ZOO = {
    "fastpose": [("FastPose SE-ResNet-50", {"model.depth": 50}, "72.24 (posecore seed run, GT boxes)")],
    "fastpose_duc": [("FastPose_DUC SE-ResNet-152", {}, "-")],
    "simplebaseline": [("SimpleBaseline ResNet-50", {"model.depth": 50}, "71.8 (mmpose)")],
    "hrnet": [
        ("HRNet-W32", {"model.width": 32}, "74.9 / UDP 76.2 (mmpose)"),
        ("HRNet-W48", {"model.width": 48}, "75.6 / UDP 76.8 (mmpose)"),
    ],
    "hourglass": [
        ("Hourglass-52 (256x256)", {"data.input_size": [256, 256], "data.heatmap_size": [64, 64]}, "72.6 (mmpose)")
    ],
    "rtmpose": [
        (f"RTMPose-{variant}", {"model.variant": variant}, f"{ap} (mmpose, COCO only)")
        for variant, ap in (("t", 68.2), ("s", 71.6), ("m", 74.6), ("l", 75.8))
    ],
}


def zoo_rows(families: list[str]) -> list[tuple[str, object, str]]:
    """(label, Params, published AP) for every configuration of the chosen families."""
    rows = []
    for family in families:
        entries = ZOO.get(family, [(family, {}, "-")])
        base = PARAMS_FILES.get(family) or SHORTCUTS.get(family, "fastpose")
        for label, overrides, published in entries:
            geometry = {} if family == "rtmpose" else COCO_256x192  # RTMPose's file is COCO 256x192
            params = load_params(base, {**geometry, "model.name": family, **overrides})
            rows.append((label, params, published))
    return rows


def measure(params, folder: Path, repeats: int, threads: int) -> dict:
    """params, gflops and persons/s per runtime and batch; when the export fails, the error
    instead of the timings (the row still prints)."""
    summary = model_summary(build_model(params), params.data.input_size)
    onnx_path = folder / f"{params.model.name}.onnx"
    try:
        export_onnx(params, None, onnx_path, parity_batch_sizes=())
    except Exception as error:  # a family that does not export yet must not stop the table
        return {**summary, "error": f"export failed: {type(error).__name__}: {error}"}
    timings = {
        row["batch"]: row
        for row in latency_table(params, onnx_path, batch_sizes=(1, 8), repeats=repeats, warmup=1, threads=threads)
    }
    persons = {
        f"{runtime}_{batch}": batch * 1000.0 / timings[batch][f"{runtime}_ms"]
        for runtime in ("pytorch", "onnxruntime")
        for batch in (1, 8)
    }
    return {**summary, **persons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=sorted(MODELS),
        choices=sorted(MODELS),
        help="families (default: every one build_model knows)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    print(f"CPU, {args.threads} threads; persons/s = batch / median latency\n")
    print("| model | input (w x h) | parameters | GFLOPs | PyTorch b1 | PyTorch b8 | ORT b1 | ORT b8 | published AP |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, params, published in zoo_rows(args.models):
            figures = measure(params, Path(tmp), args.repeats, args.threads)
            w, h = params.data.input_size
            if "error" in figures:
                print(
                    f"| {label} | {w} x {h} | {figures['params']:,} | {figures['gflops']:.2f} | - | - | - | - "
                    f"| {published} ({figures['error']}) |",
                    flush=True,
                )
                continue
            print(
                f"| {label} | {w} x {h} | {figures['params']:,} | {figures['gflops']:.2f} | "
                f"{figures['pytorch_1']:.1f} | {figures['pytorch_8']:.1f} | {figures['onnxruntime_1']:.1f} | "
                f"{figures['onnxruntime_8']:.1f} | {published} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
