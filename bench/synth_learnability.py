#!/usr/bin/env python3
"""Is the synthetic FF++ (`fstm synth`) a learnable detection problem, and does compression wash
out its artifacts but not identity? A measurement with PyTorch as an independent learner, not a test.

  fstm synth --out /tmp/synth
  /usr/bin/python3 bench/synth_learnability.py --data /tmp/synth [--epochs 8] [--size 64]

Faces are aligned with the authors' 5-point template (pupils = mean of eye points 36-41 / 42-47,
nose tip 30, mouth corners 48/54; face width 80/224 of the canvas, scale 0.9) from ldm.json,
frames decoded with the ffmpeg program. A small CNN (4 conv blocks, ~0.3M parameters) is trained
on the raw train split (all methods, class-weighted) and evaluated on the raw/c23/c40 test split:
frame AUC overall and per method. Identity: nearest class mean on the aligned inner face of the
test reals, means from even raw frames, evaluated on odd frames of raw/c23/c40.
"""
import argparse
import json
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn
from skimage.transform import SimilarityTransform, warp
from sklearn.metrics import roc_auc_score

TEMPLATE = np.array([[-0.17607, -0.172844], [0.1736, -0.17356], [-0.00182, 0.0357164], [-0.14617, 0.20185],
                     [0.14496, 0.19943]])


def template(c):
    r = 80 / (0.34967 * 224)
    ry = (r * TEMPLATE[0, 1] + 0.5) * 2.42
    t = np.stack([(r * TEMPLATE[:, 0] + 0.5) * c, (r * TEMPLATE[:, 1] + 0.5) * c / ry], 1)
    return (t - c / 2) * 0.9 + c / 2


def five(landmarks):
    p = np.array(landmarks)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


class Data:
    def __init__(self, root, c):
        self.root, self.c, self.tmpl = root, c, template(c)
        self.ldm = json.load(open(f"{root}/ldm.json"))
        self.meta = json.load(open(f"{root}/synth.json"))
        self.splits = {k: json.load(open(f"{root}/splits/{k}.json")) for k in ("train", "val", "test")}

    def decode(self, rel):
        s = self.meta["size"]
        out = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", f"{self.root}/{rel}", "-f", "rawvideo", "-pix_fmt",
                              "rgb24", "-"], capture_output=True, check=True).stdout
        return np.frombuffer(out, np.uint8).reshape(-1, s, s, 3)

    def faces(self, raw_rel, comp):
        frames = self.decode(raw_rel.replace("/raw/", f"/{comp}/"))
        key = raw_rel[:-4].replace("/videos/", "/frames/")
        out = []
        for t, f in enumerate(frames):
            tf = SimilarityTransform()
            tf.estimate(self.tmpl, five(self.ldm[f"{key}/frame_{t}"]["landmark"]))
            out.append((warp(f, tf, output_shape=(self.c, self.c)) * 255).astype(np.uint8))
        return np.stack(out)

    def videos(self, part):
        v = []
        for a, b in self.splits[part]:
            v += [(f"original_sequences/youtube/raw/videos/{x}.mp4", 0, "real") for x in (a, b)]
            for m in self.meta["methods"]:
                v += [(f"manipulated_sequences/{m}/raw/videos/{x}_{y}.mp4", 1, m) for x, y in ((a, b), (b, a))]
        return v

    def load(self, part, comp):
        X, Y, M = [], [], []
        for rel, det, m in self.videos(part):
            f = self.faces(rel, comp)
            X.append(f)
            Y += [det] * len(f)
            M += [m] * len(f)
        return np.concatenate(X), np.array(Y), np.array(M)


def cnn():
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(3, 24), block(24, 48), block(48, 96), block(96, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, 2))


def tensor(X):
    return (torch.tensor(X).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    d = Data(a.data, a.size)
    t0 = time.time()
    Xtr, Ytr, _ = d.load("train", "raw")
    tests = {c: d.load("test", c) for c in ("raw", "c23", "c40")}
    print(f"{len(Xtr)} train faces, {len(tests['raw'][0])} test faces per compression ({time.time() - t0:.0f} s)")

    model = cnn()
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=4e-3)
    X, Y = tensor(Xtr), torch.tensor(Ytr)
    w = torch.tensor([1 / (Ytr == 0).mean(), 1 / (Ytr == 1).mean()]).float()
    t0 = time.time()
    for ep in range(a.epochs):
        model.train()
        perm, total = torch.randperm(len(X)), 0.0
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            x = X[idx].flip(3) if np.random.rand() < 0.5 else X[idx]
            loss = nn.functional.cross_entropy(model(x), Y[idx], weight=w / w.sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {ep}: loss {total / len(X):.3f} ({time.time() - t0:.0f} s)", flush=True)

    model.eval()
    for comp, (Xt, Yt, Mt) in tests.items():
        with torch.no_grad():
            p = torch.softmax(model(tensor(Xt)), 1)[:, 1].numpy()
        per = {}
        for m in d.meta["methods"]:
            sel = (Mt == "real") | (Mt == m)
            per[m] = round(roc_auc_score(Yt[sel], p[sel]), 3)
        print(f"detector trained on raw, tested on {comp}: frame AUC {roc_auc_score(Yt, p):.3f}", per)

    # Identity under compression: the test reals, inner face only.
    real = [rel for rel, det, _ in d.videos("test") if det == 0]
    inner = (slice(int(0.22 * a.size), int(0.9 * a.size)), slice(int(0.19 * a.size), int(0.81 * a.size)))
    raw = [d.faces(rel, "raw").astype(float)[:, inner[0], inner[1]] for rel in real]
    means = np.stack([f[0::2].mean(0) for f in raw])
    for comp in ("raw", "c23", "c40"):
        right = n = 0
        for k, rel in enumerate(real):
            x = d.faces(rel, comp).astype(float)[1::2, inner[0], inner[1]]
            dist = ((x[:, None] - means[None]) ** 2).reshape(len(x), len(real), -1).sum(-1)
            right += int((dist.argmin(1) == k).sum())
            n += len(x)
        print(f"identity nearest class mean, {comp}: {right}/{n} (chance {1 / len(real):.2f})")


if __name__ == "__main__":
    main()
