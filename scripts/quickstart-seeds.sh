#!/usr/bin/env bash
# Runs configs/quickstart.toml once per seed and prints the comparison that the README's
# results table reports: per seed, mean and standard deviation, and the paired gain
# (distilled - scratch) with its 95% confidence interval.
#   SEEDS    the seeds (default "1 2 3 4 5")
#   JOBS     how many runs at once (default 1)
#   THREADS  libtorch threads per run (default: libtorch's own, the number of cores)
# The README's table: the defaults (one run at a time on all cores). Each run's log is
# runs/quickstart/seed-N.log.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask setup
cargo xtask fetch-data
cargo build --release --package kd-cli
mkdir -p runs/quickstart
args=()
if [ -n "${THREADS:-}" ]; then args+=(--threads "$THREADS"); fi
seeds=(${SEEDS:-1 2 3 4 5})
dirs=()
pids=()
failed=0
# Waits for the oldest running seed; reports it if it failed.
wait_oldest() {
  local pid=${pids[0]} seed=${pid_seeds[0]}
  pids=("${pids[@]:1}")
  pid_seeds=("${pid_seeds[@]:1}")
  if ! wait "$pid"; then
    echo "seed $seed failed: see runs/quickstart/seed-$seed.log" >&2
    failed=1
  fi
}
pid_seeds=()
for seed in "${seeds[@]}"; do
  ./target/release/kd-cli run configs/quickstart.toml --seed "$seed" ${args[@]+"${args[@]}"} \
    > "runs/quickstart/seed-$seed.log" 2>&1 &
  pids+=($!)
  pid_seeds+=("$seed")
  dirs+=("runs/quickstart/seed-$seed")
  if [ "${#pids[@]}" -ge "${JOBS:-1}" ]; then wait_oldest; fi
done
while [ "${#pids[@]}" -gt 0 ]; do wait_oldest; done
if [ "$failed" -ne 0 ]; then exit 1; fi
./target/release/kd-cli compare "${dirs[@]}"
