#!/usr/bin/env bash
# The GPU check, run on the device machine by the `device` tool: it builds nothing, and runs
# the release binary built here and the PyTorch anchors, carried in dist/ (see
# scripts/device-prepare.sh), with the device's own PyTorch 2.11 libraries:
#
#   OUT=$OUT scripts/device-bench.sh          (the tool sets OUT; default: a new mktemp -d)
#
# Every command runs under `timeout -k 5 LIMIT`, and a step starts only when its limit fits
# before the deadline (BUDGET = 560 s after the start; otherwise it prints "skipped: not
# enough time left"). Nothing that fails stops the script: each step says why it failed or
# was skipped, and the script ends with a summary and exit status 0. The most valuable
# numbers come first:
#
#   0. preflight: nvidia-smi and `kd-cli env` (kd's own view of CUDA), CHECK_LIMIT each;
#      `PYTHON scripts/device_tables.py probe`, PROBE_LIMIT (a cold `import torch`): torch
#      must be 2.11.0+cu130, whose NCCL kd's shim is built against, and see a CUDA device,
#      otherwise every GPU step is skipped, one line each                 2 x 15 + 30 =  60 s
#   1. `kd-cli doctor --device cuda`, DOCTOR_LIMIT                                         60 s
#   2. training-step speed, images/s at batch 128 (STEPS timed steps, ROUNDS rounds),
#      BENCH_LIMIT each: `kd-cli bench` bf16 + channels-last eager and --cuda-graphs,
#      torch_seed.py eager f32 (the anchor), `kd-cli bench` f32 eager and --cuda-graphs;
#      the graphed runs are skipped when the doctor did not pass             5 x 20 = 100 s
#   2b. fused student populations: `kd-cli bench --mode population` (K = 1, 4, 12, 32
#      quickstart students, batch 32, 20 batches, bf16, against K solo fits), POP_LIMIT 30 s
#   3. the seed's full schedule (configs/gpu-seed-schedule.toml: 50,000 synthetic CIFAR-format
#      images written by DATA_LIMIT's step to target/, VGG19 25 epochs, two students 20):
#      kd with CUDA graphs (eager when the doctor did not pass), SCHED_KD_LIMIT; PyTorch
#      eager f32 and eager bf16 + channels-last + cached logits (torch_seed_schedule.py),
#      SCHED_TORCH_LIMIT each; a form stopped at its limit is shown as "> LIMIT"
#                                                                       10 + 90 + 2 x 75 = 250 s
#   4. a deterministic CUDA resume check (KD_DETERMINISTIC=1, CUBLAS_WORKSPACE_CONFIG=:4096:8):
#      a short schedule run whole, run again and killed (SIGKILL) once the teacher's first
#      checkpoint exists, then resumed; test accuracy and loss compared, RESUME_LIMIT each
#      (without CUDA graphs when the doctor did not pass; a failed run ends the check with
#      its reason)                                                               3 x 20 =  60 s
#      then torch.compile reduce-overhead (bf16 + channels-last + cached logits, compile time
#      counted) in whatever is left before the deadline, at most COMPILE_LIMIT (240 s), and
#      only when at least COMPILE_MIN (90 s) is left.
#
# The fixed limits add up to 60 + 60 + 100 + 30 + 250 + 60 = 560 s (with ROUNDS=1), under
# 10 minutes; the compiled form only uses what the others leave of the 560 s. torch.compile's
# max-autotune is not run: it benchmarks kernels for every convolution and matrix product
# before the first step, minutes for these three models, more than is left of one 10-minute
# device call (run torch_seed_schedule.py --compile max-autotune alone for it).
#
# What comes back (the device tool returns at most 8 files from $OUT): console.log (all of
# this output), details.log (each command's line, stdout, stderr and exit status),
# bench.jsonl, schedule.jsonl, reports.jsonl (each kd report.json as one line) and
# summary.md (the step results, the bench table of scripts/bench-table.py, the schedule table
# and the resume comparison; printed at the end). Scratch files and run directories go to a
# temporary folder (kept when KEEP_WORK=1), the 180 MB of images to target/.
#
# Settings (environment): PYTHON (python3), KD (dist/kd-cli; target/release/kd-cli works
# too), ANCHORS (dist/anchors), STEPS (30), ROUNDS (1), BUDGET (560) and each *_LIMIT above.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-python3}
KD=${KD:-dist/kd-cli}
if [ -z "${ANCHORS:-}" ]; then   # dist/anchors, or beside a checkout the shared copy
  ANCHORS=dist/anchors
  [ -e "$ANCHORS/torch_seed.py" ] || [ ! -e ../shared/anchors/torch_seed.py ] || ANCHORS=../shared/anchors
