"""Annotation files -> person instances: COCO keypoints (ground-truth or detector boxes) and MPII.

`load_instances(params, split)` reads the official layouts (COCO 2017 keypoints; MPII as mmpose
converted it, 1-based MATLAB pixels made 0-based) into `Instance`s, the people a PoseDataset
crops. `data.dataset: custom` reads the COCO layout with any keypoint category: the file's own
joints (posecore.keypoints); `resolve_keypoints` records that keypoint set in params before a run
starts. `check_layout` lists what a dataset folder lacks; `annotation_stats` counts what the
prepare-data notebook plots.

Malformed files fail loudly (also: a custom category without `keypoints` or with skeleton
numbers out of range, an image without width/height), malformed people are counted: a person
category whose keypoint list
does not match the params' joint count is an error naming the file and both counts; a person
entry that cannot be read (a keypoint array of the wrong length, a bbox that is not 4 numbers,
...) is skipped, counted by reason with example ids (`BadEntries`), and reported once per file
(a warning, and the prepare-data notebook's table via `check_annotations`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posecore.data.layouts import LAYOUTS, as_coco_keypoints, coco_style_layout
from posecore.data.validate import MAX_ID, BadEntries, coco_content, coco_images, coco_people, image_size, mpii_people
from posecore.detect import check_detection
from posecore.geometry import box_to_center_scale
from posecore.keypoints import KeypointInfo, coco_keypoint_category, keypoint_info, keypoint_params
from posecore.params import Params
from posecore.runs import Run, outputs_root, resolve_path

SPLITS = ("train", "val", "test")
PREPARE_NOTEBOOK = "notebooks/prepare_data.ipynb"
COCO_LAYOUT = LAYOUTS["coco"].describe()
MPII_LAYOUT = (
    "annotations/mpii_train.json, annotations/mpii_val.json, annotations/mpii_gt_val.mat, images/ "
    "(images: http://human-pose.mpi-inf.mpg.de/#download; json annotations and mpii_gt_val.mat: "
    "mmpose's converted MPII annotations, see mmpose's dataset preparation docs)"
)
MPII_PIXEL_STD = 200.0  # MPII's `scale` is the person height in units of 200 px
# custom: the COCO layout with any keypoint category; halpe26 / halpe136 / coco_wholebody: their own
# COCO-style files (posecore.data.layouts)
COCO_LAYOUT_DATASETS = tuple(LAYOUTS)


class DataLayoutError(FileNotFoundError):
    """A dataset root or annotation file that is not where the layout says."""


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


def check_annotations(ann_file: str | Path, dataset: str, num_joints: int | None = None) -> BadEntries:
    """The malformed person entries of a COCO keypoints or MPII (mmpose) json, by reason. A person
    category that does not have `num_joints` (default: the dataset's, or a custom file's category)
    keypoints is a ValueError."""
    content = _load_json(Path(ann_file))
    if uses_coco_layout(dataset):
        content = _as_set_keypoints(content, dataset, ann_file)
        category = _keypoint_category(content, ann_file, dataset)
        return coco_people(
            content, ann_file, num_joints or len(category["keypoints"]), category["id"], coco_images(content, ann_file)
        )[1]
    return mpii_people(content, ann_file, num_joints or keypoint_info(dataset).num_joints)[1]


def load_instances(params: Params, split: str) -> tuple[list[Instance], KeypointInfo, Path, str | None]:
    """(instances, keypoint set, annotation file, MPII ground-truth .mat or None) of one split.

    COCO layout: train and val on clean ground-truth person boxes; test on the val images with
    the detector boxes of data.det_file. MPII: train / val from the json annotations (test = val).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = params.data
    root = existing_root(data)
    if uses_coco_layout(data.dataset):
        return (*_coco_instances(root, split, params), None)
    info = keypoint_info(params)
    instances, ann_file = _mpii_instances(root, split, data, info)
    mat = root / "annotations" / "mpii_gt_val.mat"
    return instances, info, ann_file, str(mat) if mat.is_file() else None


