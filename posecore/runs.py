"""Run folders: `Run`, the one owner of a run folder's files, and its single writer.

A run is outputs/<run_name>/ ($POSECORE_OUTPUTS when set). `Run` names every file in it
(params.yaml, env.json, log.jsonl, metrics.json, checkpoints/, eval/, report.html, ...) and reads
them back; no other module spells those names. A run folder has one writer at a time
(`run_lock`: an OS file lock that dies with its process); taking the lock also removes the temp
files that interrupted atomic writes left behind. The crash-safe writes themselves (atomic_write,
JSON lines) live in posecore.files.

What training (posecore.engine) writes:
  params.yaml        the resolved params; the only thing the workers read
  env.json           devices, versions, every installed package, world size, threads, git commit
                     (code.patch: the uncommitted diff), data fingerprint (posecore.environment)
  log.jsonl          {"type": "train", epoch, step, loss, lr, images_per_s, data_wait, skipped}
                     every train.log_every optimizer steps of train.global_batch images each,
                     {"type": "val", epoch, step, <metrics>} after
                     each validation, {"type": "summary", ...} at the end of every invocation,
                     {"type": "params_changed", changed: {key: [before, now]}} on a changed resume
  metrics.json       the latest validation metrics
  checkpoints/last.pt, best.pt   (checkpoints.CHECKPOINT_KEYS; best by evaluation.primary_metric)
  logs/              per-rank stdout/stderr of multi-process runs
  events.out.tfevents.*   the same curves for TensorBoard (posecore.tensorboard_log; rank 0)
  .writer.lock       held while the run trains (run_lock)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from posecore.errors import RunLockedError, TrainingError  # noqa: F401  (raised here; importable from here)
from posecore.files import REPO_ROOT, _size_text
from posecore.params import load_params
from posecore.records import read_env, read_log, read_metrics

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCK_NAME = ".writer.lock"
# descriptors of the writer locks this process holds: a forked child (a DataLoader worker) closes
# its copies (_close_inherited_locks), else it would hold the run locked after this process let go
_HELD_LOCKS: set[int] = set()
_fork_hook_registered = False  # at the first lock, not at import
# what atomic_write's mkstemp names look like: .<target name>.<8 random characters>.tmp
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def outputs_root() -> Path:
    """Where run folders live: $POSECORE_OUTPUTS, else <repo>/outputs. A relative
    $POSECORE_OUTPUTS is relative to the repository, like the paths in params: a notebook (whose
    working directory is notebooks/) and a shell at the repository root find the same runs."""
    value = os.environ.get("POSECORE_OUTPUTS")
    if not value:
        return REPO_ROOT / "outputs"
    return REPO_ROOT / os.path.expanduser(value)  # an absolute path stays itself


def default_run_name(prefix: str) -> str:
    """<prefix>-<date>-<time>, with anything a run_name cannot hold in prefix replaced by '-'."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-._")[:80] or "run"
    return f"{prefix}-{stamp}"


def run_dir(run_name: str, create: bool = True) -> Path:
    """`outputs/<run_name>/`; a run_name is a plain folder name, never a path."""
    return Run(run_name).folder_made() if create else Run(run_name).folder


class EvalFiles:
    """The files of one evaluation folder: a run's eval/ (posecore.evaluate) or val/ (validation
    during training), or any folder an evaluation was written to."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @property
    def results(self) -> Path:
        """COCO-style sets: the COCO results list after OKS-NMS."""
        return self.folder / "results.json"

    @property
    def gt_results(self) -> Path:
        """COCO-style sets: the gt mAP protocol's results (GT boxes, no flip, no NMS)."""
        return self.folder / "gt_results.json"

    @property
    def results_wholebody(self) -> Path:
        """COCO-WholeBody: the same poses in its own results layout."""
        return self.folder / "results_wholebody.json"

    @property
    def predictions(self) -> Path:
        """MPII: {"image", "keypoints"} per person, in dataset order."""
        return self.folder / "predictions.json"

    @property
    def metrics(self) -> Path:
        return self.folder / Run.METRICS

    @property
    def per_joint(self) -> Path:
        return self.folder / "per_joint.csv"

    @property
    def log(self) -> Path:
        """The scorer's printed summary."""
        return self.folder / "eval.log"

    @property
    def analysis(self) -> Path:
        """posecore.analyze's error diagnosis."""
        return self.folder / "analysis.json"

    @property
    def params(self) -> Path:
        """The params of the evaluation."""
        return self.folder / Run.PARAMS