fi
STEPS=${STEPS:-30}
ROUNDS=${ROUNDS:-1}
BUDGET=${BUDGET:-560}
CHECK_LIMIT=${CHECK_LIMIT:-15}
PROBE_LIMIT=${PROBE_LIMIT:-30}
DOCTOR_LIMIT=${DOCTOR_LIMIT:-60}
BENCH_LIMIT=${BENCH_LIMIT:-20}
DATA_LIMIT=${DATA_LIMIT:-10}
SCHED_KD_LIMIT=${SCHED_KD_LIMIT:-90}
SCHED_TORCH_LIMIT=${SCHED_TORCH_LIMIT:-75}
RESUME_LIMIT=${RESUME_LIMIT:-20}
POP_LIMIT=${POP_LIMIT:-30}
COMPILE_LIMIT=${COMPILE_LIMIT:-240}
COMPILE_MIN=${COMPILE_MIN:-90}
KILL_GRACE=5          # timeout -k: SIGKILL this long after SIGTERM
SUMMARY_RESERVE=10    # kept free before the deadline for the tables
SKIPPED=254           # run_bounded's status for a command it did not start
DEADLINE=$((SECONDS + BUDGET))
DATA=target/synthetic-cifar-10-batches-bin   # the config's data.dir
CONFIG=configs/gpu-seed-schedule.toml
export PYTHONUNBUFFERED=1

# $OUT: a folder whose files come back from the device machine.
if [ -z "${OUT:-}" ] || ! mkdir -p "$OUT" 2>/dev/null || [ ! -d "$OUT" ] || [ ! -w "$OUT" ]; then
  [ -n "${OUT:-}" ] && echo "OUT=$OUT is not a writable folder; using a new one"
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/device-bench.XXXXXX") || { echo "cannot create an output folder"; exit 1; }
fi
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/device-bench-work.XXXXXX") || { echo "cannot create a scratch folder"; exit 1; }
: > "$OUT/console.log"; : > "$OUT/details.log"; : > "$OUT/bench.jsonl"
: > "$OUT/schedule.jsonl"; : > "$OUT/reports.jsonl"
exec > >(tee -a "$OUT/console.log") 2>&1
TEE_PID=$!
# shellcheck disable=SC2317  # called by the trap
cleanup() { [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

# The helper runs on any python3 (standard library only).
HELPER_PY=python3
command -v python3 > /dev/null 2>&1 || HELPER_PY=$PYTHON
tables() { "$HELPER_PY" scripts/device_tables.py "$@"; }

# One line per step: printed, and kept for the summary.
STEP_NAMES=(); STEP_RESULTS=()
note() {
  printf '%s: %s\n' "$1" "$2"
  STEP_NAMES+=("$1"); STEP_RESULTS+=("$2")
}
section() { printf '\n## %s  (%d s left)\n' "$1" $((DEADLINE - SECONDS)); }
fits() { (( $1 + KILL_GRACE <= DEADLINE - SECONDS )); }
indent() { sed 's/^/    /'; }

# run_bounded NAME LIMIT COMMAND...: runs COMMAND under `timeout` when LIMIT fits before the
# deadline; stdout to $LAST_OUT, stderr to $LAST_ERR, both appended to details.log. Prints
# one line; returns COMMAND's status, or $SKIPPED when it did not start.
LAST_OUT=/dev/null; LAST_ERR=/dev/null
run_bounded() {
  local name=$1 limit=$2; shift 2
  local slug start rc took
  slug=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
  LAST_OUT=$WORK/$slug.out; LAST_ERR=$WORK/$slug.err
  : > "$LAST_OUT"; : > "$LAST_ERR"
  if ! fits "$limit"; then
    note "$name" "skipped: not enough time left ($((DEADLINE - SECONDS)) s, needs $((limit + KILL_GRACE)) s)"
    return "$SKIPPED"
  fi
  start=$SECONDS
  timeout -k "$KILL_GRACE" "$limit" "$@" > "$LAST_OUT" 2> "$LAST_ERR"
  rc=$?
  took=$((SECONDS - start))
  {
    printf '===== %s (limit %s s):' "$name" "$limit"; printf ' %q' "$@"; echo
    cat "$LAST_OUT"; echo "----- stderr"; cat "$LAST_ERR"
    printf '===== exit %s after %s s\n\n' "$rc" "$took"
  } >> "$OUT/details.log"
  case $rc in
    0) note "$name" "ok ($took s)" ;;
    124|137) note "$name" "stopped: over its $limit s limit"; tail -n 5 "$LAST_ERR" | indent ;;
    126|127) note "$name" "failed: exit $rc (a command or library not found or not executable)"
             tail -n 3 "$LAST_ERR" | indent ;;
    *) note "$name" "failed: exit $rc after $took s"; tail -n 5 "$LAST_ERR" | indent ;;
  esac
  return "$rc"
}

