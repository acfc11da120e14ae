"""train.ipynb as the record of a run: params table, run summary, notes instead of empty figures,
a link to report.html, and one progress bar fed by rank 0 when several workers train."""

from __future__ import annotations

import io
import json
import sys

import pytest
from helpers import progress_worker, tiny_params, tiny_synthetic

import posecore
from posecore import distributed, workbook
from posecore.params import load_params
from posecore.progress import PROGRESS_ENV, FileProgress, ProgressMirror, progress_bar, read_progress


def test_params_table_names_overrides_and_what_the_seed_says():
    resolved = load_params("demo", {"train.lr": 5e-4})
    table = workbook.params_table(resolved)
    rows = {(section, key): row for row in table.rows for section, key in [row[:2]]}
    lr = rows[("train", "lr")]
    demo_lr = load_params("demo").train.lr
    assert lr[2] == "0.0005" and lr[3] == str(demo_lr)  # the value, and the file's where overridden
    assert table.rows.index(lr) in table.highlight
    depth = rows[("model", "depth")]  # demo differs from the seed's SE-ResNet-50
    assert depth[2] == "18" and depth[4] == "50" and depth[3] == ""
    assert table.columns[3] == "demo.yaml" and table.columns[4] == "seed (fastpose_coco.yaml)"
    # keys equal everywhere and not headline ones are left to params.yaml
    assert ("eval", "oks_nms") not in rows and "params.yaml" in table.note
    assert len(table.to_html()) > 500 and len(repr(table)) < 10_000


def test_params_table_of_the_seed_itself_has_no_seed_column_values():
    table = workbook.params_table(load_params("fastpose"))
    assert all(row[3] == "" and row[4] == "" for row in table.rows) and not table.highlight


def test_note_is_one_line_in_both_renderings():
    note = workbook.Note("No validation yet (train.val_every is 5).")
    assert "\n" not in repr(note) and "<em>" in note._repr_html_()


def test_report_link_is_relative_to_the_notebook(tmp_path, monkeypatch):
    report = tmp_path / "outputs" / "r1" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    link = workbook.report_link(report)  # headless: the executed copy is kept in <run>/notebooks/
    assert link.href == "../report.html" and 'href="../report.html"' in link._repr_html_()
    # JupyterLab names the notebook; the link follows it, wherever it is
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/train.ipynb")
    assert workbook.report_link(report).href == "../outputs/r1/report.html"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One epoch of tiny training that never validates (train.val_every 0)."""
    folder = tmp_path_factory.mktemp("record")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(folder / "outputs"))
        params = tiny_params(tiny_synthetic(folder), **{"train.epochs": 1})
        result = posecore.train(params, run_name="record")
        yield {"params": params, "result": result, "outputs": folder / "outputs"}


def test_run_summary_and_no_validation_notes(short_run, monkeypatch):
    monkeypatch.setenv("POSECORE_OUTPUTS", str(short_run["outputs"]))
    summary = workbook.run_summary(short_run["result"])
    values = dict((row[0], row[1]) for row in summary.rows)
    assert values["run"] == "record" and values["epochs"] == "1 of 1"
    assert values["checkpoints"] == "checkpoints/last.pt"  # relative to the run, no absolute path
    assert values["best AP"] == "no validation yet" and "world size 1" in values["devices"]
    assert (short_run["outputs"] / "record" / "tables" / "train_summary.json").is_file()
    history = workbook.validation_history("record", short_run["params"])
    table = workbook.validation_table("record", short_run["params"])
    assert isinstance(history, workbook.Note) and isinstance(table, workbook.Note)
    assert "val_every is 0" in history.text
    assert not (short_run["outputs"] / "record" / "figures" / "train_validation.png").exists()


def test_file_progress_is_mirrored_into_one_bar(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    mirror = ProgressMirror(path)
    mirror.start()
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    bar = progress_bar(5, 0, "epoch 3", enabled=True, images_per_step=16)
    assert isinstance(bar, FileProgress)
    for _ in range(5):
        bar.update(1)
        bar.set_postfix(loss="0.125", lr="0.001")
    bar.close()
    mirror.stop()
    state = read_progress(path)
    assert state["n"] == 5 and state["total"] == 5 and state["closed"]
    shown = stream.getvalue()
    assert "epoch 3" in shown and "5/5" in shown and "loss=0.125" in shown
    # the other ranks draw nothing
    assert type(progress_bar(5, 0, "epoch 3", enabled=False, images_per_step=16)).__name__ == "_Bar"


def test_two_workers_show_one_bar_in_the_launching_process(tmp_path, capsys):
    params = load_params("demo")
    steps = distributed.launch(progress_worker, (7,), 2, params, log_dir=tmp_path / "logs")
    assert steps == 7
    err = capsys.readouterr().err
    assert "epoch 0" in err and "7/7" in err and "loss=" in err
    # rank 0 drew no bar into its stderr log (which the launcher copies here as plain lines)
    worker_logs = [p.read_text() for p in (tmp_path / "logs").rglob("stderr.log")]
    assert worker_logs and not any("epoch 0" in text for text in worker_logs)
    assert json.loads((tmp_path / "logs" / "progress.json").read_text())["n"] == 7
