# Converts a PyTorch state dict (.pth, loaded with weights_only=True: no code runs) into a
# .safetensors file (https://github.com/huggingface/safetensors: 8-byte little-endian header
# length, a JSON header naming each tensor's dtype, shape and byte range, then the bytes).
# Only PyTorch is needed. Usage: python pth_to_safetensors.py SRC.pth DST.safetensors
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}

src, dst = sys.argv[1], sys.argv[2]
state = torch.load(src, map_location="cpu", weights_only=True)
if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
    sys.exit(f"{src}: expected a state dict of tensors, got {type(state).__name__}")
header, chunks, offset = {"__metadata__": {"format": "pt", "source": src.split("/")[-1]}}, [], 0
for name in sorted(state):
    t = state[name].detach().contiguous()
    if t.dtype not in DTYPES:
        sys.exit(f"{src}: tensor {name} has dtype {t.dtype}, expected a floating-point type")
    buf = bytearray(t.numel() * t.element_size())
    torch.frombuffer(buf, dtype=torch.uint8).copy_(t.view(-1).view(torch.uint8)) if buf else None
    header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(buf)]}
    chunks.append(buf)
    offset += len(buf)
head = json.dumps(header, separators=(",", ":")).encode()
head += b" " * (-len(head) % 8)
with open(dst, "wb") as f:
    f.write(len(head).to_bytes(8, "little"))
    f.write(head)
    for buf in chunks:
        f.write(buf)
print(f"{dst}: {len(state)} tensors, {offset} bytes")
