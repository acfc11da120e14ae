"""A run's JSON records read back with every value posecore uses checked: env.json, each line of
log.jsonl (train, val, summary, params_changed), metrics.json (and eval/metrics.json), an executed
notebook's papermill parameters.

posecore.runs.Run reads its records through these functions, so reproduce, compare_runs, the
report and resume see only what the writers write. A record that is not what posecore writes is a
RecordError (a ValueError) naming the file, the key (with the line of a log) and what was expected:
`env.json: evaluations[0].npus is 'x', expected an integer >= 1`. Keys a record lacks are fine
(older runs recorded less); a key that is there must have its type. Keys posecore does not read
are not checked. This module sits below runs, reproduce and experiments: it knows the shapes of
the records, not where they live.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posecore.files import finite_number, read_json, read_jsonl


class RecordError(ValueError):
    """A run record whose content is not what posecore writes: names the file, the key and the
    expected type."""


# --- the schema: what each value must be --------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A value that `fits` (a predicate), described as `words` in messages."""

    fits: Callable[[Any], bool]
    words: str


@dataclass(frozen=True)
class Obj:
    """A JSON object whose listed keys, when present, are each their spec; `required` keys must be
    present. Other keys are not checked (posecore does not read them)."""

    fields: dict[str, Any]
    required: tuple[str, ...] = ()
    words: str = "an object"


@dataclass(frozen=True)
class ListOf:
    item: Any
    words: str = "a list"


@dataclass(frozen=True)
class MapOf:
    """An object with any keys, each value its spec."""

    value: Any
    words: str = "an object"


@dataclass(frozen=True)
class Maybe:
    """The spec, or null."""

    spec: Any


@dataclass(frozen=True)
class AnyOf:
    """One of the specs."""

    specs: tuple[Any, ...]
    words: str


def _integer(low: int) -> Value:
    return Value(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**63, f"an integer >= {low}")


TEXT = Value(lambda v: isinstance(v, str), "text")
BOOL = Value(lambda v: isinstance(v, bool), "true or false")
COUNT = _integer(0)
POSITIVE = _integer(1)
NUMBER = Value(finite_number, "a finite number")
ANYTHING = Value(lambda v: True, "anything")
FILE_NAME = Value(lambda v: isinstance(v, str) and v not in ("", ".", "..") and Path(v).name == v, "a file name")

FILE = AnyOf(
    (
        Obj({"name": TEXT, "path": TEXT, "size": COUNT, "sha256": TEXT}, ("name", "path", "size", "sha256")),
        Obj({"name": TEXT, "path": TEXT, "missing": Value(lambda v: v is True, "true")}, ("name", "path", "missing")),
    ),
    "a file record: name, path, size and sha256 (or name, path and missing: true)",
)
FOLDER = Obj({"name": TEXT, "path": TEXT, "count": COUNT, "listing_sha256": TEXT, "names_sizes_sha256": TEXT})
THREADS = Obj({"per_worker": Maybe(POSITIVE), "source": TEXT})
ENV = Obj(
    {
        "git": Maybe(Obj({"commit": Maybe(TEXT), "dirty": Maybe(BOOL), "patch": Maybe(FILE_NAME)})),
        "python": TEXT,
        "packages": MapOf(TEXT),
        "device_type": TEXT,
        "device_names": ListOf(TEXT),
        "npus": POSITIVE,
        "nnodes": POSITIVE,
        "node_rank": COUNT,
        "world_size": POSITIVE,
        "threads": THREADS,
        "deterministic": Maybe(BOOL),
        "started": TEXT,
        "data_fingerprint": MapOf(
            Obj({"annotations": Maybe(FILE), "images": Maybe(FOLDER), "detections": Maybe(FILE), "gt_mat": Maybe(FILE)})
        ),
        "evaluations": ListOf(
            Obj(
                {
                    "checkpoint": Maybe(TEXT),
                    "path": Maybe(TEXT),
                    "sha256": Maybe(TEXT),
                    "split": TEXT,
                    "npus": POSITIVE,
                    "threads": Maybe(THREADS),
                }
            )
        ),
    },
    words="an object (the environment record posecore writes)",
)
# each log line type and the keys readers take from it (val: the metrics are any JSON)
LOG_LINES = {
    "train": Obj(
        {
            "epoch": COUNT,
            "step": COUNT,
            "loss": Maybe(NUMBER),
            "lr": Maybe(NUMBER),
            "images_per_s": Maybe(NUMBER),
            "data_wait": Maybe(NUMBER),
            "skipped": COUNT,
        },
        ("epoch", "step"),
    ),
    "val": Obj({"epoch": COUNT, "step": COUNT}, ("epoch", "step")),
    "summary": Obj(
        {
            "epochs": COUNT,
            "steps": COUNT,
            "images_per_s": Maybe(NUMBER),
            "data_wait": Maybe(NUMBER),
            "skipped_steps": COUNT,
            "stopped": Maybe(TEXT),
        }
    ),
    "params_changed": Obj({"changed": MapOf(ANYTHING)}, ("changed",)),
}
METRICS = MapOf(ANYTHING, words="an object of metric values")
NOTEBOOK = Obj(
    {
        "metadata": Obj(
            {"papermill": Maybe(Obj({"parameters": Maybe(Obj({"checkpoint": Maybe(TEXT), "npus": POSITIVE}))}))}
        )
    },
    words="a notebook (a JSON object)",
)


