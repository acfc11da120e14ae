"""The data side at COCO-train size: parse time, the dataset's memory, a worker's private memory.

    .venv/bin/python benchmarks/data_scale.py [--people 149813] [--images 56599] [--workers 1]
        [--compare]

Writes a COCO-keypoints train file of COCO-train size (149,813 people on 56,599 images, each
person with 17 keypoints, a box and a 40-point segmentation polygon, ~COCO's bytes per person) in
a temp folder, then measures in fresh processes (one per figure, so none inherits another's heap):

- cold: build_dataset with an empty annotation cache (json parse, entry checks, the flat arrays,
  the cache written) - seconds and the process's peak RSS;
- cached: build_dataset again in a new process (hash the file, map the arrays, verify the cache:
  its hashes and values on this first load in the process) - seconds, the resident memory the
  dataset adds (RSS after build_dataset and after reading every array once, minus RSS before)
  and peak RSS; then the verification alone (People.open(folder, verify=True): manifest, headers,
  sizes, blake2b of every array, value checks) and the check of a later load in the process
  (headers and sizes only);
- epoch: one epoch in the engine's order through a DataLoader (--workers, batch 64): each worker
  reports its private memory (USS: Private_Clean + Private_Dirty of /proc/self/smaps_rollup) at its
  first item and every 2000th; growth = its last reading - its first. Items take the metadata path of a sample (the
  person's arrays, image path, box, joints: what __getitem__ reads before decoding) without
  decoding images, so a full epoch of 149,813 items runs in a minute; the pixels a real item adds
  are per-item temporaries, not dataset state.
- --compare: the same epoch over the people as a list of per-person Instance objects (what
  PoseDataset held before posecore.data.People), to show the copy-on-access growth.

Targets (issue 22): cached build_dataset <= 3 s, dataset <= 80 MB, worker growth <= 20 MB;
(issue 32) verifying the cache well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MB = 1024 * 1024
COCO_TRAIN_PEOPLE, COCO_TRAIN_IMAGES = 149_813, 56_599


def write_coco_file(root: Path, people: int, images: int, seed: int = 0) -> Path:
    """A COCO-layout root whose train file has `people` people on `images` images (val: 2 images)."""
    from posecore.keypoints import keypoint_info

    rng = np.random.default_rng(seed)
    names = list(keypoint_info("coco").joint_names)
    per_image = np.ones(images, dtype=np.int64) + np.bincount(
        rng.integers(0, images, people - images), minlength=images
    )
    image_ids = np.repeat(np.arange(1, images + 1), per_image)
    boxes = np.column_stack(
        [
            rng.uniform(0, 400, people),
            rng.uniform(0, 250, people),
            rng.uniform(30, 230, people),
            rng.uniform(60, 220, people),
        ]
    ).round(2)
    corner, size = boxes[:, None, :2], boxes[:, None, 2:]
    points = (corner + rng.random((people, 17, 2)) * size).round(1)
    labelled = rng.random((people, 17)) < 0.7
    labelled[:, 0] = True
    keypoints = np.concatenate([points * labelled[..., None], 2 * labelled[..., None]], axis=2)
    keypoints = keypoints.reshape(people, 51).astype(int).tolist()
    polygons = (corner + rng.random((people, 40, 2)) * size).round(2).reshape(people, 80).tolist()
    counts, areas = labelled.sum(1).tolist(), (boxes[:, 2] * boxes[:, 3] * 0.6).round(3).tolist()
    box_lists, ids = boxes.tolist(), image_ids.tolist()
    annotations = [
        {
            "segmentation": [polygons[n]],
            "num_keypoints": counts[n],
            "area": areas[n],
            "iscrowd": 0,
            "keypoints": keypoints[n],
            "image_id": ids[n],
            "bbox": box_lists[n],
            "category_id": 1,
            "id": 900_000 + n,
        }
        for n in range(people)
    ]
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": names,
        "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13]],
    }

    def coco(count: int, offset: int, people_of: list) -> dict:
        return {
            "info": {"description": "posecore data_scale benchmark"},
            "licenses": [],
            "categories": [category],
            "images": [
                {"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}
                for i in range(offset + 1, offset + count + 1)
            ],
            "annotations": people_of,
        }

    folder = root / "annotations"
    folder.mkdir(parents=True)
    for name in ("train2017", "val2017"):
        (root / name).mkdir()
    train = folder / "person_keypoints_train2017.json"
    train.write_text(json.dumps(coco(images, 0, annotations)))
    (folder / "person_keypoints_val2017.json").write_text(json.dumps(coco(2, 0, annotations[:2])))
    return train


# --- measurements, each run in a fresh process ---------------------------------------------------


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the high-water mark of
    the process it was forked from across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def private_memory() -> int:
    """(USS, Private_Dirty) of this process in bytes: USS = Private_Clean + Private_Dirty; the
    dirty part is what copy-on-write copied."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) * 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Private_Dirty"]