echo "device-bench: output in $OUT, deadline in $BUDGET s"

# ---------------------------------------------------------------- 0. preflight
section "0. preflight"
if command -v nvidia-smi > /dev/null 2>&1; then
  run_bounded nvidia-smi "$CHECK_LIMIT" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    && indent < "$LAST_OUT"
else
  note nvidia-smi "not found (no NVIDIA driver tools on this machine)"
fi

GPU_REASON=""     # why the GPU steps cannot run; empty when they can
TORCH_VERSION=""; TORCH_CUDA=""; TORCH_LIB=""; CUDART_LIB=""; GPU_NAME=""
if ! command -v "$PYTHON" > /dev/null 2>&1; then
  GPU_REASON="no Python at PYTHON=$PYTHON"
  note torch "$GPU_REASON"
else
  run_bounded "torch probe" "$PROBE_LIMIT" "$PYTHON" scripts/device_tables.py probe
  probe_rc=$?
  while IFS='=' read -r key value; do
    case $key in
      version) TORCH_VERSION=$value ;;
      cuda) TORCH_CUDA=$value ;;
      name) GPU_NAME=$value ;;
      lib) TORCH_LIB=$value ;;
      cudart) CUDART_LIB=$value ;;
      error) GPU_REASON="$PYTHON cannot import torch ($value)" ;;
    esac
  done < "$LAST_OUT"
  if [ -z "$GPU_REASON" ] && [ "$probe_rc" != 0 ]; then
    GPU_REASON="the torch probe did not finish (exit $probe_rc)"
  elif [ -z "$GPU_REASON" ] && [[ $TORCH_VERSION != 2.11.0* || $TORCH_VERSION != *+cu130* ]]; then
    GPU_REASON="torch $TORCH_VERSION is not 2.11.0+cu130, the build whose NCCL kd's shim is linked against"
  elif [ -z "$GPU_REASON" ] && [ "$TORCH_CUDA" != yes ]; then
    GPU_REASON="no CUDA device (torch $TORCH_VERSION: torch.cuda.is_available() is False)"
  fi
  if [ -n "$GPU_REASON" ]; then
    note torch "$GPU_REASON"
  else
    note torch "$TORCH_VERSION sees $GPU_NAME"
  fi
fi
# kd-cli loads this torch's libtorch and the CUDA 13 runtime that pip installs beside it.
if [ -n "$TORCH_LIB" ]; then
  [ -n "$CUDART_LIB" ] || echo "no libcudart.so.13 beside this torch: kd-cli is built for CUDA 13 (torch 2.11+cu130)"
  export LD_LIBRARY_PATH="$TORCH_LIB${CUDART_LIB:+:$CUDART_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