def split_files(params: Params, split: str) -> list[Path]:
    """The files load_instances(params, split) parses: the split's annotation file, and for the
    test split of a COCO-style dataset data.det_file (missing ones raise as load_instances does)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = existing_root(params.data)
    files = [_annotation_file(root, split, params.data.dataset)]
    if split == "test" and uses_coco_layout(params.data.dataset):
        files.append(_det_file_path(root, params.data.det_file))
    return files


def _annotation_file(root: Path, split: str, dataset: str) -> Path:
    if uses_coco_layout(dataset):
        layout = coco_style_layout(dataset)
        return _require_file(layout.ann_file(root, split), f"{layout.name} annotation file", dataset)
    subset = "train" if split == "train" else "val"
    return _require_file(root / "annotations" / f"mpii_{subset}.json", "MPII annotation file", "mpii")


def uses_coco_layout(dataset: str) -> bool:
    """coco, custom and the whole-body sets: COCO-style files, COCO AP; mpii: its own layout and PCKh."""
    return dataset in COCO_LAYOUT_DATASETS


def layout_text(dataset: str) -> str:
    """The files a dataset's layout needs and where to download them (errors, prepare_data)."""
    return coco_style_layout(dataset).describe() if uses_coco_layout(dataset) else MPII_LAYOUT


def keypoint_ground_truth(ann_file: str | Path, dataset: str) -> dict:
    """A COCO-style annotation file as COCO keypoints of the dataset's joints, what COCOeval scores
    against: Halpe / COCO-WholeBody people as flat keypoints [3K] (posecore.data.layouts). The
    scored arrays are the file's own, as xtcocotools scores them: `*_valid` flags are not read.
    Only the well-formed people are kept (validate.coco_people): the ones training and evaluation
    skip are not scored either, and pycocotools never sees a malformed entry."""
    content = _as_set_keypoints(_load_json(Path(ann_file)), dataset, ann_file, use_valid_flags=False)
    category = _keypoint_category(content, ann_file, dataset)
    people = coco_people(content, ann_file, len(category["keypoints"]), category["id"], coco_images(content, ann_file))[
        0
    ]
    return {**content, "annotations": people}


def _as_set_keypoints(content: Any, dataset: str, ann_file, use_valid_flags: bool = True) -> dict:
    """Halpe / COCO-WholeBody content as COCO keypoints of the set's joints (others as they are),
    after its top level is checked (validate.coco_content)."""
    content = coco_content(content, ann_file)
    if dataset == "custom":
        return content
    return as_coco_keypoints(content, dataset, keypoint_info(dataset).joint_names, use_valid_flags)


def resolve_keypoints(params: Params, run_name: str | None = None):
    """params with their keypoint set recorded (posecore.keypoints.keypoint_params): what a run
    saves, so that its eval, export and inference need nothing else. A custom set not yet in the
    params comes from the run's params.yaml (`run_name`) when that records one, else from the
    dataset's annotation file (train, else val). Built-in datasets come back as they are, after
    the keypoint params are checked."""
    if params.data.dataset != "custom" or params.data.joint_names:
        return keypoint_params(params, keypoint_info(params))
    recorded = _run_keypoint_set(run_name)
    if recorded:
        data = dataclasses.replace(
            params.data, **{key: getattr(params.data, key) or value for key, value in recorded["data"].items()}
        )
        sigmas = params.eval.sigmas or recorded["sigmas"]
        params = dataclasses.replace(params, data=data, eval=dataclasses.replace(params.eval, sigmas=sigmas))
        return keypoint_params(params, keypoint_info(params))
    root = existing_root(params.data)
    ann_file = next((path for path in _coco_files(root) if path.is_file()), None)
    if ann_file is None:
        raise DataLayoutError(
            f"data.dataset custom: no annotation file under {root} to read the keypoint set from "
            f"(expected {COCO_LAYOUT}); set data.root to the dataset, or use the {Run.PARAMS} of the "
            "run that trained on it (it records the keypoint set)"
        )
    category = coco_keypoint_category(_load_json(ann_file), str(ann_file))
    return keypoint_params(params, keypoint_info(params, category, str(ann_file)))


def _run_keypoint_set(run_name: str | None) -> dict | None:
    """The custom keypoint set a run's params.yaml records: {"data": its data.* keypoint keys,
    "sigmas": eval.sigmas}; None without one."""
    if not run_name or not Run(run_name).exists():
        return None
    run = Run(run_name).params()
    if run.data.dataset != "custom" or not run.data.joint_names:
        return None
    keys = ("joint_names", "skeleton", "flip_pairs", "upper_body", "joint_weights")
    return {"data": {key: getattr(run.data, key) for key in keys}, "sigmas": run.eval.sigmas}