class Metadata:
    """A sample's metadata path (the person's arrays and image path, what PoseDataset.__getitem__
    reads before decoding) over `people`, a People store or a list of Instances. Every
    REPORT_EVERY-th item a worker serves (its first included) carries the worker's USS."""

    REPORT_EVERY = 2000

    def __init__(self, people) -> None:
        self.people = people
        self.served = 0

    def __len__(self) -> int:
        return len(self.people)

    def __getitem__(self, index: int):
        import torch

        person = self.people[int(index)]
        center = np.asarray(person.bbox_center, np.float64)
        scale = np.asarray(person.bbox_scale, np.float64)
        joints = np.asarray(person.joints, np.float64) * (np.asarray(person.visible) > 0)[:, None]
        item = {
            "joints": torch.from_numpy(joints.astype(np.float32)),
            "box": torch.from_numpy(np.concatenate([center, scale]).astype(np.float32)),
            "path": torch.tensor(len(person.image_path)),
            "uss": torch.tensor([-1, -1]),
            "worker": torch.tensor(torch.utils.data.get_worker_info().id),
        }
        if self.served % self.REPORT_EVERY == 0:
            item["uss"] = torch.tensor(private_memory(), dtype=torch.int64)
        self.served += 1
        return item


def measure_epoch(people, order: list[int], workers: int) -> dict:
    from torch.utils.data import DataLoader

    loader = DataLoader(Metadata(people), batch_size=64, sampler=order, num_workers=workers)
    readings: dict[int, list[int]] = {}
    started = time.perf_counter()
    for batch in loader:
        for uss, worker in zip(batch["uss"].tolist(), batch["worker"].tolist()):
            if uss[0] >= 0:
                readings.setdefault(worker, []).append(uss)
    seconds = time.perf_counter() - started
    # the worker that grew most, from its first reading to its last (near the end of the epoch)
    first, last = max(((r[0], r[-1]) for r in readings.values()), key=lambda pair: pair[1][0] - pair[0][0])
    return {
        "epoch_s": seconds,
        "items": len(order),
        "worker_uss_first": first[0],
        "worker_uss_last": last[0],
        "worker_growth": last[0] - first[0],
        "worker_dirty_growth": last[1] - first[1],
    }


def phase(name: str, root: Path, workers: int) -> dict:
    from posecore import data
    from posecore.params import load_params

    params = load_params("fastpose", {"data.root": str(root), "data.workers": workers})
    before = rss()
    started = time.perf_counter()
    if name == "objects":
        people = data.load_instances(params, "train")[0]
        result = {"build_s": time.perf_counter() - started, "dataset_rss": rss() - before}
        paths: dict[str, list[int]] = {}
        for index, person in enumerate(people):
            paths.setdefault(person.image_path, []).append(index)
        groups = list(paths.values())
    else:
        dataset = data.build_dataset(params, "train")
        result = {"build_s": time.perf_counter() - started, "dataset_rss": rss() - before}
        people = dataset.instances
        result["arrays_mb"] = people.nbytes / MB
        for array in people.arrays.values():  # read every page once: all of it resident
            np.add.reduce(np.asarray(array).ravel(), dtype=np.float64)
        groups = dataset.image_groups()
        result["dataset_rss_touched"] = rss() - before
        if people.folder is not None:
            for key, verify in (("verify_s", True), ("check_s", False)):
                started = time.perf_counter()
                data.People.open(people.folder, verify=verify)
                result[key] = time.perf_counter() - started
    result["people"] = len(people)
    if name in ("cached", "objects"):
        order = data.step_order(groups, 0, 0, 64, 1, 0, 1)[0]
        result.update(measure_epoch(people, order, workers))
    result["peak_rss"] = peak_rss()
    return result


