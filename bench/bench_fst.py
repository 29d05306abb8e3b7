#!/usr/bin/python3
"""FST-Matching training-step throughput: fstm against PyTorch on the same model and loss.

PyTorch side: tests/fst_torch.py (two torchvision ResNet-18 + SE + mlp head + interaction loss,
CE(det) + 0.5 CE(src) + CE(tgt) + 100 L_int), AdamW lr 1e-5 wd 4e-3, random images and labels.
fstm side: `fstm bench --model fst --mode train` (the same step through compute_losses). Both use
the same threads, batch and size; each reports the median of --iterations timed steps after a
warm-up step.

  /usr/bin/python3 bench/bench_fst.py --fstm build/fstm [--batch 16] [--size 224] [--threads 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from fst_torch import FstModel  # noqa: E402


def torch_step_times(batch, size, identities, iterations, warmup, channels_last):
    torch.manual_seed(0)
    model = FstModel("resnet18", identities=identities)
    model.train()
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    det = torch.randint(0, 2, (batch,))
    src = torch.randint(0, identities, (batch,))
    tgt = torch.randint(0, identities, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=4e-3)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model.losses(x, det, src, tgt)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fstm", required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--identities", type=int, default=720, help="identity classes (FF++ train: 720)")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--channels-last", action="store_true", help="PyTorch in channels-last memory format")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    r = subprocess.run([a.fstm, "bench", "--model", "fst", "--mode", "train", "--batch", str(a.batch), "--size",
                        str(a.size), "--threads", str(a.threads), "--classes", str(a.identities), "--iterations",
                        str(a.iterations), "--warmup", str(a.warmup), "--json"],
                       check=True, capture_output=True, text=True, env=env)
    ours = json.loads(r.stdout.strip().splitlines()[-1])
    times = torch_step_times(a.batch, a.size, a.identities, a.iterations, a.warmup, a.channels_last)
    torch_median = statistics.median(times)
    torch_ips = a.batch / torch_median
    fstm_ips = ours["images_per_s"]
    layout = "channels-last" if a.channels_last else "NCHW"
    print(f"FST-Matching train step, resnet18 x 2, batch {a.batch}, {a.size}x{a.size}, {a.threads} threads, "
          f"median of {a.iterations}")
    print(f"  PyTorch {torch.__version__} ({layout}): {torch_ips:7.2f} img/s  ({torch_median:.3f} s/step)")
    print(f"  fstm ({ours['backend']}):  {fstm_ips:7.2f} img/s  ({ours['median_s']:.3f} s/step), "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB")
    print(f"  ratio fstm / PyTorch: {fstm_ips / torch_ips:.2f}x")


if __name__ == "__main__":
    main()
