#!/usr/bin/env bash
# Datasets of the RIQL-style Hopper protocol (issue 14), all generated here, nothing downloaded:
#   1. Hopper-v5 medium-replay: the replay of a SAC run stopped at a third of the expert's return, the expert
#      being a policy trained earlier (EXPERT, e.g. a TD3 Hopper run's policy.zip);
#   2. an IQL critic trained on the clean data (what the adversarial corruption minimises);
#   3. eight corrupted copies: random and adversarial corruption of obs, actions, rewards and next_obs at
#      RIQL's c = 0.3, ε = 1.0.
# Every step is skipped when its output exists, so the script resumes. Then run the study:
#   robustrl sweep examples/studies/riql_hopper.toml --out runs/riql_hopper --workers 2
#
#   EXPERT=runs/td3_hopper_s0/policy.zip ROOT=runs/riql/datasets bash examples/studies/riql_hopper_datasets.sh
set -euo pipefail
: "${EXPERT:?set EXPERT to the expert policy (a policy file or run folder)}"
ROOT=${ROOT:-runs/riql/datasets}
CRITIC=${CRITIC:-runs/riql/critic}
CRITIC_UPDATES=${CRITIC_UPDATES:-20000}
CLEAN=robustrl/hopper-medium-replay-v0
export ROBUSTRL_NUM_THREADS=${ROBUSTRL_NUM_THREADS:-1}

if [ ! -d "$ROOT/$CLEAN" ]; then
  robustrl dataset collect --recipe medium-replay --env Hopper-v5 --policy "$EXPERT" --id "$CLEAN" --root "$ROOT"
fi
if [ ! -f "$CRITIC/result.json" ]; then
  robustrl train-offline --algo iql --dataset "$CLEAN" --root "$ROOT" --updates "$CRITIC_UPDATES" --eval-every 0 \
    --out "$CRITIC" $([ -f "$CRITIC/checkpoint.pt" ] && echo --resume)
fi
for mode in random adversarial; do
  for element in obs actions rewards next_obs; do
    id=robustrl/hopper-mr-$mode-${element//_/-}-v0
    if [ ! -d "$ROOT/$id" ]; then
      robustrl dataset corrupt "$CLEAN" --root "$ROOT" --element "$element" --mode "$mode" --rate 0.3 --scale 1.0 \
        --critic "$CRITIC" --seed 0 --id "$id"
    fi
  done
done
robustrl dataset info "$CLEAN" --root "$ROOT"
