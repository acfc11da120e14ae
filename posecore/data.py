"""Top-down pose datasets: COCO / MPII person instances -> normalized crops and heatmap targets.

`build_dataset(params, split)` reads the official layouts (COCO 2017 keypoints; MPII as mmpose
converted it) and returns a `PoseDataset`. One item is one person: the image is decoded, cropped
around the person with one affine warp (with the references' augmentation when training) and
the joints are encoded as Gaussian heatmaps (posecore.codec).

Item keys (all default_collate-able tensors):
  image float32 [3, H, W] ((rgb / 255 - mean) / std), target float32 [K, Hh, Wh],
  target_weight float32 [K], joints float32 [K, 3] (x, y, labelled) in original-image pixels
  (mirrored when the item was flipped; zeros for detector boxes), bbox_center float32 [2],
  bbox_scale float32 [2] (pixels), rotation float32 [], bbox_score float32 [], image_id int64 [],
  index int64 [] (dataset position of the returned sample), area float32 [] (crop box area).

`make_synthetic` writes a small drawn-figures dataset in the same layouts (the CPU demo's data).
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import warnings
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posecore.codec import encode_heatmaps
from posecore.geometry import affine_matrix, box_to_center_scale, compose, transform_points
from posecore.keypoints import KeypointInfo, keypoint_info
from posecore.runs import atomic_write, outputs_root, read_json, resolve_path, write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PREPARE_NOTEBOOK = "notebooks/prepare_data.ipynb"
COCO_LAYOUT = (
    "annotations/person_keypoints_train2017.json, annotations/person_keypoints_val2017.json, "
    "train2017/, val2017/ (download: https://cocodataset.org/#download, '2017 Train/Val images' "
    "and '2017 Train/Val annotations')"
)
MPII_LAYOUT = (
    "annotations/mpii_train.json, annotations/mpii_val.json, annotations/mpii_gt_val.mat, images/ "
    "(images: http://human-pose.mpi-inf.mpg.de/#download; json annotations and mpii_gt_val.mat: "
    "mmpose's converted MPII annotations, see mmpose's dataset preparation docs)"
)
MPII_PIXEL_STD = 200.0  # MPII's `scale` is the person height in units of 200 px
# Reduced JPEG decoding: (factor, cv2 flag); the DCT decoder scales almost for free.
_REDUCED_READS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


class DataLayoutError(FileNotFoundError):
    """A dataset root or annotation file that is not where the layout says."""


class ImageReadError(OSError):
    """An image file that is missing, truncated or not decodable."""


@dataclass
class Instance:
    """One person crop to produce. joints [K, 2] / visible [K] in original-image pixels."""

    image_path: str
    image_id: int
    image_size: tuple[int, int] | None  # (w, h) when the annotations give it
    bbox_center: np.ndarray
    bbox_scale: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    bbox_xyxy: np.ndarray | None = None  # the person box, for DPG jitter
    bbox_score: float = 1.0


# --------------------------------------------------------------------------- entry points

def build_dataset(params, split: str) -> "PoseDataset":
    """The `train` / `val` / `test` split of params.data as a PoseDataset.

    COCO: train and val on clean ground-truth person boxes; test on the val images with the
    detector boxes of data.det_file. MPII: train / val from the json annotations (test = val).
    data.root "" means the synthetic demo data under outputs/data/synthetic_<dataset>; a missing
    data.root whose folder name starts with "synthetic" is generated too (make_synthetic defaults).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = params.data
    info = keypoint_info(data.dataset)
    root = _dataset_root(data)
    if data.dataset == "coco":
        instances, ann_file = _coco_instances(root, split, data, info)
        gt_mat = None
    else:
        instances, ann_file = _mpii_instances(root, split, data, info)
        mat = root / "annotations" / "mpii_gt_val.mat"
        gt_mat = str(mat) if mat.is_file() else None
    return PoseDataset(instances, info, params, train=split == "train", ann_file=str(ann_file),
                       gt_mat=gt_mat, split=split)


def check_layout(root, dataset: str) -> list[str]:
    """Problems with a dataset folder (missing files or folders), each naming where to get it."""
    root = Path(root)
    if dataset == "coco":
        needed = ["annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json",
                  "train2017", "val2017"]
        layout = COCO_LAYOUT
    elif dataset == "mpii":
        needed = ["annotations/mpii_train.json", "annotations/mpii_val.json",
                  "annotations/mpii_gt_val.mat", "images"]
        layout = MPII_LAYOUT
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: ['coco', 'mpii']")
    if not root.is_dir():
        return [f"{root} does not exist; expected {dataset.upper()} layout: {layout}"]
    return [f"missing {root / name}; expected {dataset.upper()} layout: {layout}"
            for name in needed if not (root / name).exists()]


# --------------------------------------------------------------------------- the dataset

class _SkipCounter:
    """Skipped-image count shared by this process and the DataLoader workers started from it."""

    def __init__(self, value: int = 0):
        self._shared = multiprocessing.Value("q", value)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    def increment(self) -> int:
        with self._shared.get_lock():
            self._shared.value += 1
            return int(self._shared.value)

    def __reduce__(self):
        # Shared memory can only travel to a process being started; any other pickling
        # (deepcopy, saving) gets a snapshot of the count.
        if get_spawning_popen() is not None:
            return (_restore_counter, (self._shared,))
        return (_SkipCounter, (self.value,))


