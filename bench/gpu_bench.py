#!/usr/bin/env python3
"""fstm's CUDA kernels against PyTorch on the same GPU, op by op, and the model-level baseline.

    python3 bench/gpu_bench.py --bench-binary build/bench/bench_cuda_ops [--fstm build/fstm]
                               [--batch 64] [--out bench.json]

Op level: runs bench_cuda_ops (Google Benchmark, CUDA-event timing, median of 3 repetitions) and
times the same ops in PyTorch the same way (CUDA events around 10 back-to-back calls, median of 5),
with f32 everywhere and TF32 off on both sides (torch.backends.{cudnn,cuda.matmul}.allow_tf32 =
False), channels-last tensors and cudnn.benchmark on. Shapes: the convolutions of ResNet-18 at
224x224 (forward, backward data, backward filter), linear 512->1000, batch norm, max pool, ReLU,
AdamW over 11.7M parameters. Prints milliseconds per call and fstm/torch (below 1 = fstm faster).

Model level: times torchvision's ResNet-18 inference and train step on the GPU (the baseline).
When `fstm bench` exists (added with the ResNet), runs
`fstm bench --model resnet18 --device cuda:0 --batch B --json` and prints the ratios; it must print
one JSON object with "inference_img_per_s" and "train_img_per_s".

Exit status: 0 on success, 77 when there is no GPU (nothing to compare), 1 on errors.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

# Must match kResNet18Convs in bench/bench_cuda_ops.cpp: name, H, W, Ci, Co, k, stride, pad.
RESNET18_CONVS = [
    ("conv1_7x7_3_64_s2", 224, 224, 3, 64, 7, 2, 3),
    ("layer1_3x3_64", 56, 56, 64, 64, 3, 1, 1),
    ("layer2_3x3_64_128_s2", 56, 56, 64, 128, 3, 2, 1),
    ("layer2_3x3_128", 28, 28, 128, 128, 3, 1, 1),
    ("layer2_down_1x1_64_128_s2", 56, 56, 64, 128, 1, 2, 0),
    ("layer3_3x3_128_256_s2", 28, 28, 128, 256, 3, 2, 1),
    ("layer3_3x3_256", 14, 14, 256, 256, 3, 1, 1),
    ("layer3_down_1x1_128_256_s2", 28, 28, 128, 256, 1, 2, 0),
    ("layer4_3x3_256_512_s2", 14, 14, 256, 512, 3, 2, 1),
    ("layer4_3x3_512", 7, 7, 512, 512, 3, 1, 1),
    ("layer4_down_1x1_256_512_s2", 14, 14, 256, 512, 1, 2, 0),
]


def fstm_op_timings(binary, batch, min_time):
    """{benchmark name: median ms} from bench_cuda_ops, and {name: error} for failed ones."""
    env = dict(os.environ, FSTM_BENCH_BATCH=str(batch))
    cmd = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}",
           "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    times, errors = {}, {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        if name.endswith("/manual_time"):  # Google Benchmark's suffix for UseManualTime
            name = name[: -len("/manual_time")]
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
        elif b.get("aggregate_name") == "median":
            unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ms")]
            times[name] = b["real_time"] * unit
    return times, errors


class HostTimer:
    """torch.cuda.Event's interface on the host clock, for --cpu-dry-run."""

    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0


