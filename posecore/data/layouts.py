"""COCO-style dataset layouts: COCO keypoints, Halpe-FullBody and COCO-WholeBody.

Each layout names its annotation files and image folders per split and where to download them
(`LAYOUTS`, `coco_style_layout`). The whole-body files come to the COCO reader
(posecore.data.annotations) as COCO keypoint files of the set's own joints (`as_coco_keypoints`):

- Halpe (halpe136, halpe26): COCO-style json with 136 (x, y, v) per person in `keypoints`;
  halpe26 reads the first 26 (a file of 26-joint people reads as it is).
- COCO-WholeBody (coco_wholebody): annotations/coco_wholebody_{train,val}_v1.0.json, each person
  with `keypoints` (17 body), `foot_kpts` (6), `face_kpts` (68), `lefthand_kpts` (21) and
  `righthand_kpts` (21) plus `foot_valid`, `face_valid`, `lefthand_valid`, `righthand_valid`;
  read as 133 joints in that order. For training a part whose `*_valid` flag is false counts as
  unlabelled; evaluation scores the arrays as they are (xtcocotools reads no flags; in the
  official files an invalid part's array is all zeros anyway).

`num_keypoints` becomes the labelled count over the set's joints (what COCOeval's ignore flag
reads); an entry whose part arrays cannot be read carries the reason in PROBLEM_KEY, which the
COCO reader counts as a malformed entry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posecore.files import finite_number

COCO_DOWNLOAD = "https://cocodataset.org/#download"
WHOLEBODY_DOWNLOAD = "https://github.com/jin-s13/COCO-WholeBody"
HALPE_DOWNLOAD = "https://github.com/Fang-Haoshu/Halpe-FullBody"
HICO_DOWNLOAD = "https://websites.umich.edu/~ywchao/hico/"
# COCO-WholeBody's part arrays in the 133 joints' order: (key, joints, validity flag)
WHOLEBODY_PARTS = (
    ("keypoints", 17, None),
    ("foot_kpts", 6, "foot_valid"),
    ("face_kpts", 68, "face_valid"),
    ("lefthand_kpts", 21, "lefthand_valid"),
    ("righthand_kpts", 21, "righthand_valid"),
)
PROBLEM_KEY = "posecore_entry_problem"


@dataclass(frozen=True)
class CocoStyleLayout:
    """Where a COCO-style dataset keeps its files under data.root, per split (train, val; the
    test split reads the val images with detector boxes)."""

    name: str
    annotations: tuple[str, str]  # train, val annotation files
    images: tuple[str, str]  # train, val image folders
    downloads: str

    def ann_file(self, root: Path, split: str) -> Path:
        return Path(root) / self.annotations[0 if split == "train" else 1]

    def image_dir(self, root: Path, split: str) -> Path:
        return Path(root) / self.images[0 if split == "train" else 1]

    @property
    def needed(self) -> list[str]:
        return [*self.annotations, *self.images]

    def describe(self) -> str:
        """One line for errors and the prepare-data notebook: the files and where to get them."""
        return f"{', '.join(self.annotations)}, {', '.join(f'{d}/' for d in self.images)} ({self.downloads})"


COCO = CocoStyleLayout(
    "COCO",
    ("annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json"),
    ("train2017", "val2017"),
    f"download: {COCO_DOWNLOAD}, '2017 Train/Val images' and '2017 Train/Val annotations'",
)
HALPE = CocoStyleLayout(
    "Halpe-FullBody",
    ("annotations/halpe_train_v1.json", "annotations/halpe_val_v1.json"),
    ("images/train2015", "images/val2017"),
    f"annotations: {HALPE_DOWNLOAD} (halpe_train_v1.json, halpe_val_v1.json); train images: HICO-DET's "
    f"train2015 from {HICO_DOWNLOAD}; val images: COCO's val2017 from {COCO_DOWNLOAD}",
)
COCO_WHOLEBODY = CocoStyleLayout(
    "COCO-WholeBody",
    ("annotations/coco_wholebody_train_v1.0.json", "annotations/coco_wholebody_val_v1.0.json"),
    ("train2017", "val2017"),
    f"annotations: {WHOLEBODY_DOWNLOAD} (coco_wholebody_train_v1.0.json, coco_wholebody_val_v1.0.json); "
    f"images: COCO's train2017 and val2017 from {COCO_DOWNLOAD}",
)
LAYOUTS = {"coco": COCO, "custom": COCO, "halpe26": HALPE, "halpe136": HALPE, "coco_wholebody": COCO_WHOLEBODY}


def coco_style_layout(dataset: str) -> CocoStyleLayout:
    """The layout of a COCO-style dataset (coco, custom, halpe26, halpe136, coco_wholebody)."""
    if dataset not in LAYOUTS:
        raise ValueError(f"{dataset!r} has no COCO-style layout; known: {sorted(LAYOUTS)}")
    return LAYOUTS[dataset]


def as_coco_keypoints(
    content: Any, dataset: str, joint_names: tuple[str, ...] | list[str], use_valid_flags: bool = True
) -> Any:
    """A Halpe / COCO-WholeBody annotation dict as a COCO keypoints dict of the set's K joints:
    every person's `keypoints` [3K] in the set's order, its `num_keypoints` the labelled count,
    the person category's `keypoints` the set's joint names. COCO and custom content, and
    anything that is not a COCO-style dict, comes back as it is (the reader reports it).
    `use_valid_flags`: a COCO-WholeBody part flagged invalid counts as unlabelled (training);
    false keeps the arrays as they are (evaluation, as xtcocotools and mmpose score them).
    The input is not changed."""
    if dataset not in ("halpe26", "halpe136", "coco_wholebody") or not isinstance(content, dict):
        return content
    num_joints = len(joint_names)
    out = {key: value for key, value in content.items() if key not in ("annotations", "categories")}
    out["categories"] = [_set_category(c, joint_names) for c in content.get("categories") or []]
    out["annotations"] = []
    for ann in content.get("annotations") or []:
        if not isinstance(ann, dict):
            out["annotations"].append(ann)
            continue
        ann = dict(ann)
        if dataset == "coco_wholebody":
            keypoints, problem = _wholebody_keypoints(ann, use_valid_flags)
        else:
            keypoints, problem = _halpe_keypoints(ann.get("keypoints"), num_joints)
        if problem:
            ann[PROBLEM_KEY] = problem
        else:
            ann["keypoints"] = keypoints
            ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if v > 0)
        out["annotations"].append(ann)
    return out


def _set_category(category: Any, joint_names) -> Any:
    """The person category (one that defines keypoints, or COCO's person id 1) with the set's joints."""
    if not isinstance(category, dict) or not (category.get("keypoints") or category.get("id") == 1):
        return category
    return {**copy.deepcopy(category), "keypoints": list(joint_names)}


def _numbers(values: Any, count: int) -> bool:
    return isinstance(values, list) and len(values) == 3 * count and all(finite_number(v) for v in values)


def _halpe_keypoints(values: Any, num_joints: int) -> tuple[list | None, str | None]:
    """Halpe people carry 136 joints; halpe26 keeps the first 26 (26-joint people read as they are)."""
    counts = sorted({num_joints, 136})
    for count in counts:
        if _numbers(values, count):
            return list(values[: 3 * num_joints]), None
    length = len(values) if isinstance(values, list) else type(values).__name__
    return None, (
        f"keypoints is not {' or '.join(str(3 * c) for c in counts)} numbers "
        f"({' or '.join(str(c) for c in counts)} Halpe joints x (x, y, v)), got {length}"
    )


def _wholebody_keypoints(ann: dict, use_valid_flags: bool) -> tuple[list | None, str | None]:
    """The 133 joints of a COCO-WholeBody person: body, foot, face, left hand, right hand."""
    keypoints: list = []
    for key, count, valid_key in WHOLEBODY_PARTS:
        values = ann.get(key)
        if not _numbers(values, count):
            length = len(values) if isinstance(values, list) else "missing" if values is None else type(values).__name__
            return None, f"{key} is not {3 * count} numbers ({count} joints x (x, y, v)), got {length}"
        if use_valid_flags and valid_key is not None and ann.get(valid_key) is False:
            values = [0] * (3 * count)  # an invalid part is unlabelled, whatever its numbers
        keypoints += values
    return keypoints, None


def wholebody_entry(keypoints: list[float]) -> dict[str, list[float]]:
    """Flat 133-joint keypoints [399] as COCO-WholeBody's own part arrays (`keypoints` the body's
    17, `foot_kpts`, `face_kpts`, `lefthand_kpts`, `righthand_kpts`): the layout of its files and
    of the results xtcocotools and the COCO-WholeBody benchmark read."""
    expected = 3 * sum(count for _, count, _ in WHOLEBODY_PARTS)
    if len(keypoints) != expected:
        raise ValueError(f"COCO-WholeBody keypoints need {expected} values (133 joints x 3), got {len(keypoints)}")
    out, start = {}, 0
    for key, count, _ in WHOLEBODY_PARTS:
        out[key] = list(keypoints[start : start + 3 * count])
        start += 3 * count
    return out
