"""A dataset with 1,000 bad files: fstm extract, train and eval complete, report each bad file
once with its path and reason, and count them in their summaries and JSON outputs; a mostly
broken dataset fails clearly (--max-bad-fraction).

The synthetic FF++ tree (fstm synth, 40 identities: 720 videos, 8 frames each) is damaged in
five ways, in turn: truncated to a third, its first bytes bit-flipped, emptied, replaced by a file
of another format (a PNG), made unreadable (mode 000; fstm runs without the capability that lets
root read such files, so the test means the same as root or not). 150 videos, 20 ldm.json entries
(wrong point counts, non-numbers, no "landmark"), then 830 of the extracted face PNGs: 1,000 files
in all. A second copy with most videos damaged must make extract fail.
"""
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys

import fstm_testlib as T

DAMAGES = ("truncated", "bit-flipped", "zero-length", "wrong format", "unreadable")


def damage(path, kind, rng, png_bytes):
    if kind == "truncated":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 3)
    elif kind == "bit-flipped":  # one bit of a structure no decoder can do without
        with open(path, "r+b") as f:
            raw = bytearray(f.read())
        at = raw.find(b"moov") if path.endswith(".mp4") else 1  # the MP4 index's type, or PNG's "P"
        raw[at] ^= 1 << rng.randrange(8)
        with open(path, "wb") as f:
            f.write(raw)
    elif kind == "zero-length":
        open(path, "wb").close()
    elif kind == "wrong format":
        with open(path, "wb") as f:
            f.write(png_bytes if path.endswith(".mp4") else b"%PDF-1.4\n" + os.urandom(200))
    elif kind == "unreadable":
        os.chmod(path, 0)


