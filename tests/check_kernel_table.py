#!/usr/bin/env python3
"""Checks that every kernel a header in kernels/ declares for a backend is defined in the library.

Each op family (kernels/conv2d.h, ...) declares its kernels once in an X-macro and stamps it into
the backend namespaces: `namespace ref { FSTM_CONV2D_KERNELS }`, `cpu`, `cuda`. A declaration
that nothing defines links as long as nothing calls it, so a backend can silently lack a kernel
(cuda::batch_norm_relu_*_train did). This script reads the declarations from the headers and the
defined symbols from the built library (nm), and names every kernel declared but not defined:

    kernels/batch_norm.h: cuda::batch_norm_relu_forward_train is declared but not defined in
    build/libfstm.so

The CUDA kernels live in their own library, libfstm_cuda.so, which libfstm reaches through the
table of kernels/cuda_table.h (FSTM_CUDA_KERNEL_NAMES). With --cuda on, the script also checks that
the table lists exactly the kernels the headers declare for cuda::, so a new kernel cannot be left
out of it:

    kernels/cuda_table.h: cuda::softmax is declared in kernels/loss.h but not listed in
    FSTM_CUDA_KERNEL_NAMES

and that the op table run on every backend (tests/test_backend_ops.cpp) has a row for every
declared kernel, and no row that names none:

    tests/test_backend_ops.cpp: no row for softmax (kernels/loss.h)

Usage: check_kernel_table.py LIBRARY... [--cuda on|off] [--root REPO]
  LIBRARY: libfstm.so and, with CUDA, libfstm_cuda.so; a kernel may be defined in any of them.
  --cuda off: the build has no CUDA backend; cuda:: kernels are not expected.
Exit status 0 when every declared kernel is defined (and listed), 1 otherwise, 2 on bad usage.
"""
import argparse
import os
import re
import subprocess
import sys

BACKENDS = ("ref", "cpu", "cuda")
FUNCTION = re.compile(r"\b(?:void|bool|double|float|int|int64_t|size_t)\s+([a-z_][a-z0-9_]*)\s*\(")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def macro_bodies(text, name=r"FSTM_\w+_KERNELS"):
    """name -> body of each `#define NAME ...` that continues over backslashed lines."""
    bodies, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"\s*#\s*define\s+(%s)\b(.*)" % name, lines[i])
        if not m:
            i += 1
            continue
        body = [m.group(2)]
        while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            body.append(lines[i])
        bodies[m.group(1)] = "\n".join(body)
        i += 1
    return bodies


def namespace_blocks(text):
    """(backend, body) of each `namespace ref|cpu|cuda { ... }` block (braces balanced)."""
    for m in re.finditer(r"\bnamespace\s+(ref|cpu|cuda)\s*\{", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        yield m.group(1), text[m.end():j - 1]


def declared(root):
    """(header, backend, kernel) for every kernel a header under kernels/ declares for a backend."""
    out = set()
    folder = os.path.join(root, "kernels")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".h"):
            continue
        raw = open(os.path.join(folder, name), encoding="utf-8").read()
        macros = {k: FUNCTION.findall(strip_comments(v)) for k, v in macro_bodies(raw).items()}
        text = strip_comments(re.sub(r"#\s*define[^\n]*(\\\n[^\n]*)*", " ", raw))
        for backend, body in namespace_blocks(text):
            for macro, functions in macros.items():
                if re.search(r"\b%s\b" % macro, body):
                    out.update(("kernels/" + name, backend, f) for f in functions)
            out.update(("kernels/" + name, backend, f) for f in FUNCTION.findall(body))
    return out


def defined(library):
    p = subprocess.run(["nm", "-DC", "--defined-only", library], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"check_kernel_table: nm {library} failed: {p.stderr.strip()}")
    found = set()
    for line in p.stdout.splitlines():
        m = re.search(r"fstm::kernels::(ref|cpu|cuda)::([a-z_][a-z0-9_]*)\(", line)
        if m:
            found.add((m.group(1), m.group(2)))
    return found


def table_problems(root, wanted):
    """Messages for each cuda:: kernel missing from FSTM_CUDA_KERNEL_NAMES, or listed but not declared."""
    path = os.path.join(root, "kernels", "cuda_table.h")
    if not os.path.isfile(path):
        return []
    text = strip_comments(open(path, encoding="utf-8").read())
    body = macro_bodies(text, "FSTM_CUDA_KERNEL_NAMES").get("FSTM_CUDA_KERNEL_NAMES", "")
    listed = set(re.findall(r"\bX\(\s*([a-z_][a-z0-9_]*)\s*\)", body))
    declared_cuda = {f: h for h, b, f in wanted if b == "cuda"}
    out = [f"kernels/cuda_table.h: cuda::{f} is declared in {h} but not listed in FSTM_CUDA_KERNEL_NAMES"
           for f, h in sorted(declared_cuda.items()) if f not in listed]
    out += [f"kernels/cuda_table.h: {f} is listed in FSTM_CUDA_KERNEL_NAMES but no header declares cuda::{f}"
            for f in sorted(listed - set(declared_cuda))]
    return out


def op_table_problems(root, wanted):
    """Messages for each declared kernel that tests/test_backend_ops.cpp has no row for, and each
    row that names no declared kernel. A row starts with `{"name",`."""
    path = os.path.join(root, "tests", "test_backend_ops.cpp")
    if not os.path.isfile(path):
        return []
    rows = set(re.findall(r'\{"([a-z_][a-z0-9_]*)",', strip_comments(open(path, encoding="utf-8").read())))
    kernels = {f: h for h, b, f in wanted}
    out = [f"tests/test_backend_ops.cpp: no row for {f} ({h})" for f, h in sorted(kernels.items()) if f not in rows]
    out += [f"tests/test_backend_ops.cpp: the row {f} names no kernel declared in kernels/*.h"
            for f in sorted(rows - set(kernels))]
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("library", nargs="+")
    ap.add_argument("--cuda", choices=["on", "off"], default="on")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args(argv[1:])
    for library in a.library:
        if not os.path.isfile(library):
            print(f"check_kernel_table: {library}: no such library", file=sys.stderr)
            return 2
    wanted = declared(a.root)
    if not wanted:
        print(f"check_kernel_table: no kernel declarations found under {a.root}/kernels", file=sys.stderr)
        return 2
    have = set().union(*(defined(library) for library in a.library))
    libraries = " or ".join(a.library)
    missing = sorted(w for w in wanted if (w[1], w[2]) not in have and (a.cuda == "on" or w[1] != "cuda"))
    for header, backend, kernel in missing:
        print(f"{header}: {backend}::{kernel} is declared but not defined in {libraries}", file=sys.stderr)
    checked = sum(1 for w in wanted if a.cuda == "on" or w[1] != "cuda")
    unlisted = (table_problems(a.root, wanted) if a.cuda == "on" else []) + op_table_problems(a.root, wanted)
    for problem in unlisted:
        print(problem, file=sys.stderr)
    if missing:
        print(f"check_kernel_table: {len(missing)} of {checked} declared kernels are not defined", file=sys.stderr)
    if unlisted:
        print(f"check_kernel_table: the CUDA kernel table or the op table disagrees with the headers in "
              f"{len(unlisted)} place(s)", file=sys.stderr)
    if missing or unlisted:
        return 1
    print(f"check_kernel_table: all {checked} declared kernels are defined ({', '.join(sorted({w[1] for w in wanted if a.cuda == 'on' or w[1] != 'cuda'}))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
