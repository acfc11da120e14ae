"""Where, how and with what a run was started: what env.json records, and code.patch.

env.json (written when a run starts; evaluation adds to it, and writes it for a run of its own):
  device.describe()     devices, torch / CUDA / CANN versions, host
  python, platform      interpreter version and implementation; OS, kernel, machine, libc
  packages              {distribution: version} of every installed distribution (importlib.metadata)
  npus, nnodes, node_rank, world_size, command, notebook (papermill's variables), cwd, started
  git                   {"commit", "dirty", "patch": "code.patch" or None, "patch_sha256"}: with
                        uncommitted changes their diff against HEAD is saved beside env.json as
                        code.patch: tracked files, and untracked files git does not ignore (as new
                        files; one over 1 MB is named with its size and sha256 instead)
  threads               {"per_worker", "source", "interop"} (posecore.distributed.worker_threads)
  deterministic         train.deterministic as resolved for the device ("auto": on for CPU)
  data_fingerprint      {split: fingerprint} of the splits read (posecore.data.fingerprint)
  evaluations           [{"checkpoint", "path", "sha256", "split", "npus", "threads", "time"}, ...] one per
                        evaluate() of the run: the checkpoint scored and its sha256
  exports               [{"checkpoint", "sha256", "onnx", "onnx_sha256", "time"}, ...] one per
                        export_onnx(..., run_name=the run)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import posecore
from posecore import device
from posecore.data.fingerprint import data_fingerprint, file_sha256
from posecore.distributed import Nodes, node_settings, worker_threads
from posecore.errors import RunLockedError
from posecore.files import REPO_ROOT, atomic_write, read_json, write_json
from posecore.params import Params
from posecore.runs import Run, run_lock

# the run files this module writes (their names: posecore.runs.Run)
ENV_FILE = Run.ENV
PATCH_FILE = "code.patch"
_UNTRACKED_LIMIT = 1 << 20  # untracked files larger than this are named in code.patch, not included


def run_environment(
    npus: int, nodes: Nodes, params: Params | None = None, splits: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What env.json records about where, how and with what a run was started (module docstring);
    `params` adds threads, determinism and the data fingerprint of `splits`."""
    info = device.describe()
    info.update(
        python=sys.version.split()[0],
        python_implementation=platform.python_implementation(),
        python_executable=sys.executable,
        platform=platform_info(),
        posecore=posecore.__version__,
        packages=installed_packages(),
        npus=npus,
        nnodes=nodes.nnodes,
        node_rank=nodes.node_rank,
        world_size=npus * nodes.nnodes,
        git=git_state(),
        command=list(sys.argv),
        notebook={
            key: value for key, value in os.environ.items() if key.startswith("PAPERMILL_") or key == "JPY_SESSION_NAME"
        },
        cwd=os.getcwd(),
        started=datetime.now().isoformat(timespec="seconds"),
    )
    if params is not None:
        in_process = npus == 1 and nodes.nnodes == 1
        info["threads"] = {**worker_threads(params, npus, in_process), "interop": _interop_threads()}
        info["deterministic"] = device.deterministic_setting(params.train.deterministic)
        info["data_fingerprint"] = data_fingerprint(params, splits)
    return info


