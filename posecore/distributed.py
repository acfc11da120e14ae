"""Ranks, process groups, and `launch`: one worker process per device through torch's elastic launcher.

`launch(entrypoint, args, npus, params)` runs `entrypoint(*args)` on `npus` devices of this machine
(and on every machine of a multi-node job) and returns rank 0's result. It is what `torchrun` does,
called as a function, so it also works from a Jupyter/papermill kernel:

- The entrypoint must be a module-level function of an importable module (e.g.
  `posecore.engine.train_worker`); workers import it by name and get only plain `args`
  (paths, numbers), so nothing defined in a notebook is ever pickled to them.
- Workers write stdout/stderr to
  `<log_dir>/<run_id>_*/attempt_<restart>/<local_rank>/{stdout,stderr}.log`;
  a thread in the caller copies local rank 0's logs (of the latest attempt) into `sys.stdout` /
  `sys.stderr` as they grow (under ipykernel, child processes' file descriptors never reach the
  notebook by themselves).
- A failing worker stops the job; its traceback (from the `record` error file) and the end of its
  stderr log are printed and raised as a RuntimeError.
- No worker outlives the caller: each worker asks Linux to SIGKILL it when its parent dies
  (prctl PR_SET_PDEATHSIG), and an interrupt in the caller stops the workers (they get SIGINT,
  finish their current step, and the engine saves a resumable checkpoint) before re-raising
  KeyboardInterrupt.

Multi-node (the way torchrun scales): run the same `posecore.train(params, npus=N, run_name=...)`
on every machine with the same `outputs/` (a shared filesystem, so that all nodes see params.yaml
and the checkpoints) and
    dist.nnodes = number of machines, dist.node_rank = 0..nnodes-1 (this machine),
    dist.master_addr / dist.master_port = an address of node 0 that every node can reach.
The environment can supply them instead (it overrides params.dist): NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT, or torchrun's PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR,
PET_MASTER_PORT. Node 0 hosts torchrun's c10d rendezvous at master_addr:master_port; the world
size is nnodes * npus, and the rendezvous orders the nodes (global rank 0, which writes the
checkpoints and records, is on one of them). A node that cannot reach the rendezvous, or a node 0
whose peers do not all join, fails after dist.rdzv_timeout seconds with a message saying what to
check. A single node needs none of this: it rendezvouses on a free localhost port (torchrun
--standalone).

Restarts (torchrun's --max-restarts): with dist.max_restarts R > 0, when a worker dies the
launcher stops the others and starts every worker again, up to R times (on every node: the other
nodes' launchers see the new rendezvous round and restart theirs); the engine's workers resume from
last.pt. With 0 (the default) the job fails naming the rank that died.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from torch.distributed.elastic.rendezvous import RendezvousError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from posecore import device
from posecore.params import Params
from posecore.progress import PROGRESS_ENV, ProgressMirror

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PLAIN_ARGS = (str, int, float, bool, type(None), Path)
_HANDLED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
_LOG_TAIL_LINES = 40
# where a worker that re-ran the user's script leaves its message for the launcher (check_main_guard)
_GUARD_NOTE_ENV = "POSECORE_GUARD_NOTE"
# set for the launch and restored after it
_LAUNCHER_ENV = ("TORCHELASTIC_SIGNALS_TO_HANDLE", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", PROGRESS_ENV, _GUARD_NOTE_ENV)


class UnguardedScriptError(RuntimeError):
    """posecore.train / evaluate called by a script's top level while a worker re-imports it."""


def check_main_guard(call: str) -> None:
    """Refuse `call` (e.g. "posecore.train") when it runs in the top level of a script that a
    spawned worker process is importing: workers started with the spawn method (npus > 1) import
    the launching script as `__mp_main__`, so a script without an `if __name__ == "__main__":`
    guard would start a second training of the same run in every worker. The message is also
    left for the launcher, which reports it instead of a bare exit code."""
    if "__mp_main__" not in sys.modules:  # set by multiprocessing's spawn while it imports the script
        return
    frame = sys._getframe(1)
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__"
    ):
        frame = frame.f_back
    if frame is None:
        return
    script = frame.f_globals.get("__file__") or frame.f_code.co_filename
    message = (
        f"{call} was called again by the top level of {script} inside a worker process: the "
        "workers of a multi-device run (npus > 1) are started with the spawn method and import "
        "the launching script, so its top-level code runs once more in each of them. Put the "
        f'call under `if __name__ == "__main__":` (see docs/workbook.md, "From Python") so that '
        "only the launching process runs it"
    )
    note = os.environ.get(_GUARD_NOTE_ENV)
    if note:
        with contextlib.suppress(OSError):  # the launcher then reports the exit code alone
            Path(note).write_text(message)
    raise UnguardedScriptError(message)