KD_REASON=""      # why the kd steps cannot run
KD_VERSION=""
if [ ! -x "$KD" ]; then
  KD_REASON="no kd-cli at KD=$KD (scripts/device-prepare.sh builds dist/kd-cli; KD=target/release/kd-cli works too)"
  note kd-cli "$KD_REASON"
elif run_bounded "kd-cli env" "$CHECK_LIMIT" "$KD" env; then
  indent < "$LAST_OUT"
  KD_VERSION=$(awk '$1 == "kd-cli" { print $2 }' "$LAST_OUT")
  grep -Eq '^cuda +true' "$LAST_OUT" \
    || KD_REASON="kd-cli sees no CUDA device ($(grep -E '^cuda ' "$LAST_OUT" | tr -s ' ' || echo 'no cuda line in kd-cli env'))"
else
  KD_REASON="kd-cli env did not run (see above)"
fi
# The GPU's absence or a wrong torch is the first reason for kd too.
[ -z "$GPU_REASON" ] || KD_REASON=$GPU_REASON

ANCHOR_REASON=$GPU_REASON   # why the PyTorch anchors cannot run
if [ -z "$ANCHOR_REASON" ] && [ ! -e "$ANCHORS/torch_seed.py" ]; then
  ANCHOR_REASON="no PyTorch anchors in ANCHORS=$ANCHORS (scripts/device-prepare.sh copies them into dist/anchors)"
fi

# ---------------------------------------------------------------- 1. doctor
section "1. kd-cli doctor --device cuda"
GRAPH_REASON=""   # why the CUDA-graph steps cannot run
if [ -n "$KD_REASON" ]; then
  note doctor "skipped: $KD_REASON"
  GRAPH_REASON="the doctor did not run"
else
  run_bounded doctor "$DOCTOR_LIMIT" "$KD" doctor --device cuda
  rc=$?
  cat "$LAST_OUT"
  case $rc in
    0) ;;
    124|137) GRAPH_REASON="the doctor was stopped at its $DOCTOR_LIMIT s limit" ;;
    "$SKIPPED") GRAPH_REASON="the doctor did not run" ;;
    *) GRAPH_REASON="the doctor failed (exit $rc): graph steps unchecked" ;;
  esac
fi

# ---------------------------------------------------------------- 2. training-step speed
section "2. training-step speed, images/s ($STEPS timed steps, batch 128, $ROUNDS round(s))"
bench_result() {  # appends a finished bench's JSON lines to bench.jsonl and prints them short
  grep '^{' "$LAST_OUT" >> "$OUT/bench.jsonl"
  tables brief "$LAST_OUT" | indent
}
kd_bench() {  # name, graphs|eager, kd-cli bench arguments
  local name=$1 form=$2; shift 2
  if [ -n "$KD_REASON" ]; then note "$name" "skipped: $KD_REASON"; return; fi
  if [ "$form" = graphs ] && [ -n "$GRAPH_REASON" ]; then note "$name" "skipped: $GRAPH_REASON"; return; fi
  run_bounded "$name" "$BENCH_LIMIT" "$KD" bench --device cuda --steps "$STEPS" --warmup 5 "$@" && bench_result
}
anchor_bench() {  # name, torch_seed.py arguments
  local name=$1; shift
  if [ -n "$ANCHOR_REASON" ]; then note "$name" "skipped: $ANCHOR_REASON"; return; fi
  run_bounded "$name" "$BENCH_LIMIT" "$PYTHON" "$ANCHORS/torch_seed.py" --device cuda --steps "$STEPS" --warmup 5 "$@" \
    && bench_result
}
GRAPH_MODES=(--mode "teacher,student,distill,distill-cached")   # the modes with training steps
for round in $(seq "$ROUNDS"); do
  r=""; [ "$ROUNDS" = 1 ] || r=" (round $round)"
  kd_bench "bench kd bf16-cl eager$r" eager --channels-last --precision bf16
  kd_bench "bench kd bf16-cl graphs$r" graphs "${GRAPH_MODES[@]}" --cuda-graphs --channels-last --precision bf16
  anchor_bench "bench pytorch eager f32$r"
  kd_bench "bench kd f32 eager$r" eager
  kd_bench "bench kd f32 graphs$r" graphs "${GRAPH_MODES[@]}" --cuda-graphs
