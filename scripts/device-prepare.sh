#!/usr/bin/env bash
# Builds the release kd-cli here and copies it with the PyTorch anchors into dist/ (ignored by
# git), which the `device` tool carries to the GPU machine for scripts/device-bench.sh. The
# bench's helpers (scripts/device_tables.py, scripts/bench-table.py) travel with the working
# tree. On the GPU machine, with dist/ carried:
#
#   OUT=$OUT scripts/device-bench.sh          (about 9 minutes at most; see its header)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p kd-cli
mkdir -p dist/anchors
# Without debug info: the device tool carries at most 64 MiB.
strip -o dist/kd-cli target/release/kd-cli
cp "${ANCHORS:-../shared/anchors}/torch_seed.py" "${ANCHORS:-../shared/anchors}/torch_seed_schedule.py" dist/anchors/
ls -l dist dist/anchors
size_mib=$(( $(du -sk dist | cut -f1) / 1024 ))
if [ "$size_mib" -ge 60 ]; then
  echo "warning: dist/ is $size_mib MiB; the device tool carries at most 64 MiB with the working tree"
fi