# --- ranks -----------------------------------------------------------------------------------


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place (a no-op in one process) and return it."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


# --- nodes -----------------------------------------------------------------------------------


@dataclass
class Nodes:
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int


def node_settings(params: Params | None = None) -> Nodes:
    """params.dist, overridden by NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT (or their PET_ forms)."""
    source = getattr(params, "dist", None)

    def pick(key: str, default: Any) -> Any:
        for name in (f"PET_{key.upper()}", key.upper()):
            if os.environ.get(name):
                return type(default)(os.environ[name])
        return getattr(source, key, default)

    nodes = Nodes(pick("nnodes", 1), pick("node_rank", 0), pick("master_addr", "127.0.0.1"), pick("master_port", 29500))
    if nodes.nnodes < 1 or not 0 <= nodes.node_rank < nodes.nnodes:
        raise ValueError(
            f"dist.node_rank must be in [0, dist.nnodes); got node_rank "
            f"{nodes.node_rank} with nnodes {nodes.nnodes} (params.dist or environment)"
        )
    return nodes


# --- launch ----------------------------------------------------------------------------------


def launch(
    entrypoint: Callable,
    args: tuple = (),
    npus: int = 1,
    params: Params | None = None,
    log_dir: str | os.PathLike | None = None,
    job_name: str = "posecore",
) -> Any:
    """Run `entrypoint(*args)` on `npus` devices per node and return rank 0's result (None on
    the nodes without rank 0 in a multi-node job).

    npus=1 on one node calls it in this process. Otherwise every worker initializes the process
    group (params.dist.backend, else hccl / nccl / gloo from the device layer) and binds its device
    before the call. `args` must be plain values (str, numbers, paths). Worker logs go under
    `log_dir` (default: a new temp folder). `job_name` names the rendezvous of a multi-node job:
    the same on every node (e.g. the run name). params.dist.max_restarts and rdzv_timeout apply.
    See the module docstring for multi-node use and restarts.
    """
    if not isinstance(npus, int) or npus < 1:
        raise ValueError(f"npus must be a positive integer, got {npus!r}")
    device.check_device_count(npus)
    nodes = node_settings(params)
    threads = worker_threads(params, npus, in_process=npus == 1 and nodes.nnodes == 1)["per_worker"]
    if npus == 1 and nodes.nnodes == 1:
        with _torch_threads(threads):
            return entrypoint(*args)
    target = _importable_name(entrypoint)
    _check_plain(args)
    backend = getattr(getattr(params, "dist", None), "backend", "") or device.dist_backend()
    logs = _RankLogs(Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="posecore-launch-")))
    dist_params = getattr(params, "dist", None)
    restarts = getattr(dist_params, "max_restarts", 0)
    rdzv_timeout = getattr(dist_params, "rdzv_timeout", 600)
    config = _launch_config(npus, nodes, logs, restarts, rdzv_timeout, job_name)

    saved_handlers = _signal_handlers()
    saved_env = {name: os.environ.get(name) for name in _LAUNCHER_ENV}
    # Each attempt's workers get a fresh TCPStore from their rank 0: the rendezvous' shared store
    # keeps the previous attempt's keys, and restarted workers would read stale peer addresses
    # (pytorch/pytorch#135712)
    os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    # rank 0 writes its progress here instead of drawing a bar into its stderr log; this process
    # shows it as one bar (posecore.progress)
    logs.root.mkdir(parents=True, exist_ok=True)
    progress_file = logs.root / "progress.json"
    os.environ[PROGRESS_ENV] = str(progress_file)
    guard_note = logs.root / "unguarded_script.txt"
    guard_note.unlink(missing_ok=True)
    os.environ[_GUARD_NOTE_ENV] = str(guard_note)
    tail = _LogTail(logs)
    tail.start()
    mirror = ProgressMirror(progress_file)
    mirror.start()
    try:
        results = elastic_launch(config, _worker)(target, backend, threads, *args)
    except ChildFailedError as error:
        tail.stop()
        if guard_note.is_file():
            raise UnguardedScriptError(guard_note.read_text()) from None
        raise RuntimeError(_failure_report(error, logs)) from None
    except RendezvousError as error:
        raise RuntimeError(_rendezvous_report(error, nodes, rdzv_timeout)) from None
    except SignalException as error:
        _stop_workers()
        if error.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise
    except BaseException:
        _stop_workers()
        raise
    finally:
        mirror.stop()
        tail.stop()
        _restore_signal_handlers(saved_handlers)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return results.get(0)