def main():
    a = T.args()
    checker = T.Checker()

    ok = checker.ok

    # fstm without CAP_DAC_OVERRIDE: a mode-000 file is unreadable even to root.
    env = dict(os.environ, FSTM_PROGRESS="0", OMP_NUM_THREADS="2")
    prefix = []
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]

    def fstm(args, expect=0):
        r = subprocess.run(prefix + [a.fstm] + [str(x) for x in args], capture_output=True, text=True, env=env)
        if r.returncode != expect:
            print(r.stdout[-2000:], r.stderr[-3000:])
        return r

    if "ffmpeg: yes" not in fstm(["info"]).stdout:
        print("skipped: fstm was built without FFmpeg")
        return T.SKIP
    rng = random.Random(1000)
    data = os.path.join(a.work, "data")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    r = fstm(["synth", "--out", data, "--identities", 40, "--frames", 8, "--seed", 11, "--quiet"])
    ok("synth", r.returncode == 0)
    videos = sorted(os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs
                    if f.endswith(".mp4") and "/masks/" not in d)
    ok("the tree has 720 videos", len(videos) == 720, str(len(videos)))
    png = open(os.path.join(os.path.dirname(__file__), "fuzz", "corpus", "image", "rgb.png"), "rb").read()

    bad_videos = rng.sample(videos, 150)
    for i, v in enumerate(bad_videos):
        damage(v, DAMAGES[i % 5], rng, png)
    ldm_path = os.path.join(data, "ldm.json")
    ldm = json.load(open(ldm_path))
    keys = rng.sample(sorted(ldm), 20)
    for i, k in enumerate(keys):
        e = ldm[k]
        if i % 3 == 0:
            e["landmark"] = e["landmark"][:7]
        elif i % 3 == 1:
            e["landmark"][0] = ["x", 1]
        else:
            del e["landmark"]
    json.dump(ldm, open(ldm_path, "w"))

    faces = os.path.join(a.work, "faces")
    r = fstm(["extract", "--data", data, "--out", faces, "--frames", 8, "--size", 64, "--face-width", 22.857143,
              "--landmarks", ldm_path, "--jobs", 2])
    ok("extract completes with 150 bad videos of 720", r.returncode == 0, r.stderr[-1500:])
    index = json.load(open(os.path.join(faces, "index.json")))
    skipped = [s for s in index["skipped"] if s["kind"] == "video"]
    by_path = {}
    for s in skipped:
        by_path.setdefault(os.path.realpath(s["path"]), []).append(s["reason"])
    want = {os.path.realpath(v) for v in bad_videos}
    ok("each bad video is listed once, with a reason", all(len(by_path.get(v, [])) == 1 and by_path[v][0]
                                                            for v in want),
       str([(v, by_path.get(v)) for v in want if len(by_path.get(v, [])) != 1][:3]))
    ok("and no good video is", set(by_path) <= want, str(sorted(set(by_path) - want)[:3]))
    ldm_reports = [s["reason"] for s in index["skipped"] if s["kind"] == "landmarks"]
    ok("each broken ldm.json entry is listed once", len(ldm_reports) == 20 and
       all(any(f"'{k}'" in r for r in ldm_reports) for k in keys), str(ldm_reports[:3]))
    m = re.search(r"skipped: (\d+) unusable videos, (\d+) frames, (\d+) malformed landmark entries", r.stdout)
    ok("the summary counts them", m is not None and int(m.group(1)) == 150 and int(m.group(3)) == 20, r.stdout)
    ok("the index's counts too", index["counts"]["skipped_videos"] == 150, str(index["counts"]))
    for kind in DAMAGES:
        reasons = [by_path[os.path.realpath(v)][0] for i, v in enumerate(bad_videos) if DAMAGES[i % 5] == kind]
        print(f"  {kind} video, e.g.: {reasons[0][:150]}")

    # Damage 830 of the extracted PNGs (faces, not the ground-truth masks).
    pngs = [os.path.join(faces, f["png"]) for v in index["videos"] for f in v["frames"]]
    split_of = {os.path.join(faces, f["png"]): v["split"] for v in index["videos"] for f in v["frames"]}
    bad_pngs = rng.sample(pngs, 830)
    for i, p in enumerate(bad_pngs):
        damage(p, DAMAGES[i % 5], rng, png)
    print(f"damaged: 150 videos, 20 ldm.json entries, 830 of {len(pngs)} face PNGs = 1000 files")

    def warned(stderr):
        paths = re.findall(r"skipping unreadable face: (\S+?): ", stderr)
        return paths

    run = os.path.join(a.work, "run")
    r = fstm(["train", "--model", "det", "--data", os.path.join(faces, "index.json"), "--out", run, "--batch", 32,
              "--epochs", 1, "--threads", 2, "--val-batch", 64])
    ok("train completes", r.returncode == 0, r.stderr[-1500:])
    paths = warned(r.stderr)
    ok("train reports each unreadable face once", len(paths) == len(set(paths)) and
       set(paths) <= set(bad_pngs), f"{len(paths)} warnings, {len(set(paths))} distinct")
    metrics = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    ok("metrics.jsonl and the summary count them", metrics[-1]["bad_files"] == len(set(paths)) and
       f"unreadable face images: {len(set(paths))}" in r.stdout, f"{metrics[-1]['bad_files']} vs {len(set(paths))}")

    r = fstm(["eval", "--model", os.path.join(run, "last.safetensors"), "--data", os.path.join(faces, "index.json"),
              "--split", "test", "--json"])
    ok("eval completes", r.returncode == 0, r.stderr[-1500:])
    test_bad = {p for p in bad_pngs if split_of[p] == "test"}
    paths = warned(r.stderr)
    ok("eval reports each unreadable test face once", sorted(paths) == sorted(test_bad),
       f"{len(paths)} warnings for {len(test_bad)} damaged test faces")
    ok("and its JSON counts them", r.returncode == 0 and json.loads(r.stdout)["bad_files"] == len(test_bad))

    # Mostly broken: a tree with half its videos damaged fails with a clear error, index written.
    broken = os.path.join(a.work, "broken")
    shutil.copytree(data, broken, symlinks=True)
    subprocess.run(["chmod", "-R", "u+rw", broken], check=True)
    bvideos = sorted(os.path.join(d, f) for d, _, fs in os.walk(broken) for f in fs
                     if f.endswith(".mp4") and "/masks/" not in d)
    for v in bvideos[::2]:
        damage(v, "zero-length", rng, png)
    r = fstm(["extract", "--data", broken, "--out", os.path.join(a.work, "broken_faces"), "--frames", 2, "--size", 64,
              "--landmarks", os.path.join(broken, "ldm.json")], expect=1)
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    ok("a mostly broken tree fails clearly", r.returncode == 1 and "--max-bad-fraction" in last and
       "videos could not be used" in last, last)
    ok("its index is still written", os.path.exists(os.path.join(a.work, "broken_faces", "index.json")))
    r = fstm(["train", "--model", "det", "--data", os.path.join(faces, "index.json"), "--out", run + "2",
              "--batch", 32, "--epochs", 1, "--threads", 2, "--max-bad-fraction", 0.05], expect=1)
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    ok("train with --max-bad-fraction 0.05 fails clearly", r.returncode == 1 and "--max-bad-fraction" in last, last)
    subprocess.run(["chmod", "-R", "u+rw", a.work], check=False)
    return checker.finish()


if __name__ == "__main__":
    sys.exit(main())
