"""The workbook notebooks: stored clean and thin, and each one runs under papermill on tiny data.

The executed chain (prepare_data -> train -> eval -> visualize -> export, and infer) shares one tiny synthetic
COCO-layout dataset and one run folder under a temporary POSECORE_OUTPUTS. The train notebook runs
through the papermill CLI: its exit status and the executed notebook are both checked, since a
kernel that dies leaves no error output in the notebook.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from helpers import processes_with_env

import posecore
from posecore import data, demo
from posecore.files import REPO_ROOT, read_json
from posecore.runs import Run

pytestmark = pytest.mark.slow

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("prepare_data", "train", "eval", "visualize", "export", "compare", "infer", "reproduce")
COMMON = {"model", "params", "run_name", "data_root", "overrides"}
OWN = {
    "train": {"npus", "epochs"},
    "eval": {"npus", "epochs", "checkpoint"},
    "visualize": {"checkpoint"},
    "export": {"checkpoint"},
    "infer": {"checkpoint", "source", "detector"},
}
# compare.ipynb reads finished runs, so it has no params of its own (tests/test_experiments.py runs it);
# reproduce.ipynb re-runs one from its folder (tests/test_reproduce.py runs it)
PARAMETERS = {name: COMMON | OWN.get(name, set()) for name in NOTEBOOKS} | {
    "compare": {"runs", "metric", "run_name"},
    "reproduce": {"run_name", "as_run", "allow_drift"},
}
RUN = "nbtest"
# FastPose-18 on 64x64 crops (FastPose needs sides divisible by 32): a few seconds per notebook on 2 cores
TINY = {
    "model.depth": 18,
    "data.input_size": [64, 64],
    "data.heatmap_size": [16, 16],
    "data.workers": 0,
    "train.batch_size": 8,
    "train.log_every": 1,
    "train.val_every": 1,
    "train.warmup_iters": 0,
    "eval.batch_size": 16,
}


def _load(name: str):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    assert path.is_file(), f"{path} is missing"
    return nbformat.read(path, as_version=4)


def _assigned_names(source: str) -> dict[str, object]:
    tree = ast.parse(source)
    return {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


# --- static checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean_with_one_parameters_cell_first(name):
    nb = _load(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    tagged = [cell for cell in nb.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged 'parameters', want exactly 1"
    assert tagged[0] is code[0], f"{name}: the parameters cell must be the first code cell"
    names = _assigned_names(tagged[0].source)  # literal values only: papermill -p / -y can set them
    missing = PARAMETERS[name] - set(names)
    assert not missing, f"{name}: parameters cell lacks {sorted(missing)}"
    if "model" in PARAMETERS[name]:
        assert names["model"] in ("fastpose", "hourglass") and isinstance(names["overrides"], dict)
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: stored outputs in {cell.source[:60]!r}"
        assert not re.search(r"^\s*(async\s+)?def\s|\blambda\b|^\s*class\s", cell.source, re.M), (
            f"{name}: logic belongs in posecore, not in a cell: {cell.source[:80]!r}"
        )


# --- execution -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    """A tiny synthetic dataset and an outputs root for this module's notebook runs."""
    root = tmp_path_factory.mktemp("workbook")
    previous = os.environ.get("POSECORE_OUTPUTS")
    os.environ["POSECORE_OUTPUTS"] = str(root / "outputs")  # kernels inherit it
    yield {"root": root, "data": root / "synthetic_coco", "outputs": root / "outputs"}
    if previous is None:
        del os.environ["POSECORE_OUTPUTS"]
    else:
        os.environ["POSECORE_OUTPUTS"] = previous


def _common(workbook, **extra):
    return {
        "model": "fastpose",
        "params": "demo",
        "run_name": RUN,
        "data_root": str(workbook["data"]),
        "overrides": TINY,
        **extra,
    }


