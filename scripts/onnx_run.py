"""Runs an ONNX image classifier in onnxruntime, as a user deploying it would.

usage: onnx_run.py MODEL IMAGES.f32 N C H W LOGITS.f32 [THREADS]

IMAGES.f32 holds N*C*H*W little-endian float32 values (images in [0, 1]); the logits are
written the same way. The model is first checked with onnx.checker (full check, with shape
inference), so a file ONNX itself rejects fails here. kd's tests and deployment table use
this script; kd itself runs ONNX files without Python.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model, images, n, c, h, w, logits = sys.argv[1:8]
threads = int(sys.argv[8]) if len(sys.argv) > 8 else 1
onnx.checker.check_model(onnx.load(model), full_check=True)
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
x = np.fromfile(images, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
(y,) = session.run(["logits"], {"images": x})
y.astype("<f4").tofile(logits)
