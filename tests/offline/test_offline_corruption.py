"""The RIQL corruption protocol: fractions, bounds, exact reward rules, adversarial vs random, masks stored."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl.offline.corruption import CorruptionConfig, adversarial_lambda, corrupt
from robustrl.offline.data import ELEMENTS, OfflineDataset, load_dataset, save_npz, write_minari
from robustrl.offline.train import OfflineTrainConfig, train_offline

ARRAYS = {"obs": "observations", "actions": "actions", "rewards": "rewards", "next_obs": "next_observations"}


def _changed(a: OfflineDataset, b: OfflineDataset, element: str) -> np.ndarray:
    x, y = getattr(a, ARRAYS[element]), getattr(b, ARRAYS[element])
    return (x != y).reshape(len(x), -1).any(1)


@pytest.mark.parametrize("element", ELEMENTS)
def test_random_corruption_changes_the_stated_fraction(expert_data: OfflineDataset, element: str) -> None:
    c, eps = 0.3, 1.0
    out = corrupt(expert_data, CorruptionConfig(element, "random", c, eps, seed=1))
    n = expert_data.num_transitions
    j = ELEMENTS.index(element)
    mask = out.corrupted[:, j]
    # exactly the masked transitions changed; the other elements are untouched
    np.testing.assert_array_equal(_changed(expert_data, out, element), mask)
    for other in ELEMENTS:
        if other != element:
            assert not _changed(expert_data, out, other).any()
            assert not out.corrupted[:, ELEMENTS.index(other)].any()
    # Bernoulli(c) per transition: within 4 binomial standard deviations
    assert abs(mask.mean() - c) < 4 * math.sqrt(c * (1 - c) / n)
    if element == "rewards":
        assert np.abs(out.rewards[mask]).max() <= 30 * eps
        assert np.abs(out.rewards[mask]).max() > 20 * eps  # uniform on [−30ε, 30ε], not a small perturbation
    else:
        src = getattr(expert_data, ARRAYS[element])
        lam = (getattr(out, ARRAYS[element])[mask] - src[mask]) / src.std(0)
        assert np.abs(lam).max() <= eps + 1e-4 and np.abs(lam).max() > 0.9 * eps
    assert out.meta["corruption"]["rate"] == c and out.meta["corruption"]["element"] == element
    # the input is unchanged and the same seed gives the same corruption
    again = corrupt(expert_data, CorruptionConfig(element, "random", c, eps, seed=1))
    np.testing.assert_array_equal(getattr(again, ARRAYS[element]), getattr(out, ARRAYS[element]))


def test_all_four_trajectory_mode_and_subsampling(expert_data: OfflineDataset) -> None:
    out = corrupt(expert_data, CorruptionConfig("all", "random", 0.5, 1.0, trajectory=True, seed=3))
    for j in range(4):  # each element on its own whole-episode subset
        for e in np.unique(out.episode_ids):
            col = out.corrupted[out.episode_ids == e, j]
            assert col.all() or not col.any()
    assert len({tuple(out.corrupted[:, j]) for j in range(4)}) > 1  # independent masks
    sub = corrupt(expert_data, CorruptionConfig("obs", "random", 0.0, 1.0, keep=0.1, seed=0))
    assert sub.num_episodes == 2 and sub.num_transitions == 400 and not sub.corrupted.any()


def test_adversarial_reward_rule_is_exact(expert_data: OfflineDataset) -> None:
    out = corrupt(expert_data, CorruptionConfig("rewards", "adversarial", 0.3, 0.5, seed=0))
    m = out.corrupted[:, 2]
    np.testing.assert_allclose(out.rewards[m], -0.5 * expert_data.rewards[m], rtol=1e-6)
    np.testing.assert_array_equal(out.rewards[~m], expert_data.rewards[~m])


def test_adversarial_lambda_stays_in_the_box_and_lowers_a_linear_objective() -> None:
    x = torch.zeros(5, 3)
    std = torch.tensor([1.0, 2.0, 0.5])
    w = torch.tensor([1.0, -2.0, 3.0])
    lam = adversarial_lambda(lambda z: z @ w, x, std, 0.5, 200, 0.01, torch.Generator().manual_seed(0))
    # the minimiser of w·(λ⊙std) over the box is −ε·sign(w)
    torch.testing.assert_close(lam, (-0.5 * w.sign()).expand(5, 3))


def test_adversarial_lowers_the_critic_more_than_random(tmp_path: Path, expert_data: OfflineDataset) -> None:
    small = expert_data.select(expert_data.episode_ids < 5)
    path = tmp_path / "clean.npz"
    save_npz(small, path)
    critic = train_offline(OfflineTrainConfig(algo="td3bc", dataset=str(path), updates=300, eval_every=0,
                                              eval_episodes=1, set=("hidden=32,32",))).policy
    for element in ("obs", "actions", "next_obs"):
        q = {}
        for mode in ("random", "adversarial"):
            cfg = CorruptionConfig(element, mode, 1.0, 1.0, attack_steps=20, attack_step_size=0.1, seed=0)
            out = corrupt(small, cfg, policy=critic)
            with torch.no_grad():
                if element == "next_obs":
                    s = torch.as_tensor(out.next_observations)
                    q[mode] = float(critic.critic(s, critic.act(s)).mean())
                else:
                    q[mode] = float(critic.critic(torch.as_tensor(out.observations),
                                                  torch.as_tensor(out.actions)).mean())
        assert q["adversarial"] < q["random"], (element, q)


def test_mask_and_config_stored_with_the_dataset(tmp_path: Path, expert_data: OfflineDataset) -> None:
    out = corrupt(expert_data, CorruptionConfig("next_obs", "random", 0.3, 1.0, seed=2))
    write_minari(out, "rl/pend-dyn-v0", root=tmp_path)
    back = load_dataset("rl/pend-dyn-v0", root=tmp_path)
    np.testing.assert_array_equal(back.corrupted, out.corrupted)
    np.testing.assert_array_equal(back.next_observations, out.next_observations)  # kept apart from obs[t+1]
    np.testing.assert_array_equal(back.observations, expert_data.observations)
    assert back.meta["corruption"]["element"] == "next_obs"


def test_bad_corruption_inputs(expert_data: OfflineDataset) -> None:
    for kwargs, msg in (({"rate": 1.5}, "rate"), ({"scale": -1.0}, "scale"), ({"keep": 0.0}, "keep"),
                        ({"element": "state"}, "element")):
        with pytest.raises(ValueError, match=msg):
            corrupt(expert_data, dataclasses.replace(CorruptionConfig(), **kwargs))
    with pytest.raises(ValueError, match="critic"):
        corrupt(expert_data, CorruptionConfig("obs", "adversarial"))
