#!/usr/bin/env bash
# Side-by-side CPU throughput at batch 128: `kd-cli bench` (f32, f32 channels-last, bf16
# channels-last) and the anchor scripts (PyTorch eager with and without channels-last,
# Keras), alternating for ROUNDS rounds in one session, then a table of medians
# (scripts/bench-table.py). The anchors live in ../shared/anchors or ANCHORS.
#
#   scripts/cpu-bench.sh                      # ROUNDS=2 THREADS=2
#   KERAS_PYTHON=/path/to/tf-venv/bin/python scripts/cpu-bench.sh
#   WITH_TORCH_BF16=1 scripts/cpu-bench.sh    # also PyTorch under bf16 autocast
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
ANCHORS=${ANCHORS:-../shared/anchors}
PYTHON=${KD_VENV:-.venv}/bin/python
OUT=${OUT:-target/cpu-bench.jsonl}
cargo build --release -p kd-cli
KD=target/release/kd-cli
: > "$OUT"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  $KD bench --device cpu --threads "$THREADS" >> "$OUT"
  $KD bench --device cpu --threads "$THREADS" --channels-last >> "$OUT"
  $KD bench --device cpu --threads "$THREADS" --channels-last --precision bf16 >> "$OUT"
  "$PYTHON" "$ANCHORS/torch_seed.py" --threads "$THREADS" 2>/dev/null >> "$OUT"
  "$PYTHON" "$ANCHORS/torch_seed.py" --threads "$THREADS" --channels-last 2>/dev/null >> "$OUT"
  if [ -n "${WITH_TORCH_BF16:-}" ]; then   # PyTorch's own bf16 autocast, for reference
    "$PYTHON" scripts/torch-autocast-bf16.py --anchors "$ANCHORS" --threads "$THREADS" 2>/dev/null >> "$OUT"
  fi
  if [ -n "${KERAS_PYTHON:-}" ]; then
    "$KERAS_PYTHON" "$ANCHORS/keras_seed.py" 2>/dev/null | grep '^{' >> "$OUT"
  fi
done
python3 scripts/bench-table.py "$OUT"
