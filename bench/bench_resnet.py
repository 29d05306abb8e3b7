#!/usr/bin/env python3
"""ResNet-18 (or -34) on the CPU: fstm against PyTorch in one run, with ratios.

Run with Debian's PyTorch:  /usr/bin/python3 bench/bench_resnet.py --fstm build/fstm
Each workload runs in its own process (so peak RSS is that workload's alone), fstm and PyTorch
alternating, `--repeats` times; the table shows medians. PyTorch's best layout is taken
(NCHW or channels-last), bf16 is PyTorch's autocast.
"""
import argparse
import json
import statistics
import subprocess
import sys

TORCH_WORKER = r"""
import json, resource, sys, time, torch, torchvision
arch, mode, batch, size, layout, dtype, iters = sys.argv[1:8]
batch, size, iters = int(batch), int(size), int(iters)
torch.set_num_threads(2)
m = getattr(torchvision.models, arch)()
x = torch.randn(batch, 3, size, size)
if layout == "cl":
    m = m.to(memory_format=torch.channels_last)
    x = x.to(memory_format=torch.channels_last)
times = []
if mode == "infer":
    m.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
        for i in range(iters + 1):
            t = time.perf_counter(); m(x); times.append(time.perf_counter() - t)
else:
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, 1000, (batch,))
    for i in range(iters + 1):
        t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t)
times = sorted(times[1:])
print(json.dumps({"images_per_s": batch / times[len(times) // 2],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def torch_run(args, mode, batch, layout, dtype):
    out = subprocess.run([sys.executable, "-c", TORCH_WORKER, args.arch, mode, str(batch), str(args.size), layout,
                          dtype, str(args.iterations)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def fstm_run(args, mode, batch, dtype):
    out = subprocess.run([args.fstm, "bench", "--arch", args.arch, "--mode", mode, "--batch", str(batch), "--size",
                          str(args.size), "--dtype", dtype, "--threads", "2", "--iterations", str(args.iterations),
                          "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fstm", default="build/fstm")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--infer-batch", type=int, default=64)
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default="infer-f32,infer-bf16,train",
                   help="which rows to run, comma-separated (default: all three)")
    args = p.parse_args()

    all_workloads = {
        "infer-f32": ("inference f32", "infer", args.infer_batch, "f32", 1.4),
        "infer-bf16": ("inference bf16", "infer", args.infer_batch, "bf16", 2.0),
        "train": ("training step", "train", args.train_batch, "f32", 1.2),
    }
    chosen = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in chosen if w not in all_workloads]
    if unknown or not chosen:
        p.error(f"--workloads: unknown {unknown}, choose from {', '.join(all_workloads)}")
    workloads = [all_workloads[w] for w in chosen]
    rows = []
    for name, mode, batch, dtype, target in workloads:
        ours, theirs, rss_ours, rss_theirs = [], [], [], []
        for _ in range(args.repeats):
            f = fstm_run(args, mode, batch, dtype)
            ours.append(f["images_per_s"])
            rss_ours.append(f["peak_rss_mb"])
            best = max((torch_run(args, mode, batch, layout, dtype) for layout in ("nchw", "cl")),
                       key=lambda r: r["images_per_s"])
            theirs.append(best["images_per_s"])
            rss_theirs.append(best["peak_rss_mb"])
            print(f"  {name}: fstm {ours[-1]:.1f} img/s, torch {theirs[-1]:.1f} img/s", file=sys.stderr)
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append((f"{args.arch} {name}, batch {batch}", o, t, o / t, target,
                     statistics.median(rss_ours), statistics.median(rss_theirs)))

    print(f"\n| workload | fstm img/s | PyTorch img/s | ratio | target | fstm peak RSS MB | PyTorch peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for w, o, t, r, target, ro, rt in rows:
        print(f"| {w} | {o:.1f} | {t:.1f} | {r:.2f}x | >= {target}x | {ro:.0f} | {rt:.0f} | {ro / rt:.2f}x |")


if __name__ == "__main__":
    main()