done
BENCH_TABLE=$WORK/bench-table.md
if grep -q '^{' "$OUT/bench.jsonl"; then
  tables_py_rc=0
  "$HELPER_PY" scripts/bench-table.py "$OUT/bench.jsonl" > "$BENCH_TABLE" 2>&1 || tables_py_rc=$?
  [ "$tables_py_rc" = 0 ] || echo "(scripts/bench-table.py failed: exit $tables_py_rc)" >> "$BENCH_TABLE"
else
  echo "(no bench results)" > "$BENCH_TABLE"
fi
echo; cat "$BENCH_TABLE"

# ---------------------------------------------------------------- 2b. fused populations
section "2b. fused student populations (K quickstart students, batch 32, bf16)"
POP_TABLE=$WORK/population.md
echo "(not run)" > "$POP_TABLE"
if [ -n "$KD_REASON" ]; then
  note "bench kd population" "skipped: $KD_REASON"
elif run_bounded "bench kd population" "$POP_LIMIT" "$KD" bench --device cuda --mode population \
    --members 1,4,12,32 --batch 32 --steps 20 --rounds 1 --precision bf16; then
  grep -v '^{' "$LAST_OUT" > "$POP_TABLE"
  indent < "$POP_TABLE"
fi

# ---------------------------------------------------------------- 3. the seed's schedule
section "3. the seed's schedule ($CONFIG)"
DATA_REASON=$GPU_REASON     # why the schedule's images are missing
if [ -z "$DATA_REASON" ] && [ -n "$KD_REASON" ] && [ -n "$ANCHOR_REASON" ]; then
  DATA_REASON="neither kd nor the anchors can run"
fi
if [ -n "$DATA_REASON" ]; then
  note "synthetic images" "skipped: $DATA_REASON"
elif [ "$(cat "$DATA"/data_batch_{1,2,3,4,5}.bin "$DATA"/test_batch.bin 2>/dev/null | wc -c)" = 184380000 ]; then
  note "synthetic images" "present in $DATA"
else
  run_bounded "synthetic images" "$DATA_LIMIT" "$HELPER_PY" scripts/device_tables.py synthetic-cifar "$DATA" \
    || DATA_REASON="the synthetic images were not written"
fi

