"""How a training process stops on request: SIGINT (Ctrl-C, a kernel interrupt) and SIGTERM (what
SLURM and Kubernetes send before a kill) ask for a stop after the current step; the trainer then
saves last.pt at that step and raises `StopRequest.error()`. In a notebook a second interrupt stops
at once. DataLoader workers ignore SIGTERM (`data_worker_init`) and die with the training process.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from posecore import distributed


@dataclass
class StopRequest:
    """Whether this process was asked to stop, and by which signal (the first one)."""

    requested: bool = False
    signum: int = 0

    def error(self) -> BaseException:
        """What a stop raises once last.pt is saved: KeyboardInterrupt for an interrupt; for
        SIGTERM, SystemExit with the shell's status for it (128 + 15), so that a batch system's
        job ends as stopped, not as done."""
        if self.signum in (0, signal.SIGINT):
            return KeyboardInterrupt()
        return SystemExit(128 + self.signum)


@contextlib.contextmanager
def stop_on_signals(request: StopRequest, announce: str | None, launched: bool):
    """SIGINT and SIGTERM set `request` while the block runs; `announce` (None: say nothing) is
    printed to stderr at the first one, a second one raises KeyboardInterrupt at once unless
    `launched`.

    Launched workers always wait for the step: the kernel interrupt reaches them twice (the
    process group and the launcher), and the launcher kills them after its shutdown timeout.
    Signal handlers can only be set from the main thread: elsewhere the block runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if request.requested and not launched:
            raise KeyboardInterrupt
        if not request.requested and announce is not None:
            what = "interrupted" if signum == signal.SIGINT else f"received {signal.Signals(signum).name}"
            print(f"\n{what}: {announce}", file=sys.stderr, flush=True)
        request.requested = True
        request.signum = request.signum or signum

    fallback = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.signal(signum, handler) for signum in fallback}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else fallback[signum])


def data_worker_init(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM (a batch system sends it to every process of the job):
    the training process finishes its step and saves first; the workers die with it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    distributed.die_with_parent(worker_id)
