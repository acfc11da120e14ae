"""posecore.analyze on a run: the evaluation's results diagnosed and written into eval/, the Why
section's figures and tables (COCO-style and MPII), the pose browser's error filter and compare's
error breakdowns. The diagnosis itself is pinned against coco-analyze in tests/test_error_analysis.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation import make_mpii_root

import posecore
from posecore import workbook
from posecore.data import build_dataset, keypoint_ground_truth
from posecore.diagnosis import person_codes, read_analysis
from posecore.error_analysis import STAGES, analyze_coco
from posecore.files import read_json
from posecore.params import load_params
from posecore.runs import Run


@pytest.fixture
def oracle_run(coco_root, outputs):
    """The shared COCO val people scored by the oracle (encoded targets decoded: near-perfect
    poses with the heatmap grid's jitter) at a coarse 24x32 heatmap, as run "why"."""
    params = load_params(
        "fastpose",
        {"data.root": str(coco_root), "eval.oracle": True, "data.workers": 0, "data.heatmap_size": [24, 32]},
    )
    posecore.evaluate(params, None, run_name="why", verbose=False)
    return params


def test_analyze_diagnoses_the_runs_evaluation_and_writes_it(oracle_run):
    run = Run("why")
    analysis = posecore.analyze("why", checkpoint=None)
    assert read_json(run.eval_files.analysis) == read_analysis("why") and analysis["run"] == "why"
    assert analysis["split"] == "val" and analysis["checkpoint"] is None
    # the same numbers as the file-level diagnosis of the same files
    dataset = build_dataset(oracle_run, "val")
    direct = analyze_coco(keypoint_ground_truth(dataset.ann_file, "coco"), str(run.eval_files.results), dataset.info)
    assert direct["ap"] == analysis["ap"] and direct["errors"] == analysis["errors"]
    assert set(analysis["ap"]) == set(STAGES) and analysis["ap"]["false_neg"]["AP"] == 1.0
    # the coarse grid's rounding shows as jitter, nothing is swapped
    assert analysis["errors"]["jitter"] > 0 and analysis["errors"]["swap"] == 0


def test_the_why_section_keeps_its_figures_and_table(oracle_run):
    note = workbook.error_analysis("why")
    assert "diagnosed joint by joint" in note._repr_html_()
    workbook.why_figure("why")
    workbook.errors_per_joint_figure("why")
    table = workbook.why_table("why")
    run = Run("why")
    assert (run.figures_dir / "why_curves.png").is_file() and (run.figures_dir / "why_joints.png").is_file()
    assert [row[0] for row in table.rows][:2] == ["as predicted", "+ misses fixed"] and len(table.rows) == len(STAGES)
    assert table.rows[0][1] == pytest.approx(100 * read_analysis("why")["ap"]["baseline"]["AP"], abs=0.01)
    html = workbook.write_report("why").read_text()
    assert "<h2>Why the AP is what it is</h2>" in html and "Precision-recall at OKS 0.75" in html


def test_the_pose_browser_filters_by_error_type_and_rings_the_joints(oracle_run):
    posecore.analyze("why", checkpoint=None)
    browser = workbook.PoseBrowser(oracle_run, "why")
    assert browser.codes is not None and len(browser.codes) == len(browser)
    jittered = browser.order("worst first", "jitter")
    assert len(jittered) > 0 and all("j" in browser.codes[i] for i in jittered)
    assert len(browser.order("worst first", "swap")) == 0
    first = int(jittered[0])
    marks = browser.error_marks(first, ("jitter",))
    expected = [j for j, code in enumerate(browser.codes[first]) if code == "j"]
    np.testing.assert_allclose(marks["jitter"], browser.errors["pred"][first][expected, :2])
    figure = browser.figure(1, error="jitter")
    assert any(c.get_gid() == "marks" for ax in figure.axes for c in ax.collections)
    with pytest.raises(ValueError, match="rank must be 1..0"):
        browser.figure(1, error="swap")


def test_person_codes_match_people_by_image_and_box(oracle_run):
    dataset = build_dataset(oracle_run, "val")
    analysis = posecore.analyze("why", checkpoint=None)
    codes = person_codes(analysis, dataset)
    diagnosed = {record["gt_id"]: record["joints"] for record in analysis["detections"]}
    # every diagnosed person found exactly once among the dataset's people
    assert sorted(code for code in codes if code) == sorted(diagnosed.values())


def test_an_mpii_run_shows_its_pckh_curves_and_auc(mpii_root, tmp_path, outputs):
    root, _ = make_mpii_root(mpii_root, tmp_path)
    params = load_params("hourglass", {"data.root": str(root), "data.workers": 0, "eval.oracle": True})
    metrics = posecore.evaluate(params, None, run_name="why-mpii", verbose=False)
    curve = Run("why-mpii").eval_metrics()["pckh_curve"]
    assert len(curve["thresholds"]) == 51 and len(curve["per_joint"]) == 16
    # the AUC is the curve's normalized area: the oracle's curve reaches ~100 within a tenth of the head
    assert 90.0 < metrics["PCKh_AUC"] <= 100.0
    assert metrics["PCKh_AUC"] == pytest.approx(np.trapezoid(curve["mean"], curve["thresholds"]) / 0.5, rel=1e-9)
    assert "PCKh, not OKS" in workbook.error_analysis("why-mpii")._repr_html_()
    with pytest.raises(ValueError, match="needs COCO-style keypoints"):
        posecore.analyze("why-mpii", checkpoint=None)
    workbook.why_figure("why-mpii")
    table = workbook.why_table("why-mpii")
    assert (Run("why-mpii").figures_dir / "why_pckh.png").is_file()
    assert len(table.rows) == 17 and "AUC" in table.title


def test_compare_puts_error_breakdowns_side_by_side(oracle_run, coco_root):
    posecore.analyze("why", checkpoint=None)
    other = load_params(oracle_run, {"data.heatmap_size": [48, 64]})
    posecore.evaluate(other, None, run_name="why-fine", verbose=False)
    comparison = posecore.compare_runs(["why", "why-fine"])
    table = workbook.error_comparison("compare", comparison)
    assert table.columns == ["", "why"] and "why-fine" in table.title  # why-fine is not analysed yet
    posecore.analyze("why-fine", checkpoint=None)
    table = workbook.error_comparison("compare", posecore.compare_runs(["why", "why-fine"]))
    assert table.columns == ["", "why", "why-fine"]
    jitter = next(row for row in table.rows if row[0] == "jitter joints")
    assert jitter[1] > jitter[2]  # the finer heatmap grid jitters less
