#!/usr/bin/env bash
# Runs configs/quickstart.toml once per seed and prints the comparison that the README's
# results table reports (per seed, mean and standard deviation).
#   SEEDS    the seeds (default "1 2 3")
#   JOBS     how many runs at once (default 1)
#   THREADS  libtorch threads per run (default: libtorch's own, the number of cores)
# The README's table: SEEDS="1 2 3" JOBS=3 THREADS=1 (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask setup
cargo xtask fetch-data
cargo build --release --package kd-cli
threads=()
if [ -n "${THREADS:-}" ]; then threads=(--threads "$THREADS"); fi
dirs=()
running=0
for seed in ${SEEDS:-1 2 3}; do
  ./target/release/kd-cli -q run configs/quickstart.toml --seed "$seed" "${threads[@]}" \
    > "runs-quickstart-seed-$seed.log" 2>&1 &
  dirs+=("runs/quickstart/seed-$seed")
  running=$((running + 1))
  if [ "$running" -ge "${JOBS:-1}" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
./target/release/kd-cli compare "${dirs[@]}"