def _launch_config(
    npus: int, nodes: Nodes, logs: DefaultLogsSpecs, max_restarts: int, rdzv_timeout: int, job_name: str
) -> Any:
    if nodes.nnodes == 1:
        # torchrun --standalone: a rendezvous on a free localhost port, private to this job
        endpoint, configs, run_id = "localhost:0", {}, f"posecore-{uuid.uuid4().hex[:8]}"
    else:
        # torchrun's c10d rendezvous: node 0 hosts it; every node joins within rdzv_timeout, and
        # the launchers of all nodes restart together (a new round) when a worker dies
        endpoint = f"{nodes.master_addr}:{nodes.master_port}"
        configs = {"is_host": nodes.node_rank == 0, "join_timeout": rdzv_timeout, "read_timeout": rdzv_timeout}
        run_id = job_name
    return LaunchConfig(
        min_nodes=nodes.nnodes,
        max_nodes=nodes.nnodes,
        nproc_per_node=npus,
        run_id=run_id,
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        rdzv_configs=configs,
        max_restarts=max_restarts,
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=logs,
        shutdown_timeout=30,
    )


def _rendezvous_report(error: RendezvousError, nodes: Nodes, rdzv_timeout: int) -> str:
    cause = error.__cause__ or error
    reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    where = f"{nodes.master_addr}:{nodes.master_port}"
    if nodes.node_rank == 0:
        check = (
            f"start the same command on all {nodes.nnodes} nodes within that time (with "
            f"node_rank 1 to {nodes.nnodes - 1} on the others), with {where} reachable from them"
        )
    else:
        check = (
            f"node 0 must run on the machine at dist.master_addr {nodes.master_addr} and its "
            f"port {nodes.master_port} must be reachable from this machine (firewall, address)"
        )
    return (
        f"node {nodes.node_rank} of {nodes.nnodes} could not complete the rendezvous at {where} "
        f"within dist.rdzv_timeout {rdzv_timeout} s ({reason})\n"
        f"Check: {check}; or raise dist.rdzv_timeout."
    )


def _importable_name(entrypoint: Callable) -> str:
    module = getattr(entrypoint, "__module__", None)
    name = getattr(entrypoint, "__qualname__", "")
    if not module or module == "__main__" or "." in name or "<" in name:
        raise ValueError(
            f"launch needs a module-level function of an importable module (e.g. "
            f"posecore.engine.train_worker), not {entrypoint!r}: workers import it by name, "
            f"so nothing defined in a notebook or script is pickled to them"
        )
    return f"{module}:{name}"


def _check_plain(args: tuple) -> None:
    for value in args:
        if not isinstance(value, _PLAIN_ARGS):
            raise TypeError(
                f"launch args must be plain values (str, numbers, paths), got "
                f"{type(value).__name__}: save it to a file and pass the path"
            )


def worker_threads(params: Params | None = None, local_workers: int = 1, in_process: bool = False) -> dict[str, Any]:
    """{"per_worker": torch intra-op threads of each worker, "source": where the number comes from}.

    params.dist.threads when > 0; else a lone worker in the calling process (`in_process`) keeps
    that process's torch.get_num_threads(); else OMP_NUM_THREADS when set; else the cores this
    process may use / `local_workers`, so the workers of a node share its cores. The count changes
    float rounding (a lone worker with all cores and two workers with one each differ from step 2
    on): env.json records it and posecore.reproduce re-runs with it.
    """
    threads = getattr(getattr(params, "dist", None), "threads", 0)
    if threads:
        return {"per_worker": threads, "source": "dist.threads"}
    if in_process:
        return {"per_worker": torch.get_num_threads(), "source": "the calling process's torch threads"}
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return {"per_worker": int(omp), "source": "OMP_NUM_THREADS"}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"per_worker": max(1, cores // local_workers), "source": f"{cores} cores / {local_workers} workers"}


@contextlib.contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@record
def _worker(target: str, backend: str, threads: int, *args: Any) -> Any:
    """Runs in every worker process: guard against orphaning, set its threads (worker_threads),
    join the group, call the target."""
    die_with_parent()
    for stream in (sys.stdout, sys.stderr):  # files, not a tty: flush every line for the tail
        stream.reconfigure(line_buffering=True)
    torch.set_num_threads(threads)
    module_name, name = target.split(":")
    function = getattr(importlib.import_module(module_name), name)
    device.get_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)
    try:
        return function(*args)
    except Exception:
        traceback.print_exc()  # into this rank's stderr log, which outlives the job
        raise
    finally:
        dist.destroy_process_group()