SCHED=$OUT/schedule.jsonl
schedule_failed() {  # label, status, limit: a row for a form without a time
  case $2 in
    124|137) tables failed-row "$1" "stopped" "$3" ;;
    "$SKIPPED") tables failed-row "$1" "skipped: not enough time" ;;
    *) tables failed-row "$1" "failed (exit $2)" ;;
  esac >> "$SCHED"
}
kd_schedule() {  # label, limit, extra `kd-cli run` arguments
  local label=$1 limit=$2 rc; shift 2
  local name="schedule $label" dir=$WORK/schedule-${label// /-}
  if [ -n "$KD_REASON" ]; then note "$name" "skipped: $KD_REASON"; return; fi
  if [ -n "$DATA_REASON" ]; then note "$name" "skipped: $DATA_REASON"; return; fi
  run_bounded "$name" "$limit" "$KD" -q run "$CONFIG" "$@" --out "$dir"
  rc=$?
  if [ "$rc" = 0 ] && tables kd-row "$label" "$dir/report.json" >> "$SCHED"; then
    tables wrap "schedule $label" "$dir/report.json" >> "$OUT/reports.jsonl"
  else
    schedule_failed "$label" "$rc" "$limit"
  fi
  tail -n 1 "$SCHED" | indent
}
torch_schedule() {  # label, limit, torch_seed_schedule.py arguments
  local label=$1 limit=$2 rc; shift 2
  local name="schedule $label"
  if [ -n "$ANCHOR_REASON" ]; then note "$name" "skipped: $ANCHOR_REASON"; return; fi
  if [ -n "$DATA_REASON" ]; then note "$name" "skipped: $DATA_REASON"; return; fi
  run_bounded "$name" "$limit" "$PYTHON" "$ANCHORS/torch_seed_schedule.py" --device cuda --cifar-dir "$DATA" "$@"
  rc=$?
  if [ "$rc" = 0 ]; then
    tables torch-row "$label" "$LAST_OUT" >> "$SCHED" || tables failed-row "$label" "no result line" >> "$SCHED"
  else
    schedule_failed "$label" "$rc" "$limit"
  fi
  tail -n 1 "$SCHED" | indent
}
# kd's default on CUDA is CUDA graphs; without a passing doctor it runs eagerly.
KD_EAGER=(--set teacher.train.cuda_graphs=false --set student.train.cuda_graphs=false)
if [ -z "$KD_REASON" ] && [ -n "$GRAPH_REASON" ]; then
  echo "kd's schedule runs eagerly: $GRAPH_REASON"
  kd_schedule "kd eager" "$SCHED_KD_LIMIT" "${KD_EAGER[@]}"
else
  kd_schedule "kd graphs" "$SCHED_KD_LIMIT"
fi
torch_schedule "pytorch eager f32" "$SCHED_TORCH_LIMIT"
torch_schedule "pytorch eager bf16-cl-cached" "$SCHED_TORCH_LIMIT" --precision bf16 --channels-last --cache-logits

# ---------------------------------------------------------------- 4. resume, compile
section "4a. CUDA resume (deterministic; killed after the teacher's first checkpoint)"
RESUME_MD=$WORK/resume.md
echo "(not run)" > "$RESUME_MD"
SHORT=(--set data.train_limit=5000 --set data.test_limit=2000 --set teacher.train.epochs=3
       --set student.train.epochs=2 --set student.train_images=0)
[ -z "$GRAPH_REASON" ] || SHORT+=("${KD_EAGER[@]}")
DETERMINISTIC=(env KD_DETERMINISTIC=1 CUBLAS_WORKSPACE_CONFIG=:4096:8)
resume_check() {
  local whole=$WORK/resume-whole cut=$WORK/resume-cut
  local ckpt=$cut/checkpoints/teacher/last.safetensors
  if [ -n "$KD_REASON" ]; then note "resume" "skipped: $KD_REASON"; return; fi
  if [ -n "$DATA_REASON" ]; then note "resume" "skipped: $DATA_REASON"; return; fi
  if ! fits $((3 * (RESUME_LIMIT + KILL_GRACE))); then
    note "resume" "skipped: not enough time left ($((DEADLINE - SECONDS)) s)"; return
  fi
  [ -z "$GRAPH_REASON" ] || echo "without CUDA graphs: $GRAPH_REASON"
  if ! run_bounded "resume: uninterrupted run" "$RESUME_LIMIT" "${DETERMINISTIC[@]}" \
      "$KD" -q run "$CONFIG" "${SHORT[@]}" --out "$whole"; then
    note "resume" "killed and resumed runs skipped: nothing to compare them with"; return
  fi

  # Killed run: bounded by RESUME_LIMIT through the wait for its first checkpoint.
  local pid start state=timeout rc
  start=$SECONDS
  "${DETERMINISTIC[@]}" "$KD" -q run "$CONFIG" "${SHORT[@]}" --out "$cut" \
    > "$WORK/resume-cut.out" 2> "$WORK/resume-cut.err" &
  pid=$!
  while (( SECONDS - start < RESUME_LIMIT )); do
    if [ -e "$ckpt" ]; then state=checkpoint; break; fi
    if ! kill -0 "$pid" 2> /dev/null; then state=ended; break; fi
    sleep 0.05
  done
  kill -9 "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
  rc=$?
  {
    printf '===== resume: killed run (limit %s s):' "$RESUME_LIMIT"
    printf ' %q' "${DETERMINISTIC[@]}" "$KD" -q run "$CONFIG" "${SHORT[@]}" --out "$cut"; echo
    cat "$WORK/resume-cut.out"; echo "----- stderr"; cat "$WORK/resume-cut.err"
    printf '===== %s, exit %s after %s s\n\n' "$state" "$rc" $((SECONDS - start))
  } >> "$OUT/details.log"
  case $state in
    checkpoint) note "resume: killed run" "killed (SIGKILL) after the teacher's first checkpoint ($((SECONDS - start)) s)" ;;
    ended) note "resume: killed run" "failed: ended (exit $rc) before the teacher's first checkpoint"
           tail -n 5 "$WORK/resume-cut.err" | indent; return ;;
    *) note "resume: killed run" "failed: no teacher checkpoint within $RESUME_LIMIT s"
       tail -n 5 "$WORK/resume-cut.err" | indent; return ;;
  esac

  run_bounded "resume: resumed run" "$RESUME_LIMIT" "${DETERMINISTIC[@]}" \
    "$KD" -q run "$CONFIG" "${SHORT[@]}" --resume "$cut" || return
  tables resume "$whole/report.json" "$cut/report.json" > "$RESUME_MD"
  case $? in
    0) note "resume: comparison" "identical test accuracy and loss" ;;
    1) note "resume: comparison" "DIFFERENT test accuracy or loss (table below)" ;;
    *) note "resume: comparison" "failed: a report is missing" ;;
  esac
  cat "$RESUME_MD"
  tables wrap "resume uninterrupted" "$whole/report.json" >> "$OUT/reports.jsonl"
  tables wrap "resume resumed" "$cut/report.json" >> "$OUT/reports.jsonl"
}
resume_check