def _restore_counter(shared) -> _SkipCounter:
    counter = _SkipCounter.__new__(_SkipCounter)
    counter._shared = shared
    return counter


class PoseDataset(Dataset):
    """Person instances -> training/eval items (see the module docstring for the keys)."""

    def __init__(self, instances: list[Instance], info: KeypointInfo, params, train: bool,
                 ann_file: str, gt_mat: str | None, split: str):
        data = params.data
        self.instances = instances
        self.info = info
        self.ann_file = ann_file
        self.gt_mat = gt_mat
        self.split = split
        self.train = train
        self.input_size = (int(data.input_size[0]), int(data.input_size[1]))
        self.heatmap_size = (int(data.heatmap_size[0]), int(data.heatmap_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.sigma = float(data.sigma)
        self.padding = float(data.bbox_padding)
        self.flip = bool(data.flip)
        self.scale_factor = float(data.scale_factor)
        self.rot_factor = float(data.rot_factor)
        self.rot_prob = float(data.rot_prob)
        self.half_body_prob = float(data.half_body_prob)
        self.half_body_min_joints = int(data.half_body_min_joints)
        self.seed = int(params.train.seed)
        self.dpg_epoch = int(params.train.dpg_epoch)
        self.epoch = 0
        # Decoding a JPEG at 1/2..1/8 scale when the crop is that much smaller is the main
        # speed-up; eval keeps full decoding so that upstream checkpoints see the pixels they
        # were trained on.
        self.reduced_decode = train
        std = np.asarray(data.std, dtype=np.float32)
        self._pixel_scale = [np.float32(v) for v in 1.0 / (255.0 * std)]
        self._pixel_shift = [np.float32(v) for v in np.asarray(data.mean, dtype=np.float32) / std]
        self._flip_index = np.asarray(info.flip_index())
        self._upper_body = np.isin(np.arange(info.num_joints), info.upper_body)
        self._skipped = _SkipCounter()
        self._bad_files: set[str] = set()
        # The last decoded image, per process: people of one image sampled back to back (see
        # grouped_order) share one decode, the largest cost of a sample.
        self._last_read: tuple[tuple[str, int], np.ndarray] | None = None
        self._image_groups: list[list[int]] | None = None
        # OpenCV's thread pool does not survive fork: DataLoader workers forked from a process
        # whose pool has run hang on their first warp. Crops this small gain nothing from it.
        cv2.setNumThreads(1)

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def num_skipped(self) -> int:
        """Samples replaced because their image could not be read, summed over DataLoader workers."""
        return self._skipped.value

    @property
    def dpg(self) -> bool:
        # AlphaPose switches to DPG once epoch DPG_MILESTONE has finished, i.e. from the next one.
        return self.train and 0 <= self.dpg_epoch < self.epoch

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (train.seed, epoch, index) only."""
        self.epoch = int(epoch)

    def image_path(self, index: int) -> str:
        return self.instances[int(index)].image_path

    def image_groups(self) -> list[list[int]]:
        """Instance indices grouped by image, in dataset order."""
        if self._image_groups is None:
            groups: dict[str, list[int]] = {}
            for index, instance in enumerate(self.instances):
                groups.setdefault(instance.image_path, []).append(index)
            self._image_groups = list(groups.values())
        return self._image_groups

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_last_read"] = None  # never ship a decoded image to DataLoader workers
        return state

    def _read(self, path: str, reduction: int = 1) -> np.ndarray:
        key = (path, reduction)
        if self._last_read is None or self._last_read[0] != key:
            self._last_read = (key, read_image(path, reduction))
        return self._last_read[1]

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = int(index)
        for step in range(len(self.instances)):
            candidate = (index + step) % len(self.instances)
            path = self.instances[candidate].image_path
            if path in self._bad_files:
                continue
            try:
                return self._item(candidate)
            except ImageReadError as error:
                self._bad_files.add(path)
                count = self._skipped.increment()
                warnings.warn(f"posecore.data: skipping unreadable image {path} ({error}); sample "
                              f"{index} is replaced by a later readable one ({count} skipped so far, "
                              f"process {os.getpid()})", stacklevel=2)
        raise RuntimeError(f"no readable image among the {len(self.instances)} samples of the "
                           f"{self.split} split (first: {self.image_path(0)})")

    # ---------------------------------------------------------------- one sample

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        instance = self.instances[index]
        center = instance.bbox_center.astype(np.float64)
        scale = instance.bbox_scale.astype(np.float64)
        joints = instance.joints.astype(np.float64)
        visible = instance.visible.astype(np.float32)
        image, image_size = None, instance.image_size
        if image_size is None:
            image = self._read(instance.image_path)
            image_size = (image.shape[1], image.shape[0])
        rotation, flipped = 0.0, False
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            if self.dpg and instance.bbox_xyxy is not None:
                x0, y0, x1, y1 = dpg_jitter(instance.bbox_xyxy, image_size, rng)
                center, scale = box_to_center_scale((x0, y0, x1 - x0, y1 - y0), self.aspect_ratio, self.padding)
            if visible.sum() > self.half_body_min_joints and rng.random() < self.half_body_prob:
                half = half_body_box(joints, visible, self._upper_body, self.aspect_ratio, rng)
                if half is not None:
                    center, scale = half
            factor = self.scale_factor
            scale = scale * min(max(rng.standard_normal() * factor + 1, 1 - factor), 1 + factor)
            if rng.random() <= self.rot_prob:
                limit = 2 * self.rot_factor
                rotation = min(max(float(rng.standard_normal()) * self.rot_factor, -limit), limit)
            flipped = self.flip and rng.random() <= 0.5
            if flipped:
                mirror = image_size[0] - 1
                joints = joints[self._flip_index]
                visible = visible[self._flip_index]
                joints[:, 0] = mirror - joints[:, 0]
                center[0] = mirror - center[0]

        matrix = affine_matrix(center, scale, rotation, self.input_size)
        sampling = matrix
        if flipped:  # sample the unflipped image: no full-size copy
            sampling = compose(matrix, np.array([[-1.0, 0.0, image_size[0] - 1], [0.0, 1.0, 0.0]]))
        if image is None:
            reduction = self._reduction(scale) if self.reduced_decode else 1
            image = self._read(instance.image_path, reduction)
            if reduction > 1:
                # pixel i of a 1/r decode covers original pixels [r i, r i + r)
                offset = (reduction - 1) / 2.0
                sampling = compose(sampling, np.array([[reduction, 0.0, offset], [0.0, reduction, offset]]))
        crop = cv2.warpAffine(image, sampling, self.input_size, flags=cv2.INTER_LINEAR)

        joints_input = transform_points(joints, matrix)
        target, target_weight = encode_heatmaps(joints_input, visible, self.input_size,
                                                self.heatmap_size, self.sigma)
        pixels = self._normalize(crop)
        joints_out = np.concatenate([joints, (visible > 0)[:, None]], axis=1) * (visible > 0)[:, None]
        return {
            "image": torch.from_numpy(pixels),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
            "joints": torch.from_numpy(joints_out.astype(np.float32)),
            "bbox_center": torch.from_numpy(center.astype(np.float32)),
            "bbox_scale": torch.from_numpy(scale.astype(np.float32)),
            "rotation": torch.tensor(rotation, dtype=torch.float32),
            "bbox_score": torch.tensor(instance.bbox_score, dtype=torch.float32),
            "image_id": torch.tensor(instance.image_id, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "area": torch.tensor(float(scale[0] * scale[1]), dtype=torch.float32),
        }

    def _normalize(self, crop: np.ndarray) -> np.ndarray:
        """BGR uint8 [H, W, 3] crop -> normalized RGB float32 [3, H, W]."""
        pixels = np.empty((3,) + crop.shape[:2], dtype=np.float32)
        # one contiguous plane at a time: ~8x faster than a strided transpose + astype
        for channel, plane in enumerate(reversed(cv2.split(crop))):
            np.multiply(plane, self._pixel_scale[channel], out=pixels[channel], dtype=np.float32)
            pixels[channel] -= self._pixel_shift[channel]
        return pixels

    def _reduction(self, scale) -> int:
        """Largest decode reduction that still leaves the crop at least input resolution."""
        room = min(scale[0] / self.input_size[0], scale[1] / self.input_size[1])
        for factor in _REDUCED_READS:
            if room >= factor:
                return factor
        return 1


# --------------------------------------------------------------------------- augmentation helpers

def dpg_jitter(bbox_xyxy, image_size, rng) -> tuple[float, float, float, float]:
    """AlphaPose's DPG box jitter: 15% a random sub-patch of the box, else box edges moved by
    Gaussian offsets fitted to detector errors, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in bbox_xyxy)
    width, height = x1 - x0, y1 - y0
    image_w, image_h = image_size
    patch_scale = rng.random()
    if patch_scale > 0.85:
        patch_w, patch_h = patch_scale * width, patch_scale * height
        xmin = x0 + rng.random() * (width - patch_w)
        ymin = y0 + rng.random() * (height - patch_h)
        return xmin, ymin, xmin + patch_w + 1, ymin + patch_h + 1
    xmin = max(1.0, min(x0 + rng.normal(-0.0142, 0.1158) * width, image_w - 3))
    ymin = max(1.0, min(y0 + rng.normal(0.0043, 0.068) * height, image_h - 3))
    xmax = min(max(xmin + 2, x1 + rng.normal(0.0154, 0.1337) * width), image_w - 3)
    ymax = min(max(ymin + 2, y1 + rng.normal(-0.0013, 0.0711) * height), image_h - 3)
    return xmin, ymin, xmax, ymax


def half_body_box(joints, visible, upper_body_mask, aspect_ratio: float, rng):
    """(center, scale) around the upper or the lower body's labelled joints, or None."""
    labelled = visible > 0
    upper = joints[labelled & upper_body_mask]
    lower = joints[labelled & ~upper_body_mask]
    # The references draw a standard normal against 0.5 here: the upper body wins ~69%.
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0)
    w, h = chosen.max(axis=0) - chosen.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * 1.5


