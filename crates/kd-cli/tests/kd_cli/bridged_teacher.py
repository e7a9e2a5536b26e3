"""A teacher trained at 32x32 RGB with ImageNet's normalization, for kd-cli's
`bridged_teacher` test: a small CNN trained in plain PyTorch on the first 4,000 Fashion-MNIST
training images bridged by hand (grey repeated to 3 channels, resized bilinearly to 32x32
with align_corners=False, normalized with ImageNet's mean and std), saved by `torch.jit.save`
(traced) and `torch.onnx.export` (opset 17, dynamic batch). Prints its accuracy on the
10,000 test images bridged the same way, and writes their logits as raw float32.

Usage: python bridged_teacher.py FASHION_MNIST_DIR OUT_DIR
"""
import gzip, sys, warnings
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
warnings.filterwarnings("ignore")
data, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(2)

def idx(name, offset):
    raw = gzip.open(f"{data}/{name}", "rb").read()
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=offset).copy())

def bridged(pixels):
    x = pixels.float().div(255).view(-1, 1, 28, 28).expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std

xs = bridged(idx("train-images-idx3-ubyte.gz", 16)[: 4000 * 784])
ys = idx("train-labels-idx1-ubyte.gz", 8)[:4000].long()
xt = bridged(idx("t10k-images-idx3-ubyte.gz", 16))
yt = idx("t10k-labels-idx1-ubyte.gz", 8).long()
net = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 8 * 8, 10))
opt = torch.optim.Adam(net.parameters(), 2e-3)
for step in range(300):
    i = torch.randint(0, 4000, (64,))
    loss = F.cross_entropy(net(xs[i]), ys[i])
    opt.zero_grad(); loss.backward(); opt.step()
net.eval()
torch.jit.save(torch.jit.trace(net, xt[:2]), f"{out}/rgb32.pt")
torch.onnx.export(net, xt[:2], f"{out}/rgb32.onnx", opset_version=17, dynamo=False,
                  input_names=["images"], output_names=["logits"],
                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
with torch.no_grad():
    logits = net(xt)
logits.numpy().astype(np.float32).tofile(f"{out}/test_logits.f32")
print(f"{(logits.argmax(1) == yt).float().mean().item():.6f}")