def die_with_parent(_worker_id: int | None = None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans); no-op elsewhere.

    Also usable as a DataLoader worker_init_fn (it ignores the worker id).
    """
    if not sys.platform.startswith("linux"):
        return
    expected = os.getppid()
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        expected = parent.pid
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected:  # the parent died before prctl took effect
        os._exit(1)


# --- logs ------------------------------------------------------------------------------------


class _RankLogs(DefaultLogsSpecs):
    """Redirect every worker's stdout/stderr to files and remember where they went."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir=str(log_dir), redirects=Std.ALL, tee=Std.NONE)
        self.root = Path(log_dir)
        self.destination: Any = None
        self.ready = threading.Event()

    def reify(self, envs: dict[int, dict[str, str]]) -> Any:
        self.destination = super().reify(envs)
        self.ready.set()
        return self.destination

    def path(self, stream: str, local_rank: int) -> str | None:
        if self.destination is None:
            return None
        return getattr(self.destination, stream).get(local_rank)


class _LogTail(threading.Thread):
    """Copy local rank 0's stdout/stderr logs into this process's sys.stdout / sys.stderr."""

    def __init__(self, logs: _RankLogs, interval: float = 0.2) -> None:
        super().__init__(name="posecore-log-tail", daemon=True)
        self.logs = logs
        self.interval = interval
        self.stopping = threading.Event()
        # bind the streams now: under ipykernel they route to the cell that launched the job
        self.sinks = {"stdouts": sys.stdout, "stderrs": sys.stderr}

    def run(self) -> None:
        files: dict[str, Any] = {}
        try:
            while True:
                stopping = self.stopping.is_set()
                for stream, sink in self.sinks.items():
                    path = self.logs.path(stream, 0)
                    handle = files.get(stream)
                    if handle is not None and handle.name != path:  # a restart: follow the new attempt
                        _copy(handle, sink)
                        files.pop(stream).close()
                        handle = None
                    if handle is None and path and os.path.exists(path):
                        handle = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115  (followed until the worker ends)
                        files[stream] = handle
                    if handle is not None:
                        _copy(handle, sink)
                if stopping:
                    return
                self.stopping.wait(self.interval)
        finally:
            for handle in files.values():
                handle.close()

    def stop(self) -> None:
        if self.is_alive():
            self.stopping.set()
            self.join(timeout=5)


def _copy(handle: Any, sink: Any) -> None:
    chunk = handle.read()
    if chunk:
        sink.write(chunk)
        sink.flush()


def _failure_report(error: ChildFailedError, logs: _RankLogs) -> str:
    """The failing worker's traceback, with the end of its stderr log printed for context."""
    failed_rank, failure = error.get_first_failure()
    message = failure.message
    if isinstance(message, dict):
        trace = message.get("extraInfo", {}).get("py_callstack") or message.get("message", "")
    else:
        trace = str(message)
    stderr_path = logs.path("stderrs", failure.local_rank)
    tail = _last_lines(stderr_path)
    if tail:
        print(f"--- end of worker rank {failed_rank}'s log {stderr_path} ---\n{tail}", file=sys.stderr, flush=True)
    how = (
        f"was killed by {failure.signal_name()}"
        if failure.exitcode < 0
        else f"failed with exit code {failure.exitcode}"
    )
    return (
        f"worker rank {failed_rank} (local rank {failure.local_rank}, pid {failure.pid}) {how}; "
        f"logs in {logs.root_log_dir}\n{trace}"
    )


def _last_lines(path: str | None, count: int = _LOG_TAIL_LINES) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-count:])


# --- signals and stray workers ---------------------------------------------------------------


def _signal_handlers() -> dict[int, Any]:
    """The handlers the elastic agent replaces (it never restores them); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        getattr(signal, name): signal.getsignal(getattr(signal, name))
        for name in _HANDLED_SIGNALS
        if hasattr(signal, name)
    }


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


def _stop_workers(grace: float = 5.0) -> None:
    """Terminate, then kill, any spawned worker of this process still alive after the agent stopped."""
    pids = _spawned_children()
    for pid in pids:
        _signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    for pid in pids:
        _signal_pid(pid, signal.SIGKILL)


def _spawned_children() -> list[int]:
    """Children of this process started by multiprocessing's spawn (the elastic workers)."""
    pids: list[int] = []
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:
            continue
    spawned = []
    for pid in set(pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            spawned.append(pid)
    return spawned


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == 0


def _signal_pid(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, signum)
