#!/usr/bin/python3
"""Memory-bound training kernels of fstm next to PyTorch (Debian's 1.13), channels-last
[32, 56, 56, 64] f32: batch norm train forward/backward, eval forward, ReLU forward/backward, SiLU,
add. Runs build/bench/bench_pointwise (Google Benchmark, JSON), times torch in this process and
prints milliseconds (median) and torch/fstm speed-ups.

  /usr/bin/python3 bench/bench_pointwise.py --bench build/bench/bench_pointwise [--threads 2] [--reps 5] [--clock cpu]

--clock cpu times by process CPU time: with --threads 1 the steady measure on a shared, busy machine.
fstm's calls rotate over four operand sets so inputs come from memory, not cache; torch's calls
reuse one input (as its own benchmarks would), which favours torch on the single-input kernels.
"""
import argparse
import json
import os
import statistics
import subprocess
import time


CLOCK = time.perf_counter


def time_median(fn, reps, min_time=0.3):
    fn()
    samples = []
    for _ in range(reps):
        n, t0 = 0, CLOCK()
        while CLOCK() - t0 < min_time:
            fn()
            n += 1
        samples.append((CLOCK() - t0) / n)
    return statistics.median(samples)


def torch_ms(threads, reps):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    cl = torch.channels_last
    x = torch.randn(32, 64, 56, 56).to(memory_format=cl)
    dy = torch.randn_like(x).to(memory_format=cl)
    w, b = torch.ones(64), torch.zeros(64)
    rm, rv = torch.zeros(64), torch.ones(64)
    with torch.no_grad():
        y, mean, invstd = torch.ops.aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)[:3]
        r = torch.relu(x)
        runs = {
            "bn_train_fwd": lambda: torch.ops.aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5),
            "bn_train_bwd": lambda: torch.ops.aten.native_batch_norm_backward(
                dy, x, w, rm, rv, mean, invstd, True, 1e-5, [True, True, True]),
            "bn_eval_fwd": lambda: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5),
            "relu_fwd": lambda: torch.relu(x),
            "relu_bwd": lambda: torch.ops.aten.threshold_backward(dy, r, 0.0),
            "silu_fwd": lambda: F.silu(x),
            "add": lambda: torch.add(x, dy),
        }
        return {k: 1e3 * time_median(fn, reps) for k, fn in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/bench/bench_pointwise")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run([args.bench, "--benchmark_format=json", f"--benchmark_repetitions={args.reps}",
                          "--benchmark_min_time=0.3"], env=env, check=True, capture_output=True, text=True).stdout
    per = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "iteration":
            key = b["run_name"].replace("/process_time", "").replace("/real_time", "")
            per.setdefault(key, []).append(b["cpu_time" if args.clock == "cpu" else "real_time"])
    ours = {k: statistics.median(v) for k, v in per.items()}
    theirs = torch_ms(args.threads, args.reps)
    print(f"[32, 56, 56, 64] f32 channels-last, {args.threads} threads, median ms ({args.clock} clock) of {args.reps}")
    print(f"{'kernel':14s} {'fstm':>8s} {'reference':>10s} {'torch':>8s} {'torch/fstm':>10s}")
    for k, t in theirs.items():
        f, r = ours.get(f"{k}/fast", 0), ours.get(f"{k}/reference", 0)
        print(f"{k:14s} {f:8.2f} {r:10.2f} {t:8.2f} {t / f if f else 0:10.2f}")


if __name__ == "__main__":
    main()
