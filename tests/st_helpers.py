"""Helpers for tests/py_test_safetensors*.py.

A small safetensors reader and writer written from the format description (8-byte little-endian
header length, JSON header {name: {dtype, shape, data_offsets}} plus an optional "__metadata__"
string map, then the data buffer), a torchvision ResNet-18 state dict with random weights in the
dtypes fstm reads, and a runner for the C++ test tool tests/tools/st_roundtrip.cpp.
"""
import ctypes
import json
import os
import struct
import subprocess
import sys
from collections import OrderedDict

import torch

DTYPE_NAMES = OrderedDict([
    (torch.float32, "F32"), (torch.float16, "F16"), (torch.bfloat16, "BF16"),
    (torch.int64, "I64"), (torch.int32, "I32"), (torch.uint8, "U8"),
])
NAME_DTYPES = {v: k for k, v in DTYPE_NAMES.items()}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def tensor_bytes(t):
    """The row-major little-endian bytes of a tensor (this machine is little-endian). Read through
    ctypes rather than numpy, which not every PyTorch installation has (the GPU machines')."""
    t = t.detach().to("cpu").contiguous()
    n = t.numel() * t.element_size()
    return ctypes.string_at(t.data_ptr(), n) if n else b""


def write_spec(path, items, metadata=None, header_order=None, pad=False):
    """Writes (name, tensor) items with data in the given order; header keys in header_order."""
    entries, chunks, offset = {}, [], 0
    for name, t in items:
        b = tensor_bytes(t)
        entries[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in header_order or [n for n, _ in items]:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def read_spec(path):
    """Returns (OrderedDict name -> tensor in data order, metadata, header text, [(name, begin, end)])."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n]
    header = json.loads(text.decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    layout = sorted(((name, e["data_offsets"][0], e["data_offsets"][1]) for name, e in header.items()),
                    key=lambda x: (x[1], x[2]))
    covered = 0
    for name, b, e in layout:
        if b != covered:
            fail(f"{path}: tensor {name} starts at {b}, expected {covered}")
        covered = e
    if covered != len(data):
        fail(f"{path}: tensors cover {covered} of {len(data)} data bytes")
    tensors = OrderedDict()
    for name, b, e in layout:
        entry = header[name]
        dtype = NAME_DTYPES[entry["dtype"]]
        shape = entry["shape"]
        if e == b:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=dtype).reshape(shape)
        tensors[name] = t
    return tensors, metadata, text, layout


def same_bits(a, b):
    return a.dtype == b.dtype and list(a.shape) == list(b.shape) and tensor_bytes(a) == tensor_bytes(b)


def compare_all(expected, actual, what):
    """Every tensor of `expected` must be in `actual` with the same dtype, shape and bits."""
    if list(expected.keys()) != list(actual.keys()) and sorted(expected) != sorted(actual):
        fail(f"{what}: names differ: {sorted(set(expected) ^ set(actual))}")
    for name, t in expected.items():
        if not same_bits(t, actual[name]):
            fail(f"{what}: tensor {name}: expected {t.dtype} {list(t.shape)}, got "
                 f"{actual[name].dtype} {list(actual[name].shape)} or different bits")


def resnet18_state(seed):
    """torchvision ResNet-18 state dict with random weights and BatchNorm statistics, plus tensors in
    every other dtype fstm reads: fc.weight as BF16, layer4.1.conv2.weight as F16, I32, U8 (odd
    size, so the tensors after it are not aligned), a scalar, a zero-size tensor and f16 specials."""
    import torchvision
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for i, m in enumerate(model.modules()):
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(100003 * (i + 1))  # I64, larger than 2^24
    state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    state["fc.weight"] = state["fc.weight"].to(torch.bfloat16)
    state["layer4.1.conv2.weight"] = state["layer4.1.conv2.weight"].to(torch.float16)
    # Insert the odd-sized U8 tensor just before the classifier.
    out = OrderedDict()
    for k, v in state.items():
        if k == "fc.weight":
            out["extra.u8"] = torch.randint(0, 256, (3, 5), dtype=torch.uint8)
        out[k] = v
    out["extra.i32"] = torch.tensor([-2**31, -7, 0, 2**31 - 1], dtype=torch.int32)
    out["extra.scalar"] = torch.tensor(3.25)
    out["extra.empty"] = torch.zeros(0, 4)
    bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e01]  # 0, -0, subnormals, max, inf, NaN
    out["extra.f16_special"] = torch.tensor([b - 0x10000 if b >= 0x8000 else b for b in bits],
                                            dtype=torch.int16).view(torch.float16)
    return out


def run_tool(tool, *args, expect_ok=True):
    """Runs st_roundtrip; returns (parsed stdout listing or None, stderr)."""
    r = subprocess.run([tool] + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    if expect_ok and r.returncode != 0:
        fail(f"{os.path.basename(tool)} {' '.join(map(str, args))} exited {r.returncode}: {r.stderr.strip()}")
    if not expect_ok:
        if r.returncode != 1:
            fail(f"{os.path.basename(tool)} {' '.join(map(str, args))}: expected exit 1, got {r.returncode}")
        return None, r.stderr
    return json.loads(r.stdout), r.stderr


def check_listing(listing, tensors, metadata, what):
    """fstm's view of a file: names in data order, dtypes and shapes, metadata."""
    names = [t["name"] for t in listing["tensors"]]
    if sorted(names) != sorted(tensors):
        fail(f"{what}: fstm read names {sorted(set(names) ^ set(tensors))} differently")
    for t in listing["tensors"]:
        ref = tensors[t["name"]]
        if t["dtype"] != DTYPE_NAMES[ref.dtype] or t["shape"] != list(ref.shape):
            fail(f"{what}: fstm read {t['name']} as {t['dtype']} {t['shape']}, "
                 f"expected {DTYPE_NAMES[ref.dtype]} {list(ref.shape)}")
    if listing["metadata"] != dict(metadata):
        fail(f"{what}: fstm read metadata {listing['metadata']}, expected {dict(metadata)}")
    return names


def tool_path(args_tool):
    tool = args_tool or os.environ.get("FSTM_ST_ROUNDTRIP")
    if not tool or not os.path.exists(tool):
        fail("the st_roundtrip tool was not found: pass --tool or set FSTM_ST_ROUNDTRIP "
             "(CTest sets it; build the fstm_st_roundtrip target)")
    return tool


def widened(t):
    """What fstm's to-f32 mode should produce: floats as f32 (torch's conversion), integers as i64."""
    return t.float() if t.is_floating_point() else t.long()