section "4b. torch.compile reduce-overhead (in the time left)"
left=$((DEADLINE - SECONDS - KILL_GRACE - SUMMARY_RESERVE))
limit=$(( left < COMPILE_LIMIT ? left : COMPILE_LIMIT ))
if [ -n "$ANCHOR_REASON" ]; then
  note "schedule pytorch compile reduce-overhead" "skipped: $ANCHOR_REASON"
elif [ -n "$DATA_REASON" ]; then
  note "schedule pytorch compile reduce-overhead" "skipped: $DATA_REASON"
elif (( limit < COMPILE_MIN )); then
  note "schedule pytorch compile reduce-overhead" "skipped: not enough time left ($((DEADLINE - SECONDS)) s, needs $((COMPILE_MIN + KILL_GRACE + SUMMARY_RESERVE)) s)"
else
  torch_schedule "pytorch compile reduce-overhead" "$limit" \
    --precision bf16 --channels-last --cache-logits --compile reduce-overhead
fi

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
{
  echo "# device-bench summary"
  echo
  echo "- machine: ${GPU_NAME:-no CUDA device}; torch ${TORCH_VERSION:-not found} ($PYTHON); kd-cli ${KD_VERSION:-not run} ($KD)"
  echo "- $((SECONDS)) s in all (deadline $BUDGET s); files in $OUT"
  echo
  echo "## steps"
  echo
  echo "| step | result |"
  echo "|---|---|"
  for i in "${!STEP_NAMES[@]}"; do
    printf '| %s | %s |\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]//|/\\|}"
  done
  echo
  echo "## kd vs PyTorch eager, images/s ($STEPS timed steps, batch 128)"
  echo
  cat "$BENCH_TABLE"
  echo
  echo "## fused student populations against solo fits (member-images/s, bf16)"
  echo
  cat "$POP_TABLE"
  echo
  echo "## the seed's schedule (limits: kd $SCHED_KD_LIMIT s, PyTorch $SCHED_TORCH_LIMIT s each)"
  echo
  tables schedule-table "$SCHED" || echo "(the schedule table failed)"
  echo
  echo "## resume on CUDA (killed after the teacher's first checkpoint)"
  echo
  cat "$RESUME_MD"
} > "$SUMMARY" 2>&1
echo
cat "$SUMMARY"
echo
echo "files in $OUT:"
ls -l "$OUT"
# Let tee write out the last lines before the script ends.
exec > /dev/null 2>&1
wait "$TEE_PID" 2> /dev/null
exit 0
