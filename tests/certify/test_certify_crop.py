"""CROP per-state action certificate: exact radii, batching, torch/NumPy equivalence, analytic oracle."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

from robustrl.certify import action_certificate, hoeffding_margin

N01 = NormalDist()


def test_exact_radius_on_hand_made_samples() -> None:
    # m = 4 samples of A = 3 actions with Q in [-1, 3]
    q = np.array([[2.0, 0.0, 1.0], [3.0, -1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    sigma, alpha = 0.8, 0.1
    cert = action_certificate(q, sigma=sigma, alpha=alpha, v_min=-1.0, v_max=3.0)
    top1 = ((2 + 1) + (3 + 1) + (2 + 1) + (1 + 1)) / 4 / 4  # action 0: mean of (q + 1)/4 = 0.75
    top2 = ((1 + 1) * 4) / 4 / 4  # action 2: 0.5
    delta = math.sqrt(math.log(1 / alpha) / (2 * 4))
    assert cert.margin == pytest.approx(delta) == pytest.approx(hoeffding_margin(4, alpha))
    assert top2 + delta >= 1  # only 4 samples: Φ⁻¹(Q̃₂ + Δ) = +inf, the certificate must abstain
    assert not cert.certified and cert.radius == 0.0 and cert.action == 0
    np.testing.assert_allclose(cert.q_smoothed, [top1, 0.25, top2])

    big = np.tile(q, (2000, 1))  # same means, m = 8000
    cert = action_certificate(big, sigma=sigma, alpha=alpha, v_min=-1.0, v_max=3.0)
    delta = math.sqrt(math.log(1 / alpha) / (2 * 8000))
    expected = sigma / 2 * (N01.inv_cdf(0.75 - delta) - N01.inv_cdf(0.5 + delta))
    assert cert.certified and cert.action == 0
    assert float(cert.radius) == pytest.approx(expected, rel=1e-9)
    assert cert.m == 8000 and cert.radius.shape == ()


def test_clipping_to_known_bounds_and_abstaining_at_the_edges() -> None:
    q = np.array([[5.0, -5.0]] * 100)  # clipped to v_max / v_min: means 1 and 0
    cert = action_certificate(q, sigma=1.0, v_min=0.0, v_max=1.0)
    delta = hoeffding_margin(100, 0.05)
    np.testing.assert_allclose(cert.q_smoothed, [1.0, 0.0])
    assert float(cert.radius) == pytest.approx(N01.inv_cdf(1 - delta), rel=1e-9)  # σ/2 · 2Φ⁻¹(1−Δ)
    tie = action_certificate(np.full((100, 3), 0.5), sigma=1.0, v_min=0.0, v_max=1.0)
    assert not tie.certified and tie.radius == 0.0


def test_joint_uses_bonferroni_over_actions() -> None:
    q = np.array([[0.9, 0.2, 0.1]] * 500)
    per = action_certificate(q, sigma=1.0, alpha=0.05, v_min=0.0, v_max=1.0)
    joint = action_certificate(q, sigma=1.0, alpha=0.05, v_min=0.0, v_max=1.0, joint=True)
    assert joint.margin == pytest.approx(hoeffding_margin(500, 0.05 / 3))
    assert 0 < joint.radius < per.radius


def test_batched_equals_per_state_and_torch_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 3, 512, 4)) + np.array([2.5, 0.0, 0.5, -1.0])  # [N1, N2, m, A]
    batched = action_certificate(q, sigma=0.5, v_min=-4.0, v_max=4.0)
    assert batched.radius.shape == (5, 3) and batched.q_smoothed.shape == (5, 3, 4)
    for i in range(5):
        for j in range(3):
            single = action_certificate(q[i, j], sigma=0.5, v_min=-4.0, v_max=4.0)
            assert single.action == batched.action[i, j]
            assert single.radius == pytest.approx(batched.radius[i, j], rel=1e-12)
    as_torch = action_certificate(torch.as_tensor(q, dtype=torch.float64), sigma=0.5, v_min=-4.0, v_max=4.0)
    np.testing.assert_allclose(as_torch.radius, batched.radius, rtol=1e-12)
    np.testing.assert_array_equal(as_torch.action, batched.action)
    assert batched.certified.any()


def test_radius_is_sound_and_tight_for_a_threshold_q_network() -> None:
    """Q_0(x) = 1[x >= 0], Q_1(x) = 1[x < 0] on a 1-D state s: the smoothed greedy action flips exactly at
    x = 0, so the true certified radius is s; CROP's radius approaches it from below as m grows."""
    s, sigma, m = 0.5, 1.0, 200_000
    gen = torch.Generator().manual_seed(0)
    x = s + sigma * torch.randn(m, generator=gen, dtype=torch.float64)
    q = torch.stack([(x >= 0).double(), (x < 0).double()], dim=-1)  # [m, 2]
    cert = action_certificate(q, sigma=sigma, v_min=0.0, v_max=1.0)
    assert cert.action == 0
    assert 0.45 <= float(cert.radius) <= s


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"alpha": 1.0}, "alpha"),
        ({"v_min": 1.0, "v_max": 1.0}, "v_min < v_max"),
        ({"q_samples": np.ones((10, 1))}, "2 actions"),
        ({"q_samples": np.ones(10)}, "shape"),
        ({"q_samples": np.full((10, 2), np.nan)}, "NaN"),
        ({"q_samples": torch.full((10, 2), float("nan"))}, "NaN"),
    ],
)
def test_refusals(kwargs: dict, match: str) -> None:
    args = {"q_samples": np.ones((10, 2)), "sigma": 1.0, "v_min": 0.0, "v_max": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        action_certificate(args.pop("q_samples"), **args)