def _outputs_of(path: Path, mime: str) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(mime in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def _output_text(path: Path) -> str:
    return json.dumps([c.outputs for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"])


def run_cli(source: Path, output: Path, parameters: dict) -> subprocess.CompletedProcess:
    """papermill's CLI on a notebook; fails on a non-zero exit OR an error in the output notebook."""
    name = source.name
    command = [
        sys.executable,
        "-m",
        "papermill",
        str(source),
        str(output),
        "--no-progress-bar",
        "--kernel",
        "python3",
        "-y",
        json.dumps(parameters),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    errors = []
    if output.is_file():
        nb = nbformat.read(output, as_version=4)
        errors = [
            f"{o.ename}: {o.evalue}"
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "error"
        ]
    if done.returncode != 0 or errors:
        died = "" if errors else " (no error in the notebook: the kernel died?)"
        pytest.fail(f"papermill {name} exited {done.returncode}{died}; cell errors: {errors}\n{done.stderr[-3000:]}")
    return done


def _run(name: str, workbook, **parameters) -> Path:
    try:
        return demo.run_notebook(name, RUN, parameters, stream=False)
    except demo.NotebookFailed as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def prepared(workbook):
    synthetic = {"num_train": 12, "num_val": 5, "image_size": 128}
    return _run("prepare_data", workbook, **_common(workbook, synthetic=synthetic))


@pytest.fixture(scope="module")
def trained(workbook, prepared):
    """train.ipynb under the papermill command line with two workers (what `-p npus 8` runs)."""
    output = workbook["outputs"] / RUN / "notebooks" / "train.ipynb"
    run_cli(NOTEBOOK_DIR / "train.ipynb", output, _common(workbook, npus=2, epochs=1))
    return output


@pytest.fixture(scope="module")
def evaluated(workbook, trained):
    return _run("eval", workbook, **_common(workbook, npus=1, checkpoint="best"))


def test_prepare_data_builds_data_and_shows_statistics(workbook, prepared):
    assert (workbook["data"] / "annotations" / "person_keypoints_val2017.json").is_file()
    figures = workbook["outputs"] / RUN / "figures"
    assert (figures / "data_statistics.png").is_file() and (figures / "data_examples.png").is_file()
    assert _outputs_of(prepared, "image/png") >= 2
    checks = read_json(workbook["outputs"] / RUN / "tables" / "data_annotation_checks.json")
    assert [row[0] for row in checks["rows"]] == ["train", "val"] and checks["rows"][1][3] == 0
    assert not _long_plain_outputs(prepared) and "Params demo" in _output_text(prepared)


def test_prepare_data_names_what_is_missing_and_where_to_get_it(workbook, tmp_path):
    incomplete = tmp_path / "coco"
    (incomplete / "annotations").mkdir(parents=True)
    output = _run(
        "prepare_data", workbook, **{**_common(workbook), "data_root": str(incomplete), "run_name": "nbtest-layout"}
    )
    text = _output_text(output)
    assert "person_keypoints_val2017.json" in text and "https://cocodataset.org/#download" in text
    assert not (workbook["outputs"] / "nbtest-layout" / "figures" / "data_statistics.png").exists()


def test_train_notebook_writes_checkpoints_and_log(workbook, trained):
    folder = workbook["outputs"] / RUN
    assert (folder / "checkpoints" / "best.pt").is_file()
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert any(r.get("type") == "train" for r in records) and any(r.get("type") == "val" for r in records)


def test_train_notebook_runs_two_workers_and_shows_rank_0(workbook, trained):
    folder = workbook["outputs"] / RUN
    assert read_json(folder / "env.json")["world_size"] == 2
    assert torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    text = _output_text(trained)  # rank 0's progress and log lines reached the notebook
    assert "epoch 0: loss" in text and "img/s" in text
    if sys.platform.startswith("linux"):
        assert not processes_with_env(str(workbook["outputs"]))  # no worker outlived the kernel


def _long_plain_outputs(path: Path) -> list[str]:
    """Outputs that are plain text only (streams, or a result with no HTML/image) and longer than
    8 lines or 600 characters: what a reader of the executed notebook would have to wade through."""
    long = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if out.output_type == "stream":
                text = out.text
            elif set(data) == {"text/plain"}:
                text = data["text/plain"]
            else:
                continue
            if text.count("\n") >= 8 or len(text) > 600:
                long.append(f"{cell.source[:60]!r}: {text[:200]!r}")
    return long


def _reads_as_a_record(path: Path) -> str:
    """An executed notebook of a run: no long plain-text outputs, a link to the run's report last."""
    assert not _long_plain_outputs(path)
    text = _output_text(path)
    assert 'href=\\"../report.html\\"' in text and "report.html of run" in text
    return text


def test_train_notebook_reads_as_the_record_of_the_run(workbook, trained):
    text = _reads_as_a_record(trained)
    assert "ModelParams(" not in text and "Params demo" in text and f"Run {RUN}" in text
    assert _outputs_of(trained, "image/png") >= 3  # the LR schedule, loss curves, the validation history


def test_train_notebook_without_validation_says_so_instead_of_empty_figures(workbook, prepared):
    """What train.ipynb's validation cells show for a run that does not validate (the cells call
    these with the notebook's run_name and resolved params)."""
    from posecore import workbook as sections

    params = posecore.load_params(
        "demo", {**TINY, "data.root": str(workbook["data"]), "train.val_every": 0, "train.epochs": 1}
    )
    posecore.train(params, run_name="nbtest-noval")
    assert sections.training_curves("nbtest-noval") is not None  # the loss curves are there
    shown = (sections.validation_history("nbtest-noval", params), sections.validation_table("nbtest-noval", params))
    for note in shown:
        assert "No validation yet" in note._repr_html_() and "train.val_every is 0" in note._repr_html_()
    assert not (Run("nbtest-noval").figures_dir / "train_validation.png").exists()
    assert not (Run("nbtest-noval").tables_dir / "train_validation.json").exists()


def test_eval_notebook_scores_and_writes_the_report(workbook, evaluated):
    folder = workbook["outputs"] / RUN
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0
    for name in ("eval_per_joint", "eval_thresholds", "eval_worst", "why_curves", "why_joints"):
        assert (folder / "figures" / f"{name}.png").is_file(), name
    assert Run(RUN).eval_files.analysis.is_file()  # the Why section diagnosed the evaluation
    report = (folder / "report.html").read_text()
    assert "<h2>Why the AP is what it is</h2>" in report and "AP gained by fixing each error type" in report
    for seed in ("72.24", "71.61", "89.0189", "88.9383", "gt mAP", "flip test"):
        assert seed in report, seed
    assert report.count("data:image/png;base64") >= 4
    assert "posecore.evaluate" not in report  # code hidden
    assert _outputs_of(evaluated, "image/png") >= 3
    _reads_as_a_record(evaluated)  # the scorer's printed summary is a table here
    assert ["AP", metrics["AP"]] in read_json(folder / "tables" / "eval_metrics.json")["rows"]


def test_visualize_notebook_renders_static_figures_and_the_widget(workbook, evaluated):
    output = _run("visualize", workbook, **_common(workbook, checkpoint="best"))
    assert _outputs_of(output, "image/png") >= 2
    assert _outputs_of(output, "application/vnd.jupyter.widget-view+json") == 1
    assert (workbook["outputs"] / RUN / "figures" / "viz_heatmap.png").is_file()
    _reads_as_a_record(output)


def test_export_notebook_writes_the_model_and_tables(workbook, trained):
    parameters = _common(
        workbook, checkpoint="best", latency_batches=[1], latency_repeats=2, precisions=["fp32", "int8"]
    )
    output = _run("export", workbook, **parameters)
    folder = workbook["outputs"] / RUN
    assert Run(RUN).onnx_path().is_file() and (folder / "figures" / "export_example.png").is_file()
    text = _reads_as_a_record(output)
    assert "onnxruntime_ms" in text and "max abs diff" in text
    # each precision scored on the val set: export.json and the table
    scores = read_json(Run(RUN).export_scores_path)
    assert list(scores) == ["fp32", "int8"] and Run(RUN).onnx_path("int8").is_file()
    assert all("AP" in entry and "delta" in entry and "latency_ms" in entry for entry in scores.values())
    assert "Each export scored" in text and "Each export scored" in (folder / "report.html").read_text()


def test_infer_notebook_writes_what_the_api_writes(workbook, trained, tmp_path):
    clip = data.make_synthetic_video(tmp_path, num_frames=8, size=(320, 240))
    output = _run(
        "infer",
        workbook,
        **_common(
            workbook, checkpoint="best", source=str(clip["video"]), detector=str(clip["detections"]), frames_shown=2
        ),
    )
    folder = workbook["outputs"] / RUN / "infer" / "walk"
    assert (folder / "walk.mp4").is_file() and (folder / "summary.json").is_file()
    params = posecore.load_params("demo", {**TINY, "data.root": str(workbook["data"])})
    posecore.infer(
        params,
        "best",
        clip["video"],
        clip["detections"],
        out_dir=tmp_path / "api",
        run_name=RUN,
        draw=False,
        progress=False,
    )
    assert json.loads((tmp_path / "api" / "results.json").read_text()) == json.loads(
        (folder / "results.json").read_text()
    )
    for name in ("infer_frames", "infer_trajectories"):
        assert (workbook["outputs"] / RUN / "figures" / f"{name}.png").is_file(), name
    assert _outputs_of(output, "image/png") >= 2 and "end-to-end frames/s" in _reads_as_a_record(output)


def test_failing_cell_stops_the_demo_with_its_error(workbook, monkeypatch, capsys):
    """A notebook error reaches the demo's exit status and shows the cell's exception."""
    bad = _common(workbook, checkpoint="no-such-checkpoint.pt", run_name="nbtest-fail")
    monkeypatch.setattr(demo, "demo_steps", lambda run_name, params: [("export", bad)])
    assert demo.main(["--run", "nbtest-fail"]) == 1
    err = capsys.readouterr().err
    assert "export.ipynb failed in cell" in err and "FileNotFoundError" in err and "no-such-checkpoint.pt" in err


def test_dead_kernel_is_a_failure_even_without_an_error_cell(tmp_path):
    """papermill's exit status catches what the output notebook cannot say: the kernel died."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os\nos._exit(9)"),
    ]
    source = tmp_path / "dies.ipynb"
    nbformat.write(nb, source)
    output = tmp_path / "out.ipynb"
    # run_cli says "kernel died" only for a non-zero exit with no error output in the notebook
    with pytest.raises(pytest.fail.Exception, match="kernel died"):
        run_cli(source, output, {})
    executed = nbformat.read(output, as_version=4)
    assert not any(o.output_type == "error" for c in executed.cells for o in c.get("outputs", []))


# --- a run taken by name: the notebooks after training read its params, keypoint set and codec ------

BY_NAME = "nbtest-mpii"
# a run unlike the notebooks' defaults (fastpose on COCO): SimpleBaseline-18 on synthetic MPII
# (16 joints, PCKh) at 64x64, one epoch: the smallest model that takes every notebook's MPII path
# (Hourglass-52's own export and checkpoints are tested in test_export / test_checkpoints)
BY_NAME_TINY = {
    "model.name": "simplebaseline",
    "model.depth": 18,
    "data.input_size": [64, 64],
    "data.heatmap_size": [16, 16],
    "data.workers": 0,
    "train.batch_size": 2,
    "train.global_batch": 0,
    "train.epochs": 1,
    "train.val_every": 0,
    "train.warmup_iters": 0,
    "eval.batch_size": 8,
}


@pytest.fixture(scope="module")
def notebooks_by_name(workbook):
    """An MPII run trained by name, then eval and export given only
    `-p run_name R -p checkpoint last` (export: one latency repeat): {name: executed notebook}."""
    root = data.make_synthetic(workbook["root"] / "synthetic_mpii", "mpii", num_train=2, num_val=1, image_size=128)
    posecore.train(posecore.load_params("hourglass", {**BY_NAME_TINY, "data.root": str(root)}), run_name=BY_NAME)
    by_name = {"run_name": BY_NAME, "checkpoint": "last"}
    quick = {"latency_batches": [1], "latency_repeats": 1}
    return {
        name: _run_as(name, BY_NAME, {**by_name, **(quick if name == "export" else {})})
        for name in ("eval", "export")  # visualize reads a run the same way (workbook.run_params)
    }


def _run_as(name: str, run_name: str, parameters: dict) -> Path:
    try:
        return demo.run_notebook(name, run_name, parameters, stream=False)
    except demo.NotebookFailed as error:
        pytest.fail(str(error))


def test_notebooks_after_training_take_the_run_by_name(workbook, notebooks_by_name):
    from posecore.keypoints import MPII
    from posecore.onnx_metadata import read_metadata

    folder = workbook["outputs"] / BY_NAME
    metrics = read_json(folder / "eval" / "metrics.json")
    assert "PCKh" in metrics and "AP" not in metrics
    assert metrics["settings"]["model"] == "simplebaseline" and metrics["settings"]["checkpoint"].endswith("last.pt")
    metadata = read_metadata(Run(BY_NAME).onnx_path())
    assert metadata["model_name"] == "simplebaseline" and metadata["dataset"] == "mpii"
    assert metadata["joint_names"] == list(MPII.joint_names) and metadata["checkpoint"] == "last.pt"
    assert "PCKh" in _output_text(notebooks_by_name["eval"])


def test_the_run_and_its_export_predict_the_same_keypoints(workbook, notebooks_by_name):
    from posecore.predictor import Predictor

    run_model = Predictor.from_run(BY_NAME, "last", device="cpu")
    exported = Predictor.from_onnx(Run(BY_NAME).onnx_path())
    dataset = data.build_dataset(run_model.params, "val")
    first = dataset.instances[0]
    people = [inst for inst in dataset.instances if inst.image_id == first.image_id]
    boxes = np.array([[*inst.joints.min(0), *inst.joints.max(0)] for inst in people])  # MPII has no boxes
    image = data.read_image(first.image_path)
    mine, theirs = run_model(image, boxes), exported(image, boxes)
    assert mine.keypoints.shape == (len(boxes), 16, 2)
    assert np.median(np.abs(mine.keypoints - theirs.keypoints)) < 1e-3


def test_every_notebook_of_the_chain_defaults_to_the_same_run():
    """Run in order with their defaults, the notebooks find each other's run."""
    defaults = {
        name: _assigned_names(next(c for c in _load(name).cells if c.cell_type == "code").source)["run_name"]
        for name in NOTEBOOKS
        if name != "compare"
    }  # compare keeps a comparison of several runs
    assert len(set(defaults.values())) == 1 and None not in defaults.values(), defaults


def test_run_params_are_the_runs_own_and_notebook_params_without_a_run(outputs, tmp_path):
    from posecore import workbook
    from posecore.params import save_params
    from posecore.runs import Run

    fresh = workbook.run_params("no-such-run", "fastpose", "demo", None, {"eval.flip_test": False})
    assert fresh == posecore.load_params("demo", {"eval.flip_test": False})
    trained = posecore.load_params("hourglass", {"data.input_size": [128, 128], "data.heatmap_size": [32, 32]})
    run = Run("hourglass-run")
    run.folder_made()
    save_params(trained, run.params_path)
    # the notebooks' default model (fastpose) does not override what the run was trained as
    got = workbook.run_params("hourglass-run", "fastpose", None, str(tmp_path), {"eval.flip_test": False})
    assert got.model == trained.model and got.data.dataset == "mpii" and got.data.input_size == [128, 128]
    assert got.data.root == str(tmp_path) and got.eval.flip_test is False
    with pytest.warns(UserWarning, match="params 'fastpose_coco' is not used"):
        assert workbook.run_params("hourglass-run", "fastpose", "fastpose_coco").model == trained.model


def test_trajectories_default_to_a_joint_the_model_has(tmp_path):
    from posecore import workbook
    from posecore.keypoints import MPII

    results = tmp_path / "results.json"
    rows = [
        {"image_id": f"{frame}.jpg", "idx": 1, "keypoints": [10.0 + frame, 20.0, 0.9] * MPII.num_joints}
        for frame in range(3)
    ]
    results.write_text(json.dumps(rows))
    summary = {"joint_names": list(MPII.joint_names), "results": str(results)}
    figure = workbook.infer_trajectories(summary)  # MPII has no nose: head_top
    assert any("head_top" in ax.get_title() for ax in figure.axes)
    with pytest.raises(ValueError, match="'nose' is not one of the model's joints"):
        workbook.infer_trajectories(summary, "nose")
