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
- Verified: the folder's manifest.json (written last, posecore.data.people) lists each array's
  shape, dtype, size and hash. Every load checks the shapes, dtypes and sizes; the first load of
  the files in a process also the hashes and the values (~0.1 s at COCO-train size). A folder
  that does not verify (truncated, flipped bytes, another dtype or shape, a file deleted, a
  damaged manifest) is rebuilt from the annotation file under the key's lock, with a warning
  naming the folder and what was wrong: a load gives the parsed people or none, never others.
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
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from posecore.data.annotations import existing_root, load_instances, split_files
from posecore.data.people import CacheMismatch, People, saved_files
from posecore.keypoints import KeypointInfo, keypoint_info
from posecore.params import Params
from posecore.runs import outputs_root

CACHE_FORMAT = 2  # 2: manifest.json with sizes and hashes (posecore.data.people)
SETTLED_NS = 2_000_000_000  # files older than this keep their verification for the process (_settled)
# folder -> the signature of its files when this process last verified their hashes and values
_VERIFIED: dict[Path, tuple] = {}
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
    people parsed once per annotation file and then memory-mapped (see the module docstring). A
    cache folder that does not verify is rebuilt, with a warning naming it and what was wrong."""
    if params.data.dataset == "custom" and not params.data.joint_names:
        instances, info, ann_file, gt_mat = load_instances(params, split)
        return People.from_instances(instances, info.num_joints), info, ann_file, gt_mat
    info = keypoint_info(params)
    folder = cache_root() / "people" / cache_key(params, split)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _uncached(params, split, f"cannot create {folder.parent} ({error.strerror or error})")
    people, _ = _open_verified(folder, split, info)  # most loads: no lock, the folder is there and verifies
    if people is None:
        with _exclusive(folder.with_name(folder.name + ".lock")) as locked:
            if locked:
                _remove_interrupted_builds(folder)
            people, problem = _open_verified(folder, split, info)  # another builder may have been first
            if people is None:
                return _build(params, split, folder, problem)
    _replay(people.meta["warnings"])
    return people, info, Path(people.meta["ann_file"]), people.meta["gt_mat"]


def _open_verified(folder: Path, split: str, info: KeypointInfo) -> tuple[People | None, str | None]:
    """(the folder's people, None) when it verifies; (None, None) without a folder; (None, what
    is wrong) otherwise. Header and size checks on every load; hashes and values when the files
    are not the ones this process verified already (_VERIFIED)."""
    if not os.path.lexists(folder):
        return None, None
    before = _signature(folder)
    try:
        people = People.open(folder, verify=before is None or _VERIFIED.get(folder) != before)
        _check_meta(people, split, info)
    except CacheMismatch as mismatch:
        _VERIFIED.pop(folder, None)
        return None, mismatch.problem
    if before is not None and before == _signature(folder) and _settled(before):
        _VERIFIED[folder] = before
    return people, None


def _check_meta(people: People, split: str, info: KeypointInfo) -> None:
    """The manifest's meta is what load_people saved for this split and keypoint set."""
    meta = people.meta
    caught = meta.get("warnings")
    if not (
        meta.get("format") == CACHE_FORMAT
        and meta.get("key") == people.folder.name
        and meta.get("split") == split
        and isinstance(meta.get("ann_file"), str)
        and isinstance(meta.get("gt_mat"), (str, type(None)))
        and isinstance(caught, list)
        and all(isinstance(w, list) and len(w) == 2 and all(isinstance(v, str) for v in w) for w in caught)
    ):
        raise CacheMismatch(
            people.folder, f"its meta is not the format-{CACHE_FORMAT} record of this key and split {split!r}"
        )
    if people.num_joints != info.num_joints:
        raise CacheMismatch(
            people.folder, f"it holds {people.num_joints} joints per person, the keypoint set has {info.num_joints}"
        )


def _signature(folder: Path) -> tuple | None:
    """(inode, size, mtime, ctime) of every saved file: what a write or a replacement changes."""
    try:
        return tuple(
            (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            for stat in map(os.stat, saved_files(folder))
        )
    except OSError:
        return None


def _settled(signature: tuple) -> bool:
    """Whether the files were last changed over SETTLED_NS ago: a later write then gets a later
    time stamp than the one recorded (file times tick in steps of up to a second), so an
    unchanged signature means unchanged files."""
    return time.time_ns() - max(max(stat[2], stat[3]) for stat in signature) > SETTLED_NS


def _build(params: Params, split: str, folder: Path, problem: str | None):
    """Parse the split and save it into `folder` (replacing a folder that did not verify, whose
    `problem` the warning names); load_people's tuple. Called under the key's lock."""
    people, info, ann_file, gt_mat, caught = _parse(params, split)
    meta = {
        "format": CACHE_FORMAT,
        "key": folder.name,  # a valid cache of other params or data copied here is not this one
        "split": split,
        "ann_file": str(ann_file),
        "gt_mat": gt_mat,
        "warnings": caught,
    }
    if problem is not None:
        warnings.warn(
            f"posecore.data: the annotation cache {folder} does not verify: {problem}; rebuilt it from {ann_file}",
            stacklevel=3,
        )
    try:
        _save(people, meta, folder)
    except OSError as error:
        _replay(caught)
        warnings.warn(
            f"posecore.data: cannot write the annotation cache {folder} ({error.strerror or error}); parsed without it",
            stacklevel=3,
        )
        return people, info, ann_file, gt_mat
    mapped, problem = _open_verified(folder, split, info)
    _replay(caught)
    if mapped is None:  # the disk did not keep what was written, or the parser let through a value it should not
        warnings.warn(
            f"posecore.data: the annotation cache {folder} does not verify right after it was written "
            f"({problem}); parsed without it",
            stacklevel=3,
        )
        return people, info, ann_file, gt_mat
    return mapped, info, ann_file, gt_mat


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
    """Arrays into a temp folder beside `folder`, then renames: readers see all or nothing. A
    folder already there (one that did not verify) is first renamed aside, then deleted."""
    temp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        people.save(temp, meta)
        aside = None
        if os.path.lexists(folder):
            aside = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.old.tmp")
            os.rename(folder, aside)
        os.rename(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if aside is not None:
        _remove(aside)


def _remove_interrupted_builds(folder: Path) -> None:
    """Delete the temp folders of builds of this key that were killed (only while holding the
    key's lock: a live builder's temp folder looks the same)."""
    for path in folder.parent.glob(f".{folder.name}.*.tmp"):
        _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on `path`, waiting for another holder; yields whether it is held.
    Without file locks (some network file systems) go on unlocked: the renames in _save keep
    racing builders' readers safe."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:  # no file locks here: unlocked, as the docstring says
            locked = False
        yield locked
    finally:
        os.close(fd)
