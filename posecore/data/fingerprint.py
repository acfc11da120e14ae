"""What data a run used, cheaply enough to record at every start: the data fingerprint.

`data_fingerprint(params, splits)` -> {split: {"annotations": file, "images": folder,
"detections": file or None, "gt_mat": file or None}} where
  file   = {"name", "path", "size", "sha256"}  (or {"name", "path", "missing": True})
  folder = {"name", "path", "count", "listing_sha256", "names_sizes_sha256"}: the image files
           (regular files directly in the folder) by name, size and modification time hashed
           together, and the same without the times (a copy keeps names and sizes, not times).
The image contents are not read: an image edited in place keeps its name but (nearly always)
changes its size or time. `fingerprint_changes(recorded, now)` words the differences.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from posecore.data.annotations import DataLayoutError, _det_file_path, dataset_root, uses_coco_layout
from posecore.data.layouts import coco_style_layout
from posecore.params import Params

_CHUNK = 1 << 20


def split_files(params: Params, split: str) -> dict[str, Path | None]:
    """The files one split reads, found without reading them: {"annotations": json, "images":
    folder, "detections": data.det_file (COCO test split) or None, "gt_mat": MPII's .mat or None}."""
    data = params.data
    root = dataset_root(data)
    if uses_coco_layout(data.dataset):
        layout = coco_style_layout(data.dataset)
        detections = None
        if split == "test":
            try:
                detections = _det_file_path(root, data.det_file)
            except (DataLayoutError, ValueError):
                detections = Path(data.det_file or "(data.det_file not set)")
        return {
            "annotations": layout.ann_file(root, split),
            "images": layout.image_dir(root, split),
            "detections": detections,
            "gt_mat": None,
        }
    subset = "train" if split == "train" else "val"
    return {
        "annotations": root / "annotations" / f"mpii_{subset}.json",
        "images": root / "images",
        "detections": None,
        "gt_mat": None if split == "train" else root / "annotations" / "mpii_gt_val.mat",
    }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """{"name", "path", "size", "sha256"} of a file, or {"name", "path", "missing": True}."""
    path = Path(path)
    if not path.is_file():
        return {"name": path.name, "path": str(path), "missing": True}
    return {"name": path.name, "path": str(path), "size": path.stat().st_size, "sha256": file_sha256(path)}


def folder_record(path: Path) -> dict[str, Any]:
    """The image folder's cheap fingerprint (module docstring); count 0 for a missing folder."""
    path = Path(path)
    entries = []
    if path.is_dir():
        with os.scandir(path) as listing:
            for entry in listing:
                if entry.is_file() and not entry.name.startswith("."):
                    stat = entry.stat()
                    entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    entries.sort()
    with_times, without = hashlib.sha256(), hashlib.sha256()
    for name, size, mtime in entries:
        with_times.update(f"{name}\0{size}\0{mtime}\n".encode())
        without.update(f"{name}\0{size}\n".encode())
    return {
        "name": path.name,
        "path": str(path),
        "count": len(entries),
        "listing_sha256": with_times.hexdigest(),
        "names_sizes_sha256": without.hexdigest(),
    }


def data_fingerprint(params: Params, splits) -> dict[str, dict[str, Any]]:
    """{split: fingerprint} of the splits a run reads (module docstring); a folder shared by two
    splits (MPII's images/) is listed once."""
    folders: dict[Path, dict[str, Any]] = {}
    result = {}
    for split in dict.fromkeys(splits):
        files = split_files(params, split)
        images = files["images"]
        if images not in folders:
            folders[images] = folder_record(images)
        result[split] = {
            "annotations": file_record(files["annotations"]),
            "images": folders[images],
            "detections": file_record(files["detections"]) if files["detections"] else None,
            "gt_mat": file_record(files["gt_mat"]) if files["gt_mat"] else None,
        }
    return result


def fingerprint_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each difference between two data fingerprints of the same splits, in words, naming the
    split and the file or folder (empty when the data is the same)."""
    reasons = []
    for split, before in recorded.items():
        after = now.get(split)
        if after is None:
            reasons.append(f"data: the {split} split was recorded but is not read now")
            continue
        for kind in ("annotations", "detections", "gt_mat"):
            reason = _file_change(split, kind, before.get(kind), after.get(kind))
            if reason:
                reasons.append(reason)
        reason = _folder_change(split, before.get("images") or {}, after.get("images") or {})
        if reason:
            reasons.append(reason)
    return reasons


_KIND_WORDS = {"annotations": "annotation file", "detections": "detections file", "gt_mat": "ground-truth file"}


def _file_change(split: str, kind: str, before: dict | None, after: dict | None) -> str | None:
    what = f"data: the {split} {_KIND_WORDS[kind]}"
    if not before and not after:
        return None
    if not before:
        return f"{what} {after['name']} is read now but was not recorded"
    if not after:
        return f"{what} {before['name']} was recorded but is not read now"
    if before.get("missing") or after.get("missing"):
        if before.get("missing") and after.get("missing"):
            return None
        state = "is missing now" if after.get("missing") else "was missing when recorded"
        return f"{what} {after['name']} {state} ({after['path']})"
    if before["name"] != after["name"]:
        return f"{what} is {after['name']} now, {before['name']} when recorded"
    if before["sha256"] != after["sha256"]:
        return (
            f"{what} {after['name']} changed: sha256 {before['sha256'][:12]}... ({before['size']} bytes) "
            f"recorded, {after['sha256'][:12]}... ({after['size']} bytes) now ({after['path']})"
        )
    return None


def _folder_change(split: str, before: dict, after: dict) -> str | None:
    if before.get("listing_sha256") == after.get("listing_sha256"):
        return None
    what = f"data: the {split} images in {after.get('name', '?')}/"
    if before.get("count") != after.get("count"):
        return f"{what} changed: {before.get('count')} files recorded, {after.get('count')} now ({after.get('path')})"
    if before.get("names_sizes_sha256") == after.get("names_sizes_sha256"):
        return (
            f"{what} have the recorded names and sizes but other modification times (copied or "
            f"touched?) ({after.get('path')})"
        )
    return f"{what} changed: same count ({after.get('count')}), other names or sizes ({after.get('path')})"
