"""launch(): 2 gloo workers agree with 1 process, worker failures surface, no orphans, node settings,
two nodes on one machine, rendezvous timeouts, restarts after a killed worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compute_gradients, tiny_synthetic
from helpers import tiny_params as make_tiny_params

import posecore
from posecore import distributed
from posecore.files import REPO_ROOT, read_json, read_jsonl
from posecore.params import load_params, save_params


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory):
    root = tiny_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=4)
    return make_tiny_params(root, **{"train.batch_size": 2})


def test_two_gloo_workers_give_the_gradients_of_one_process(tiny_params, tmp_path):
    save_params(tiny_params, tmp_path / "params.yaml")
    args = (str(tmp_path), 4, True)  # BatchNorm on running statistics: SyncBN needs NPU/GPU
    single = distributed.launch(compute_gradients, args, 1, tiny_params)
    double = distributed.launch(compute_gradients, args, 2, tiny_params, log_dir=tmp_path / "logs")
    assert single.keys() == double.keys() and len(single) > 50
    for name in single:
        np.testing.assert_allclose(double[name], single[name], rtol=2e-3, atol=1e-6, err_msg=name)


def test_worker_failure_raises_with_its_traceback(tiny_params, tmp_path, capsys):
    save_params(tiny_params, tmp_path / "params.yaml")
    with pytest.raises(RuntimeError) as error:
        # 3 samples do not split over 2 ranks: both workers raise ValueError
        distributed.launch(compute_gradients, (str(tmp_path), 3), 2, tiny_params, log_dir=tmp_path / "logs")
    message = str(error.value)
    assert "Traceback" in message and "compute_gradients" in message
    assert "global_batch 3 must divide by the world size 2" in message
    # the failing rank's log and rank 0's tailed stderr reached this process's streams
    assert "must divide by the world size" in capsys.readouterr().err
    assert not distributed._spawned_children()


def test_launch_refuses_functions_workers_cannot_import(tiny_params):
    def local_function():
        return 0

    for entrypoint in (local_function, lambda: 0):
        with pytest.raises(ValueError, match="module-level function"):
            distributed.launch(entrypoint, (), 2, tiny_params)
    with pytest.raises(TypeError, match="plain values"):
        distributed.launch(compute_gradients, (tiny_params,), 2, tiny_params)


def test_launch_refuses_more_accelerators_than_exist(monkeypatch, tiny_params):
    monkeypatch.setattr(posecore.device, "device_type", lambda: "npu")
    monkeypatch.setattr(posecore.device, "device_count", lambda: 2)
    monkeypatch.setattr(posecore.device, "device_names", lambda: ["Ascend910B", "Ascend910B"])
    with pytest.raises(RuntimeError, match=r"asked for 4 npu devices.*has 2 \(Ascend910B"):
        distributed.launch(compute_gradients, ("x", 4), 4, tiny_params)


def test_node_settings_come_from_params_or_environment(monkeypatch, tiny_params):
    for name in (
        "NNODES",
        "NODE_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "PET_NNODES",
        "PET_NODE_RANK",
        "PET_MASTER_ADDR",
        "PET_MASTER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    params = load_params(
        tiny_params, {"dist.nnodes": 2, "dist.node_rank": 1, "dist.master_addr": "10.0.0.1", "dist.master_port": 29400}
    )
    assert distributed.node_settings(params) == distributed.Nodes(2, 1, "10.0.0.1", 29400)
    monkeypatch.setenv("NNODES", "4")
    monkeypatch.setenv("PET_NODE_RANK", "3")
    monkeypatch.setenv("MASTER_ADDR", "node0")
    assert distributed.node_settings(params) == distributed.Nodes(4, 3, "node0", 29400)
    monkeypatch.setenv("PET_NODE_RANK", "4")
    with pytest.raises(ValueError, match="node_rank"):
        distributed.node_settings(params)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_workers_die_with_the_process_that_launched_them(tiny_params, tmp_path):
    """SIGKILL the launching process (as a dying kernel) while 2 workers train: none survives."""
    params_path = save_params(load_params(tiny_params, {"train.epochs": 1000}), tmp_path / "long.yaml")
    env = {**os.environ, "POSECORE_OUTPUTS": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-c",
        "import sys, posecore; posecore.train(sys.argv[1], npus=2, run_name='orphans')",
        str(params_path),
    ]
    parent = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        log = tmp_path / "orphans" / "log.jsonl"
        deadline = time.monotonic() + 120
        while not (log.exists() and read_jsonl(log)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.exists(), "the workers never logged a step"
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        workers = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- several nodes and restarts (real launcher processes, gloo over the loopback) -------------

LOOPBACK = {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
NODE_VARIABLES = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def loopback(monkeypatch, tmp_path):
    """Workers inherit: one thread each (bitwise comparisons need the same thread count in every
    run) and gloo on the loopback interface, as two machines on one host."""
    for name, value in {**LOOPBACK, "POSECORE_OUTPUTS": str(tmp_path / "outputs")}.items():
        monkeypatch.setenv(name, value)
    for name in NODE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def two_nodes(tiny_params, tmp_path_factory):
    """Two launchers as two machines (nnodes 2, node_rank 0 in this process and 1 in a
    subprocess, one worker each) with separate outputs folders, so what each node writes is
    visible. Returns {node_rank: (run folder, whether global rank 0 ran there)}. It is also the
    uninterrupted world-size-2 run the restarted one-node run is compared with."""
    root = tmp_path_factory.mktemp("two-nodes")
    params = load_params(
        tiny_params, {"train.epochs": 2, "dist.nnodes": 2, "dist.master_port": _free_port(), "dist.rdzv_timeout": 120}
    )
    params_path = save_params(params, root / "nodes.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**LOOPBACK, "POSECORE_OUTPUTS": str(root / "node0")}.items():
            patch.setenv(name, value)
        for name in NODE_VARIABLES:
            patch.delenv(name, raising=False)
        env = {**os.environ, "POSECORE_OUTPUTS": str(root / "node1"), "NODE_RANK": "1", "PYTHONPATH": str(REPO_ROOT)}
        command = [
            sys.executable,
            "-c",
            "import sys, posecore\n"
            "result = posecore.train(sys.argv[1], npus=1, run_name='nodes')\n"
            "print('rank 0 here:', result is not None)",
            str(params_path),
        ]
        node1 = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            result = posecore.train(params_path, npus=1, run_name="nodes")
            stdout, stderr = node1.communicate(timeout=120)
        finally:
            node1.kill()
    assert node1.returncode == 0, stderr[-3000:]
    return {
        0: (root / "node0" / "nodes", result is not None),
        1: (root / "node1" / "nodes", "rank 0 here: True" in stdout),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _weights(folder: Path) -> dict:
    return torch.load(folder / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]


def _train_losses(folder: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(folder / "log.jsonl") if r["type"] == "train"]


def _rank0_folder(two_nodes: dict) -> Path:
    return next(folder for folder, rank0_here in two_nodes.values() if rank0_here)


@pytest.mark.slow
def test_two_nodes_finish_and_only_rank_0_writes(two_nodes):
    assert sorted(rank0_here for _, rank0_here in two_nodes.values()) == [False, True]
    for node, (folder, rank0_here) in two_nodes.items():
        written = {"checkpoints", "log.jsonl"} & {p.name for p in folder.iterdir()}
        assert written == ({"checkpoints", "log.jsonl"} if rank0_here else set()), node
    assert read_json(two_nodes[0][0] / "env.json")["world_size"] == 2
    assert read_json(two_nodes[1][0] / "env-node1.json")["world_size"] == 2
    assert torch.load(_rank0_folder(two_nodes) / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2


def test_a_node_that_cannot_join_fails_within_the_rendezvous_timeout(tiny_params, loopback):
    port = _free_port()  # nothing listens there
    params = load_params(tiny_params, {"dist.nnodes": 2, "dist.master_port": port, "dist.rdzv_timeout": 1})
    started = time.monotonic()
    with pytest.raises(
        RuntimeError,
        match=rf"node 1 of 2 could not complete the rendezvous at "
        rf"127\.0\.0\.1:{port} within dist\.rdzv_timeout 1 s"
        r"(.|\n)*node 0 must run on the machine at",
    ):
        posecore.train(load_params(params, {"dist.node_rank": 1}), npus=1, run_name="alone")
    # node 0 alone hosts the rendezvous and gives up waiting for node 1
    with pytest.raises(
        RuntimeError,
        match=r"node 0 of 2 could not complete(.|\n)*start the same "
        r"command on all 2 nodes",
    ):
        posecore.train(params, npus=1, run_name="alone")
    assert time.monotonic() - started < 2 * 1 + 20  # two timeouts, not a hang
    assert not distributed._spawned_children()


def _kill_after_first_checkpoint(folder: Path, local_rank: int, killed: list) -> None:
    """SIGKILL the worker of `local_rank` (found by its stdout log) once last.pt exists."""
    last = folder / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in distributed._spawned_children():
        try:
            log = os.readlink(f"/proc/{pid}/fd/1")
        except OSError:
            continue
        if log.endswith(f"/{local_rank}/stdout.log"):
            os.kill(pid, signal.SIGKILL)
            killed.append(torch.load(last, weights_only=True)["epoch"])


def _train_killing_rank_1(params, run_name: str) -> tuple[dict | None, list]:
    folder = Path(os.environ["POSECORE_OUTPUTS"]) / run_name
    killed: list = []
    killer = threading.Thread(target=_kill_after_first_checkpoint, args=(folder, 1, killed))
    killer.start()
    try:
        return posecore.train(params, npus=2, run_name=run_name), killed
    finally:
        killer.join()


@pytest.mark.slow
def test_a_restarted_one_node_run_equals_the_two_node_run(tiny_params, two_nodes, loopback):
    """dist.max_restarts 1: rank 1 is killed after the first checkpoint, the launcher restarts both
    workers, they resume from last.pt, and the run ends bitwise equal to the uninterrupted
    two-node run with the same seed and world size: one node trains like two, and a restarted
    run like an uninterrupted one."""
    params = load_params(tiny_params, {"train.epochs": 2, "dist.max_restarts": 1})
    result, killed = _train_killing_rank_1(params, "restarted")
    assert killed and killed[0] < 2  # killed before the end
    folder = Path(result["run_dir"])
    assert result["epochs"] == 2 and result["stopped"] == "done"
    restarted_logs = list((folder / "logs").glob("*/attempt_1/0/stdout.log"))
    assert restarted_logs and "resuming restarted from" in restarted_logs[0].read_text()
    reference = _rank0_folder(two_nodes)
    assert _train_losses(folder) == _train_losses(reference)
    mine, theirs = _weights(folder), _weights(reference)
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


@pytest.mark.slow
def test_without_restarts_a_killed_worker_fails_the_job_naming_its_rank(tiny_params, loopback):
    params = load_params(tiny_params, {"train.epochs": 2})
    with pytest.raises(RuntimeError, match=r"worker rank 1 \(local rank 1, pid \d+\) was killed by SIGKILL"):
        _train_killing_rank_1(params, "killed")
    assert not distributed._spawned_children()


def test_a_script_without_the_main_guard_is_told_to_add_it(tiny_params, tmp_path):
    """Spawned workers import the launching script: its unguarded top-level train() call is
    refused in them with the fix, and the launcher reports that rather than a run-lock clash."""
    params_path = save_params(load_params(tiny_params, {"train.epochs": 1}), tmp_path / "params.yaml")
    script = tmp_path / "train_unguarded.py"
    script.write_text(f"import posecore\nposecore.train({str(params_path)!r}, npus=2, run_name='unguarded')\n")
    env = {**os.environ, "POSECORE_OUTPUTS": str(tmp_path / "outputs"), "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("posecore.distributed.UnguardedScriptError: posecore.train was called again")
    assert str(script) in last and 'if __name__ == "__main__":' in last and "already being written" not in last
