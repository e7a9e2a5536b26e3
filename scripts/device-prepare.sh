#!/usr/bin/env bash
# Builds the release kd-cli here and copies it with the PyTorch anchor into dist/ (ignored by
# git), which the `device` tool carries to the GPU machine for scripts/device-bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p kd-cli
mkdir -p dist/anchors
# Without debug info: the device tool carries at most 64 MiB.
strip -o dist/kd-cli target/release/kd-cli
cp "${ANCHORS:-../shared/anchors}/torch_seed.py" "${ANCHORS:-../shared/anchors}/torch_seed_schedule.py" dist/anchors/
ls -l dist dist/anchors
