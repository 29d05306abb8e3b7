#!/usr/bin/env python3
"""Checks that no source file includes a header from a layer above its own.

fstm is built in layers, each resting only on those below it:

    tensor  <-  kernels  <-  autograd  <-  layers  <-  fstm
    tensor  <-  io       <-  fstm

so a kernel never knows about a Module and a tensor never knows about a kernel. The rule is
written here, where a newcomer looks, and the build runs this script (CMakeLists.txt: the
`layer_check` target), so an include that climbs fails the build with its file and line:

    kernels/cpu/inference_onednn.cpp:14: includes "layers/inference.h": kernels may include
    only tensor, kernels

Usage: check_layers.py [ROOT]   (ROOT: the repository, default the parent of tests/)
Exit status 0 when every include keeps to the order, 1 otherwise.
"""
import os
import re
import sys

# Each layer and the layers its files may include (its own included).
ALLOWED = {
    "tensor": {"tensor"},
    "kernels": {"tensor", "kernels"},
    "autograd": {"tensor", "kernels", "autograd"},
    "layers": {"tensor", "kernels", "autograd", "layers"},
    "io": {"tensor", "io"},
    "fstm": {"tensor", "kernels", "autograd", "layers", "io", "fstm"},
}
SOURCES = (".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"')


def violations(root):
    """Yields (path relative to root, line number, included path, layer) for each climbing include."""
    for layer, allowed in ALLOWED.items():
        top = os.path.join(root, layer)
        for folder, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith(SOURCES):
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1) in ALLOWED and m.group(1) not in allowed:
                            included = line.split('"')[1]
                            yield os.path.relpath(path, root), number, included, layer


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "tensor")):
        print(f"check_layers: {root} is not the fstm repository (no tensor/ folder)", file=sys.stderr)
        return 2
    found = 0
    for path, number, included, layer in violations(root):
        order = ", ".join(sorted(ALLOWED[layer]))
        print(f'{path}:{number}: includes "{included}": {layer} may include only {order}', file=sys.stderr)
        found += 1
    if found:
        print(f"check_layers: {found} include(s) climb the layer order (see tests/check_layers.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
