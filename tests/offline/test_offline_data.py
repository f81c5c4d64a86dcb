"""Datasets: Minari round trips, transition files, MINARI_DATASETS_PATH, bad inputs, atomic writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import minari
import numpy as np
import pytest

import robustrl
from robustrl.offline.collect import RandomPolicy, collect_episodes
from robustrl.offline.data import OfflineDataset, load_dataset, save_npz, write_minari


@pytest.fixture(scope="module")
def cartpole_random() -> OfflineDataset:
    env = robustrl.make_env("CartPole-v1", 4, seed=0)
    data = collect_episodes(RandomPolicy(env.observation_space, env.action_space), env, 12, seed=0)
    env.close()
    return data


def _same(a: OfflineDataset, b: OfflineDataset) -> None:
    for name in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations",
                 "episode_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_collected_episodes_are_consistent(cartpole_random: OfflineDataset) -> None:
    d = cartpole_random
    assert d.num_episodes == 12 and d.discrete
    # each episode ends exactly once, with terminated or truncated, and its successors chain
    for e in range(12):
        rows = np.flatnonzero(d.episode_ids == e)
        done = d.terminations[rows] | d.truncations[rows]
        assert done[-1] and not done[:-1].any()
        np.testing.assert_array_equal(d.next_observations[rows[:-1]], d.observations[rows[1:]])
    assert d.terminations.sum() == 12  # a random CartPole policy always falls within 500 steps
    np.testing.assert_allclose(d.episode_returns(), np.bincount(d.episode_ids).astype(float))


def test_minari_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cartpole_random: OfflineDataset) -> None:
    data = dataclasses.replace(cartpole_random, ref_min_score=20.0, ref_max_score=500.0, meta={"recipe": "random"})
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    path = write_minari(data, "rl/cartpole-random-v0")
    assert path == tmp_path / "rl" / "cartpole-random-v0"
    # minari's own loader reads it: episodes, terminations and truncations apart, reference scores
    ds = minari.load_dataset("rl/cartpole-random-v0")
    assert ds.total_episodes == 12 and ds.total_steps == data.num_transitions
    first = next(ds.iterate_episodes())
    rows = data.episode_ids == 0
    np.testing.assert_array_equal(first.observations[:-1], data.observations[rows])
    np.testing.assert_array_equal(first.actions, data.actions[rows])
    np.testing.assert_array_equal(first.terminations, data.terminations[rows])
    np.testing.assert_array_equal(first.truncations, data.truncations[rows])
    assert ds.storage.metadata["ref_max_score"] == 500.0
    back = load_dataset("rl/cartpole-random-v0")  # MINARI_DATASETS_PATH honoured
    _same(back, data)
    assert back.env_id == "CartPole-v1" and back.meta == {"recipe": "random"} and back.corrupted is None
    assert back.normalized_score(np.array([20.0, 500.0])).tolist() == [0.0, 100.0]
    with pytest.raises(ValueError, match="already exists"):
        write_minari(data, "rl/cartpole-random-v0")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_bad_ids_and_failed_writes_leave_nothing(tmp_path: Path, cartpole_random: OfflineDataset) -> None:
    for bad in ("noslash-v0", "rl/name", "a/b/c-v0"):
        with pytest.raises(ValueError, match="NAMESPACE/NAME-vN"):
            write_minari(cartpole_random, bad, root=tmp_path)
    with pytest.raises(ValueError, match="not a registered Gymnasium id"):
        write_minari(dataclasses.replace(cartpole_random, env_id="NoSuchEnv-v9"), "rl/x-v0", root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no Minari dataset"):
        load_dataset("rl/missing-v0", root=tmp_path)


def test_npz_and_hdf5_transition_files(tmp_path: Path, cartpole_random: OfflineDataset) -> None:
    data = dataclasses.replace(cartpole_random, ref_min_score=1.0, ref_max_score=2.0)
    back = load_dataset(str(save_npz(data, tmp_path / "d.npz")))
    _same(back, data)
    assert (back.env_id, back.ref_min_score, back.ref_max_score) == ("CartPole-v1", 1.0, 2.0)
    with h5py.File(tmp_path / "d.hdf5", "w") as f:  # D4RL's keys
        for key, value in (("observations", data.observations), ("actions", data.actions),
                           ("rewards", data.rewards), ("next_observations", data.next_observations),
                           ("terminals", data.terminations), ("timeouts", data.truncations)):
            f[key] = value
    h5 = load_dataset(str(tmp_path / "d.hdf5"), env_id="CartPole-v1")
    _same(h5, data)  # episode ids rebuilt from the done flags


def test_bad_transition_files(tmp_path: Path, cartpole_random: OfflineDataset) -> None:
    d = cartpole_random
    np.savez(tmp_path / "missing.npz", observations=d.observations, actions=d.actions)
    with pytest.raises(ValueError, match="no 'rewards' array"):
        load_dataset(str(tmp_path / "missing.npz"))
    obs = d.observations.copy()
    obs[3, 0] = np.nan
    np.savez(tmp_path / "nan.npz", observations=obs, actions=d.actions, rewards=d.rewards,
             next_observations=d.next_observations, terminations=d.terminations, truncations=d.truncations)
    with pytest.raises(ValueError, match="observations holds NaN"):
        load_dataset(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "short.npz", observations=d.observations[:-1], actions=d.actions, rewards=d.rewards,
             next_observations=d.next_observations, terminations=d.terminations, truncations=d.truncations)
    with pytest.raises(ValueError, match="rows"):
        load_dataset(str(tmp_path / "short.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(str(tmp_path / "none.npz"))


def test_collect_cli_writes_minari(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustrl.cli import main

    rc = main(["dataset", "collect", "--policy", "random", "--env", "Pendulum-v1", "--episodes", "3", "--noise",
               "0.1", "--id", "rl/pend-random-v0", "--root", str(tmp_path), "--npz", str(tmp_path / "p.npz")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "600 transitions, 3 episodes (0 terminated, 3 truncated)" in out
    side = json.loads((tmp_path / "rl" / "pend-random-v0" / "robustrl.json").read_text())
    assert side["policy"] == "random" and side["noise"] == 0.1
    _same(load_dataset("rl/pend-random-v0", root=tmp_path), load_dataset(str(tmp_path / "p.npz")))
    assert main(["dataset", "info", "rl/pend-random-v0", "--root", str(tmp_path),
                 "--reference", "rl/pend-random-v0"]) == 0
    assert "SACo 1.000" in capsys.readouterr().out
    assert main(["dataset", "collect", "--env", "Pendulum-v1", "--id", "rl/x-v0", "--root", str(tmp_path)]) == 1
    assert "needs --policy or --recipe" in capsys.readouterr().err
    assert main(["dataset", "collect", "--env", "Pendulum-v1", "--recipe", "expert", "--policy", "random",
                 "--id", "rl/x-v0", "--root", str(tmp_path)]) == 1
    assert "'random' cannot be one" in capsys.readouterr().err


def test_a_recipe_uses_a_given_expert_instead_of_training_one(pendulum_expert) -> None:
    from robustrl.offline.collect import make_recipe

    data = make_recipe("Pendulum-v1", "expert", 2, seed=0, expert=pendulum_expert)
    assert data.meta["expert"] == "given" and data.meta["expert_steps"] is None
    assert data.ref_max_score == data.meta["ref_expert"] > data.ref_min_score + 500  # the swing-up's return: ≈ −150
    assert data.num_episodes == 2 and data.episode_returns().mean() > -400  # the swing-up expert's own episodes


def test_recipes_medium_replay_and_medium_expert() -> None:
    from robustrl.offline.collect import make_recipe

    # PPO CartPole at a small budget: the expert, then a second run stopped at a third of the way to it
    replay = make_recipe("CartPole-v1", "medium-replay", 3, seed=0, expert_steps=8192)
    m = replay.meta
    assert replay.ref_min_score == m["ref_random"] and replay.ref_max_score == m["ref_expert"]
    assert m["medium_target"] == pytest.approx(m["ref_random"] + (m["ref_expert"] - m["ref_random"]) / 3)
    assert replay.num_transitions <= m["medium_steps"]  # complete episodes of what the learner stepped
    for e in np.unique(replay.episode_ids):
        rows = np.flatnonzero(replay.episode_ids == e)
        assert (replay.terminations | replay.truncations)[rows[-1]]
        np.testing.assert_array_equal(replay.next_observations[rows[:-1]], replay.observations[rows[1:]])

    from robustrl.offline.collect import concat

    mixed = concat([replay, replay.select(replay.episode_ids < 2)])  # how medium-expert joins its two parts
    assert mixed.num_episodes == replay.num_episodes + 2
    np.testing.assert_array_equal(np.unique(mixed.episode_ids), np.arange(mixed.num_episodes))
    with pytest.raises(ValueError, match="unknown recipe"):
        make_recipe("CartPole-v1", "mediocre", 3)
