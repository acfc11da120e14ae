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

A saved folder (`save`) is one <field>.npy per array and manifest.json, written last: each array's
shape, dtype, file size and blake2b hash, the caller's meta, and a checksum of the manifest itself.
`open` checks the manifest, every file's .npy header and size against it (always: a few stat calls
and header reads), and with `verify` the hashes and the values (finite, positive box sizes, image
path numbers in range, visible 0 / 1, ...: what the parser guarantees). A folder that does not
match is a `CacheMismatch` naming the folder and what differs; no array is mapped unchecked.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posecore.data.annotations import Instance
from posecore.geometry import MAX_PIXELS

# the dtype of each array, in field order
DTYPES = {
    "path_bytes": np.dtype(np.uint8),
    "path_offsets": np.dtype(np.int64),
    "path_index": np.dtype(np.int32),
    "image_id": np.dtype(np.int64),
    "image_size": np.dtype(np.int32),
    "bbox_center": np.dtype(np.float32),
    "bbox_scale": np.dtype(np.float32),
    "joints": np.dtype(np.float32),
    "visible": np.dtype(np.uint8),
    "bbox_xyxy": np.dtype(np.float32),
    "bbox_score": np.dtype(np.float64),
}
FIELDS = tuple(DTYPES)
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# positions and box sizes the parser lets through are within MAX_PIXELS (boxes padded, MPII's
# 1-based pixels made 0-based: a little beyond); anything past this bound was not written by it
POSITION_LIMIT = 10 * MAX_PIXELS
_CHUNK = 1 << 13  # people per step of the value checks: temporaries stay near 1 MB at any N


class CacheMismatch(ValueError):
    """A saved people folder that does not match its manifest: `folder` and `problem` (words)."""

    def __init__(self, folder: Path, problem: str) -> None:
        super().__init__(f"{folder}: {problem}")
        self.folder, self.problem = Path(folder), problem


