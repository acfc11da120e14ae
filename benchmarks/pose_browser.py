"""Seconds per redraw of visualize.ipynb's pose browser, per control (median over repeats).

    .venv/bin/python benchmarks/pose_browser.py [--run demo --params demo --checkpoint best]
        [--repeats 5]

Without --run a synthetic COCO-layout val set (256 x 256 images, the demo's size) is made in a
temp folder and scored by the oracle (the encoded ground truth; heatmaps are the targets), so
only drawing is timed; with --run the run's eval predictions and checkpoint are used and the
heatmap row includes the model's forward pass. The time is what the kernel spends per change
(figure, PNG); the front end's share is measured by tests/test_browser.py. Prints a markdown
table; timings are not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

CHANGES = (
    ("rank", "rank", (2, 3)),
    ("order", "sorted", ("best first", "worst first")),
    ("ground truth toggle", "ground truth", (False, True)),
    ("prediction toggle", "prediction", (False, True)),
    ("other people toggle", "other people (faint)", (False, True)),
    ("heatmap joint", "heatmap", ("left_wrist", "right_knee")),
    ("score threshold", "min score", (0.5, 0.2)),
)


def _controls(widget) -> dict:
    def walk(w):
        yield w
        for child in getattr(w, "children", ()):
            yield from walk(child)

    return {w.description: w for w in walk(widget) if getattr(w, "description", "")}


def _oracle_run(folder: Path) -> tuple:
    from posecore import data, evaluation, workbook

    os.environ["POSECORE_OUTPUTS"] = str(folder / "outputs")
    root = data.make_synthetic(folder / "synthetic_coco", num_train=1, num_val=20, image_size=256)
    params = workbook.notebook_params("fastpose", "demo", str(root), {"eval.oracle": True, "data.workers": 0})
    evaluation.evaluate(params, None, run_name="browser-benchmark")
    return params, "browser-benchmark", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an evaluated run (default: a synthetic oracle run in a temp folder)")
    parser.add_argument(
        "--params",
        help="with --run: params name or path, only for a run without its own "
        "params.yaml (default then: fastpose_coco)",
    )
    parser.add_argument("--checkpoint", default="best", help="with --run: a path, or best / last")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from posecore import workbook

    with tempfile.TemporaryDirectory() as folder:
        if args.run:
            params = workbook.run_params(args.run, "fastpose", args.params)  # the run's own params.yaml
            run, checkpoint = args.run, workbook.checkpoint_for(params, args.checkpoint)
        else:
            params, run, checkpoint = _oracle_run(Path(folder))
        browser = workbook.PoseBrowser(params, run, checkpoint)
        started = time.perf_counter()
        controls = _controls(browser.widget())
        print(f"{len(browser)} persons; widget built and first figure drawn in {time.perf_counter() - started:.2f} s\n")
        print("| change | median s | min s |\n|---|---|---|")
        for label, description, values in CHANGES:
            seconds = []
            for repeat in range(args.repeats):
                started = time.perf_counter()
                controls[description].value = values[repeat % 2]
                seconds.append(time.perf_counter() - started)
            print(f"| {label} | {statistics.median(seconds):.3f} | {min(seconds):.3f} |")


if __name__ == "__main__":
    main()
