"""fstm reads and writes PyTorch state dicts in safetensors, bit-exactly.

A torchvision ResNet-18 state dict (random weights; BatchNorm num_batches_tracked as I64; one BF16
and one F16 weight; I32, U8, scalar and zero-size extras) is written with a hand-written writer
that follows the format description (header keys shuffled, header not padded, some tensors not
aligned). The C++ tool tests/tools/st_roundtrip reads it with fstm and writes it back; every tensor
must come back with the same dtype, shape and bits, and the tool's f32 conversion (through
load_state_dict) must equal torch's .float().

Run by CTest as: /usr/bin/python3 py_test_safetensors.py --fstm <fstm> --work <dir>
(the tool comes from --tool or $FSTM_ST_ROUNDTRIP).
"""
import ctest_args
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_helpers import (check_listing, compare_all, fail, read_spec, resnet18_state,  # noqa: E402
                        run_tool, tool_path, widened, write_spec)


def main():
    ap = ctest_args.parser()
    ap.add_argument("--tool", help="tests/tools/st_roundtrip binary")
    args = ctest_args.parse(ap)
    tool = tool_path(args.tool)
    os.makedirs(args.work, exist_ok=True)
    start = time.time()

    state = resnet18_state(seed=0)
    metadata = {"arch": "resnet18", "num_classes": "1000", "input_size": "224",
                "mean": "[0.485, 0.456, 0.406]", "std": "[0.229, 0.224, 0.225]", "exported_by": "py_test"}
    names = list(state)
    header_order = names[:]
    random.Random(1).shuffle(header_order)
    src = os.path.join(args.work, "torch_resnet18.safetensors")
    write_spec(src, list(state.items()), metadata, header_order=header_order, pad=False)
    n_i64 = sum(1 for t in state.values() if t.dtype == torch.int64)
    if n_i64 != 20:
        fail(f"expected ResNet-18's 20 num_batches_tracked I64 buffers, found {n_i64}")

    # 1. fstm reads every tensor as written and writes them back bit-exactly.
    out = os.path.join(args.work, "fstm_copy.safetensors")
    listing, _ = run_tool(tool, "copy", src, out)
    read_order = check_listing(listing, state, metadata, "reading " + src)
    if read_order != names:
        fail(f"fstm's tensor order {read_order[:5]}... is not the file's data order {names[:5]}...")
    back, back_meta, header_text, layout = read_spec(out)
    compare_all(state, back, "fstm's copy " + out)
    if back_meta != metadata:
        fail(f"metadata written as {back_meta}, expected {metadata}")
    # The written layout follows the reference: header padded with spaces to 8 bytes, every tensor
    # aligned to its element size.
    unpadded = header_text.rstrip(b" ")
    if len(header_text) % 8 or len(header_text) - len(unpadded) >= 8 or not unpadded.endswith(b"}"):
        fail(f"header of {out} is {len(header_text)} bytes, not padded with spaces to a multiple of 8")
    for name, b, _ in layout:
        size = back[name].element_size()
        if b % size:
            fail(f"{out}: tensor {name} at offset {b} is not aligned to {size} bytes")

    # 2. Writing is deterministic: a copy of the copy is the same file.
    out2 = os.path.join(args.work, "fstm_copy2.safetensors")
    run_tool(tool, "copy", out, out2)
    with open(out, "rb") as f1, open(out2, "rb") as f2:
        if f1.read() != f2.read():
            fail("copying fstm's own file gave different bytes")

    # 3. Loading into an f32 model converts BF16/F16 exactly as torch does; I64/I32/U8 -> i64.
    wide = os.path.join(args.work, "fstm_f32.safetensors")
    run_tool(tool, "to-f32", src, wide)
    converted, _, _, _ = read_spec(wide)
    compare_all({k: widened(v) for k, v in state.items()}, converted, "fstm's f32 load " + wide)

    # 4. A truncated file is refused with a message naming the file and the tensor.
    bad = os.path.join(args.work, "truncated.safetensors")
    with open(src, "rb") as f:
        raw = f.read()
    with open(bad, "wb") as f:
        f.write(raw[:-10])
    _, err = run_tool(tool, "check", bad, expect_ok=False)
    last = names[-1] if state[names[-1]].numel() else names[-2]
    for part in (bad, "past the end", "'" + last + "'"):
        if part not in err:
            fail(f"error for a truncated file lacks {part!r}: {err.strip()}")

    print(f"ok: {len(state)} tensors ({os.path.getsize(src) / 1e6:.1f} MB) read, written back and converted "
          f"bit-exactly in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
