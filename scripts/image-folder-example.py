"""Your own data and teacher, end to end: an image-folder copy of Fashion-MNIST and a teacher
trained in plain PyTorch, saved as TorchScript — what configs/image-folder.toml distills.

    .venv/bin/python scripts/image-folder-example.py   # after `cargo xtask fetch-data`

1. Writes data/fashion-mnist-folder/{train,test}/<class>/<index>.png (70,000 grayscale PNGs,
   class folders named after Fashion-MNIST's classes) from data/fashion-mnist's IDX files.
2. Trains a small CNN on the training images with PyTorch (labels in sorted folder-name order,
   as torchvision's ImageFolder and kd number them), and saves it with
   torch.jit.save(torch.jit.trace(...)) as data/fashion-mnist-folder/teacher.pt.
3. Prints the teacher's accuracy on the test folder, read back from the PNG files, which is
   what `kd-cli run configs/image-folder.toml` must report for the teacher.

Only the standard library and PyTorch are needed (the PNGs are written and read here).
"""

import gzip
import os
import struct
import sys
import time
import zlib

import torch

SRC = "data/fashion-mnist"
OUT = "data/fashion-mnist-folder"
CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx(name):
    """An IDX file as (dims, bytes)."""
    with gzip.open(os.path.join(SRC, name + ".gz"), "rb") as f:
        data = f.read()
    n_dims = data[3]
    dims = struct.unpack(">" + "I" * n_dims, data[4:4 + 4 * n_dims])
    return dims, data[4 + 4 * n_dims:]


def png_bytes(pixels, width, height):
    """An 8-bit grayscale PNG (filter 0 on every row)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_pixels(path):
    """The pixels of a PNG written by png_bytes."""
    data = open(path, "rb").read()
    width, height = struct.unpack(">II", data[16:24])
    at, idat = 8, b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        if data[at + 4:at + 8] == b"IDAT":
            idat += data[at + 8:at + 8 + length]
        at += 12 + length
    rows = zlib.decompress(idat)
    stride = width + 1
    assert all(rows[y * stride] == 0 for y in range(height)), "filter 0 rows only"
    return b"".join(rows[y * stride + 1:(y + 1) * stride] for y in range(height))


def write_folder(split, images, labels):
    (n, h, w), pixels = images
    for c in CLASSES:
        os.makedirs(os.path.join(OUT, split, c), exist_ok=True)
    for i in range(n):
        path = os.path.join(OUT, split, CLASSES[labels[i]], f"{i:05d}.png")
        with open(path, "wb") as f:
            f.write(png_bytes(pixels[i * h * w:(i + 1) * h * w], w, h))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    train_x, test_x = idx("train-images-idx3-ubyte"), idx("t10k-images-idx3-ubyte")
    train_y = idx("train-labels-idx1-ubyte")[1]
    test_y = idx("t10k-labels-idx1-ubyte")[1]
    started = time.time()
    write_folder("train", train_x, train_y)
    write_folder("test", test_x, test_y)
    print(f"wrote {OUT}: 60000 train, 10000 test PNGs in {time.time() - started:.0f} s")

    # Labels as an image folder numbers them: class folders in sorted order.
    order = sorted(CLASSES)
    relabel = torch.tensor([order.index(c) for c in CLASSES])
    x = torch.frombuffer(bytearray(train_x[1]), dtype=torch.uint8)
    x = (x.float() / 255).reshape(60000, 1, 28, 28)
    y = relabel[torch.frombuffer(bytearray(train_y), dtype=torch.uint8).long()]

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(64 * 7 * 7, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
        torch.nn.Linear(256, 10))
    epochs = int(os.environ.get("TEACHER_EPOCHS", "3"))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    steps = epochs * (60000 // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    started = time.time()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(60000)
        for b in range(60000 // 128):
            i = perm[b * 128:(b + 1) * 128]
            loss = torch.nn.functional.cross_entropy(net(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"teacher epoch {epoch + 1}/{epochs}: loss {loss.item():.4f} "
              f"({time.time() - started:.0f} s)")
    net.eval()
    module = torch.jit.trace(net, x[:2])
    torch.jit.save(module, os.path.join(OUT, "teacher.pt"))

    # The teacher's accuracy on the test folder, read back from its PNG files.
    correct = total = 0
    with torch.no_grad():
        for label, c in enumerate(order):
            folder = os.path.join(OUT, "test", c)
            files = sorted(os.listdir(folder))
            px = b"".join(png_pixels(os.path.join(folder, f)) for f in files)
            images = torch.frombuffer(bytearray(px), dtype=torch.uint8)
            images = (images.float() / 255).reshape(len(files), 1, 28, 28)
            correct += (module(images).argmax(1) == label).sum().item()
            total += len(files)
    print(f"PyTorch: teacher accuracy on {OUT}/test: {100 * correct / total:.2f}% "
          f"({correct}/{total})")


if __name__ == "__main__":
    sys.exit(main())
