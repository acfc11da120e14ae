"""Reading run folders back: what each run is, how far it got, and what differs between runs.

`read_run(name)` summarizes one folder of outputs/ from its records (params.yaml, env.json,
log.jsonl, eval/metrics.json, the counters of checkpoints/last.pt), read through posecore.runs.Run
(posecore.records checks each value it reads); it never writes. A run's state:
  running    a live process trains it (holds its posecore.runs.run_lock for training)
  untrained  a folder without a training log (e.g. evaluated from a downloaded checkpoint)
  finished   its last training invocation ended normally with every planned epoch done
  measured   a train.max_steps performance measurement (no checkpoints)
  stopped    none of these: killed, interrupted or crashed (training again resumes it)

`compare_runs(names_or_glob)` lines runs up: their headline numbers, the params keys whose
values differ (dotted keys), and notes on what makes them not comparable. `write_run_index()`
refreshes outputs/runs.csv, one row per run folder.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from posecore.checkpoints import CheckpointError, read_checkpoint
from posecore.evaluation import eval_split, primary_metric
from posecore.files import atomic_write, finite_number
from posecore.params import Params, flat_params
from posecore.runs import Run, outputs_root

INDEX_NAME = "runs.csv"
# runs.csv columns, in order (keys of read_run's dict)
INDEX_COLUMNS = (
    "run",
    "state",
    "model",
    "dataset",
    "epochs_done",
    "epochs_planned",
    "last_epoch",
    "steps",
    "metric",
    "best",
    "last",
    "eval",
    "protocol",
    "split",
    "images_per_s",
    "data_wait",
    "skipped_steps",
    "devices",
    "world_size",
    "amp",
    "commit",
    "dirty",
    "date",
    "last_log_time",
)
# what makes validation numbers of two runs comparable at all
COMPARABILITY = ("dataset", "split", "protocol")


@dataclass
class Comparison:
    """compare_runs's answer.

    runs: one read_run dict per run, in the order asked.
    differing: {dotted params key: {run: value}} for the keys whose values differ (None: key absent).
    notes: why numbers may not compare (other data, split or protocol; dirty trees; partial runs).
    logs: {run: log.jsonl records} for the curves.
    """

    metric: str | None
    runs: list[dict[str, Any]]
    differing: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    logs: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [run["run"] for run in self.runs]


def run_names(pattern: str | Sequence[str] | None = None) -> list[str]:
    """Run folders of outputs/ (folders with a params.yaml) matching names or globs, sorted by name
    within each pattern; None: every run. A name that matches nothing is an error listing the runs."""
    root = outputs_root()
    existing = sorted(p.parent.name for p in root.glob(f"*/{Run.PARAMS}")) if root.is_dir() else []
    if pattern is None:
        return existing
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names: list[str] = []
    for item in patterns:
        matched = fnmatch.filter(existing, item)
        if not matched:
            raise FileNotFoundError(
                f"no run folder in {root} matches {item!r} (a run folder has a {Run.PARAMS}); runs "
                f"there: {', '.join(existing) or 'none'}"
            )
        names += [name for name in matched if name not in names]
    return names


def read_run(name: str, metric: str | None = None) -> dict[str, Any]:
    """One run's headline record (INDEX_COLUMNS keys, plus "params": its flattened params).

    `metric`: the validation metric to report (default: the primary one, AP for COCO, PCKh for
    MPII); "best" is its highest and "last" its latest value among the run's validations (the
    stored values: COCO metrics are fractions, PCKh percent), "eval" its value in eval/metrics.json.
    """
    return _read_run(name, metric)[0]


def _read_run(name: str, metric: str | None) -> tuple[dict[str, Any], list[dict]]:
    """read_run's record and the run's log.jsonl records."""
    run = Run(name)
    if not run.params_path.is_file():
        raise FileNotFoundError(f"{run.params_path} does not exist: {name!r} is not a run folder")
    params, damage = _saved_params(run)
    env = run.env()
    log = run.log()
    metric = metric or (primary_metric(params) if params else "AP")
    train_records = [r for r in log if r.get("type") == "train"]
    values = [r[metric] for r in log if r.get("type") == "val" and finite_number(r.get(metric))]
    summaries = [r for r in log if r.get("type") == "summary"]
    epochs_planned = params.train.epochs if params else None
    epochs_done = _epochs_done(run, summaries)
    git = env.get("git") or {}
    return {
        "run": name,
        "state": f"unreadable: {damage}" if damage else _state(run, log, summaries, epochs_done, epochs_planned),
        "model": _model_name(params),
        "dataset": _dataset_name(params),
        "epochs_done": epochs_done,
        "epochs_planned": epochs_planned,
        "last_epoch": max(
            (r["epoch"] for r in log if r.get("type") in ("train", "val") and finite_number(r.get("epoch"))),
            default=None,
        ),
        "steps": max((r["step"] for r in train_records if finite_number(r.get("step"))), default=0),
        "metric": metric,
        "best": max(values) if values else None,
        "last": values[-1] if values else None,
        "eval": _number_or_none(run.eval_metrics(required=False).get(metric)),
        "protocol": validation_protocol(params, metric),
        "split": validation_split(params),
        "images_per_s": _speed(train_records, summaries, "images_per_s"),
        "data_wait": _speed(train_records, summaries, "data_wait"),
        "skipped_steps": max((r["skipped"] for r in train_records if finite_number(r.get("skipped"))), default=0),
        "devices": _devices(env),
        "world_size": _number_or_none(env.get("world_size")),
        "amp": _amp(params),
        "commit": (str(git.get("commit") or ""))[:10] or None,
        "dirty": git.get("dirty"),
        "date": env.get("started"),
        "last_log_time": _mtime(run.log_path),
        "params": flat_params(params) if params else {},
    }, log


def compare_runs(runs: str | Sequence[str], metric: str | None = None) -> Comparison:
    """Line up runs (names and/or globs over outputs/, see `run_names`) for `metric`.

    Returns a Comparison: `runs` (read_run dicts), `differing` (only the params keys whose values
    differ, {dotted key: {run: value}}), `notes` on comparability, and `logs` for the curves.
    """
    names = run_names(runs)
    read = [_read_run(name, metric) for name in names]
    records, logs = [record for record, _ in read], {name: log for name, (_, log) in zip(names, read)}
    return Comparison(
        metric=metric or (records[0]["metric"] if records else None),
        runs=records,
        differing=differing_params({r["run"]: r["params"] for r in records}),
        notes=comparison_notes(records),
        logs=logs,
    )


def differing_params(params_by_run: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{dotted key: {run: value}} for the keys whose values are not all equal (None: absent)."""
    keys = sorted({key for flat in params_by_run.values() for key in flat})
    table = {key: {run: flat.get(key) for run, flat in params_by_run.items()} for key in keys}
    return {
        key: values
        for key, values in table.items()
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1
    }