def run_phase(name: str, root: Path, workers: int, env: dict) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--root", str(root), "--workers", str(workers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=COCO_TRAIN_PEOPLE)
    parser.add_argument("--images", type=int, default=COCO_TRAIN_IMAGES)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--compare", action="store_true", help="also the per-person object list")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.root), args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="posecore-data-scale-") as temp:
        temp = Path(temp)
        started = time.perf_counter()
        ann_file = write_coco_file(temp / "coco", args.people, args.images)
        print(
            f"wrote {ann_file.name}: {args.people:,} people on {args.images:,} images, "
            f"{ann_file.stat().st_size / MB:.0f} MB, in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        env = {**os.environ, "POSECORE_OUTPUTS": str(temp / "outputs"), "OMP_NUM_THREADS": "1"}
        cold = run_phase("cold", temp / "coco", args.workers, env)
        cached = run_phase("cached", temp / "coco", args.workers, env)
        rows = [
            (
                "build_dataset, cold (parse + cache)",
                f"{cold['build_s']:.1f} s",
                f"peak RSS {cold['peak_rss'] / MB:.0f} MB",
            ),
            (
                "build_dataset, cached (target <= 3 s)",
                f"{cached['build_s']:.2f} s",
                f"peak RSS {cached['peak_rss'] / MB:.0f} MB",
            ),
            (
                "cache verification, first load in a process",
                f"{cached['verify_s']:.2f} s",
                f"hashes + values of {cached['people']:,} people; a later load checks headers and sizes in "
                f"{cached['check_s'] * 1000:.1f} ms",
            ),
            (
                "dataset memory (target <= 80 MB)",
                f"{cached['dataset_rss_touched'] / MB:.0f} MB",
                f"RSS added after build {cached['dataset_rss'] / MB:.0f} MB; arrays {cached['arrays_mb']:.0f} MB "
                "(file pages, shared)",
            ),
            (
                "worker private growth, 1 epoch (target <= 20 MB)",
                f"{cached['worker_growth'] / MB:.1f} MB",
                f"USS {cached['worker_uss_first'] / MB:.0f} -> {cached['worker_uss_last'] / MB:.0f} MB "
                f"(Private_Dirty +{cached['worker_dirty_growth'] / MB:.1f} MB) over "
                f"{cached['items']:,} items in {cached['epoch_s']:.0f} s, {args.workers} worker(s)",
            ),
        ]
        if args.compare:
            objects = run_phase("objects", temp / "coco", args.workers, env)
            rows += [
                (
                    "before: people as Instance objects",
                    f"{objects['dataset_rss'] / MB:.0f} MB",
                    f"parse {objects['build_s']:.1f} s, peak RSS {objects['peak_rss'] / MB:.0f} MB",
                ),
                (
                    "before: worker private growth, 1 epoch",
                    f"{objects['worker_growth'] / MB:.1f} MB",
                    f"USS {objects['worker_uss_first'] / MB:.0f} -> {objects['worker_uss_last'] / MB:.0f} MB "
                    f"(Private_Dirty +{objects['worker_dirty_growth'] / MB:.1f} MB)",
                ),
            ]
        width = max(len(row[0]) for row in rows)
        print(f"{cached['people']:,} people")
        for what, value, detail in rows:
            print(f"{what:<{width}}  {value:>9}  {detail}")


if __name__ == "__main__":
    main()
