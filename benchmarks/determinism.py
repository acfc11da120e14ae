"""What train.deterministic costs: training step time with deterministic kernels on and off.

    .venv/bin/python benchmarks/determinism.py --model fastpose --depth 18 --batch 8 \
        --input-size 96 128 --rounds 3

Alternates rounds of benchmarks/train_step.py's `time_train_step` with posecore.device's
set_deterministic(True) and (False) on the device posecore picks, and prints each round and the
medians. Prints figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import time_train_step  # noqa: E402

from posecore import device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fastpose")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-size", type=int, nargs=2, default=(96, 128), metavar=("W", "H"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{device.device_type()} ({', '.join(device.device_names())}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}; {args.model}-{args.depth}, batch {args.batch}, "
        f"input {tuple(args.input_size)} (w, h), {args.steps} timed steps per round"
    )
    figures: dict[bool, list[float]] = {True: [], False: []}
    with device.deterministic_restored():
        for round_index in range(args.rounds):
            for on in (True, False):
                device.set_deterministic(on)
                result = time_train_step(
                    args.model,
                    args.batch,
                    steps=args.steps,
                    warmup=2,
                    input_size=tuple(args.input_size),
                    depth=args.depth,
                )
                figures[on].append(result["step_ms"])
                print(
                    f"round {round_index + 1} deterministic {'on ' if on else 'off'}: "
                    f"{result['step_ms']:.1f} ms/step, {result['images_per_s']:.1f} images/s"
                )
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    print(f"median step: deterministic on {on:.1f} ms, off {off:.1f} ms ({(on / off - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
