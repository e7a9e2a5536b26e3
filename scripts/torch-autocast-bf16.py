#!/usr/bin/env python3
"""PyTorch eager with bf16 autocast and channels-last: the anchor script's models and steps
(../shared/anchors/torch_seed.py) under torch.autocast("cpu", torch.bfloat16), so that kd's
`--precision bf16` is compared with what PyTorch itself reaches in the same precision.
Prints JSON lines like the anchor (impl "pytorch-eager-cl-bf16")."""
import argparse, json, os, sys, time
import torch, torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--anchors", default=os.path.join(os.path.dirname(__file__), "../../shared/anchors"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--modes", default="teacher,student,distill,eval")
a = ap.parse_args()
sys.path.insert(0, a.anchors)
from torch_seed import teacher, student, keras_kl  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(0)
cl = torch.channels_last
x = torch.rand(a.batch, 3, 32, 32).contiguous(memory_format=cl)
y = torch.randint(0, 10, (a.batch,))
t, s = teacher().to(memory_format=cl), student().to(memory_format=cl)
for mode in a.modes.split(","):
    net, lr = (t, 1e-5) if mode == "teacher" else (s, 1e-3)
    opt = torch.optim.Adam(net.parameters(), lr)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if mode == "eval":
                with torch.no_grad():
                    return s(x).argmax(1).sum().item()
            opt.zero_grad(set_to_none=True)
            if mode == "distill":
                with torch.no_grad():
                    tl = t(x).float()
                sl = s(x).float()
                loss = 0.7 * F.cross_entropy(sl, y) + 0.3 * keras_kl(F.softmax(tl, 1), F.softmax(sl, 1))
            else:
                loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch-eager-cl-bf16", "mode": mode, "batch": a.batch, "steps": a.steps,
                      "images_per_s": a.batch * a.steps / dt, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}), flush=True)
