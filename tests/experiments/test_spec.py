"""The study spec: parsing, every problem reported with file/line/table/key/field, grid expansion, cell hashes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from studyutil import tiny_spec

from robustrl.common.config import add_config_arguments, config_from_namespace
from robustrl.experiments.cells import cell_hash, expand, load_study
from robustrl.experiments.cli import ResultsConfig, SweepConfig, run_sweep
from robustrl.experiments.locate import StudySpecError, TomlLocator
from robustrl.experiments.spec import coerce, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "studies"


def problems(text: str, name: str = "s.toml") -> list[str]:
    with pytest.raises(StudySpecError) as info:
        expand(parse_spec(text, name))
    return [str(p) for p in info.value.problems]


def test_every_example_study_loads_and_expands(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))  # no datasets: offline studies name each missing one
    counts = {}
    for path in sorted(EXAMPLES.glob("*.toml")):
        if "[train_offline]" in path.read_text():
            with pytest.raises(StudySpecError) as err:
                load_study(path)
            datasets = parse_spec(path.read_text(), path).train.grid[0][1]
            assert len(err.value.problems) == len(datasets) > 1
            assert all("no Minari dataset" in str(p) for p in err.value.problems)
            continue
        study = load_study(path)
        counts[path.stem] = {s: study.count(s) for s in ("train", "evaluate", "certify", "dynamics")}
        assert len({c.cell_hash for c in study.cells}) == len(study.cells)
    assert counts["quick"] == {"train": 4, "evaluate": 4, "certify": 4, "dynamics": 0}
    assert set(counts) >= {"quick", "observation_attacks", "dynamics"}


def test_grid_expands_methods_axes_seeds_and_stage_grids(tmp_path):
    text = """
[study]
name = "g"
seeds = [0, 1, 2]
[train]
env = "CartPole-v1"
total_steps = 256
[grid]
algo = ["ppo", "dqn"]
[evaluate]
threat = ["uniform"]
budgets = [0.0, 0.1]
episodes = 2
[evaluate.grid]
normalized = [false, true]
"""
    study = expand(parse_spec(text, tmp_path / "g.toml"))
    train = [c for c in study.cells if c.stage == "train"]
    evals = [c for c in study.cells if c.stage == "evaluate"]
    assert len(train) == 2 * 3 and len(evals) == 2 * 3 * 2
    assert {(c.labels["method"], c.labels["seed"]) for c in train} == {(a, s) for a in ("ppo", "dqn") for s in range(3)}
    by_hash = study.by_hash()
    for c in evals:
        parent = by_hash[c.parent]
        assert c.config["policy"] == f"artefacts/{parent.cell_hash}/policy.zip"
        assert c.config["env"] == parent.config["env"] and c.config["seed"] == parent.config["seed"]
        assert c.labels["normalized"] == c.config["normalized"]
        assert c.config["out"] == f"artefacts/{c.cell_hash}/result.json" and c.config["progress"] is False
    assert train[0].config["out"] == f"artefacts/{train[0].cell_hash}"


def test_problems_name_file_line_table_key_and_field():
    text = """[study]
name = "bad"
seeds = [0]
colour = "red"

[train]
total_steps = "many"
env = "CartPol-v1"

[[method]]
name = "a"

[[method]]
name = "b"
train = { obs_nois = 0.2 }

[evaluate]
threat = ["pgdd"]
episodes = 0

