"""Keypoint smoothing for video: the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) per
track and joint.

The One-Euro filter is a first-order low-pass filter whose cutoff frequency rises with the
signal's speed: a still joint is smoothed hard (no jitter), a moving one lightly (little lag).
For each scalar signal x sampled at times t (here: each joint's x and y of one track), with
dt = t - t_previous:

    alpha(f)  = 1 / (1 + 1 / (2 pi f dt))                  smoothing factor for cutoff f (Hz)
    dx        = (x - x_hat_previous) / dt                   speed, px/s
    dx_hat    = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_previous
    cutoff    = min_cutoff + beta * |dx_hat|
    x_hat     = alpha(cutoff) * x + (1 - alpha(cutoff)) * x_hat_previous

The first sample passes unchanged (x_hat = x, dx_hat = 0). `min_cutoff` (Hz) sets how much a
still joint is smoothed (lower: smoother), `beta` (1/px) how fast the cutoff opens with speed
(higher: less lag); `d_cutoff` (Hz) smooths the speed estimate (1 Hz as in the paper).

`OneEuroFilter` filters an array of signals at once (e.g. [K, 2]: every joint of one person).
`KeypointSmoother` keeps one per track id: `smoother.update(ids, keypoints, t)` each frame, in
order. A track's state is dropped ("reset") when its id has not been seen for more than
`max_gap` frames (the tracker has then lost it: its ids are never reused) or on `reset()`; one
that comes back sooner continues with the real time step. Times come from `timestamp` (seconds)
or, without one, from the frame count and `fps`. Joints whose value is not finite pass through
and leave their state as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_MIN_CUTOFF = 1.0  # Hz
DEFAULT_BETA = 0.0  # 1 / px
DEFAULT_D_CUTOFF = 1.0  # Hz, as in the paper


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff): the exponential smoothing factor of a
    first-order low-pass filter with that cutoff (Hz) at time step dt (s)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filters of an array of signals sampled together (see the module docstring)."""

    def __init__(
        self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA, d_cutoff: float = DEFAULT_D_CUTOFF
    ):
        for name, value, low in (("min_cutoff", min_cutoff, 0.0), ("d_cutoff", d_cutoff, 0.0), ("beta", beta, None)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or (low is not None and value <= low)
                or (low is None and value < 0)
            ):
                raise ValueError(
                    f"{name} must be a finite {'positive' if low is not None else 'non-negative'} number, got {value!r}"
                )
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes unchanged."""
        self.value: np.ndarray | None = None  # x_hat of the last sample
        self.speed: np.ndarray | None = None  # dx_hat of the last sample
        self.time: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        """The filtered values (float64, x's shape) of samples `x` taken at time `t` (seconds,
        increasing)."""
        x = np.asarray(x, dtype=np.float64)
        t = float(t)
        if self.value is None or self.value.shape != x.shape:
            self.value, self.speed, self.time = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.time
        if not dt > 0:
            raise ValueError(f"One-Euro filter: time must increase, got {t} after {self.time}")
        finite = np.isfinite(x)
        speed = np.where(finite, (x - self.value) / dt, 0.0)
        speed = self.speed + smoothing_factor(self.d_cutoff, dt) * (speed - self.speed)
        alpha = smoothing_factor(self.min_cutoff + self.beta * np.abs(speed), dt)
        value = self.value + alpha * (np.where(finite, x, self.value) - self.value)
        self.value = np.where(finite, value, self.value)
        self.speed = np.where(finite, speed, self.speed)
        self.time = t
        return np.where(finite, self.value, x)


class KeypointSmoother:
    """One-Euro filters of each track's keypoints (see the module docstring).

    fps: frames per second, for frames given without a timestamp. max_gap: frames a track may be
    missing and keep its state.
    """

    def __init__(
        self,
        min_cutoff: float = DEFAULT_MIN_CUTOFF,
        beta: float = DEFAULT_BETA,
        d_cutoff: float = DEFAULT_D_CUTOFF,
        fps: float = 25.0,
        max_gap: int = 10,
    ):
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0:
            raise ValueError(f"max_gap must be a non-negative integer, got {max_gap!r}")
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # checks the parameters
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.fps, self.max_gap = float(fps), max_gap
        self.filters: dict[int, OneEuroFilter] = {}
        self.last_seen: dict[int, int] = {}
        self.frame = -1

    def reset(self, track_id: int | None = None) -> None:
        """Forget one track (or, with None, every track)."""
        if track_id is None:
            self.filters.clear()
            self.last_seen.clear()
        else:
            self.filters.pop(int(track_id), None)
            self.last_seen.pop(int(track_id), None)

    def update(self, ids: Sequence[int], keypoints, timestamp: float | None = None) -> np.ndarray:
        """One frame's people: track ids [N] and keypoints [N, K, 2+] (x, y, then e.g. the score)
        -> float64 [N, K, 2+], x and y smoothed, the other columns as given. Call once per frame,
        in order, also for frames without people."""
        self.frame += 1
        t = float(timestamp) if timestamp is not None else self.frame / self.fps
        keypoints = np.asarray(keypoints, dtype=np.float64)
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if len(ids) != len(keypoints):
            raise ValueError(f"{len(ids)} track ids for {len(keypoints)} people")
        if len(set(ids)) != len(ids):
            raise ValueError(f"track ids repeat within a frame: {ids}")
        for track_id, seen in list(self.last_seen.items()):  # lost tracks start afresh
            if self.frame - seen > self.max_gap:
                self.reset(track_id)
        smoothed = keypoints.copy()
        for row, track_id in enumerate(ids):
            smoother = self.filters.setdefault(track_id, OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff))
            smoothed[row, :, :2] = smoother(keypoints[row, :, :2], t)
            self.last_seen[track_id] = self.frame
        return smoothed


def mean_acceleration(tracks: dict[int, np.ndarray]) -> float:
    """Mean keypoint acceleration, px/frame^2: the norm of the second difference of each joint's
    position over consecutive frames of each track ({id: [T, K, 2]}, frames consecutive),
    averaged over every joint and frame where it is defined."""
    values = [
        np.linalg.norm(np.diff(np.asarray(xy, np.float64)[..., :2], n=2, axis=0), axis=-1).ravel()
        for xy in tracks.values()
        if len(xy) >= 3
    ]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def result_tracks(results: Sequence[dict], key: str = "keypoints") -> dict[tuple[int, int], np.ndarray]:
    """posecore.infer's video results -> {(track id, first frame): [T, K, 2]}: each track's `key`
    keypoints (x, y) over each run of consecutive frames (the image_id "<frame>.jpg"), the form
    `mean_acceleration` takes."""
    by_track: dict[int, dict[int, np.ndarray]] = {}
    for row in results:
        frame = int(str(row["image_id"]).split(".")[0])
        by_track.setdefault(int(row["idx"]), {})[frame] = np.reshape(row[key], (-1, 3))[:, :2]
    runs = {}
    for track, frames in by_track.items():
        ordered = sorted(frames)
        starts = [frame for n, frame in enumerate(ordered) if n == 0 or ordered[n - 1] != frame - 1]
        for start in starts:
            end = start
            while end + 1 in frames:
                end += 1
            runs[(track, start)] = np.stack([frames[f] for f in range(start, end + 1)])
    return runs
