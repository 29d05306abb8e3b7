"""ResNet-18/34 parity with torchvision (Debian's PyTorch 1.13 is the oracle).

Random weights with randomised BatchNorm statistics; the engine must match, with these tolerances
(max error relative to the tensor's largest magnitude):
  - eval-mode logits, train-mode logits and loss: 1e-4
  - every parameter gradient and the BatchNorm running statistics after the train step: 1e-3
  - the losses of 5 SGD-momentum steps and 5 AdamW steps: 1e-3 against PyTorch in float64, or, where
    the trajectory amplifies rounding (batch 4 in train-mode BatchNorm does), no more than twice as
    far from float64 PyTorch as float32 PyTorch is.
"""
import torch
import torchvision

import fstm_testlib as T

TOL_LOGITS = 1e-4
TOL_GRAD = 1e-3
TOL_STEPS = 1e-3


def optimizer_losses(make, state, x, y, adamw, dtype=torch.float32):
    model = make().to(dtype)
    model.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()})
    x = x.to(dtype)
    model.train()
    if adamw:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=4e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return torch.tensor(losses)


def check(arch, a, checker):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    classes = 10
    make = lambda: getattr(torchvision.models, arch)(num_classes=classes)
    model = make()
    T.randomize_batch_norm(model, gen)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 64, 80, generator=gen)
    y = torch.tensor([3, 0, 9, 3])

    got = T.run_parity_runner(a, arch, arch, classes, state, x, y)

    model.eval()
    with torch.no_grad():
        checker.close(f"{arch} eval logits", got["eval_logits"], model(x), TOL_LOGITS)
    model.train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    checker.close(f"{arch} train logits", got["train_logits"], logits.detach(), TOL_LOGITS)
    checker.close(f"{arch} train loss", got["train_loss"].reshape(()), loss.detach(), TOL_LOGITS)
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == sum(1 for k in got if k.startswith("grad.")), "gradient count differs"
    for name, p in model.named_parameters():
        checker.close(f"{arch} grad {name}", got["grad." + name], p.grad, TOL_GRAD)
    for name, b in model.named_buffers():
        checker.close(f"{arch} buffer {name}", got["buffer." + name], b, TOL_GRAD)
    for name, adamw in (("SGD-momentum", False), ("AdamW", True)):
        exact = optimizer_losses(make, state, x, y, adamw, torch.float64)
        torch32 = optimizer_losses(make, state, x, y, adamw)
        ours = got["adamw_losses" if adamw else "sgd_losses"].double()
        bound = torch.maximum(TOL_STEPS * exact.abs().max(), 2 * (torch32 - exact).abs())
        err = (ours - exact).abs()
        ok = bool((err <= bound + 1e-7).all())
        checker.count += 1
        checker.failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {arch} 5 {name} losses: fstm {ours.tolist()}\n"
              f"     torch f32 {torch32.tolist()}\n     torch f64 {exact.tolist()}")


def main():
    a = T.args()
    torch.set_num_threads(2)
    checker = T.Checker()
    for arch in ("resnet18", "resnet34"):
        check(arch, a, checker)
    checker.finish()


if __name__ == "__main__":
    main()
