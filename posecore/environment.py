"""Where and how a run was started: what env.json records (devices, versions, git state, command)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from typing import Any

import posecore
from posecore import device
from posecore.distributed import Nodes
from posecore.runs import REPO_ROOT


def run_environment(npus: int, nodes: Nodes) -> dict[str, Any]:
    """What env.json records about where and how a run was started."""
    info = device.describe()
    info.update(
        python=sys.version.split()[0],
        python_executable=sys.executable,
        posecore=posecore.__version__,
        npus=npus,
        nnodes=nodes.nnodes,
        node_rank=nodes.node_rank,
        world_size=npus * nodes.nnodes,
        git=git_state(),
        command=list(sys.argv),
        notebook={key: value for key, value in os.environ.items()
                  if key.startswith("PAPERMILL_") or key == "JPY_SESSION_NAME"},
        cwd=os.getcwd(),
        started=datetime.now().isoformat(timespec="seconds"),
    )
    return info


def git_state() -> dict[str, Any]:
    """{"commit": HEAD of the repository posecore runs from, "dirty": uncommitted changes}, or
    None values outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              timeout=20, check=True).stdout
    try:
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
