#!/usr/bin/env python3
"""The layer checker (tests/check_layers.py) must catch a climbing include, with file and line, and
pass a tree that keeps to the order. Run by CTest as layer_order_checker."""
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layers.py")


def tree(files):
    root = tempfile.mkdtemp(prefix="fstm_layers_")
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "w") as f:
            f.write(text)
    return root


def run(root):
    p = subprocess.run([sys.executable, CHECKER, root], capture_output=True, text=True)
    return p.returncode, p.stderr


def main():
    ok = {
        "tensor/tensor.h": '#pragma once\n#include <vector>\n',
        "kernels/cpu/conv.cpp": '#include "kernels/conv.h"\n#include "tensor/tensor.h"\n',
        "autograd/ops.cpp": '#include "kernels/conv.h"\n',
        "layers/resnet.cpp": '#include "autograd/ops.h"\n',
        "io/video.cpp": '#include "tensor/error.h"\n#include "fstm_build_config.h"\n',
        "fstm/lib/demo.cpp": '#include "layers/resnet.h"\n#include "io/video.h"\n',
    }
    rc, err = run(tree(ok))
    assert rc == 0, f"a tree in layer order was rejected ({rc}): {err}"

    climbing = dict(ok)
    climbing["kernels/cpu/inference.cpp"] = '// an executor\n#include <memory>\n#include "layers/inference.h"\n'
    climbing["io/loader.cpp"] = '#include "io/loader.h"\n  #  include "autograd/ops.h"\n'
    climbing["tensor/tensor.cpp"] = '#include "kernels/backend.h"\n'
    rc, err = run(tree(climbing))
    assert rc == 1, f"climbing includes passed ({rc}): {err}"
    for where in ('kernels/cpu/inference.cpp:3: includes "layers/inference.h"',
                  'io/loader.cpp:2: includes "autograd/ops.h"', 'tensor/tensor.cpp:1: includes "kernels/backend.h"'):
        assert where in err, f"the report lacks '{where}':\n{err}"
    assert "3 include(s) climb" in err, err

    rc, err = run(tempfile.mkdtemp())
    assert rc == 2 and "not the fstm repository" in err, (rc, err)
    print("layer checker: passes the ordered tree, names 3 climbing includes with file and line")


if __name__ == "__main__":
    main()
