"""Training against model error on CartPole: DR beats nominal on the set, RARL's adversary hurts, QARL's
schedule, IWOCS's search; the uncertainty-set evaluation through ``robustrl evaluate``."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from robustrl.agents.train import TrainConfig
from robustrl.agents.train import train as train_run
from robustrl.cli import main
from robustrl.defenses.model_error import PRMDPTrainConfig, QARLConfig, RARLConfig, temperature
from robustrl.envs import make_env
from robustrl.envs.uncertainty import uncertainty_set
from robustrl.evaluate.config import EvaluateConfig
from robustrl.jobs import evaluate, train
from robustrl.model_robust.force_env import ForcedEnv, mix_actions
from robustrl.model_robust.iwocs import point_returns, worst_case_search
from robustrl.model_robust.rarl import ForceGameLearner
from robustrl.policies import save_policy
from robustrl.results import DynamicsResult, TrainResult, load_result
from robustrl.rollout import rollout

SET = "cartpole-2d-v1"


def _grid_eval(policy: torch.nn.Module, **kw: object) -> object:
    options = {"uncertainty_set": SET, "grid_points": 5, "episodes": 4, **kw}
    cfg = EvaluateConfig(policy="p", env="CartPole-v1", **options)  # type: ignore[arg-type]
    return evaluate(cfg, policy=policy)  # type: ignore[arg-type]


def _train_game(
    d: RARLConfig | QARLConfig | PRMDPTrainConfig, name: str, steps: int
) -> tuple[TrainResult, ForceGameLearner]:
    """A CartPole protagonist trained against a force or action adversary, and the learner holding both."""
    cfg = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=steps, eval_every=0, eval_episodes=4,
                      defense=name, uncertainty_set=SET)
    held: list[ForceGameLearner] = []

    def make(env, algo_cfg, seed, more):  # type: ignore[no-untyped-def]
        uset = None if isinstance(d, PRMDPTrainConfig) else uncertainty_set(SET)
        held.append(ForceGameLearner(env, algo_cfg, seed, d, uset, cfg, more))
        return held[0]

    return train_run(cfg, make_agent=make), held[0]


def test_domain_randomisation_worst_case_beats_nominal() -> None:
    common = dict(algo="ppo", env="CartPole-v1", total_steps=60_000, eval_every=0, eval_episodes=8, seed=0)
    nominal = train(TrainConfig(**common))  # type: ignore[arg-type]
    dr = train(TrainConfig(**common, defense="domain-randomisation", uncertainty_set=SET))  # type: ignore[arg-type]
    assert dr.config["defense"]["name"] == "domain-randomisation"
    u_nom, u_dr = _grid_eval(nominal.policy), _grid_eval(dr.policy)
    assert u_dr.worst_case > u_nom.worst_case + 40  # type: ignore[attr-defined]  # measured: 109.0 vs 20.0


def test_rarl_adversary_lowers_the_return_when_frozen() -> None:
    uset = uncertainty_set(SET)
    res, learner = _train_game(RARLConfig(rounds=3), "rarl", 30_000)
    held = [learner]
    assert held[0].rounds_done == 3
    means = []
    for adversary in (None, held[0].adversary.policy):
        env = ForcedEnv(make_env("CartPole-v1", 64, seed=1), adversary, uset.force, seed=2)
        env.deterministic_other = True
        means.append(float(rollout(res.policy, env, 64, seed=3).returns.mean()))  # type: ignore[arg-type]
    assert means[1] < 0.8 * means[0]  # measured: 205.6 vs 435.8


def test_qarl_temperature_schedule() -> None:
    lin = QARLConfig(rounds=5, temperature_start=2.0, temperature_end=0.0)
    assert [temperature(lin, r) for r in range(5)] == [2.0, 1.5, 1.0, 0.5, 0.0]
    exp = QARLConfig(rounds=3, temperature_start=1.0, temperature_end=0.0, schedule="exponential")
    assert [temperature(exp, r) for r in range(3)] == pytest.approx([1.0, 1e-3 ** 0.5, 0.0])
    with pytest.raises(ValueError, match="temperature_end"):
        QARLConfig(temperature_start=0.1, temperature_end=0.5).validate()


def test_qarl_adversary_ends_fully_rational() -> None:
    _, learner = _train_game(QARLConfig(rounds=2, temperature_start=0.5), "qarl", 8192)
    held = [learner]
    assert held[0].rounds_done == 2 and held[0].adversary.cfg.ent_coef == 0.0
    assert held[0].temperature(0) == 0.5


def test_iwocs_search_finds_the_worst_corner() -> None:
    def f(u: np.ndarray) -> np.ndarray:  # toy "return", worst at the corner (1, 0)
        return 10.0 - 3.0 * u[:, 0] + 2.0 * u[:, 1]

    for search in ("cma", "grid"):
        found = worst_case_search(f, 2, search, budget=60, grid_points=4, seed=0)
        assert found.point.tolist() == pytest.approx([1.0, 0.0], abs=0.05), search
        assert found.evaluations <= 60
    one = worst_case_search(lambda u: u[:, 0], 1, "cma", budget=30)
    assert one.point[0] == pytest.approx(0.0, abs=0.05)


def test_iwocs_grid_search_on_a_real_policy(cartpole_ppo: torch.nn.Module) -> None:
    uset = uncertainty_set(SET)

    def f(u: np.ndarray) -> np.ndarray:
        return point_returns(cartpole_ppo, uset, u, 2, seed=0)  # type: ignore[arg-type]

    found = worst_case_search(f, 2, "grid", grid_points=3)
    corners = np.array([[a, b] for a in (0.0, 0.5, 1.0) for b in (0.0, 0.5, 1.0)])
    assert found.value == pytest.approx(float(f(corners).min()))


def test_iwocs_run_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = train(TrainConfig(algo="ppo", env="CartPole-v1", total_steps=8192, eval_every=0, eval_episodes=2,
                            defense="iwocs", uncertainty_set=SET, out=tmp_path / "run",
                            defense_set=("iterations=2", "search=grid", "grid_points=2", "search_episodes=1")))
    record = json.loads((tmp_path / "run" / "iwocs.json").read_text())
    values = [it["worst_value"] for it in record["iterations"]]
    assert record["selected"] == int(np.argmax(values)) and res.steps == 8192
    assert record["iterations"][1]["trained_on"] == record["iterations"][0]["worst_point"]
    assert (tmp_path / "run" / "result.json").exists() and (tmp_path / "run" / "policy_1" / "result.json").exists()


def test_evaluate_cli_and_normalised_references(  # type: ignore[no-untyped-def]
    tmp_path, cartpole_ppo: torch.nn.Module, cartpole_ppo_smoothed: torch.nn.Module
) -> None:
    save_policy(cartpole_ppo, tmp_path / "p.zip", env_id="CartPole-v1")
    save_policy(cartpole_ppo_smoothed, tmp_path / "q.zip", env_id="CartPole-v1")
    args = ["evaluate", "--policy", str(tmp_path / "p.zip"), "--env", "CartPole-v1", "--uncertainty-set", SET,
            "--grid-points", "3", "--episodes", "2"]
    assert main([*args, "--out", str(tmp_path / "u.json")]) == 0
    u = load_result(tmp_path / "u.json")
    grid = load_result(tmp_path / "u.grid.json")
    assert isinstance(grid, DynamicsResult) and u.worst_case == float(grid.mean.min())  # type: ignore[attr-defined]
    assert u.shape == (3, 3) and u.references == ()  # type: ignore[attr-defined]
    refs = [str(tmp_path / "p.zip"), str(tmp_path / "q.zip")]
    assert main([*args, "--references", *refs, "--out", str(tmp_path / "n.json")]) == 0
    n = load_result(tmp_path / "n.json")
    assert n.normalised("worst_case") == 0.0 and n.normalised("average") == 0.0  # type: ignore[attr-defined]
    assert np.array_equal(n.reference_mean[0], u.mean)  # type: ignore[attr-defined]  # same grid, same seeds


def test_bad_uncertainty_options_fail_before_work(cartpole_ppo: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="belongs to Hopper-v5"):
        _grid_eval(cartpole_ppo, uncertainty_set="hopper-2d-v1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two policy files"):
        _grid_eval(cartpole_ppo, references=("a.zip",))
    with pytest.raises(ValueError, match="needs --uncertainty-set"):
        train(TrainConfig(defense="rarl", total_steps=10))
    with pytest.raises(ValueError, match="model-error defenses"):
        train_run(TrainConfig(uncertainty_set=SET, total_steps=10))


def test_action_mixing_is_exact() -> None:
    a, adv, g = torch.tensor([0, 0, 0, 0]), torch.tensor([1, 1, 1, 1]), torch.Generator().manual_seed(0)
    assert mix_actions(a, adv, 1.0, "pr", g).tolist() == [1, 1, 1, 1]
    assert mix_actions(a, adv, 0.0, "pr", g).tolist() == [0, 0, 0, 0]
    blend = mix_actions(torch.tensor([[1.0], [0.0]]), torch.tensor([[-1.0], [1.0]]), 0.25, "nr", g)
    assert blend.tolist() == [[0.5], [0.25]]


def test_pr_mdp_training_trains_an_action_adversary() -> None:
    res, learner = _train_game(PRMDPTrainConfig(alpha=0.3, rounds=2), "pr-mdp", 8192)
    assert learner.rounds_done == 2 and learner.adversary.steps >= 4096 and res.steps == 8192
    with pytest.raises(ValueError, match="continuous action space"):
        train(TrainConfig(defense="nr-mdp", total_steps=10))


def test_mujoco_rarl_keeps_the_runs_physical_parameters() -> None:
    cfg = TrainConfig(algo="ppo", env="Hopper-v5", total_steps=4096, num_envs=2, eval_every=0, eval_episodes=2,
                      defense="rarl", uncertainty_set="hopper-2d-v1", env_params=("torso_mass=5.5",))
    uset = uncertainty_set("hopper-2d-v1")
    from robustrl.agents.train import make_run_env, resolve_algo_config

    algo_cfg = resolve_algo_config(cfg)
    env = make_run_env(cfg, 2, 0)
    learner = ForceGameLearner(env, algo_cfg, 0, RARLConfig(rounds=2), uset, cfg, lambda n, s: make_run_env(cfg, n, s))
    for remade in (learner._forced.env, learner._adv_env.env):  # the envs rebuilt with the pushed foot
        assert remade.disturbance_space is not None
        torch.testing.assert_close(remade.params["torso_mass"], torch.full((2,), 5.5, dtype=torch.float64))


def test_iwocs_resumes_after_its_last_finished_iteration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    run = tmp_path / "run"
    cfg = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=6144, eval_every=0, eval_episodes=2,
                      defense="iwocs", uncertainty_set=SET, out=run,
                      defense_set=("iterations=3", "search=grid", "grid_points=2", "search_episodes=1"))
    whole = train(cfg)
    record = json.loads((run / "iwocs.json").read_text())
    # the folder as it was when the run was killed during iteration 1 (iteration 0 recorded, 1 not)
    for name in ("result.json", "policy.zip"):
        (run / name).unlink()
    shutil.rmtree(run / "policy_2")
    (run / "policy_1" / "result.json").unlink()
    (run / "iwocs.json").write_text(json.dumps({**record, "selected": None, "iterations": record["iterations"][:1]}))
    with pytest.raises(ValueError, match="train.seed"):
        train(dataclasses.replace(cfg, resume=True, seed=4))
    with pytest.raises(ValueError, match="already holds an IWOCS run"):
        train(cfg)
    resumed = train(dataclasses.replace(cfg, resume=True))
    again = json.loads((run / "iwocs.json").read_text())
    assert again["iterations"] == record["iterations"] and again["selected"] == record["selected"]
    assert resumed.steps == whole.steps == 6144 and (run / "result.json").exists()
    (run / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="never deletes"):
        train(dataclasses.replace(cfg, overwrite=True))
    (run / "thesis.tex").unlink()
    assert train(dataclasses.replace(cfg, overwrite=True)).steps == 6144


def test_mode_switch_identifies_the_running_model(cartpole_ppo: torch.nn.Module) -> None:
    from robustrl.model_robust.mode_switch import ModeSwitchConfig, ModeSwitchPolicy, fit_mode_switch
    from robustrl.rollout import collect, start_collect

    short = {"length": 0.25, "masspole": 0.05}
    long = {"length": 2.5, "masspole": 1.0}
    policies = [cartpole_ppo, copy.deepcopy(cartpole_ppo)]
    predictors = fit_mode_switch(policies, [short, long], "CartPole-v1", ModeSwitchConfig(fit_steps=2048), seed=0)
    for truth, point in enumerate((short, long)):
        switch = ModeSwitchPolicy(policies, predictors, default=1 - truth, warmup=3)
        params = {k: torch.full((16,), v, dtype=torch.float64) for k, v in point.items()}
        env = make_env("CartPole-v1", 16, seed=5, params=params)
        collect(switch, env, 2, state=start_collect(env, seed=5))
        assert switch.chosen.tolist() == [1 - truth] * 16  # warm-up: the default policy acts
        collect(switch, env, 20, state=start_collect(env, seed=6))
        assert switch.chosen.tolist() == [truth] * 16, point  # then the model that predicts this MDP


def test_iwocs_mode_switch_in_the_run_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from robustrl.model_robust.mode_switch import load_predictors

    opts = ("iterations=2", "search=grid", "grid_points=2", "search_episodes=1", "mode_switch=true",
            "switch_fit_steps=512")
    cfg = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=4096, eval_every=0, eval_episodes=2,
                      defense="iwocs", uncertainty_set=SET, out=tmp_path / "run", defense_set=opts)
    res = train(cfg)
    record = json.loads((tmp_path / "run" / "iwocs.json").read_text())
    ms = record["mode_switch"]
    assert res.config["iwocs"]["mode_switch"] == ms and ms["grid_points"] == 2
    assert ms["worst"] <= ms["average"] and ms["selected_worst"] <= ms["selected_average"]
    predictors, switch_cfg = load_predictors(tmp_path / "run" / "mode_switch.pt")
    assert len(predictors) == 2 and switch_cfg.fit_steps == 512
    # --overwrite without the switch removes the switch's file with the rest of the run
    train(dataclasses.replace(cfg, defense_set=opts[:4], overwrite=True))
    assert not (tmp_path / "run" / "mode_switch.pt").exists()
