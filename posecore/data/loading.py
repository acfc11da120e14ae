"""How many DataLoader workers a device needs: the default and the advice from a measured data wait."""

from __future__ import annotations

import math
import os

DATA_WAIT_WARNING = 0.05  # a larger share of step time waiting for batches gets the workers advice


def recommended_workers(devices_per_node: int = 1) -> int:
    """DataLoader workers per device: this machine's CPU cores per device, one left for training."""
    return max(1, (os.cpu_count() or 1) // devices_per_node - 1)


def workers_advice(
    wait_s: float, busy_s: float, steps: int, batch_size: int, workers: int, devices_per_node: int = 1
) -> str | None:
    """How many DataLoader workers per device would remove the data wait seen over `steps` steps
    (`wait_s` of `busy_s` seconds spent waiting for batches); None when the wait share is at most
    DATA_WAIT_WARNING.

    When loading is the bottleneck each of the `workers` processes makes a batch every
    `workers` steps (with workers 0 the training process makes it in the wait itself), so
    enough workers share that time to deliver one batch per compute time (step minus wait);
    one spare absorbs the jitter.
    """
    share = wait_s / busy_s if busy_s > 0 else 0.0
    if share <= DATA_WAIT_WARNING:
        return None
    step, compute = busy_s / steps, max((busy_s - wait_s) / steps, 1e-9)
    batch_seconds = workers * step if workers else wait_s / steps
    needed = math.ceil(batch_seconds / compute) + 1
    advice = (
        f"waiting for data took {share:.0%} of the step time with data.workers {workers}: one "
        f"worker makes {batch_size / batch_seconds:.0f} samples/s and a step uses "
        f"{batch_size / compute:.0f} samples/s per device; data.workers {needed} would remove "
        f"the wait"
    )
    cores = recommended_workers(devices_per_node)
    if needed > cores:
        advice += (
            f", more than the {cores} this machine's CPU cores allow per device: loading is "
            f"CPU-bound here (a machine with more cores per device, or fewer devices)"
        )
    return advice
