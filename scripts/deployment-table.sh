#!/usr/bin/env bash
# The table of docs/deployment.md, from one quickstart run: exports the teacher and the
# distilled student to ONNX (the student also as int8), prints each file's size and test
# accuracy, then times every model in every runtime in one `kd-cli bench --mode latency`.
#   RUN   the run directory (default runs/quickstart/seed-1, from scripts/quickstart-seeds.sh)
#   OUT   where the exported files go (default $RUN/export)
# Run it alone on the machine: latency is what it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${RUN:-runs/quickstart/seed-1}
out=${OUT:-$run/export}
cargo build --release --package kd-cli
kd=./target/release/kd-cli
mkdir -p "$out"
grep -m1 "model name" /proc/cpuinfo || true
echo "threads: $(nproc)"
$kd export "$run/teacher.safetensors" --format onnx --out "$out/teacher.onnx"
$kd export "$run/distilled.safetensors" --format onnx --out "$out/distilled.onnx"
$kd export "$run/distilled.safetensors" --format onnx --quantize int8 --out "$out/distilled.int8.onnx"
for model in "$run/teacher.safetensors" "$run/distilled.safetensors"; do
  $kd eval "$model" | head -1
done
$kd bench --mode latency "$run/teacher.safetensors" "$out/teacher.onnx" \
  "$run/distilled.safetensors" "$out/distilled.onnx" "$out/distilled.int8.onnx"
