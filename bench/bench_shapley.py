#!/usr/bin/python3
"""Shapley maps: fstm against the authors' sampler written in PyTorch and against Captum.

One run, one machine, the same torchvision ResNet-18 weights (2 classes, random, BatchNorm
statistics randomised) and the same image (scikit-image's astronaut photograph) for everyone:

  1. Forward evaluations per map at L x L, T (closed forms, checked against the runs below).
  2. Wall time per map at 224x224, L = 16: fstm f32 and bf16 (`fstm explain`, permutation
     sweeps), the authors' per-grid sampler in PyTorch (2 forwards per grid and sample, batched,
     channels-last f32), Captum's ShapleyValueSampling (grid feature mask, perturbations_per_eval
     batching). A whole map (T = 100) takes tens of minutes per method on 2 cores, so the timed
     maps use --samples T (default 2) and the table scales them to T = 100: the work of every method
     is linear in T (same forward batches, same per-sample bookkeeping), so the scaling changes
     no ratio. Times are of the attribution loop only (model loaded and compiled before). The
     methods run in rounds (--repeats, default 3), one map each per round, so that the load of a
     shared machine hits all alike; ratios are medians of per-round ratios.
  3. Masked-batch throughput: fstm explain's forwards per second (masking included) against
     `fstm bench` (plain batched inference of the same model, batch and dtype).
  4. Instability ||phi1 - phi2|| / ||phi1 + phi2|| of two independent maps at the same T
     (paper Fig. 3, left). fstm runs each sampler once at 2T: its two halves are two independent
     maps of T samples each, and its curve gives the instability at every T on the way. The
     authors' sampler runs in fstm (--sampler per-grid, checked against the PyTorch version in
     tests/py_test_shapley.py); --instability-torch adds the PyTorch version itself (two runs).
     64x64 pixels, L = 8, T = 20, 2 crops by default so that it takes minutes on 2 cores; the
     paper's setting is --instability-size 224 --instability-grid 16 --instability-samples 100.

Captum comes from PyPI into a virtual environment this script creates (with Debian's torch
visible): /usr/bin/python3 -m venv --system-site-packages WORK/venv && pip install captum.

  /usr/bin/python3 bench/bench_shapley.py --fstm build/fstm [--samples 2] [--threads 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CAPTUM_VERSION = "0.7.0"  # the last release that supports PyTorch 1.13


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fstm", required=True)
    p.add_argument("--work", default="/tmp/fstm_bench_shapley")
    p.add_argument("--samples", type=int, default=2, help="T of the timed 224x224 maps (scaled to 100)")
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="rounds of timed maps, every method per round (median)")
    p.add_argument("--instability-samples", type=int, default=20)
    p.add_argument("--instability-size", type=int, default=64)
    p.add_argument("--instability-grid", type=int, default=8)
    p.add_argument("--instability-dtype", default="bf16", help="fstm's dtype for the instability runs")
    p.add_argument("--instability-torch", action="store_true", help="also run the authors' sampler in PyTorch")
    p.add_argument("--images", type=int, default=2, help="image crops for the instability")
    p.add_argument("--skip-captum", action="store_true")
    p.add_argument("--in-captum-venv", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def setup_model_and_images(a):
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    import fstm_testlib as T
    from skimage import data

    os.makedirs(a.work, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    T.randomize_batch_norm(model, torch.Generator().manual_seed(1))
    model.eval()
    T.save_safetensors(os.path.join(a.work, "resnet18.safetensors"), model.state_dict())
    photo = data.astronaut()  # 512x512 RGB
    crops = [(60, 140, 300), (0, 0, 512), (100, 100, 250), (30, 200, 280)]
    images = {}
    for size in (224, a.instability_size):
        for i in range(max(a.images, 1)):
            y, x, s = crops[i % len(crops)]
            img = Image.fromarray(photo[y:y + s, x:x + s]).resize((size, size), Image.BILINEAR)
            path = os.path.join(a.work, f"image{i}_{size}.png")
            img.save(path)
            images[(size, i)] = (path, np.asarray(img))
    return model, images


def fstm_explain(a, image, size, samples, dtype="f32", seed=0, antithetic=False, grid=None, sampler="permutation"):
    cmd = [a.fstm, "explain", "--arch", "resnet18", "--num-classes", "2", "--weights",
           os.path.join(a.work, "resnet18.safetensors"), "--size", str(size), "--image", image, "--grid",
           str(grid or a.grid), "--samples", str(samples), "--class", "1", "--dtype", dtype, "--batch", str(a.batch),
           "--threads", str(a.threads), "--seed", str(seed), "--sampler", sampler, "--json",
           # the PyTorch sides below hide cells with normalised 0: the same baseline on both sides
           "--baseline", "mean-colour"] + (["--antithetic"] if antithetic else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FSTM_PROGRESS": "0"})
    wall = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"fstm explain failed: {p.stderr}")
    r = json.loads(p.stdout)
    r["process_seconds"] = wall
    return r


def fstm_plain(a, dtype, size=224):
    cmd = [a.fstm, "bench", "--arch", "resnet18", "--classes", "2", "--batch", str(a.batch), "--size", str(size),
           "--dtype", dtype, "--threads", str(a.threads), "--iterations", "3", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["images_per_s"]


def captum_map(a, model, x, base, target, samples):
    """Runs in the venv with Captum: the map and its wall time."""
    import torch
    from captum.attr import ShapleyValueSampling
    import shapley_oracle as S

    calls = {"forwards": 0}

    def forward(inp):
        calls["forwards"] += inp.shape[0]
        return model(inp.contiguous(memory_format=torch.channels_last))

    cells = S.cell_index(x.shape[1], x.shape[2], a.grid).view(1, 1, x.shape[1], x.shape[2])
    svs = ShapleyValueSampling(forward)
    t0 = time.perf_counter()
    with torch.no_grad():
        attr = svs.attribute(x.unsqueeze(0), baselines=base.unsqueeze(0), target=target, feature_mask=cells,
                             n_samples=samples, perturbations_per_eval=a.batch, show_progress=False)
    seconds = time.perf_counter() - t0
    L2 = a.grid * a.grid
    # every pixel of a cell carries the cell's value; summed over the 3 channels
    phi = torch.zeros(L2, dtype=torch.float64)
    flat = cells.view(-1)
    first = [int((flat == c).nonzero()[0]) for c in range(L2)]
    per_pixel = attr[0].sum(0).view(-1)
    for c in range(L2):
        phi[c] = float(per_pixel[first[c]])
    return phi, seconds, calls["forwards"]


def run_captum_in_venv(a):
    venv = os.path.join(a.work, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
    ok = subprocess.run([py, "-c", "import captum"], capture_output=True).returncode == 0
    if not ok:
        print(f"installing captum=={CAPTUM_VERSION} into {venv} ...", flush=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", f"captum=={CAPTUM_VERSION}"], check=True)
    args = [py, os.path.abspath(__file__), "--in-captum-venv"] + sys.argv[1:] + ["--repeats", "1"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        print(p.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def captum_main(a):
    import torch
    import shapley_oracle as S

    torch.set_num_threads(a.threads)
    model, images = setup_model_and_images(a)
    _, rgb = images[(224, 0)]
    x = S.normalise(rgb, MEAN, STD)
    base = torch.zeros_like(x)
    model = model.to(memory_format=torch.channels_last)
    times, forwards = [], 0
    for _ in range(a.repeats):
        _, seconds, forwards = captum_map(a, model, x, base, 1, a.samples)
        times.append(seconds)
    print(json.dumps({"seconds": statistics.median(times), "forwards": forwards}))


def main():
    a = parse()
    if a.in_captum_venv:
        return captum_main(a)
    import torch
    import shapley_oracle as S

    torch.set_num_threads(a.threads)
    model, images = setup_model_and_images(a)
    L2 = a.grid * a.grid
    T = a.samples
    scale = 100.0 / T
    print(f"ResNet-18 (2 classes), {a.grid}x{a.grid} grid, {a.threads} threads, batch {a.batch}; "
          f"timed maps at T = {T}, scaled to T = 100 (x{scale:g})", flush=True)

    # ---- 1 + 2 + 3: rounds of every method, interleaved so that load changes hit all alike -------
    image224, rgb224 = images[(224, 0)]
    x = S.normalise(rgb224, MEAN, STD)
    cl_model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch_logit = cl_model(x.unsqueeze(0).contiguous(memory_format=torch.channels_last))[0, 1].item()
    plain_batch = torch.randn(a.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    t = {k: [] for k in ("f32", "bf16", "authors", "captum", "plain f32", "plain bf16", "torch plain")}
    last = {}
    captum_forwards = None
    for rnd in range(a.repeats):
        for dtype in ("f32", "bf16"):
            r = fstm_explain(a, image224, 224, T, dtype, seed=rnd)
            t[dtype].append(r["seconds"])
            last[dtype] = r
        values = S.Values(cl_model, x, torch.zeros_like(x), a.grid, 1, batch=a.batch)
        t0 = time.perf_counter()
        S.per_grid(values, L2, T, seed=rnd)
        t["authors"].append(time.perf_counter() - t0)
        authors_forwards = values.forwards
        if not a.skip_captum:
            c = run_captum_in_venv(a)
            if c:
                t["captum"].append(c["seconds"])
                captum_forwards = c["forwards"]
        for dtype in ("f32", "bf16"):
            t["plain " + dtype].append(fstm_plain(a, dtype))
        with torch.no_grad():
            cl_model(plain_batch)
            t0 = time.perf_counter()
            cl_model(plain_batch)
            t["torch plain"].append(a.batch / (time.perf_counter() - t0))

    def ratio(num, den):  # median over rounds of the ratio within a round
        return statistics.median(n / d for n, d in zip(t[num], t[den]))

    ours = last["f32"]["evaluations"]
    print(f"\nsanity: v(full) fstm f32 {last['f32']['v_full']:.5f}, bf16 {last['bf16']['v_full']:.5f},"
          f" PyTorch logit {torch_logit:.5f}")
    print("\n1. Forward evaluations per map (L = %d, T = 100)" % a.grid)
    print(f"   fstm permutation sweeps : {2 + 100 * (L2 - 1):>7}  (measured at T = {T}: {ours})")
    print(f"   authors' per-grid       : {100 * 2 * L2:>7}  (measured at T = {T}: {authors_forwards})")
    if captum_forwards:
        print(f"   Captum                  : {100 * L2 + 1:>7}  (measured at T = {T}: {captum_forwards})")
    print(f"   fstm / authors          : {(2 + 100 * (L2 - 1)) / (100 * 2 * L2):.3f}   (target <= 0.5)")

    med = {k: statistics.median(v) for k, v in t.items() if v}
    print(f"\n2. Wall time per map, 224x224, T = 100 (scaled from T = {T}), seconds; median of {a.repeats} "
          "round(s), speed-ups are medians of per-round ratios")
    print(f"   authors' per-grid, PyTorch f32 channels-last : {med['authors'] * scale:9.1f}")
    if t["captum"]:
        print(f"   Captum ShapleyValueSampling, PyTorch f32     : {med['captum'] * scale:9.1f}")
    print(f"   fstm f32                                     : {med['f32'] * scale:9.1f}   "
          f"{ratio('authors', 'f32'):5.2f}x faster than the authors' (target >= 3)" +
          (f", {ratio('captum', 'f32'):5.2f}x than Captum (target >= 1.5)" if t["captum"] else ""))
    print(f"   fstm bf16                                    : {med['bf16'] * scale:9.1f}   "
          f"{ratio('authors', 'bf16'):5.2f}x faster than the authors' (target >= 15)")
    print(f"   per forward (plain batched inference, img/s): PyTorch f32 {med['torch plain']:.1f}, fstm f32 "
          f"{med['plain f32']:.1f} ({ratio('plain f32', 'torch plain'):.2f}x), fstm bf16 {med['plain bf16']:.1f} "
          f"({ratio('plain bf16', 'torch plain'):.2f}x); a map's speed-up over the authors' is about 2x that")

    print("\n3. Masked-batch throughput against plain batched inference (same plan: ResNet-18, batch "
          f"{a.batch}, 224x224)")
    for dtype in ("f32", "bf16"):
        r = last[dtype]
        inloop = r["timing"]["forward_s"] / r["seconds"]
        masked = [ours / s for s in t[dtype]]
        across = statistics.median(m / p for m, p in zip(masked, t["plain " + dtype]))
        print(f"   {dtype:4}: inside explain the plan's forwards take {100 * inloop:.1f}% of the loop (masking "
              f"{100 * r['timing']['mask_s'] / r['seconds']:.2f}%): masked-batch throughput = {inloop:.3f}x plain "
              f"(target >= 0.9). Across processes: explain {statistics.median(masked):.1f} img/s, `fstm bench` "
              f"{med['plain ' + dtype]:.1f} img/s ({across:.2f}x; load changes move this one)")

    # ---- 4: instability ---------------------------------------------------------------------------
    size, Ti, Li = a.instability_size, a.instability_samples, a.instability_grid
    n_images = max(a.images, 1)
    print(f"\n4. Instability of two independent maps at T = {Ti}, {size}x{size}, L = {Li}, fstm "
          f"{a.instability_dtype} ({n_images} image(s); mean, and the curve over T)")
    configs = [("fstm permutation", "permutation", False), ("fstm permutation antithetic", "permutation", True),
               ("authors' per-grid (fstm)", "per-grid", False)]
    curves = {name: {} for name, _, _ in configs}
    forwards = {}
    for i in range(n_images):
        path, rgb = images[(size, i)]
        for name, sampler, anti in configs:
            r = fstm_explain(a, path, size, 2 * Ti, a.instability_dtype, seed=10 + i, antithetic=anti, grid=Li,
                             sampler=sampler)
            forwards[name] = r["evaluations"] / 2
            for t, v in r["instability_curve"]:
                curves[name].setdefault(t, []).append(v)
    if a.instability_torch:
        name = "authors' per-grid (PyTorch)"
        curves[name] = {Ti: []}
        forwards[name] = 2 * Ti * Li * Li
        for i in range(n_images):
            path, rgb = images[(size, i)]
            xs = S.normalise(rgb, MEAN, STD)
            values = S.Values(cl_model, xs, torch.zeros_like(xs), Li, 1, batch=a.batch)
            curves[name][Ti].append(S.instability(*[S.per_grid(values, Li * Li, Ti, seed=30 + s) for s in range(2)]))
    ts = sorted(t for t in curves["fstm permutation"] if t <= Ti)
    shown = [t for t in ts if t in (2, 4, 8, 16) or t == Ti or t % 20 == 0]
    print("   " + " " * 30 + "".join(f"T={t:<6}" for t in shown) + "  forwards per map")
    for name, c in curves.items():
        cells = "".join(f"{statistics.mean(c[t]):<8.4f}" if t in c else " " * 8 for t in shown)
        print(f"   {name:30}{cells}  {forwards[name]:.0f}")
    print("   (target: fstm no worse than the authors' at the same T)")


if __name__ == "__main__":
    main()
