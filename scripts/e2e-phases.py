#!/usr/bin/env python3
"""The phases of a `kd-cli run` of the quickstart, from its run directory (train.log's
timestamps at the phase boundaries, report.json's totals), as one JSON line comparable with
scripts/torch_quickstart.py's: data_s, teacher_s (training, validation, test evaluation),
cache_s (teacher logits), distilled_s and scratch_s (training, validation, test evaluation),
other_s (the rest of the wall time: start-up, latency timing, plots, report), total_s, and
the test accuracies.

    scripts/e2e-phases.py NAME RUN_DIR
"""
import datetime, json, re, sys

name, run = sys.argv[1], sys.argv[2]
report = json.load(open(f"{run}/report.json"))
stamps, data_s = {}, 0.0
MARKS = {"start": r"INFO run ", "teacher": r"INFO teacher: test accuracy", "cache": r"INFO teacher logits cached",
         "distilled": r"INFO distilled: test accuracy", "scratch": r"INFO scratch: test accuracy"}
for line in open(f"{run}/train.log"):
    m = re.search(r"data read in ([0-9.]+)s", line)
    if m:
        data_s = float(m.group(1))
    for key, pattern in MARKS.items():
        if key not in stamps and re.search(pattern, line):
            stamps[key] = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
span = lambda a, b: stamps[b] - stamps[a] if a in stamps and b in stamps else 0.0
phases = {"data_s": data_s, "teacher_s": span("start", "teacher"), "cache_s": span("teacher", "cache"),
          "distilled_s": span("cache", "distilled"), "scratch_s": span("distilled", "scratch")}
phases["other_s"] = report["total_seconds"] - sum(phases.values())
acc = {m["role"]: m["test_accuracy"] for m in report["models"]}
epochs = {m["role"]: m["epochs_run"] for m in report["models"]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
print(json.dumps({"impl": name, "precision": report["precision"], "channels_last": report["channels_last"],
                  "threads": report["torch_threads"], "cpu": cpu, **phases, "total_s": report["total_seconds"],
                  "teacher_epochs": epochs.get("teacher"), "distilled_epochs": epochs.get("distilled"),
                  "scratch_epochs": epochs.get("scratch"), "teacher_acc": acc.get("teacher"),
                  "distilled_acc": acc.get("distilled"), "scratch_acc": acc.get("scratch")}))
