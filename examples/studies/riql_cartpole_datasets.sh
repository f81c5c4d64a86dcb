#!/usr/bin/env bash
# Datasets of the corrupted-data protocol at CartPole scale (Discrete actions; minutes, not hours):
#   1. CartPole-v1 medium-replay: every transition of a PPO run stopped at a third of a PPO expert's return
#      (both trained here by the recipe);
#   2. a discrete CQL Q network trained on the clean data (what the adversarial corruption minimises);
#   3. random and adversarial corruption of obs, rewards and next_obs at RIQL's c = 0.3, ε = 1.0 (action
#      corruption needs Box actions).
# Every step is skipped when its output exists, so the script resumes. Then run the study:
#   robustrl sweep examples/studies/riql_cartpole.toml --out runs/riql_cartpole
#
#   ROOT=runs/riql_cartpole/datasets bash examples/studies/riql_cartpole_datasets.sh
set -euo pipefail
ROOT=${ROOT:-runs/riql_cartpole/datasets}
CLEAN=robustrl/cartpole-medium-replay-v0
CRITIC=${CRITIC:-runs/riql_cartpole/critic}
export ROBUSTRL_NUM_THREADS=${ROBUSTRL_NUM_THREADS:-1}

if [ ! -d "$ROOT/$CLEAN" ]; then
  robustrl dataset collect --recipe medium-replay --env CartPole-v1 --seed 0 --id "$CLEAN" --root "$ROOT"
fi
if [ ! -f "$CRITIC/result.json" ]; then
  robustrl train-offline --algo cql --dataset "$CLEAN" --root "$ROOT" --updates 3000 --eval-every 0 \
    --set hidden=64,64 learning_rate=1e-3 --out "$CRITIC" --overwrite
fi
for mode in random adversarial; do
  for element in obs rewards next_obs; do
    id=robustrl/cartpole-mr-$mode-${element//_/-}-v0
    if [ ! -d "$ROOT/$id" ]; then
      robustrl dataset corrupt "$CLEAN" --root "$ROOT" --element "$element" --mode "$mode" --rate 0.3 \
        --scale 1.0 --critic "$CRITIC" --seed 0 --id "$id"
    fi
  done
done
robustrl dataset info "$CLEAN" --root "$ROOT"
