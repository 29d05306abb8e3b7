#!/usr/bin/python3
"""Convolution speed of fstm next to PyTorch (Debian's 1.13, oneDNN inside) on the same shapes:
every distinct ResNet-18 convolution at 224x224, batch 32, channels-last.

Runs build/bench/bench_conv (Google Benchmark, JSON) and times torch in this process, then prints
GFLOP/s medians and fstm/torch ratios for forward, backward-data and backward-weights (f32), and the
bare-oneDNN layout table (NHWC vs nChw16c vs oneDNN's choice, f32 and bf16 inference).

  /usr/bin/python3 bench/bench_conv.py --bench build/bench/bench_conv [--threads 2] [--reps 3] [--clock cpu]

--clock cpu divides by process CPU time instead of wall time: with --threads 1 on a shared, busy
machine it measures what each kernel does per core without the noise of other jobs.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

# name, H, W, Ci, Co, k, stride, pad: must match resnet18_convs() in bench_conv.cpp
SHAPES = [
    ("conv1_7x7s2", 224, 224, 3, 64, 7, 2, 3),
    ("layer1_3x3_56", 56, 56, 64, 64, 3, 1, 1),
    ("layer2.0.conv1_3x3s2", 56, 56, 64, 128, 3, 2, 1),
    ("layer2.0.downsample_1x1s2", 56, 56, 64, 128, 1, 2, 0),
    ("layer2_3x3_28", 28, 28, 128, 128, 3, 1, 1),
    ("layer3.0.conv1_3x3s2", 28, 28, 128, 256, 3, 2, 1),
    ("layer3.0.downsample_1x1s2", 28, 28, 128, 256, 1, 2, 0),
    ("layer3_3x3_14", 14, 14, 256, 256, 3, 1, 1),
    ("layer4.0.conv1_3x3s2", 14, 14, 256, 512, 3, 2, 1),
    ("layer4.0.downsample_1x1s2", 14, 14, 256, 512, 1, 2, 0),
    ("layer4_3x3_7", 7, 7, 512, 512, 3, 1, 1),
]
BATCH = 32
# How often each layer shape occurs in one ResNet-18 forward pass (for the weighted total).
COUNT = {"conv1_7x7s2": 1, "layer1_3x3_56": 4, "layer2.0.conv1_3x3s2": 1, "layer2.0.downsample_1x1s2": 1,
         "layer2_3x3_28": 3, "layer3.0.conv1_3x3s2": 1, "layer3.0.downsample_1x1s2": 1, "layer3_3x3_14": 3,
         "layer4.0.conv1_3x3s2": 1, "layer4.0.downsample_1x1s2": 1, "layer4_3x3_7": 3}


def gflop(s):
    _, H, W, Ci, Co, k, st, p = s
    Ho, Wo = (H + 2 * p - k) // st + 1, (W + 2 * p - k) // st + 1
    return 2.0 * BATCH * Ho * Wo * Co * Ci * k * k * 1e-9


CLOCK = time.perf_counter


def time_median(fn, reps, min_time=0.3):
    fn()
    samples = []
    for _ in range(reps):
        n, t0 = 0, CLOCK()
        while True:
            fn()
            n += 1
            el = CLOCK() - t0
            if el >= min_time:
                break
        samples.append(el / n)
    return statistics.median(samples)


def torch_numbers(s, threads, reps):
    """GFLOP/s of PyTorch on one shape: f32 fwd/bwd_data/bwd_weights and bf16 fwd, channels-last."""
    import torch
    torch.set_num_threads(threads)
    name, H, W, Ci, Co, k, st, p = s
    x = torch.randn(BATCH, Ci, H, W).to(memory_format=torch.channels_last)
    w = torch.randn(Co, Ci, k, k).to(memory_format=torch.channels_last)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, w, stride=st, padding=p)
        gy = torch.randn_like(y).to(memory_format=torch.channels_last)
        args = (None, [st, st], [p, p], [1, 1], False, [0, 0], 1)
        xb, wb = x.to(torch.bfloat16), w.to(torch.bfloat16)
        runs = {
            "fwd": lambda: torch.nn.functional.conv2d(x, w, stride=st, padding=p),
            "bwd_data": lambda: torch.ops.aten.convolution_backward(gy, x, w, *args, [True, False, False]),
            "bwd_weights": lambda: torch.ops.aten.convolution_backward(gy, x, w, *args, [False, True, False]),
            "bf16_fwd": lambda: torch.nn.functional.conv2d(xb, wb, stride=st, padding=p),
        }
        out = {d: gflop(s) / time_median(fn, reps) for d, fn in runs.items()}
    print(f"  torch {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in out.items()), file=sys.stderr)
    return {name: out}


def fstm_numbers(bench, threads, reps, pattern, cpu_clock):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [bench, f"--benchmark_filter={pattern}", "--benchmark_format=json", f"--benchmark_repetitions={reps}",
           "--benchmark_min_time=0.3"]
    res = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    per = {}
    labels = {}
    for b in res["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        key = b["run_name"].replace("/process_time", "").replace("/real_time", "")
        if cpu_clock:  # cpu_time is per iteration, in the benchmark's unit
            per.setdefault(key, []).append(b["GFLOP/s"] * b["real_time"] / b["cpu_time"])
        else:
            per.setdefault(key, []).append(b["GFLOP/s"])
        labels[key] = b.get("label", "")
    return {k: statistics.median(v) for k, v in per.items()}, labels


def weighted(values):
    """GFLOP/s over a whole ResNet-18 pass: total flops / total time."""
    flops = sum(COUNT[s[0]] * gflop(s) for s in SHAPES)
    secs = sum(COUNT[s[0]] * gflop(s) / values[s[0]] for s in SHAPES)
    return flops / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/bench/bench_conv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    # Shape by shape, fstm then torch, so that both see the same machine load (the build machine
    # is shared and noisy).
    fstm, labels, torch = {}, {}, None if args.skip_torch else {}
    for s in SHAPES:
        f, l = fstm_numbers(args.bench, args.threads, args.reps, f"^(fstm|fstm_direct|onednn)/.*/{re.escape(s[0])}/",
                            args.clock == "cpu")
        fstm.update(f)
        labels.update(l)
        if torch is not None:
            torch.update(torch_numbers(s, args.threads, args.reps))

    print(f"\nGFLOP/s ({args.clock} clock), median of {args.reps}, batch {BATCH}, {args.threads} threads, "
          "f32 NHWC training kernels. Winograd layers count direct-convolution flops (effective GFLOP/s);\n"
          "'direct' = fstm with Winograd off; ratio = fstm / torch")
    for d in ("fwd", "bwd_data", "bwd_weights"):
        print(f"\n{d:12s} {'layer':28s} {'fstm':>7s} {'direct':>7s} {'torch':>7s} {'ratio':>6s}")
        cols = {"fstm": {}, "direct": {}, "torch": {}}
        for s in SHAPES:
            n = s[0]
            f = fstm.get(f"fstm/{d}/{n}")
            dr = fstm.get(f"fstm_direct/{d}/{n}", f)  # only 3x3/1 layers differ
            t = torch[n][d] if torch else None
            cols["fstm"][n], cols["direct"][n], cols["torch"][n] = f, dr, t
            ratio = f"{f / t:6.2f}" if (f and t) else "     -"
            print(f"{'':12s} {n:28s} {f or 0:7.1f} {dr or 0:7.1f} {t or 0:7.1f} {ratio}")
        tot = {k: weighted(v) for k, v in cols.items() if all(v.values())}
        ratio = f"{tot['fstm'] / tot['torch']:6.2f}" if "torch" in tot and "fstm" in tot else "     -"
        print(f"{'':12s} {'ResNet-18 pass (weighted)':28s} {tot.get('fstm', 0):7.1f} {tot.get('direct', 0):7.1f} "
              f"{tot.get('torch', 0):7.1f} {ratio}")

    print(f"\nBare oneDNN inference forward, GFLOP/s (activation layouts; weights pre-reordered). "
          "'16c+wino' = nChw16c with Winograd on the 3x3/1 layers")
    cols = [("f32", "nhwc"), ("f32", "nChw16c"), ("f32", "any"), ("f32", "16c+wino"), ("bf16", "nhwc"),
            ("bf16", "nChw16c"), ("bf16", "any")]
    print(f"{'layer':28s} " + " ".join(f"{t + ' ' + l.replace('nChw', ''):>13s}" for t, l in cols) +
          f" {'torch bf16':>10s}")
    table = {}
    for s in SHAPES:
        n = s[0]
        row = []
        for t, l in cols:
            if l == "16c+wino":
                v = fstm.get(f"onednn/f32/winograd/{n}") or fstm.get(f"onednn/f32/nChw16c/{n}", 0)
            else:
                v = fstm.get(f"onednn/{t}/{l}/{n}", 0)
            row.append(v)
        row.append(torch[n]["bf16_fwd"] if torch else 0)
        for i, v in enumerate(row):
            table.setdefault(i, {})[n] = v
        print(f"{n:28s} " + " ".join(f"{v:13.1f}" for v in row[:-1]) + f" {row[-1]:10.1f}")
    print(f"{'ResNet-18 pass (weighted)':28s} " +
          " ".join(f"{weighted(table[i]) if all(table[i].values()) else 0:13.1f}" for i in range(len(cols))) +
          f" {weighted(table[len(cols)]) if all(table[len(cols)].values()) else 0:10.1f}")
    print("\nKernels chosen:")
    for s in SHAPES:
        for t in ("f32", "bf16"):
            for l in ("nhwc", "nChw16c", "any", "winograd"):
                k = f"onednn/{t}/{l}/{s[0]}"
                if k in labels:
                    print(f"  {k}: {labels[k]}")


if __name__ == "__main__":
    main()
