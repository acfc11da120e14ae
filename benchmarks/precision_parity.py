"""fp16 and int8 copies of an export against the fp32 file: size and keypoint differences on real photos.

    .venv/bin/python benchmarks/precision_parity.py [--onnx EXPORT.onnx --params PARAMS]
        [--root ../shared/samples/coco] [--count 128]

Without --onnx, a seeded random-weight RTMPose-t is exported (decode=False). The variants are
made with posecore.precision (int8 calibrated on --count people of the COCO training split under
--root) and all three run through Predictor.from_onnx on the val images of --root with their
annotated people's boxes, flip test off and on: the distance of each joint from fp32's, in
image pixels, and the largest score difference. An untrained
network's argmax is fragile (near-equal peaks), so its differences overstate a trained one's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="an fp32 export (default: a random RTMPose-t)")
    parser.add_argument("--params", default="rtmpose", help="params of --onnx (its training split calibrates int8)")
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "samples" / "coco")
    parser.add_argument("--count", type=int, default=None, help="calibration people (default: posecore's)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    import onnxruntime

    from posecore.data.dataset import read_image
    from posecore.params import load_params
    from posecore.precision import convert_fp16, quantize_int8
    from posecore.predictor import Predictor

    onnxruntime.set_default_logger_severity(3)  # the quantizer's session warns about initializers it drops

    sys.path.insert(0, str(REPO / "benchmarks"))
    from predictor_speed import export_graphs

    overrides = {"data.root": str(args.root), **({"model.variant": "t"} if args.onnx is None else {})}
    params = load_params(args.params, overrides)
    with tempfile.TemporaryDirectory() as folder:
        fp32 = args.onnx
        if fp32 is None:
            fp32, _, _ = export_graphs(Path(folder), calibration=None, quantize=False)
        else:
            fp32 = Path(folder) / "export-fp32.onnx"
            fp32.write_bytes(args.onnx.read_bytes())
        variants = {
            "fp16": convert_fp16(fp32, fp32.with_name("export-fp16.onnx")),
            "int8": quantize_int8(fp32, fp32.with_name("export-int8.onnx"), params=params, count=args.count),
        }
        samples = val_samples(args.root, read_image)
        reference = Predictor.from_onnx(fp32, device="cpu")
        people = sum(len(boxes) for _, boxes in samples)
        print(
            f"{fp32.name} vs its variants on {len(samples)} val images, {people} annotated people; "
            f"int8 calibration: {variants['int8']['calibration']['source']}\n"
        )
        print(
            "| precision | size MB | size / fp32 | flip | median px | 90th pct px | > 5 px | max px | "
            "max score diff |\n|---|---:|---:|---|---:|---:|---:|---:|---:|"
        )
        print(f"| fp32 | {fp32.stat().st_size / 2**20:.2f} | 1.00 | | | | | | |")
        for name, report in variants.items():
            variant = Predictor.from_onnx(report["path"], device="cpu")
            for flip in (False, True):
                ours = [variant(image, boxes, flip) for image, boxes in samples]
                theirs = [reference(image, boxes, flip) for image, boxes in samples]
                px = np.concatenate(
                    [np.hypot(*(a.keypoints - b.keypoints).reshape(-1, 2).T) for a, b in zip(ours, theirs)]
                )
                scores = max(float(np.abs(a.scores - b.scores).max()) for a, b in zip(ours, theirs))
                print(
                    f"| {name} | {report['size_mb']:.2f} | {report['size_ratio']:.2f} | {'on' if flip else 'off'} "
                    f"| {np.median(px):.2f} | {np.percentile(px, 90):.2f} | {np.mean(px > 5):.1%} | {px.max():.1f} "
                    f"| {scores:.2g} |"
                )


def val_samples(root: Path, read_image) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, xyxy boxes of its annotated people) of every val image with people."""
    content = json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())
    boxes: dict[int, list[list[float]]] = {}
    for ann in content["annotations"]:
        if not ann.get("iscrowd") and ann["bbox"][2] > 1 and ann["bbox"][3] > 1:
            x, y, w, h = ann["bbox"]
            boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    return [
        (read_image(root / "val2017" / image["file_name"]), np.array(boxes[image["id"]]))
        for image in content["images"]
        if image["id"] in boxes
    ]


if __name__ == "__main__":
    main()
