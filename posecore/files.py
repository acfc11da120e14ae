"""Crash-safe files: atomic writes, JSON, and JSON lines whose torn last line is skipped.

YAML files (params, AlphaPose configs) are read by `read_yaml`, one loader whose errors name the
file, line and column. Every artifact goes through `atomic_write`: a temp file in the same folder, fsync, then
os.replace, so a kill mid-write leaves the previous file intact, and a full disk is an error
naming the file and the size it needed. Log files are JSON lines; a torn line (a kill or a full
disk during an append) is skipped with a warning by `read_jsonl` and cut off by the next append.
(posecore.runs removes the temp files interrupted writes leave, under the run's lock.)
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from posecore.errors import ParamsError

REPO_ROOT = Path(__file__).resolve().parent.parent  # relative paths in params are relative to it
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write ran out of disk space (or quota); the previous file is intact."""


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
    message = (
        f"no space left writing {path}: {need}, {_size_text(free)} free there "
        f"({os.strerror(error.errno)}); {path.name} {state}. Free some space or point "
        f"POSECORE_OUTPUTS at a larger disk, then run again"
    )
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
    except RecursionError:
        raise ValueError(f"{path}: its JSON nests deeper than the parser goes; restore or delete it") from None


# --- YAML ---------------------------------------------------------------------------------------


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's data (yaml.safe_load: nothing in it is evaluated), for params files and
    AlphaPose configs alike. What cannot be read as YAML is a ParamsError naming the file, and
    the line and column where yaml or the UTF-8 decoder stopped: a syntax error, a tag safe_load
    does not build, bytes that are not UTF-8, nesting deeper than the parser goes."""
    with open(path, "rb") as f:
        content = f.read()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(content, error.start)
        raise ParamsError(
            f"{path}: line {line}, column {column}: byte 0x{content[error.start]:02x} is not UTF-8 text; "
            "save the file as UTF-8"
        ) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """YAML text's data (yaml.safe_load); what is not YAML is a ParamsError naming `source` (a
    file, a command-line value) and the line and column yaml gives."""
    try:
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow: a position, no mark
        line, column = _line_column(text, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character)  # text: a code point
        raise ParamsError(
            f"{source}: line {line}, column {column}: not valid YAML (character {code:#06x} is not allowed "
            "in YAML text); fix it there"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        raise ParamsError(
            f"{source}: {where}not valid YAML ({f'{context}: ' if context else ''}{problem}); fix it there"
        ) from None
    except RecursionError:
        raise ParamsError(f"{source}: nests deeper than the YAML parser goes; params are a few levels deep") from None


def _line_column(content: bytes | str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset into bytes or text."""
    newline = b"\n" if isinstance(content, bytes) else "\n"
    start = content.rfind(newline, 0, offset) + 1
    return content.count(newline, 0, offset) + 1, offset - start + 1


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
    warnings.warn(
        f"{path}: removed a torn last line ({size - start} bytes, from a write that was interrupted)", stacklevel=2
    )
    return size - start


def read_jsonl(path: str | os.PathLike, numbered: bool = False) -> list:
    """The records of a .jsonl file (`numbered`: (line number, record) pairs); unreadable lines (a
    torn last line) are skipped with a warning naming the file and the line numbers."""
    records, bad = [], []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
                bad.append(number)
            else:
                records.append((number, record) if numbered else record)
    if bad:
        warnings.warn(
            f"{path}: skipped {len(bad)} unreadable line(s) (line {', '.join(map(str, bad[:5]))}"
            f"{', ...' if len(bad) > 5 else ''}), e.g. a record torn by a kill or a full "
            f"disk; resuming the run rewrites the file without them",
            stacklevel=2,
        )
    return records


def _record(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
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
