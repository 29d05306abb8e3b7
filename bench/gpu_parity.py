#!/usr/bin/env python3
"""GPU-vs-CPU parity of ResNet-18/34, with PyTorch on the same GPU as a third opinion.

    python3 bench/gpu_parity.py --tool build/tests/gpu_parity [--work DIR] [--archs resnet18,resnet34]
    python3 bench/gpu_parity.py --tool build/tests/gpu_parity --cpu-dry-run     # no GPU: checks the script

For each architecture: a torchvision model with random weights and random BatchNorm statistics
(10 classes), a batch of 4 images 64x80 and labels are written as safetensors; tests/tools/gpu_parity
loads them, runs fstm on the CPU and on the GPU and compares (its own lines: eval logits 1e-4,
train logits and loss 1e-4, every parameter gradient 1e-3, inference plans f32 1e-4, f16 1e-2, bf16
5e-2, each relative to the largest magnitude of the tensor). This script then runs the same model in
PyTorch on the GPU (f32, TF32 off) and compares fstm's CUDA results with it at the same bounds.

Without PyTorch the tool runs alone on random weights of its own. Exit status: 0 when every
comparison is within its bound, 1 otherwise, 77 when there is no GPU.
"""
import argparse
import os
import subprocess
import sys

from torch_precision import exact_f32

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

TOL_LOGITS = 1e-4
TOL_GRAD = 1e-3
TOL_PLAN = {"f32": 1e-4, "f16": 1e-2, "bf16": 5e-2}


