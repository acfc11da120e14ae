"""End-to-end training throughput: posecore.train in performance mode (train.max_steps).

    .venv/bin/python benchmarks/train_throughput.py --params demo --npus 1 2 --steps 20 \
        --set train.amp=bf16 --set train.batch_size=16

Like the seeds' train_performance scripts: the real data pipeline, loss, optimizer and DDP, stopped
after --steps steps (or one epoch); the first --warmup steps are left out. Prints images/s over all
devices and the share of step time spent waiting for data, per npus. Runs go to a temporary
outputs folder (no checkpoints are written in performance mode). benchmarks/train_step.py times
the model step alone on random tensors; benchmarks/device_suite.py compares the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import posecore  # noqa: E402


def measure_throughput(params: posecore.Params, npus: int = 1, steps: int = 20, warmup: int = 5) -> dict:
    """posecore.train's summary of a performance-mode run of `params` (`steps` steps, the first
    `warmup` left out) in a temporary outputs folder: images_per_s (all devices), data_wait, ..."""
    params = posecore.load_params(params, {"train.max_steps": steps, "train.perf_warmup_steps": warmup})
    saved = os.environ.get("POSECORE_OUTPUTS")
    with tempfile.TemporaryDirectory(prefix="posecore-bench-") as outputs:
        os.environ["POSECORE_OUTPUTS"] = outputs
        try:
            return posecore.train(params, npus=npus, run_name=f"throughput-{npus}")
        finally:
            if saved is None:
                os.environ.pop("POSECORE_OUTPUTS")
            else:
                os.environ["POSECORE_OUTPUTS"] = saved


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="demo", help="params name or yaml path")
    parser.add_argument("--npus", type=int, nargs="+", default=[1], help="device counts to measure")
    parser.add_argument("--steps", type=int, default=20, help="steps per run (train.max_steps)")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out (train.perf_warmup_steps)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override, e.g. train.amp=bf16 (value parsed as YAML)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    params = posecore.load_params(args.params, overrides)
    print(
        f"{params.name}: model {params.model.name}-{params.model.depth}, input "
        f"{params.data.input_size}, batch {params.train.batch_size}/device, amp {params.train.amp}, "
        f"workers {params.data.workers}, {args.steps} steps ({args.warmup} warm-up)"
    )
    for npus in args.npus:
        result = measure_throughput(params, npus, args.steps, args.warmup)
        print(
            f"npus {npus}: {result['images_per_s']:.1f} images/s over "
            f"{result['measured_steps']} steps, data wait {result['data_wait']:.0%}"
        )


if __name__ == "__main__":  # workers are spawned: the launch must not re-run on import
    main()
