#!/usr/bin/env bash
# kd against a plain PyTorch eager script of the same experiment, end to end: the quickstart
# (configs/quickstart.toml: the BatchNorm CNN teacher, the cached teacher logits, the
# distilled and the scratch student) run by `kd-cli run` with its defaults and by
# scripts/torch_quickstart.py, one after the other in this session, same seed, same threads.
# Prints one JSON line per run as it finishes (to $OUT too), then a table of per-phase times
# and the ratios of the PyTorch forms' totals to kd's.
#
#   scripts/e2e-quickstart.sh                          # kd (defaults), PyTorch f32, PyTorch bf16 + channels-last
#   FORMS="kd kd-f32 torch-f32" scripts/e2e-quickstart.sh
#
# Forms: kd (the defaults), kd-f32 (precision = "f32", channels_last = false), torch-f32,
# torch-bf16-cl (torch.autocast bf16 + channels_last). Nothing else should run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
SEED=${SEED:-19}
FORMS=${FORMS:-"kd torch-f32 torch-bf16-cl"}
OUT=${OUT:-target/e2e-quickstart.jsonl}
PYTHON=${PYTHON:-.venv/bin/python}
if [ -z "${KD:-}" ]; then
  cargo build --release -q -p kd-cli
  KD=target/release/kd-cli
fi
mkdir -p target/e2e
: > "$OUT"

kd_form() {  # name, extra run arguments
  local name=$1; shift
  local dir="target/e2e/$name-seed-$SEED"
  rm -rf "$dir"
  "$KD" -q run configs/quickstart.toml --seed "$SEED" --threads "$THREADS" --out "$dir" "$@" \
    > "target/e2e/$name.log" 2>&1 || { tail -20 "target/e2e/$name.log"; exit 1; }
  "$PYTHON" scripts/e2e-phases.py "$name" "$dir" >> "$OUT"
}

torch_form() {  # name, torch_quickstart.py arguments
  local name=$1; shift
  "$PYTHON" scripts/torch_quickstart.py --seed "$SEED" --threads "$THREADS" "$@" \
    2> "target/e2e/$name.log" | "$PYTHON" -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); r["impl"]=sys.argv[1]; print(json.dumps(r))' "$name" >> "$OUT"
}

for form in $FORMS; do
  case "$form" in
    kd) kd_form kd ;;
    kd-f32) kd_form kd-f32 --set 'precision="f32"' --set channels_last=false ;;
    torch-f32) torch_form torch-f32 ;;
    torch-bf16-cl) torch_form torch-bf16-cl --precision bf16 --channels-last ;;
    *) echo "unknown form $form (kd, kd-f32, torch-f32, torch-bf16-cl)"; exit 2 ;;
  esac
  tail -1 "$OUT"
done
echo
"$PYTHON" scripts/e2e-table.py "$OUT"
