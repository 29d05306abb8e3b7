"""fstm train / eval / predict end to end on a tiny generated index (tests/fst_testdata.py):

- an FST run from --config plus flags, stopped with SIGINT mid-run: exit 130, a loadable
  last.safetensors whose det logits (fstm predict) match a PyTorch FST model (tests/fst_torch.py)
  given the same state dict; --resume finishes the run (metrics.jsonl has every epoch once);
- a det run killed with SIGKILL while it writes checkpoints: last.safetensors stays loadable by the
  reference safetensors reader, fstm predict and fstm eval, and --resume continues it;
- fstm eval --json per method and perturbation against scikit-learn on `fstm predict`
  probabilities of the same PNGs (perturbed in numpy as DeeperForensics defines contrast);
- bad input: exit 1 with the file named, exit 2 for a bad flag.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image

import fst_testdata as D
import fstm_testlib as T
from fst_torch import FstModel

try:
    from sklearn.metrics import average_precision_score, roc_auc_score
except ImportError as e:
    print(f"skipped: {e} (apt-get install python3-sklearn)")
    sys.exit(T.SKIP)

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def fstm(a, args, expect=0, **kw):
    r = subprocess.run([a.fstm] + [str(x) for x in args], capture_output=True, text=True, **kw)
    if r.returncode != expect:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit(f"fstm {args[0]} exited {r.returncode}, expected {expect}")
    return r


def wait_for(path, proc, seconds=900):
    t0 = time.time()
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise SystemExit(f"the run ended (exit {proc.returncode}) before writing {path}: {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > seconds:
            proc.kill()
            raise SystemExit(f"{path} did not appear in {seconds} s")
        time.sleep(0.05)


def frames_of(index_path, split):
    """(png path, det, method, video) of the frames of a split, in index order."""
    ix = json.load(open(index_path))
    root = os.path.dirname(index_path)
    out = []
    for vi, v in enumerate(ix["videos"]):
        if v["split"] == split:
            for f in v["frames"]:
                out.append((os.path.join(root, f["png"]), v["det"], v["method"], vi))
    return out


def torch_logits(model, pngs):
    xs = [(torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float() / 255 - MEAN) / STD
          for p in pngs]
    with torch.no_grad():
        return model(torch.stack(xs))


def main():
    a = T.args()
    torch.set_num_threads(2)
    checker = T.Checker()

    ok = checker.ok

    index = D.make_index(os.path.join(a.work, "data"), test_pairs=((106, 107),), methods=("Deepfakes", "FaceSwap"))
    env = dict(os.environ, FSTM_PROGRESS="0", OMP_NUM_THREADS="2")

    # ---- FST: config + flags, SIGINT, parity with PyTorch, resume ----------------------------------
    run = os.path.join(a.work, "fst_run")
    cfg = os.path.join(a.work, "fst.json")
    with open(cfg, "w") as f:
        json.dump({"model": "fst", "batch": 4, "lr": 1e-3, "fst_hidden": 16, "epochs": 3, "val_batch": 8,
                   "seed": 3, "data": "overridden below"}, f)
    if os.path.exists(run):
        subprocess.run(["rm", "-rf", run], check=True)
    cmd = [a.fstm, "train", "--config", cfg, "--data", index, "--out", run, "--checkpoint-every", "1", "--threads", "2",
           "--compression", "c23", "--no-flip"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(os.path.join(run, "last.safetensors"), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=900)
    ok("SIGINT exits with 130", proc.returncode == 130, f"exit {proc.returncode}: {err[-500:]}")
    ok("SIGINT names the checkpoint and --resume", "last.safetensors" in err and "--resume" in err, err[-500:])
    saved = json.load(open(os.path.join(run, "config.json")))
    ok("config.json: --config values and flags", saved["batch"] == 4 and saved["data"] == index and
       saved["model"] == "fst" and saved["l_int"] == 100.0 and saved["compressions"] == ["c23"] and
       saved["flip"] is False and saved["int_bound"] == "logistic", json.dumps(saved))

    tensors, meta = T.st_helpers.read_spec(os.path.join(run, "last.safetensors"))[:2]
    tensors = dict(tensors)
    ok("checkpoint metadata", meta["model"] == "fst" and meta["arch"] == "resnet18" and meta["num_classes"] == "2"
       and meta["identities"] == "4" and meta["input_size"] == "32", json.dumps(meta)[:500])
    model = FstModel("resnet18", identities=4, head="mlp", hidden=16)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(state)  # strict: the names are PyTorch's
    model.eval()
    test_frames = frames_of(index, "test")
    pngs = [p for p, _, _, _ in test_frames]
    r = fstm(a, ["predict", "--model", os.path.join(run, "last.safetensors"), "--json", "--batch", 5] + pngs, env=env)
    got = torch.tensor([o["logits"] for o in json.loads(r.stdout)])
    checker.close("fst det logits (fstm predict vs PyTorch)", got, torch_logits(model, pngs), 1e-4)

    r = fstm(a, ["train", "--out", run, "--resume", "--threads", "2"], env=env)
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    ok("resume completes every epoch once", [l["epoch"] for l in lines] == [1, 2, 3], str([l["epoch"] for l in lines]))
    ok("metrics have the FST loss terms and validation",
       all(set(l["losses"]) == {"det", "source", "target", "interaction"} and "val_auc" in l for l in lines))

    # ---- det: SIGKILL while checkpointing ------------------------------------------------------------
    det = os.path.join(a.work, "det_run")
    if os.path.exists(det):
        subprocess.run(["rm", "-rf", det], check=True)
    cmd = [a.fstm, "train", "--model", "det", "--data", index, "--out", det, "--batch", 4, "--lr", "1e-3",
           "--epochs", 50, "--checkpoint-every", 1, "--threads", 2, "--seed", 1]
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    last = os.path.join(det, "last.safetensors")
    wait_for(last, proc)
    first = os.path.getmtime(last)
    t0 = time.time()
    while os.path.getmtime(last) == first and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.02)  # the second checkpoint: kill while the next ones are being written
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    tensors, meta = T.st_helpers.read_spec(last)[:2]
    ok("after SIGKILL last.safetensors is complete", len(tensors) > 100 and "trainer" in meta, str(len(tensors)))
    killed_step = json.loads(meta["trainer"])["step"]
    r = fstm(a, ["predict", "--model", last, "--json", pngs[0]], env=env)
    ok("fstm predict loads it", "logits" in json.loads(r.stdout)[0])
    r = fstm(a, ["train", "--out", det, "--resume", "--threads", 2, "--epochs",
                 json.loads(meta["trainer"])["epoch"] + 1], env=env)
    final = json.loads(T.st_helpers.read_spec(last)[1]["trainer"])
    ok("--resume continues the killed run", final["step"] > killed_step and final["batch"] == 0,
       f"killed at step {killed_step}, now {final}")

    # ---- eval against scikit-learn on predict's probabilities ---------------------------------------
    best = os.path.join(det, "best.safetensors")
    r = fstm(a, ["eval", "--model", best, "--data", index, "--split", "test", "--json", "--perturb",
                 "none,contrast:2", "--batch", 3], env=env)
    report = json.loads(r.stdout)
    rows = {(row["perturbation"], row["method"]): row for row in report["rows"]}
    ok("eval rows per method and perturbation", set(rows) == {(p, m) for p in ("none", "contrast:2")
                                                              for m in ("Deepfakes", "FaceSwap", "all")}, str(rows.keys()))
    contrast_dir = os.path.join(a.work, "contrast")
    os.makedirs(contrast_dir, exist_ok=True)
    for pert in ("none", "contrast:2"):
        paths = pngs
        if pert != "none":  # DeeperForensics CC: uint8(x * 0.725)
            paths = []
            for p in pngs:
                q = os.path.join(contrast_dir, os.path.basename(p))
                Image.fromarray((np.asarray(Image.open(p)).astype(np.float32) * 0.725).astype(np.uint8)).save(q)
                paths.append(q)
        probs = [o["probs"][1] for o in json.loads(fstm(a, ["predict", "--model", best, "--json"] + paths, env=env).stdout)]
        for method in ("Deepfakes", "FaceSwap", "all"):
            sel = [i for i, (_, d, m, _) in enumerate(test_frames) if d == 0 or method in ("all", m)]
            y = np.array([test_frames[i][1] for i in sel])
            s = np.array([probs[i] for i in sel])
            row = rows[(pert, method)]
            videos = {}
            for i in sel:
                videos.setdefault(test_frames[i][3], []).append(probs[i])
            vids = sorted(videos)
            vy = [test_frames[[i for i in sel if test_frames[i][3] == v][0]][1] for v in vids]
            expected = {"auc": roc_auc_score(y, s), "ap": average_precision_score(y, s),
                        "acc": float(np.mean((s > 0.5) == y)),
                        "video_auc": roc_auc_score(vy, [np.mean(videos[v]) for v in vids])}
            for key, value in expected.items():
                # probabilities agree to ~1e-6 between the two paths; rankings (AUC) only flip on near-ties
                checker.close(f"eval {pert} {method} {key}", torch.tensor([row[key]]), torch.tensor([value]), 1e-5)
            ok(f"eval {pert} {method} counts", row["real_frames"] == int(np.sum(y == 0)) and
               row["fake_frames"] == int(np.sum(y == 1)))

    # ---- --init: torchvision weights into both encoders, the 1000-class head ignored ------------------
    torch.manual_seed(4)
    imagenet = torchvision.models.resnet18()  # stands in for the ImageNet weights (same names and shapes)
    init = os.path.join(a.work, "resnet18_imagenet.safetensors")
    T.save_safetensors(init, imagenet.state_dict())
    init_run = os.path.join(a.work, "init_run")
    subprocess.run(["rm", "-rf", init_run], check=True)
    fstm(a, ["train", "--model", "fst", "--data", index, "--out", init_run, "--init", init, "--batch", 4,
             "--lr", "1e-12", "--max-steps", 1, "--threads", 2, "--val-split", ""], env=env)
    tensors = dict(T.st_helpers.read_spec(os.path.join(init_run, "last.safetensors"))[0])
    for enc in ("source_encoder", "target_encoder"):
        for name in ("conv1.weight", "layer3.1.conv2.weight", "layer4.0.downsample.0.weight"):
            checker.close(f"--init {enc}.{name}", tensors[f"{enc}.{name}"], imagenet.state_dict()[name], 1e-6)
        ok(f"--init leaves the {enc} identity head", tuple(tensors[f"{enc}.fc.weight"].shape) == (4, 512))
    # a fstm checkpoint of a det model (weights, optimizer state, metadata) initialises both encoders
    # too: identity pre-training on other people, then --init
    checkpoint = os.path.join(det, "last.safetensors")
    from_checkpoint = os.path.join(a.work, "init_from_checkpoint")
    subprocess.run(["rm", "-rf", from_checkpoint], check=True)
    fstm(a, ["train", "--model", "fst", "--data", index, "--out", from_checkpoint, "--init", checkpoint, "--batch",
             4, "--lr", "1e-12", "--max-steps", 1, "--threads", 2, "--val-split", ""], env=env)
    given = dict(T.st_helpers.read_spec(checkpoint)[0])
    ok("the checkpoint given to --init holds optimizer state", any(k.startswith("optimizer.") for k in given))
    tensors = dict(T.st_helpers.read_spec(os.path.join(from_checkpoint, "last.safetensors"))[0])
    for enc in ("source_encoder", "target_encoder"):
        checker.close(f"--init from a checkpoint {enc}.layer2.0.conv1.weight", tensors[f"{enc}.layer2.0.conv1.weight"],
                      given["layer2.0.conv1.weight"], 1e-6)
    r = fstm(a, ["train", "--model", "det", "--arch", "resnet34", "--data", index, "--out",
                 os.path.join(a.work, "init34"), "--init", init, "--batch", 4], expect=1, env=env)
    ok("--init with weights of another architecture names the file", init in r.stderr and "layer1.2" in r.stderr,
       r.stderr[-400:])

    # ---- bad input -----------------------------------------------------------------------------------
    missing = os.path.join(a.work, "nope.json")
    r = fstm(a, ["eval", "--model", best, "--data", missing], expect=1, env=env)
    ok("eval names a missing index", missing in r.stderr, r.stderr)
    r = fstm(a, ["train", "--model", "det", "--data", missing, "--out", os.path.join(a.work, "x")], expect=1, env=env)
    ok("train names a missing index", missing in r.stderr, r.stderr)
    r = fstm(a, ["train", "--out", run, "--resume", "--arch", "resnet34"], expect=1, env=env)
    ok("resume with another architecture", "resnet18" in r.stderr and "resnet34" in r.stderr, r.stderr)
    fstm(a, ["train", "--model", "detector", "--data", index, "--out", run], expect=2, env=env)
    checker.finish()


if __name__ == "__main__":
    main()
