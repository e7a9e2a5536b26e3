#!/usr/bin/env python3
"""Per-op CPU profile of one training step of the anchor's models (../shared/anchors/
torch_seed.py) in float32 channels-last, under torch.profiler: where a step's time goes.
kd runs the same libtorch kernels, so this is kd's profile too. Prints the top ops by
self CPU time and the share of convolutions, Adam and memory allocation."""
import argparse, os, sys
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

ap = argparse.ArgumentParser()
ap.add_argument("--anchors", default=os.path.join(os.path.dirname(__file__), "../../shared/anchors"))
ap.add_argument("--model", default="student", choices=["student", "teacher"])
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
sys.path.insert(0, a.anchors)
from torch_seed import teacher, student  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(0)
cl = torch.channels_last
net = (student() if a.model == "student" else teacher()).to(memory_format=cl)
x = torch.rand(128, 3, 32, 32).contiguous(memory_format=cl)
y = torch.randint(0, 10, (128,))
opt = torch.optim.Adam(net.parameters(), 1e-3)

def step():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    opt.step()

for _ in range(2):
    step()
with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    for _ in range(3):
        step()
events = prof.key_averages()
total = sum(e.self_cpu_time_total for e in events)
print(events.table(sort_by="self_cpu_time_total", row_limit=12))
def share(pred):
    return 100 * sum(e.self_cpu_time_total for e in events if pred(e.key)) / total
print(f"convolution fwd+bwd: {share(lambda k: 'convolution' in k or 'conv' in k):.1f}% of self CPU time")
print(f"Adam (optimizer step): {share(lambda k: 'adam' in k.lower() or 'Optimizer' in k or '_foreach' in k):.1f}%")
print(f"ReLU, pooling: {share(lambda k: 'relu' in k or 'threshold' in k or 'pool' in k):.1f}%")
