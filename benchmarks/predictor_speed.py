"""CPU persons/s of one RTMPose-t export: bare onnxruntime, Predictor fp32 and int8, and rtmlib.

    .venv/bin/python benchmarks/predictor_speed.py [--threads 1] [--people 1 13] [--seconds 20]
        [--image ../shared/samples/coco/val2017/000000196141.jpg] [--calibration FOLDER]

One RTMPose-t graph (random weights: they time as trained ones; exported with decode=False, so its
outputs are simcc_x and simcc_y as in the graphs rtmlib ships), one real photo and its detector's
boxes (the highest-scoring ones; repeated when the photo has fewer than asked), the same
onnxruntime thread count for all (intra-op --threads, inter-op 1), and per round each of these
on the same image and boxes, in turn, in a rotating order:

- bare:   session.run on the crops made beforehand (the network alone, batched);
- fp32:   Predictor.from_onnx(the fp32 file, threads=...): crop, forward (all people in one batch), decode;
- int8:   Predictor.from_onnx(the int8 file, threads=...), the file posecore.precision.quantize_int8
          writes, calibrated on the people of the shared COCO training images (or --calibration);
- rtmlib: rtmlib.RTMPose on the same fp32 file (one person per session.run, its own crop and
          decode), its session replaced by one with the same thread settings (rtmlib's own uses
          onnxruntime's default threads); left out when rtmlib is not installed.

Prints persons/s (people / median seconds per call) and the ratios, with the load average before
and after: on a shared machine, compare the ratios of one run, not persons/s across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "coco"
IMAGE = SAMPLES / "val2017" / "000000196141.jpg"
DETECTIONS = SAMPLES / "detections" / "person_detections_val2017.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads of every contender")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 13])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="timed seconds per people count (at least 5 rounds)"
    )
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument(
        "--detections",
        type=Path,
        default=DETECTIONS,
        help="COCO-results boxes; the image's own are used (its COCO id from the file name)",
    )
    parser.add_argument(
        "--calibration", help="int8 calibration images folder (default: the people of the shared COCO training split)"
    )
    parser.add_argument("--keep", type=Path, help="write the fp32 and int8 files into this folder")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    import cv2
    import onnxruntime as ort

    from posecore.predictor import Predictor

    ort.set_default_logger_severity(3)  # the quantizer's session warns about initializers it drops

    image = cv2.imread(str(args.image))
    if image is None:
        raise SystemExit(f"cannot read {args.image}")
    boxes = image_boxes(args.detections, args.image)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        fp32, int8, quantized = export_graphs(folder, args.calibration)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        bare = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
        bare_int8 = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        predictors = {
            "fp32": Predictor.from_onnx(fp32, device="cpu", threads=args.threads),
            "int8": Predictor.from_onnx(int8, device="cpu", threads=args.threads),
        }
        rtmlib = rtmlib_pose(fp32, options)

        print(
            f"RTMPose-t 256x192 (random weights), {args.image.name} {image.shape[1]}x{image.shape[0]}, "
            f"onnxruntime {ort.__version__} intra-op threads {args.threads}, OpenCV threads {cv2.getNumThreads()}"
        )
        print(f"int8: {quantized['size_ratio']:.2f}x the fp32 file; calibration {quantized['calibration']['source']}")
        print(f"rtmlib: {rtmlib[1]}")
        print(f"load average before: {loadavg()}")
        rows = []
        for people in args.people:
            chosen = np.resize(boxes, (people, 4))  # the first `people` boxes, repeated when fewer
            crops = predictors["fp32"].crops(image, chosen)[0]
            contenders = {  # each bound to this round's crops and boxes
                "bare fp32": lambda crops=crops: bare.run(None, {"image": crops}),
                "bare int8": lambda crops=crops: bare_int8.run(None, {"image": crops}),
                "Predictor fp32": lambda chosen=chosen: predictors["fp32"](image, chosen),
                "Predictor int8": lambda chosen=chosen: predictors["int8"](image, chosen),
            }
            if rtmlib[0] is not None:
                contenders["rtmlib fp32"] = lambda chosen=chosen: rtmlib[0](image, list(chosen))
            seconds, rounds = alternate(contenders, args.seconds)
            rows.append((people, {name: people / s for name, s in seconds.items()}, rounds))
        print(f"load average after: {loadavg()}\n")
        table(rows)


def image_boxes(detections: Path, image_path: Path) -> np.ndarray:
    """xyxy boxes [N, 4] of the image in a COCO-results file, best score first."""
    image_id = int("".join(ch for ch in image_path.stem if ch.isdigit()))
    rows = sorted(
        (row for row in json.loads(detections.read_text()) if row["image_id"] == image_id),
        key=lambda row: -row["score"],
    )
    if not rows:
        raise SystemExit(f"{detections} has no boxes for image id {image_id}")
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (row["bbox"] for row in rows)], np.float64)


def export_graphs(folder: Path, calibration: str | None, quantize: bool = True):
    """(the fp32 file, the int8 file, the quantizer's report) of a seeded random RTMPose-t
    (without `quantize`: (the fp32 file, None, None))."""
    import torch

    from posecore.export import export_onnx
    from posecore.models import build_model
    from posecore.params import load_params
    from posecore.precision import quantize_int8

    model = build_model("rtmpose", variant="t")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # weights and BN statistics at a trained model's scale, as tests/test_rtmpose.py fills them
        for key, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if key.endswith(("running_var", "bn.weight")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (0.1 if tensor.dim() > 1 else 0.05))
    checkpoint = folder / "rtmpose-t.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    params = load_params("rtmpose", {"model.variant": "t", "data.root": str(SAMPLES)})
    fp32 = folder / "rtmpose-t.onnx"
    export_onnx(params, checkpoint, fp32, decode=False, parity_batch_sizes=())
    if not quantize:
        return fp32, None, None
    if calibration:
        report = quantize_int8(fp32, fp32.with_name("rtmpose-t-int8.onnx"), calibration=calibration)
    else:
        report = quantize_int8(fp32, fp32.with_name("rtmpose-t-int8.onnx"), params=params)
    return fp32, Path(report["path"]), report


def rtmlib_pose(path: Path, options):
    """(rtmlib.RTMPose on `path` with a session of `options`, or None; what runs, in words)."""
    try:
        import onnxruntime as ort
        from rtmlib import RTMPose
    except ImportError:
        return None, "not installed (pip install rtmlib): left out"
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the file it loads
        pose = RTMPose(str(path), model_input_size=(192, 256), backend="onnxruntime", device="cpu")
    pose.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    from importlib.metadata import version as installed

    version = installed("rtmlib")
    return pose, f"rtmlib {version} RTMPose on the same fp32 file, same session options"


def alternate(contenders: dict, budget_s: float, min_rounds: int = 5) -> tuple[dict[str, float], int]:
    """Median seconds per call of each contender, called in turn (the order rotating every round)
    for `budget_s` seconds or `min_rounds` rounds, whichever is longer; one warm-up round first."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    samples = {name: [] for name in names}
    started, rounds = time.perf_counter(), 0
    while rounds < min_rounds or time.perf_counter() - started < budget_s:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            start = time.perf_counter()
            contenders[name]()
            samples[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: float(np.median(values)) for name, values in samples.items()}, rounds


def table(rows) -> None:
    names = list(rows[0][1])
    print("| people | rounds | " + " | ".join(f"{name} persons/s" for name in names) + " |")
    print("|---:|---:|" + "---:|" * len(names))
    for people, rates, rounds in rows:
        print(f"| {people} | {rounds} | " + " | ".join(f"{rates[name]:.1f}" for name in names) + " |")
    ratios = [
        ("Predictor fp32 / bare fp32", "Predictor fp32", "bare fp32"),
        ("Predictor int8 / bare int8", "Predictor int8", "bare int8"),
        ("Predictor int8 / Predictor fp32", "Predictor int8", "Predictor fp32"),
        ("bare int8 / bare fp32", "bare int8", "bare fp32"),
        ("Predictor fp32 / rtmlib fp32", "Predictor fp32", "rtmlib fp32"),
        ("Predictor int8 / rtmlib fp32", "Predictor int8", "rtmlib fp32"),
    ]
    print("\n| ratio of persons/s | " + " | ".join(f"{people} people" for people, _, _ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for label, a, b in ratios:
        if all(a in rates and b in rates for _, rates, _ in rows):
            print(f"| {label} | " + " | ".join(f"{rates[a] / rates[b]:.2f}x" for _, rates, _ in rows) + " |")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
