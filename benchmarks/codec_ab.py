"""A/B of the heatmap codecs on the demo: the same params and seed trained with each codec.

    .venv/bin/python benchmarks/codec_ab.py [--params demo] [--codecs msra dark udp] [--prefix codec-ab]

Trains params (default params/demo.yaml: FastPose-18, 96x128 input, 24x32 heatmaps, 10 epochs on
posecore's synthetic COCO-layout data, train.seed 0) once per codec into outputs/<prefix>-<codec>/,
evaluates each run's best checkpoint (the demo's eval: GT boxes, flip test) and prints AP, AP50,
AP75 and the gt-mAP protocol's AP per codec. Runs already trained are resumed, i.e. reused.
A demo training takes about 6 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from posecore.codec import HEATMAP_CODECS  # noqa: E402
from posecore.engine import train  # noqa: E402
from posecore.evaluation import evaluate  # noqa: E402
from posecore.params import load_params  # noqa: E402

COLUMNS = ("AP", "AP50", "AP75", "gt_AP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="demo")
    parser.add_argument(
        "--codecs", nargs="+", default=[c.name for c in HEATMAP_CODECS], choices=[c.name for c in HEATMAP_CODECS]
    )
    parser.add_argument("--prefix", default="codec-ab")
    args = parser.parse_args()
    rows = []
    for codec in args.codecs:
        params = load_params(args.params, {"data.codec": codec})
        run_name = f"{args.prefix}-{codec}"
        started = time.perf_counter()
        train(params, run_name=run_name)
        seconds = time.perf_counter() - started
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = evaluate(params, "best", run_name=run_name)
        rows.append((codec, *(metrics[key] for key in COLUMNS), seconds))
        print(f"{codec}: AP {metrics['AP']:.4f} ({seconds:.0f} s of training, outputs/{run_name})", flush=True)
    print(f"\n{args.params} (seed {params.train.seed}), best checkpoint of each run")
    print(f"{'codec':>6s} " + " ".join(f"{key:>7s}" for key in COLUMNS) + f" {'train s':>8s}")
    for codec, *values, seconds in rows:
        print(f"{codec:>6s} " + " ".join(f"{value:7.4f}" for value in values) + f" {seconds:8.0f}")


if __name__ == "__main__":
    main()
