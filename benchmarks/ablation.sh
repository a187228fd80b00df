#!/usr/bin/env bash
# docs/results.md's "What each change buys": each row is benchmarks/solve.py on seeds
# 0-4, 500 episodes and 60 s of training per seed, two seeds at a time, each on its own
# core. The rows start from the two sources as written, then add the recipe's changes to
# the second source one at a time. Usage: bash benchmarks/ablation.sh [SUMMARY.md]
set -euo pipefail
cd "$(dirname "$0")"
summary=${1:-runs/ablation.md}
mkdir -p "$(dirname "$summary")"
run() {
    name=$1
    shift
    "${PYTHON:-python}" solve.py --name "$name" --jobs 2 --seconds 60 --summary "$summary" -- "$@"
}
source="--agent target"
run "tutorial agent as written" --agent tutorial
run "second source as written" $source
source="$source --hidden 64 64"
run "+ hidden layers 64 64" $source
source="$source --tau 0.1"
run "+ soft target updates (tau 0.1, every replay)" $source
source="$source --exploration-steps 5000"
run "+ exploration over 5000 steps" $source
source="$source --double"
run "+ Double DQN" $source
source="$source --n-step 5"
run "+ 5-step returns" $source
source="$source --gamma 0.995"
run "+ gamma 0.995" $source
run "+ a replay of 128 every 8 steps, two gradient steps of 64 (the recipe)" --recipe
