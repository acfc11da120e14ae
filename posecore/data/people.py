"""The people of one split as flat arrays: what a PoseDataset crops, shared by DataLoader workers.

A list of per-person Python objects costs ~1 KB each (120-220 MB at COCO-train size, 149,813
people) and every worker that reads them writes their reference counts, copying the pages they sit
on (copy-on-access). `People` holds the same fields as a dozen numpy arrays instead (memory-mapped
from the parse cache, posecore.data.cache, so ranks and workers share one copy of the pages):

  path_bytes uint8 [B], path_offsets int64 [P + 1]   the P distinct image paths (utf-8), one buffer
  path_index int32 [N]          the image path of each person (paths numbered by first appearance)
  image_id int64 [N]
  image_size int32 [N, 2]       (w, h); (0, 0) when the annotations do not give it
  bbox_center, bbox_scale float32 [N, 2]  (pixels)
  joints float32 [N, K, 2]      original-image pixels; any K (17 COCO ... 136 Halpe)
  visible uint8 [N, K]          1 = labelled
  bbox_xyxy float32 [N, 4]      the person box for DPG jitter; NaN when there is none (detector boxes)
  bbox_score float64 [N]     (detector scores as given)

`people[i]` is the i-th person as an `Instance` (built on access, arrays are views).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from posecore.data.annotations import Instance

FIELDS = (
    "path_bytes",
    "path_offsets",
    "path_index",
    "image_id",
    "image_size",
    "bbox_center",
    "bbox_scale",
    "joints",
    "visible",
    "bbox_xyxy",
    "bbox_score",
)


class People(Sequence):
    """N people with K joints each as flat arrays (see the module docstring for the fields)."""

    def __init__(self, arrays: dict[str, np.ndarray], folder: Path | None = None) -> None:
        missing = [name for name in FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"People needs the arrays {list(FIELDS)}; missing {missing}")
        self.arrays = {name: arrays[name] for name in FIELDS}
        self.folder = folder  # the cache folder the arrays are mapped from, or None
        for name, array in self.arrays.items():
            setattr(self, name, array)

    # ---- building, saving, mapping

    @classmethod
    def from_instances(cls, instances: Sequence[Instance], num_joints: int) -> People:
        """Flat arrays of `instances` (each with `num_joints` joints)."""
        count = len(instances)
        paths: dict[str, int] = {}
        path_index = np.array(
            [paths.setdefault(inst.image_path, len(paths)) for inst in instances], dtype=np.int32
        ).reshape(count)
        encoded = [path.encode() for path in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(path) for path in encoded], out=offsets[1:])
        joints = np.zeros((count, num_joints, 2), np.float32)
        visible = np.zeros((count, num_joints), np.uint8)
        boxes = np.full((count, 4), np.nan, np.float32)
        for i, inst in enumerate(instances):
            joints[i] = inst.joints
            visible[i] = np.asarray(inst.visible) > 0
            if inst.bbox_xyxy is not None:
                boxes[i] = inst.bbox_xyxy
        return cls(
            {
                "path_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
                "path_offsets": offsets,
                "path_index": path_index,
                "image_id": np.array([inst.image_id for inst in instances], np.int64).reshape(count),
                "image_size": np.array([inst.image_size or (0, 0) for inst in instances], np.int32).reshape(count, 2),
                "bbox_center": np.array([inst.bbox_center for inst in instances], np.float32).reshape(count, 2),
                "bbox_scale": np.array([inst.bbox_scale for inst in instances], np.float32).reshape(count, 2),
                "joints": joints,
                "visible": visible,
                "bbox_xyxy": boxes,
                "bbox_score": np.array([inst.bbox_score for inst in instances], np.float64).reshape(count),
            }
        )

    def save(self, folder: Path, meta: dict) -> None:
        """Each array as folder/<name>.npy and `meta` as folder/meta.json (written last: a folder
        with meta.json is complete). The caller renames the folder into place."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in self.arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (folder / "meta.json").write_text(json.dumps({**meta, "people": len(self)}, indent=1))

    @classmethod
    def open(cls, folder: Path) -> People:
        """The arrays of a saved folder, memory-mapped read-only: the OS page cache holds one copy
        for every process that maps them."""
        folder = Path(folder)
        return cls(
            {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in FIELDS}, folder
        )

    def __reduce__(self):
        # to a spawned DataLoader worker or another process: mapped again, not copied
        if self.folder is not None:
            return (People.open, (self.folder,))
        return (People, (self.arrays,))

    # ---- reading

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (what the people occupy, mapped or in memory)."""
        return int(sum(array.nbytes for array in self.arrays.values()))

    def __len__(self) -> int:
        return int(self.path_index.shape[0])

    def path(self, path_number: int) -> str:
        start, stop = self.path_offsets[path_number], self.path_offsets[path_number + 1]
        return self.path_bytes[start:stop].tobytes().decode()

    def image_path(self, index: int) -> str:
        return self.path(int(self.path_index[index]))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"person {index} out of range for {len(self)} people")
        width, height = (int(v) for v in self.image_size[index])
        box = self.bbox_xyxy[index]
        return Instance(
            image_path=self.image_path(index),
            image_id=int(self.image_id[index]),
            image_size=(width, height) if width > 0 else None,
            bbox_center=np.array(self.bbox_center[index]),
            bbox_scale=np.array(self.bbox_scale[index]),
            joints=np.array(self.joints[index]),
            visible=self.visible[index].astype(np.float32),
            bbox_xyxy=None if np.isnan(box).any() else np.array(box),
            bbox_score=float(self.bbox_score[index]),
        )

    def __iter__(self) -> Iterator[Instance]:
        return (self[i] for i in range(len(self)))

    def image_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(members int64 [N], offsets int64 [P + 1]): the people of image path p, in dataset order,
        are members[offsets[p]:offsets[p + 1]]; images in the order they first appear."""
        index = np.asarray(self.path_index)
        members = np.argsort(index, kind="stable").astype(np.int64)
        offsets = np.zeros(len(self.path_offsets), dtype=np.int64)
        np.cumsum(np.bincount(index, minlength=len(offsets) - 1), out=offsets[1:])
        return members, offsets
