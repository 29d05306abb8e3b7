"""Shared helpers for the Python oracle tests (run with Debian's /usr/bin/python3 and torch).

Each py_test_*.py is one CTest entry: `python3 script --fstm PATH --work DIR [--tools DIR]`.
Exit 0 = pass, 1 = fail, 77 = skipped (with the reason printed).
"""
import argparse
import os
import subprocess
import sys

import torch

import st_helpers

SKIP = 77


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--fstm", required=True, help="path to the fstm program")
    p.add_argument("--work", required=True, help="scratch directory")
    p.add_argument("--tools", required=True, help="directory of the test tools (parity_runner, ...)")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    return a


def save_safetensors(path, tensors, metadata=None):
    """Writes a dict name -> torch.Tensor as safetensors (format code in st_helpers.py)."""
    st_helpers.write_spec(path, list(tensors.items()), metadata, pad=True)


def load_safetensors(path):
    return dict(st_helpers.read_spec(path)[0])


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


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

    def finish(self):
        print(f"{self.count - self.failures}/{self.count} comparisons within tolerance")
        sys.exit(1 if self.failures else 0)