class People(Sequence):
    """N people with K joints each as flat arrays (see the module docstring for the fields).

    `meta`: the meta a saved folder's manifest carries (posecore.data.cache's: split, annotation
    file, parse warnings), None for people built in memory."""

    def __init__(self, arrays: dict[str, np.ndarray], folder: Path | None = None, meta: dict | None = None) -> None:
        missing = [name for name in FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"People needs the arrays {list(FIELDS)}; missing {missing}")
        self.arrays = {name: arrays[name] for name in FIELDS}
        self.folder = folder  # the cache folder the arrays are mapped from, or None
        self.meta = meta
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
        """Each array as folder/<name>.npy, then folder/manifest.json (written last: a folder with
        a manifest is complete) with each file's shape, dtype, size and hash, `meta` (JSON data)
        and the manifest's own checksum. The caller renames the folder into place."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for name, array in self.arrays.items():
            path = folder / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array, dtype=DTYPES[name]), allow_pickle=False)
            entries[name] = {
                "shape": list(array.shape),
                "dtype": DTYPES[name].str,
                "bytes": path.stat().st_size,
                "blake2b": file_hash(path),
            }
        manifest = {
            "format": MANIFEST_FORMAT,
            "people": len(self),
            "joints": self.num_joints,
            "paths": len(self.path_offsets) - 1,
            "meta": meta,
            "arrays": entries,
        }
        manifest = json.loads(json.dumps(manifest))  # the checksum covers what a reader gets back
        manifest["checksum"] = _checksum(manifest)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))

    @classmethod
    def open(cls, folder: Path, verify: bool = False) -> People:
        """The arrays of a saved folder, memory-mapped read-only (the OS page cache holds one copy
        for every process that maps them), after the manifest and every file's header and size
        are checked; with `verify` also the hashes and the values. A CacheMismatch names the
        folder and what does not match."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        arrays = {name: _mapped(folder, name, manifest["arrays"][name], verify) for name in FIELDS}
        people = cls(arrays, folder, manifest["meta"])
        if verify:
            problem = people.value_problem()
            if problem:
                raise CacheMismatch(folder, problem)
        return people

    def __reduce__(self):
        # to a spawned DataLoader worker or another process: mapped again (the header and size
        # checks; the process that handed it over verified the contents), not copied
        if self.folder is not None:
            return (People.open, (self.folder,))
        return (People, (self.arrays,))

    def value_problem(self) -> str | None:
        """What the parser would never have written (non-finite or absurd positions, box sizes
        that are not positive, image path numbers out of range, visible flags other than 0 / 1,
        path offsets that do not cut the path buffer), in words; None when every value fits."""
        offsets = np.asarray(self.path_offsets)
        if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != len(self.path_bytes):
            return "path_offsets do not cut path_bytes into paths (start 0, rising, end at its length)"
        try:
            self.path_bytes.tobytes().decode()
        except UnicodeDecodeError:
            return "path_bytes is not UTF-8 text"
        paths = len(offsets) - 1
        checks = {
            "path_index": lambda a: (a >= 0) & (a < paths),
            "image_size": lambda a: (a == 0).all(axis=1) | ((a >= 1) & (a <= MAX_PIXELS)).all(axis=1),
            "bbox_center": lambda a: _positions(a).all(axis=1),
            "bbox_scale": lambda a: (_positions(a) & (a > 0)).all(axis=1),
            "joints": lambda a: _positions(a).reshape(len(a), -1).all(axis=1),
            "visible": lambda a: (a <= 1).all(axis=1),
            "bbox_xyxy": lambda a: np.isnan(a).all(axis=1) | _positions(a).all(axis=1),
            "bbox_score": np.isfinite,
        }
        expected = {
            "path_index": f"an image path number in [0, {paths})",
            "image_size": f"(0, 0) or a size in pixels up to {MAX_PIXELS:.0e}",
            "bbox_center": f"finite, within {POSITION_LIMIT:.0e} px",
            "bbox_scale": f"positive, within {POSITION_LIMIT:.0e} px",
            "joints": f"finite, within {POSITION_LIMIT:.0e} px",
            "visible": "0 or 1",
            "bbox_xyxy": f"4 finite numbers within {POSITION_LIMIT:.0e} px, or 4 NaN (no box)",
            "bbox_score": "a finite number",
        }
        for start in range(0, len(self), _CHUNK):
            for name, fits in checks.items():
                ok = fits(np.asarray(self.arrays[name][start : start + _CHUNK]))
                if not ok.all():
                    person = start + int(np.argmin(ok))
                    return f"{name} of person {person} is not {expected[name]}"
        return None

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


# --- the saved folder ------------------------------------------------------------------------------


def saved_files(folder: Path) -> list[Path]:
    """Every file of a saved folder: the manifest and one .npy per array."""
    return [Path(folder) / MANIFEST, *(Path(folder) / f"{name}.npy" for name in FIELDS)]


