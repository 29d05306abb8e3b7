#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs of
each format, plus a few near-misses, so that the fuzzer starts inside the parsers rather than at
their first check. Run from anywhere; the files are committed, so this is only for changing them.
The video seeds need the ffmpeg program."""
import json
import os
import struct
import subprocess
import sys

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def safetensors_bytes(tensors, meta=None):
    header, data = {}, b""
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


NORM = {"mean": "[0.485, 0.456, 0.406]", "std": "[0.229, 0.224, 0.225]"}


def safetensors_seeds():
    meta = {"arch": "resnet18", "num_classes": "2", "input_size": "64", **NORM}
    with open(out("safetensors", "two_tensors"), "wb") as f:
        f.write(safetensors_bytes({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                                   "n": ("I64", [], struct.pack("<q", 7))}, meta))
    with open(out("safetensors", "all_dtypes"), "wb") as f:
        f.write(safetensors_bytes({"a": ("BF16", [3], b"\x80\x3f" * 3), "b": ("U8", [2, 1], b"\x01\x02"),
                                   "c": ("F16", [1], b"\x00\x3c"), "d": ("I32", [1], b"\x05\0\0\0")}))
    with open(out("safetensors", "empty"), "wb") as f:
        f.write(safetensors_bytes({}))


def checkpoint_seeds():
    seeds = {
        "det.json": {"arch": "resnet18", "num_classes": "2", "model": "det", "input_size": "64", **NORM},
        "fst.json": {"arch": "resnet18", "num_classes": "2", "model": "fst", "identities": "3", "fst_head": "mlp",
                     "fst_hidden": "128", "identity_names": '["000", "001", "002"]'},
        "target.json": {"arch": "efficientnet_b3", "num_classes": "4", "model": "target", "identities": "4"},
    }
    for name, meta in seeds.items():
        with open(out("checkpoint_metadata", name), "w") as f:
            json.dump(meta, f)


def landmark_seeds():
    pts = [[10 + i, 20 + i * 0.5] for i in range(68)]
    seeds = {
        "./images/original_sequences/youtube/c23/frames/000/frame_0":
            {"landmark": pts, "source_label": "000", "target_label": "000", "det_label": 0},
        "manipulated_sequences/Deepfakes/c23/frames/000_001/frame_3":
            {"landmark": pts[:5], "source_label": 0, "target_label": 1, "det_label": "1"},
    }
    with open(out("landmarks", "two.json"), "w") as f:
        json.dump(seeds, f)


def face_index_seeds():
    video = {"video": "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4", "video_id": "000_001",
             "method": "Deepfakes", "compression": "c23", "split": "train", "det": 1, "source": 0, "target": 1,
             "source_id": "000", "target_id": "001", "frame_count": 8, "fps": 25.0,
             "frames": [{"frame": 0, "png": "faces/Deepfakes/c23/000_001/0000.png",
                         "points": [[20, 25], [44, 25], [32, 36], [22, 46], [42, 46]],
                         "mask_png": "faces/Deepfakes/c23/000_001/0000_mask.png"}]}
    real = dict(video, video="original_sequences/youtube/c23/videos/000.mp4", video_id="000", method="original",
                det=0, target=0, target_id="000", frames=[{"frame": 4, "png": "faces/original/c23/000/0004.png"}])
    index = {"format": "fstm-face-index", "version": 1,
             "settings": {"data": "ffpp", "frames": 8, "size": 64, "align": "landmarks", "scale": 0.9,
                          "face_width": 22.857143, "methods": ["Deepfakes"], "compressions": ["c23"]},
             "identities": ["000", "001"], "identity_splits": {"train": [0, 2]},
             "videos": [real, video], "skipped": [{"path": "x.mp4", "frame": -1, "reason": "unreadable"}]}
    with open(out("face_index", "small.json"), "w") as f:
        json.dump(index, f)


def image_seeds():
    im = Image.new("RGB", (9, 7), (200, 30, 60))
    for i in range(9):
        im.putpixel((i, i % 7), (i * 20, 255 - i * 20, 0))
    im.save(out("image", "rgb.png"))
    im.save(out("image", "rgb.jpg"), quality=80)
    im.save(out("image", "rgb.bmp"))
    Image.new("L", (5, 3), 90).save(out("image", "grey.png"))
    Image.new("RGBA", (4, 4), (1, 2, 3, 4)).save(out("image", "rgba.png"))
    Image.new("RGB", (8, 8), (10, 200, 30)).save(out("image", "progressive.jpg"), progressive=True, quality=50)
    im.convert("P").save(out("image", "palette.png"))


def video_seeds():
    for name, codec in (("h264_raw.mp4", ["-c:v", "libx264rgb", "-crf", "0"]),
                        ("h264_c40.mp4", ["-c:v", "libx264", "-crf", "40", "-pix_fmt", "yuv420p"]),
                        ("mpeg4.avi", ["-c:v", "mpeg4"])):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=16x16:rate=5",
                        "-frames:v", "3", *codec, out("video", name)], check=True)


def ffpp_scan_seeds():
    seeds = {
        "small.txt": ["original_sequences/youtube/c23/videos/000.mp4",
                      "original_sequences/youtube/c23/videos/001.mp4",
                      "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
                      "manipulated_sequences/FaceSwap/raw/videos/001_000.mp4",
                      "manipulated_sequences/NeuralTextures/c40/videos/",
                      'splits/train.json=[["000", "001"]]', "splits/val.json=[]", "splits/test.json=[]"],
        "bad_names.txt": ["original_sequences/youtube/c23/videos/0a0.mp4",
                          "manipulated_sequences/Deepfakes/c23/videos/000.mp4",
                          "manipulated_sequences/Face2Face/c23/videos/000_001_002.mp4",
                          'splits/train.json={"x": 1}'],
    }
    for name, lines in seeds.items():
        with open(out("ffpp_scan", name), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    for make in (safetensors_seeds, checkpoint_seeds, landmark_seeds, face_index_seeds, image_seeds, video_seeds,
                 ffpp_scan_seeds):
        make()
    print("seeds written under", os.path.join(HERE, "corpus"), file=sys.stderr)
