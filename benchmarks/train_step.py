"""Measure training throughput (images/s) of one model on the device posecore.device picks.

    .venv/bin/python benchmarks/train_step.py --model fastpose --batch 8 --amp bf16 \
        --channels-last --steps 10

Each step is forward + the engine's heatmap loss on random targets + backward + Adam step, with
autocast and a GradScaler as the engine uses them, on random input tensors (no data loading). The
first --warmup steps (torch.compile's compilation among them) are left out of the figures.
Prints figures only; speed goals are judged by people, not asserted here.
benchmarks/device_suite.py runs `time_train_step` over precisions, memory formats and batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from posecore import device  # noqa: E402
from posecore.models import build_model  # noqa: E402
from posecore.optim import joints_mse  # noqa: E402

DEFAULT_INPUT = {"fastpose": (192, 256), "simplebaseline": (192, 256), "hourglass": (384, 384)}
HEATMAP_STRIDE = 4  # every posecore model predicts heatmaps at 1/4 of the input size


def time_train_step(
    model_name: str,
    batch: int,
    amp: str = "off",
    channels_last: bool = False,
    compile: bool = False,
    steps: int = 10,
    warmup: int = 3,
    input_size: tuple[int, int] | None = None,
    **model_options: int,
) -> dict[str, float]:
    """Time `steps` training steps after `warmup` untimed ones (at least one) on random tensors.

    input_size is (w, h) (default DEFAULT_INPUT); model_options go to build_model (depth,
    num_stacks, num_joints). Returns images_per_s (over all timed steps), step_ms (median),
    min_ms, max_ms, first_step_s (the first warm-up step: compilation with `compile`) and
    peak_memory_gib (None on CPU). An out-of-memory error propagates (device.is_out_of_memory).
    """
    width, height = input_size or DEFAULT_INPUT.get(model_name, (192, 256))
    where = device.get_device()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(model_name, **model_options).to(where, memory_format=memory_format).train()
    step_model = torch.compile(model) if compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = device.grad_scaler(amp)
    images = torch.randn(batch, 3, height, width, device=where).contiguous(memory_format=memory_format)
    targets = torch.rand(batch, model.num_joints, height // HEATMAP_STRIDE, width // HEATMAP_STRIDE, device=where)
    target_weight = torch.ones(batch, model.num_joints, device=where)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with device.autocast(amp):
            heatmaps = step_model(images)
        loss = joints_mse(heatmaps, targets, target_weight, loss_weight=0.5)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()  # also waits for the device

    device.reset_peak_memory()
    started = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - started
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    peak = device.peak_memory_bytes()
    return {
        "images_per_s": batch * steps / sum(times),
        "step_ms": times[len(times) // 2] * 1e3,
        "min_ms": times[0] * 1e3,
        "max_ms": times[-1] * 1e3,
        "first_step_s": first_step_s,
        "peak_memory_gib": None if peak is None else peak / 2**30,
    }


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
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        help="default: 192 256 (ResNet models), 384 384 (hourglass)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    options = {
        key: value for key, value in {"depth": args.depth, "num_stacks": args.num_stacks}.items() if value is not None
    }
    width, height = args.input_size or DEFAULT_INPUT.get(args.model, (192, 256))
    print(f"device: {device.get_device()} ({', '.join(device.device_names())})")
    print(
        f"model {args.model} {width}x{height} batch {args.batch} amp {args.amp} "
        f"channels_last {args.channels_last} compile {args.compile} "
        f"threads {torch.get_num_threads()}"
    )
    figures = time_train_step(
        args.model,
        args.batch,
        args.amp,
        args.channels_last,
        args.compile,
        args.steps,
        args.warmup,
        (width, height),
        **options,
    )
    print(
        f"step median {figures['step_ms']:.1f} ms, min {figures['min_ms']:.1f} ms, "
        f"max {figures['max_ms']:.1f} ms over {args.steps} steps"
    )
    print(
        f"throughput {figures['images_per_s']:.1f} images/s "
        f"(median step: {args.batch / figures['step_ms'] * 1e3:.1f} images/s)"
    )


if __name__ == "__main__":
    main()