class InferFiles:
    """What posecore.infer writes for one source, in infer/<source>/ of a run (or any folder)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @property
    def results(self) -> Path:
        """AlphaPose's results format, one entry per person and frame."""
        return self.folder / "results.json"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"


class Run:
    """One run folder, outputs/<name>/, and every file in it: the one place that names them.

    Paths: params.yaml (the resolved params: keypoint set, codec), env.json, log.jsonl (JSON
    lines), metrics.json (the latest validation), checkpoints/last.pt and best.pt, eval/ (what
    posecore.evaluate writes: `eval_files`), val/ (validation during training: `val_files`),
    logs/ (per-rank output), notebooks/ (executed notebooks), report.html, the ONNX exports
    (`onnx_path(precision)`) and their scores (export.json), infer/<source>/ (`infer_files`).
    Readers (`params`, `log`, `metrics`, `eval_metrics`, `env`, `checkpoint`) never write and
    check what they read (posecore.records: a RecordError names the file, key and expected type);
    `lock` is the writer lock.
    """

    PARAMS = "params.yaml"
    ENV = "env.json"
    LOG = "log.jsonl"
    METRICS = "metrics.json"
    REPORT = "report.html"
    REPRODUCTION = "reproduce.json"  # posecore.reproduce's verdict, in both runs
    CHECKPOINT_FILES = {"best": "best.pt", "last": "last.pt"}  # in checkpoints/
    CHECKPOINTS = tuple(CHECKPOINT_FILES)
    ONNX_FILES = {"fp32": "model.onnx", "fp16": "model-fp16.onnx", "int8": "model-int8.onnx"}  # by precision
    PRECISIONS = tuple(ONNX_FILES)
    EXPORT_SCORES = "export.json"  # each export's metric, latency and size (posecore.score_export)

    def __init__(self, name: str, folder: str | os.PathLike | None = None):
        """Run `name` under outputs/; `folder` gives the folder itself (a worker handed its path)."""
        if folder is None:
            check_run_name(name)
            folder = outputs_root() / name
        self.name, self.folder = name, Path(folder)

    @classmethod
    def at(cls, folder: str | os.PathLike) -> Run:
        """The run whose folder is `folder`."""
        return cls(Path(folder).name, folder)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, folder={str(self.folder)!r})"

    def folder_made(self) -> Path:
        """The folder, created if missing."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    # --- paths
    @property
    def params_path(self) -> Path:
        return self.folder / self.PARAMS

    def env_path(self, node: int = 0) -> Path:
        """env.json; machine `node` > 0 of a multi-node run writes env-node<N>.json."""
        return self.folder / (self.ENV if node == 0 else f"env-node{node}.json")

    @property
    def log_path(self) -> Path:
        return self.folder / self.LOG

    @property
    def metrics_path(self) -> Path:
        return self.folder / self.METRICS

    @property
    def report_path(self) -> Path:
        return self.folder / self.REPORT

    @property
    def checkpoints_dir(self) -> Path:
        return self.folder / "checkpoints"

    def checkpoint_path(self, which: str) -> Path:
        """checkpoints/<which>.pt for which in CHECKPOINTS (existing or not)."""
        if which not in self.CHECKPOINTS:
            raise ValueError(f"a run's checkpoints are {self.CHECKPOINTS}, not {which!r}")
        return self.checkpoints_dir / self.CHECKPOINT_FILES[which]

    @property
    def last_path(self) -> Path:
        return self.checkpoint_path("last")

    @property
    def best_path(self) -> Path:
        return self.checkpoint_path("best")

    @property
    def eval_dir(self) -> Path:
        return self.folder / "eval"

    @property
    def eval_files(self) -> EvalFiles:
        """The files of eval/ (posecore.evaluate's)."""
        return EvalFiles(self.eval_dir)

    @property
    def val_files(self) -> EvalFiles:
        """The files of val/ (the latest validation during training)."""
        return EvalFiles(self.val_dir)

    @property
    def eval_params_path(self) -> Path:
        """eval/params.yaml: the params of the run's last evaluation."""
        return self.eval_files.params

    def onnx_path(self, precision: str = "fp32") -> Path:
        """The run's ONNX export of `precision` (fp32, fp16, int8)."""
        if precision not in self.ONNX_FILES:
            raise ValueError(f"an export's precision is one of {self.PRECISIONS}, not {precision!r}")
        return self.folder / self.ONNX_FILES[precision]

    @property
    def export_scores_path(self) -> Path:
        return self.folder / self.EXPORT_SCORES

    def infer_files(self, source_stem: str) -> InferFiles:
        """infer/<source_stem>/: posecore.infer's output for one source."""
        return InferFiles(self.infer_dir / source_stem)

    @property
    def reproduction_path(self) -> Path:
        return self.folder / self.REPRODUCTION

    @property
    def val_dir(self) -> Path:
        return self.folder / "val"

    @property
    def logs_dir(self) -> Path:
        return self.folder / "logs"

    @property
    def notebooks_dir(self) -> Path:
        return self.folder / "notebooks"

    @property
    def tables_dir(self) -> Path:
        """tables/<name>.json: what the report shows as tables (posecore.report.keep)."""
        return self.folder / "tables"

    @property
    def figures_dir(self) -> Path:
        """figures/<name>.png: what the report shows as figures (posecore.report.keep)."""
        return self.folder / "figures"

    @property
    def infer_dir(self) -> Path:
        """infer/<source>/: posecore.infer's results, drawn output and summary per source."""
        return self.folder / "infer"

    # --- readers
    def exists(self) -> bool:
        """Whether the folder is a run: it has a params.yaml."""
        return self.params_path.is_file()

    def params(self) -> Any:
        """The run's saved Params (params.yaml: the keypoint set and codec it trained with)."""
        if not self.params_path.is_file():
            raise FileNotFoundError(
                f"{self.params_path} does not exist: {self.name!r} is not a run "
                "(train it first, or pass params and a checkpoint path)"
            )
        return load_params(self.params_path)

    def log(self) -> list[dict]:
        """log.jsonl's records, each line checked (posecore.records.read_log; [] without one); a
        torn line is skipped with a warning."""
        return read_log(self.log_path) if self.log_path.is_file() else []

    def env(self, node: int = 0) -> dict[str, Any]:
        """env.json, checked (posecore.records.read_env; {} without one)."""
        path = self.env_path(node)
        return read_env(path) if path.is_file() else {}

    def metrics(self) -> dict[str, Any]:
        """metrics.json: the latest validation, merged with what evaluate() added ({} without one)."""
        return read_metrics(self.metrics_path) if self.metrics_path.is_file() else {}

    def eval_metrics(self, required: bool = True) -> dict[str, Any]:
        """eval/metrics.json (what the eval notebook left); missing: an error when `required`, else {}."""
        path = self.eval_files.metrics
        if path.is_file():
            return read_metrics(path)
        if required:
            raise FileNotFoundError(
                f"{path} does not exist: evaluate run {self.name!r} first (eval.ipynb or posecore.evaluate)"
            )
        return {}

    def checkpoint(self, which: str | os.PathLike = "best") -> Path:
        """ "best" / "last" -> this run's checkpoints/<which>.pt, which must exist."""
        path = self.checkpoint_path(str(which))
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: run {self.name!r} has no {which} "
                "checkpoint yet; train it first or pass a checkpoint path"
            )
        return path

    # --- the writer
    def lock(self, purpose: str, node: int = 0):
        """Hold the run's writer lock while the block runs (see `run_lock`)."""
        return run_lock(self.folder, purpose, node)

    def writer(self) -> dict[str, Any] | None:
        """The live process writing the run (see `run_writer`), or None."""
        return run_writer(self.folder)

    def is_training(self) -> bool:
        return is_training(self.folder)