def torch_op_timings(torch, batch, dev="cuda", repeat=10, reps=5):
    F = torch.nn.functional
    cl = torch.channels_last
    if dev == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        synchronize = torch.cuda.synchronize
    else:
        start, stop, synchronize = HostTimer(), HostTimer(), lambda: None

    def timeit(fn):
        fn()
        synchronize()
        samples = []
        for _ in range(reps):
            start.record()
            for _ in range(repeat):
                fn()
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop) / repeat)
        return statistics.median(samples)

    out = {}
    aten = torch.ops.aten
    for name, H, W, Ci, Co, k, s, p in RESNET18_CONVS:
        x = torch.randn(batch, Ci, H, W, device=dev).to(memory_format=cl)
        w = torch.randn(Co, Ci, k, k, device=dev).to(memory_format=cl)
        dy = torch.randn_like(F.conv2d(x, w, None, s, p))
        out[f"conv_fwd/{name}"] = timeit(lambda: F.conv2d(x, w, None, s, p))
        args = (dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1)
        out[f"conv_bwd_data/{name}"] = timeit(lambda: aten.convolution_backward(*args, [True, False, False]))
        out[f"conv_bwd_filter/{name}"] = timeit(lambda: aten.convolution_backward(*args, [False, True, False]))

    x = torch.randn(batch, 512, device=dev)
    w = torch.randn(1000, 512, device=dev)
    b = torch.randn(1000, device=dev)
    dy = torch.randn(batch, 1000, device=dev)
    out["linear_fwd/512_1000"] = timeit(lambda: F.linear(x, w, b))
    out["linear_bwd_data/512_1000"] = timeit(lambda: torch.mm(dy, w))
    out["linear_bwd_weights/512_1000"] = timeit(lambda: (torch.mm(dy.t(), x), dy.sum(0)))

    for H, C in ((56, 64), (7, 512)):
        x = torch.randn(batch, C, H, H, device=dev).to(memory_format=cl)
        dy = torch.randn_like(x)
        g, bb = torch.randn(C, device=dev), torch.randn(C, device=dev)
        rm, rv = torch.zeros(C, device=dev), torch.ones(C, device=dev)
        _, mean, invstd = aten.native_batch_norm(x, g, bb, rm, rv, True, 0.1, 1e-5)
        tag = f"{H}x{H}x{C}"
        out[f"bn_train_fwd/{tag}"] = timeit(lambda: aten.native_batch_norm(x, g, bb, rm, rv, True, 0.1, 1e-5))
        out[f"bn_train_bwd/{tag}"] = timeit(
            lambda: aten.native_batch_norm_backward(dy, x, g, rm, rv, mean, invstd, True, 1e-5, [True, True, True]))
        out[f"bn_eval_fwd/{tag}"] = timeit(lambda: aten.native_batch_norm(x, g, bb, rm, rv, False, 0.1, 1e-5))

    x = torch.randn(batch, 64, 112, 112, device=dev).to(memory_format=cl)
    y, idx = aten.max_pool2d_with_indices(x, [3, 3], [2, 2], [1, 1])
    dy = torch.randn_like(y)
    out["maxpool_fwd/112x112x64"] = timeit(lambda: F.max_pool2d(x, 3, 2, 1))
    out["maxpool_bwd/112x112x64"] = timeit(
        lambda: aten.max_pool2d_with_indices_backward(dy, x, [3, 3], [2, 2], [1, 1], [1, 1], False, idx))

    x = torch.randn(batch, 64, 56, 56, device=dev).to(memory_format=cl)
    y = torch.relu(x)
    dy = torch.randn_like(x)
    out["relu_fwd/56x56x64"] = timeit(lambda: torch.relu(x))
    out["relu_bwd/56x56x64"] = timeit(lambda: aten.threshold_backward(dy, y, 0))

    p = torch.randn(11689512, device=dev)
    p.grad = torch.randn_like(p)
    try:
        opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=1e-2, fused=(dev == "cuda"))
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=1e-2)
    out["adamw/11.7M"] = timeit(opt.step)
    return out


