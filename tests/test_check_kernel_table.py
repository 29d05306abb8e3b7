#!/usr/bin/env python3
"""The kernel-table checker (tests/check_kernel_table.py) must name a kernel that a header declares
for a backend and the library does not define. Run by CTest as kernel_table_checker with the built
library as its argument."""
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_kernel_table.py")


def main():
    library = sys.argv[1]
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
    p = subprocess.run([sys.executable, CHECKER, library, "--root", root], capture_output=True, text=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    for kernel in ("ref::made_up_forward", "cpu::made_up_forward", "cuda::made_up_forward", "cpu::lone_kernel"):
        assert f"kernels/made_up.h: {kernel} is declared but not defined" in p.stderr, (kernel, p.stderr)
    assert "activation_forward" not in p.stderr and "commented_out" not in p.stderr, p.stderr
    assert "4 of 7 declared kernels are not defined" in p.stderr, p.stderr
    p = subprocess.run([sys.executable, CHECKER, library, "--root", root, "--cuda", "off"], capture_output=True, text=True)
    assert p.returncode == 1 and "cuda::" not in p.stderr and "3 of 5" in p.stderr, p.stderr
    print("kernel table checker: names the 4 undefined kernels of a made-up family, none of the defined ones")


if __name__ == "__main__":
    main()
