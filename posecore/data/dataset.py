"""The top-down dataset: person instances -> normalized crops and heatmap targets.

One item is one person: the image is decoded, cropped around the person with one affine warp
and the joints are encoded as Gaussian heatmaps; the crop convention and the encoding are the
codec's (data.codec, posecore.codec). The augmentation is explicit: `Augment` holds one sample's
box, scale, rotation and flip, `PoseDataset.draw_augment(index)` draws it as the references do
(seeded by train.seed, the epoch and the index), and `PoseDataset.sample(index, augment)` makes the
item for any Augment; `dataset[index]` is `sample(index, draw_augment(index))` when training and
`sample(index, Augment())` otherwise, so a training crop can be rebuilt and compared for given
parameters.

Item keys (all default_collate-able tensors):
  image float32 [3, H, W] ((rgb / 255 - mean) / std), target float32 [K, Hh, Wh] (the simcc
  codec: a pair (x [K, Wx], y [K, Wy]), collated to a list of two [N, K, W*] tensors),
  target_weight float32 [K], joints float32 [K, 3] (x, y, labelled) in original-image pixels
  (mirrored when the item was flipped; zeros for detector boxes), bbox_center float32 [2],
  bbox_scale float32 [2] (pixels), rotation float32 [], bbox_score float32 [], image_id int64 [],
  index int64 [] (dataset position of the returned sample), area float32 [] (crop box area).
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posecore.codec import build_codec
from posecore.data.annotations import Instance
from posecore.data.people import People
from posecore.data.sampling import ImageGroups
from posecore.geometry import box_to_center_scale, compose, transform_points
from posecore.keypoints import KeypointInfo
from posecore.params import Params

# Reduced JPEG decoding: (factor, cv2 flag); the DCT decoder scales almost for free.
_REDUCED_READS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


class ImageReadError(OSError):
    """An image file that is missing, truncated or not decodable."""


@dataclass(frozen=True)
class Augment:
    """One training sample's augmentation, applied in this order; `Augment()` is the identity.

    box_xyxy: (x0, y0, x1, y1) in image pixels that replaces the person's box before its centre
      and scale are taken (box_to_center_scale with data.bbox_padding); DPG's jittered box and the
      half-body box are given this way. None keeps the annotated box.
    scale: multiplier of the box scale (1.0 = none; > 1 shows more around the person).
    rotation: degrees; positive turns the image content counter-clockwise in the crop, the sign of
      AlphaPose's and mmpose's `get_affine_transform`.
    flip: mirror the image horizontally about its width - 1, left/right joints swapped.
    """

    box_xyxy: tuple[float, float, float, float] | None = None
    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.box_xyxy is not None:
            box = tuple(float(v) for v in self.box_xyxy)
            if len(box) != 4 or not all(map(math.isfinite, box)) or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"Augment.box_xyxy must be four finite numbers x0 < x1, y0 < y1, got {self.box_xyxy}")
            object.__setattr__(self, "box_xyxy", box)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Augment.scale must be a positive number, got {self.scale}")
        if not math.isfinite(self.rotation):
            raise ValueError(f"Augment.rotation must be a finite number of degrees, got {self.rotation}")


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
    """Person instances -> training/eval items (see the module docstring for the keys).

    `instances`: the split's people as flat arrays (posecore.data.people.People; a list of
    Instances is converted), so DataLoader workers share them instead of copying per-person objects.
    """

    def __init__(
        self,
        instances: People | list[Instance],
        info: KeypointInfo,
        params: Params,
        train: bool,
        ann_file: str,
        gt_mat: str | None,
        split: str,
    ):
        data = params.data
        self.instances = (
            instances if isinstance(instances, People) else People.from_instances(instances, info.num_joints)
        )
        self.info = info
        self.ann_file = ann_file
        self.gt_mat = gt_mat
        self.split = split
        self.train = train
        self.input_size = (int(data.input_size[0]), int(data.input_size[1]))
        self.codec = build_codec(params)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
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
        # data.reduced_decode: decode a JPEG at 1/2..1/8 scale when the crop is that much smaller,
        # the data pipeline's main speed-up (off in the seed params: the seeds train on full-
        # resolution crops); eval always decodes in full, as upstream checkpoints were scored.
        self.reduced_decode = train and bool(data.reduced_decode)
        self._mean, self._std = data.mean, data.std
        self._flip_index = np.asarray(info.flip_index())
        self._upper_body = np.isin(np.arange(info.num_joints), info.upper_body)
        # data.joint_weights scale each joint's loss (mmpose's use_different_joint_weights); the
        # built-in sets' own weights stay unused unless asked for, as in the references' configs
        self._joint_weights = np.asarray(info.joint_weights, np.float32) if data.joint_weights else None
        self._skipped = _SkipCounter()
        self._bad_files: set[str] = set()
        # The last decoded image, per process: people of one image sampled back to back (see
        # grouped_order) share one decode, the largest cost of a sample.
        self._last_read: tuple[tuple[str, int], np.ndarray] | None = None
        self._image_groups: ImageGroups | None = None
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
        return self.instances.image_path(int(index))

    def image_groups(self) -> ImageGroups:
        """Instance indices grouped by image (images in the order they first appear)."""
        if self._image_groups is None:
            self._image_groups = ImageGroups(*self.instances.image_groups())
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
            path = self.image_path(candidate)
            if path in self._bad_files:
                continue
            try:
                augment = self.draw_augment(candidate) if self.train else Augment()
                return self.sample(candidate, augment)
            except ImageReadError as error:
                self._bad_files.add(path)
                count = self._skipped.increment()
                warnings.warn(
                    f"posecore.data: skipping unreadable image {path} ({error}); sample "
                    f"{index} is replaced by a later readable one ({count} skipped so far, "
                    f"process {os.getpid()})",
                    stacklevel=2,
                )
        raise RuntimeError(
            f"no readable image among the {len(self.instances)} samples of the "
            f"{self.split} split (first: {self.image_path(0)})"
        )

    # ---------------------------------------------------------------- one sample

    def draw_augment(self, index: int) -> Augment:
        """The references' random augmentation of sample `index` this epoch, a function of
        (train.seed, epoch, index): DPG's box jitter (after train.dpg_epoch), the half-body box,
        scale, rotation and flip, drawn in that order with AlphaPose's distributions."""
        instance = self.instances[int(index)]
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        box = None
        if self.dpg and instance.bbox_xyxy is not None:
            box = dpg_jitter(instance.bbox_xyxy, self._image_size(instance), rng)
        visible = instance.visible
        if visible.sum() > self.half_body_min_joints and rng.random() < self.half_body_prob:
            half = half_body_box(instance.joints.astype(np.float64), visible, self._upper_body, self.aspect_ratio, rng)
            if half is not None:
                box = center_scale_to_box(*half, self.padding)
        factor = self.scale_factor
        scale = min(max(rng.standard_normal() * factor + 1, 1 - factor), 1 + factor)
        rotation = 0.0
        if rng.random() <= self.rot_prob:
            limit = 2 * self.rot_factor
            rotation = min(max(float(rng.standard_normal()) * self.rot_factor, -limit), limit)
        flip = self.flip and rng.random() <= 0.5
        return Augment(box_xyxy=box, scale=float(scale), rotation=rotation, flip=bool(flip))

    def sample(self, index: int, augment: Augment | None = None) -> dict[str, torch.Tensor]:
        """The item of person `index` cropped with `augment` (None: the identity, Augment()); see the
        module docstring for the keys. `dataset[index]` returns this for the Augment it draws."""
        index = int(index)
        augment = Augment() if augment is None else augment
        instance = self.instances[index]
        center = instance.bbox_center.astype(np.float64)
        scale = instance.bbox_scale.astype(np.float64)
        if augment.box_xyxy is not None:
            x0, y0, x1, y1 = augment.box_xyxy
            center, scale = (
                v.astype(np.float64)
                for v in box_to_center_scale((x0, y0, x1 - x0, y1 - y0), self.aspect_ratio, self.padding)
            )
        scale = scale * augment.scale
        joints = instance.joints.astype(np.float64)
        visible = instance.visible.astype(np.float32)
        if augment.flip:
            mirror = self._image_size(instance)[0] - 1
            joints = joints[self._flip_index]
            visible = visible[self._flip_index]
            joints[:, 0] = mirror - joints[:, 0]
            center[0] = mirror - center[0]

        matrix = self.codec.crop_matrix(center, scale, augment.rotation)
        sampling = matrix
        if augment.flip:  # sample the unflipped image: no full-size copy
            sampling = compose(matrix, np.array([[-1.0, 0.0, self._image_size(instance)[0] - 1], [0.0, 1.0, 0.0]]))
        reduction = self._reduction(scale) if self.reduced_decode else 1
        image = self._read(instance.image_path, reduction)
        if reduction > 1:
            # pixel i of a 1/r decode covers original pixels [r i, r i + r)
            offset = (reduction - 1) / 2.0
            sampling = compose(sampling, np.array([[reduction, 0.0, offset], [0.0, reduction, offset]]))
        pixels = crop_input(image, sampling, self.input_size, self._mean, self._std)

        joints_input = transform_points(joints, matrix)
        target, target_weight = self.codec.encode(joints_input, visible)
        if self._joint_weights is not None:
            target_weight = target_weight * self._joint_weights
        joints_out = np.concatenate([joints, (visible > 0)[:, None]], axis=1) * (visible > 0)[:, None]
        return {
            "image": torch.from_numpy(pixels),
            "target": tuple(map(torch.from_numpy, target)) if isinstance(target, tuple) else torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
            "joints": torch.from_numpy(joints_out.astype(np.float32)),
            "bbox_center": torch.from_numpy(center.astype(np.float32)),
            "bbox_scale": torch.from_numpy(scale.astype(np.float32)),
            "rotation": torch.tensor(augment.rotation, dtype=torch.float32),
            "bbox_score": torch.tensor(instance.bbox_score, dtype=torch.float32),
            "image_id": torch.tensor(instance.image_id, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "area": torch.tensor(float(scale[0] * scale[1]), dtype=torch.float32),
        }

    def _image_size(self, instance: Instance) -> tuple[int, int]:
        """(w, h) of the instance's image: recorded when parsed, else read (one cached decode)."""
        if instance.image_size is not None:
            return instance.image_size
        image = self._read(instance.image_path)
        return image.shape[1], image.shape[0]

    def _reduction(self, scale) -> int:
        """Largest decode reduction that still leaves the crop at least input resolution."""
        room = min(scale[0] / self.input_size[0], scale[1] / self.input_size[1])
        for factor in _REDUCED_READS:
            if room >= factor:
                return factor
        return 1


# --------------------------------------------------------------------------- augmentation helpers


def crop_input(
    image_bgr: np.ndarray, matrix: np.ndarray, input_size, mean, std, out: np.ndarray | None = None
) -> np.ndarray:
    """The network input of one person: BGR uint8 image [H, W, 3] warped by `matrix` ([2, 3],
    image -> input pixels; bilinear) to input_size (w, h), then `normalize_crop` -> RGB float32
    [3, h, w] (into `out` when given). Training, evaluation and inference all crop through this."""
    crop = cv2.warpAffine(image_bgr, matrix, tuple(int(v) for v in input_size), flags=cv2.INTER_LINEAR)
    return normalize_crop(crop, mean, std, out)


def normalize_crop(crop: np.ndarray, mean, std, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 [H, W, 3] crop -> RGB float32 [3, H, W] = (rgb / 255 - mean) / std, into `out`
    when given. Training, evaluation and inference all feed the network through this."""
    pixels = np.empty((3,) + crop.shape[:2], dtype=np.float32) if out is None else out
    planes = reversed(cv2.split(crop))  # one contiguous plane at a time: ~8x faster than a strided transpose
    if crop.dtype == np.uint8 and pixels.dtype == np.float32 and pixels.flags.c_contiguous:
        # a table of the 256 values, each computed as below: the same float32s in one pass per plane
        tables = _normalize_tables(tuple(np.ravel(mean).tolist()), tuple(np.ravel(std).tolist()))
        for channel, (plane, table) in enumerate(zip(planes, tables)):
            written = cv2.LUT(plane, table, dst=pixels[channel])
            if not np.shares_memory(written, pixels):  # OpenCV made its own array (it should not)
                pixels[channel] = written
        return pixels
    pixel_scale, pixel_shift = _normalize_factors(mean, std)
    for channel, plane in enumerate(planes):
        np.multiply(plane, pixel_scale[channel], out=pixels[channel], dtype=np.float32)
        pixels[channel] -= pixel_shift[channel]
    return pixels


def _normalize_factors(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """float32 [3] (1 / (255 std), mean / std): pixel * scale - shift = (pixel / 255 - mean) / std."""
    std = np.asarray(std, dtype=np.float32)
    return 1.0 / (255.0 * std), np.asarray(mean, dtype=np.float32) / std


@functools.lru_cache(maxsize=16)
def _normalize_tables(mean: tuple, std: tuple) -> tuple[np.ndarray, ...]:
    """Per RGB channel, float32 [1, 256]: normalize_crop's value of each uint8 pixel value."""
    pixel_scale, pixel_shift = _normalize_factors(mean, std)
    values = np.arange(256, dtype=np.uint8)
    tables = []
    for channel in range(3):
        table = np.multiply(values, pixel_scale[channel], dtype=np.float32)
        table -= pixel_shift[channel]
        table.flags.writeable = False
        tables.append(table.reshape(1, 256))
    return tuple(tables)


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


def center_scale_to_box(center, scale, padding: float) -> tuple[float, float, float, float]:
    """The (x0, y0, x1, y1) box that box_to_center_scale turns back into (center, scale) when scale
    already has the input aspect ratio: centred on `center`, scale / padding wide and high."""
    half_w, half_h = float(scale[0]) / padding / 2, float(scale[1]) / padding / 2
    return (float(center[0]) - half_w, float(center[1]) - half_h, float(center[0]) + half_w, float(center[1]) + half_h)


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


def read_image(path, reduction: int = 1, apply_orientation: bool = False) -> np.ndarray:
    """uint8 BGR [H, W, 3] decoded by content (not extension), grayscale made 3-channel.

    `reduction` 2/4/8 decodes at that fraction of the size. `apply_orientation` turns the image
    as its EXIF orientation says (what viewers and detectors show; annotations of the datasets
    refer to the stored pixels, so training and evaluation do not). Raises ImageReadError for a
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
    flag = _REDUCED_READS.get(reduction, cv2.IMREAD_COLOR)
    if not apply_orientation:
        flag |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(data, flag)
    if image is None:
        raise ImageReadError("not a decodable image")
    return image


def read_rgb(path) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3] (for display)."""
    return np.ascontiguousarray(read_image(path)[:, :, ::-1])
