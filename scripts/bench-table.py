#!/usr/bin/env python3
"""Reads the JSON lines of `kd-cli bench` and the anchor scripts (one file, any number of
rounds) and prints a markdown table: per mode and implementation, the median images/s and
every round's value, then kd's best configuration over the best anchor."""
import json, statistics, sys
from collections import defaultdict

MODES = ["teacher", "student", "distill", "distill-cached", "eval"]
runs = defaultdict(list)
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    name = r["impl"] + ("" if r["impl"].startswith(("pytorch", "keras")) else " " + r.get("precision", "f32"))
    runs[(r["mode"], name)].append(r["images_per_s"])
impls = sorted({i for _, i in runs}, key=lambda i: (not i.startswith("kd"), i))
print("| mode | " + " | ".join(impls) + " | best kd / best anchor |")
print("|---" * (len(impls) + 2) + "|")
for mode in MODES:
    cells, kd, anchor = [], [], []
    for impl in impls:
        v = runs.get((mode, impl))
        if not v:
            cells.append("—")
            continue
        med = statistics.median(v)
        cells.append(f"**{med:.0f}** ({', '.join(f'{x:.0f}' for x in v)})")
        (kd if impl.startswith("kd") else anchor).append((med, impl))
    if not kd and not anchor:
        continue
    # The anchors proper are the f32 scripts; PyTorch's own bf16 autocast is shown beside.
    anchor = [a for a in anchor if not a[1].endswith("bf16")]
    ratio = f"{max(kd)[0] / max(anchor)[0]:.2f}x ({max(kd)[1]} / {max(anchor)[1]})" if kd and anchor else "—"
    print(f"| {mode} | " + " | ".join(cells) + f" | {ratio} |")
