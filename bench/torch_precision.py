"""PyTorch's f32 precision switch across versions, for the GPU scripts (gpu_bench.py, gpu_parity.py).

Both compare fstm's exact f32 (no TF32) with PyTorch, so PyTorch must not use TF32 either.
PyTorch 2.9 replaced `torch.backends.{cudnn,cuda.matmul}.allow_tf32` (deprecated, with a warning
on every use) by `fp32_precision` settings ("ieee" = full f32); PyTorch 1.13 on the CPU machines
has only the old flags.
"""


def exact_f32(torch):
    """Turns TF32 off for cuDNN convolutions and cuBLAS matrix products; returns what it set."""
    matmul = torch.backends.cuda.matmul
    try:  # PyTorch 1.13's matmul object raises AssertionError, not AttributeError, for unknown names
        new_api = isinstance(matmul.fp32_precision, str) and isinstance(torch.backends.cudnn.conv.fp32_precision, str)
    except (AttributeError, AssertionError):
        new_api = False
    if new_api:
        matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        return "fp32_precision = ieee"
    torch.backends.cudnn.allow_tf32 = False
    matmul.allow_tf32 = False
    return "allow_tf32 = False"
