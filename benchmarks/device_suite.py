"""One check of what a device gives posecore: training, data pipeline and evaluation speed.

    .venv/bin/python benchmarks/device_suite.py            # the device posecore.device picks
    .venv/bin/python benchmarks/device_suite.py --quick    # a tiny CPU version (the tests run it)

Sized to finish in under 8 minutes on one H100/H200 (no row starts after --budget-s seconds).
Prints one table and writes it as JSON and markdown to
outputs/benchmarks/device_suite-<device>-<date>.{json,md} (--out picks another folder). Rows:

- train step: forward + heatmap loss + backward + Adam on random tensors (train_step.py) for
  FastPose-50 at 256x192 and Hourglass-52 at 384x384: fp32 / bf16 / fp16, channels_last off and
  on, torch.compile on the bf16 channels_last row, at batch 32 per device (halved until it fits);
  then bf16 channels_last at larger batches until out of memory or --max-batch.
- pipeline: posecore.train in performance mode (train_throughput.py), bf16 channels_last at batch
  32: JPEG decode and augmentation through the engine's DataLoader with
  recommended_workers() workers. Its data-wait share, and its rate against the train-step
  row with the same settings, show what loading costs.
- eval: evaluation.predict with flip test (fp32, eval.batch_size) on the val split: images/s all
  in (loading, two forward passes, decoding) and of the model alone.
Peak device memory per row (not on CPU). The data: the COCO samples (shared/samples/coco in the
repository or beside it, or --coco-root) or posecore's synthetic set, its images taken again under
new file names until a split holds enough people. Hourglass-52 reads the COCO layout here (17
joints for MPII's 16: the same cost).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path[:0] = [str(REPO), str(BENCHMARKS)]

import torch  # noqa: E402
from train_step import HEATMAP_STRIDE, time_train_step  # noqa: E402
from train_throughput import measure_throughput  # noqa: E402

import posecore  # noqa: E402
from posecore import data, device, evaluation  # noqa: E402
from posecore.data.loading import recommended_workers  # noqa: E402
from posecore.files import atomic_write, write_json
from posecore.models import build_model  # noqa: E402
from posecore.runs import outputs_root  # noqa: E402

SAMPLES = [REPO / "shared" / "samples" / "coco", REPO.parent / "shared" / "samples" / "coco"]
GOALS = "goals on one H100/H200 (issue 16): FastPose >= 4000 and Hourglass-52 >= 600 training images/s, data wait < 5%"


@dataclass
class Model:
    label: str
    name: str  # model and params name (fastpose -> params/fastpose_coco.yaml)
    options: dict  # build_model / params.model overrides
    input_size: tuple[int, int]  # (w, h)


@dataclass
class Plan:
    models: list[Model]
    batch: int  # per device, the seeds' 32
    sweep: list[int]  # larger batches for the bf16 channels_last row
    configs: list[tuple[str, bool, bool]]  # (amp, channels_last, compile)
    steps: int
    warmup: int
    pipeline_steps: int  # measured steps of the pipeline rows
    pipeline_warmup: int  # left-out steps beyond one per DataLoader worker (worker start-up)
    pipeline_amp: tuple[str, bool]  # (amp, channels_last) of the pipeline rows
    eval_people: int
    synthetic: dict = field(default_factory=dict)  # make_synthetic arguments when no samples


FULL = Plan(
    models=[
        Model("FastPose-50", "fastpose", {"depth": 50}, (192, 256)),
        Model("Hourglass-52", "hourglass", {"num_stacks": 1}, (384, 384)),
    ],
    batch=32,
    sweep=[64, 128, 256],
    configs=[
        ("off", False, False),
        ("bf16", False, False),
        ("fp16", False, False),
        ("bf16", True, False),
        ("fp16", True, False),
        ("bf16", True, True),
    ],
    steps=20,
    warmup=5,
    pipeline_steps=150,
    pipeline_warmup=5,
    pipeline_amp=("bf16", True),
    eval_people=1280,
    synthetic={"num_train": 64, "num_val": 8, "image_size": (640, 480)},
)
# Every code path in seconds on one CPU core: Hourglass-52 needs 128x128 inputs at least, seconds
# per step on a CPU, so the tests check its params (FULL) without running it.
QUICK = Plan(
    models=[Model("FastPose-18", "fastpose", {"depth": 18}, (32, 64))],
    batch=2,
    sweep=[4],
    configs=[("off", False, False), ("bf16", True, False), ("bf16", True, True)],
    steps=1,
    warmup=1,
    pipeline_steps=3,
    pipeline_warmup=0,
    pipeline_amp=("off", False),
    eval_people=4,
    synthetic={"num_train": 4, "num_val": 2, "image_size": 96},
)


@dataclass
class Row:
    section: str  # train step | pipeline | eval
    model: str
    input: str  # w x h
    amp: str
    channels_last: bool
    compile: bool
    batch: int
    images_per_s: float | None = None
    step_ms: float | None = None
    data_wait: float | None = None
    peak_memory_gib: float | None = None
    note: str = ""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.seconds = seconds

    def spent(self) -> bool:
        return time.monotonic() - self.started > self.seconds


# --- data --------------------------------------------------------------------------------------


def repeated_coco(source: Path, folder: Path, people: dict[str, int]) -> Path:
    """A COCO-layout folder holding at least people[split] labelled people per split: the
    source's images in turn, again under new file names (symlinks) as often as needed, so every
    sample still decodes a JPEG. Returns `folder`."""
    for split, wanted in people.items():
        coco = json.loads((source / "annotations" / f"person_keypoints_{split}2017.json").read_text())
        by_image: dict[int, list[dict]] = {}
        for annotation in coco["annotations"]:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
        labelled = [image for image in coco["images"] if any(_labelled(a) for a in by_image.get(image["id"], []))]
        if not labelled:
            raise ValueError(f"{source}: no labelled people in the {split} split")
        images_dir = folder / f"{split}2017"
        images_dir.mkdir(parents=True, exist_ok=True)
        images, annotations, count = [], [], 0
        while count < wanted:
            image = labelled[len(images) % len(labelled)]
            new_id = len(images) + 1
            name = f"{len(images) // len(labelled):04d}_{image['file_name']}"
            (images_dir / name).symlink_to((source / f"{split}2017" / image["file_name"]).resolve())
            images.append({**image, "id": new_id, "file_name": name})
            for annotation in by_image[image["id"]]:
                annotations.append({**annotation, "id": len(annotations) + 1, "image_id": new_id})
                count += _labelled(annotation)
        atomic_write(
            folder / "annotations" / f"person_keypoints_{split}2017.json",
            json.dumps({**coco, "images": images, "annotations": annotations}),
        )
    return folder


def _labelled(annotation: dict) -> bool:
    """A person the COCO train/val splits keep: not a crowd, at least one labelled joint."""
    return annotation.get("num_keypoints", 0) > 0 and not annotation.get("iscrowd")


def source_dataset(coco_root: str | None, plan: Plan, scratch: Path) -> tuple[Path, str]:
    """(COCO-layout folder, what it is): --coco-root, the samples, or a synthetic set made now."""
    for candidate in [Path(coco_root)] if coco_root else SAMPLES:
        if not data.check_layout(candidate, "coco"):
            return candidate, f"COCO images from {candidate}"
    if coco_root:
        raise SystemExit(f"--coco-root {coco_root}: {data.check_layout(Path(coco_root), 'coco')}")
    root = data.make_synthetic(scratch / "synthetic" / "coco", "coco", **plan.synthetic)
    return root, "posecore's synthetic people (no COCO samples found)"


def params_for(model: Model, plan: Plan, root: Path, **overrides) -> posecore.Params:
    width, height = model.input_size
    values = {
        "data.root": str(root),
        "data.dataset": "coco",
        "model.num_joints": 17,
        "data.input_size": [width, height],
        "data.heatmap_size": [width // HEATMAP_STRIDE, height // HEATMAP_STRIDE],
        "train.batch_size": plan.batch,
        "train.global_batch": 0,
        "train.val_every": 0,
        **{f"model.{key}": value for key, value in model.options.items()},
        **overrides,
    }
    return posecore.load_params(model.name, values)


# --- rows --------------------------------------------------------------------------------------


def train_step_rows(model: Model, plan: Plan, budget: Budget, quick: bool, compiled: bool) -> list[Row]:
    """The plan's configs with torch.compile `compiled` at plan.batch; eager ones then the batch
    sweep of bf16 channels_last."""
    rows = [
        _step_row(model, plan, amp, channels_last, compiled, plan.batch, budget, quick, halve_to_fit=True)
        for amp, channels_last, compile_on in plan.configs
        if compile_on == compiled
    ]
    for batch in [] if compiled else plan.sweep:
        rows.append(_step_row(model, plan, "bf16", True, False, batch, budget, quick, halve_to_fit=False))
        if rows[-1].images_per_s is None:  # out of memory or out of time: stop growing
            break
    return rows


def _step_row(
    model: Model,
    plan: Plan,
    amp: str,
    channels_last: bool,
    compiled: bool,
    batch: int,
    budget: Budget,
    quick: bool,
    halve_to_fit: bool,
) -> Row:
    row = Row("train step", model.label, _size(model), amp, channels_last, compiled, batch)
    if compiled and quick:
        row.note = "torch.compile is left out of --quick (minutes of compiling on a CPU)"
        return row
    while not budget.spent():
        try:
            figures = time_train_step(
                model.name,
                row.batch,
                amp,
                channels_last,
                compiled,
                plan.steps,
                plan.warmup,
                model.input_size,
                **model.options,
            )
        except RuntimeError as error:
            if not device.is_out_of_memory(error):
                raise
            device.release_cached_memory()
            if halve_to_fit and row.batch > 1:
                row.batch //= 2
                continue
            row.note = "out of memory"
            return row
        row.images_per_s, row.step_ms = figures["images_per_s"], figures["step_ms"]
        row.peak_memory_gib = figures["peak_memory_gib"]
        notes = [f"batch {batch} did not fit"] if row.batch != batch else []
        if compiled:
            notes.append(f"first step (compiling) {figures['first_step_s']:.0f} s")
        row.note = "; ".join(notes)
        return row
    row.note = "not run: --budget-s spent"
    return row


def pipeline_row(model: Model, plan: Plan, root: Path, tensors: Row | None, budget: Budget) -> Row:
    """posecore.train in performance mode on real JPEGs, against the random-tensor row `tensors`."""
    workers = recommended_workers(1)
    amp, channels_last = plan.pipeline_amp
    row = Row("pipeline", model.label, _size(model), amp, channels_last, False, plan.batch)
    if budget.spent():
        row.note = "not run: --budget-s spent"
        return row
    params = params_for(
        model, plan, root, **{"data.workers": workers, "train.amp": amp, "train.channels_last": channels_last}
    )
    device.reset_peak_memory()
    warmup = workers + plan.pipeline_warmup
    result = measure_throughput(params, 1, plan.pipeline_steps + warmup, warmup)
    row.images_per_s, row.data_wait = result["images_per_s"], result["data_wait"]
    row.step_ms = plan.batch / result["images_per_s"] * 1e3 if result["images_per_s"] else None
    row.peak_memory_gib = _gib(device.peak_memory_bytes())
    row.note = f"data.workers {workers}, {result['measured_steps']} steps measured"
    if result["skipped_steps"]:
        row.note += f", {result['skipped_steps']} skipped (non-finite)"
    if tensors is not None and tensors.images_per_s:
        row.note += f"; {row.images_per_s / tensors.images_per_s:.0%} of the random-tensor rate"
    return row


def eval_row(model: Model, plan: Plan, root: Path, budget: Budget) -> Row:
    """evaluation.predict with flip test on the val split (fp32, as evaluation runs)."""
    params = params_for(model, plan, root, **{"data.workers": recommended_workers(1), "eval.flip_test": True})
    row = Row("eval", model.label, _size(model), "off", False, False, params.eval.batch_size)
    if budget.spent():
        row.note = "not run: --budget-s spent"
        return row
    dev = device.get_device()
    dataset = data.build_dataset(params, "val")
    network = build_model(params).to(dev).eval()
    width, height = model.input_size
    with torch.no_grad():  # warm-up: the first pass picks kernels
        network(torch.zeros(min(params.eval.batch_size, len(dataset)), 3, height, width, device=dev))
    device.reset_peak_memory()
    result = evaluation.predict(network, dataset, params, dev)
    people, timing = len(result["index"]), result["timing"]
    row.images_per_s = people / timing["seconds"]
    row.step_ms = timing["seconds"] / math.ceil(people / params.eval.batch_size) * 1e3
    row.peak_memory_gib = _gib(device.peak_memory_bytes())
    row.note = f"{people} people, flip test; the model alone {people / timing['model_seconds']:.0f} images/s"
    return row


def _size(model: Model) -> str:
    return f"{model.input_size[0]}x{model.input_size[1]}"


def _gib(value: int | None) -> float | None:
    return None if value is None else value / 2**30


# --- report ------------------------------------------------------------------------------------

COLUMNS = (
    "section",
    "model",
    "input",
    "amp",
    "channels_last",
    "compile",
    "batch",
    "images_per_s",
    "step_ms",
    "data_wait",
    "peak_memory_gib",
    "note",
)
HEADERS = (
    "section",
    "model",
    "input (w x h)",
    "amp",
    "channels_last",
    "compile",
    "batch",
    "images/s",
    "step ms",
    "data wait",
    "peak GiB",
    "note",
)


def _cells(row: Row) -> list[str]:
    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    return [
        row.section,
        row.model,
        row.input,
        "fp32" if row.amp == "off" else row.amp,
        "on" if row.channels_last else "off",
        "on" if row.compile else "off",
        str(row.batch),
        number(row.images_per_s, 1),
        number(row.step_ms, 1),
        "-" if row.data_wait is None else f"{row.data_wait:.1%}",
        number(row.peak_memory_gib, 2),
        row.note,
    ]


def text_table(rows: list[Row]) -> str:
    cells = [list(HEADERS)] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1] for line in cells
    )


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def environment(quick: bool, dataset: str, seconds: float) -> dict:
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "device": device.device_type(),
        "device_names": device.device_names(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "data": dataset,
        "seconds": round(seconds, 1),
    }


def write_report(rows: list[Row], info: dict, folder: Path) -> tuple[Path, Path]:
    stem = (
        f"device_suite-{info['device']}{'-quick' if info['quick'] else ''}-"
        f"{info['date'].replace(':', '').replace('-', '')}"
    )
    json_path = write_json(folder / f"{stem}.json", {**info, "rows": [asdict(row) for row in rows]})
    title = (
        f"posecore device suite, {info['date']}: {', '.join(info['device_names'])} "
        f"({info['device']}), torch {info['torch']}, {info['cpu_count']} CPU cores; data: "
        f"{info['data']}; {info['seconds']:.0f} s"
    )
    markdown_path = atomic_write(folder / f"{stem}.md", f"{title}\n\n{markdown_table(rows)}\n\n{GOALS}\n")
    return json_path, markdown_path


# --- main --------------------------------------------------------------------------------------


def run_suite(plan: Plan, quick: bool, coco_root: str | None, budget: Budget, scratch: Path) -> tuple[list[Row], str]:
    source, described = source_dataset(coco_root, plan, scratch)
    workers = recommended_workers(1)
    train_people = plan.batch * (plan.pipeline_steps + workers + plan.pipeline_warmup) * 2
    root = repeated_coco(source, scratch / "repeated-coco", {"train": train_people, "val": plan.eval_people})
    rows: list[Row] = []
    # compiling takes minutes: it comes last, so that the budget never costs the other rows
    for model in plan.models:
        steps = train_step_rows(model, plan, budget, quick, compiled=False)
        matching = next(
            (row for row in steps if (row.amp, row.channels_last, row.batch) == (*plan.pipeline_amp, plan.batch)), None
        )
        model_rows = steps + [pipeline_row(model, plan, root, matching, budget), eval_row(model, plan, root, budget)]
        print(text_table(model_rows), flush=True)  # progress
        rows += model_rows
    for model in plan.models:
        rows += train_step_rows(model, plan, budget, quick, compiled=True)
    order = {
        (model.label, section): index
        for index, (model, section) in enumerate(
            (model, section) for model in plan.models for section in ("train step", "pipeline", "eval")
        )
    }
    return sorted(rows, key=lambda row: order[row.model, row.section]), described


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny version on the CPU (seconds)")
    parser.add_argument("--coco-root", help="COCO-layout folder to read (default: the samples, else synthetic data)")
    parser.add_argument("--out", help="folder for the JSON and markdown (default: outputs/benchmarks)")
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="start no row after this many seconds (default 420)"
    )
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch of the sweep")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["POSECORE_DEVICE"] = "cpu"
        torch.set_num_threads(1)  # a shared or small CPU: OpenMP threads would wait on each other
    plan = QUICK if args.quick else FULL
    plan.sweep = [batch for batch in plan.sweep if batch <= args.max_batch]
    budget = Budget(args.budget_s)
    print(
        f"device suite on {device.device_type()} ({', '.join(device.device_names())}), torch "
        f"{torch.__version__}{', --quick' if args.quick else ''}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="posecore-suite-") as scratch:
        rows, described = run_suite(plan, args.quick, args.coco_root, budget, Path(scratch))
    info = environment(args.quick, described, time.monotonic() - budget.started)
    print(f"\n{info['date']}, {info['seconds']:.0f} s, data: {described}\n{text_table(rows)}\n{GOALS}")
    paths = write_report(rows, info, Path(args.out) if args.out else outputs_root() / "benchmarks")
    print("written: " + ", ".join(str(path) for path in paths))


if __name__ == "__main__":  # DataLoader workers and torch.compile's workers re-import this module
    main()
