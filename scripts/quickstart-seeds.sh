#!/usr/bin/env bash
# Runs configs/quickstart.toml once per seed and prints the comparison that the README's
# results table reports (per seed, mean and standard deviation). Seeds: $SEEDS (default 1 2 3).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask setup
cargo xtask fetch-data
cargo build --release --package kd-cli
dirs=()
for seed in ${SEEDS:-1 2 3}; do
  ./target/release/kd-cli run configs/quickstart.toml --seed "$seed"
  dirs+=("runs/quickstart/seed-$seed")
done
./target/release/kd-cli compare "${dirs[@]}"
