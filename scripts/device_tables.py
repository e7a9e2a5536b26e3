#!/usr/bin/env python3
"""Helpers of scripts/device-bench.sh, standard library only (the `probe` command alone
imports torch).

    probe                     key=value lines: torch's version, CUDA build and devices, and the
                              folders of its libraries and of the CUDA runtime beside it
    synthetic-cifar DIR       50,000 + 10,000 random 32x32x3 images in the CIFAR-10 binary format
    brief FILE                the JSON lines of `kd-cli bench` / torch_seed.py as one short line
    kd-row LABEL REPORT       a schedule row from a `kd-cli run` report.json
    torch-row LABEL FILE      a schedule row from torch_seed_schedule.py's last JSON line
    failed-row LABEL REASON [LIMIT]
                              a schedule row of a form without a time (LIMIT: it ran past it)
    wrap LABEL REPORT         report.json as one JSON line, {"label": ..., "report": ...}
    schedule-table FILE       the markdown table of the schedule rows
    resume WHOLE CUT          markdown lines comparing two report.json files; exit status 0
                              when every model's test accuracy and loss agree, 1 when not, 2
                              when a report is missing
"""
import glob
import json
import os
import random
import sys

ROLES = ["teacher", "distilled", "scratch"]


def probe():
    try:
        import torch
    except Exception as e:  # any import failure is reported, not raised
        print(f"error={type(e).__name__}: {e}".replace("\n", " "))
        return 3
    ok = torch.cuda.is_available()
    site = os.path.dirname(os.path.dirname(torch.__file__))
    runtime = sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libcudart.so.13")))
    print("version=" + torch.__version__)
    print("cuda_build=" + str(torch.version.cuda))
    print("cuda=" + ("yes" if ok else "no"))
    print("devices=%d" % (torch.cuda.device_count() if ok else 0))
    print("name=" + (torch.cuda.get_device_name(0) if ok else ""))
    print("lib=" + os.path.join(os.path.dirname(torch.__file__), "lib"))
    print("cudart=" + (os.path.dirname(runtime[0]) if runtime else ""))
    return 0


def synthetic_cifar(folder):
    # Records of 1 label byte + 3072 pixel bytes; pure Python (the device's PyTorch may come
    # without NumPy).
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(0)

    def write(name, n):
        rec = bytearray(rng.randbytes(n * 3073))
        rec[0::3073] = bytes(rng.randrange(10) for _ in range(n))
        tmp = os.path.join(folder, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(rec)
        os.replace(tmp, os.path.join(folder, name))

    for i in range(1, 6):
        write(f"data_batch_{i}.bin", 10000)
    write("test_batch.bin", 10000)
    return 0


def json_lines(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def brief(path):
    rows = json_lines(path)
    print(", ".join(f"{r.get('mode')} {r.get('images_per_s', 0):.0f}" for r in rows) + " images/s"
          if rows else "no result lines")
    return 0


def kd_row(label, report):
    r = json.load(open(report))
    models = {m["role"]: m for m in r["models"]}
    print(json.dumps({"impl": label, "total_s": r["total_seconds"],
                      "train_s": {k: m["train_seconds"] for k, m in models.items()},
                      "acc": {k: m["test_accuracy"] for k, m in models.items()}}))
    return 0


def torch_row(label, path):
    rows = json_lines(path)
    if not rows or "total_s" not in rows[-1]:
        return 1
    r = rows[-1]
    print(json.dumps({"impl": label, "total_s": r["total_s"],
                      "train_s": {"teacher": r.get("teacher_s"), "distilled": r.get("distill_s"),
                                  "scratch": r.get("scratch_s")},
                      "acc": {"teacher": r.get("teacher_acc"), "distilled": r.get("distilled_acc"),
                              "scratch": r.get("scratch_acc")},
                      "torch": r.get("torch"), "device": r.get("device")}))
    return 0


def failed_row(label, reason, limit=None):
    row = {"impl": label, "failed": reason}
    if limit:
        row["limit_s"] = float(limit)
    print(json.dumps(row))
    return 0


def wrap(label, report):
    print(json.dumps({"label": label, "report": json.load(open(report))}))
    return 0


def schedule_table(path):
    rows = json_lines(path)
    if not rows:
        print("(no schedule results)")
        return 0
    exact = [r for r in rows if "total_s" in r]
    torch_exact = [r["total_s"] for r in exact if r["impl"].startswith("pytorch")]
    best = min(torch_exact, default=None)
    f32 = next((r for r in rows if r["impl"] == "pytorch eager f32"), None)

    def ratio(ref, row):
        # ref / this form's time; a form stopped at its limit took longer than the limit,
        # so a ratio against it is a bound.
        if ref is None or "total_s" not in ref and "limit_s" not in ref:
            return "—"
        if "total_s" in row:
            if "total_s" in ref:
                return f"{ref['total_s'] / row['total_s']:.2f}x"
            return f"≥ {ref['limit_s'] / row['total_s']:.2f}x"
        if "limit_s" in row and "total_s" in ref:
            return f"≤ {ref['total_s'] / row['limit_s']:.2f}x"
        return "—"

    def triple(d, fmt):
        return " / ".join(fmt(d.get(k)) if d.get(k) is not None else "—" for k in ROLES)

    print("| form | total s | train s T / D / S | test acc % T / D / S | vs best PyTorch | vs PyTorch eager f32 |")
    print("|---|---|---|---|---|---|")
    best_row = {"total_s": best} if best is not None else None
    for r in rows:
        if "total_s" in r:
            cells = [f"{r['total_s']:.1f}", triple(r["train_s"], lambda v: f"{v:.1f}"),
                     triple(r["acc"], lambda v: f"{100 * v:.2f}")]
        else:
            what = f"> {r['limit_s']:.0f} (stopped)" if "limit_s" in r else r["failed"]
            cells = [what, "", ""]
        cells += [ratio(best_row, r), ratio(f32, r)]
        print(f"| {r['impl']} | " + " | ".join(cells) + " |")
    return 0


def resume(whole, cut):
    try:
        a = json.load(open(whole))
        b = json.load(open(cut))
    except (OSError, json.JSONDecodeError) as e:
        print(f"no comparison: {e}")
        return 2
    same_all = True
    for x, y in zip(a["models"], b["models"]):
        # Float32 test scores, and the run's own-precision ones (bf16) where it has them.
        same = (x["test_accuracy"] == y["test_accuracy"] and x["test_loss"] == y["test_loss"]
                and x.get("test_in_run_precision") == y.get("test_in_run_precision"))
        same_all &= same
        print(f"- {x['role']:>9}: uninterrupted {100 * x['test_accuracy']:.2f}% loss {x['test_loss']:.6f} | "
              f"resumed {100 * y['test_accuracy']:.2f}% loss {y['test_loss']:.6f} | identical: {same}")
    if len(a["models"]) != len(b["models"]):
        print(f"- different model counts: {len(a['models'])} and {len(b['models'])}")
        same_all = False
    return 0 if same_all else 1


COMMANDS = {"probe": probe, "synthetic-cifar": synthetic_cifar, "brief": brief, "kd-row": kd_row,
            "torch-row": torch_row, "failed-row": failed_row, "wrap": wrap,
            "schedule-table": schedule_table, "resume": resume}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
