"""Run folders, their single writer, and crash-safe file writes.

Every artifact goes through `atomic_write`: a temp file in the same folder, fsync, then
os.replace, so a kill mid-write leaves the previous file intact, and a full disk is an error
naming the file and the size it needed. A run folder has one writer at a time (`run_lock`: an
OS file lock that dies with its process); taking the lock also removes the temp files that
interrupted writes left behind. Log files are JSON lines; a torn last line (a kill or a full
disk during an append) is skipped by readers and cut off by the next append.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCK_NAME = ".writer.lock"
# what atomic_write's mkstemp names look like: .<target name>.<8 random characters>.tmp
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class TrainingError(RuntimeError):
    """Training cannot go on (persistent non-finite loss, out of memory, a refused run folder)."""


class RunLockedError(RuntimeError):
    """Another process is writing the run folder."""


class DiskFullError(OSError):
    """A write ran out of disk space (or quota); the previous file is intact."""


def outputs_root() -> Path:
    """Where run folders live: $POSECORE_OUTPUTS, else <repo>/outputs."""
    return Path(os.environ.get("POSECORE_OUTPUTS", REPO_ROOT / "outputs"))


def default_run_name(prefix: str) -> str:
    """<prefix>-<date>-<time>, with anything a run_name cannot hold in prefix replaced by '-'."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-._")[:80] or "run"
    return f"{prefix}-{stamp}"


def run_dir(run_name: str, create: bool = True) -> Path:
    """`outputs/<run_name>/`; a run_name is a plain folder name, never a path."""
    check_run_name(run_name)
    path = outputs_root() / run_name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_run_name(run_name: Any) -> None:
    """A run_name is one folder name: letters, digits, '.', '_', '-', short enough for the disk."""
    if not isinstance(run_name, str) or not _RUN_NAME.fullmatch(run_name):
        hint = ""
        if isinstance(run_name, str) and any(ord(c) < 32 or ord(c) == 127 for c in run_name):
            hint = (" (it contains a control character such as a newline, e.g. from a shell "
                    "command's output: strip it)")
        raise ValueError(f"run_name {run_name!r} must be a plain folder name (letters, digits, "
                         f"'.', '_', '-', starting with a letter or digit){hint}")
    limit = _name_max(outputs_root())
    if len(run_name.encode()) > limit:
        raise ValueError(f"run_name is {len(run_name)} characters long; the file system of "
                         f"{outputs_root()} allows folder names of at most {limit}: use a shorter "
                         f"run_name ({run_name[:40]}...)")