def find_checkpoint(checkpoint: str | os.PathLike, run_name: str | None) -> Path:
    """ "best" / "last" -> outputs/<run_name>/checkpoints/<name>.pt, else a path (relative to the
    repository root, as in params); either must be an existing file."""
    if str(checkpoint) in Run.CHECKPOINTS:
        if not run_name:
            raise ValueError(
                f"checkpoint {checkpoint!r} needs run_name (the run whose "
                f"checkpoints/{checkpoint}.pt to use), or pass a file path"
            )
        return Run(run_name).checkpoint(str(checkpoint))
    path = resolve_path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def check_run_name(run_name: Any) -> None:
    """A run_name is one folder name: letters, digits, '.', '_', '-', short enough for the disk."""
    if not isinstance(run_name, str) or not _RUN_NAME.fullmatch(run_name):
        hint = ""
        if isinstance(run_name, str) and any(ord(c) < 32 or ord(c) == 127 for c in run_name):
            hint = " (it contains a control character such as a newline, e.g. from a shell command's output: strip it)"
        raise ValueError(
            f"run_name {run_name!r} must be a plain folder name (letters, digits, "
            f"'.', '_', '-', starting with a letter or digit){hint}"
        )
    limit = _name_max(outputs_root())
    if len(run_name.encode()) > limit:
        raise ValueError(
            f"run_name is {len(run_name)} characters long; the file system of "
            f"{outputs_root()} allows folder names of at most {limit}: use a shorter "
            f"run_name ({run_name[:40]}...)"
        )


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
    global _fork_hook_registered
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_name = _LOCK_NAME if node == 0 else f".writer-node{node}.lock"
    path = folder / lock_name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    owner = os.getpid()  # a forked child leaving the block must not touch the number: it is not its lock
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_close_inherited_locks)
        _fork_hook_registered = True
    _HELD_LOCKS.add(fd)
    try:
        try:
            locked = _flock_soon(fd)
        except BlockingIOError:
            raise RunLockedError(_locked_message(folder, _read_holder(fd), lock_name)) from None
        except OSError as error:  # e.g. an NFS mount without a lock service
            warnings.warn(
                f"cannot lock run {folder.name!r} at {path} ({os.strerror(error.errno)}): "
                f"nothing stops a second writer of this run; put POSECORE_OUTPUTS on a "
                f"file system with file locks (local disk, NFSv4, Lustre mounted with "
                f"flock)",
                stacklevel=3,
            )
            locked = False
        if locked:
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "purpose": purpose,
                "since": datetime.now().isoformat(timespec="seconds"),
                "command": list(sys.argv),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            if locked and node == 0:  # only the writer can tell an orphan temp file from a live one
                _report_removed(folder, remove_orphan_temps(folder))
            yield folder
        finally:
            if locked and os.getpid() == owner:
                os.ftruncate(fd, 0)
    finally:
        if os.getpid() == owner:
            _HELD_LOCKS.discard(fd)
            os.close(fd)  # closing the descriptor releases the flock (once no forked child has a copy)


