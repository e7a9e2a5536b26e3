"""The quickstart's whole experiment in plain PyTorch eager, as a careful PyTorch user would
write it: the speed to beat on a CPU for `kd-cli run configs/quickstart.toml`.

Fashion-MNIST (28x28x1, pixels scaled by 1/255, no padding or normalization) read from the IDX
files into memory; a seeded 5,000 of the 60,000 training images held out for validation.
Teacher: the BatchNorm CNN of kd-models' `cnn` (3 stages of two 3x3 conv (no bias) -> BN ->
ReLU, 2x2 max-pool; flatten -> dense 256 -> ReLU -> dropout 0.3 -> dense 10), 6 epochs on the
other 55,000 images, batch 128, Adam 2e-3 with per-step cosine decay. Students: kd-models'
`student` (3 blocks of two 3x3 conv+ReLU and a max-pool, width 16, global average pooling,
dense 10), batch 32, Adam 1e-3, up to 40 epochs, ReduceLROnPlateau (Keras patience 2, i.e.
PyTorch patience 1), both from the same initial weights: one distilled (kd's default
"keras-kd" loss: alpha 0.1, T 4, T^2-scaled KL of clipped softmaxes) on a seeded 5,000
labelled images plus 15,000 of the rest with their labels dropped, from teacher logits cached
once; one from the 5,000 labels alone. Every fit validates each epoch on the holdout (at the
training batch size; the distilled student's monitored loss is its distillation loss against
cached validation logits) and early-stops with Keras semantics (val_loss, patience 5,
min_delta 1e-4, best weights restored, also at the end). Weights are initialized as tch does
(Kaiming-uniform convs and dense layers, zero conv biases, BN scale uniform in [0, 1]). Test
accuracy on the 10,000 test images, logits cached and tests run in batches of 1,000.

Options choose what a user could switch on: --precision bf16 (CPU autocast around forward
passes, losses in float32), --channels-last, --threads (torch.set_num_threads). The size
options (--train-limit, --val-holdout, ...) exist for quick smoke tests. Prints progress to
stderr and one JSON line with the wall time of each phase and the test accuracies to stdout.

    .venv/bin/python scripts/torch_quickstart.py --threads 2 --precision bf16 --channels-last
"""
import argparse, gzip, json, math, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
ap.add_argument("--channels-last", action="store_true")
ap.add_argument("--seed", type=int, default=19)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--data", default="data/fashion-mnist")
ap.add_argument("--teacher-epochs", type=int, default=6)
ap.add_argument("--student-epochs", type=int, default=40)
ap.add_argument("--train-limit", type=int, default=0, help="first N training images only (0: all)")
ap.add_argument("--test-limit", type=int, default=0, help="first N test images only (0: all)")
ap.add_argument("--val-holdout", type=int, default=5000)
ap.add_argument("--student-images", type=int, default=5000)
ap.add_argument("--unlabeled-images", type=int, default=15000)
a = ap.parse_args()
torch.set_num_threads(a.threads)
mf = torch.channels_last if a.channels_last else torch.contiguous_format
ALPHA, T, MIN_DELTA, PATIENCE = 0.1, 4.0, 1e-4, 5