def model_level(torch, batch, fstm):
    """torchvision ResNet-18 on the GPU; fstm's numbers when `fstm bench` exists."""
    import torchvision
    result = {}
    model = torchvision.models.resnet18().cuda().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device="cuda")
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def img_per_s(fn, iters=20):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        return batch * iters / (start.elapsed_time(stop) / 1000.0)

    model.eval()
    with torch.no_grad():
        result["torch_inference_img_per_s"] = img_per_s(lambda: model(x))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), labels).backward()
        opt.step()

    result["torch_train_img_per_s"] = img_per_s(step, iters=10)

    if fstm and os.path.exists(fstm):
        probe = subprocess.run([fstm, "bench", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            cmd = [fstm, "bench", "--model", "resnet18", "--device", "cuda:0", "--batch", str(batch), "--json"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                fs = json.loads(proc.stdout)
                result["fstm_inference_img_per_s"] = fs.get("inference_img_per_s")
                result["fstm_train_img_per_s"] = fs.get("train_img_per_s")
            else:
                result["fstm_error"] = proc.stderr[-1000:]
        else:
            result["fstm_error"] = "`fstm bench` is not available yet"
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-binary", help="build/bench/bench_cuda_ops (fstm side of the op timings)")
    ap.add_argument("--fstm", help="the fstm program (for `fstm bench`, when it exists)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--min-time", type=float, default=0.1, help="Google Benchmark seconds per benchmark")
    ap.add_argument("--skip-model", action="store_true", help="op level only")
    ap.add_argument("--out", help="write all numbers as JSON here")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="check the PyTorch side of this script on the CPU (tiny batch, numbers meaningless)")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        print("gpu_bench: no PyTorch in this Python; nothing to compare against", file=sys.stderr)
        return 77
    if args.cpu_dry_run:
        times = torch_op_timings(torch, 2, dev="cpu", repeat=1, reps=1)
        print(f"cpu dry run: {len(times)} PyTorch ops timed: {', '.join(sorted(times))}")
        return 0
    if not torch.cuda.is_available():
        print("gpu_bench: PyTorch sees no GPU; skipped", file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
          f"batch {args.batch}; f32, TF32 off on both sides")

    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": args.batch}
    fstm_times, fstm_errors = {}, {}
    if args.bench_binary and os.path.exists(args.bench_binary):
        fstm_times, fstm_errors = fstm_op_timings(args.bench_binary, args.batch, args.min_time)
    else:
        print("gpu_bench: no bench_cuda_ops binary given or found; torch side only", file=sys.stderr)
    torch_times = torch_op_timings(torch, args.batch)

    print(f"\n{'op':48s} {'fstm ms':>10s} {'torch ms':>10s} {'fstm/torch':>11s}")
    ratios = {}
    for name, t in torch_times.items():
        f = fstm_times.get(name)
        ratio = f / t if f is not None and t > 0 else None
        if ratio is not None:
            ratios[name] = ratio
        fs = f"{f:10.4f}" if f is not None else f"{'-':>10s}"
        rs = f"{ratio:11.2f}" if ratio is not None else f"{'-':>11s}"
        print(f"{name:48s} {fs} {t:10.4f} {rs}")
    for name, err in fstm_errors.items():
        print(f"fstm {name}: {err}")
    groups = {}
    for name, r in ratios.items():
        groups.setdefault(name.split("/")[0], []).append(r)
    if groups:
        print("\ngeometric mean of fstm/torch per op kind:")
        for g, rs in groups.items():
            print(f"  {g:24s} {math.exp(sum(math.log(r) for r in rs) / len(rs)):6.2f}  ({len(rs)} shapes)")
    report.update({"fstm_ms": fstm_times, "torch_ms": torch_times, "ratios": ratios, "fstm_errors": fstm_errors})

    if not args.skip_model:
        m = model_level(torch, args.batch, args.fstm)
        report["model"] = m
        print(f"\nResNet-18 batch {args.batch}, torchvision on this GPU: "
              f"inference {m['torch_inference_img_per_s']:.0f} img/s, train step {m['torch_train_img_per_s']:.0f} img/s")
        if "fstm_inference_img_per_s" in m:
            print(f"fstm: inference {m['fstm_inference_img_per_s']} img/s, train {m['fstm_train_img_per_s']} img/s")
        else:
            print(f"fstm model level: {m.get('fstm_error', 'no --fstm given')}")

    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
