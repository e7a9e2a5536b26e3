#!/usr/bin/env bash
# Runs configs/consistent-teaching.toml once per seed (all 55,000 labels, the teacher live on
# the student's mixed-up batch) and prints the paired comparison with the scratch student.
#   SEEDS    the seeds (default "1 2 3")
#   EPOCHS   the students' epochs (default 20; the config's own is 12)
#   THREADS  libtorch threads (default: libtorch's own, the number of cores)
# Seed N reuses runs/quickstart/seed-N/teacher.safetensors when scripts/quickstart-seeds.sh
# has left one (the same teacher architecture), and trains its own teacher otherwise.
# Each run's log is runs/consistent-teaching/seed-N.log.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask setup
cargo xtask fetch-data
cargo build --release --package kd-cli
mkdir -p runs/consistent-teaching
dirs=()
for seed in ${SEEDS:-1 2 3}; do
  args=(--seed "$seed" --out "runs/consistent-teaching/seed-$seed"
    --set "student.train.epochs=${EPOCHS:-20}")
  if [ -n "${THREADS:-}" ]; then args+=(--threads "$THREADS"); fi
  teacher="runs/quickstart/seed-$seed/teacher.safetensors"
  if [ -f "$teacher" ]; then args+=(--set "teacher.checkpoint=$teacher"); fi
  ./target/release/kd-cli run configs/consistent-teaching.toml "${args[@]}" \
    > "runs/consistent-teaching/seed-$seed.log" 2>&1 ||
    { echo "seed $seed failed: see runs/consistent-teaching/seed-$seed.log" >&2; exit 1; }
  dirs+=("runs/consistent-teaching/seed-$seed")
done
./target/release/kd-cli compare "${dirs[@]}"
