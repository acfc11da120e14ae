"""Training speed over a window of optimizer steps: images/s, the share of time spent waiting for
data, and the mean loss (the log records, the epoch line and a run's summary)."""

from __future__ import annotations

import math

import numpy as np


class StepMeter:
    """Step timings and losses over a window (log records) or a whole invocation (summary)."""

    def __init__(self) -> None:
        self.steps = self.images = 0
        self.wait = self.busy = 0.0
        self.losses: list[float] = []

    def add(self, images: int, wait: float, total: float, loss: float) -> None:
        """One optimizer step of `images` images (all devices) that took `total` seconds, `wait`
        of them waiting for batches."""
        self.steps += 1
        self.images += images
        self.wait += wait
        self.busy += total
        if math.isfinite(loss):
            self.losses.append(loss)

    def summary(self) -> dict[str, float]:
        return {
            "loss": float(np.mean(self.losses)) if self.losses else float("nan"),
            "images_per_s": self.images / self.busy if self.busy > 0 else 0.0,
            "data_wait": self.wait / self.busy if self.busy > 0 else 0.0,
        }
