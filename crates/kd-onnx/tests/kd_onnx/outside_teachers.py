"""Teachers from outside kd for kd-onnx's `teacher` tests: one small PyTorch CNN (conv,
batch norm with non-trivial statistics, ReLU, max-pool, global average pooling, dense)
exported by `torch.onnx.export` (opset 17, dynamic batch) and by `torch.jit.trace`, for
28x28 grey images (`grey.*`) and for 32x32 RGB images normalized with ImageNet's mean and
std (`rgb.*`); with the images and each model's logits as raw float32 files. The RGB
model's logits are of the grey images bridged by hand: repeated to 3 channels, resized
bilinearly (align_corners=False), normalized.

Usage: python outside_teachers.py DIR
"""
import sys, warnings
import torch, torch.nn as nn, torch.nn.functional as F
warnings.filterwarnings("ignore")
d = sys.argv[1]
torch.manual_seed(0)

class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        return self.fc(F.relu(self.conv2(x)).mean((2, 3)))

def net(c):
    m = Net(c).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m

def save(m, example, name):
    torch.onnx.export(m, example, f"{d}/{name}.onnx", opset_version=17,
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                      dynamo=False)
    torch.jit.save(torch.jit.trace(m, example), f"{d}/{name}.pt")

x = torch.rand(5, 1, 28, 28)
x.numpy().tofile(f"{d}/images.f32")
grey = net(1)
save(grey, x[:2], "grey")
grey(x).detach().numpy().tofile(f"{d}/grey.f32")
rgb = net(3)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
by_hand = (F.interpolate(x.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear",
                         align_corners=False) - mean) / std
save(rgb, by_hand[:2], "rgb")
rgb(by_hand).detach().numpy().tofile(f"{d}/rgb.f32")

# A classifier with an operator no runtime knows (`Shuffle` of domain `com.example`) after
# its convolution, and one with ONNX's `Unique`, which tract does not implement.
import onnx
from onnx import helper, TensorProto
def with_node(node, name):
    g = onnx.load(f"{d}/grey.onnx")
    first = g.graph.node[0]
    out = first.output[0]
    node.input[0] = out
    renamed = f"{out}_shuffled"
    for n in g.graph.node[1:]:
        n.input[:] = [renamed if i == out else i for i in n.input]
    node.output[0] = renamed
    g.graph.node.insert(1, node)
    if node.domain:
        g.opset_import.append(helper.make_opsetid(node.domain, 1))
    onnx.save(g, f"{d}/{name}.onnx")
with_node(helper.make_node("Shuffle", ["x"], ["y"], domain="com.example"), "custom_op")
with_node(helper.make_node("Unique", ["x"], ["y"]), "unique_op")

# The RGB teacher with its input contract in its metadata (`rgb_contract.onnx`).
g = onnx.load(f"{d}/rgb.onnx")
helper.set_model_props(g, {"kd.input.mean": "[0.485, 0.456, 0.406]",
                           "kd.input.std": "[0.229, 0.224, 0.225]"})
onnx.save(g, f"{d}/rgb_contract.onnx")
