"""Full disks and read-only folders under `fstm train`: the run stops with one clear error naming
the file, exit 1; the last good checkpoint stays byte-for-byte intact and loadable; a rerun with
space (or write access) resumes and finishes with the same weights as a run that never failed.

- A file-size limit (ulimit -f; works anywhere): a write past it fails with EFBIG.
- A real full disk: the run's folder on a small tmpfs, sized so that the first checkpoint fits and
  the second does not (an atomic write needs room for the new file beside the old). Needs root
  to mount; skipped with the reason otherwise.
- A read-only folder: the same tmpfs remounted read-only.
"""
import json
import os
import resource
import shutil
import subprocess
import sys

import fst_testdata as D
import fstm_testlib as T


def main():
    a = T.args()
    checker = T.Checker()

    ok = checker.ok

    index = D.make_index(os.path.join(a.work, "data"), frames=2)
    env = dict(os.environ, FSTM_PROGRESS="0", OMP_NUM_THREADS="2")

    def train(out, epochs, resume=False, file_limit=None):
        cmd = [a.fstm, "train", "--model", "det", "--data", index, "--out", out, "--batch", 4, "--lr", "1e-3",
               "--epochs", epochs, "--checkpoint-every", 3, "--threads", 2, "--seed", 9, "--compression", "c23"]
        limit = None
        if file_limit is not None:
            limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))  # noqa: E731
        return subprocess.run([str(c) for c in cmd] + (["--resume"] if resume else []), capture_output=True,
                              text=True, env=env, preexec_fn=limit)

    def weights(path):
        tensors = T.st_helpers.read_spec(path)[0]
        return {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "trainer."))}

    def same_weights(x, y):
        wx, wy = weights(x), weights(y)
        return set(wx) == set(wy) and all(wx[k].equal(wy[k]) for k in wx)

    def one_clear_error(r, *words):
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if "error" in l.lower()]
        return (r.returncode == 1 and len(errors) == 1 and errors[0].startswith("fstm: error: ")
                and all(w in errors[0] for w in words)), (r.returncode, errors or lines[-3:])

    def read_bytes(path):
        with open(path, "rb") as f:
            return f.read()

    ref = os.path.join(a.work, "reference")
    shutil.rmtree(ref, ignore_errors=True)
    r = train(ref, 2)
    ok("reference run", r.returncode == 0, r.stderr[-1500:])
    size = os.path.getsize(os.path.join(ref, "last.safetensors"))
    best_size = os.path.getsize(os.path.join(ref, "best.safetensors"))

    # ---- ulimit -f: a file-size limit below a checkpoint --------------------------------------------
    run = os.path.join(a.work, "fsize")
    shutil.rmtree(run, ignore_errors=True)
    r = train(run, 1)
    ok("epoch 1 without a limit", r.returncode == 0, r.stderr[-1500:])
    last = os.path.join(run, "last.safetensors")
    before = read_bytes(last)
    r = train(run, 2, resume=True, file_limit=size // 2)
    good, detail = one_clear_error(r, "last.safetensors", "File too large")
    ok("past ulimit -f: one clear error naming the checkpoint, exit 1", good, str(detail))
    ok("past ulimit -f: last.safetensors unchanged", read_bytes(last) == before)
    ok("past ulimit -f: no temporary file left", not [f for f in os.listdir(run) if ".tmp." in f], str(os.listdir(run)))
    r = train(run, 2, resume=True)
    ok("without the limit, --resume finishes", r.returncode == 0, r.stderr[-1500:])
    ok("and ends with the uninterrupted run's weights",
       same_weights(last, os.path.join(ref, "last.safetensors")))

    # ---- a real full disk and a read-only folder (tmpfs; root only) -----------------------------------
    mnt = os.path.join(a.work, "small_disk")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["umount", mnt], capture_output=True)
    room = size + best_size + size // 2 + 1024 * 1024  # the first checkpoint fits, a second beside it does not
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}", "tmpfs", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        print(f"skipped the tmpfs part: cannot mount a tmpfs ({m.stderr.strip()}); run as root for it")
        return checker.finish()
    try:
        run = os.path.join(mnt, "run")
        r = train(run, 2)
        good, detail = one_clear_error(r, "last.safetensors", "No space left on device")
        ok("full disk: one clear error naming the checkpoint, exit 1", good, str(detail))
        last = os.path.join(run, "last.safetensors")
        ok("full disk: the first checkpoint stays whole and loadable", os.path.exists(last) and len(weights(last)) > 100)
        step = json.loads(T.st_helpers.read_spec(last)[1]["trainer"])["step"]
        before = read_bytes(last)

        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        r = train(run, 2, resume=True)
        good, detail = one_clear_error(r, "Read-only file system")
        ok("read-only folder: one clear error, exit 1", good, str(detail))
        ok("read-only folder: last.safetensors unchanged", read_bytes(last) == before)

        subprocess.run(["mount", "-o", f"remount,rw,size={4 * room}", mnt], check=True)
        r = train(run, 2, resume=True)
        ok(f"with space, --resume from step {step} finishes", r.returncode == 0, r.stderr[-1500:])
        ok("and ends with the uninterrupted run's weights", same_weights(last, os.path.join(ref, "last.safetensors")))
        ok("no temporary file left", not [f for f in os.listdir(run) if ".tmp." in f], str(os.listdir(run)))
    finally:
        subprocess.run(["umount", mnt], capture_output=True)
    return checker.finish()


if __name__ == "__main__":
    sys.exit(main())
