#!/usr/bin/env python3
"""fstm on a GPU against PyTorch on the same GPU: ResNet-18 end to end, and op by op.

    python3 bench/gpu_bench.py --fstm build/fstm [--bench-binary build/bench/bench_cuda_ops]
                               [--summary table.md] [--out bench.json]
    python3 bench/gpu_bench.py --fstm build/fstm --cpu-dry-run     # no GPU: checks the script

Model level (the numbers of the README's GPU table): torchvision's ResNet-18 at 224x224, channels-last,
cudnn.benchmark on, TF32 off for f32, against `fstm bench --arch resnet18 --device cuda:0 --json`:
  - inference f32, batch 256 (PyTorch eager, no_grad, eval) vs fstm's f32 inference plan;
  - inference bf16, batch 256 (PyTorch eager with the model and input in bf16) vs fstm's bf16 plan;
  - a training step f32, batch 128 (forward, cross-entropy, backward, SGD momentum 0.9) vs fstm's
    eager CUDA training step.
Images per second are medians (PyTorch: CUDA events around 10 back-to-back calls, median of 5;
fstm: median of 20 synchronised iterations); GPU memory is the allocator's peak on both sides
(torch.cuda.max_memory_allocated; fstm's caching allocator peak_bytes_in_use). Targets: inference
>= 1.0x PyTorch, training >= 0.9x. --summary writes the table as Markdown.

Op level (with --bench-binary): runs bench_cuda_ops (Google Benchmark, CUDA-event timing, median of
3 repetitions) and times the same ops in PyTorch the same way, f32 with TF32 off on both sides.
Shapes: the convolutions of ResNet-18 at 224x224 (forward, backward data, backward filter), linear
512->1000, batch norm, max pool, ReLU, AdamW over 11.7M parameters. Prints milliseconds per call and
fstm/torch (below 1 = fstm faster).

Exit status: 0 on success (targets missed are reported, not failures), 77 when there is no GPU, 1 on
errors.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

from torch_precision import exact_f32

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


def timers(torch, dev):
    """(start, stop, synchronize): CUDA events on the GPU, the host clock on the CPU."""
    if dev == "cuda":
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True), torch.cuda.synchronize
    return HostTimer(), HostTimer(), lambda: None


def median_ms(torch, dev, fn, repeat, reps, warmup=1):
    """Median over `reps` windows of the mean time of `repeat` back-to-back calls of fn."""
    start, stop, synchronize = timers(torch, dev)
    for _ in range(warmup):
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


def torch_op_timings(torch, batch, dev="cuda", repeat=10, reps=5):
    F = torch.nn.functional
    cl = torch.channels_last

    def timeit(fn):
        return median_ms(torch, dev, fn, repeat, reps)

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




def fstm_bench(fstm, mode, batch, size, dtype, device, iterations, warmup, timeout):
    """`fstm bench ... --json` as a dict, or {"error": text}."""
    cmd = [fstm, "bench", "--arch", "resnet18", "--mode", mode, "--batch", str(batch), "--size", str(size),
           "--dtype", dtype, "--device", device, "--iterations", str(iterations), "--warmup", str(warmup), "--json"]
    print("+ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-800:] or f"exit {proc.returncode}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no JSON in the output: " + proc.stdout[-400:]}


# (name, mode, dtype, target ratio fstm / PyTorch)
MODEL_CASES = [
    ("inference f32", "infer", "f32", 1.0),
    ("inference bf16", "infer", "bf16", 1.0),
    ("train step f32", "train", "f32", 0.9),
]


def torch_model_case(torch, torchvision, dev, mode, dtype, batch, size, repeat, reps):
    """(img/s, peak MiB or None) of torchvision's ResNet-18 on dev."""
    cl = torch.channels_last
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    model = torchvision.models.resnet18().to(dev).to(memory_format=cl)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=cl)
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if mode == "infer":
        model = model.to(tdtype).eval()
        x = x.to(tdtype)

        def step():
            with torch.no_grad():
                model(x)
    else:
        model.train()
        labels = torch.randint(0, 1000, (batch,), device=dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), labels).backward()
            opt.step()
    ms = median_ms(torch, dev, step, repeat, reps, warmup=3)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else None
    return batch / (ms / 1000.0), peak


