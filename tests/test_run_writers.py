"""Everything written into a run folder holds its writer lock: the notebooks' tables and figures,
report.html and inference's outputs are refused, like a second training, while another process
writes the run; nothing of theirs is written then."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import lock_holder, stand_in_pose_onnx
from matplotlib.figure import Figure

from posecore import workbook
from posecore.errors import RunLockedError
from posecore.inference import infer
from posecore.runs import run_dir


def test_notebook_records_and_inference_wait_for_the_run_writer(outputs, tmp_path):
    model = stand_in_pose_onnx(tmp_path / "pose.onnx")
    image = tmp_path / "street.jpg"
    cv2.imwrite(str(image), np.full((64, 48, 3), 128, np.uint8))
    table = workbook.Table(["joint", "AP"], [["nose", 0.5]], title="t")
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    folder = run_dir("busy")
    holder = lock_holder(folder)
    try:
        refused = rf"run 'busy' .* is already being written by training in process {holder.pid}"
        with pytest.raises(RunLockedError, match=refused):
            workbook.keep("busy", "eval_results", table)
        with pytest.raises(RunLockedError, match=refused):
            workbook.keep("busy", "eval_per_joint", figure)
        with pytest.raises(RunLockedError, match=refused):
            workbook.write_report("busy")
        with pytest.raises(RunLockedError, match=refused):
            infer(None, model, image, run_name="busy", progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == [".writer.lock"]  # nothing else written
    workbook.keep("busy", "eval_results", table)
    workbook.keep("busy", "eval_per_joint", figure)
    assert (folder / "tables" / "eval_results.json").is_file()
    assert (folder / "figures" / "eval_per_joint.png").is_file()
    assert workbook.write_report("busy").is_file()
