"""launch(): 2 gloo workers agree with 1 process, worker failures surface, no orphans, node settings."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import posecore
from posecore import distributed
from posecore.params import load_params, save_params
from posecore.runs import REPO_ROOT, read_jsonl

from helpers import compute_gradients, tiny_synthetic
from helpers import tiny_params as make_tiny_params

@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory):
    root = tiny_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=4)
    return make_tiny_params(root, **{"train.batch_size": 2})


def test_two_gloo_workers_give_the_gradients_of_one_process(tiny_params, tmp_path):
    save_params(tiny_params, tmp_path / "params.yaml")
    args = (str(tmp_path), 4, True)  # BatchNorm on running statistics: SyncBN needs NPU/GPU
    single = distributed.launch(compute_gradients, args, 1, tiny_params)
    double = distributed.launch(compute_gradients, args, 2, tiny_params,
                                log_dir=tmp_path / "logs")
    assert single.keys() == double.keys() and len(single) > 50
    for name in single:
        np.testing.assert_allclose(double[name], single[name], rtol=2e-3, atol=1e-6, err_msg=name)


def test_worker_failure_raises_with_its_traceback(tiny_params, tmp_path, capsys):
    save_params(tiny_params, tmp_path / "params.yaml")
    with pytest.raises(RuntimeError) as error:
        # 3 samples do not split over 2 ranks: both workers raise ValueError
        distributed.launch(compute_gradients, (str(tmp_path), 3), 2, tiny_params,
                           log_dir=tmp_path / "logs")
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
    for name in ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "PET_NNODES", "PET_NODE_RANK",
                 "PET_MASTER_ADDR", "PET_MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    params = load_params(tiny_params, {"dist.nnodes": 2, "dist.node_rank": 1,
                                       "dist.master_addr": "10.0.0.1", "dist.master_port": 29400})
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
    command = [sys.executable, "-c",
               "import sys, posecore; posecore.train(sys.argv[1], npus=2, run_name='orphans')",
               str(params_path)]
    parent = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        log = tmp_path / "orphans" / "log.jsonl"
        deadline = time.monotonic() + 120
        while not (log.exists() and read_jsonl(log)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.exists(), "the workers never logged a step"
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        workers = [int(pid) for pid in children
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
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
