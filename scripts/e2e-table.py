#!/usr/bin/env python3
"""Reads the JSON lines of scripts/e2e-quickstart.sh and prints a markdown table: per form,
the seconds of each phase (PyTorch's training and test evaluation of a model summed, as kd's
phases count them), the total, the accuracies, and each PyTorch form's total over kd's."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
for r in rows:
    for m in ("teacher", "distilled", "scratch"):
        r[f"{m}_s"] = r.get(f"{m}_s", 0.0) + r.pop(f"{m}_eval_s", 0.0)
    r.setdefault("other_s", r["total_s"] - sum(r.get(k, 0.0) for k in ("data_s", "teacher_s", "cache_s", "distilled_s", "scratch_s")))
kd = next((r for r in rows if r["impl"] == "kd"), None)
cols = ["data_s", "teacher_s", "cache_s", "distilled_s", "scratch_s", "other_s", "total_s"]
print("| form | precision | " + " | ".join(c[:-2] for c in cols) + " | accuracy T / D / S | epochs T / D / S | total / kd's |")
print("|---" * (len(cols) + 5) + "|")
for r in rows:
    acc = " / ".join(f"{100 * r[f'{m}_acc']:.2f}" for m in ("teacher", "distilled", "scratch"))
    ep = " / ".join(str(r.get(f"{m}_epochs")) for m in ("teacher", "distilled", "scratch"))
    prec = r["precision"] + (" cl" if r.get("channels_last") else "")
    ratio = f"{r['total_s'] / kd['total_s']:.2f}x" if kd else "—"
    print(f"| {r['impl']} | {prec} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + f" | {acc} | {ep} | {ratio} |")
if rows:
    print(f"\nCPU: {rows[0].get('cpu', '')}; threads {rows[0].get('threads')}")
