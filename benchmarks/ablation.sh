#!/usr/bin/env bash
# The README's ablation table: each row is benchmarks/solve.py on seeds 0-4,
# 500 episodes and 180 s of training per seed, two seeds at a time, each on
# its own core. Usage: bash benchmarks/ablation.sh [SUMMARY.md]
set -euo pipefail
cd "$(dirname "$0")"
summary=${1:-runs/ablation.md}
mkdir -p "$(dirname "$summary")"
run() {
    name=$1
    shift
    "${PYTHON:-python}" solve.py --name "$name" --jobs 2 --summary "$summary" -- "$@"
}
run "tutorial agent as written" --agent tutorial
run "second source as written" --agent target
run "+ sync every 250 replays" --agent target --sync-by replay --sync-every 250
run "+ exploration decay 0.98" --agent target --sync-by replay --sync-every 250 \
    --exploration-decay 0.98
run "+ learning rate 0.0005" --agent target --sync-by replay --sync-every 250 \
    --exploration-decay 0.98 --learning-rate 0.0005
run "+ Double DQN (the recipe)" --agent target --sync-by replay --sync-every 250 \
    --exploration-decay 0.98 --learning-rate 0.0005 --double
run "recipe + Huber loss" --agent target --sync-by replay --sync-every 250 \
    --exploration-decay 0.98 --learning-rate 0.0005 --double --loss huber
