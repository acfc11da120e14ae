"""Run folders and crash-safe file writes.

Every artifact goes through `atomic_write`: a temp file in the same folder, fsync, then
os.replace, so a kill mid-write leaves the previous file intact.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def outputs_root() -> Path:
    """Where run folders live: $POSECORE_OUTPUTS, else <repo>/outputs."""
    return Path(os.environ.get("POSECORE_OUTPUTS", REPO_ROOT / "outputs"))


def default_run_name(prefix: str) -> str:
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_dir(run_name: str, create: bool = True) -> Path:
    """`outputs/<run_name>/`; a run_name is a plain folder name, never a path."""
    if not _RUN_NAME.match(run_name or ""):
        raise ValueError(
            f"run_name {run_name!r} must be a plain folder name (letters, digits, '.', '_', '-')"
        )
    path = outputs_root() / run_name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


TRAINING_LOCK = ".training.lock"


class RunBusyError(RuntimeError):
    """Another process is training the same run folder."""


@contextlib.contextmanager
def training_lock(folder: str | os.PathLike):
    """Hold `folder`'s training lock while training it; a second trainer of the same run is refused.

    An flock on <folder>/.training.lock: the kernel drops it when the holder exits, however it
    ends (SIGKILL included), so `is_training` never sees a stale lock. The file names the holder.
    """
    path = Path(folder) / TRAINING_LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunBusyError(f"{Path(folder).name} is being trained by another process "
                               f"({f.read().strip() or 'unknown'}); wait for it, stop it, or pick "
                               f"another run_name") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_training(folder: str | os.PathLike) -> bool:
    """Whether a live process holds `folder`'s training lock (see `training_lock`)."""
    path = Path(folder) / TRAINING_LOCK
    try:
        f = open(path)
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Any], None]) -> Path:
    """Write `data` (bytes, text, or a callable given a binary file object) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def jsonl_line(obj: Any) -> str:
    """One record of a .jsonl file, newline included."""
    return json.dumps(obj, default=_json_default) + "\n"


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """One JSON object per line; appends are line-sized so readers never see half a record."""
    with open(path, "a") as f:
        f.write(jsonl_line(obj))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def json_safe(obj: Any) -> Any:
    """NaN / inf floats (a joint nobody labelled, a window of skipped steps) -> None, recursively
    through dicts and lists, so that the files stay strict JSON."""
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def finite_number(value: Any) -> bool:
    """Whether a log record's value is a real, finite number (not None, NaN, inf or a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def resolve_path(path: str | os.PathLike) -> Path:
    """Paths in params are relative to the repository root, whatever the notebook's cwd."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else REPO_ROOT / path
