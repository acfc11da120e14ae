"""posecore.runs and posecore.files: Run (every path of a run folder, its readers, checkpoint
lookup), one writer per run, crash-consistent records, a full disk, run names and folders."""

from __future__ import annotations

import ast
import io
import json
import multiprocessing
import os
import socket
import time

import pytest
from helpers import lock_holder

from posecore.errors import RunLockedError
from posecore.files import REPO_ROOT, DiskFullError, append_jsonl, atomic_write, read_jsonl, repair_jsonl, write_json
from posecore.params import load_params, save_params
from posecore.runs import (
    Run,
    check_run_name,
    default_run_name,
    find_checkpoint,
    is_training,
    resolve_path,
    run_dir,
    run_lock,
    run_writer,
)

ROOT = REPO_ROOT


# ----------------------------------------------------------------------------- one writer per run


def test_second_writer_is_refused_naming_run_pid_and_host(outputs):
    folder = run_dir("shared-run")
    holder = lock_holder(folder)
    try:
        assert is_training(folder) and run_writer(folder)["pid"] == holder.pid
        with pytest.raises(RunLockedError) as info, run_lock(folder, "evaluation"):
            pass
        message = str(info.value)
        for word in ("'shared-run'", f"process {holder.pid}", socket.gethostname(), "training", "another run_name"):
            assert word in message
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its process: nothing stale is left to clean up by hand
    assert run_writer(folder) is None and not is_training(folder)
    with run_lock(folder, "evaluation"):
        assert run_writer(folder)["purpose"] == "evaluation" and not is_training(folder)
        with pytest.raises(RunLockedError), run_lock(folder, "training"):  # one writer, in this process too
            pass


def test_a_forked_child_that_outlives_the_block_does_not_keep_the_run_locked(outputs):
    """A DataLoader worker forked while the run is locked may still be finishing its last batch
    when training returns; the notebook's next cell must get the lock all the same."""
    folder = run_dir("forked")
    forking = multiprocessing.get_context("fork")
    with run_lock(folder, "training"):
        child = forking.Process(target=time.sleep, args=(60,), daemon=True)
        child.start()
    try:
        assert child.is_alive()
        with run_lock(folder, "a notebook's tables"):
            assert run_writer(folder)["purpose"] == "a notebook's tables"
    finally:
        child.kill()
        child.join()