def check_layout(root, dataset: str) -> list[str]:
    """Problems with a dataset folder (missing files or folders), each naming where to get it."""
    root = Path(root)
    if uses_coco_layout(dataset):
        needed = coco_style_layout(dataset).needed
        layout = layout_text(dataset)
    elif dataset == "mpii":
        needed = ["annotations/mpii_train.json", "annotations/mpii_val.json", "annotations/mpii_gt_val.mat", "images"]
        layout = MPII_LAYOUT
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: {[*COCO_LAYOUT_DATASETS, 'mpii']}")
    name = coco_style_layout(dataset).name if uses_coco_layout(dataset) and dataset != "custom" else dataset.upper()
    if not root.is_dir():
        return [f"{root} does not exist; expected {name} layout: {layout}"]
    return [f"missing {root / path}; expected {name} layout: {layout}" for path in needed if not (root / path).exists()]


def synthetic_root(dataset: str) -> Path:
    """Where posecore's synthetic dataset of `dataset` lives: <outputs>/data/synthetic_<dataset>."""
    return outputs_root() / "data" / f"synthetic_{dataset}"


def dataset_root(data) -> Path:
    """The folder params.data reads: data.root (relative to the repository), or the synthetic
    dataset's folder when data.root is ""."""
    return resolve_path(data.root) if data.root else synthetic_root(data.dataset)


def is_synthetic_root(root: Path) -> bool:
    """A root posecore makes on first use: the default "" root or a folder named synthetic*."""
    return root.name.startswith("synthetic")


def existing_root(data) -> Path:
    root = dataset_root(data)
    if root.is_dir():
        return root
    layout = layout_text(data.dataset)
    made_here = (
        " It is a synthetic dataset's folder: build it with posecore.data.ensure_synthetic("
        "params) or the prepare_data notebook."
        if is_synthetic_root(root)
        else ""
    )
    raise DataLayoutError(
        f"data.root {root} does not exist.{made_here} Expected the {data.dataset.upper()} layout: "
        f"{layout}. Run {PREPARE_NOTEBOOK} to check or create it (posecore.data.make_synthetic "
        "writes a synthetic dataset), or set data.root to the dataset folder."
    )


def _require_file(path: Path, what: str, dataset: str) -> Path:
    if not path.is_file():
        raise DataLayoutError(
            f"{what} {path} does not exist. Expected the {dataset.upper()} layout under "
            f"{path.parent.parent}: {layout_text(dataset)}. See {PREPARE_NOTEBOOK}."
        )
    return path


def _load_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); re-download or regenerate it (see {PREPARE_NOTEBOOK})"
        ) from None


def _coco_files(root: Path) -> list[Path]:
    return [LAYOUTS["coco"].ann_file(root, split) for split in ("train", "val")]


def _coco_instances(root: Path, split: str, params: Params) -> tuple[list[Instance], KeypointInfo, Path]:
    data = params.data
    layout = coco_style_layout(data.dataset)
    ann_file = _annotation_file(root, split, data.dataset)
    coco = _as_set_keypoints(_load_json(ann_file), data.dataset, ann_file)
    category = _keypoint_category(coco, ann_file, data.dataset)
    category_id = category["id"]
    info = keypoint_info(params, category, str(ann_file)) if data.dataset == "custom" else keypoint_info(params)
    images = coco_images(coco, ann_file)
    image_dir = layout.image_dir(root, split)
    people, bad = coco_people(coco, ann_file, info.num_joints, category_id, images)
    if split == "test":
        return _coco_detection_instances(root, data, images, image_dir, info, category_id), info, ann_file
    bad.warn()
    by_image: dict[int, list[dict]] = {}
    for ann in people:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    instances = []
    for image_id in sorted(images):
        image = images[image_id]
        size = image_size(image)
        for ann in by_image.get(image_id, []):
            instance = _coco_gt_instance(ann, image, size, image_dir, data, info)
            if instance is not None:
                instances.append(instance)
    return instances, info, ann_file


def _keypoint_category(coco: Any, ann_file, dataset: str) -> dict:
    """The category whose keypoints a COCO-layout file's people carry: COCO's person (id 1, the
    built-in joints), or for a custom dataset the file's one keypoint category."""
    if dataset != "custom":
        return {"id": 1, "keypoints": list(keypoint_info(dataset).joint_names)}
    return coco_keypoint_category(coco, str(ann_file))


