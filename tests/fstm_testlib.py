"""Shared helpers for the Python oracle tests (run with Debian's /usr/bin/python3 and torch).

Each py_test_*.py is one CTest entry: `python3 script --fstm PATH --work DIR [--tools DIR]`.
Exit 0 = pass, 1 = fail, 77 = skipped (with the reason printed).
"""
import argparse
import os
import subprocess
import sys

import torch

import ctest_args
import st_helpers

SKIP = 77


def args():
    a = ctest_args.parse(ctest_args.parser())
    if a.fstm is None:
        sys.exit("--fstm is required")
    return a


def save_safetensors(path, tensors, metadata=None):
    """Writes a dict name -> torch.Tensor as safetensors (format code in st_helpers.py)."""
    st_helpers.write_spec(path, list(tensors.items()), metadata, pad=True)


def load_safetensors(path):
    return dict(st_helpers.read_spec(path)[0])


def randomize_batch_norm(model, gen):
    """Random BatchNorm statistics and affine parameters (torch.Generator `gen`), so that eval mode
    and BatchNorm folding are exercised by random-weight models."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
            m.num_batches_tracked.fill_(7)


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def run_parity_runner(a, tag, arch, classes, state, x, y, *flags):
    """Runs tests/tools/parity_runner on a torchvision state dict and an NCHW batch x with labels
    y; returns what it wrote (eval_logits, train_logits, train_loss, grad.*, buffer.*, ...)."""
    weights = os.path.join(a.work, f"{tag}_weights.safetensors")
    inputs = os.path.join(a.work, f"{tag}_input.safetensors")
    out = os.path.join(a.work, f"{tag}_out.safetensors")
    save_safetensors(weights, state)
    save_safetensors(inputs, {"x": x.permute(0, 2, 3, 1).contiguous(), "labels": y})
    run([os.path.join(a.tools, "parity_runner"), arch, classes, weights, inputs, out, *flags])
    return load_safetensors(out)


class Checker:
    """Collects comparisons and prints one line each; exit code reflects all of them."""

    def __init__(self):
        self.failures = 0
        self.count = 0

    def close(self, name, actual, expected, rel, atol=1e-7):
        """max|a - e| <= rel * max|e| + atol: a per-tensor relative bound with a small absolute floor.
        Returns the relative error (max|a - e| / max|e|)."""
        actual = actual.double()
        expected = expected.double()
        self.count += 1
        if actual.shape != expected.shape:
            print(f"FAIL {name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
            self.failures += 1
            return float("inf")
        scale = expected.abs().max().item() if expected.numel() else 0.0
        err = (actual - expected).abs().max().item() if expected.numel() else 0.0
        ok = err <= rel * scale + atol
        if not ok or os.environ.get("FSTM_VERBOSE"):
            print(f"{'ok  ' if ok else 'FAIL'} {name}: max err {err:.3g}, scale {scale:.3g}, "
                  f"relative {err / max(scale, 1e-30):.3g} (bound {rel:g})")
        if not ok:
            self.failures += 1
        return err / max(scale, 1e-30)

    def ok(self, name, cond, detail=""):
        """A yes/no check: one line, with `detail` when it fails."""
        self.count += 1
        self.failures += 0 if cond else 1
        print(("ok   " if cond else "FAIL ") + name + (f": {detail}" if detail and not cond else ""), flush=True)

    def finish(self):
        print(f"{self.count - self.failures}/{self.count} comparisons within tolerance")
        sys.exit(1 if self.failures else 0)