def _name_max(folder: Path) -> int:
    """The longest file name the file system holding `folder` (or its nearest parent) accepts."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return os.pathconf(candidate, "PC_NAME_MAX")
            except (OSError, ValueError):
                break
    return 255


# --- one writer per run -----------------------------------------------------------------------

@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, purpose: str, node: int = 0) -> Iterator[Path]:
    """Hold the run folder's writer lock while the block runs (`purpose`: e.g. "training").

    An exclusive flock on <folder>/.writer.lock: the OS drops it when the process ends, however it
    ends, so it is never stale. A second process is refused at once (RunLockedError naming the
    run, the holder's pid, host and purpose), a second holder in the same process too.
    Once taken, temp files of interrupted atomic writes in the folder are removed. The machines
    of a multi-node run share the folder: machine `node` > 0 holds its own .writer-node<N>.lock
    (one process per machine) and leaves the temp files to machine 0, which writes the records.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_name = _LOCK_NAME if node == 0 else f".writer-node{node}.lock"
    path = folder / lock_name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            locked = _flock_soon(fd)
        except BlockingIOError:
            raise RunLockedError(_locked_message(folder, _read_holder(fd), lock_name)) from None
        except OSError as error:  # e.g. an NFS mount without a lock service
            warnings.warn(f"cannot lock run {folder.name!r} at {path} ({os.strerror(error.errno)}): "
                          f"nothing stops a second writer of this run; put POSECORE_OUTPUTS on a "
                          f"file system with file locks (local disk, NFSv4, Lustre mounted with "
                          f"flock)", stacklevel=3)
            locked = False
        if locked:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                      "since": datetime.now().isoformat(timespec="seconds"), "command": list(sys.argv)}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            if locked and node == 0:  # only the writer can tell an orphan temp file from a live one
                _report_removed(folder, remove_orphan_temps(folder))
            yield folder
        finally:
            if locked:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _flock_soon(fd: int, tries: int = 5) -> bool:
    """LOCK_EX within ~0.2 s (a reader's `run_writer` probe holds the lock for an instant)."""
    for _ in range(tries - 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True


def run_writer(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The live process writing the run in `folder` ({"pid", "host", "purpose", "since", ...}),
    or None when no process holds its run_lock."""
    try:
        fd = os.open(Path(folder) / _LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_training(folder: str | os.PathLike) -> bool:
    """Whether a live process is training the run in `folder`."""
    return (run_writer(folder) or {}).get("purpose") == "training"


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except ValueError:  # the holder is between taking the lock and writing its details
        return {}


def _locked_message(folder: Path, holder: dict[str, Any], lock_name: str) -> str:
    who = (f"{holder.get('purpose', 'a writer')} in process {holder.get('pid', '?')} on host "
           f"{holder.get('host', '?')}" + (f" since {holder['since']}" if "since" in holder else ""))
    return (f"run {folder.name!r} ({folder}) is already being written by {who}; two writers would "
            f"mix their logs and checkpoints. Wait for it to finish or stop that process (its lock "
            f"goes away with it; deleting {lock_name} does not help), or use another run_name.")


def remove_orphan_temps(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """Delete atomic_write temp files under `folder` (left by a kill mid-write); [(path, bytes)].

    Call only while holding the folder's run_lock: a live writer's temp file looks the same.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if _TEMP_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            removed.append((path, size))
    return removed


def _report_removed(folder: Path, removed: list[tuple[Path, int]]) -> None:
    if removed:
        total = sum(size for _, size in removed)
        print(f"{folder.name}: removed {len(removed)} temp file(s) of interrupted writes "
              f"({_size_text(total)}): {', '.join(str(p.relative_to(folder)) for p, _ in removed)}",
              file=sys.stderr, flush=True)


# --- crash-safe writes ------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Any], None]) -> Path:
    """Write `data` (bytes, text, or a callable given a binary file object) to `path` atomically.

    A full disk raises DiskFullError naming the path and the size the file needs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(payload):
                payload(f)
            else:
                f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        full = _disk_full_cause(error)
        if full is not None:
            raise _disk_full(path, _payload_size(payload), full) from error
        raise
    return path


def _disk_full_cause(error: BaseException | None) -> OSError | None:
    """The ENOSPC / EDQUOT error behind `error`, if any: serializers (torch.save's zip writer)
    may hide it behind an error of their own."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _payload_size(payload: bytes | Callable[[Any], None]) -> int | None:
    """Bytes a payload writes; a callable is run again into a counter (only after a failure)."""
    if not callable(payload):
        return len(payload)
    counter = _ByteCounter()
    try:
        payload(counter)
    except Exception:
        return None
    return counter.size


class _ByteCounter:
    """A write-only binary file that keeps nothing but the byte count."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.size += size
        return size

    def flush(self) -> None:
        pass


def _disk_full(path: Path, needed: int | None, error: OSError) -> DiskFullError:
    free = _free_bytes(path.parent)
    need = f"it needs {_size_text(needed)}" if needed is not None else "its size is unknown"
    state = "is left as it was" if path.exists() else "was not written"
    message = (f"no space left writing {path}: {need}, {_size_text(free)} free there "
               f"({os.strerror(error.errno)}); {path.name} {state}. Free some space or point "
               f"POSECORE_OUTPUTS at a larger disk, then run again")
    full = DiskFullError(error.errno, message)
    full.filename = str(path)
    return full


def _free_bytes(folder: Path) -> int | None:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _size_text(size: int | None) -> str:
    if size is None:
        return "an unknown amount"
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's content; one that is not JSON is a ValueError naming it."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({error}); it is damaged: restore or delete it") from None


# --- JSON lines -------------------------------------------------------------------------------

def jsonl_line(obj: Any) -> str:
    """One record of a .jsonl file, newline included."""
    return json.dumps(obj, default=_json_default) + "\n"


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON object as one line. A torn last line already there is cut off first; a
    full disk truncates this append away and raises DiskFullError, so the file stays whole lines."""
    path = Path(path)
    line = jsonl_line(obj).encode()
    repair_jsonl(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
        except OSError as error:
            os.ftruncate(fd, start)
            if error.errno in _DISK_FULL:
                raise _disk_full(path, len(line), error) from error
            raise
    finally:
        os.close(fd)


def repair_jsonl(path: str | os.PathLike) -> int:
    """Make `path` end at a line end: a complete record missing its newline gets it, a torn last
    line is cut off (with a warning naming the file). Returns the bytes removed."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        content = f.read()
        start = content.rfind(b"\n") + 1
        if _record(content[start:]) is not None:
            f.seek(size)
            f.write(b"\n")
            return 0
        f.truncate(start)
    warnings.warn(f"{path}: removed a torn last line ({size - start} bytes, from a write that was "
                  f"interrupted)", stacklevel=2)
    return size - start


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a .jsonl file; unreadable lines (a torn last line) are skipped with a warning
    naming the file and the line numbers."""
    records, bad = [], []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
                bad.append(number)
            else:
                records.append(record)
    if bad:
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) (line {', '.join(map(str, bad[:5]))}"
                      f"{', ...' if len(bad) > 5 else ''}), e.g. a record torn by a kill or a full "
                      f"disk; resuming the run rewrites the file without them", stacklevel=2)
    return records


def _record(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


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
    """Whether a value read from a file is a real, finite number (not None, NaN, inf, a bool or an
    integer too large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def resolve_path(path: str | os.PathLike) -> Path:
    """Paths in params are relative to the repository root, whatever the notebook's cwd; those
    under `outputs/` follow the outputs folder ($POSECORE_OUTPUTS when set)."""
    path = Path(os.path.expanduser(str(path)))
    if path.is_absolute():
        return path
    if path.parts and path.parts[0] == "outputs":
        return outputs_root().joinpath(*path.parts[1:])
    return REPO_ROOT / path
