#!/usr/bin/env bash
# GPU check, run on the device machine by the `device` tool: `kd-cli doctor --device cuda`,
# then the speed check. It builds nothing: it runs
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
ROUNDS=${ROUNDS:-2}
: > "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$KD" env
# The device self-check first: a failing check is reported, and the timings still run.
"$KD" doctor --device cuda || echo "kd-cli doctor: some checks failed on this device"

for round in $(seq "$ROUNDS"); do
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 >> "$OUT"
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --channels-last >> "$OUT"
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --channels-last --precision bf16 >> "$OUT"
  "$PYTHON" dist/anchors/torch_seed.py --device cuda --steps "$STEPS" --warmup 5 >> "$OUT"
  "$PYTHON" dist/anchors/torch_seed.py --device cuda --steps "$STEPS" --warmup 5 --channels-last >> "$OUT"
done

echo
echo "## kd vs PyTorch eager, images/s ($STEPS timed steps, batch 128)"
"$PYTHON" scripts/bench-table.py "$OUT"

# 50,000 + 10,000 random 32x32x3 images in the CIFAR-10 binary format.
DATA=target/synthetic-cifar-10-batches-bin
mkdir -p "$DATA"
"$PYTHON" - "$DATA" <<'PY'
import os, random, sys
random.seed(0)
def write(name, n):
    # Records of 1 label byte + 3072 pixel bytes; pure Python (the device's PyTorch may come
    # without NumPy).
    rec = bytearray(random.randbytes(n * 3073))
    rec[0::3073] = bytes(random.randrange(10) for _ in range(n))
    open(os.path.join(sys.argv[1], name), "wb").write(rec)
for i in range(1, 6):
    write(f"data_batch_{i}.bin", 10000)
write("test_batch.bin", 10000)
PY
# Resume on CUDA: a short version of the same schedule, run whole and run killed (SIGKILL)
# after the teacher's first checkpoint and resumed; prints whether the results agree.
SHORT=(--set data.train_limit=5000 --set data.test_limit=2000 --set teacher.train.epochs=3
       --set student.train.epochs=2 --set student.train_images=0)
"$KD" -q run configs/gpu-seed-schedule.toml "${SHORT[@]}" --out target/resume-whole > /tmp/whole.log 2>&1 \
  || { tail -20 /tmp/whole.log; exit 1; }
rm -rf target/resume-cut
"$KD" -q run configs/gpu-seed-schedule.toml "${SHORT[@]}" --out target/resume-cut > /tmp/cut.log 2>&1 &
PID=$!
while [ ! -e target/resume-cut/checkpoints/teacher/last.safetensors ]; do
  kill -0 "$PID" 2>/dev/null || { echo "cut run ended before its first checkpoint"; tail -20 /tmp/cut.log; exit 1; }
  sleep 0.05
done
kill -9 "$PID"; wait "$PID" || true
"$KD" -q run configs/gpu-seed-schedule.toml "${SHORT[@]}" --resume target/resume-cut > /tmp/resume.log 2>&1 \
  || { tail -20 /tmp/resume.log; exit 1; }
echo
"$PYTHON" - <<'PY'
import json
a = json.load(open("target/resume-whole/report.json"))
b = json.load(open("target/resume-cut/report.json"))
print("## resume on CUDA (killed after the teacher's first checkpoint)")
for x, y in zip(a["models"], b["models"]):
    same = x["test_accuracy"] == y["test_accuracy"] and x["test_loss"] == y["test_loss"]
    print(f"{x['role']:>9}: uninterrupted {100*x['test_accuracy']:.2f}% loss {x['test_loss']:.6f} | "
          f"resumed {100*y['test_accuracy']:.2f}% loss {y['test_loss']:.6f} | identical: {same}")
PY

# The seed's full schedule, last (the longest part).
"$KD" run configs/gpu-seed-schedule.toml --out target/gpu-seed-schedule > /tmp/schedule.log 2>&1 || { tail -20 /tmp/schedule.log; exit 1; }
tail -8 /tmp/schedule.log

echo
"$PYTHON" - <<'PY'
import json
r = json.load(open("target/gpu-seed-schedule/report.json"))
print(f"seed schedule (VGG19 25 epochs + 2 students x 20 epochs, 50k images, {r['precision']}): "
      f"{r['total_seconds']:.1f} s wall, peak RSS {r['peak_rss_mib']:.0f} MiB")
PY