def write_run_records(
    folder: str | os.PathLike,
    params: Params,
    npus: int,
    nodes: Nodes,
    splits: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write env.json (node 0; env-node<N>.json on the other machines of a multi-node run), with
    `extra` keys added, and, when the code has uncommitted changes, code.patch; returns the record."""
    folder = Path(folder)
    env = {**run_environment(npus, nodes, params, splits), **(extra or {})}
    if nodes.node_rank == 0:
        env["git"].update(save_code_patch(folder))
    write_json(Run.at(folder).env_path(nodes.node_rank), env)
    return env


def record_evaluation(
    folder: str | os.PathLike,
    params: Params,
    checkpoint: str | None,
    checkpoint_path: str | None,
    npus: int,
    split: str,
) -> dict[str, Any]:
    """Add one evaluation to the run's env.json: the checkpoint as asked for ("best", "last", a
    path), the file scored and its sha256, the split (with its data fingerprint) and npus. A run
    without env.json (an evaluation-only run) gets its full record first."""
    folder = Path(folder)
    path = folder / ENV_FILE
    if path.is_file():
        env = read_json(path)
        env.setdefault("data_fingerprint", {}).update(data_fingerprint(params, (split,)))
    else:
        env = run_environment(npus, node_settings(params), params, (split,))
        env["git"].update(save_code_patch(folder))
    record = {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "path": checkpoint_path,
        "sha256": file_sha256(checkpoint_path) if checkpoint_path else None,
        "split": split,
        "npus": npus,
        "time": datetime.now().isoformat(timespec="seconds"),
        "threads": worker_threads(params, npus, in_process=npus == 1 and env.get("nnodes", 1) == 1),
    }
    env.setdefault("evaluations", []).append(record)
    write_json(path, env)
    return record


def record_export(
    folder: str | os.PathLike, checkpoint_path: str | None, onnx_path: str | os.PathLike
) -> dict[str, Any] | None:
    """Add one ONNX export to the run's env.json (`exports`: the checkpoint and its sha256, the
    .onnx file and its sha256). Skipped, with a warning, while another process writes the run
    (an export of best.pt during training), and for a run without env.json."""
    folder = Path(folder)
    path = folder / ENV_FILE
    if not path.is_file():
        return None
    record = {
        "checkpoint": checkpoint_path,
        "sha256": file_sha256(checkpoint_path) if checkpoint_path else None,
        "onnx": str(onnx_path),
        "onnx_sha256": file_sha256(onnx_path),
        "time": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        with run_lock(folder, "export"):
            env = read_json(path)
            env.setdefault("exports", []).append(record)
            write_json(path, env)
    except RunLockedError as error:
        warnings.warn(f"the export is not recorded in {path}: {error}", stacklevel=2)
        return None
    return record


def installed_packages() -> dict[str, str]:
    """{distribution name: version} of every distribution importable here (first one on sys.path
    wins, as for imports), sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalized_name(name) not in found:
            found[normalized_name(name)] = (name, dist.version)
    return dict(sorted(found.values(), key=lambda item: normalized_name(item[0])))


def normalized_name(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503): PyYAML == pyyaml."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def platform_info() -> dict[str, Any]:
    libc = platform.libc_ver()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "libc": " ".join(part for part in libc if part) or None,
    }


def _interop_threads() -> int:
    return torch.get_num_interop_threads()


def _git(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=60)
    if result.returncode not in ok:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result.stdout


def git_state() -> dict[str, Any]:
    """{"commit": HEAD of the repository posecore runs from, "dirty": uncommitted changes}, or
    None values outside a git checkout."""
    try:
        return {"commit": _git("rev-parse", "HEAD").strip(), "dirty": bool(_git("status", "--porcelain").strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def code_diff() -> str | None:
    """The uncommitted changes of the repository posecore runs from, as one patch (module
    docstring); "" for a clean tree, None outside a git checkout."""
    try:
        parts = [_git("diff", "HEAD", "--binary")]
        untracked = _git("ls-files", "--others", "--exclude-standard", "-z").split("\0")
        for name in sorted(filter(None, untracked)):
            path = REPO_ROOT / name
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size > _UNTRACKED_LIMIT:
                parts.append(f"# untracked {name}: {size} bytes, sha256 {file_sha256(path)} (not included)\n")
            else:
                parts.append(_git("diff", "--no-index", "--binary", "--", "/dev/null", name, ok=(0, 1)))
    except (OSError, subprocess.SubprocessError):
        return None
    return "".join(parts)


def save_code_patch(folder: str | os.PathLike) -> dict[str, Any]:
    """Write code.patch into the run folder when the tree has uncommitted changes (a stale one is
    removed otherwise); {"patch": its name or None, "patch_sha256": the diff's sha256 or None}."""
    diff = code_diff()
    path = Path(folder) / PATCH_FILE
    if not diff:
        path.unlink(missing_ok=True)
        return {"patch": None, "patch_sha256": None}
    atomic_write(path, diff)
    return {"patch": PATCH_FILE, "patch_sha256": hashlib.sha256(diff.encode()).hexdigest()}
