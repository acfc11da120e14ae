"""Measure training throughput (images/s) of one model on the device posecore.device picks.

    .venv/bin/python benchmarks/train_step.py --model fastpose --batch 8 --amp bf16 \
        --channels-last --steps 10

Each step is forward + MSE loss on random targets + backward + Adam step, with autocast and a
GradScaler as the engine uses them. The first --warmup steps are left out of the figures.
Prints figures only; speed goals are judged by people, not asserted here.
"""
from __future__ import annotations

import argparse
import time

import torch

from posecore import device
from posecore.models import build_model

DEFAULT_INPUT = {"fastpose": (192, 256), "simplebaseline": (192, 256), "hourglass": (384, 384)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastpose", help="a key of posecore.models.MODELS")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--amp", default="off", choices=("off", "fp16", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--depth", type=int, help="ResNet depth (fastpose, simplebaseline)")
    parser.add_argument("--num-stacks", type=int, help="hourglass stacks")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="default: 192 256 (ResNet models), 384 384 (hourglass)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    options = {"depth": args.depth, "num_stacks": args.num_stacks}
    model = build_model(args.model, **{k: v for k, v in options.items() if v is not None})
    width, height = args.input_size or DEFAULT_INPUT.get(args.model, (192, 256))
    where = device.get_device()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(where, memory_format=memory_format).train()
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = device.grad_scaler(args.amp)
    images = torch.randn(args.batch, 3, height, width, device=where)
    images = images.contiguous(memory_format=memory_format)
    targets = torch.rand(args.batch, model.num_joints, height // 4, width // 4, device=where)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with device.autocast(args.amp):
            heatmaps = step_model(images)
            stacks = heatmaps if isinstance(heatmaps, list) else [heatmaps]
            loss = sum(torch.nn.functional.mse_loss(h.float(), targets) for h in stacks)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()  # also waits for the device

    print(f"device: {where} ({', '.join(device.device_names())})")
    print(f"model {args.model} {width}x{height} batch {args.batch} amp {args.amp} "
          f"channels_last {args.channels_last} compile {args.compile} "
          f"threads {torch.get_num_threads()}")
    for _ in range(args.warmup):
        step()
    device.synchronize()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    total = sum(times)
    print(f"step median {median * 1e3:.1f} ms, min {times[0] * 1e3:.1f} ms, "
          f"max {times[-1] * 1e3:.1f} ms over {args.steps} steps")
    print(f"throughput {args.batch * args.steps / total:.1f} images/s "
          f"(median step: {args.batch / median:.1f} images/s)")


if __name__ == "__main__":
    main()
