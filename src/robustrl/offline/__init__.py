"""Offline RL: Minari datasets, data corruption, and learners (BC, IQL, RIQL, CQL, TD3+BC).

Example:
    >>> import robustrl
    >>> from robustrl.offline import CorruptionConfig, RandomPolicy, collect_episodes, corrupt
    >>> env = robustrl.make_env("Pendulum-v1", 2, seed=0)
    >>> data = collect_episodes(RandomPolicy(env.observation_space, env.action_space), env, 2, seed=0)
    >>> data.num_transitions, corrupt(data, CorruptionConfig("rewards", rate=1.0)).corrupted[:, 2].all()
    (400, np.True_)
"""

from robustrl.offline.collect import RECIPES, RandomPolicy, RecordingVecEnv, collect_episodes, make_recipe
from robustrl.offline.corruption import CorruptionConfig, corrupt
from robustrl.offline.data import ELEMENTS, OfflineDataset, load_dataset, save_npz, write_minari
from robustrl.offline.dataset_cli import DatasetConfig, dataset, summarize
from robustrl.offline.measures import state_action_coverage, trajectory_quality, unique_state_actions
from robustrl.offline.online import OnlineConfig
from robustrl.offline.train import OFFLINE_ALGORITHMS, OfflineTrainConfig, train_offline
from robustrl.offline.weighting import return_weights

__all__ = [
    "ELEMENTS",
    "OFFLINE_ALGORITHMS",
    "RECIPES",
    "CorruptionConfig",
    "DatasetConfig",
    "OfflineDataset",
    "OfflineTrainConfig",
    "OnlineConfig",
    "RandomPolicy",
    "RecordingVecEnv",
    "collect_episodes",
    "corrupt",
    "dataset",
    "load_dataset",
    "make_recipe",
    "return_weights",
    "save_npz",
    "state_action_coverage",
    "summarize",
    "train_offline",
    "trajectory_quality",
    "unique_state_actions",
    "write_minari",
]
