#!/usr/bin/env bash
# GPU speed check, run on the device machine by the `device` tool. It builds nothing: it runs
# the release binary built here and the PyTorch anchor, both carried in dist/ (see
# scripts/device-prepare.sh), with the device's own PyTorch 2.11 libraries, and prints one
# table: `kd-cli bench` (f32 and bf16, channels-last) against PyTorch eager (f32, with and
# without channels-last) on the same card, then the wall time of the seed's full schedule
# (configs/gpu-seed-schedule.toml) on 50,000 synthetic CIFAR-format images.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
KD=${KD:-dist/kd-cli}
OUT=${OUT:-${OUT_DIR:-/tmp}/device-bench.jsonl}
STEPS=${STEPS:-30}
: > "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$KD" env

for round in 1 2; do
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 >> "$OUT"
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --channels-last >> "$OUT"
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --channels-last --precision bf16 >> "$OUT"
  "$PYTHON" dist/anchors/torch_seed.py --device cuda --steps "$STEPS" --warmup 5 >> "$OUT"
  "$PYTHON" dist/anchors/torch_seed.py --device cuda --steps "$STEPS" --warmup 5 --channels-last >> "$OUT"
done

# 50,000 + 10,000 random 32x32x3 images in the CIFAR-10 binary format.
DATA=target/synthetic-cifar-10-batches-bin
mkdir -p "$DATA"
"$PYTHON" - "$DATA" <<'PY'
import os, sys, torch
g = torch.Generator().manual_seed(0)
def write(name, n):
    rec = torch.randint(0, 256, (n, 3073), dtype=torch.uint8, generator=g)
    rec[:, 0] = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=g)
    open(os.path.join(sys.argv[1], name), "wb").write(rec.numpy().tobytes() if hasattr(rec, "numpy") else bytes(rec.flatten().tolist()))
for i in range(1, 6):
    write(f"data_batch_{i}.bin", 10000)
write("test_batch.bin", 10000)
PY
"$KD" run configs/gpu-seed-schedule.toml --out target/gpu-seed-schedule > /tmp/schedule.log 2>&1 || { tail -20 /tmp/schedule.log; exit 1; }
tail -8 /tmp/schedule.log

echo
echo "## kd vs PyTorch eager, images/s ($STEPS timed steps, batch 128)"
"$PYTHON" scripts/bench-table.py "$OUT"
echo
"$PYTHON" - <<'PY'
import json
r = json.load(open("target/gpu-seed-schedule/report.json"))
print(f"seed schedule (VGG19 25 epochs + 2 students x 20 epochs, 50k images, {r['precision']}): "
      f"{r['total_seconds']:.1f} s wall, peak RSS {r['peak_rss_mib']:.0f} MiB")
PY