def _close_inherited_locks() -> None:
    """In a forked child: close the copies of the parent's lock descriptors. A flock belongs to
    the open file, which parent and child share, so a child that lives on (a DataLoader worker
    finishing its last batch) would keep the run locked after the parent released it."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


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
    who = (
        f"{holder.get('purpose', 'a writer')} in process {holder.get('pid', '?')} on host "
        f"{holder.get('host', '?')}" + (f" since {holder['since']}" if "since" in holder else "")
    )
    return (
        f"run {folder.name!r} ({folder}) is already being written by {who}; two writers would "
        f"mix their logs and checkpoints. Wait for it to finish or stop that process (its lock "
        f"goes away with it; deleting {lock_name} does not help), or use another run_name."
    )


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
        print(
            f"{folder.name}: removed {len(removed)} temp file(s) of interrupted writes "
            f"({_size_text(total)}): {', '.join(str(p.relative_to(folder)) for p, _ in removed)}",
            file=sys.stderr,
            flush=True,
        )


def resolve_path(path: str | os.PathLike) -> Path:
    """Paths in params are relative to the repository root, whatever the notebook's cwd; those
    under `outputs/` follow the outputs folder ($POSECORE_OUTPUTS when set)."""
    path = Path(os.path.expanduser(str(path)))
    if path.is_absolute():
        return path
    if path.parts and path.parts[0] == "outputs":
        return outputs_root().joinpath(*path.parts[1:])
    return REPO_ROOT / path