def file_hash(path: Path) -> str:
    """blake2b (128 bits) of a file's bytes, hex: ~1 GB/s, hashlib only."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _checksum(manifest: dict) -> str:
    text = json.dumps({key: value for key, value in manifest.items() if key != "checksum"}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """A saved folder's manifest, its checksum and layout checked (each array's entry names a
    shape that fits the people, joint and path counts, and the field's dtype); CacheMismatch
    naming the folder otherwise."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CacheMismatch(folder, f"has no {MANIFEST} (a build that did not finish, or a deleted file)") from None
    except OSError as error:
        raise CacheMismatch(folder, f"{MANIFEST} cannot be read ({error.strerror or error})") from None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser's depth
        raise CacheMismatch(folder, f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict):
        raise CacheMismatch(folder, f"{MANIFEST} is not a JSON object")
    try:
        intact = manifest.get("checksum") == _checksum(manifest)
    except (ValueError, RecursionError):  # a number JSON cannot write back (a huge integer)
        intact = False
    if not intact:
        raise CacheMismatch(folder, f"{MANIFEST} does not match its checksum (edited or damaged)")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CacheMismatch(
            folder, f"{MANIFEST} has format {manifest.get('format')!r}, this posecore reads {MANIFEST_FORMAT}"
        )
    counts = [manifest.get(key) for key in ("people", "joints", "paths")]
    entries = manifest.get("arrays")
    if not all(_count(value) for value in counts) or not isinstance(entries, dict):
        raise CacheMismatch(folder, f"{MANIFEST} lacks the people, joint and path counts or the array list")
    if not isinstance(manifest.get("meta"), dict):
        raise CacheMismatch(folder, f"{MANIFEST} has no meta object")
    people, joints, paths = counts
    for name in FIELDS:
        entry = entries.get(name)
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("shape"), list)
            and all(_count(v) for v in entry["shape"])
            and _count(entry.get("bytes"))
            and isinstance(entry.get("blake2b"), str)
        ):
            raise CacheMismatch(folder, f"{MANIFEST} has no usable entry for {name}")
        expected = _shape(name, people, joints, paths, entry["shape"])
        if tuple(entry["shape"]) != expected or entry.get("dtype") != DTYPES[name].str:
            raise CacheMismatch(
                folder,
                f"{MANIFEST} lists {name} as {entry.get('dtype')!r} {entry['shape']}, expected "
                f"{DTYPES[name].str!r} {list(expected)} for {people} people with {joints} joints",
            )
    return manifest


def _shape(name: str, people: int, joints: int, paths: int, listed: list) -> tuple[int, ...]:
    """The shape array `name` has for these counts (path_bytes: any length)."""
    if name == "path_bytes":
        return tuple(listed) if len(listed) == 1 else (-1,)
    return {
        "path_offsets": (paths + 1,),
        "image_size": (people, 2),
        "bbox_center": (people, 2),
        "bbox_scale": (people, 2),
        "joints": (people, joints, 2),
        "visible": (people, joints),
        "bbox_xyxy": (people, 4),
    }.get(name, (people,))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _mapped(folder: Path, name: str, entry: dict, verify: bool) -> np.ndarray:
    """folder/<name>.npy mapped read-only, after its header and size are checked against the
    manifest's `entry` (and with `verify` its hash)."""
    path = Path(folder) / f"{name}.npy"
    shape, dtype = tuple(entry["shape"]), DTYPES[name]
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f".npy version {version}")
            header = read_header[version](f)
            offset = f.tell()
    except FileNotFoundError:
        raise CacheMismatch(folder, f"{name}.npy is missing") from None
    except OSError as error:
        raise CacheMismatch(folder, f"{name}.npy cannot be read ({error.strerror or error})") from None
    except Exception:  # whatever numpy's header parser raises on a damaged header (ValueError, EOF, ...)
        raise CacheMismatch(folder, f"{name}.npy has no readable .npy header") from None
    if header != (shape, False, dtype):
        found = f"{header[2]} {list(header[0])}{' (Fortran order)' if header[1] else ''}"
        raise CacheMismatch(folder, f"{name}.npy holds {found}, its manifest says {dtype} {list(shape)}")
    nbytes = math.prod(shape) * dtype.itemsize
    if size != entry["bytes"] or size != offset + nbytes:
        raise CacheMismatch(folder, f"{name}.npy is {size} bytes, its manifest says {entry['bytes']}")
    if verify and file_hash(path) != entry["blake2b"]:
        raise CacheMismatch(folder, f"{name}.npy does not match its hash (its bytes changed after it was written)")
    if nbytes == 0:  # nothing to map (mmap cannot map zero bytes)
        empty = np.zeros(shape, dtype)
        empty.flags.writeable = False
        return empty
    try:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    except (OSError, ValueError) as error:  # truncated or replaced since the size check
        raise CacheMismatch(folder, f"{name}.npy cannot be mapped ({error})") from None


def _positions(values: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within POSITION_LIMIT pixels."""
    return np.abs(values) <= POSITION_LIMIT  # NaN compares False
