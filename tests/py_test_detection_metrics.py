"""fstm's detection metrics (fstm/lib/detection_metrics.h) against scikit-learn on fixed scores
with many ties: AUC = roc_auc_score, AP = average_precision_score, EER = the crossing of the
interpolated ROC with FPR = 1 - TPR (brentq over interp1d of roc_curve, as deepfake papers compute
it), ACC at 0.5, video AUC over per-video mean scores."""
import json
import os
import subprocess
import sys

import numpy as np

import fstm_testlib as T

try:
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
except ImportError as e:  # python3-sklearn is a Debian package
    print(f"skipped: {e} (apt-get install python3-sklearn)")
    sys.exit(T.SKIP)


def eer(y, s):
    fpr, tpr, _ = roc_curve(y, s)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def cases():
    rng = np.random.default_rng(4)
    out = []
    # a hand-made case, one with every score tied, coarse scores (many ties) and fine ones
    out.append(([0.1, 0.4, 0.35, 0.8, 0.4], [0, 0, 1, 1, 1], None))
    out.append(([0.5] * 6, [0, 1, 0, 1, 1, 0], None))
    for n, decimals, shift in ((20, 1, 0.1), (200, 2, 0.15), (1000, 1, 0.05), (3000, 3, 0.2), (57, 1, -0.1)):
        y = rng.integers(0, 2, n)
        s = np.clip(rng.normal(0.5 + shift * (2 * y - 1), 0.25), 0, 1).round(decimals)
        groups = rng.integers(0, n // 5 + 2, n) * 2 + y  # videos never mix labels
        out.append((s.tolist(), y.tolist(), groups.tolist()))
    return out


def main():
    a = T.args()
    checker = T.Checker()
    cs = cases()
    path = os.path.join(a.work, "cases.json")
    with open(path, "w") as f:
        json.dump([dict(scores=s, labels=y, **({"groups": g} if g else {})) for s, y, g in cs], f)
    runner = os.path.join(a.tools, "metrics_runner")
    got = json.loads(subprocess.run([runner, path], check=True, capture_output=True, text=True).stdout)
    import torch
    for k, ((s, y, g), r) in enumerate(zip(cs, got)):
        s_np, y_np = np.array(s), np.array(y)
        expected = {"auc": roc_auc_score(y_np, s_np), "ap": average_precision_score(y_np, s_np),
                    "eer": eer(y_np, s_np), "acc": float(np.mean((s_np > 0.5) == y_np))}
        if g:
            gs = {}
            for gi, si, yi in zip(g, s, y):
                gs.setdefault(gi, []).append((si, yi))
            # sequential sums, as fstm: tied video means must tie in both
            vs = [sum(p[0] for p in v) / len(v) for _, v in sorted(gs.items())]
            vy = [v[0][1] for _, v in sorted(gs.items())]
            expected["video_auc"] = roc_auc_score(vy, vs)
        for key, value in expected.items():
            # brentq stops at xtol 2e-12; the others are exact up to rounding
            checker.close(f"case {k} ({len(s)} scores) {key}", torch.tensor([r[key]]), torch.tensor([value]), 1e-9)
    checker.finish()


if __name__ == "__main__":
    main()
