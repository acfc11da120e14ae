"""benchmarks/device_suite.py: the accelerator check's --quick CPU version fills its table, and the
full plan's params and data resolve (so the GPU run does not fail on its first row)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from helpers import tiny_synthetic

from posecore import data
from posecore.files import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import device_suite  # noqa: E402


def test_quick_suite_prints_and_records_its_table(tmp_path):
    env = {**os.environ, "POSECORE_OUTPUTS": str(tmp_path / "outputs"), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "benchmarks/device_suite.py", "--quick", "--out", str(tmp_path)]
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (report,) = tmp_path.glob("device_suite-cpu-quick-*.json")
    recorded = json.loads(report.read_text())
    assert recorded["device"] == "cpu" and recorded["quick"] and recorded["seconds"] > 0
    rows = recorded["rows"]
    assert [(r["section"], r["amp"], r["channels_last"], r["compile"], r["batch"]) for r in rows] == [
        ("train step", "off", False, False, 2),
        ("train step", "bf16", True, False, 2),
        ("train step", "bf16", True, False, 4),
        ("train step", "bf16", True, True, 2),
        ("pipeline", "off", False, False, 2),
        ("eval", "off", False, False, 64),
    ]
    measured = [r for r in rows if not r["compile"]]
    assert all(r["images_per_s"] > 0 and r["step_ms"] > 0 for r in measured)
    assert rows[3]["images_per_s"] is None and "left out of --quick" in rows[3]["note"]
    pipeline, evaluation = rows[4], rows[5]
    assert 0 <= pipeline["data_wait"] < 1
    assert re.fullmatch(r"data\.workers \d+, 3 steps measured; \d+% of the random-tensor rate", pipeline["note"])
    people = int(re.search(r"(\d+) people, flip test", evaluation["note"]).group(1))
    assert people >= device_suite.QUICK.eval_people
    # one table: printed, and the markdown beside the JSON holds every row
    markdown = report.with_suffix(".md").read_text()
    assert markdown.count("| train step | FastPose-18 |") == 4 and "| pipeline |" in markdown
    assert "images/s" in completed.stdout and f"written: {report}" in completed.stdout


def test_full_plan_params_and_repeated_data_resolve(tmp_path):
    source = tiny_synthetic(tmp_path / "source", num_train=3)
    root = device_suite.repeated_coco(source, tmp_path / "repeated", {"train": 40, "val": 5})
    for model in device_suite.FULL.models:
        params = device_suite.params_for(model, device_suite.FULL, root)
        width, height = model.input_size
        assert params.model.name == model.name and params.model.num_joints == 17
        assert params.data.input_size == [width, height]
        assert params.data.heatmap_size == [width // 4, height // 4]
        assert params.train.batch_size == 32
        train, val = data.build_dataset(params, "train"), data.build_dataset(params, "val")
        assert len(train) >= 40 and len(val) >= 5
        # every repeated image is a new file name for the same JPEG
        assert len({item.image_path for item in train.instances}) > 3