def person_box(bbox_xywh, size: tuple[int, int] | None) -> tuple[float, float, float, float]:
    """A COCO (x, y, w, h) person box as the dataset reads it: (x0, y0, x1, y1), clipped to the
    image (w, h) the way the references clean boxes (pixel-inclusive corners)."""
    x, y, w, h = (float(v) for v in bbox_xywh)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = x0 + max(0.0, w - 1), y0 + max(0.0, h - 1)
    if size is not None:
        x1, y1 = min(size[0] - 1.0, x1), min(size[1] - 1.0, y1)
    return x0, y0, x1, y1


def _coco_gt_instance(ann, image, size, image_dir: Path, data, info: KeypointInfo) -> Instance | None:
    """A clean person instance (HRNet / mmpose rules) or None; `ann` is of the keypoint category."""
    if ann.get("iscrowd", 0) or ann.get("area", 1) <= 0:
        return None
    keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(info.num_joints, 3)
    if not (keypoints[:, 2] > 0).any():
        return None
    x0, y0, x1, y1 = person_box(ann["bbox"], size)
    if x1 <= x0 or y1 <= y0:
        return None
    center, scale = box_to_center_scale(
        (x0, y0, x1 - x0, y1 - y0), data.input_size[0] / data.input_size[1], data.bbox_padding
    )
    return Instance(
        image_path=str(image_dir / image["file_name"]),
        image_id=int(image["id"]),
        image_size=size,
        bbox_center=center,
        bbox_scale=scale,
        joints=keypoints[:, :2].astype(np.float32),
        visible=(keypoints[:, 2] > 0).astype(np.float32),
        bbox_xyxy=np.array([x0, y0, x1, y1], dtype=np.float32),
    )


def _det_file_path(root: Path, det_file: str) -> Path:
    if not det_file:
        raise ValueError(
            "the test split needs person boxes: set data.det_file to a COCO-results json "
            "(image_id, category_id, bbox [x, y, w, h], score)"
        )
    candidates = [resolve_path(det_file)]
    if not Path(det_file).is_absolute():
        candidates.append(root / det_file)
    for path in candidates:
        if path.is_file():
            return path
    raise DataLayoutError(
        f"data.det_file {det_file!r} not found (looked at "
        f"{', '.join(str(p) for p in candidates)}); give a path relative to the "
        "repository root, to data.root, or an absolute one"
    )


def _coco_detection_instances(
    root: Path, data, images: dict, image_dir: Path, info: KeypointInfo, category_id: Any
) -> list[Instance]:
    det_path = _det_file_path(root, data.det_file)
    detections = _load_json(det_path)
    if not isinstance(detections, list):
        raise ValueError(f"{det_path}: expected a COCO-results list of detections")
    aspect = data.input_size[0] / data.input_size[1]
    num_joints = info.num_joints
    instances, unknown, empty = [], set(), []
    for index, det in enumerate(detections):
        image_id, (x, y, w, h), score = check_detection(det, index, det_path)
        if det.get("category_id", 1) != category_id or score < data.det_score_thr:
            continue
        if image_id not in images:
            unknown.add(image_id)
            continue
        if w <= 0 or h <= 0:
            empty.append(index)
            continue
        center, scale = box_to_center_scale((x, y, w, h), aspect, data.bbox_padding)
        image = images[image_id]
        instances.append(
            Instance(
                image_path=str(image_dir / image["file_name"]),
                image_id=image_id,
                image_size=image_size(image),
                bbox_center=center,
                bbox_scale=scale,
                joints=np.zeros((num_joints, 2), np.float32),
                visible=np.zeros(num_joints, np.float32),
                bbox_xyxy=None,
                bbox_score=score,
            )
        )
    if empty:
        warnings.warn(
            f"{det_path}: {len(empty)} of {len(detections)} detections have a box of zero or "
            f"negative width or height and were skipped (entries {empty[:5]})",
            stacklevel=3,
        )
    if unknown:
        warnings.warn(
            f"{det_path}: {len(unknown)} image id(s) not in the val annotations were ignored "
            f"(e.g. {sorted(unknown, key=str)[:5]})",
            stacklevel=3,
        )
    instances.sort(key=lambda inst: inst.image_id)
    return instances


