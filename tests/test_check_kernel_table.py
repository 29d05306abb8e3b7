#!/usr/bin/env python3
"""The kernel-table checker (tests/check_kernel_table.py) must name a kernel that a header declares
for a backend and the libraries do not define, and a cuda:: kernel left out of the CUDA kernel
table (kernels/cuda_table.h). Run by CTest as kernel_table_checker with the built libraries
(libfstm, and libfstm_cuda with CUDA) as its arguments."""
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_kernel_table.py")


def main():
    libraries = sys.argv[1:]
    root = tempfile.mkdtemp(prefix="fstm_kernel_table_")
    os.makedirs(os.path.join(root, "kernels"))
    # a family stamped into three backends by its X-macro, plus a lone declaration; relu_forward's
    # real twin (activation_forward) is defined, the invented ones are not
    with open(os.path.join(root, "kernels", "made_up.h"), "w") as f:
        f.write("#pragma once\nnamespace fstm::kernels {\n"
                "#define FSTM_MADE_UP_KERNELS \\\n"
                "  /* y = x */ \\\n"
                "  void activation_forward(Activation a, const Tensor& x, Tensor& y); \\\n"
                "  void made_up_forward(const Tensor& x, Tensor& y);\n"
                "namespace ref { FSTM_MADE_UP_KERNELS }\nnamespace cpu { FSTM_MADE_UP_KERNELS }\n"
                "namespace cuda { FSTM_MADE_UP_KERNELS }\n"
                "namespace cpu {\n// a comment: void commented_out(int x);\nvoid lone_kernel(const Tensor& x);\n}\n"
                "}\n")
    p = subprocess.run([sys.executable, CHECKER, *libraries, "--root", root], capture_output=True, text=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    for kernel in ("ref::made_up_forward", "cpu::made_up_forward", "cuda::made_up_forward", "cpu::lone_kernel"):
        assert f"kernels/made_up.h: {kernel} is declared but not defined" in p.stderr, (kernel, p.stderr)
    assert "activation_forward" not in p.stderr and "commented_out" not in p.stderr, p.stderr
    assert "4 of 7 declared kernels are not defined" in p.stderr, p.stderr
    p = subprocess.run([sys.executable, CHECKER, *libraries, "--root", root, "--cuda", "off"], capture_output=True, text=True)
    assert p.returncode == 1 and "cuda::" not in p.stderr and "3 of 5" in p.stderr, p.stderr
    # the CUDA kernel table lists activation_forward and a name no header declares, not made_up_forward
    with open(os.path.join(root, "kernels", "cuda_table.h"), "w") as f:
        f.write("#pragma once\n#define FSTM_CUDA_KERNEL_NAMES(X) \\\n  X(activation_forward) /* ok */ \\\n"
                "  X(ghost_kernel)\nstruct CudaKernelTable {};\n")
    p = subprocess.run([sys.executable, CHECKER, *libraries, "--root", root], capture_output=True, text=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert ("kernels/cuda_table.h: cuda::made_up_forward is declared in kernels/made_up.h but not listed in "
            "FSTM_CUDA_KERNEL_NAMES") in p.stderr, p.stderr
    assert "ghost_kernel is listed in FSTM_CUDA_KERNEL_NAMES but no header declares cuda::ghost_kernel" in p.stderr
    assert "cuda::activation_forward is declared in" not in p.stderr, p.stderr
    assert "disagrees with the headers in 2 place(s)" in p.stderr, p.stderr
    # the op table has rows for activation_forward and made_up_forward, and one for a name no header declares
    os.makedirs(os.path.join(root, "tests"))
    with open(os.path.join(root, "tests", "test_backend_ops.cpp"), "w") as f:
        f.write('void rows() {\n  t.push_back({"activation_forward", "n=7", 0.0f});\n'
                '  t.push_back({"made_up_forward", "n=7", 0.0f});\n  OpCase g{"ghost_op", "x"};\n'
                '  // {"commented_out", ...\n}\n')
    p = subprocess.run([sys.executable, CHECKER, *libraries, "--root", root], capture_output=True, text=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    for kernel in ("made_up_forward", "activation_forward"):
        assert f"no row for {kernel}" not in p.stderr, p.stderr
    assert "tests/test_backend_ops.cpp: no row for lone_kernel (kernels/made_up.h)" in p.stderr, p.stderr
    assert "the row ghost_op names no kernel declared" in p.stderr, p.stderr
    assert "commented_out" not in p.stderr, p.stderr
    p = subprocess.run([sys.executable, CHECKER, *libraries, "--root", root, "--cuda", "off"], capture_output=True, text=True)
    assert "cuda_table.h" not in p.stderr, p.stderr
    print("kernel table checker: names the 4 undefined kernels of a made-up family, none of the defined ones, "
          "the 2 disagreements of a made-up CUDA kernel table and the 2 of a made-up op table")


if __name__ == "__main__":
    main()