def model_level(torch, fstm, args, dev):
    """The three ResNet-18 cases on both sides: a list of row dicts."""
    import torchvision
    rows = []
    fstm_device = "cuda:0" if dev == "cuda" else "cpu"
    for name, mode, dtype, target in MODEL_CASES:
        batch = args.infer_batch if mode == "infer" else args.train_batch
        row = {"case": name, "mode": mode, "dtype": dtype, "batch": batch, "size": args.size, "target": target}
        try:
            row["torch_img_per_s"], row["torch_peak_mb"] = torch_model_case(
                torch, torchvision, dev, mode, dtype, batch, args.size, args.model_repeat, args.model_reps)
        except Exception as e:  # report and go on with the other cases
            row["torch_error"] = f"{type(e).__name__}: {e}"[-400:]
        if fstm:
            iterations = args.fstm_iterations if mode == "infer" else max(args.fstm_iterations // 2, 1)
            r = fstm_bench(fstm, mode, batch, args.size, dtype, fstm_device, iterations, 3, args.fstm_timeout)
            if "error" in r:
                row["fstm_error"] = r["error"]
            else:
                row["fstm_img_per_s"] = r.get("images_per_s")
                row["fstm_peak_mb"] = r.get("gpu_peak_mb")
                row["fstm_backend"] = r.get("backend")
        if row.get("fstm_img_per_s") and row.get("torch_img_per_s"):
            row["ratio"] = row["fstm_img_per_s"] / row["torch_img_per_s"]
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row):
    def num(v, fmt="{:.0f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"
    ratio = row.get("ratio")
    verdict = "-" if ratio is None else ("met" if ratio >= row["target"] else "MISSED")
    mem = f"{num(row.get('fstm_peak_mb'))} / {num(row.get('torch_peak_mb'))}"
    return (f"| {row['case']} | {row['batch']} | {num(row.get('fstm_img_per_s'))} | {num(row.get('torch_img_per_s'))} | "
            f"{num(ratio, '{:.2f}x')} | >= {row['target']:.1f}x {verdict} | {mem} |")


def summary_table(rows, title, size):
    lines = [title, "",
             f"| ResNet-18 {size}x{size} | batch | fstm img/s | PyTorch img/s | fstm / PyTorch | target | GPU MiB fstm / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    lines += [format_row(r) for r in rows]
    notes = []
    for r in rows:
        if r.get("fstm_backend"):
            notes.append(f"- {r['case']}: fstm {r['fstm_backend']}")
        for side in ("fstm", "torch"):
            if r.get(f"{side}_error"):
                notes.append(f"- {r['case']}: {side} failed: {r[side + '_error']}")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def op_level(torch, args):
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
    return {"fstm_ms": fstm_times, "torch_ms": torch_times, "ratios": ratios, "fstm_errors": fstm_errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fstm", help="the fstm program (model level)")
    ap.add_argument("--bench-binary", help="build/bench/bench_cuda_ops (fstm side of the op timings)")
    ap.add_argument("--batch", type=int, default=64, help="op-level batch")
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model-repeat", type=int, default=10, help="PyTorch calls per timed window")
    ap.add_argument("--model-reps", type=int, default=5, help="PyTorch timed windows (median)")
    ap.add_argument("--fstm-iterations", type=int, default=20, help="fstm bench timed iterations (median)")
    ap.add_argument("--fstm-timeout", type=int, default=180, help="seconds per fstm bench run")
    ap.add_argument("--min-time", type=float, default=0.1, help="Google Benchmark seconds per benchmark")
    ap.add_argument("--skip-model", action="store_true", help="op level only")
    ap.add_argument("--skip-ops", action="store_true", help="model level only")
    ap.add_argument("--summary", help="write the model-level table (Markdown) here")
    ap.add_argument("--out", help="write all numbers as JSON here")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="check the script without a GPU: both sides on the CPU, tiny sizes, numbers meaningless")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        print("gpu_bench: no PyTorch in this Python; nothing to compare against", file=sys.stderr)
        return 77
    dev = "cuda"
    if args.cpu_dry_run:
        dev = "cpu"
        args.infer_batch, args.train_batch, args.size, args.batch = 2, 2, 64, 2
        args.model_repeat, args.model_reps, args.fstm_iterations = 1, 1, 2
    elif not torch.cuda.is_available():
        print("gpu_bench: PyTorch sees no GPU; skipped", file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    exact_f32(torch)  # TF32 off on PyTorch's side too (bench/torch_precision.py)
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU (dry run, numbers meaningless)"
    cudnn = torch.backends.cudnn.version() if dev == "cuda" else None
    print(f"GPU: {gpu}; torch {torch.__version__}, cuDNN {cudnn}; f32 with TF32 off on both sides")
    report = {"gpu": gpu, "torch": torch.__version__, "cudnn": cudnn}

    if not args.skip_model:
        rows = model_level(torch, args.fstm, args, dev)
        report["model"] = rows
        title = (f"ResNet-18 on {gpu}, PyTorch {torch.__version__} (cuDNN {cudnn}) eager, channels-last; "
                 f"f32 with TF32 off; bf16 = model and activations in bf16:")
        table = summary_table(rows, title, args.size)
        print("\n" + table)
        if args.summary:
            with open(args.summary, "w") as f:
                f.write(table)
    if not args.skip_ops:
        if args.cpu_dry_run:
            times = torch_op_timings(torch, 2, dev="cpu", repeat=1, reps=1)
            print(f"cpu dry run: {len(times)} PyTorch ops timed: {', '.join(sorted(times))}")
        else:
            report["ops"] = op_level(torch, args)

    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