def _mpii_instances(root: Path, split: str, data, info: KeypointInfo):
    ann_file = _annotation_file(root, split, "mpii")
    annotations, bad = mpii_people(_load_json(ann_file), ann_file, info.num_joints)
    bad.warn()
    image_dir = root / "images"
    aspect_h_over_w = data.input_size[1] / data.input_size[0]
    instances = []
    for position, ann in annotations:
        center = np.asarray(ann["center"], dtype=np.float64)
        scale = float(ann["scale"])
        if center[0] != -1:  # the references' adjustment: move down 15 px per unit scale, pad 25%
            center[1] += 15 * scale
            scale *= 1.25
        center -= 1  # MATLAB 1-based -> 0-based
        width = scale * MPII_PIXEL_STD
        joints = np.asarray(ann.get("joints") or np.zeros((info.num_joints, 2)), dtype=np.float64) - 1
        visible = np.asarray(ann.get("joints_vis") or np.zeros(info.num_joints), dtype=np.float32)
        stem = Path(ann["image"]).stem
        instances.append(
            Instance(
                image_path=str(image_dir / ann["image"]),
                image_id=_numbered(stem, position),
                image_size=None,
                bbox_center=center.astype(np.float32),
                # the references zoom by the width only; the height follows the input aspect ratio
                bbox_scale=np.array([width, width * aspect_h_over_w], dtype=np.float32),
                joints=joints.astype(np.float32),
                visible=(visible > 0).astype(np.float32),
            )
        )
    return instances, ann_file


def _numbered(stem: str, position: int) -> int:
    """An MPII image's id: the number its file is named by (000001163.jpg -> 1163), else its position."""
    number = int(stem) if stem.isascii() and stem.isdigit() else None
    return number if number is not None and number <= MAX_ID else position


# --------------------------------------------------------------------------- statistics


def annotation_stats(ann_file: str | Path, dataset: str) -> dict:
    """Counts for the prepare_data plots, read from a COCO keypoints json or an MPII (mmpose) json.

    Returns joint_names [K], persons_per_image {count: images}, labelled_per_joint [K], box_sizes
    [N, 2] (w, h px), totals images / persons, and parts [[name, start, stop], ...] (the
    whole-body sets' joint ranges; [] for the others).
    """
    data = _load_json(Path(ann_file))
    if uses_coco_layout(dataset):
        data = _as_set_keypoints(data, dataset, ann_file)
        category = _keypoint_category(data, ann_file, dataset)
        joint_names = list(category["keypoints"])
        images = list(coco_images(data, ann_file))
        people = [
            a
            for a in coco_people(data, ann_file, len(joint_names), category["id"], dict.fromkeys(images))[0]
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0
        ]
        image_of = [a["image_id"] for a in people]
        visible = np.array([np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0 for a in people], dtype=bool)
        boxes = np.array([a["bbox"][2:] for a in people], dtype=float)
    elif dataset == "mpii":
        joint_names = list(keypoint_info(dataset).joint_names)
        people = [
            p
            for _, p in mpii_people(data, ann_file, len(joint_names))[0]
            if p.get("joints") is not None and p.get("joints_vis") is not None
        ]
        image_of = [p["image"] for p in people]
        images = sorted(set(image_of))
        visible = np.array([np.asarray(p["joints_vis"]) > 0 for p in people], dtype=bool)
        boxes = np.array([_mpii_box_size(p) for p in people], dtype=float)
    else:
        raise ValueError(f"annotation_stats: dataset must be one of {[*COCO_LAYOUT_DATASETS, 'mpii']}, got {dataset!r}")
    per_image = Counter(image_of)
    persons_per_image = Counter(per_image.get(image, 0) for image in images)
    return {
        "dataset": dataset,
        "joint_names": joint_names,
        "images": len(images),
        "persons": len(people),
        "persons_per_image": dict(sorted(persons_per_image.items())),
        "labelled_per_joint": (
            visible.sum(0).reshape(len(joint_names)).tolist() if len(people) else [0] * len(joint_names)
        ),
        "box_sizes": boxes.reshape(-1, 2),
        "parts": [
            [name, start, stop] for name, (start, stop) in (keypoint_info(dataset).parts if dataset != "custom" else ())
        ],
    }


def _mpii_box_size(person: dict) -> tuple[float, float]:
    """MPII has no boxes: the extent of the labelled joints, else the person scale (height / 200 px)."""
    joints = np.asarray(person["joints"], dtype=float)[np.asarray(person["joints_vis"]) > 0]
    if len(joints) >= 2:
        return tuple(joints.max(0) - joints.min(0))
    side = float(person.get("scale", 1.0)) * 200.0
    return side, side
