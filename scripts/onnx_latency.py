"""Times an ONNX image classifier in onnxruntime: batch-1 latency (median and p99 of CALLS
calls after WARMUP untimed ones) on one thread and on all cores, and throughput at batch 256.

usage: onnx_latency.py MODEL CALLS WARMUP

Prints one JSON object. `kd-cli bench --mode latency` runs it for `.onnx` files.
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

model, calls, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def session(threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def latency(s, x):
    for _ in range(warmup):
        s.run(None, {"images": x})
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        s.run(None, {"images": x})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "median_ms": times[len(times) // 2],
        "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
    }


first = session(1)
shape = [d if isinstance(d, int) else 1 for d in first.get_inputs()[0].shape]
rng = np.random.default_rng(0)
x1 = rng.random(shape, dtype=np.float32)
cores = os.cpu_count() or 1
result = {"one_thread": latency(first, x1)}
every = session(cores)
result["all_threads"] = latency(every, x1)
result["threads"] = cores
batch = rng.random([256] + shape[1:], dtype=np.float32)
every.run(None, {"images": batch})
runs = []
for _ in range(5):
    start = time.perf_counter()
    every.run(None, {"images": batch})
    runs.append(time.perf_counter() - start)
runs.sort()
result["batch256_images_per_s"] = 256 / runs[len(runs) // 2]
print(json.dumps(result))
