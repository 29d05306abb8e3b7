#!/usr/bin/python3
"""EfficientNet throughput: fstm against PyTorch 1.13 (Debian's torch/torchvision), same machine,
same thread count, in one run.

    /usr/bin/python3 bench/bench_efficientnet.py --fstm build/fstm [--arch efficientnet_b3]
        [--batch 16] [--size 224] [--threads 2] [--rounds 3] [--iterations 5]
        [--workloads infer-f32 infer-bf16 train]

Workloads (batch 16, 224x224 by default, 1000 classes):
  infer f32   fstm's inference plan (oneDNN, BN folded, fused post-ops) vs PyTorch eval + no_grad,
              the better of NCHW and channels-last
  infer bf16  fstm's bf16 plan vs PyTorch bf16 autocast, the better of NCHW and channels-last
  train f32   one SGD-momentum step (forward, cross-entropy, backward, update) in train mode
              (dropout and stochastic depth on) vs the same in PyTorch, the better of both layouts
Each engine runs `iterations` timed steps after one warm-up and reports the median; the whole set
is repeated `rounds` times, interleaving fstm and PyTorch so that load from other processes hits
both. The table shows the median over rounds of each throughput, and the median over rounds of the
ratio fstm / PyTorch's best within the same round (the paired figure, less sensitive to load that
comes and goes between rounds). This machine is shared: run it when quiet.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
import torchvision

TARGETS = {"infer f32": 1.3, "infer bf16": 1.5, "train f32": 1.0}


def fstm_images_per_s(a, mode, dtype):
    cmd = [a.fstm, "bench", "--arch", a.arch, "--mode", mode, "--dtype", dtype, "--batch", str(a.batch),
           "--size", str(a.size), "--threads", str(a.threads), "--iterations", str(a.iterations), "--warmup", "1",
           "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def median_step_seconds(step, iterations):
    step()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_infer(a, layout, bf16):
    model = getattr(torchvision.models, a.arch)(num_classes=1000).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    if layout == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)

    return a.batch / median_step_seconds(step, a.iterations)


def torch_train(a, layout):
    model = getattr(torchvision.models, a.arch)(num_classes=1000).train()
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 1000, (a.batch,))
    if layout == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return a.batch / median_step_seconds(step, a.iterations)


def one_round(a):
    """{workload: (fstm img/s, {torch variant: img/s})}"""
    layouts = ("NCHW", "channels-last")
    r = {}
    if "infer-f32" in a.workloads:
        r["infer f32"] = (fstm_images_per_s(a, "infer", "f32"), {l: torch_infer(a, l, False) for l in layouts})
    if "infer-bf16" in a.workloads:
        r["infer bf16"] = (fstm_images_per_s(a, "infer", "bf16"), {l: torch_infer(a, l, True) for l in layouts})
    if "train" in a.workloads:
        r["train f32"] = (fstm_images_per_s(a, "train", "f32"), {l: torch_train(a, l) for l in layouts})
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fstm", default="build/fstm")
    p.add_argument("--arch", default="efficientnet_b3", choices=["efficientnet_b3", "efficientnet_b4"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--workloads", nargs="+", default=["infer-f32", "infer-bf16", "train"],
                   choices=["infer-f32", "infer-bf16", "train"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    rounds = []
    for i in range(a.rounds):
        rounds.append(one_round(a))
        print(f"round {i + 1}/{a.rounds}: " + ", ".join(
            f"{w} fstm {f:.2f} torch " + "/".join(f"{v:.2f}" for v in t.values()) for w, (f, t) in rounds[-1].items()),
            flush=True)

    print(f"\n{a.arch}, batch {a.batch}, {a.size}x{a.size}, {a.threads} threads, torch {torch.__version__}, "
          f"median of {a.rounds} rounds x {a.iterations} steps (img/s)\n")
    print("| workload | fstm | PyTorch NCHW | PyTorch channels-last | ratio to PyTorch's best | paired ratio | target |")
    print("|---|---|---|---|---|---|---|")
    for w in rounds[0]:
        ours = statistics.median(r[w][0] for r in rounds)
        theirs = {layout: statistics.median(r[w][1][layout] for r in rounds) for layout in rounds[0][w][1]}
        paired = statistics.median(r[w][0] / max(r[w][1].values()) for r in rounds)
        print(f"| {w} | {ours:.2f} | {theirs['NCHW']:.2f} | {theirs['channels-last']:.2f} | "
              f"{ours / max(theirs.values()):.2f}x | {paired:.2f}x | >= {TARGETS[w]}x |")


if __name__ == "__main__":
    main()