def comparison_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    """What to keep in mind before comparing the numbers of these runs."""
    notes = []
    for aspect in COMPARABILITY:
        values = {r["run"]: r[aspect] for r in records}
        if len(set(values.values())) > 1:
            listed = "; ".join(f"{run}: {value}" for run, value in values.items())
            notes.append(f"not comparable: different validation {aspect} ({listed})")
    for r in records:
        if r["dirty"]:
            notes.append(
                f"{r['run']} was trained from a git tree with uncommitted changes: its code "
                f"is not exactly commit {r['commit']}"
            )
        if r["state"] == "running":
            notes.append(
                f"{r['run']} is still training (epoch {r['last_epoch']}, "
                f"{r['epochs_done']} of {r['epochs_planned']} done): its numbers are partial"
            )
        elif r["state"] == "stopped":
            notes.append(
                f"{r['run']} stopped in epoch {r['last_epoch']} with {r['epochs_done']} of "
                f"{r['epochs_planned']} epochs done (last log {r['last_log_time']}): run it "
                f"again with the same run_name to resume"
            )
    return notes


def write_run_index(path: str | Path | None = None) -> Path:
    """outputs/runs.csv (or `path`): one row per run folder with its headline numbers (INDEX_COLUMNS).

    A folder whose records cannot be read gets a row whose state says why, instead of no index.
    """
    rows = [_index_row(name) for name in run_names()]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(INDEX_COLUMNS)
    writer.writerows([_csv_value(row[column]) for column in INDEX_COLUMNS] for row in rows)
    return atomic_write(path or outputs_root() / INDEX_NAME, buffer.getvalue())


def _index_row(name: str) -> dict[str, Any]:
    try:
        return read_run(name)
    except (OSError, ValueError) as error:  # ValueError: ParamsError, RecordError, CheckpointError
        return {column: None for column in INDEX_COLUMNS} | {"run": name, "state": f"unreadable: {error}"}


# --- pieces ------------------------------------------------------------------------------------


def _saved_params(run: Run) -> tuple[Params | None, str | None]:
    """(the run's params.yaml as typed Params, None) or, when it cannot be read as such (damaged,
    or written by a posecore with other keys), (None, why): a damaged file leaves its cells empty
    and the run's state says why; it does not fail the index."""
    try:
        return run.params(), None
    except (OSError, ValueError) as error:  # ValueError: ParamsError, RecordError, CheckpointError
        return None, str(error)