def check(value: Any, spec: Any, path: str | os.PathLike, line: str = "") -> Any:
    """`value` when it fits `spec`, else a RecordError naming `path`, the key (after `line`, e.g.
    "line 3 (train)" of a log) and the expected type."""
    problem = _problem(value, spec, "")
    if problem:
        key, value, words = problem
        where = ": ".join(part for part in (line, key) if part) or "the top level"
        raise RecordError(f"{path}: {where} is {_shown(value)}, expected {words}")
    return value


_MISSING = object()


def _problem(value: Any, spec: Any, key: str) -> tuple[str, Any, str] | None:
    """(dotted key, value, expected) of the first value that does not fit, or None."""
    if isinstance(spec, Maybe):
        problem = None if value is None else _problem(value, spec.spec, key)
        return (key, value, f"{problem[2]} or null") if problem and problem[0] == key else problem
    if isinstance(spec, Value):
        return None if spec.fits(value) else (key, value, spec.words)
    if isinstance(spec, AnyOf):
        return None if any(_problem(value, one, key) is None for one in spec.specs) else (key, value, spec.words)
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return key, value, spec.words
        return next((p for i, item in enumerate(value) if (p := _problem(item, spec.item, f"{key}[{i}]"))), None)
    if not isinstance(value, dict):
        return key, value, spec.words
    prefix = f"{key}." if key else ""
    if isinstance(spec, MapOf):
        return next((p for name, item in value.items() if (p := _problem(item, spec.value, f"{prefix}{name}"))), None)
    missing = [name for name in spec.required if name not in value]
    if missing:
        return f"{prefix}{missing[0]}", _MISSING, _words(spec.fields[missing[0]])
    return next(
        (
            p
            for name, sub in spec.fields.items()
            if name in value and (p := _problem(value[name], sub, f"{prefix}{name}"))
        ),
        None,
    )


def _words(spec: Any) -> str:
    return f"{_words(spec.spec)} or null" if isinstance(spec, Maybe) else spec.words


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if isinstance(value, (str, type(None))) else f"{text} ({type(value).__name__})"


# --- the readers ----------------------------------------------------------------------------------


def read_record(path: str | os.PathLike, spec: Any = ANYTHING) -> Any:
    """A JSON record checked against `spec`; a file that is not JSON is a ValueError naming it."""
    return check(read_json(path), spec, path)


def read_env(path: str | os.PathLike) -> dict[str, Any]:
    """env.json, every key posecore reads checked (ENV)."""
    return read_record(path, ENV)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """metrics.json (or eval/metrics.json): an object of metric values."""
    return read_record(path, METRICS)


def read_log(path: str | os.PathLike) -> list[dict]:
    """log.jsonl's records, each line checked as its type (LOG_LINES), a RecordError naming the
    line otherwise; a torn last line is skipped with a warning (posecore.files.read_jsonl)."""
    records = []
    for number, record in read_jsonl(path, numbered=True):
        kind = record.get("type")
        if not isinstance(kind, str) or kind not in LOG_LINES:
            raise RecordError(f"{path}: line {number}: type is {_shown(kind)}, expected one of {list(LOG_LINES)}")
        records.append(check(record, LOG_LINES[kind], path, line=f"line {number} ({kind})"))
    return records


def read_notebook_parameters(path: str | os.PathLike) -> dict[str, Any] | None:
    """An executed notebook's papermill parameters (checkpoint, npus checked), or None when it
    records none."""
    notebook = read_record(path, NOTEBOOK)
    return ((notebook.get("metadata") or {}).get("papermill") or {}).get("parameters")
