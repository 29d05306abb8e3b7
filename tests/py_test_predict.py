"""`fstm predict --json` against torchvision on PNG images, and its handling of bad input.

Parity: random-weight ResNet-18/34 (randomised BatchNorm statistics), PNGs at the model's input
size (no resizing), at 224 with ImageNet normalisation and at a non-default --size with custom
--mean/--std. Logits must match within 1e-4 of their largest magnitude, probabilities within 1e-5.
Bad input: a non-image file, a truncated PNG, a checkpoint with a wrong shape and with missing
keys must each give exit 1 and a message naming the file (a bad image is skipped, the others are
still scored).
"""
import json
import os
import subprocess

import numpy as np
import torch
import torchvision
from PIL import Image

import fstm_testlib as T

TOL_LOGITS = 1e-4


def make_images(work, size, count, seed):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        # Smooth random colour fields plus noise: closer to photographs than white noise.
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 21, (size, size, 3))
        path = os.path.join(work, f"img{size}_{i}.png")
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def torch_logits(model, paths, mean, std):
    xs = []
    for p in paths:
        a = torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float() / 255.0
        xs.append((a - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])
    with torch.no_grad():
        return model(torch.stack(xs))


def predict(a, args, expect=0):
    r = subprocess.run([a.fstm, "predict"] + [str(x) for x in args], capture_output=True, text=True)
    if r.returncode != expect:
        print(r.stdout, r.stderr)
        raise SystemExit(f"fstm predict exited {r.returncode}, expected {expect}")
    return r


def main():
    a = T.args()
    torch.set_num_threads(2)
    checker = T.Checker()
    cases = [("resnet18", 224, None, None), ("resnet34", 96, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))]
    for arch, size, mean, std in cases:
        torch.manual_seed(3)
        model = getattr(torchvision.models, arch)(num_classes=5)
        T.randomize_batch_norm(model, torch.Generator().manual_seed(9))
        model.eval()
        weights = os.path.join(a.work, f"{arch}.safetensors")
        T.save_safetensors(weights, model.state_dict())
        paths = make_images(a.work, size, 3, seed=size)
        args = ["--arch", arch, "--num-classes", 5, "--weights", weights, "--json", "--batch", 2]
        if size != 224:
            args += ["--size", size]
        if mean:
            args += ["--mean", ",".join(map(str, mean)), "--std", ",".join(map(str, std))]
        out = json.loads(predict(a, args + paths).stdout)
        assert [o["file"] for o in out] == paths, "results are not in input order"
        expected = torch_logits(model, paths, mean or (0.485, 0.456, 0.406), std or (0.229, 0.224, 0.225))
        got = torch.tensor([o["logits"] for o in out])
        checker.close(f"{arch} {size}px logits", got, expected, TOL_LOGITS)
        checker.close(f"{arch} {size}px probs", torch.tensor([o["probs"] for o in out]), expected.softmax(1), 1e-5)

    # ---- bad input ------------------------------------------------------------------------------
    weights = os.path.join(a.work, "resnet18.safetensors")
    good = make_images(a.work, 224, 1, seed=1)[0]
    not_image = os.path.join(a.work, "notes.png")
    with open(not_image, "w") as f:
        f.write("this is not an image\n")
    truncated = os.path.join(a.work, "truncated.png")
    with open(good, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 3])
    base = ["--arch", "resnet18", "--num-classes", 5, "--weights", weights, "--json"]
    r = predict(a, base + [good, not_image, truncated], expect=1)
    out = json.loads(r.stdout)
    ok = len(out) == 3 and "logits" in out[0] and "error" in out[1] and "error" in out[2]
    ok = ok and not_image in r.stderr and truncated in r.stderr
    print(("ok  " if ok else "FAIL") + " bad images are reported by name and skipped")
    checker.count += 1
    checker.failures += 0 if ok else 1

    state = torchvision.models.resnet18(num_classes=5).state_dict()
    broken = dict(state)
    broken["fc.weight"] = torch.zeros(7, 512)
    del broken["layer1.0.bn1.running_mean"]
    bad_ckpt = os.path.join(a.work, "broken.safetensors")
    T.save_safetensors(bad_ckpt, broken)
    r = predict(a, ["--arch", "resnet18", "--num-classes", 5, "--weights", bad_ckpt, good], expect=1)
    ok = all(s in r.stderr for s in (bad_ckpt, "fc.weight", "layer1.0.bn1.running_mean"))
    print(("ok  " if ok else "FAIL") + " a checkpoint with a wrong shape and a missing key names both: "
          + r.stderr.strip().splitlines()[0][:200])
    checker.count += 1
    checker.failures += 0 if ok else 1
    r = predict(a, ["--arch", "resnet18", "--num-classes", 5, "--weights", bad_ckpt, "--bogus", good], expect=2)
    checker.count += 1
    checker.finish()


if __name__ == "__main__":
    main()
