#!/usr/bin/env python3
"""`fstm synth` through the command line, checked with the ffmpeg/ffprobe programs as the
independent decoder:
  - exit codes: a bad flag value is 2; an invalid option, a foreign non-empty folder, an existing
    dataset without --force are 1; --force replaces a previous synthetic dataset;
  - the FF++ layout, frame counts, sizes and pixel formats of raw/c23/c40 and mask videos;
  - decoded by ffmpeg, each raw fake equals its raw source video exactly where its mask video is 0
    and differs inside it; the masks cover the eyes and mouth of ldm.json's landmarks for swaps;
  - splits, labels and the synth.json record;
  - when the build has `fstm extract`, it reads the tree with ldm.json and skips nothing.
Exit 77 (skipped) when ffmpeg, ffprobe or numpy is missing.
"""
import json
import os
import shutil
import subprocess
import sys

import fstm_testlib as T

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]
IDS, FRAMES, SIZE = 6, 3, 64


def run(fstm, *args):
    return subprocess.run([fstm, "synth", *args], capture_output=True, text=True)


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=width,height,pix_fmt,nb_read_frames", "-of", "json", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def decode(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


def main():
    a = T.args()
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        print("skipped: ffmpeg/ffprobe not found")
        return 77
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    out = os.path.join(a.work, "ds")
    small = ["--identities", str(IDS), "--frames", str(FRAMES), "--size", str(SIZE), "--seed", "5", "--quiet"]

    r = run(a.fstm, "--out", out, "--size", "abc")
    assert r.returncode == 2, (r.returncode, r.stderr)
    r = run(a.fstm, "--out", out, "--identities", "5")
    assert r.returncode == 1 and "even" in r.stderr, (r.returncode, r.stderr)
    r = run(a.fstm, "--out", out, "--methods", "Deepfakes,FaceMorph")
    assert r.returncode == 1 and "FaceMorph" in r.stderr, (r.returncode, r.stderr)
    foreign = os.path.join(a.work, "foreign")
    os.makedirs(foreign)
    open(os.path.join(foreign, "keep.txt"), "w").write("x")
    r = run(a.fstm, "--out", foreign, "--force", *small)
    assert r.returncode == 1 and "synth.json" in r.stderr, (r.returncode, r.stderr)
    assert os.path.exists(os.path.join(foreign, "keep.txt"))

    r = run(a.fstm, "--out", out, *small)
    assert r.returncode == 0, r.stderr
    assert "wrote 18 real and 90 fake videos" in r.stderr, r.stderr
    r = run(a.fstm, "--out", out, *small)
    assert r.returncode == 1 and "--force" in r.stderr, (r.returncode, r.stderr)

    meta = json.load(open(os.path.join(out, "synth.json")))
    assert meta["seed"] == 5 and meta["identities"] == IDS and meta["frames"] == FRAMES and meta["size"] == SIZE
    assert meta["methods"] == METHODS and meta["compressions"] == ["raw", "c23", "c40"]
    ldm = json.load(open(os.path.join(out, "ldm.json")))
    assert len(ldm) == (IDS + 5 * IDS) * FRAMES, len(ldm)

    pairs = []
    for part in ("train", "val", "test"):
        pairs += [(part, p) for p in json.load(open(os.path.join(out, "splits", part + ".json")))]
    ids = sorted(x for _, p in pairs for x in p)
    assert ids == [f"{i:03d}" for i in range(IDS)], ids
    assert [part for part, _ in pairs] == ["train", "val", "test"], pairs

    pix = {"raw": "gbrp", "c23": "yuv420p", "c40": "yuv420p"}
    for i in ids:
        for c in pix:
            s = probe(os.path.join(out, "original_sequences/youtube", c, "videos", i + ".mp4"))
            assert (s["width"], s["height"], s["pix_fmt"], int(s["nb_read_frames"])) == (SIZE, SIZE, pix[c], FRAMES), s
        e = ldm[f"original_sequences/youtube/raw/frames/{i}/frame_{FRAMES - 1}"]
        assert (e["source_label"], e["target_label"], e["det_label"]) == (i, i, 0), e

    for _, (x, y) in pairs:
        for a_, b_ in ((x, y), (y, x)):
            source = decode(os.path.join(out, "original_sequences/youtube/raw/videos", a_ + ".mp4")).astype(int)
            for m in METHODS:
                name = f"{a_}_{b_}"
                base = os.path.join(out, "manipulated_sequences", m)
                for c in pix:
                    assert os.path.exists(os.path.join(base, c, "videos", name + ".mp4")), (m, c, name)
                assert probe(os.path.join(base, "masks/videos", name + ".mp4"))["pix_fmt"] == "gbrp"
                fake = decode(os.path.join(base, "raw/videos", name + ".mp4")).astype(int)
                mask = decode(os.path.join(base, "masks/videos", name + ".mp4"))
                assert fake.shape == source.shape == mask.shape, (fake.shape, source.shape, mask.shape)
                assert (mask[..., 0] == mask[..., 1]).all() and (mask[..., 0] == mask[..., 2]).all(), "grey masks"
                m0 = mask[..., 0]
                changed = (fake != source).any(-1)
                assert not changed[m0 == 0].any(), f"{m} {name}: pixels changed outside the mask"
                assert changed[m0 >= 128].mean() > 0.8, f"{m} {name}: mask marks unchanged pixels"
                for t in range(FRAMES):
                    e = ldm[f"manipulated_sequences/{m}/raw/frames/{name}/frame_{t}"]
                    assert (e["source_label"], e["target_label"], e["det_label"]) == (a_, b_, 1), e
                    pts = np.array(e["landmark"])
                    assert pts.shape == (68, 2) and (pts >= 0).all() and (pts < SIZE).all(), pts
                    mouth = pts[48:68].mean(0).astype(int)
                    assert m0[t, mouth[1], mouth[0]] >= 200, (m, name, t, "mouth outside the mask")
                    if m != "NeuralTextures":
                        for eye in (pts[36:42].mean(0).astype(int), pts[42:48].mean(0).astype(int)):
                            assert m0[t, eye[1], eye[0]] >= 200, (m, name, t, "eye outside the mask")

    # The dataset reader (fstm extract, when this build has it) takes the tree and ldm.json as they are.
    if "\n  extract" in subprocess.run([a.fstm, "--help"], capture_output=True, text=True).stdout:
        faces = os.path.join(a.work, "faces")
        r = subprocess.run([a.fstm, "extract", "--data", out, "--out", faces, "--frames", str(FRAMES), "--size", "32",
                            "--landmarks", os.path.join(out, "ldm.json"), "--compression", "raw,c40"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        index = json.load(open(os.path.join(faces, "index.json")))
        assert index["counts"]["skipped_frames"] == 0 and index["counts"]["skipped_videos"] == 0, index["counts"]
        assert index["counts"]["frames"] == 2 * (IDS + 5 * IDS) * FRAMES, index["counts"]

    shutil.rmtree(os.path.join(out, "manipulated_sequences"))
    r = run(a.fstm, "--out", out, "--force", "--no-compress", "--methods", "FaceSwap", *small)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(os.path.join(out, "manipulated_sequences"))) == ["FaceSwap"]
    assert not os.path.exists(os.path.join(out, "original_sequences/youtube/c23"))
    assert len(json.load(open(os.path.join(out, "ldm.json")))) == 2 * IDS * FRAMES

    sheet = os.path.join(a.work, "sheet.png")
    r = run(a.fstm, "--contact-sheet", sheet, "--size", "64", "--quiet")
    assert r.returncode == 0 and os.path.getsize(sheet) > 1000, r.stderr
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
