"""sa-reg: the inner maximiser, the ε schedule, the regulariser's values, and a seeded robustness test."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.defenses.base import Minibatch
from robustrl.defenses.registry import defense_hooks, resolve_defense
from robustrl.defenses.sa_reg import SARegConfig, divergence_fn, maximise_divergence, sa_regularizer
from robustrl.policies.networks import ActorCriticPolicy, QNetworkPolicy

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)


def _policy(action_space, seed=0):
    torch.manual_seed(seed)
    pol = ActorCriticPolicy(OBS, action_space, pi_hidden=(16,), vf_hidden=(16,))
    with torch.no_grad():  # a non-trivial actor (the default init makes the output layer tiny)
        pol.action_net.weight.mul_(300.0)
    return pol


@pytest.mark.parametrize("solver", ["pgd", "sgld"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), dtype=np.float32)])
def test_inner_max_beats_random_points_and_stays_in_ball(solver, norm, space):
    pol = _policy(space)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(64, 4, generator=gen)
    eps = 0.3
    cfg = SARegConfig(eps=eps, solver=solver, norm=norm, steps=10)
    div = divergence_fn(pol, obs)
    adv = maximise_divergence(div, obs, eps, cfg, generator=gen)
    delta = (adv - obs).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps + 1e-5).all())
    found = div(adv).detach()
    # 20 points drawn uniformly from each ball
    pts = torch.stack([maximise_divergence(div, obs, eps, SARegConfig(eps=eps, norm=norm, steps=1,
                                                                      step_scale=1e-9), generator=gen)
                       for _ in range(20)])
    rand_div = torch.stack([div(r).detach() for r in pts])
    assert float((found >= rand_div - 1e-6).float().mean()) >= 0.95
    assert float(found.mean()) > float(rand_div.amax(0).mean())


def test_gaussian_divergence_is_the_fixed_sigma_kl():
    pol = _policy(gym.spaces.Box(-1, 1, (2,), dtype=np.float32))
    with torch.no_grad():
        pol.log_std.fill_(np.log(0.5))
    obs, moved = torch.zeros(1, 4), torch.full((1, 4), 0.1)
    mu, mu2 = pol.action_params(obs), pol.action_params(moved)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, 0.5), torch.distributions.Normal(mu2, 0.5)
    ).sum(-1)
    torch.testing.assert_close(divergence_fn(pol, obs)(moved), expected)


def test_dqn_hinge_on_the_greedy_margin_by_hand():
    pol = QNetworkPolicy(OBS, gym.spaces.Discrete(3), hidden=())
    with torch.no_grad():  # Q(s) = W s: a* at the clean obs is action 0
        pol.q_net[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]))
        pol.q_net[0].bias.zero_()
    obs = torch.tensor([[1.0, 0.5, 0.0, 0.0]])
    # ℓ∞ ball of 0.2: the worst point lowers Q0 to 0.8 and raises Q1 to 0.7, margin −0.1
    cfg = SARegConfig(eps=0.2, eps_ramp=0.0, kappa=2.0, dqn_margin=1.0, steps=20, step_scale=2.0)
    reg = sa_regularizer(cfg)(pol, Minibatch(obs, torch.zeros(1, dtype=torch.long)), 1.0)
    assert reg.item() == pytest.approx(2.0 * -0.1, abs=1e-5)
    far = SARegConfig(eps=0.2, eps_ramp=0.0, dqn_margin=0.05, steps=20, step_scale=2.0)
    # a margin of −0.1 is below −c = −0.05: the hinge clips it
    assert sa_regularizer(far)(pol, Minibatch(obs, torch.zeros(1)), 1.0).item() == pytest.approx(0.3 * -0.05)


def test_eps_schedule_is_warmup_then_linear_ramp():
    cfg = SARegConfig(eps=0.2, eps_warmup=0.1, eps_ramp=0.4)
    got = [cfg.eps_at(p) for p in (0.0, 0.1, 0.3, 0.5, 0.9)]
    assert got == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.2])
    assert SARegConfig(eps=0.2, eps_ramp=0.0).eps_at(0.0) == 0.2
    pol = _policy(gym.spaces.Discrete(3))
    reg = sa_regularizer(cfg)
    batch = Minibatch(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    assert reg(pol, batch, 0.05).item() == 0.0
    assert reg(pol, batch, 0.5).item() > 0.0


def test_regulariser_is_differentiable_and_deterministic():
    pol = _policy(gym.spaces.Discrete(3))
    batch = Minibatch(torch.randn(16, 4), torch.zeros(16, dtype=torch.long))
    cfg = SARegConfig(eps=0.3, eps_ramp=0.0)
    a, b = sa_regularizer(cfg)(pol, batch, 1.0), sa_regularizer(cfg)(pol, batch, 1.0)
    assert a.item() == b.item() > 0
    a.backward()
    assert pol.action_net.weight.grad is not None and float(pol.action_net.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("item", "field"),
    [("eps=0", "eps"), ("kappa=-1", "kappa"), ("eps_ramp=2", "eps_ramp"), ("steps=0", "steps"),
     ("solver=fgsm", "solver")],
)
def test_bad_config_names_the_field(item, field):
    with pytest.raises(ValueError, match=field):
        resolve_defense("sa-reg", [item])


def test_registered_as_hooks():
    hooks = defense_hooks(resolve_defense("sa-reg", ["eps=0.1"]))
    assert len(hooks.regularizers) == 1 and hooks.obs_transform is None


def test_sa_reg_policy_moves_less_inside_the_ball_than_vanilla_ppo(vanilla_ppo, trained_with, worst_kl):
    """Seeded: CartPole PPO 100k steps; the worst KL that PGD finds in the ℓ∞ ball ε = 0.1 (what sa-reg bounds).

    Measured on seeds 0-2 under three MKL code paths, one thread: vanilla 0.112-0.172, sa-reg (ε 0.1, κ 0.3,
    3 PGD steps) 0.020-0.026. The return under a PGD attack at this budget is not reliably higher (docs/defenses.md).
    """
    sa_reg = worst_kl(trained_with("sa-reg", ("eps=0.1", "kappa=0.3", "steps=3")))
    vanilla = worst_kl(vanilla_ppo)
    assert sa_reg < 0.5 * vanilla, (sa_reg, vanilla)


def test_cli_trains_with_sa_reg_and_records_it(tmp_path):
    import json

    from robustrl.cli import main
    from robustrl.results import load_result

    out = tmp_path / "run"
    argv = ["train", "--env", "CartPole-v1", "--total-steps", "4096", "--eval-every", "0", "--eval-episodes", "2",
            "--defense", "sa-reg", "--defense-set", "eps=0.1", "steps=2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["defense"]["name"] == "sa-reg" and meta["defense"]["eps"] == 0.1 and meta["defense"]["steps"] == 2
    res = load_result(out / "result.json")
    assert res.steps == 4096 and res.last_train_metrics["train/regularizer"] > 0
