"""Training and measuring the damage estimator (imaging.damage.DamageNet) on the `files` degradations.

    python -m superres.training.damage --data ../shared/data/train/T91 ../shared/data/train/BSD200 \\
        ../shared/data/train/BSDS500-test --holdout 12 --out /work/runs/damage
    python -m superres.training.damage --data ... --preset mix:clean=0.15,web=0.40,camera=0.25,lens=0.10,real=0.10 \\
        --out DIR    # the bundled damage.safetensors: trained on the first version of `files`, before `grain`
    python -m superres.training.damage --data ... --weights src/superres/weights/damage.safetensors --out DIR
    python -m superres.training.damage --data ... --chain --patches 40000 --steps 6000 --seed 1 --out DIR
        # the bundled chain.safetensors (--chain --weights ... measures it)

Patches: 64x64 LR crops made from random HR crops of the training images (x2, x3 or x4) by the `files` mixture (or
--preset), each with the condition the degradation reports as its label. The held-out images (the photo model's,
the same split) are degraded whole by each kind, once (seed 0), and the report gives, per kind, the mean absolute
error of the estimate in JPEG quality units (the jpeg condition times 100 - JPEG_ONE) and in noise sigma (the
noise condition times NOISE_ONE), beside the hand-made noise measure alone and the network's own noise answer.
With --chain, the chain detector instead (make_chain_patches), and the report lists the detector's chance on each
held-out image, per kind and scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from superres.imaging.damage import (
    CHAIN_WEIGHTS,
    CROP,
    WEIGHTS,
    DamageNet,
    chain_chance,
    crops,
    estimate_damage,
    pixel_readings,
)
from superres.imaging.datasets import Sample
from superres.imaging.degrade import (
    FILES_MIX,
    JPEG_ONE,
    NOISE_ONE,
    degrade,
    parse_preset,
)

KINDS = (
    "clean",
    "web",
    "camera",
    "grain",
    "lens",
    "real",
    "jpeg:90",
    "jpeg:75",
    "jpeg:50",
    "noise:5",
    "noise:10",
    "noise:15",
)


# the chain detector's negatives: the rest of the `files` mixture, and soft camera-resolution pictures
NOT_CHAIN = "mix:" + ",".join(f"{name}={weight}" for name, weight in FILES_MIX if name != "real")
SOFT_SHARE = 0.25  # of the negatives


def _hr_crops(samples: list[Sample], n: int, rng: np.random.Generator, scales: tuple[int, ...]):
    """n random (HR crop, scale): each crop CROP * scale square, from a random sample."""
    usable = [s for s in samples if min(s.hr.shape[:2]) >= CROP * max(scales)]
    for _ in range(n):
        hr = usable[int(rng.integers(len(usable)))].hr
        s = scales[int(rng.integers(len(scales)))]
        side = CROP * s
        y, x = int(rng.integers(hr.shape[0] - side + 1)), int(rng.integers(hr.shape[1] - side + 1))
        yield np.ascontiguousarray(hr[y : y + side, x : x + side]), s


def make_patches(
    samples: list[Sample], n: int, seed: int, preset: str = "files", scales: tuple[int, ...] = (2, 3, 4)
) -> tuple[np.ndarray, np.ndarray]:
    """n LR crops (n, CROP, CROP, 3) uint8 degraded by the preset from random HR crops of the samples, and
    their conditions (n, 2) float32."""
    rng = np.random.default_rng(seed)
    degradation = parse_preset(preset)
    crops, labels = [], []
    for hr, s in _hr_crops(samples, n, rng, scales):
        out = degradation.apply(hr, s, rng)
        crops.append(out.pixels)
        labels.append(out.condition)
    return np.stack(crops), np.array(labels, dtype=np.float32)


def make_chain_patches(
    samples: list[Sample], n: int, seed: int, scales: tuple[int, ...] = (2, 3, 4)
) -> tuple[np.ndarray, np.ndarray]:
    """n LR crops, half through Real-ESRGAN's chain (label 1), half not (label 0: NOT_CHAIN, or with chance
    SOFT_SHARE a `soft` picture), and their labels (n, 1) float32."""
    rng = np.random.default_rng(seed)
    real, soft, others = parse_preset("real"), parse_preset("soft"), parse_preset(NOT_CHAIN)
    crops, labels = [], []
    for hr, s in _hr_crops(samples, n, rng, scales):
        chain = rng.random() < 0.5
        if chain:
            out = real.apply(hr, s, rng)
        else:
            out = (soft if rng.random() < SOFT_SHARE else others).apply(hr, s, rng)
        crops.append(out.pixels)
        labels.append([float(chain)])
    return np.stack(crops), np.array(labels, dtype=np.float32)


def train_damage_net(
    patches: np.ndarray, labels: np.ndarray, steps: int, seed: int = 0, batch: int = 64, lr: float = 1e-3
) -> DamageNet:
    """A DamageNet with one output per label column fitted to the patches (Adam, cosine schedule, random
    quarter turns and flips, which keep the 8x8 grid): by L1 on damage labels, by binary cross-entropy on one
    column of 0/1 labels (the chain detector). The damage network's noise answer ends at 0 for everything
    (most labels' noise is 0, L1's optimum is the median, and the sigmoid's gradient vanishes there), so
    imaging.damage reads the noise with the hand-made measure instead."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = DamageNet(outputs=labels.shape[1])
    loss_fn = F.binary_cross_entropy if labels.shape[1] == 1 else F.l1_loss
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255
    y_all = torch.from_numpy(labels)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        index = torch.from_numpy(rng.integers(len(x_all), size=batch))
        x = torch.rot90(x_all[index], int(rng.integers(4)), dims=(2, 3))
        x = x.flip(3) if rng.random() < 0.5 else x
        loss = loss_fn(net(x), y_all[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def measure(net: DamageNet, samples: list[Sample], scale: int = 2, kinds: tuple[str, ...] = KINDS) -> dict:
    """Per kind: the mean absolute error on the samples' HR degraded whole (seed 0, pixels only: no file's
    tables) of the network's quality ("quality"), of the noise sigma that estimate_damage reads ("sigma": the
    hand-made measure less its floor), of the hand-made measure itself ("sigma_handmade") and of the
    network's own noise answer ("sigma_net"), and the mean hand-made reading ("reading"); as `--denoise auto`
    reads, without the chain detector."""
    report = {}
    for kind in kinds:
        errors: dict[str, list[float]] = {
            "quality": [],
            "sigma": [],
            "sigma_handmade": [],
            "sigma_net": [],
            "reading": [],
        }
        for s in samples:
            out = degrade(s.hr, scale, kind, seed=0)
            jpeg, noise, reading, _ = estimate_damage(out.pixels, None, net)
            true_sigma = out.condition[1] * NOISE_ONE
            batch = torch.from_numpy(crops(out.pixels)).permute(0, 3, 1, 2).float() / 255
            with torch.inference_mode():
                net_sigma = float(net(batch)[:, 1].median()) * NOISE_ONE
            errors["quality"].append(abs(jpeg - out.condition[0]) * (100 - JPEG_ONE))
            errors["sigma"].append(abs(noise * NOISE_ONE - true_sigma))
            errors["sigma_handmade"].append(abs(reading - true_sigma))
            errors["sigma_net"].append(abs(net_sigma - true_sigma))
            errors["reading"].append(reading)
        report[kind] = {k: round(float(np.mean(v)), 2) for k, v in errors.items()}
    return report


def measure_chain(net: DamageNet, held_out: dict[int, list[Sample]]) -> dict:
    """Per scale and kind (KINDS and `soft`), the chain detector's median chance on each held-out sample's HR
    degraded whole (seed 0; the samples of that scale, as benchmarks/chain_cutoff.py reads them): the chances,
    sorted, so a report shows how far each kind is from any cut-off."""
    report: dict = {}
    for scale, samples in held_out.items():
        for kind in (*KINDS, "soft"):
            chances = []
            for s in samples:
                out = degrade(s.hr, scale, kind, seed=0)
                chances.append(round(chain_chance(out.pixels, net) or 0.0, 3))
            report[f"x{scale} {kind}"] = sorted(chances)
    return report


def clean_readings(folders: list[str]) -> int:
    """The 50th to 98th percentiles of the jpeg and noise readings (after the floors, before the dead zones)
    on the clean LR at x2 of every image in the folders: where the dead zones of imaging.damage come from."""
    from superres.training.config import TrainConfig
    from superres.training.loop import load_training_data

    train, _ = load_training_data(TrainConfig(data=folders, scale=[2], holdout=0))
    values = np.array([pixel_readings(s.lr)[:2] for s in train[2]])
    print(f"{len(values)} images' clean LR at x2: percentile, jpeg reading, noise reading")
    for q in (50, 75, 90, 95, 98):
        print(f"{q:>3}  {np.percentile(values[:, 0], q):.3f}  {np.percentile(values[:, 1], q):.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import load_file, save_file

    from superres.training.config import TrainConfig
    from superres.training.loop import load_training_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="training image folders")
    parser.add_argument("--holdout", type=int, default=12, help="images held out (the photo model's split)")
    parser.add_argument("--patches", type=int, default=24000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="files", help="the degradation the training crops are made by")
    parser.add_argument("--weights", help="measure these weights on the held-out images instead of training")
    parser.add_argument(
        "--chain", action="store_true", help="the chain detector (chain.safetensors) instead of the damage network"
    )
    parser.add_argument(
        "--clean-readings",
        action="store_true",
        help="print the percentiles of the bundled estimator's readings on every image's clean LR at x2",
    )
    parser.add_argument("--out", required=True, help="folder for damage.safetensors and report.json")
    args = parser.parse_args(argv)
    if args.clean_readings:
        return clean_readings(args.data)
    scales = [2, 3, 4] if args.chain else [2]
    train, held_out = load_training_data(TrainConfig(data=args.data, scale=scales, holdout=args.holdout))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"held_out_images": [s.name for s in held_out[2]]}
    name = CHAIN_WEIGHTS if args.chain else WEIGHTS
    if args.weights:
        net = DamageNet(outputs=1 if args.chain else 2)
        net.load_state_dict(load_file(args.weights), strict=True)
        net.eval()
        report["weights"] = args.weights
    else:
        t0 = time.time()
        if args.chain:
            patches, labels = make_chain_patches(train[2], args.patches, args.seed)
        else:
            patches, labels = make_patches(train[2], args.patches, args.seed, args.preset)
        t1 = time.time()
        net = train_damage_net(patches, labels, args.steps, args.seed)
        t2 = time.time()
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / name))
        report.update(
            preset="chain: real against " + NOT_CHAIN + f" and soft ({SOFT_SHARE})" if args.chain else args.preset,
            patches=args.patches,
            steps=args.steps,
            seconds={"patches": round(t1 - t0), "training": round(t2 - t1)},
        )
    if args.chain:
        report["chances"] = measure_chain(net, held_out)
        for key, chances in report["chances"].items():
            print(f"{key:<16} {' '.join(f'{c:.2f}' for c in chances)}")
    else:
        report["mae_at_x2"] = measure(net, held_out[2])
        print(json.dumps(report["mae_at_x2"], indent=2))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