def validation_split(params: Params | None) -> str | None:
    """The split a run validates on (posecore.evaluation.eval_split) and its boxes."""
    if params is None:
        return None
    try:
        detector = eval_split(params) == "test"
    except ValueError as error:  # detector boxes asked for without a detections file
        return f"unusable: {error}"
    return "val, detector boxes" if detector else "val, ground-truth boxes"


def validation_protocol(params: Params | None, metric: str) -> str | None:
    """How `metric` of a run's validations is measured, from its eval params."""
    if params is None:
        return None
    evaluation = params.eval
    flip = "flip test" if evaluation.flip_test else "no flip test"
    decode = f"{evaluation.decode} decoding"
    if metric.startswith("gt_"):
        return "AlphaPose gt mAP: ground-truth boxes, no flip test, no NMS"
    part = metric.split("_")[0]
    if params.data.dataset == "coco_wholebody" and metric.endswith(("_AP", "_AR")):
        return (
            f"COCO-WholeBody per part: COCOeval on the {part} joints with their sigmas, "
            f"OKS-NMS {evaluation.oks_nms:g}, {flip}, {decode}"
        )
    if params.data.dataset == "mpii":
        return f"official PCKh@{evaluation.pckh_thr:g}, {flip}, {decode}"
    return f"COCOeval, OKS-NMS {evaluation.oks_nms:g}, {flip}, {decode}"


def _state(run: Run, log: list[dict], summaries: list[dict], epochs_done: int, epochs_planned: int | None) -> str:
    if run.is_training():
        return "running"
    if not log:
        return "untrained"
    ended = log[-1].get("type") == "summary"
    if ended and summaries[-1].get("stopped") == "max_steps":
        return "measured"
    return "finished" if ended and epochs_planned is not None and epochs_done >= epochs_planned else "stopped"


def _epochs_done(run: Run, summaries: list[dict]) -> int:
    """Epochs in checkpoints/last.pt (what a resume continues from), else the last summary's."""
    last = run.last_path
    if last.is_file():
        checkpoint = read_checkpoint(last, mmap=True)
        epoch = checkpoint.get("epoch") if isinstance(checkpoint, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise CheckpointError(
                f"{last}: epoch is {str(epoch)[:40]!r}, expected a non-negative integer; the checkpoint is damaged"
            )
        return epoch
    epochs = summaries[-1].get("epochs") if summaries else 0
    return int(epochs) if finite_number(epochs) and epochs >= 0 else 0


def _speed(train_records: list[dict], summaries: list[dict], key: str) -> float | None:
    """The last invocation's figure (its summary), else the median over the logged windows."""
    if summaries and finite_number(summaries[-1].get(key)):
        return summaries[-1][key]
    values = [r[key] for r in train_records if finite_number(r.get(key))]
    return statistics.median(values) if values else None


def _model_name(params: Params | None) -> str | None:
    if params is None:
        return None
    model = params.model
    if model.name in ("fastpose", "fastpose_duc", "simplebaseline"):
        return f"{model.name}-{model.depth}"
    if model.name == "hrnet":
        return f"hrnet-w{model.width}"
    if model.name == "rtmpose":
        return f"rtmpose-{model.variant}"
    return f"{model.name} x{model.num_stacks}" if model.name == "hourglass" else model.name


def _dataset_name(params: Params | None) -> str | None:
    return None if params is None else f"{params.data.dataset} at {params.data.root or 'synthetic'}"


def _amp(params: Params | None) -> str | None:
    if params is None:
        return None
    amp, backend = params.train.amp, params.train.amp_backend
    return f"{amp} ({backend})" if amp != "off" and backend != "torch" else amp


def _devices(env: dict[str, Any]) -> str | None:
    if not env:
        return None
    listed = env.get("device_names")
    names = sorted({str(name) for name in listed}) if isinstance(listed, list) else []
    per_node = f"{env.get('npus', '?')} x {env.get('device_type', '?')}"
    nodes = f" on {env['nnodes']} nodes" if finite_number(env.get("nnodes")) and env["nnodes"] > 1 else ""
    return f"{per_node}{nodes}" + (f" ({', '.join(names)})" if names else "")


def _mtime(path: Path) -> str | None:
    if not path.is_file():
        return None
    return datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")


def _number_or_none(value: Any) -> Any:
    return value if finite_number(value) else None


def _csv_value(value: Any) -> Any:
    return "" if value is None else value
