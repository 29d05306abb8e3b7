"""CUDA is optional at run time: libfstm and fstm link no CUDA library, and with the CUDA libraries
hidden the same binary still runs on the CPU and says why CUDA is not loaded.

1. `ldd` of fstm and of libfstm lists no CUDA library (libcudart, libcublas, libcudnn, ...).
2. In a private mount namespace (`unshare -m`), every folder that holds a CUDA library
   libfstm_cuda.so needs is covered by an empty tmpfs (this hides /usr/local/cuda). There:
   - `fstm info` prints `cuda: not loaded (<the loader's reason>)` and exits 0;
   - `fstm predict` gives the same logits as outside the namespace;
   - `fstm predict --device cuda` exits 1 and says CUDA is not loaded;
   - `fstm demo --quick` completes and writes its report.
Part 2 is skipped (exit 77, reason printed) in builds without CUDA, when a CUDA library sits in a
system folder that cannot be hidden, or when this process may not create a mount namespace.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

import fstm_testlib as T

CUDA_LIBRARY = re.compile(r"\blib(cuda|cudart|cublas|cublasLt|cudnn\w*|nvrtc|nvJitLink)\.so")
SYSTEM_FOLDERS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu")


def ldd(path):
    """name -> resolved path (or 'not found') of each library the loader would map for `path`."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s*=>\s*(\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return libs


def library_of(build):
    for name in sorted(os.listdir(build)):
        if re.fullmatch(r"libfstm\.so(\.\d+)*", name) and not os.path.islink(os.path.join(build, name)):
            return os.path.join(build, name)
    raise SystemExit(f"no libfstm.so in {build}")


def check_no_cuda_linked(checker, binaries):
    for path in binaries:
        linked = sorted(n for n in ldd(path) if CUDA_LIBRARY.search(n))
        checker.count += 1
        if linked:
            checker.failures += 1
            print(f"FAIL {os.path.basename(path)} links CUDA libraries: {', '.join(linked)}")
        else:
            print(f"ok   {os.path.basename(path)} links no CUDA library ({len(ldd(path))} libraries in all)")


def folders_to_hide(plugin):
    """Real folders of the CUDA libraries libfstm_cuda.so needs, plus /usr/local/cuda; None when one
    of them is a system folder (hiding it would hide the C library too)."""
    folders = set()
    if os.path.exists("/usr/local/cuda"):
        folders.add(os.path.realpath("/usr/local/cuda"))
    for name, where in ldd(plugin).items():
        if CUDA_LIBRARY.search(name) and where.startswith("/"):
            folder = os.path.dirname(os.path.realpath(where))
            if folder in SYSTEM_FOLDERS or os.path.dirname(where) in SYSTEM_FOLDERS:
                return None, f"{name} is in the system folder {os.path.dirname(where)}"
            folders.add(folder)
    # a folder inside another one is hidden with it (and no longer exists to mount over)
    outer = [f for f in folders if not any(f.startswith(g + "/") for g in folders)]
    return sorted(outer), ""


def hidden(folders, command):
    """`command` (a list) run with `folders` covered by empty tmpfs mounts in a new mount namespace."""
    mounts = " && ".join(f"mount -t tmpfs fstm-hides-cuda '{f}'" for f in folders)
    script = mounts + ' && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh"] + [str(c) for c in command]


def make_model_and_image(work):
    torch.manual_seed(5)
    model = torchvision.models.resnet18(num_classes=2)
    T.randomize_batch_norm(model, torch.Generator().manual_seed(6))
    weights = os.path.join(work, "det.safetensors")
    T.save_safetensors(weights, model.state_dict())
    image = os.path.join(work, "face.png")
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    return weights, image


def expect(checker, what, ok, detail=""):
    checker.count += 1
    checker.failures += 0 if ok else 1
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail else ""), flush=True)


def main():
    a = T.args()
    build = os.path.dirname(os.path.abspath(a.fstm))
    checker = T.Checker()
    check_no_cuda_linked(checker, [a.fstm, library_of(build)])

    plugin = os.path.join(build, "libfstm_cuda.so")
    if not os.path.exists(plugin):
        print("skip: this build has no CUDA backend (no libfstm_cuda.so), so there is nothing to hide")
        checker.finish()
        return
    folders, why = folders_to_hide(plugin)
    if folders is None:
        print(f"skip: cannot hide the CUDA libraries: {why}")
        sys.exit(T.SKIP)
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"skip: cannot make a mount namespace to hide CUDA (needs root): {probe.stderr.strip()}")
        sys.exit(T.SKIP)
    print("hiding " + ", ".join(folders))

    info = subprocess.run(hidden(folders, [a.fstm, "info"]), capture_output=True, text=True)
    line = next((l for l in info.stdout.splitlines() if re.match(r"\s*cuda\b", l)), "")
    expect(checker, "fstm info runs without the CUDA libraries", info.returncode == 0, info.stderr.strip()[-300:])
    expect(checker, "fstm info says why CUDA is not loaded", "not loaded (" in line and "cannot open" in line,
           line.strip())

    weights, image = make_model_and_image(a.work)
    predict = [a.fstm, "predict", "--arch", "resnet18", "--num-classes", 2, "--weights", weights, "--size", 64,
               "--json", image]
    outside = subprocess.run([str(c) for c in predict], capture_output=True, text=True)
    inside = subprocess.run(hidden(folders, predict), capture_output=True, text=True)
    ok = outside.returncode == 0 and inside.returncode == 0
    expect(checker, "fstm predict runs without the CUDA libraries", ok, (inside.stderr or outside.stderr).strip()[-300:])
    if ok:
        same = json.loads(inside.stdout)[0]["logits"] == json.loads(outside.stdout)[0]["logits"]
        expect(checker, "and gives the same logits as with them", same, inside.stdout.strip()[:200])

    on_gpu = subprocess.run(hidden(folders, predict[:2] + ["--device", "cuda"] + predict[2:]), capture_output=True,
                            text=True)
    expect(checker, "fstm predict --device cuda fails clearly", on_gpu.returncode == 1 and "not loaded" in on_gpu.stderr,
           on_gpu.stderr.strip()[-300:])

    out = os.path.join(a.work, "demo")
    demo = subprocess.run(hidden(folders, [a.fstm, "demo", "--quick", "--out", out, "--no-progress"]),
                          capture_output=True, text=True)
    expect(checker, "fstm demo --quick runs without the CUDA libraries",
           demo.returncode == 0 and os.path.exists(os.path.join(out, "report.html")), demo.stderr.strip()[-400:])
    checker.finish()


if __name__ == "__main__":
    main()