def amp():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_idx(name):
    path = os.path.join(a.data, name)
    raw = open(path if os.path.exists(path) else path + ".gz", "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return torch.frombuffer(bytearray(raw[4 + 4 * rank:]), dtype=torch.uint8).view(*dims)


def sorted_split(n, k, seed):
    """A seeded k of range(n) and the rest, each in ascending order."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:k].sort().values, perm[k:].sort().values


t_start = time.perf_counter()
xtr, ytr = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte").long()
xte, yte = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte").long()
if a.train_limit:
    xtr, ytr = xtr[:a.train_limit], ytr[:a.train_limit]
if a.test_limit:
    xte, yte = xte[:a.test_limit], yte[:a.test_limit]
to_float = lambda x: (x.unsqueeze(1).float() / 255.0)  # [n, 1, 28, 28] in [0, 1]
xtr, xte = to_float(xtr), to_float(xte)
val_idx, train_idx = sorted_split(len(xtr), a.val_holdout, a.seed)
x_val, y_val, x_train, y_train = xtr[val_idx], ytr[val_idx], xtr[train_idx], ytr[train_idx]
lab_idx, rest_idx = sorted_split(len(x_train), a.student_images, a.seed + 2)
unl_idx = rest_idx[sorted_split(len(rest_idx), a.unlabeled_images, a.seed + 3)[0]]
x_lab, y_lab = x_train[lab_idx], y_train[lab_idx]
x_dist = torch.cat([x_lab, x_train[unl_idx]])
y_dist = torch.cat([y_lab, torch.full((len(unl_idx),), -1, dtype=torch.long)])  # -1: no label
data_s = time.perf_counter() - t_start
log(f"data: {len(x_train)} train / {len(x_val)} val / {len(xte)} test; students {len(x_lab)} labelled"
    f" + {len(unl_idx)} unlabeled ({data_s:.2f}s)")


def init_like_tch(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)
    return model.to(memory_format=mf)


def cnn_teacher(channels=(32, 64, 128), convs=2, hidden=256, dropout=0.3, hw=28):
    layers, c = [], 1
    for w in channels:
        for _ in range(convs):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers.append(nn.MaxPool2d(2))
        hw //= 2
    return init_like_tch(nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * hw * hw, hidden), nn.ReLU(inplace=True),
                                       nn.Dropout(dropout), nn.Linear(hidden, 10)))


def student(blocks=3, convs=2, width=16):
    layers, c = [], 1
    for _ in range(blocks):
        for _ in range(convs):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.MaxPool2d(2))
    return init_like_tch(nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)))


def keras_kd(s, t, y):
    """alpha * CE (unlabeled rows add 0 but count in the mean) + (1 - alpha) * T^2 * Keras KL."""
    hard = F.cross_entropy(s, y, ignore_index=-1, reduction="sum") / len(y)
    pt = F.softmax(t / T, 1).clamp(1e-7, 1.0)
    ps = F.softmax(s / T, 1).clamp(1e-7, 1.0)
    soft = (pt * (pt / ps).log()).sum(1).mean() * (T * T)
    return ALPHA * hard + (1 - ALPHA) * soft


def loss_of(out, y, t):
    return F.cross_entropy(out, y) if t is None else keras_kd(out, t, y)


@torch.no_grad()
def logits(model, x, bs=1000):
    model.eval()
    outs = []
    for i in range(0, len(x), bs):
        with amp():
            outs.append(model(x[i:i + bs].contiguous(memory_format=mf)).float())
    return torch.cat(outs)


@torch.no_grad()
def evaluate(model, x, y, bs, t=None):
    """(mean loss, accuracy) over x, in batches of bs."""
    model.eval()
    loss, hits = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
    for i in range(0, len(x), bs):
        with amp():
            out = model(x[i:i + bs].contiguous(memory_format=mf)).float()
        yb = y[i:i + bs]
        loss += loss_of(out, yb, None if t is None else t[i:i + bs]).double() * len(yb)
        hits += (out.argmax(1) == yb).sum()
    return loss.item() / len(x), hits.item() / len(x)


def fit(name, model, x, y, epochs, bs, lr, order_seed, cosine=False, plateau=False, t_train=None, t_val=None):
    """Adam with optional per-step cosine decay and ReduceLROnPlateau, Keras-style early stopping
    on val_loss restoring the best weights (on stopping and at the end); returns epochs run."""
    opt = torch.optim.Adam(model.parameters(), lr)
    steps = math.ceil(len(x) / bs)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps) if cosine else None
    rop = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.1, patience=1, threshold=MIN_DELTA, threshold_mode="abs") if plateau else None
    gen = torch.Generator().manual_seed(order_seed)
    best, best_state, wait, labelled = math.inf, None, 0, max(int((y >= 0).sum()), 1)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        run_loss, hits = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
        for idx in torch.randperm(len(x), generator=gen).split(bs):
            xb, yb = x[idx].contiguous(memory_format=mf), y[idx]
            with amp():
                out = model(xb)
            out = out.float()
            loss = loss_of(out, yb, None if t_train is None else t_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if cos is not None:
                cos.step()
            run_loss += loss.detach().double() * len(idx)
            hits += (out.detach().argmax(1) == yb).sum()
        val_loss, val_acc = evaluate(model, x_val, y_val, bs, t_val)
        log(f"{name} epoch {epoch}/{epochs}: loss {run_loss.item() / len(x):.4f} acc {hits.item() / labelled:.4f}"
            f" val_loss {val_loss:.4f} val_acc {val_acc:.4f} lr {opt.param_groups[0]['lr']:.2e}"
            f" ({time.perf_counter() - t0:.1f}s)")
        if val_loss < best - MIN_DELTA:
            best, wait = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= PATIENCE:
                log(f"{name} epoch {epoch}: early stopping, restoring the best epoch's weights")
                model.load_state_dict(best_state)
                return epoch
        if rop is not None:
            rop.step(val_loss)
    if best_state is not None:
        model.load_state_dict(best_state)
    return epochs


res = {"impl": "pytorch-quickstart", "precision": a.precision, "channels_last": a.channels_last,
       "threads": a.threads, "torch": torch.__version__,
       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")}
res["data_s"] = data_s

t0 = time.perf_counter()
torch.manual_seed(a.seed)
teacher = cnn_teacher()
res["teacher_epochs"] = fit("teacher", teacher, x_train, y_train, a.teacher_epochs, 128, 2e-3, a.seed, cosine=True)
res["teacher_s"] = time.perf_counter() - t0

t0 = time.perf_counter()
res["teacher_acc"] = evaluate(teacher, xte, yte, 1000)[1]
res["teacher_eval_s"] = time.perf_counter() - t0
log(f"teacher: test accuracy {res['teacher_acc']:.4f}")

t0 = time.perf_counter()
teacher.requires_grad_(False)
t_dist, t_val = logits(teacher, x_dist), logits(teacher, x_val)
res["cache_s"] = time.perf_counter() - t0
log(f"teacher logits cached for {len(x_dist)} training and {len(x_val)} validation images ({res['cache_s']:.2f}s)")
del teacher

for name, x, y, t_train, t_val_ in [("distilled", x_dist, y_dist, t_dist, t_val), ("scratch", x_lab, y_lab, None, None)]:
    t0 = time.perf_counter()
    torch.manual_seed(a.seed + 1)  # both students start from the same weights
    model = student()
    res[f"{name}_epochs"] = fit(name, model, x, y, a.student_epochs, 32, 1e-3, a.seed + 1, plateau=True,
                                t_train=t_train, t_val=t_val_)
    res[f"{name}_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res[f"{name}_acc"] = evaluate(model, xte, yte, 1000)[1]
    res[f"{name}_eval_s"] = time.perf_counter() - t0
    log(f"{name}: test accuracy {res[f'{name}_acc']:.4f}")

res["total_s"] = time.perf_counter() - t_start
print(json.dumps(res), flush=True)
