"""Annotation files parsed once: the people of a split cached as memory-mapped arrays.

`load_people(params, split)` returns what `load_instances` does, with the people as flat arrays
(posecore.data.people.People). The first call parses the file (load_instances: validated entries
-> Instances) and saves the arrays under <cache root>/people/<key>/; later calls, in any process,
map that folder instead (COCO-train size: ~10 s of JSON parsing becomes well under a second).

- Key: a hash of the annotation file's content (and data.det_file's, for the test split), the
  params that change what is parsed (data.* minus augmentation, normalization and heatmap keys),
  the dataset folder, the split and the parser's source files (posecore/data/*.py and the modules
  it reads files with). A changed file or parser gets a
  new folder; nothing stale is read.
- Cache root: <outputs root>/cache (runs.outputs_root, which follows POSECORE_OUTPUTS). Folders
  are derived data: deleting them only costs a parse.
- One builder: an exclusive file lock per key; the first process to take it (rank 0 or any
  other) parses and saves into a temp folder renamed into place, the others wait on the lock and
  then map the result, so 8 ranks x N workers share one parse and one copy of the pages.
- The warnings of the parse (skipped malformed entries, ...) are stored and shown on every load.
- Not cached: a custom keypoint set whose joints the params do not record yet (its keypoint set
  is read from the file by load_instances); a cache root that cannot be written (a warning).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from posecore.data.annotations import existing_root, load_instances, split_files
from posecore.data.people import People
from posecore.keypoints import KeypointInfo, keypoint_info
from posecore.params import Params
from posecore.runs import outputs_root

CACHE_FORMAT = 1
# data.* keys that do not change which people are read or their boxes: left out of the key
_NOT_PARSED = (
    "heatmap_size",
    "sigma",
    "codec",
    "mean",
    "std",
    "flip",
    "scale_factor",
    "rot_factor",
    "rot_prob",
    "half_body_prob",
    "half_body_min_joints",
    "workers",
    "group_by_image",
    "reduced_decode",
    "skeleton",
    "flip_pairs",
    "upper_body",
    "joint_weights",
)
_POSECORE = Path(__file__).resolve().parents[1]
# the parser's code: every module of posecore.data and what it uses to read files
_PARSER_SOURCES = ("geometry.py", "keypoints.py", "keypoint_sets.py", "detect.py", "runs.py")


def cache_root() -> Path:
    """<outputs root>/cache: runs.outputs_root() follows POSECORE_OUTPUTS."""
    return outputs_root() / "cache"


def load_people(params: Params, split: str) -> tuple[People, KeypointInfo, Path, str | None]:
    """(people, keypoint set, annotation file, MPII ground-truth .mat or None) of one split, the
    people parsed once per annotation file and then memory-mapped (see the module docstring)."""
    if params.data.dataset == "custom" and not params.data.joint_names:
        instances, info, ann_file, gt_mat = load_instances(params, split)
        return People.from_instances(instances, info.num_joints), info, ann_file, gt_mat
    folder = cache_root() / "people" / cache_key(params, split)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _uncached(params, split, f"cannot create {folder.parent} ({error.strerror or error})")
    with _exclusive(folder.with_name(folder.name + ".lock")):
        if not (folder / "meta.json").is_file():
            people, info, ann_file, gt_mat, caught = _parse(params, split)
            meta = {
                "format": CACHE_FORMAT,
                "split": split,
                "ann_file": str(ann_file),
                "gt_mat": gt_mat,
                "num_joints": info.num_joints,
                "warnings": caught,
            }
            try:
                _save(people, meta, folder)
            except OSError as error:
                _replay(caught)
                warnings.warn(
                    f"posecore.data: cannot write the annotation cache {folder} "
                    f"({error.strerror or error}); parsed without it",
                    stacklevel=2,
                )
                return people, info, ann_file, gt_mat
    meta = json.loads((folder / "meta.json").read_text())
    _replay(meta["warnings"])
    return People.open(folder), keypoint_info(params), Path(meta["ann_file"]), meta["gt_mat"]


def cache_key(params: Params, split: str) -> str:
    """The cache folder name of one split under params: a hash of everything the parse reads."""
    digest = hashlib.sha256()
    data = {key: value for key, value in dataclasses.asdict(params.data).items() if key not in _NOT_PARSED}
    described = {"format": CACHE_FORMAT, "split": split, "data": data, "root": str(existing_root(params.data))}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for path in split_files(params, split):
        digest.update(_file_digest(path))
    for source in [*sorted((_POSECORE / "data").glob("*.py")), *(_POSECORE / name for name in _PARSER_SOURCES)]:
        digest.update(source.read_bytes() if source.is_file() else source.name.encode())
    return f"{params.data.dataset}-{split}-{digest.hexdigest()[:24]}"


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _parse(params: Params, split: str):
    """load_instances as flat arrays, with the warnings it gave as (category, message) pairs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instances, info, ann_file, gt_mat = load_instances(params, split)
    people = People.from_instances(instances, info.num_joints)
    return people, info, ann_file, gt_mat, [[w.category.__name__, str(w.message)] for w in caught]


def _uncached(params: Params, split: str, why: str):
    warnings.warn(
        f"posecore.data: annotation cache off: {why}; point POSECORE_OUTPUTS at a writable "
        f"folder to parse each file once",
        stacklevel=3,
    )
    people, info, ann_file, gt_mat, caught = _parse(params, split)
    _replay(caught)
    return people, info, ann_file, gt_mat


def _replay(caught: list) -> None:
    for category, message in caught:
        kind = {"RuntimeWarning": RuntimeWarning, "DeprecationWarning": DeprecationWarning}.get(category, UserWarning)
        warnings.warn(message, kind, stacklevel=4)


def _save(people: People, meta: dict, folder: Path) -> None:
    """Arrays into a temp folder beside `folder`, then one rename: readers see all or nothing."""
    temp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        people.save(temp, meta)
        os.rename(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if not (folder / "meta.json").is_file():  # else another builder's rename won: use that
            raise


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path`, waiting for another holder; without file locks (some
    network file systems) go on unlocked: the rename in _save keeps racing builders safe."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):  # no file locks here: unlocked, as the docstring says
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
