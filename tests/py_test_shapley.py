"""`fstm explain` against PyTorch: exact Shapley maps of a torchvision ResNet-18.

A torchvision ResNet-18 (3 classes, random weights, randomised BatchNorm statistics) is saved as an
fstm checkpoint (safetensors with arch/num_classes/input_size/mean/std metadata). fstm explains a
50x50 image on a 3x3 grid (cells of 16 and 17 pixels: the integer-division split) with every
coalition enumerated (--sampler exact), and tests/shapley_oracle.py does the same in PyTorch from the
method's description. The maps must agree for every baseline: black (the authors': here built
their way, the unnormalised pixels multiplied by the 0/1 cell mask), mean-colour, image-mean, blur
and pristine (another image given with --pristine); the margin value must be refused for a
three-class model; and the sampled estimators must approach the exact map. Tolerances: max error relative to the map's largest
magnitude, 1e-4 in f32 (the sampled estimators: 0.15 at these T); bf16 must keep the map's direction (cosine > 0.98).
"""
import json
import os
import subprocess

import numpy as np
import torch
import torchvision
from PIL import Image

import fstm_testlib as T
import shapley_oracle as S

MEAN, STD = [0.5, 0.45, 0.4], [0.25, 0.2, 0.22]
SIZE, GRID, CLASSES = 50, 3, 3


def run_explain(a, model_path, image_path, *flags):
    cmd = [a.fstm, "explain", "--model", model_path, "--image", image_path, "--grid", str(GRID), "--json", *flags]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FSTM_PROGRESS": "0"})


def explain(a, model_path, image_path, *flags):
    p = run_explain(a, model_path, image_path, *flags)
    if p.returncode != 0:
        T.st_helpers.fail(f"fstm explain exited {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def structured_image(seed):
    """A smooth image with some structure (gradients plus a bright square), so cells differ."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    rgb = np.stack([xx * 5 + seed, yy * 5, (xx + yy) * 2 + 3 * seed], axis=-1) % 256
    rgb[10 + seed:25 + seed, 30:45] = [250, 240, 30]
    return rgb.astype(np.uint8)


def check_bf16(a, model_path, image_path, baseline, phi, check):
    """bf16 keeps the map's direction, where the CPU has bf16 kernels (oneDNN has none on AVX2-only
    CPUs such as AMD Zen 3: fstm must then refuse with that reason)."""
    p = run_explain(a, model_path, image_path, "--sampler", "exact", "--baseline", baseline, "--dtype", "bf16")
    check.count += 1
    if p.returncode != 0:
        ok = "no bf16 kernel" in p.stderr
        print(f"{'skip' if ok else 'FAIL'} bf16 map: fstm refused ({p.stderr.strip()})")
        check.failures += 0 if ok else 1
        return
    b16 = torch.tensor(json.loads(p.stdout)["phi"], dtype=torch.float64).reshape(-1)
    cos = float(torch.dot(b16, phi) / (b16.norm() * phi.norm()))
    print(f"bf16 exact map: cosine {cos:.5f} with PyTorch f32")
    if cos < 0.98:
        print("FAIL bf16 map direction")
        check.failures += 1


def check_margin_refused(a, model_path, image_path, check):
    """The margin (logit minus the other class's) is defined for two-class models; this one has 3."""
    p = run_explain(a, model_path, image_path, "--value", "margin")
    check.count += 1
    if p.returncode == 0 or "two-class" not in p.stderr:
        print(f"FAIL margin on a 3-class model: exit {p.returncode}, {p.stderr.strip()}")
        check.failures += 1


def main():
    a = T.args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=CLASSES)
    T.randomize_batch_norm(model, torch.Generator().manual_seed(5))
    model.eval()
    model_path = os.path.join(a.work, "model.safetensors")
    T.save_safetensors(model_path, model.state_dict(), {
        "arch": "resnet18", "num_classes": str(CLASSES), "input_size": str(SIZE),
        "mean": json.dumps(MEAN), "std": json.dumps(STD)})

    rgb = structured_image(0)
    image_path = os.path.join(a.work, "image.png")
    Image.fromarray(rgb).save(image_path)
    x = S.normalise(rgb, MEAN, STD)
    pristine_rgb = structured_image(7)
    pristine_path = os.path.join(a.work, "pristine.png")
    Image.fromarray(pristine_rgb).save(pristine_path)

    check = T.Checker()
    with torch.no_grad():
        logits = model(x.unsqueeze(0))[0]
    target = int(torch.argmax(logits))
    for baseline, extra in [("black", []), ("mean-colour", []), ("image-mean", []),
                            ("blur", ["--blur-sigma", "2.5"]), ("pristine", ["--pristine", pristine_path])]:
        got = explain(a, model_path, image_path, "--sampler", "exact", "--baseline", baseline, *extra)
        if got["class"] != target or got["predicted_class"] != target:
            T.st_helpers.fail(f"fstm explains class {got['class']}, PyTorch predicts {target}")
        if baseline == "black":
            values = S.AuthorsValues(model, rgb, MEAN, STD, GRID, target)
        elif baseline == "pristine":
            values = S.Values(model, x, S.normalise(pristine_rgb, MEAN, STD), GRID, target, channels_last=False)
        else:
            values = S.Values(model, x, S.baseline(x, baseline, sigma=2.5), GRID, target, channels_last=False)
        phi, v_full, v_empty = S.exact(values, GRID * GRID)
        mine = torch.tensor(got["phi"], dtype=torch.float64).reshape(-1)
        check.close(f"exact map, {baseline} baseline", mine, phi, 1e-4)
        check.close(f"v(full), v(empty), {baseline} baseline", torch.tensor([got["v_full"], got["v_empty"]]),
                    torch.tensor([v_full, v_empty]), 1e-4)
        check.close("logits", torch.tensor(got["logits"]), logits, 1e-4)
        if got["evaluations"] != 2 ** (GRID * GRID):
            T.st_helpers.fail(f"exact map took {got['evaluations']} evaluations, expected 512")

        if baseline == "image-mean":
            check_bf16(a, model_path, image_path, baseline, phi, check)
            # The sampled estimators approach the exact map: 160 permutations, 80 per-grid samples.
            for sampler, samples in [("permutation", 160), ("per-grid", 80)]:
                est = torch.tensor(explain(a, model_path, image_path, "--sampler", sampler, "--samples",
                                           str(samples), "--baseline", baseline, "--antithetic")["phi"],
                                   dtype=torch.float64).reshape(-1)
                check.close(f"{sampler} estimate vs exact", est, phi, 0.15)
            # the authors' sampler written in PyTorch approaches it as well (checks the oracle itself)
            check.close("PyTorch per-grid estimate vs exact", S.per_grid(values, GRID * GRID, 80), phi, 0.15)
    check_margin_refused(a, model_path, image_path, check)
    check.finish()


if __name__ == "__main__":
    main()
