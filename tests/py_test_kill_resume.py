"""Kill anywhere, resume to the same result. `fstm train` killed with SIGKILL 20 times at random
moments and resumed with --resume each time ends with last.safetensors and best.safetensors whose
every tensor is bit-identical to an uninterrupted run's (CPU, deterministic path, same threads).

The 20 kills take turns among four kinds of moment: anywhere (start-up included); between
training steps, after the process saved a checkpoint; while it writes last.safetensors (the atomic
write of io/fs.h must leave the previous checkpoint whole); just after it appended an epoch's
metrics line (validation done, the epoch's checkpoint not yet written, so the resumed run redoes
the epoch end and must not list it twice). After every kill, last.safetensors, when it exists,
reads completely; temporary files a kill left are removed by the next run.

Then `fstm synth`, `fstm extract` and `fstm demo --quick`, each killed 3 times at random moments
and rerun with the same command: every file synth writes, every face PNG, the demo's four models
and its cached results are byte-identical to an uninterrupted run's.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import torch

import fst_testdata as D
import fstm_testlib as T

KILLS = 20


def tensors_of(path):
    tensors, meta = T.st_helpers.read_spec(path)[:2]
    return {name: t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() for name, t in tensors.items()}, meta


def temp_files(folder):
    try:
        return [f for f in os.listdir(folder) if ".tmp." in f]
    except FileNotFoundError:
        return []


def main():
    a = T.args()
    checker = T.Checker()

    ok = checker.ok

    index = D.make_index(os.path.join(a.work, "data"), train_pairs=((100, 101), (102, 103), (108, 109)),
                         val_pairs=((104, 105), (106, 107)), frames=3)
    env = dict(os.environ, FSTM_PROGRESS="0", OMP_NUM_THREADS="2")

    def train_cmd(out, resume):
        cmd = [a.fstm, "train", "--model", "det", "--data", index, "--out", out, "--batch", 4, "--lr", "1e-3",
               "--epochs", 10, "--checkpoint-every", 2, "--threads", 2, "--seed", 5, "--compression", "c23"]
        return [str(c) for c in cmd] + (["--resume"] if resume else [])

    # The uninterrupted reference.
    ref = os.path.join(a.work, "reference")
    shutil.rmtree(ref, ignore_errors=True)
    t0 = time.time()
    r = subprocess.run(train_cmd(ref, False), capture_output=True, text=True, env=env)
    duration = time.time() - t0
    ok("the reference run completes", r.returncode == 0, r.stderr[-2000:])
    if r.returncode != 0:
        return checker.finish()
    print(f"reference run: {duration:.1f} s", flush=True)

    run = os.path.join(a.work, "killed")
    shutil.rmtree(run, ignore_errors=True)
    last = os.path.join(run, "last.safetensors")
    metrics = os.path.join(run, "metrics.jsonl")
    rng = random.Random(20261207)

    def mtime(path):
        try:
            return os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return None

    def size(path):
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return -1

    def wait_until(proc, cond, seconds):
        t0 = time.time()
        while proc.poll() is None and not cond() and time.time() - t0 < seconds:
            time.sleep(0.0005)

    # Where each kill lands, in turn: anywhere (start-up included), between steps after this
    # process saved a checkpoint, while it writes last.safetensors, just after it appends an
    # epoch's metrics line (validation done, checkpoint not yet written).
    def kill_anywhere(proc):
        wait_until(proc, lambda: False, rng.uniform(0.02, 0.1) * duration)

    def kill_mid_steps(proc):
        before = mtime(last)
        wait_until(proc, lambda: mtime(last) != before, duration)
        wait_until(proc, lambda: False, rng.uniform(0.0, 0.05) * duration)

    def kill_in_checkpoint_write(proc):
        prefix = f".last.safetensors.tmp.{proc.pid}."
        wait_until(proc, lambda: any(f.startswith(prefix) for f in temp_files(run)), duration)

    def kill_after_metrics(proc):
        before = size(metrics)
        wait_until(proc, lambda: size(metrics) > before, duration)

    moments = [("anywhere", kill_anywhere), ("mid-steps", kill_mid_steps),
               ("checkpoint write", kill_in_checkpoint_write), ("after a metrics line", kill_after_metrics)]
    landed = {name: 0 for name, _ in moments}
    for k in range(KILLS):
        name, wait = moments[k % len(moments)]
        proc = subprocess.Popen(train_cmd(run, os.path.exists(last)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        wait(proc)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed[name] += 1
        proc.wait()
        if proc.returncode == 0:
            print(f"kill {k + 1} ({name}): the run finished first", flush=True)
            break
        # Nothing half-written is taken as finished: the checkpoint reads whole.
        if os.path.exists(last):
            try:
                step = json.loads(tensors_of(last)[1]["trainer"])["step"]
                print(f"kill {k + 1} ({name}): last.safetensors at step {step}", flush=True)
            except Exception as e:  # noqa: BLE001 - any failure to read is the failure reported
                ok(f"kill {k + 1}: last.safetensors reads completely", False, repr(e))
    print(f"kills landed: {landed}", flush=True)
    ok(f"{KILLS} kills landed, each kind of moment hit", sum(landed.values()) == KILLS and min(landed.values()) > 0,
       str(landed))

    # Finish the run.
    resume = os.path.exists(os.path.join(run, "last.safetensors"))
    r = subprocess.run(train_cmd(run, resume), capture_output=True, text=True, env=env)
    ok("the resumed run completes", r.returncode == 0, r.stderr[-2000:])
    for name in ("last.safetensors", "best.safetensors"):
        got, got_meta = tensors_of(os.path.join(run, name))
        want, want_meta = tensors_of(os.path.join(ref, name))
        differing = [n for n in want if got.get(n) != want[n]]
        ok(f"{name}: all {len(want)} tensors bit-identical to the uninterrupted run",
           set(got) == set(want) and not differing, f"{len(differing)} differ, e.g. {differing[:5]}")
        trainer = lambda m: {k: v for k, v in json.loads(m["trainer"]).items() if k not in ("seconds",)}
        ok(f"{name}: trainer state (step, epoch, best) identical", trainer(got_meta) == trainer(want_meta),
           f"{trainer(got_meta)} vs {trainer(want_meta)}")
    epochs = [json.loads(l)["epoch"] for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    ok("metrics.jsonl has every epoch once", epochs == list(range(1, 11)), str(epochs))
    ok("no temporary file is left", not temp_files(run), str(temp_files(run)))

    # ---- synth, extract, demo: killed 3 times each, rerun with the same command -----------------
    def killed_then_finished(cmd, kills, seconds):
        """Runs cmd, kills it `kills` times at random moments within `seconds`, then lets it finish."""
        landed = 0
        for _ in range(kills):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            try:
                proc.wait(timeout=rng.uniform(0.15, 0.8) * seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                landed += 1
            proc.wait()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return r, landed

    def tree_bytes(root, skip=()):
        out = {}
        for d, _, files in os.walk(root):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), root)
                if not rel.startswith(skip):
                    with open(os.path.join(d, f), "rb") as fh:
                        out[rel] = fh.read()
        return out

    def timed(cmd):
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return r, time.time() - t0

    def reference_and_killed(step, command):
        """Runs command(out) uninterrupted into <work>/<step>_ref, then killed 3 times and rerun into
        <work>/<step>_killed; checks both finish and returns the two folders."""
        ref, killed = os.path.join(a.work, step + "_ref"), os.path.join(a.work, step + "_killed")
        for d in (ref, killed):
            shutil.rmtree(d, ignore_errors=True)
        r, seconds = timed([str(c) for c in command(ref)])
        ok(f"{step}: the reference run", r.returncode == 0, r.stderr[-1500:])
        r, landed = killed_then_finished([str(c) for c in command(killed)], 3, seconds)
        ok(f"{step}: after {landed} kills the same command finishes", r.returncode == 0 and landed >= 2,
           r.stderr[-1500:])
        return ref, killed

    def same_files(step, what, want, got):
        ok(f"{step}: all {len(want)} {what} byte-identical", got.keys() == want.keys() and
           all(got[k] == want[k] for k in want),
           str(sorted(set(got) ^ set(want))[:5] or [k for k in want if got[k] != want[k]][:5]))

    ref_data, data = reference_and_killed("synth", lambda out: [
        a.fstm, "synth", "--out", out, "--identities", 8, "--frames", 6, "--seed", 2, "--threads", 2, "--quiet"])
    same_files("synth", "files (to the uninterrupted run)", tree_bytes(ref_data), tree_bytes(data))

    ref_faces, faces = reference_and_killed("extract", lambda out: [
        a.fstm, "extract", "--data", ref_data, "--out", out, "--frames", 3, "--size", 48,
        "--landmarks", os.path.join(ref_data, "ldm.json"), "--jobs", 2])
    same_files("extract", "face files (no temporary file left)", tree_bytes(ref_faces, skip=("index.json",)),
               tree_bytes(faces, skip=("index.json",)))
    strip = lambda ix: {k: v for k, v in ix.items() if k != "root"}  # noqa: E731
    ok("extract: the index lists the same faces",
       strip(json.load(open(os.path.join(faces, "index.json")))) ==
       strip(json.load(open(os.path.join(ref_faces, "index.json")))))

    ref_demo, dem = reference_and_killed("demo", lambda out: [a.fstm, "demo", "--quick", "--out", out])
    for model in ("det", "fst", "source", "target"):
        got_t, want_t = (tensors_of(os.path.join(d, "runs", model, "last.safetensors"))[0] for d in (dem, ref_demo))
        ok(f"demo: the {model} model's tensors bit-identical", got_t == want_t)
    for name in sorted(os.listdir(os.path.join(ref_demo, "cache"))):
        got_v, want_v = (json.load(open(os.path.join(d, "cache", name)))["value"] for d in (dem, ref_demo))
        ok(f"demo: {name} identical", got_v == want_v)
    return checker.finish()


if __name__ == "__main__":
    sys.exit(main())