[certify]
episodes = 100
"""
    found = problems(text)
    text_of = "\n".join(found)
    assert "s.toml:4: [study] colour: unknown [study] key 'colour'" in text_of
    assert "s.toml:7: [train] total_steps: TrainConfig.total_steps: expected a whole number" in text_of
    assert "s.toml:15: [[method]] #2 train.obs_nois: unknown TrainConfig field 'obs_nois'; did you mean" in text_of
    # value checks need the parsed types, so they come once the structure is right
    fixed = text.replace('colour = "red"\n', "").replace('"many"', "256").replace("obs_nois", "obs_noise")
    found = "\n".join(problems(fixed))
    assert "[train] env: TrainConfig.env: unknown environment id 'CartPol-v1'; did you mean ['CartPole-v1'" in found
    assert "s.toml:17: [evaluate] threat: EvaluateConfig.threat: unknown threat 'pgdd'; did you mean ['pgd']?" in found
    head = "s.toml:18: [evaluate] episodes: EvaluateConfig.episodes:"
    line = next(x for x in found.splitlines() if x.startswith(head))
    assert "got 0 (cell method=a" in line  # several problems of one config, each on its own key
    assert "and 1 more cell)" in found  # one problem of two cells is reported once
    assert found.count("unknown environment id") == 1  # not again for the evaluation cells of those policies
    assert "[certify]: CertifyConfig.sigma is required: set it in [certify]" in found


def test_syntax_error_names_the_line():
    found = problems('[study]\nname = "x"\nseeds = [0,\n[train]\n')
    assert len(found) == 1 and found[0].startswith("s.toml:") and "(syntax)" in found[0]


def test_sweep_managed_fields_and_seed_are_refused():
    text = '[study]\nname = "x"\n[train]\nout = "elsewhere"\nseed = 3\n[evaluate]\npolicy = "p.zip"\n'
    found = "\n".join(problems(text))
    assert "[train] out: TrainConfig.out is set by the sweep for every cell" in found
    assert "[train] seed: TrainConfig.seed is given in [study] seeds" in found
    assert "[evaluate] policy: EvaluateConfig.policy is set by the sweep" in found


def test_hash_changes_only_for_changed_cells(tmp_path):
    base = load_study(tiny_spec(tmp_path / "a.toml"))
    again = load_study(tiny_spec(tmp_path / "b.toml"))
    assert [c.cell_hash for c in base.cells] == [c.cell_hash for c in again.cells]
    more = load_study(tiny_spec(tmp_path / "c.toml", budgets="[0.0, 0.1, 0.2]"))
    changed = {c.stage for c, d in zip(base.cells, more.cells) if c.cell_hash != d.cell_hash}
    assert changed == {"evaluate"}
    longer = load_study(tiny_spec(tmp_path / "d.toml", steps=640))
    changed = {c.stage for c, d in zip(base.cells, longer.cells) if c.cell_hash != d.cell_hash}
    assert changed == {"train", "evaluate", "certify"}  # evaluation cells name their training cell


def test_hash_ignores_output_paths_and_progress():
    cfg = {"sigma": 0.2, "episodes": 10}
    assert cell_hash("certify", {**cfg, "out": "a", "progress": True}) == cell_hash("certify", cfg)
    assert cell_hash("certify", {**cfg, "episodes": 11}) != cell_hash("certify", cfg)
    assert cell_hash("evaluate", {"policy": "/x/p.zip"}, policy_digest="ab") == cell_hash(
        "evaluate", {"policy": "/y/q.zip"}, policy_digest="ab"
    )


def test_policy_files_enter_by_content(tmp_path):
    policy = tmp_path / "p.zip"
    policy.write_bytes(b"one")
    text = f'[study]\nname = "p"\n[[policy]]\nname = "mine"\npath = "{policy.name}"\nenv = "CartPole-v1"\n' \
           '[evaluate]\nthreat = ["uniform"]\nbudgets = [0.0, 0.1]\n'
    first = expand(parse_spec(text, tmp_path / "s.toml"))
    assert [c.config["policy"] for c in first.cells] == [str(policy.resolve())]
    policy.write_bytes(b"two")
    assert expand(parse_spec(text, tmp_path / "s.toml")).cells[0].cell_hash != first.cells[0].cell_hash
    missing = "\n".join(problems(text.replace('"p.zip"', '"nope.zip"'), str(tmp_path / "s.toml")))
    assert "[[policy]] #1 path: no policy file" in missing


def test_coerce_reads_toml_values_as_field_types():
    assert coerce(1, float) == 1.0 and isinstance(coerce(1, float), float)
    assert coerce("pgd", tuple[str, ...]) == ("pgd",)
    assert coerce([0, 0.5], tuple[float, ...]) == (0.0, 0.5)
    assert coerce("none", float | None) is None
    with pytest.raises(ValueError, match="expected true or false"):
        coerce(1, bool)
    with pytest.raises(ValueError, match="did you mean"):
        from typing import Literal

        coerce("ppo2", Literal["ppo", "dqn"])


def test_locator_finds_keys_in_tables_arrays_and_inline_tables():
    text = (
        '[study]\nname = "x"\n\n[[method]]\nname = "a"\n[[method]]\nname = "b"\n'
        'train = { obs_noise = 0.2, set = ["a=1"] }\n[evaluate.grid]\nbudgets = [\n  [0.0],\n]\n'
    )
    loc = TomlLocator(text)
    assert loc.line(("study", "name")) == 2
    assert loc.line(("method", 0, "name")) == 5
    assert loc.line(("method", 1, "train", "set")) == 8
    assert loc.line(("evaluate", "grid", "budgets")) == 10
    assert loc.line(("evaluate", "grid", "nothing")) == 9  # falls back to the table


def test_dry_run_counts_cells_and_cost_and_writes_nothing(tmp_path):
    spec = tiny_spec(tmp_path / "tiny.toml")
    out = tmp_path / "study"
    res = run_sweep(SweepConfig(spec, out, dry_run=True))
    text = str(res)
    assert not res.executed and not out.exists()
    assert res.plan.cells == 12 and res.plan.to_run == 12 and len(res.plan.stages) == 3
    assert "12 cells in 3 stages; 12 to run" in text and "estimated cost" in text
    assert all(s.seconds > 0 and not s.calibrated for s in res.plan.stages)


def test_cli_configs_parse_as_the_console_script_would(tmp_path):
    p = argparse.ArgumentParser()
    add_config_arguments(p, SweepConfig, positional=("spec",))
    cfg = config_from_namespace(SweepConfig, p.parse_args(["s.toml", "--out", "d", "--dry-run", "--executor", "ray"]))
    assert cfg == SweepConfig(Path("s.toml"), Path("d"), executor="ray", dry_run=True)
    p = argparse.ArgumentParser()
    add_config_arguments(p, ResultsConfig, positional=("study",))
    cfg = config_from_namespace(ResultsConfig, p.parse_args(["d", "--group-by", "method,env", "--format", "csv"]))
    assert cfg.group_by == ("method,env",) and cfg.format == "csv"


def test_bad_sweep_options_fail_before_any_work(tmp_path):
    spec = tiny_spec(tmp_path / "tiny.toml")
    with pytest.raises(ValueError, match="workers must be ≥ 0"):
        run_sweep(SweepConfig(spec, tmp_path / "o", workers=-1))
    with pytest.raises(ValueError, match="retries must be ≥ 0"):
        run_sweep(SweepConfig(spec, tmp_path / "o", retries=-1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run_sweep(SweepConfig(spec, tmp_path / "file"))
    with pytest.raises(FileNotFoundError):
        run_sweep(SweepConfig(tmp_path / "missing.toml", tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_a_config_field_added_with_its_default_keeps_existing_cells() -> None:
    from robustrl.agents import TrainConfig
    from robustrl.common.config import config_to_dict

    now = config_to_dict(TrainConfig(algo="sac", env="Hopper-v5", total_steps=300_000, eval_every=25_000))
    before = {k: v for k, v in now.items() if k not in ("uncertainty_set", "env_randomize")}  # an older config
    assert cell_hash("train", before) == cell_hash("train", now)
    assert cell_hash("train", now) != cell_hash("train", {**now, "uncertainty_set": "hopper-2d-v1"})
    assert cell_hash("train", now) != cell_hash("train", {**now, "total_steps": 200_000})


def test_the_cost_of_a_suite_cell_counts_its_attacks_and_its_adversaries_training():
    from robustrl.experiments.stages import DEFAULT_SECONDS_PER_UNIT, cost_units

    def units(suite, env, budgets=(0.0, 0.1)):
        return cost_units("evaluate", {"env": env, "episodes": 32, "budgets": list(budgets), "threat": [],
                                       "suite": suite})  # fmt: skip

    step = DEFAULT_SECONDS_PER_UNIT["train"] / DEFAULT_SECONDS_PER_UNIT["evaluate"]
    # sa-mdp-v1 at one budget: clean + random (1) + critic, MAD, robust Sarsa (1 + 10 steps each) + sa-rl (1)
    # + pa-ad (1 + 10 actor steps) rollouts, and 60k + 60k adversary steps + 50k robust-Sarsa steps of training
    assert units("sa-mdp-v1", "CartPole-v1") == pytest.approx(32 * (1 + 1 + 11 + 11 + 11 + 1 + 11)
                                                              + 170_000 * step)  # fmt: skip
    # every budget > 0 repeats the attacks and the training; the clean rollout is shared
    one = units("sa-mdp-v1", "CartPole-v1")
    assert units("sa-mdp-v1", "CartPole-v1", (0.0, 0.05, 0.1)) == pytest.approx(2 * one - 32)
    assert units("sa-mdp-v2", "Hopper-v5") > units("sa-mdp-v2", "CartPole-v1") > units("sa-mdp-v1", "CartPole-v1")
    assert units("sa-mdp-v2", "Hopper-v5") - units("sa-mdp-v2", "CartPole-v1") == pytest.approx(2 * 1_800_000 * step)
    assert cost_units("evaluate", {"episodes": 32, "budgets": [0.0, 0.1], "threat": []}) == 32
