"""Training progress as one display, whether the run has one process or one worker per device.

A single-process run draws its own bar (`tqdm.auto`: a widget in a notebook, one updating line in a
terminal or log). Workers started by `posecore.distributed.launch` have no terminal and no notebook:
their stderr is a log file that the launcher copies into the caller, where every redraw of a bar
would arrive as another line of red stderr. So under the launcher, rank 0 writes its progress to a
small JSON file (`PROGRESS_ENV` names it) and the launching process mirrors that file into one bar of
its own (`ProgressMirror`): the same bar, fed by rank 0.

The bar shows the epoch, the step of the epoch (of its total), loss, lr, images/s and the ETA.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

PROGRESS_ENV = "POSECORE_PROGRESS_FILE"
WRITE_EVERY_S = 0.5  # at most this often rank 0 rewrites the progress file
POLL_EVERY_S = 0.3


def progress_bar(total: int, initial: int, desc: str, enabled: bool, images_per_step: int) -> Any:
    """A tqdm-like bar for one epoch of `total` steps, starting at step `initial`.

    `enabled` is False on every rank but 0. Under the launcher (PROGRESS_ENV set) the bar is a
    file for the launcher to mirror; otherwise a tqdm.auto bar. Call `update(1)`,
    `set_postfix(loss=..., lr=...)` and `close()` as on tqdm.
    """
    path = os.environ.get(PROGRESS_ENV)
    if enabled and path:
        return FileProgress(Path(path), total, initial, desc, images_per_step)
    return _Bar(
        total=total,
        initial=initial,
        desc=desc,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=1.0,
        file=sys.stderr,
        images_per_step=images_per_step,
    )


class _Bar(tqdm):
    """tqdm that adds images/s (steps/s times images per step) to the postfix."""

    def __init__(self, *args: Any, images_per_step: int = 1, **kwargs: Any) -> None:
        self.images_per_step = images_per_step
        super().__init__(*args, **kwargs)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs: Any) -> None:
        rate = self.format_dict.get("rate")
        if rate:
            kwargs["img/s"] = f"{rate * self.images_per_step:.1f}"
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)


class FileProgress:
    """Rank 0's side under the launcher: the bar's state in a JSON file, rewritten atomically at
    most every WRITE_EVERY_S seconds (and at close), for `ProgressMirror` to show."""

    def __init__(self, path: Path, total: int, initial: int, desc: str, images_per_step: int) -> None:
        self.path = path
        self.state: dict[str, Any] = {
            "desc": desc,
            "total": total,
            "n": initial,
            "initial": initial,
            "images_per_step": images_per_step,
            "postfix": {},
            "started": time.time(),
            "closed": False,
        }
        self.written = 0.0
        self._write()

    def update(self, steps: int = 1) -> None:
        self.state["n"] += steps
        if time.monotonic() - self.written >= WRITE_EVERY_S:
            self._write()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.state["postfix"] = {key: str(value) for key, value in values.items()}

    def close(self) -> None:
        self.state["closed"] = True
        self._write()

    def _write(self) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(self.state))
            os.replace(temp, self.path)
        except OSError:
            pass  # progress is a courtesy: a full disk or a vanished log folder must not stop training
        self.written = time.monotonic()


def read_progress(path: Path) -> dict[str, Any] | None:
    """The state FileProgress last wrote, or None (no file yet, or not readable)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("n"), int) else None


class ProgressMirror(threading.Thread):
    """The launcher's side: one tqdm.auto bar that follows rank 0's progress file; a new epoch
    resets the same bar. Bound at construction to this process's stderr (under ipykernel: the
    cell that launched the job)."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="posecore-progress", daemon=True)
        self.path = Path(path)
        self.stopping = threading.Event()
        self.stream = sys.stderr
        self.bar: Any = None
        self.shown: tuple[str, float] | None = None  # (desc, started) of the epoch on the bar

    def run(self) -> None:
        last = None
        while True:
            stopping = self.stopping.is_set()
            state = read_progress(self.path)
            if state is not None and state != last:
                self._show(state)
                last = state
            if stopping:
                break
            self.stopping.wait(POLL_EVERY_S)
        if self.bar is not None:
            self.bar.close()

    def _show(self, state: dict[str, Any]) -> None:
        epoch = (str(state.get("desc", "")), float(state.get("started", 0.0)))
        if self.bar is None:
            self.bar = _Bar(
                total=state.get("total"),
                initial=state.get("initial", 0),
                desc=epoch[0],
                dynamic_ncols=True,
                mininterval=0.5,
                file=self.stream,
                images_per_step=int(state.get("images_per_step", 1)),
            )
        elif epoch != self.shown:
            self.bar.reset(total=state.get("total"))
            self.bar.n = self.bar.last_print_n = int(state.get("initial", 0))
            self.bar.set_description(epoch[0], refresh=False)
        self.shown = epoch
        advance = int(state["n"]) - self.bar.n
        if advance > 0:
            self.bar.update(advance)
        self.bar.set_postfix(**state.get("postfix", {}))

    def stop(self) -> None:
        if self.is_alive():
            self.stopping.set()
            self.join(timeout=5)
