"""Checks of annotation files before anything uses them: COCO keypoint files and MPII (mmpose) json.

Policy (round 2): what makes a whole file unusable is a ValueError naming the file, the entry
(index and id), the key and what was expected (a top level that is not an object, `images` that
is not a list, an image entry without a usable id, file name or size); a malformed person entry is
skipped and counted by reason with example ids (`BadEntries`). Non-finite and absurd numbers
(NaN, inf, 1e308, integers too large for a float, coordinates beyond MAX_PIXELS, negative sizes)
are entry problems like any other, never a crash further on.

`annotations` calls these; what passes is safe to index, convert with int() / float() and hand to
numpy without another check.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from posecore.data.layouts import PROBLEM_KEY
from posecore.files import finite_number
from posecore.geometry import MAX_PIXELS

MAX_ID = 2**63 - 1  # ids must fit int64 (numpy, pycocotools)


@dataclass
class BadEntries:
    """Person entries of one annotation file that were skipped as malformed."""

    file: str
    total: int = 0  # person entries read
    counts: dict[str, int] = field(default_factory=dict)  # reason -> entries
    examples: dict[str, list] = field(default_factory=dict)  # reason -> a few annotation ids

    def add(self, reason: str, example: Any) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples.setdefault(reason, [])) < 5:
            self.examples[reason].append(example)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        if not self.count:
            return f"{self.file}: all {self.total} person entries read"
        return f"{self.file}: skipped {self.count} of {self.total} person entries: {self.reasons()}"

    def reasons(self) -> str:
        """ "<reason>: <count> (ids [...]); ..." ("" when nothing was skipped)."""
        return "; ".join(
            f"{reason}: {count} (ids {self.examples[reason]}{', ...' if count > len(self.examples[reason]) else ''})"
            for reason, count in self.counts.items()
        )

    def warn(self) -> None:
        if self.count:
            warnings.warn(
                f"{self}. Fix or drop these entries in the file; posecore trains and evaluates without them",
                stacklevel=4,
            )


def is_pixel(value: Any) -> bool:
    """A finite number within +-MAX_PIXELS (not a bool, not an int too large for a float)."""
    return finite_number(value) and abs(value) <= MAX_PIXELS


def is_id(value: Any) -> bool:
    """An integer (not a bool) that fits int64."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID


def shown(value: Any) -> str:
    """A short description of a value for messages: 'a dict', 'null', 'NaN', '1e+308', "'x'"."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return f"a {'dict' if isinstance(value, dict) else 'list'} ({_cut(repr(value))})"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e15:
        return f"an integer of {len(str(abs(value)))} digits"
    return _cut(repr(value))


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- COCO keypoint files


def coco_content(content: Any, ann_file) -> dict:
    """The top level of a COCO keypoints json: an object whose `images` and `annotations` are
    lists (`categories`, when present, too), or a ValueError naming the file and the key."""
    if not isinstance(content, dict):
        raise ValueError(
            f"{ann_file}: expected a COCO keypoints json object (images, annotations, categories), got {shown(content)}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in content and key != "categories":
            raise ValueError(
                f"{ann_file}: no {key!r} list; a COCO keypoints json holds 'images', 'annotations' and 'categories'"
            )
        if key in content and not isinstance(content[key], list):
            raise ValueError(
                f"{ann_file}: {key!r} is {shown(content[key])}, expected a list of "
                f"{key[:-1] if key != 'categories' else 'category'} entries"
            )
    return content


def coco_images(coco: Any, ann_file) -> dict[int, dict]:
    """{image id: entry} of a COCO keypoints json, every entry checked: an integer id (each once),
    a file name, and width and height in pixels. A bad image entry is a ValueError naming the
    file, the entry (index, id) and the key: people cannot be placed without their image."""
    images: dict[int, dict] = {}
    first: dict[int, int] = {}
    for n, image in enumerate(coco_content(coco, ann_file)["images"]):
        problem = _image_problem(image)
        if problem:
            ident = (
                f" (id {shown(image.get('id'))}, {shown(image.get('file_name'))})" if isinstance(image, dict) else ""
            )
            raise ValueError(f"{ann_file}: images[{n}]{ident} {problem}")
        if image["id"] in images:
            raise ValueError(
                f"{ann_file}: images[{n}] repeats the id {image['id']} of images"
                f"[{first[image['id']]}]; every image needs its own id: drop or renumber one"
            )
        images[image["id"]] = image
        first[image["id"]] = n
    return images


def _image_problem(image: Any) -> str | None:
    if not isinstance(image, dict):
        return f"is {shown(image)}, expected an object with id, file_name, width and height"
    if not is_id(image.get("id")):
        return f"id is {shown(image.get('id'))}, expected an integer"
    name = image.get("file_name")
    if not isinstance(name, str) or not name.strip():
        return f"file_name is {shown(name)}, expected the image's file name"
    for key in ("width", "height"):
        value = image.get(key)
        if not (is_pixel(value) and value >= 1):
            return (
                f"has no valid width/height: {key} is {shown(value) if key in image else 'missing'}, "
                f"expected a positive number of pixels (up to {MAX_PIXELS:.0e}); COCO-format images "
                "need 'width' and 'height' in pixels: add them (the image file's size)"
            )
    return None


def image_size(image: dict) -> tuple[int, int]:
    """(w, h) of a checked image entry."""
    return int(image["width"]), int(image["height"])


def check_keypoint_count(coco: dict, ann_file, num_joints: int, category_id: Any) -> None:
    """The keypoint category (id `category_id`) lists `num_joints` joints, else a ValueError."""
    for category in coco.get("categories", []):
        names = category.get("keypoints") if isinstance(category, dict) else None
        if isinstance(names, list) and category.get("id") == category_id and len(names) != num_joints:
            raise ValueError(
                f"{ann_file}: category {shown(category.get('name', 1))} has {len(names)} keypoints but "
                f"the params have {num_joints} joints (model.num_joints, data.dataset): this file is not "
                f"in the layout of the params' dataset; use the matching params or annotation file"
            )


def coco_people(
    coco: Any, ann_file, num_joints: int, category_id: Any = 1, images: dict | None = None
) -> tuple[list[dict], BadEntries]:
    """The well-formed person annotations (of the keypoint category) of a COCO keypoints json,
    and the others counted. With `images` (coco_images), a person of an image not listed is
    malformed too."""
    coco = coco_content(coco, ann_file)
    check_keypoint_count(coco, ann_file, num_joints, category_id)
    people, bad, seen = [], BadEntries(str(ann_file)), set()
    for index, ann in enumerate(coco["annotations"]):
        if isinstance(ann, dict) and ann.get("category_id", 1) != category_id:
            continue
        bad.total += 1
        ident = ann.get("id") if isinstance(ann, dict) else None
        problem = coco_problem(ann, num_joints)
        if not problem and images is not None and ann["image_id"] not in images:
            problem = "image_id not in images"
        if not problem and is_id(ident):
            problem = "id repeats an earlier entry's" if ident in seen else None
            seen.add(ident)
        if problem:
            bad.add(problem, ident if is_id(ident) else f"#{index}")
        else:
            people.append(ann)
    return people, bad


def coco_problem(ann: Any, num_joints: int) -> str | None:
    """Why a COCO person annotation cannot be read, or None."""
    if not isinstance(ann, dict):
        return "not an object"
    if ann.get(PROBLEM_KEY):  # a whole-body part array the layout could not read
        return ann[PROBLEM_KEY]
    if not is_id(ann.get("image_id")):
        return "image_id is not an integer"
    keypoints = ann.get("keypoints")
    if not isinstance(keypoints, list) or not all(finite_number(v) for v in keypoints):
        return "keypoints is not a list of numbers"
    if len(keypoints) != 3 * num_joints:
        return f"{len(keypoints)} keypoint values, not {3 * num_joints} ({num_joints} joints x (x, y, v))"
    if not all(is_pixel(v) for v in keypoints):
        return f"keypoint values beyond {MAX_PIXELS:.0e} px"
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(finite_number(v) for v in bbox):
        return "bbox is not 4 finite numbers [x, y, w, h]"
    if not all(is_pixel(v) for v in bbox):
        return f"bbox values beyond {MAX_PIXELS:.0e} px"
    if ann.get("iscrowd", 0) not in (0, 1):
        return "iscrowd is not 0 or 1"
    for key in ("area", "num_keypoints"):
        if key in ann and not finite_number(ann[key]):
            return f"{key} is not a number"
    return None


# --------------------------------------------------------------------------- MPII (mmpose json)


def mpii_people(annotations: Any, ann_file, num_joints: int) -> tuple[list[tuple[int, dict]], BadEntries]:
    """The well-formed person entries of an MPII (mmpose) json as (position, entry), and the
    others counted (example ids: #position (image))."""
    if not isinstance(annotations, list):
        raise ValueError(f"{ann_file}: expected mmpose's MPII json, a list of people, got {shown(annotations)}")
    people, bad = [], BadEntries(str(ann_file), total=len(annotations))
    for position, ann in enumerate(annotations):
        problem = mpii_problem(ann, num_joints)
        if problem:
            image = ann.get("image") if isinstance(ann, dict) and isinstance(ann.get("image"), str) else None
            bad.add(problem, f"#{position}" + (f" ({image})" if image else ""))
        else:
            people.append((position, ann))
    return people, bad


def mpii_problem(ann: Any, num_joints: int) -> str | None:
    """Why an MPII person entry cannot be read, or None (joints may be absent: test entries)."""
    if not isinstance(ann, dict):
        return "not an object"
    if not isinstance(ann.get("image"), str) or not ann["image"].strip():
        return "image is not a file name"
    center, scale = ann.get("center"), ann.get("scale")
    if not isinstance(center, list) or len(center) != 2 or not all(is_pixel(v) for v in center):
        return "center is not 2 finite numbers"
    if not is_pixel(scale) or scale <= 0 or scale * 200 > MAX_PIXELS:
        return "scale is not a positive number"
    joints, visible = ann.get("joints"), ann.get("joints_vis")
    if joints is not None and (
        not isinstance(joints, list)
        or len(joints) != num_joints
        or not all(isinstance(j, list) and len(j) == 2 and all(is_pixel(v) for v in j) for j in joints)
    ):
        return f"joints is not {num_joints} (x, y) pairs of numbers"
    if visible is not None and (
        not isinstance(visible, list) or len(visible) != num_joints or not all(finite_number(v) for v in visible)
    ):
        return f"joints_vis is not {num_joints} numbers"
    return None
