"""TensorBoard curves of a training run, written beside its log.jsonl: `tensorboard --logdir outputs`.

Tags: train/loss, train/lr, train/images_per_s, train/data_wait, train/skipped_steps (NaN/inf
steps skipped so far) at every log record; val/<metric> for each numeric validation metric and
val/predictions (the first train.tensorboard_images val images, ground truth green,
prediction red) at each validation.
The x axis is the global step, as in log.jsonl.

Only rank 0 writes. A resumed run opens a new event file whose first event purges the steps
after the resumed checkpoint (SummaryWriter's purge_step), so TensorBoard shows each step once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posecore import viz
from posecore.data import build_dataset
from posecore.files import finite_number
from posecore.params import Params
from posecore.scoring import person_errors

log = logging.getLogger(__name__)

# log.jsonl train-record key -> TensorBoard tag
TRAIN_TAGS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "images_per_s": "train/images_per_s",
    "data_wait": "train/data_wait",
    "skipped": "train/skipped_steps",
}
PREDICTIONS_TAG = "val/predictions"


class TensorBoardLog:
    """The run's TensorBoard event files; every method does nothing when not `enabled` (rank > 0)."""

    def __init__(self, folder: str | Path, params: Params, resumed_step: int, enabled: bool) -> None:
        """`resumed_step`: the global step of the checkpoint training continues from (0 for a new
        run); events after it, left by an earlier attempt, are purged."""
        self.folder, self.params = Path(folder), params
        self.writer = None
        self._val_dataset = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency (tensorboard), imported on use

            self.writer = SummaryWriter(str(self.folder), purge_step=resumed_step + 1, flush_secs=30)

    def train(self, record: dict[str, Any]) -> None:
        """A log.jsonl train record: {"step", "loss", "lr", "images_per_s", "data_wait", "skipped"}."""
        if self.writer is None:
            return
        for key, tag in TRAIN_TAGS.items():
            if finite_number(record.get(key)):
                self.writer.add_scalar(tag, record[key], record["step"])

    def validation(self, record: dict[str, Any], eval_dir: str | Path) -> None:
        """A log.jsonl val record ({"epoch", "step", <metrics>}) and a grid of the predictions that
        validation wrote to `eval_dir` (train.tensorboard_images images)."""
        if self.writer is None:
            return
        step = record["step"]
        for key, value in record.items():
            if key not in ("type", "epoch", "step") and finite_number(value):
                self.writer.add_scalar(f"val/{key}", value, step)
        if self.params.train.tensorboard_images > 0:
            try:
                self.writer.add_image(PREDICTIONS_TAG, self._prediction_grid(Path(eval_dir)), step, dataformats="HWC")
            except (OSError, ValueError, KeyError) as error:  # a missing picture must not stop training
                log.warning("no %s image at step %d: %s", PREDICTIONS_TAG, step, error)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _prediction_grid(self, eval_dir: Path) -> np.ndarray:
        """The first val images with everyone's ground truth and prediction, RGB uint8 [H, W, 3]."""
        if self._val_dataset is None:
            self._val_dataset = build_dataset(self.params, "val")
        dataset = self._val_dataset
        errors = person_errors(dataset, eval_dir, self.params.eval.pckh_thr)
        first_of_image: dict[Any, int] = {}
        for index, instance in enumerate(dataset.instances):
            first_of_image.setdefault(instance.image_id, index)
        shown = list(first_of_image.values())[: self.params.train.tensorboard_images]
        figure = viz.plot_gallery(
            [viz.person_view(dataset, errors, i) for i in shown], dataset.info, ncols=len(shown), size=2.5
        )
        png = np.frombuffer(viz.figure_png(figure, dpi=72), dtype=np.uint8)
        return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