def test_a_forked_child_leaving_the_block_leaves_what_reuses_the_number_alone(outputs, tmp_path):
    """A child forked inside the block (os.fork) that runs on past its end must not truncate or
    close the descriptor number the lock had: its copy was closed at the fork, and the number may
    hold another file of the child's by then."""
    from posecore.runs import _HELD_LOCKS

    folder = run_dir("forked-leaving")
    precious = tmp_path / "precious.txt"
    with run_lock(folder, "training"):
        (lock_fd,) = _HELD_LOCKS
        pid = os.fork()
        if pid == 0:
            try:  # the child: a file of its own under the lock's old number
                os.dup2(os.open(precious, os.O_RDWR | os.O_CREAT), lock_fd)
                os.write(lock_fd, b"precious")
            except BaseException:
                os._exit(2)
    if pid == 0:  # the child, past the block's exit
        os._exit(0 if precious.read_bytes() == b"precious" and os.fstat(lock_fd) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with run_lock(folder, "evaluation"):
        assert run_writer(folder)["purpose"] == "evaluation"


def test_taking_the_lock_removes_temp_files_of_interrupted_writes(outputs, capsys):
    folder = run_dir("killed")
    orphans = [folder / "checkpoints" / ".last.pt.k3j_x9a2.tmp", folder / ".log.jsonl.ab12cd34.tmp"]
    kept = [folder / "checkpoints" / "last.pt", folder / ".notes.tmp", folder / "weights.tmp"]
    for path in orphans + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    with run_lock(folder, "training"):
        assert not any(path.exists() for path in orphans)
        assert all(path.exists() for path in kept)
    assert "removed 2 temp file(s)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- crash-consistent records


def test_torn_last_log_line_is_skipped_then_cut_off(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"type": "train", "step": 1}\n{"type": "train", "step": 2}\n{"type": "tra')
    with pytest.warns(UserWarning, match=r"log\.jsonl.*line 3"):
        assert [r["step"] for r in read_jsonl(log)] == [1, 2]
    with pytest.warns(UserWarning, match=r"log\.jsonl: removed a torn last line"):
        append_jsonl(log, {"type": "train", "step": 3})
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
    # a whole record that only lost its newline is kept
    log.write_text('{"step": 1}\n{"step": 2}')
    assert repair_jsonl(log) == 0 and log.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_disk_full_names_path_and_size_and_keeps_previous_files(small_disk):
    import torch

    last = small_disk / "checkpoints" / "last.pt"
    atomic_write(last, lambda f: torch.save({"w": torch.zeros(1000)}, f))
    before = last.read_bytes()
    big = {"w": torch.zeros(200_000)}  # 800 KB of float32 on a 256 KB disk
    with pytest.raises(DiskFullError) as info:
        atomic_write(last, lambda f: torch.save(big, f))
    size = io.BytesIO()
    torch.save(big, size)
    message = str(info.value)
    assert f"{last}: it needs {len(size.getvalue()) / 1024:.1f} KB" in message
    assert "left as it was" in message
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]  # no temp file left

    results = small_disk / "results.json"
    with pytest.raises(DiskFullError, match=r"results\.json: it needs 300\.0 KB.*was not written"):
        atomic_write(results, b"0" * 300 * 1024)
    assert not results.exists()

    log = small_disk / "log.jsonl"
    append_jsonl(log, {"step": 1})
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk up to its last page
        while os.write(filler, b"0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    with pytest.raises(DiskFullError, match=r"log\.jsonl: it needs 9\.8 KB"):
        append_jsonl(log, {"step": 2, "note": "x" * 10_000})
    assert log.read_text() == '{"step": 1}\n'  # whole lines only


# ----------------------------------------------------------------------------- run names and folders


@pytest.mark.parametrize(
    "name, words",
    [
        ("run\n", ["control character", "newline"]),
        ("a\tb", ["control character"]),
        ("../escape", ["plain folder name"]),
        ("x" * 300, ["300 characters", "at most 255"]),
    ],
)
def test_bad_run_names_are_refused(outputs, name, words):
    with pytest.raises(ValueError) as info:
        check_run_name(name)
    assert all(word in str(info.value) for word in words)
    assert not outputs.exists() or not any(outputs.iterdir())


def test_default_run_name_fits_any_params_name():
    name = default_run_name("my params (v2)\n")
    check_run_name(name)
    assert name.startswith("my-params-v2-")


def test_outputs_paths_follow_posecore_outputs(outputs):
    # params/demo.yaml's data.root: synthetic data goes where the user's outputs go
    from posecore.data import dataset_root

    assert resolve_path("outputs/data/synthetic_coco") == outputs / "data" / "synthetic_coco"
    assert dataset_root(load_params("demo").data) == outputs / "data" / "synthetic_coco"
    assert dataset_root(load_params("demo", {"data.root": ""}).data) == outputs / "data" / "synthetic_coco"
    assert resolve_path("params/demo.yaml") == ROOT / "params" / "demo.yaml"


def test_a_relative_posecore_outputs_is_the_repositorys_whatever_the_working_directory(monkeypatch, tmp_path):
    from posecore.runs import outputs_root

    monkeypatch.chdir(tmp_path)  # a notebook runs in notebooks/, a shell anywhere
    monkeypatch.setenv("POSECORE_OUTPUTS", "my-runs")
    assert outputs_root() == ROOT / "my-runs" and run_dir("r1", create=False) == ROOT / "my-runs" / "r1"
    monkeypatch.setenv("POSECORE_OUTPUTS", str(tmp_path / "elsewhere"))
    assert outputs_root() == tmp_path / "elsewhere"


# ----------------------------------------------------------------------------- Run: the one owner of the folder

RUN_FILES = (
    "params.yaml",
    "env.json",
    "log.jsonl",
    "metrics.json",
    "last.pt",
    "best.pt",
    "report.html",
    "reproduce.json",
)


def test_run_names_every_file_of_its_folder(outputs):
    run = Run("named")
    assert run.folder == outputs / "named" and not run.folder.exists()  # naming creates nothing
    assert [
        p.relative_to(run.folder).as_posix()
        for p in (
            run.params_path,
            run.env_path(),
            run.env_path(2),
            run.log_path,
            run.metrics_path,
            run.report_path,
            run.last_path,
            run.best_path,
            run.eval_dir,
            run.val_dir,
            run.logs_dir,
            run.notebooks_dir,
        )
    ] == [
        "params.yaml",
        "env.json",
        "env-node2.json",
        "log.jsonl",
        "metrics.json",
        "report.html",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "eval",
        "val",
        "logs",
        "notebooks",
    ]
    assert Run.at(run.folder).params_path == run.params_path and run_dir("named") == run.folder
    with pytest.raises(ValueError, match="plain folder name"):
        Run("../escape")
    with pytest.raises(ValueError, match=r"\('best', 'last'\)"):
        run.checkpoint_path("first")


def test_run_readers_never_write_and_say_what_is_missing(outputs):
    run = Run("empty")
    assert (run.log(), run.env(), run.metrics(), run.eval_metrics(required=False)) == ([], {}, {}, {})
    assert not run.exists() and not run.folder.exists()
    with pytest.raises(FileNotFoundError, match=r"params\.yaml does not exist: 'empty' is not a run"):
        run.params()
    with pytest.raises(FileNotFoundError, match=r"eval/metrics\.json does not exist: evaluate run 'empty'"):
        run.eval_metrics()
    with pytest.raises(FileNotFoundError, match=r"run 'empty' has no last checkpoint yet"):
        run.checkpoint("last")
    with pytest.raises(ValueError, match="needs run_name"):
        find_checkpoint("best", None)
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nope\.pt does not exist"):
        find_checkpoint("nope.pt", "empty")

    run.folder_made()
    save_params(load_params("demo"), run.params_path)
    run.best_path.parent.mkdir()
    run.best_path.write_bytes(b"weights")
    write_json(run.eval_dir / "metrics.json", {"AP": 0.5})
    assert run.exists() and run.params() == load_params("demo")
    assert run.checkpoint("best") == run.best_path == find_checkpoint("best", "empty")
    assert run.eval_metrics() == {"AP": 0.5}


def test_one_log_reader_skips_a_torn_line_anywhere_with_a_warning(outputs):
    run = Run("torn-reader")
    run.folder_made()
    line = '{{"type": "train", "epoch": 0, "step": {}}}\n'
    run.log_path.write_text(line.format(1) + '{"step": 2, "lo\n' + line.format(3) + '{"ste')
    with pytest.warns(UserWarning, match=r"log\.jsonl: skipped 2 unreadable line\(s\) \(line 2, 4\)"):
        assert [r["step"] for r in run.log()] == [1, 3]


def test_run_file_names_are_spelled_in_runs_only():
    """Every other module asks Run: a run-file name appears in no other module's code (strings
    outside docstrings, f-string parts included)."""
    spelled = {}
    for path in sorted((REPO_ROOT / "posecore").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for name in RUN_FILES:
                    if name in node.value:
                        spelled.setdefault(name, set()).add(path.relative_to(REPO_ROOT).as_posix())
    assert spelled == {name: {"posecore/runs.py"} for name in RUN_FILES}
