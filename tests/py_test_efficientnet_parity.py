"""EfficientNet-b3/b4 parity with torchvision (Debian's PyTorch 1.13 is the oracle).

For each model at 224x224 and at its native size (300 for b3, 380 for b4), batch 2: random weights
with randomised BatchNorm statistics, the state dict loaded into fstm unchanged (names and shapes
must match torchvision's exactly), then compared:
  - eval-mode logits;
  - a train-mode forward/backward with dropout and stochastic depth off (probability 0 on both
    sides, so the step is deterministic): logits, loss, every parameter gradient and the BatchNorm
    running statistics afterwards;
  - the regularisation fstm builds by default: the classifier's dropout and every block's
    stochastic-depth probability equal torchvision's;
  - `fstm bench --arch efficientnet_b3|b4` runs (inference f32 and bf16, a training step).
Stochastic depth itself (whole samples dropped, survivors scaled by 1/(1-p)) is tested in
tests/test_efficientnet.cpp.

Tolerances: max error relative to the tensor's largest magnitude,
  - logits and loss: 1e-4;
  - gradients and running statistics: 1e-3. A BatchNorm bias gradient is measured against the larger
    of its own scale and its BatchNorm weight gradient's: both are sums of the same terms (dL/dy and
    dL/dy * x_hat), and for the projection BatchNorms (features.S.B.block.K.1 after the last 1x1
    conv) the exact bias gradient is zero, because every consumer of a block's output renormalises
    it per channel, so both engines return float32 noise (~1e-6) there.
Measured once against float64 PyTorch (b3 at 224): every other gradient within 5e-5 relative, eval
logits within 1e-6.
"""
import json
import subprocess

import torch
import torchvision

import fstm_testlib as T

TOL_LOGITS = 1e-4
TOL_GRAD = 1e-3
BATCH = 2
CLASSES = 10


def check_drop_probs(arch, got, checker):
    """Dropout and the stochastic-depth schedule as fstm builds them, against torchvision's."""
    m = getattr(torchvision.models, arch)(num_classes=CLASSES)
    probs = [m.classifier[0].p] + [s.p for s in m.modules() if isinstance(s, torchvision.ops.StochasticDepth)]
    checker.close(f"{arch} dropout and {len(probs) - 1} stochastic-depth probabilities", got["drop_probs"],
                  torch.tensor(probs), 1e-6)


def check(arch, size, a, checker):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321 + size)
    model = getattr(torchvision.models, arch)(num_classes=CLASSES)
    T.randomize_batch_norm(model, gen)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(BATCH, 3, size, size, generator=gen)
    y = torch.tensor([3, 7])
    tag = f"{arch}@{size}"

    got = T.run_parity_runner(a, tag, arch, CLASSES, state, x, y, "--steps", 0, "--no-drop")
    if size == 224:
        check_drop_probs(arch, got, checker)

    model.eval()
    with torch.no_grad():
        r = checker.close(f"{tag} eval logits", got["eval_logits"], model(x), TOL_LOGITS)
    print(f"     {tag} eval logits: relative error {r:.3g}")

    model.classifier[0].p = 0.0
    for m in model.modules():
        if isinstance(m, torchvision.ops.StochasticDepth):
            m.p = 0.0
    model.train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    checker.close(f"{tag} train logits", got["train_logits"], logits.detach(), TOL_LOGITS)
    checker.close(f"{tag} train loss", got["train_loss"].reshape(()), loss.detach(), TOL_LOGITS)
    names = [n for n, _ in model.named_parameters()]
    checker.count += 1
    if len(names) != sum(1 for k in got if k.startswith("grad.")):
        print(f"FAIL {tag}: gradient count differs from torchvision's {len(names)}")
        checker.failures += 1
    worst = 0.0
    params = dict(model.named_parameters())
    bn_biases = {n + ".bias" for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for name, p in params.items():
        atol = 1e-7
        if name in bn_biases:
            atol = TOL_GRAD * params[name[:-len("bias")] + "weight"].grad.abs().max().item()
        r = checker.close(f"{tag} grad {name}", got["grad." + name], p.grad, TOL_GRAD, atol)
        if p.grad.abs().max() > 1e-3:  # the zero-gradient projection biases say nothing here
            worst = max(worst, r)
    for name, b in model.named_buffers():
        worst = max(worst, checker.close(f"{tag} buffer {name}", got["buffer." + name], b, TOL_GRAD))
    print(f"     {tag}: {len(names)} gradients and {sum(1 for _ in model.named_buffers())} buffers, "
          f"worst relative error {worst:.3g}")


def check_bench(a, checker):
    """`fstm bench --arch efficientnet_bN` runs inference (f32, bf16) and a training step."""
    for arch, mode, dtype in (("efficientnet_b3", "infer", "f32"), ("efficientnet_b4", "infer", "bf16"),
                              ("efficientnet_b3", "train", "f32")):
        cmd = [a.fstm, "bench", "--arch", arch, "--mode", mode, "--dtype", dtype, "--batch", "2", "--size", "64",
               "--iterations", "1", "--warmup", "0", "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        checker.count += 1
        if p.returncode != 0:
            # oneDNN has no bf16 kernels on AVX2-only CPUs (AMD Zen 3): fstm must refuse, naming why
            skip = dtype == "bf16" and "no bf16 kernel" in p.stderr
            checker.failures += 0 if skip else 1
            print(f"{'skip' if skip else 'FAIL'} fstm bench {arch} {mode} {dtype}: exit {p.returncode}, {p.stderr.strip()}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        ok = r["arch"] == arch and r["mode"] == mode and r["images_per_s"] > 0
        checker.failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} fstm bench {arch} {mode} {dtype}: {r['images_per_s']:.2f} img/s on "
              f"{r['backend']}")


def main():
    a = T.args()
    torch.set_num_threads(2)
    checker = T.Checker()
    for arch, native in (("efficientnet_b3", 300), ("efficientnet_b4", 380)):
        for size in (224, native):
            check(arch, size, a, checker)
    check_bench(a, checker)
    checker.finish()


if __name__ == "__main__":
    main()
