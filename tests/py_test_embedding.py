"""The embedding API as a product uses it: `cmake --install` the build, build
fstm/examples (find_package(fstm)) against the installed package, and run it.

score_faces links fstm::core alone and scores aligned face PNGs with a detector checkpoint (a
torchvision ResNet-18 with a 2-way head and fstm metadata); P(fake) must equal PyTorch's
softmax[:, 1] within 1e-5, and `ldd` must list no FFmpeg, dlib or CUDA library (the count is
printed). detect_fakes adds the video and faces components and must give the same scores. A
missing checkpoint must exit 1 naming the file.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

import fstm_testlib as T

SIZE = 64


def main():
    a = T.args()
    build = os.path.dirname(os.path.abspath(a.fstm))
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prefix = os.path.join(a.work, "prefix")
    example_build = os.path.join(a.work, "example-build")
    shutil.rmtree(prefix, ignore_errors=True)
    shutil.rmtree(example_build, ignore_errors=True)
    T.run(["cmake", "--install", build, "--prefix", prefix], stdout=subprocess.DEVNULL)
    T.run(["cmake", "-S", os.path.join(source, "fstm", "examples"), "-B", example_build, "-G", "Ninja",
           f"-DCMAKE_PREFIX_PATH={prefix}"], stdout=subprocess.DEVNULL)
    T.run(["cmake", "--build", example_build], stdout=subprocess.DEVNULL)
    tool = os.path.join(example_build, "score_faces")
    full_tool = os.path.join(example_build, "detect_fakes")

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    T.randomize_batch_norm(model, torch.Generator().manual_seed(4))
    model.eval()
    ckpt = os.path.join(a.work, "det.safetensors")
    T.save_safetensors(ckpt, model.state_dict(), {"arch": "resnet18", "num_classes": "2", "input_size": str(SIZE),
                                                  "model": "det"})
    rng = np.random.default_rng(0)
    paths, xs = [], []
    for i in range(3):
        img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        p = os.path.join(a.work, f"face{i}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
        x = torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255
        xs.append((x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None])
    with torch.no_grad():
        expected = model(torch.stack(xs)).softmax(1)[:, 1]
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(prefix, "lib"))
    r = subprocess.run([tool, ckpt] + paths, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(1)
    got = torch.tensor([float(line.split()[1]) for line in r.stdout.strip().splitlines()])
    checker = T.Checker()
    checker.close("P(fake) from the installed library", got, expected, 1e-5)

    def expect(what, ok, detail=""):
        checker.count += 1
        checker.failures += 0 if ok else 1
        print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail else ""))

    libs = subprocess.run(["ldd", tool], capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    names = sorted(line.split()[0] for line in libs if line.strip())
    heavy = [n for n in names if re.match(r"lib(av\w+|sw\w+|dlib|cuda|cudart|cublas\w*|cudnn\w*|x264|fstm_(video|faces|cuda))\.so", n)]
    expect(f"score_faces (fstm::core alone) loads {len(names)} libraries, none of FFmpeg, dlib or CUDA", not heavy,
           ", ".join(heavy))
    print("score_faces libraries: " + " ".join(names))
    r2 = subprocess.run([full_tool, ckpt] + paths, capture_output=True, text=True, env=env)
    expect("detect_fakes (with the video and faces components) gives the same scores", r2.stdout == r.stdout,
           r2.stderr.strip()[-300:])
    r = subprocess.run([tool, os.path.join(a.work, "missing.safetensors"), paths[0]], capture_output=True, text=True,
                       env=env)
    ok = r.returncode == 1 and "missing.safetensors" in r.stderr
    print(("ok  " if ok else "FAIL") + " a missing checkpoint is named: " + r.stderr.strip())
    checker.count += 1
    checker.failures += 0 if ok else 1
    checker.finish()


if __name__ == "__main__":
    main()
