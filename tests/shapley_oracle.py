"""Shapley maps in plain PyTorch, written from the method's description (not from fstm's code), for
tests/py_test_shapley.py and bench/bench_shapley.py.

Conventions shared with fstm (documented in fstm/lib/masking.h):
  - an L x L grid over an H x W image, cell (i, j) = player i * L + j, pixel rows
    [i * H // L, (i + 1) * H // L) and columns [j * W // L, (j + 1) * W // L);
  - the value of a coalition is the target logit of the normalised image whose absent cells hold
    the baseline: mean-colour (normalised 0), image-mean (the image's mean colour), blur (Gaussian,
    sigma in pixels, taps exp(-k^2 / 2 sigma^2) for |k| <= ceil(3 sigma), replicated borders) or
    pristine (a given image). The black baseline is not written here as a colour: AuthorsValues
    builds it the authors' way, multiplying the unnormalised pixels by the 0/1 cell mask.
"""
import math

import torch
import torch.nn.functional as F


def edges(n, grid):
    return [i * n // grid for i in range(grid + 1)]


def cell_index(h, w, grid):
    """[H, W] long: the player of every pixel."""
    rows, cols = edges(h, grid), edges(w, grid)
    idx = torch.empty(h, w, dtype=torch.long)
    for i in range(grid):
        for j in range(grid):
            idx[rows[i]:rows[i + 1], cols[j]:cols[j + 1]] = i * grid + j
    return idx


def normalise(rgb_uint8, mean, std):
    """[H, W, 3] uint8 numpy -> [3, H, W] float32 tensor, (v / 255 - mean) / std as fstm does."""
    x = torch.from_numpy(rgb_uint8.copy()).float() / 255.0
    x = (x - torch.tensor(mean)) / torch.tensor(std)
    return x.permute(2, 0, 1).contiguous()


def baseline(x, kind, sigma=0.0, grid=0):
    """x [3, H, W] -> the baseline image [3, H, W]."""
    if kind == "mean-colour":
        return torch.zeros_like(x)
    if kind == "image-mean":
        return x.mean(dim=(1, 2), keepdim=True).expand_as(x).contiguous()
    if kind == "blur":
        if sigma <= 0:
            sigma = max(x.shape[1], x.shape[2]) / grid
        r = max(1, math.ceil(3 * sigma))
        k = torch.tensor([math.exp(-0.5 * i * i / (sigma * sigma)) for i in range(-r, r + 1)])
        k = k / k.sum()
        y = x.unsqueeze(0)
        y = F.pad(y, (r, r, 0, 0), mode="replicate")
        y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
        y = F.pad(y, (0, 0, r, r), mode="replicate")
        y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
        return y[0]
    raise ValueError(kind)


def masked(x, base, cells, present):
    """present [B, L*L] bool -> [B, 3, H, W]: x where the pixel's cell is present, else base."""
    keep = present[:, cells]  # [B, H, W]
    return torch.where(keep.unsqueeze(1), x.unsqueeze(0), base.unsqueeze(0))


class Values:
    """Target logits of coalitions, run in batches; counts the forwards."""

    def __init__(self, model, x, base, grid, target, batch=64, dtype=None, channels_last=True):
        self.model, self.x, self.base, self.grid, self.target, self.batch = model, x, base, grid, target, batch
        self.cells = cell_index(x.shape[1], x.shape[2], grid)
        self.dtype = dtype
        self.channels_last = channels_last
        self.forwards = 0

    @torch.no_grad()
    def __call__(self, present):
        out = []
        for s in range(0, present.shape[0], self.batch):
            imgs = masked(self.x, self.base, self.cells, present[s:s + self.batch])
            if self.channels_last:
                imgs = imgs.contiguous(memory_format=torch.channels_last)
            if self.dtype is not None:
                with torch.autocast("cpu", dtype=self.dtype):
                    logits = self.model(imgs)
            else:
                logits = self.model(imgs)
            out.append(logits[:, self.target].float())
            self.forwards += imgs.shape[0]
        return torch.cat(out).double()


class AuthorsValues(Values):
    """Target logits of coalitions masked as the authors' code does it: the unnormalised image (pixel
    values) multiplied by the 0/1 mask of the present cells, then normalised for the model."""

    def __init__(self, model, rgb_uint8, mean, std, grid, target, batch=64):
        pixels = torch.from_numpy(rgb_uint8.copy()).double().permute(2, 0, 1) / 255.0  # [3, H, W]
        super().__init__(model, pixels, None, grid, target, batch, channels_last=False)
        self.mean = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)

    @torch.no_grad()
    def __call__(self, present):
        out = []
        for s in range(0, present.shape[0], self.batch):
            keep = present[s:s + self.batch][:, self.cells].unsqueeze(1).double()  # [B, 1, H, W]
            imgs = ((self.x.unsqueeze(0) * keep - self.mean) / self.std).float()
            out.append(self.model(imgs)[:, self.target].float())
            self.forwards += imgs.shape[0]
        return torch.cat(out).double()


def exact(values, players):
    """Shapley values by enumerating all 2^n coalitions (n <= 16)."""
    n = players
    bits = torch.arange(1 << n).unsqueeze(1).bitwise_and(1 << torch.arange(n)).ne(0)  # [2^n, n]
    v = values(bits)
    size = bits.sum(1)
    phi = torch.zeros(n, dtype=torch.float64)
    fact = [math.factorial(k) for k in range(n + 1)]
    for c in range(n):
        without = ~bits[:, c]
        s = torch.nonzero(without).squeeze(1)
        w = torch.tensor([fact[k] * fact[n - k - 1] / fact[n] for k in size[s].tolist()], dtype=torch.float64)
        phi[c] = (w * (v[s | (1 << c)] - v[s])).sum()
    return phi, v[-1].item(), v[0].item()


def per_grid(values, players, samples, seed=0):
    """The authors' sampler: for every grid g and every sample, a random coalition S of the other
    grids (the players before g in a random permutation) and two forwards, v(S + g) - v(S). All
    2 * samples * players coalitions go through the model in batches of values.batch."""
    gen = torch.Generator().manual_seed(seed)
    present = torch.zeros(players, samples, 2, players, dtype=torch.bool)
    for g in range(players):
        for t in range(samples):
            order = torch.randperm(players, generator=gen)
            before = order[:int(torch.nonzero(order == g)[0, 0])]
            present[g, t, :, before] = True
            present[g, t, 1, g] = True
    v = values(present.view(-1, players)).view(players, samples, 2)
    return (v[:, :, 1] - v[:, :, 0]).mean(1)


def instability(a, b):
    a = a / a.norm()
    b = b / b.norm()
    return ((a - b).norm() / (a + b).norm()).item()
