"""fstm's safetensors files against the reference `safetensors` package from PyPI.

Creates (once) a venv at <build>/venv with Debian's Python and its torch
(`/usr/bin/python3 -m venv --system-site-packages`) and `pip install safetensors` into it; exits 77
(skipped) when that is not possible (no network, no wheel). Then, inside the venv:
  - files written by safetensors.torch.save_file are read by fstm (tests/tools/st_roundtrip) and
    written back; safetensors.torch.load_file must give every tensor bit-exactly and safe_open the
    same metadata;
  - fstm's f32 conversion (load_state_dict) loads with safetensors and equals torch's .float();
  - for the same tensors fstm writes the same bytes as the reference writer.

Run by CTest as: /usr/bin/python3 py_test_safetensors_pypi.py --fstm <fstm> --work <dir>
($FSTM_BUILD_DIR locates the build tree; the tool comes from --tool or $FSTM_ST_ROUNDTRIP).
"""
import argparse

import ctest_args
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def ensure_venv(build_dir):
    """Returns the venv's python with `safetensors` importable, or exits 77 saying why not."""
    venv = os.path.join(build_dir, "venv")
    python = os.path.join(venv, "bin", "python")

    def has_safetensors():
        return os.path.exists(python) and subprocess.run(
            [python, "-c", "import safetensors.torch"], capture_output=True).returncode == 0

    if has_safetensors():
        return python
    steps = [([sys.executable, "-m", "venv", "--system-site-packages", venv], 120)] if not os.path.exists(python) else []
    steps.append(([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "safetensors"], 300))
    for cmd, timeout in steps:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"SKIP: {' '.join(cmd)} failed: {e}")
            sys.exit(SKIP)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            print(f"SKIP: cannot install the reference safetensors package ({' '.join(cmd)} exited "
                  f"{r.returncode}): {' | '.join(tail)}")
            sys.exit(SKIP)
    if not has_safetensors():
        print(f"SKIP: safetensors installed into {venv} but `import safetensors.torch` fails")
        sys.exit(SKIP)
    return python


def inner(args):
    import safetensors
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, HERE)
    from st_helpers import check_listing, compare_all, fail, resnet18_state, run_tool, tool_path, widened

    tool = tool_path(args.tool)
    start = time.time()
    state = resnet18_state(seed=1)
    metadata = {"arch": "resnet18", "num_classes": "1000", "mean": "[0.485, 0.456, 0.406]",
                "std": "[0.229, 0.224, 0.225]", "note": "written by safetensors " + safetensors.__version__}

    # 1. Reference-written -> fstm reads and writes back -> reference reads, bit-exactly.
    ref = os.path.join(args.work, "reference.safetensors")
    save_file(dict(state), ref, metadata=metadata)
    out = os.path.join(args.work, "fstm_copy.safetensors")
    listing, _ = run_tool(tool, "copy", ref, out)
    check_listing(listing, state, metadata, "fstm reading " + ref)
    compare_all(state, load_file(out), "safetensors.torch.load_file of fstm's " + out)
    with safe_open(out, framework="pt") as f:
        if f.metadata() != metadata:
            fail(f"safe_open({out}).metadata() = {f.metadata()}, expected {metadata}")

    # 2. fstm's f32 load (BF16/F16 -> F32, I32/U8 -> I64) read by the reference.
    wide = os.path.join(args.work, "fstm_f32.safetensors")
    run_tool(tool, "to-f32", ref, wide)
    compare_all({k: widened(v) for k, v in state.items()}, load_file(wide), "fstm's f32 load " + wide)

    # 3. Same tensors, same bytes as the reference writer. (The reference orders metadata keys by a
    # hash map, so this uses one key.)
    one_key = {"arch": "resnet18"}
    ref1 = os.path.join(args.work, "reference_one_key.safetensors")
    save_file(dict(state), ref1, metadata=one_key)
    out1 = os.path.join(args.work, "fstm_one_key.safetensors")
    run_tool(tool, "copy", ref1, out1)
    with open(ref1, "rb") as a, open(out1, "rb") as b:
        ra, rb = a.read(), b.read()
    if ra != rb:
        at = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb)))
        fail(f"fstm's rewrite of {ref1} differs from the reference bytes at offset {at} "
             f"(sizes {len(ra)} and {len(rb)}): {ra[max(0, at - 40):at + 40]!r} vs {rb[max(0, at - 40):at + 40]!r}")

    print(f"ok: safetensors {safetensors.__version__} (torch {torch.__version__}): {len(state)} tensors "
          f"round-tripped bit-exactly, identical bytes to the reference writer, in {time.time() - start:.1f} s")


def main():
    ap = ctest_args.parser()
    ap.add_argument("--tool", help="tests/tools/st_roundtrip binary")
    ap.add_argument("--build-dir", help="where the venv goes (default $FSTM_BUILD_DIR)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ctest_args.parse(ap)
    os.makedirs(args.work, exist_ok=True)
    if args.inner:
        inner(args)
        return
    build_dir = args.build_dir or os.environ.get("FSTM_BUILD_DIR")
    if not build_dir:
        print("FAIL: pass --build-dir or set FSTM_BUILD_DIR (CTest sets it)", file=sys.stderr)
        sys.exit(1)
    python = ensure_venv(build_dir)
    cmd = [python, os.path.abspath(__file__), "--inner", "--work", args.work]
    if args.tool:
        cmd += ["--tool", args.tool]
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
