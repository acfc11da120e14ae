"""Training data pipeline throughput: samples/s of decode + augment + warp + targets.

    .venv/bin/python benchmarks/data_pipeline.py [--root ../shared/samples/coco] [--workers 2]

Prints single-process rates (medians of alternating rounds) for the four settings of posecore's
two speed-ups, both off in the
seed params (the seeds' own pipeline): data.reduced_decode (a JPEG decoded at 1/2..1/8 scale when
the crop box is that much larger than the input) and data.group_by_image (an image's people back to
back, sharing one decode); then DataLoader figures for 1 and N worker processes with the params'
own settings. Reference: AlphaPose's SimpleTransform reaches about
236 samples/s on one core on the shared COCO samples at 256x192; the goal is >= 1.5x that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from posecore.data import build_dataset, grouped_order  # noqa: E402
from posecore.params import load_params  # noqa: E402

ALPHAPOSE_SAMPLES_PER_S = 236.0


def epoch_orders(dataset, epochs: int, group_by_image: bool) -> list[tuple[int, list[int]]]:
    """(epoch, order) pairs as the engine draws them (posecore.data.grouped_order)."""
    return [
        (epoch, grouped_order(dataset.image_groups(), 0, epoch, group_by_image=group_by_image))
        for epoch in range(epochs)
    ]


def single_process(dataset, samples: int, group_by_image: bool) -> tuple[float, float]:
    """(wall, CPU) samples/s of dataset[i] in this process over whole epochs in the engine's
    order. On a shared machine the CPU-time rate is the steadier figure."""
    for i in range(min(16, len(dataset))):  # warm the page cache
        dataset[i]
    epochs = epoch_orders(dataset, max(1, -(-samples // len(dataset))), group_by_image)
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    for epoch, order in epochs:
        dataset.set_epoch(epoch)
        for index in order:
            dataset[index]
        count += len(order)
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu_started)


def with_loader(dataset, workers: int, samples: int, batch_size: int, group_by_image: bool) -> float:
    """samples/s through a DataLoader in the engine's order, after its first batch (worker
    start-up left out)."""
    epochs = epoch_orders(dataset, max(1, -(-samples // len(dataset))) + 1, group_by_image)
    indices = [index for _, order in epochs for index in order]
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    iterator = iter(loader)
    next(iterator)
    count, started = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch["image"])
        if count >= samples:
            break
    return count / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "samples" / "coco"))
    parser.add_argument("--params", default="fastpose", help="params name (input size, augmentation)")
    parser.add_argument("--workers", type=int, default=2, help="N for the N-worker DataLoader figure")
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the four settings (medians)")
    args = parser.parse_args(argv)

    params = load_params(args.params, {"data.root": args.root})
    dataset = build_dataset(params, "train")
    print(
        f"{len(dataset)} training instances in {args.root}, input {params.data.input_size} (w, h), "
        f"heatmap {params.data.heatmap_size}; torch threads {torch.get_num_threads()}"
    )
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    settings = ((False, False), (True, False), (False, True), (True, True))
    figures = {setting: [] for setting in settings}
    for _ in range(args.rounds):  # alternating rounds: a shared machine's load hits every setting alike
        for reduced, grouped in settings:
            dataset.reduced_decode = reduced
            figures[reduced, grouped].append(single_process(dataset, args.samples, group_by_image=grouped))
    seed_cpu = statistics.median(cpu for _, cpu in figures[False, False])
    for (reduced, grouped), runs in figures.items():
        wall, cpu = (statistics.median(run[i] for run in runs) for i in (0, 1))
        name = (
            f"reduced_decode {'on ' if reduced else 'off'}, group_by_image {'on ' if grouped else 'off'}"
            f"{' (seed)' if not (reduced or grouped) else ''}"
        )
        rows += [(name, wall), (f"  same, per CPU second: {cpu / seed_cpu:.2f}x the seed setting's", cpu)]
    dataset.reduced_decode = dataset.train and params.data.reduced_decode
    grouped = params.data.group_by_image
    rows.append(
        (
            f"DataLoader, 1 worker ({args.params}'s settings)",
            with_loader(dataset, 1, args.samples, args.batch_size, grouped),
        )
    )
    if args.workers > 1:
        rows.append(
            (
                f"DataLoader, {args.workers} workers ({args.params}'s settings)",
                with_loader(dataset, args.workers, args.samples, args.batch_size, grouped),
            )
        )
    for name, rate in rows:
        print(
            f"{name:<56} {rate:8.1f} samples/s  ({rate / ALPHAPOSE_SAMPLES_PER_S:.2f}x AlphaPose's "
            f"{ALPHAPOSE_SAMPLES_PER_S:.0f})"
        )


if __name__ == "__main__":
    main()
