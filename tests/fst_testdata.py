"""A tiny FST-labelled face index for the Python tests of training and evaluation (the same scheme
as tests/fst_test_data.h): identity pairs (a, b) give the reals a, b and the fakes a_b, b_a of each
method. A frame of video s_t shows the scene of s (background colour by s) with the face of t (a
centre patch coloured by t); fakes carry a faint checkerboard on the face."""
import json
import os

import numpy as np
from PIL import Image


def colour(i, c):
    return (i * 53 + c * 97) % 200 + 30


def frame(scene, face, fake, size, rng):
    img = np.zeros((size, size, 3), np.int32)
    yy, xx = np.mgrid[0:size, 0:size]
    in_face = (np.abs(xx - size // 2) < size // 4) & (np.abs(yy - size // 2) < size // 3)
    for c in range(3):
        img[..., c] = np.where(in_face, colour(face, c), colour(scene, c))
    img += rng.integers(-10, 11, img.shape)
    if fake:
        img[..., :] += (in_face & ((xx + yy) % 2 == 0))[..., None] * 24
    return np.clip(img, 0, 255).astype(np.uint8)


def make_index(folder, train_pairs=((100, 101), (102, 103)), val_pairs=((104, 105),), test_pairs=(),
               methods=("Deepfakes",), compressions=("c23",), frames=2, size=32, seed=7):
    """Writes PNGs and folder/index.json (format fstm-face-index 1); returns the index path."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    videos, frame_list = [], []
    split_of_id = {}
    for split, pairs in (("train", train_pairs), ("val", val_pairs), ("test", test_pairs)):
        for a, b in pairs:
            split_of_id.setdefault(str(a), split)
            split_of_id.setdefault(str(b), split)
    order = {"train": 0, "val": 1, "test": 2}
    identities = sorted(split_of_id, key=lambda i: (order[split_of_id[i]], i))
    cls = {i: k for k, i in enumerate(identities)}
    splits = {}
    for s in ("train", "val", "test"):
        ks = [cls[i] for i in identities if split_of_id[i] == s]
        if ks:
            splits[s] = [min(ks), max(ks) + 1]

    def add(method, comp, stem, split):
        original = method == "original"
        src, tgt = (stem, stem) if original else stem.split("_")
        rel = (f"original_sequences/youtube/{comp}/videos/{stem}.mp4" if original
               else f"manipulated_sequences/{method}/{comp}/videos/{stem}.mp4")
        fr = []
        for k in range(frames):
            png = f"{method}_{comp}_{stem}_{k}.png"
            Image.fromarray(frame(int(src), int(tgt), not original, size, rng)).save(os.path.join(folder, png))
            fr.append({"frame": k, "png": png})
        videos.append({"video": rel, "video_id": stem, "method": method, "compression": comp, "split": split,
                       "det": 0 if original else 1, "source": cls[src], "target": cls[tgt], "source_id": src,
                       "target_id": tgt, "frame_count": frames, "fps": 25.0, "frames": fr})

    for comp in compressions:
        for split, pairs in (("train", train_pairs), ("val", val_pairs), ("test", test_pairs)):
            for a, b in pairs:
                add("original", comp, str(a), split)
                add("original", comp, str(b), split)
                for m in methods:
                    add(m, comp, f"{a}_{b}", split)
                    add(m, comp, f"{b}_{a}", split)
    index = {"format": "fstm-face-index", "version": 1,
             "settings": {"data": "", "frames": frames, "size": size, "align": "box", "scale": 0.9,
                          "face_width": 80.0 * size / 224, "context": 1.0, "box_enlarge": 1.3, "upsample": 1,
                          "landmarks": "", "methods": list(methods), "compressions": list(compressions)},
             "identities": identities, "identity_splits": splits, "videos": videos, "skipped": [],
             "counts": {"videos": len(videos), "frames": len(videos) * frames, "skipped_videos": 0,
                        "skipped_frames": 0}}
    path = os.path.join(folder, "index.json")
    with open(path, "w") as f:
        json.dump(index, f)
    return path
