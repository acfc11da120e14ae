"""The One-Euro keypoint filter: still points stay, jitter falls, steps are followed with bounded
lag, lost tracks start afresh, and the vectorized filter equals a scalar textbook one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posecore.smoothing import KeypointSmoother, OneEuroFilter, mean_acceleration

FPS = 30.0


class ScalarOneEuro:
    """Casiez et al. 2012 as written in the paper, one scalar signal at a time."""

    def __init__(self, min_cutoff, beta, d_cutoff=1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_prev = self.dx_prev = self.t_prev = None

    @staticmethod
    def alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x, t):
        if self.x_prev is None:
            self.x_prev, self.dx_prev, self.t_prev = x, 0.0, t
            return x
        dt = t - self.t_prev
        a_d = self.alpha(self.d_cutoff, dt)
        dx_hat = a_d * ((x - self.x_prev) / dt) + (1 - a_d) * self.dx_prev
        a = self.alpha(self.min_cutoff + self.beta * abs(dx_hat), dt)
        x_hat = a * x + (1 - a) * self.x_prev
        self.x_prev, self.dx_prev, self.t_prev = x_hat, dx_hat, t
        return x_hat


def run(filter_, signal, fps=FPS):
    return np.stack([filter_(x, i / fps) for i, x in enumerate(signal)])


@pytest.mark.parametrize("beta", [0.0, 0.02, 1.0])
def test_equals_the_scalar_textbook_filter_on_every_joint(beta):
    rng = np.random.default_rng(0)
    frames, joints = 60, 17
    signal = np.cumsum(rng.normal(0, 4, (frames, joints, 2)), axis=0) + rng.uniform(0, 500, (joints, 2))
    times = np.cumsum(rng.uniform(0.02, 0.06, frames))  # uneven timestamps
    vectorized = OneEuroFilter(min_cutoff=0.7, beta=beta, d_cutoff=1.3)
    got = np.stack([vectorized(x, t) for x, t in zip(signal, times)])
    expected = np.empty_like(signal)
    for j in range(joints):
        for axis in range(2):
            scalar = ScalarOneEuro(0.7, beta, 1.3)
            expected[:, j, axis] = [scalar(float(x), float(t)) for x, t in zip(signal[:, j, axis], times)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    assert np.abs(got - signal).max() > 1.0  # it did filter


def test_a_constant_signal_stays_put():
    point = np.array([[123.25, 45.5], [0.0, -7.0]])
    out = run(OneEuroFilter(min_cutoff=0.5, beta=0.1), [point] * 40)
    np.testing.assert_array_equal(out, np.broadcast_to(point, out.shape))


def test_the_jitter_of_a_still_point_falls():
    rng = np.random.default_rng(1)
    noisy = 200.0 + rng.normal(0, 2.0, (150, 17, 2))
    out = run(OneEuroFilter(min_cutoff=1.0, beta=0.0), noisy)
    settled = out[30:]
    assert settled.std(axis=0).mean() < 0.4 * noisy.std(axis=0).mean()
    assert abs(settled.mean() - 200.0) < 0.5
    tracks_raw, tracks_smooth = {1: noisy[:, :, :]}, {1: out}
    assert mean_acceleration(tracks_smooth) < 0.2 * mean_acceleration(tracks_raw)


def test_a_step_is_followed_with_bounded_lag_and_beta_shortens_it():
    signal = np.where(np.arange(60) < 10, 0.0, 100.0)[:, None]

    def frames_to_reach(beta, level=95.0):
        out = run(OneEuroFilter(min_cutoff=1.0, beta=beta), signal)[:, 0]
        assert out.max() <= 100.0 + 1e-9 and out.min() >= -1e-9  # first order: no overshoot
        assert np.all(np.diff(out[10:]) >= -1e-9)  # and monotone toward the step
        return int(np.argmax(out >= level)) - 10

    slow, fast = frames_to_reach(0.0), frames_to_reach(0.05)
    assert fast <= 2, fast  # with beta the cutoff opens: within 2 frames at 30 fps
    assert slow > 10  # a 1 Hz low pass alone lags far behind
    assert fast < slow


def test_tracks_are_independent_and_a_lost_one_starts_afresh():
    smoother = KeypointSmoother(min_cutoff=0.5, beta=0.0, fps=FPS, max_gap=2)
    a = np.zeros((1, 3, 3))
    a[..., 2] = 0.9  # the score column passes through
    b = np.full((1, 3, 3), 50.0)
    for _ in range(5):
        out = smoother.update([1, 2], np.concatenate([a, b]))
    np.testing.assert_array_equal(out[0], a[0])
    np.testing.assert_array_equal(out[1], b[1 - 1])
    moved = a + [10.0, 10.0, 0.0]
    kept = smoother.update([1], moved)  # track 1 moves: smoothed, so it lags behind
    assert 0 < kept[0, 0, 0] < 10 and kept[0, 0, 2] == 0.9
    for _ in range(3):  # track 2 missing for 3 frames > max_gap: dropped
        smoother.update([1], moved)
    assert 2 not in smoother.filters
    again = smoother.update([1, 2], np.concatenate([moved, b + 20.0]))
    np.testing.assert_array_equal(again[1], (b + 20.0)[0])  # afresh: its first value passes
    smoother.reset(1)
    fresh = smoother.update([1], moved + 30.0)
    np.testing.assert_array_equal(fresh[0], (moved + 30.0)[0])


def test_a_track_back_within_the_gap_continues_with_the_real_time_step():
    gap = KeypointSmoother(min_cutoff=1.0, beta=0.0, fps=FPS, max_gap=5)
    direct = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    points = [np.full((1, 2, 2), v) for v in (0.0, 0.0, 30.0)]
    gap.update([7], points[0])
    direct(points[0][0], 0.0)
    gap.update([], np.zeros((0, 2, 2)))  # one frame without the person
    out = gap.update([7], points[2])
    np.testing.assert_allclose(out[0], direct(points[2][0], 2 / FPS))


def test_non_finite_joints_pass_through_and_keep_their_state():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    f(np.array([0.0, 0.0]), 0.0)
    out = f(np.array([np.nan, 10.0]), 1 / FPS)
    assert np.isnan(out[0]) and 0 < out[1] < 10
    assert f.value[0] == 0.0


@pytest.mark.parametrize("kwargs", [{"min_cutoff": 0.0}, {"beta": -1.0}, {"d_cutoff": float("nan")}, {"fps": 0}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        KeypointSmoother(**kwargs)


def test_time_must_increase():
    f = OneEuroFilter()
    f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="time must increase"):
        f(np.zeros(2), 1.0)
