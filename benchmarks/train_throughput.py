"""End-to-end training throughput: posecore.train in performance mode (train.max_steps).

    .venv/bin/python benchmarks/train_throughput.py --params demo --npus 1 2 --steps 20 \
        --set train.amp=bf16 --set train.batch_size=16

Like the seeds' train_performance scripts: the real data pipeline, loss, optimizer and DDP, stopped
after --steps steps (or one epoch); the first --warmup steps are left out. Prints images/s over all
devices and the share of step time spent waiting for data, per npus. Runs go to a temporary
outputs folder (no checkpoints are written in performance mode). benchmarks/train_step.py times
the model step alone on random tensors.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import yaml

import posecore


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="demo", help="params name or yaml path")
    parser.add_argument("--npus", type=int, nargs="+", default=[1], help="device counts to measure")
    parser.add_argument("--steps", type=int, default=20, help="steps per run (train.max_steps)")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out (train.perf_warmup_steps)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override, e.g. train.amp=bf16 (value parsed as YAML)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    overrides = {"train.max_steps": args.steps, "train.perf_warmup_steps": args.warmup}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    params = posecore.load_params(args.params, overrides)
    print(f"{params.name}: model {params.model.name}-{params.model.depth}, input "
          f"{params.data.input_size}, batch {params.train.batch_size}/device, amp {params.train.amp}, "
          f"workers {params.data.workers}, {args.steps} steps ({args.warmup} warm-up)")
    with tempfile.TemporaryDirectory(prefix="posecore-bench-") as outputs:
        os.environ["POSECORE_OUTPUTS"] = outputs
        for npus in args.npus:
            result = posecore.train(params, npus=npus, run_name=f"throughput-{npus}")
            print(f"npus {npus}: {result['images_per_s']:.1f} images/s over "
                  f"{result['measured_steps']} steps, data wait {result['data_wait']:.0%}")


if __name__ == "__main__":  # workers are spawned: the launch must not re-run on import
    main()
