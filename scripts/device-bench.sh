#!/usr/bin/env bash
# GPU check, run on the device machine by the `device` tool: `kd-cli doctor --device cuda`,
# then the speed check. It builds nothing: it runs the release binary built here and the
# PyTorch anchors, carried in dist/ (see scripts/device-prepare.sh), with the device's own
# PyTorch 2.11 libraries, and prints as it goes:
#   1. the doctor's table (graph steps = eager steps, NCCL all-reduce, ...);
#   2. `kd-cli bench` (f32; bf16 + channels-last; each eager and with --cuda-graphs) against
#      PyTorch eager (f32, with and without channels-last), images/s at batch 128;
#   3. a CUDA kill-and-resume check;
#   4. the seed's full schedule (configs/gpu-seed-schedule.toml, 50,000 synthetic
#      CIFAR-format images): kd with CUDA graphs (its default) and without, against
#      ../shared/anchors/torch_seed_schedule.py eager f32, eager bf16 + channels-last + cached
#      logits, and torch.compile max-autotune / reduce-overhead (compile time counted), each
#      under a time limit (SCHEDULE_LIMIT seconds) so that a slow form cannot eat the rest;
#      one table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
# kd's CUDA part links the CUDA runtime that pip installs beside torch.
CUDART_LIB=$(dirname "$(ls "$TORCH_LIB"/../../nvidia/*/lib/libcudart.so.13 2>/dev/null | head -1)" 2>/dev/null || true)
[ -n "$CUDART_LIB" ] && [ -e "$CUDART_LIB/libcudart.so.13" ] || { echo "no libcudart.so.13 beside this torch: kd-cli is built for CUDA 13 (torch 2.11+cu130)"; CUDART_LIB=; }
export LD_LIBRARY_PATH="$TORCH_LIB${CUDART_LIB:+:$CUDART_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --mode teacher,student,distill,distill-cached --cuda-graphs >> "$OUT" \
    || echo "kd-cli bench --cuda-graphs failed"
  "$KD" bench --device cuda --steps "$STEPS" --warmup 5 --mode teacher,student,distill,distill-cached --cuda-graphs \
    --channels-last --precision bf16 >> "$OUT" || echo "kd-cli bench --cuda-graphs (bf16) failed"
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

# The seed's full schedule, last (the longest part): kd and the PyTorch forms, one after the
# other on the same card, each line printed as it finishes.
SCHEDULE_LIMIT=${SCHEDULE_LIMIT:-150}
SCHED=target/schedule.jsonl
: > "$SCHED"
kd_schedule() {  # label, extra --set arguments
  local label=$1; shift
  if timeout "$SCHEDULE_LIMIT" "$KD" -q run configs/gpu-seed-schedule.toml "$@" --out "target/schedule-$label" \
      > "/tmp/schedule-$label.log" 2>&1; then
    "$PYTHON" - "$label" "target/schedule-$label/report.json" >> "$SCHED" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(json.dumps({"impl": "kd " + sys.argv[1], "total_s": r["total_seconds"],
                  "train_s": {m["role"]: m["train_seconds"] for m in r["models"]},
                  "acc": {m["role"]: m["test_accuracy"] for m in r["models"]}}))
PY
  else
    echo "{\"impl\": \"kd $label\", \"failed\": \"exit or over ${SCHEDULE_LIMIT} s\"}" >> "$SCHED"
    tail -5 "/tmp/schedule-$label.log"
  fi
  tail -1 "$SCHED"
}
torch_schedule() {  # label, torch_seed_schedule.py arguments
  local label=$1; shift
  if ! timeout "$SCHEDULE_LIMIT" "$PYTHON" dist/anchors/torch_seed_schedule.py --device cuda \
      --cifar-dir "$DATA" "$@" > "/tmp/torch-$label.json" 2> "/tmp/torch-$label.log"; then
    echo "{\"impl\": \"pytorch $label\", \"failed\": \"exit or over ${SCHEDULE_LIMIT} s\"}" > "/tmp/torch-$label.json"
    tail -5 "/tmp/torch-$label.log"
  fi
  "$PYTHON" -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); r["impl"]="pytorch "+sys.argv[2]; print(json.dumps(r))' \
    "/tmp/torch-$label.json" "$label" >> "$SCHED"
  tail -1 "$SCHED"
}
echo
echo "## the seed's schedule (limit ${SCHEDULE_LIMIT} s each)"
kd_schedule graphs
kd_schedule eager --set teacher.train.cuda_graphs=false --set student.train.cuda_graphs=false
torch_schedule eager-f32
torch_schedule eager-bf16-cl-cached --precision bf16 --channels-last --cache-logits
torch_schedule compile-reduce-overhead --precision bf16 --channels-last --cache-logits --compile reduce-overhead
torch_schedule compile-max-autotune --precision bf16 --channels-last --cache-logits --compile max-autotune
echo
"$PYTHON" - "$SCHED" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = [r for r in rows if "total_s" in r]
best_torch = min((r["total_s"] for r in ok if r["impl"].startswith("pytorch")), default=None)
torch_f32 = next((r["total_s"] for r in ok if r["impl"] == "pytorch eager-f32"), None)
print("| form | total s | vs best PyTorch | vs PyTorch eager f32 |")
print("|---|---|---|---|")
for r in rows:
    if "total_s" not in r:
        print(f"| {r['impl']} | {r['failed']} | | |")
        continue
    t = r["total_s"]
    ratio = lambda ref: f"{ref / t:.2f}x" if ref else "—"
    print(f"| {r['impl']} | {t:.1f} | {ratio(best_torch)} | {ratio(torch_f32)} |")
PY
