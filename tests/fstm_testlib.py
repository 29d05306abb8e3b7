"""Shared helpers for the Python oracle tests (run with Debian's /usr/bin/python3 and torch).

Each py_test_*.py is one CTest entry: `python3 script --fstm PATH --work DIR [--tools DIR]`.
Exit 0 = pass, 1 = fail, 77 = skipped (with the reason printed).
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import torch

SKIP = 77

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
           torch.int32: "I32", torch.uint8: "U8"}
_TORCH = {v: k for k, v in _DTYPES.items()}


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--fstm", required=True, help="path to the fstm program")
    p.add_argument("--work", required=True, help="scratch directory")
    p.add_argument("--tools", required=True, help="directory of the test tools (parity_runner, ...)")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    return a


def save_safetensors(path, tensors, metadata=None):
    """Writes a dict name -> torch.Tensor in the safetensors format (8-byte header length, JSON
    header with dtype/shape/data_offsets, raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dtype = _TORCH[info["dtype"]]
        buf = bytearray(data[b:e])
        t = torch.frombuffer(buf, dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


class Checker:
    """Collects comparisons and prints one line each; exit code reflects all of them."""

    def __init__(self):
        self.failures = 0
        self.count = 0

    def close(self, name, actual, expected, rel):
        """max|a - e| <= rel * max|e| (+ a tiny absolute floor): a per-tensor relative bound."""
        actual = actual.double()
        expected = expected.double()
        self.count += 1
        if actual.shape != expected.shape:
            print(f"FAIL {name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
            self.failures += 1
            return
        scale = expected.abs().max().item() if expected.numel() else 0.0
        err = (actual - expected).abs().max().item() if expected.numel() else 0.0
        ok = err <= rel * scale + 1e-7
        if not ok or os.environ.get("FSTM_VERBOSE"):
            print(f"{'ok  ' if ok else 'FAIL'} {name}: max err {err:.3g}, scale {scale:.3g}, "
                  f"relative {err / max(scale, 1e-30):.3g} (bound {rel:g})")
        if not ok:
            self.failures += 1

    def finish(self):
        print(f"{self.count - self.failures}/{self.count} comparisons within tolerance")
        sys.exit(1 if self.failures else 0)
