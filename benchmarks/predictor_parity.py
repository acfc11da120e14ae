"""A run and its ONNX export predict the same keypoints: Predictor.from_run against
Predictor.from_onnx on the run's val images, flip test off and on.

    .venv/bin/python benchmarks/predictor_parity.py RUN [--checkpoint best] [--onnx PATH] [--images 20]

Prints the median and maximum keypoint difference in image pixels over every joint coordinate of
the first `--images` val images (their annotated people's boxes; MPII has none, so the joints'
extent stands in). The export is the run's fp32 ONNX export (Run.onnx_path()) unless --onnx says otherwise.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained and exported run (a folder name under outputs/)")
    parser.add_argument("--checkpoint", default="best", help="best / last of the run, or a path")
    parser.add_argument("--onnx", help="the export (default: the run's fp32 export, Run.onnx_path())")
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()

    from posecore.data import build_dataset, read_image
    from posecore.export import keypoint_differences
    from posecore.predictor import Predictor
    from posecore.runs import Run

    pytorch = Predictor.from_run(args.run, args.checkpoint, device="cpu")
    exported = Predictor.from_onnx(args.onnx or Run(args.run).onnx_path())  # its metadata alone
    dataset = build_dataset(pytorch.params, "val")
    people_of = {}
    for instance in dataset.instances:
        people_of.setdefault(instance.image_id, []).append(instance)
    samples = []
    for people in list(people_of.values())[: args.images]:
        boxes = np.array(
            [
                instance.bbox_xyxy
                if instance.bbox_xyxy is not None
                else [*instance.joints.min(0), *instance.joints.max(0)]
                for instance in people
            ]
        )
        samples.append((read_image(people[0].image_path), boxes))
    differences = keypoint_differences(pytorch, exported, samples)
    print(
        f"run {args.run} ({pytorch.params.model.name}, {pytorch.codec.name} codec), checkpoint "
        f"{pytorch.checkpoint.name}; {len(samples)} val images\n"
    )
    print("| flip test | coordinates | median px | max px |\n|---|---|---|---|")
    for case, found in differences.items():
        print(f"| {case.split()[1]} | {found['coordinates']} | {found['median_px']:.2e} | {found['max_px']:.2e} |")


if __name__ == "__main__":
    main()