# --------------------------------------------------------------------------- image reading

def read_image(path, reduction: int = 1) -> np.ndarray:
    """uint8 BGR [H, W, 3] decoded by content (not extension), grayscale made 3-channel.

    `reduction` 2/4/8 decodes at that fraction of the size. Raises ImageReadError for a
    missing, truncated or undecodable file.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise ImageReadError(f"cannot read: {error.strerror or error}") from None
    if data.size == 0:
        raise ImageReadError("empty file")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:].tobytes():
        raise ImageReadError("truncated JPEG (no end-of-image marker)")
    # Annotations refer to the stored pixel grid: EXIF orientation is not applied (as in HRNet).
    flag = _REDUCED_READS.get(reduction, cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(data, flag)
    if image is None:
        raise ImageReadError("not a decodable image")
    return image


# --------------------------------------------------------------------------- annotation loading

def _dataset_root(data) -> Path:
    if not data.root:
        root = outputs_root() / "data" / f"synthetic_{data.dataset}"
        make_synthetic(root, dataset=data.dataset)
        return root
    root = resolve_path(data.root)
    if not root.is_dir() and root.name.startswith("synthetic"):
        # params/demo.yaml points at outputs/data/synthetic_coco: make it on first use
        log.info("data.root %s does not exist yet: generating the synthetic dataset there", root)
        return make_synthetic(root, dataset=data.dataset)
    if not root.is_dir():
        layout = COCO_LAYOUT if data.dataset == "coco" else MPII_LAYOUT
        raise DataLayoutError(
            f"data.root {root} does not exist. Expected the {data.dataset.upper()} layout: {layout}. "
            f"Run {PREPARE_NOTEBOOK} to check or create it (posecore.data.make_synthetic writes "
            "a synthetic dataset), or set data.root to the dataset folder.")
    return root


def _require_file(path: Path, what: str, dataset: str) -> Path:
    if not path.is_file():
        layout = COCO_LAYOUT if dataset == "coco" else MPII_LAYOUT
        raise DataLayoutError(
            f"{what} {path} does not exist. Expected the {dataset.upper()} layout under "
            f"{path.parent.parent}: {layout}. See {PREPARE_NOTEBOOK}.")
    return path


def _load_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-download or regenerate it "
                         f"(see {PREPARE_NOTEBOOK})") from None


def grouped_order(groups: list[list[int]], seed: int, epoch: int, world: int = 1, rank: int = 0,
                  group_by_image: bool = True) -> list[int]:
    """This rank's sample order for one epoch, a function of (seed, epoch) only.

    groups: instance indices per image (PoseDataset.image_groups()). With group_by_image the
    images are shuffled and each image's people stay adjacent, so one JPEG decode serves them
    all (COCO train has ~2.6 people per image); otherwise the people themselves are shuffled.
    The order is padded by wrapping around, as DistributedSampler does, so every rank gets the
    same count, and each rank takes a contiguous slice (keeping the groups together).
    """
    rng = np.random.default_rng((int(seed), int(epoch)))
    if group_by_image:
        order = [index for g in rng.permutation(len(groups)) for index in groups[g]]
    else:
        order = [int(i) for i in rng.permutation([index for group in groups for index in group])]
    per_rank = -(-len(order) // world)
    order = [order[i % len(order)] for i in range(per_rank * world)]
    return order[rank * per_rank:(rank + 1) * per_rank]


def _coco_instances(root: Path, split: str, data, info: KeypointInfo):
    subset = "train2017" if split == "train" else "val2017"
    ann_file = _require_file(root / "annotations" / f"person_keypoints_{subset}.json",
                             "COCO annotation file", "coco")
    coco = _load_json(ann_file)
    images = {int(img["id"]): img for img in coco.get("images", [])}
    image_dir = root / subset
    if split == "test":
        return _coco_detection_instances(root, data, images, image_dir), ann_file

    by_image: dict[int, list[dict]] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    instances = []
    for image_id in sorted(images):
        image = images[image_id]
        size = _image_size(image)
        for ann in by_image.get(image_id, []):
            instance = _coco_gt_instance(ann, image, size, image_dir, data, info)
            if instance is not None:
                instances.append(instance)
    return instances, ann_file


def _image_size(image: dict) -> tuple[int, int] | None:
    if image.get("width") and image.get("height"):
        return int(image["width"]), int(image["height"])
    return None


def _coco_gt_instance(ann, image, size, image_dir: Path, data, info: KeypointInfo) -> Instance | None:
    """A clean person instance (HRNet / mmpose rules) or None."""
    if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0) or ann.get("area", 1) <= 0:
        return None
    keypoints = np.asarray(ann.get("keypoints") or [], dtype=np.float64)
    if keypoints.size != info.num_joints * 3:
        return None
    keypoints = keypoints.reshape(info.num_joints, 3)
    if not (keypoints[:, 2] > 0).any():
        return None
    x, y, w, h = (float(v) for v in (ann.get("bbox") or (0, 0, 0, 0)))
    # clip to the image the way the references clean boxes (pixel-inclusive corners)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = x0 + max(0.0, w - 1), y0 + max(0.0, h - 1)
    if size is not None:
        x1, y1 = min(size[0] - 1.0, x1), min(size[1] - 1.0, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    center, scale = box_to_center_scale((x0, y0, x1 - x0, y1 - y0),
                                        data.input_size[0] / data.input_size[1], data.bbox_padding)
    return Instance(
        image_path=str(image_dir / image["file_name"]), image_id=int(image["id"]), image_size=size,
        bbox_center=center, bbox_scale=scale,
        joints=keypoints[:, :2].astype(np.float32), visible=(keypoints[:, 2] > 0).astype(np.float32),
        bbox_xyxy=np.array([x0, y0, x1, y1], dtype=np.float32))


def _det_file_path(root: Path, det_file: str) -> Path:
    if not det_file:
        raise ValueError("the test split needs person boxes: set data.det_file to a COCO-results json "
                         "(image_id, category_id, bbox [x, y, w, h], score)")
    candidates = [resolve_path(det_file)]
    if not Path(det_file).is_absolute():
        candidates.append(root / det_file)
    for path in candidates:
        if path.is_file():
            return path
    raise DataLayoutError(f"data.det_file {det_file!r} not found (looked at "
                          f"{', '.join(str(p) for p in candidates)}); give a path relative to the "
                          "repository root, to data.root, or an absolute one")


def _coco_detection_instances(root: Path, data, images: dict, image_dir: Path) -> list[Instance]:
    det_path = _det_file_path(root, data.det_file)
    detections = _load_json(det_path)
    if not isinstance(detections, list):
        raise ValueError(f"{det_path}: expected a COCO-results list of detections")
    aspect = data.input_size[0] / data.input_size[1]
    num_joints = keypoint_info(data.dataset).num_joints
    instances, unknown = [], set()
    for det in detections:
        if det.get("category_id", 1) != 1 or float(det.get("score", 1.0)) < data.det_score_thr:
            continue
        image_id = int(det["image_id"])
        if image_id not in images:
            unknown.add(image_id)
            continue
        x, y, w, h = (float(v) for v in det["bbox"][:4])
        if w <= 0 or h <= 0:
            continue
        center, scale = box_to_center_scale((x, y, w, h), aspect, data.bbox_padding)
        image = images[image_id]
        instances.append(Instance(
            image_path=str(image_dir / image["file_name"]), image_id=image_id, image_size=_image_size(image),
            bbox_center=center, bbox_scale=scale, joints=np.zeros((num_joints, 2), np.float32),
            visible=np.zeros(num_joints, np.float32), bbox_xyxy=None, bbox_score=float(det.get("score", 1.0))))
    if unknown:
        warnings.warn(f"{det_path}: {len(unknown)} image id(s) not in the val annotations were ignored "
                      f"(e.g. {sorted(unknown)[:5]})", stacklevel=3)
    instances.sort(key=lambda inst: inst.image_id)
    return instances


def _mpii_instances(root: Path, split: str, data, info: KeypointInfo):
    subset = "train" if split == "train" else "val"
    ann_file = _require_file(root / "annotations" / f"mpii_{subset}.json", "MPII annotation file", "mpii")
    annotations = _load_json(ann_file)
    image_dir = root / "images"
    aspect_h_over_w = data.input_size[1] / data.input_size[0]
    instances = []
    for position, ann in enumerate(annotations):
        center = np.asarray(ann["center"], dtype=np.float64)
        scale = float(ann["scale"])
        if center[0] != -1:  # the references' adjustment: move down 15 px per unit scale, pad 25%
            center[1] += 15 * scale
            scale *= 1.25
        center -= 1  # MATLAB 1-based -> 0-based
        width = scale * MPII_PIXEL_STD
        joints = np.asarray(ann.get("joints", np.zeros((info.num_joints, 2))), dtype=np.float64) - 1
        visible = np.asarray(ann.get("joints_vis", np.zeros(info.num_joints)), dtype=np.float32)
        stem = Path(ann["image"]).stem
        instances.append(Instance(
            image_path=str(image_dir / ann["image"]),
            image_id=int(stem) if stem.isdigit() else position, image_size=None,
            bbox_center=center.astype(np.float32),
            # the references zoom by the width only; the height follows the input aspect ratio
            bbox_scale=np.array([width, width * aspect_h_over_w], dtype=np.float32),
            joints=joints.astype(np.float32), visible=(visible > 0).astype(np.float32)))
    return instances, ann_file


# --------------------------------------------------------------------------- synthetic data

SYNTHETIC_VERSION = 1
_MANIFEST = "synthetic.json"
_MPII_MAT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                   "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
_SKIN_TONES = ((60, 90, 150), (90, 140, 200), (120, 170, 225), (150, 190, 235), (40, 60, 100))


def make_synthetic(root, dataset: str = "coco", num_train: int = 700, num_val: int = 80, seed: int = 0,
                   image_size=256) -> Path:
    """Write a deterministic synthetic dataset of drawn people in the official layout; returns root.

    COCO layout: annotations/person_keypoints_{train,val}2017.json, train2017/, val2017/.
    MPII layout: annotations/mpii_{train,val}.json, annotations/mpii_gt_val.mat, images/.
    `num_train` / `num_val` count images (1-4 people each, ~2.2 on average); `image_size` is an
    int or (w, h). A folder that already holds a complete dataset made with the same arguments
    is left as it is.
    """
    if dataset not in ("coco", "mpii"):
        raise ValueError(f"dataset must be 'coco' or 'mpii', got {dataset!r}")
    root = Path(root)
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(v) for v in image_size)
    settings = {"version": SYNTHETIC_VERSION, "dataset": dataset, "num_train": int(num_train),
                "num_val": int(num_val), "seed": int(seed), "image_size": list(size)}
    manifest = root / _MANIFEST
    if manifest.is_file() and not check_layout(root, dataset):
        try:
            if read_json(manifest).get("settings") == settings:
                return root
        except (OSError, ValueError):
            pass  # a damaged manifest: regenerate
    from tqdm.auto import tqdm

    counts = {}
    for split_number, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        rng = np.random.default_rng((int(seed), split_number))
        scenes = []
        for i in tqdm(range(int(count)), desc=f"synthetic {dataset} {split}", leave=False):
            image, people = draw_scene(rng, size)
            scenes.append((image, people))
        if dataset == "coco":
            counts[split] = _write_coco_split(root, split, scenes, size)
        else:
            counts[split] = _write_mpii_split(root, split, scenes)
    # written last: its presence marks a complete dataset
    write_json(manifest, {"settings": settings, "people": counts})
    log.info("synthetic %s dataset in %s: %s people", dataset, root, counts)
    return root


def draw_scene(rng, size) -> tuple[np.ndarray, list[dict]]:
    """One synthetic image (BGR uint8 [H, W, 3]) and its people.

    Each person: "points" {name: (x, y)} for the COCO and MPII joints, "visibility" {name: 0/1/2}
    (0 outside the image, 1 hidden by a later person or an occluder, 2 visible), "bbox" [x, y, w, h],
    "area" (silhouette pixels), "head_box" [x0, y0, x1, y1].
    """
    width, height = size
    image = _background(rng, width, height)
    owner = np.zeros((height, width), np.uint8)  # 0 background, p + 1 person p, 255 occluder
    people = []
    count = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.25, 0.1]))
    placed: list[float] = []
    for p in range(count):
        person_height = rng.uniform(0.28, 0.8) * height
        for _ in range(10):  # spread people out; some overlap is wanted (occlusion)
            x = rng.uniform(0.1, 0.9) * width
            if all(abs(x - other) > 0.25 * person_height for other in placed):
                break
        placed.append(x)
        y = rng.uniform(0.4 * person_height, height - 0.25 * person_height)
        points = _figure_points(rng, person_height, (x, y))
        mask = np.zeros((height, width), np.uint8)
        _draw_figure(image, mask, points, person_height, rng)
        owner[mask > 0] = p + 1
        pixels = cv2.countNonZero(mask)
        if pixels == 0:
            continue
        left, top, box_w, box_h = cv2.boundingRect(mask)
        radius = points.pop("head_radius")
        cx, cy = points["head_center"]
        people.append({"points": points, "mask_pixels": int(pixels), "id": p + 1,
                       "bbox": [float(left), float(top), float(box_w), float(box_h)],
                       "head_box": [cx - radius, cy - radius, cx + radius, cy + radius]})
    for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
        _draw_occluder(rng, image, owner, people)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    for person in people:
        person["visibility"] = {name: _visibility(owner, person["id"], xy) for name, xy in person["points"].items()}
        person["area"] = float(person.pop("mask_pixels"))
    return image, people


def _background(rng, width: int, height: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # linear gradient between two colours
        angle = rng.uniform(0, 2 * np.pi)
        xs = np.linspace(0, 1, width, dtype=np.float32)[None]
        ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        t = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        first, second = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
        image = first + t[..., None] * (second - first)
    elif kind == 1:  # smooth colour blobs
        coarse = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.float32)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    else:  # flat colour with texture noise
        image = rng.uniform(0, 255, 3) + 20 * rng.standard_normal((height, width, 3), dtype=np.float32)
    image = np.clip(image, 0, 255, dtype=np.float32)
    for _ in range(rng.integers(2, 10)):  # clutter
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        a = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        b = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        shape = rng.integers(3)
        if shape == 0:
            cv2.rectangle(image, a, b, colour, -1 if rng.random() < 0.5 else int(rng.integers(1, 4)))
        elif shape == 1:
            cv2.circle(image, a, int(rng.uniform(3, 0.15 * width)), colour, -1)
        else:
            cv2.line(image, a, b, colour, int(rng.integers(1, 5)), cv2.LINE_AA)
    return image


def _figure_points(rng, h: float, pelvis_xy) -> dict:
    """Named joints of a front-facing figure (its left on the image right) in image pixels."""
    body = rng.uniform(0.85, 1.2)
    torso = 0.30 * h
    head_radius = 0.07 * h
    local = {
        "pelvis": (0.0, 0.0), "thorax": (0.0, -torso),
        "left_hip": (0.075 * h * body, 0.0), "right_hip": (-0.075 * h * body, 0.0),
        "left_shoulder": (0.115 * h * body, -torso), "right_shoulder": (-0.115 * h * body, -torso),
    }
    head = np.array([0.0, -torso - 0.05 * h - head_radius])
    local["head_center"] = tuple(head)
    local["head_top"] = (0.0, head[1] - head_radius)
    local["upper_neck"] = (0.0, 0.5 * (-torso + head[1] + head_radius))
    yaw = rng.uniform(-0.45, 0.45) * head_radius
    local["nose"] = (head[0] + yaw, head[1] + 0.2 * head_radius)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        local[f"{side}_eye"] = (head[0] + sign * 0.38 * head_radius + yaw, head[1] - 0.15 * head_radius)
        local[f"{side}_ear"] = (head[0] + sign * 0.95 * head_radius + 0.3 * yaw, head[1])
        # arms: angle from hanging straight down, positive = away from the body
        shoulder = np.array(local[f"{side}_shoulder"])
        upper_angle = rng.uniform(-0.25, 2.7)
        fore_angle = upper_angle + rng.uniform(-1.5, 1.5)
        elbow = shoulder + 0.17 * h * np.array([sign * np.sin(upper_angle), np.cos(upper_angle)])
        wrist = elbow + 0.16 * h * np.array([sign * np.sin(fore_angle), np.cos(fore_angle)])
        hip = np.array(local[f"{side}_hip"])
        thigh_angle = rng.uniform(-0.12, 0.6)
        shin_angle = thigh_angle + rng.uniform(-0.6, 0.4)
        knee = hip + 0.25 * h * rng.uniform(0.6, 1.0) * np.array([sign * np.sin(thigh_angle), np.cos(thigh_angle)])
        ankle = knee + 0.24 * h * np.array([sign * np.sin(shin_angle), np.cos(shin_angle)])
        local.update({f"{side}_elbow": tuple(elbow), f"{side}_wrist": tuple(wrist),
                      f"{side}_knee": tuple(knee), f"{side}_ankle": tuple(ankle)})
    lean = float(np.clip(rng.normal(0, 0.2), -0.6, 0.6))
    cos, sin = np.cos(lean), np.sin(lean)
    rotate = np.array([[cos, -sin], [sin, cos]])
    offset = np.asarray(pelvis_xy, dtype=np.float64)
    points = {name: tuple(float(v) for v in rotate @ np.asarray(xy) + offset) for name, xy in local.items()}
    points["head_radius"] = head_radius
    return points


def _draw_figure(image, mask, points, h: float, rng) -> None:
    """Paint the figure on `image` and its silhouette on `mask`."""
    shirt = tuple(float(c) for c in rng.uniform(20, 255, 3))
    sleeve = tuple(0.75 * c for c in shirt)
    pants = tuple(float(c) for c in rng.uniform(20, 220, 3))
    shin = tuple(min(255.0, 0.6 * c + 60) for c in pants)
    skin = tuple(float(c) + rng.uniform(-15, 15) for c in _SKIN_TONES[rng.integers(len(_SKIN_TONES))])
    dark = tuple(float(c) for c in rng.uniform(0, 60, 3))
    limb = max(2, int(round(0.055 * h)))
    thin = max(2, int(round(0.045 * h)))

    def pt(name):
        x, y = points[name]
        return int(round(x)), int(round(y))

    def line(a, b, colour, thickness):
        cv2.line(image, pt(a), pt(b), colour, thickness, cv2.LINE_AA)
        cv2.line(mask, pt(a), pt(b), 255, thickness)

    def disc(centre, radius, colour):
        centre = (int(round(centre[0])), int(round(centre[1])))
        cv2.circle(image, centre, max(1, int(round(radius))), colour, -1, cv2.LINE_AA)
        cv2.circle(mask, centre, max(1, int(round(radius))), 255, -1)

    for side in ("left", "right"):
        line(f"{side}_hip", f"{side}_knee", pants, limb)
        line(f"{side}_knee", f"{side}_ankle", shin, thin)
        disc(points[f"{side}_ankle"], 0.035 * h, dark)
    torso = np.array([pt("left_shoulder"), pt("right_shoulder"), pt("right_hip"), pt("left_hip")], np.int32)
    cv2.fillPoly(image, [torso], shirt, cv2.LINE_AA)
    cv2.fillPoly(mask, [torso], 255)
    line("thorax", "upper_neck", skin, thin)
    for side in ("left", "right"):
        line(f"{side}_shoulder", f"{side}_elbow", sleeve, limb)
        line(f"{side}_elbow", f"{side}_wrist", skin, thin)
        disc(points[f"{side}_wrist"], 0.03 * h, tuple(0.8 * c for c in skin))
    radius = points["head_radius"]
    ear = tuple(0.8 * c for c in skin)
    disc(points["left_ear"], 0.28 * radius, ear)
    disc(points["right_ear"], 0.28 * radius, ear)
    disc(points["head_center"], radius, skin)
    hair = (points["head_center"][0], points["head_center"][1] - 0.75 * radius)
    cv2.ellipse(image, (int(hair[0]), int(hair[1])), (max(1, int(0.8 * radius)), max(1, int(0.35 * radius))),
                0, 0, 360, dark, -1, cv2.LINE_AA)
    for side in ("left", "right"):
        disc(points[f"{side}_eye"], max(1.0, 0.14 * radius), (20.0, 20.0, 20.0))
    disc(points["nose"], max(1.0, 0.14 * radius), (40.0, 40.0, 170.0))


def _draw_occluder(rng, image, owner, people) -> None:
    if not people:
        return
    person = people[rng.integers(len(people))]
    names = [n for n in person["points"] if n not in ("head_center",)]
    cx, cy = person["points"][names[rng.integers(len(names))]]
    half = rng.uniform(0.08, 0.2) * person["bbox"][3] + 3
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    stamp = np.zeros(owner.shape, np.uint8)
    a = (int(cx - half * rng.uniform(0.5, 1.5)), int(cy - half))
    b = (int(cx + half * rng.uniform(0.5, 1.5)), int(cy + half))
    if rng.random() < 0.5:
        cv2.rectangle(image, a, b, colour, -1)
        cv2.rectangle(stamp, a, b, 255, -1)
    else:
        axes = (max(1, (b[0] - a[0]) // 2), max(1, (b[1] - a[1]) // 2))
        cv2.ellipse(image, (int(cx), int(cy)), axes, 0, 0, 360, colour, -1)
        cv2.ellipse(stamp, (int(cx), int(cy)), axes, 0, 0, 360, 255, -1)
    owner[stamp > 0] = 255


def _visibility(owner, person_id: int, xy) -> int:
    height, width = owner.shape
    x, y = xy
    if not (0 <= x < width and 0 <= y < height):
        return 0
    xi, yi = int(x), int(y)
    window = owner[max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2]
    return 2 if (window == person_id).any() else 1


def _write_image(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    # regenerable files: the manifest written last is what marks the set complete
    path.write_bytes(encoded.tobytes())


def _write_coco_split(root: Path, split: str, scenes, size) -> int:
    info = keypoint_info("coco")
    subset = f"{split}2017"
    (root / subset).mkdir(parents=True, exist_ok=True)
    first_id = 1 if split == "train" else 1_000_001
    images, annotations = [], []
    for i, (image, people) in enumerate(scenes):
        image_id = first_id + i
        file_name = f"{image_id:012d}.jpg"
        _write_image(root / subset / file_name, image)
        images.append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
        for person in people:
            keypoints = []
            for name in info.joint_names:
                v = person["visibility"][name]
                x, y = person["points"][name] if v else (0.0, 0.0)
                keypoints += [round(x, 2), round(y, 2), v]
            num_keypoints = sum(1 for name in info.joint_names if person["visibility"][name])
            if num_keypoints == 0:
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "iscrowd": 0, "bbox": [round(v, 2) for v in person["bbox"]],
                                "area": person["area"], "num_keypoints": num_keypoints,
                                "keypoints": keypoints})
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(info.joint_names),
                   "skeleton": [[a + 1, b + 1] for a, b in info.skeleton]}]
    write_json(root / "annotations" / f"person_keypoints_{subset}.json",
               {"info": {"description": "posecore synthetic people", "version": SYNTHETIC_VERSION},
                "licenses": [], "images": images, "annotations": annotations, "categories": categories})
    return len(annotations)


def _write_mpii_split(root: Path, split: str, scenes) -> int:
    from scipy.io import savemat

    info = keypoint_info("mpii")
    (root / "images").mkdir(parents=True, exist_ok=True)
    first = 1 if split == "train" else 500_000_001
    entries, heads = [], []
    for i, (image, people) in enumerate(scenes):
        name = f"{first + i:09d}.jpg"
        _write_image(root / "images" / name, image)
        for person in people:
            labelled = [person["visibility"][j] > 0 for j in info.joint_names]
            if sum(labelled) < 4:
                continue
            # MATLAB 1-based pixels; MPII writes -1 for joints it has no position for
            joints = [[round(person["points"][j][0] + 1, 2), round(person["points"][j][1] + 1, 2)]
                      if ok else [-1.0, -1.0] for j, ok in zip(info.joint_names, labelled)]
            x, y, w, h = person["bbox"]
            scale = max(w, h) / MPII_PIXEL_STD
            # the loaders move the centre down by 15 px per unit scale: store it that much higher
            center = [x + w * 0.5 + 1, y + h * 0.5 - 15 * scale + 1]
            entries.append({"image": name, "center": [round(c, 2) for c in center], "scale": round(scale, 4),
                            "joints": joints, "joints_vis": [int(v) for v in labelled]})
            heads.append([[c + 1 for c in person["head_box"][:2]], [c + 1 for c in person["head_box"][2:]]])
    write_json(root / "annotations" / f"mpii_{split}.json", entries)
    if split == "val":
        joints = np.array([e["joints"] for e in entries], dtype=np.float64).reshape(-1, info.num_joints, 2)
        missing = 1 - np.array([e["joints_vis"] for e in entries], dtype=np.uint8).reshape(-1, info.num_joints)
        names = np.empty((1, len(_MPII_MAT_NAMES)), dtype=object)
        names[0, :] = _MPII_MAT_NAMES
        mat = {"dataset_joints": names, "jnt_missing": missing.T,
               "pos_gt_src": joints.transpose(1, 2, 0),
               "headboxes_src": np.array(heads, dtype=np.float64).reshape(-1, 2, 2).transpose(1, 2, 0)}
        atomic_write(root / "annotations" / "mpii_gt_val.mat", lambda f: savemat(f, mat))
    return len(entries)