class Checker:
    """max|a - e| <= bound * max|e| per tensor; one line per failure (all with --verbose)."""

    def __init__(self, verbose):
        self.count = self.failures = 0
        self.worst = 0.0
        self.verbose = verbose

    def close(self, name, actual, expected, bound):
        actual, expected = actual.double().cpu(), expected.double().cpu()
        self.count += 1
        if tuple(actual.shape) != tuple(expected.shape):
            print(f"FAIL {name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
            self.failures += 1
            return
        scale = expected.abs().max().item() if expected.numel() else 0.0
        err = (actual - expected).abs().max().item() if expected.numel() else 0.0
        if err != err:
            err = float("inf")
        ok = err <= bound * scale + 1e-7
        self.worst = max(self.worst, err / max(scale, 1e-30) / bound)
        if not ok or self.verbose:
            print(f"{'ok  ' if ok else 'FAIL'} {name}: max err {err:.3g}, scale {scale:.3g}, "
                  f"relative {err / max(scale, 1e-30):.3g} (bound {bound:g})")
        if not ok:
            self.failures += 1


def run_tool(cmd, timeout):
    print("+ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def check_arch(torch, torchvision, st, arch, args, device, checker):
    """Returns the tool's exit status; adds the PyTorch comparisons to checker."""
    from fstm_testlib import randomize_batch_norm as randomize  # as the CPU parity tests
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    classes = 10
    model = getattr(torchvision.models, arch)(num_classes=classes)
    with torch.no_grad():
        randomize(model, gen)
    x = torch.randn(4, 3, 64, 80, generator=gen)
    y = torch.tensor([3, 0, 9, 3])
    weights = os.path.join(args.work, f"{arch}_weights.safetensors")
    inputs = os.path.join(args.work, f"{arch}_input.safetensors")
    dump = os.path.join(args.work, f"{arch}_results.safetensors")
    st.write_spec(weights, list(model.state_dict().items()), pad=True)
    st.write_spec(inputs, [("x", x.permute(0, 2, 3, 1).contiguous()), ("labels", y)], pad=True)
    if os.path.exists(dump):
        os.remove(dump)
    cmd = [args.tool, arch, "--classes", str(classes), "--weights", weights, "--input", inputs, "--dump", dump,
           "--device", "cpu" if args.cpu_dry_run else "cuda:0"]
    rc = run_tool(cmd, args.timeout)
    if rc == 77:
        print(f"{arch}: skipped (the tool sees no CUDA device)")
        return rc
    if not os.path.exists(dump):
        print(f"FAIL {arch}: the tool wrote no results (exit {rc})")
        checker.count += 1
        checker.failures += 1
        return rc or 1
    got = st.read_spec(dump)[0]

    m = model.to(device).to(memory_format=torch.channels_last)
    xd = x.to(device).to(memory_format=torch.channels_last)
    yd = y.to(device)
    m.eval()
    with torch.no_grad():
        logits = m(xd)
    where = "PyTorch " + ("CPU (dry run)" if args.cpu_dry_run else "GPU")
    checker.close(f"{arch} eval logits: fstm CUDA vs {where}", got["cuda.eval_logits"], logits, TOL_LOGITS)
    for dtype, bound in TOL_PLAN.items():
        if f"plan.{dtype}" in got:
            checker.close(f"{arch} plan {dtype} logits vs {where} f32", got[f"plan.{dtype}"], logits, bound)
    if device == "cuda":  # context for the bf16 bound: PyTorch's own bf16 error
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            torch_bf16 = m(xd).float()
        err = (torch_bf16 - logits).abs().max().item() / max(logits.abs().max().item(), 1e-30)
        print(f"     {arch}: PyTorch bf16 autocast vs f32: relative error {err:.3g}")
    m.train()
    out = m(xd)
    loss = torch.nn.functional.cross_entropy(out, yd)
    loss.backward()
    checker.close(f"{arch} train logits: fstm CUDA vs {where}", got["cuda.train_logits"], out.detach(), TOL_LOGITS)
    checker.close(f"{arch} train loss: fstm CUDA vs {where}", got["cuda.train_loss"].reshape(()), loss.detach(),
                  TOL_LOGITS)
    grads = 0
    for name, p in m.named_parameters():
        key = "cuda.grad." + name
        if key not in got:
            print(f"FAIL {arch}: no gradient {name} from fstm")
            checker.count += 1
            checker.failures += 1
            continue
        grads += 1
        checker.close(f"{arch} grad {name}: fstm CUDA vs {where}", got[key], p.grad, TOL_GRAD)
    print(f"{arch}: fstm CUDA vs {where}: {grads} parameter gradients compared")
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True, help="tests/tools/gpu_parity from the build")
    ap.add_argument("--work", default="gpu_parity_work", help="scratch directory")
    ap.add_argument("--archs", default="resnet18,resnet34")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per tool run")
    ap.add_argument("--verbose", action="store_true", help="print every comparison")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="no GPU: the tool's GPU side and PyTorch run on the CPU (checks the plumbing)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    archs = [a for a in args.archs.split(",") if a]

    try:
        import torch
        import torchvision
        import st_helpers as st
    except ImportError as e:
        print(f"gpu_parity.py: no PyTorch/torchvision here ({e}); fstm CPU vs CUDA only, on its own weights")
        rcs = [run_tool([args.tool, a, "--device", "cpu" if args.cpu_dry_run else "cuda:0"], args.timeout)
               for a in archs]
        return 77 if all(rc == 77 for rc in rcs) else (0 if all(rc == 0 for rc in rcs) else 1)

    device = "cpu" if args.cpu_dry_run else "cuda"
    if device == "cuda":
        if not torch.cuda.is_available():
            print("gpu_parity.py: PyTorch sees no GPU; skipped", file=sys.stderr)
            return 77
        exact_f32(torch)  # TF32 off on PyTorch's side too (bench/torch_precision.py)
    checker = Checker(args.verbose)
    tool_failed = []
    rcs = [check_arch(torch, torchvision, st, arch, args, device, checker) for arch in archs]
    if all(rc == 77 for rc in rcs):
        return 77
    for arch, rc in zip(archs, rcs):
        if rc != 0:
            tool_failed.append(f"{arch} (exit {rc})")
    print(f"gpu_parity.py: fstm CUDA vs PyTorch: {checker.count - checker.failures}/{checker.count} within bounds, "
          f"worst error {checker.worst:.2f} of its bound; fstm CPU vs CUDA: "
          f"{'all within bounds' if not tool_failed else 'FAILED for ' + ', '.join(tool_failed)}")
    return 0 if checker.failures == 0 and not tool_failed else 1


if __name__ == "__main__":
    sys.exit(main())
