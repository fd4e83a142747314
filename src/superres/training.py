"""Training EDSR on random aligned patches: `train(TrainConfig(...))` -> run folder with checkpoints and weights.

A run folder holds config.json, log.csv, last.pt (resumable checkpoint, written atomically) and
best.safetensors (the weights with the best validation Y-PSNR so far).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from superres.data import Pair, PatchSampler, list_images, load_pairs
from superres.errors import ConfigError
from superres.metrics import psnr
from superres.models.checkpoints import load_weights, init_from_x2, save_weights
from superres.models.edsr import EDSR
from superres.models.registry import preset_config

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # folders of HR images
    scale: int = 2
    preset: str = "edsr-small"
    n_feats: int | None = None  # overrides of the preset
    n_resblocks: int | None = None
    res_scale: float | None = None
    n_colors: int = 3
    iters: int = 10_000
    batch_size: int = 16
    patch_size: int = 48  # LR side
    lr: float = 1e-4
    warmup_iters: int = 0
    min_lr: float = 0.0
    loss: str = "l1"
    holdout: int = 10  # training images kept out for validation
    val_every: int = 1000
    checkpoint_every: int = 1000
    out: str = "runs/run"
    init: str | None = None  # x2 weights to start x3/x4 from
    bf16: bool = True
    channels_last: bool = True
    threads: int | None = None
    seed: int = 0

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("no training data: give at least one folder of HR images")
        for name, value, low in (("iters", self.iters, 1), ("batch_size", self.batch_size, 1),
                                 ("patch_size", self.patch_size, 8), ("val_every", self.val_every, 1),
                                 ("checkpoint_every", self.checkpoint_every, 1), ("holdout", self.holdout, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"loss must be 'l1' or 'l2', got '{self.loss}'")


def split_holdout(paths: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out) images: a fixed pseudo-random choice that does not depend on the run's seed."""
    if len(paths) <= holdout:
        raise ConfigError(f"found {len(paths)} images; need more than holdout={holdout}")
    order = np.random.default_rng(12345).permutation(len(paths))
    return [paths[i] for i in order[holdout:]], [paths[i] for i in order[:holdout]]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at step `iters`."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    t = (step - cfg.warmup_iters) / max(1, cfg.iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def build_model(cfg: TrainConfig) -> EDSR:
    overrides = {k: v for k, v in (("n_feats", cfg.n_feats), ("n_resblocks", cfg.n_resblocks),
                                   ("res_scale", cfg.res_scale)) if v is not None}
    config = preset_config(cfg.preset, scale=cfg.scale, n_colors=cfg.n_colors, **overrides)
    if cfg.init:
        source = load_weights(cfg.init)
        if source.config.n_feats != config.n_feats or source.config.n_resblocks != config.n_resblocks:
            raise ConfigError(f"--init weights are {source.config.n_resblocks}x{source.config.n_feats}, "
                              f"the model is {config.n_resblocks}x{config.n_feats}")
        return init_from_x2(source, cfg.scale)
    return EDSR(config)


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in 0..255"""
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()


@torch.inference_mode()
def validate(model: EDSR, pairs: list[Pair], scale: int) -> float:
    """Mean Y-PSNR (shave = scale) over whole held-out images, fp32."""
    model.eval()
    scores = []
    for p in pairs:
        lr = p.lr if p.lr.ndim == 3 else p.lr[..., None]
        sr = model(to_tensor(lr[None]))[0].permute(1, 2, 0).numpy()
        sr = sr if p.hr.ndim == 3 else sr[..., 0]
        scores.append(psnr(sr, p.hr, shave=scale, channel="y"))
    model.train()
    return float(np.mean(scores))


def _atomic_save(obj: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train until cfg.iters; resumes from out/last.pt if present. Returns a summary dict."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_paths, val_paths = split_holdout([p for d in cfg.data for p in list_images(d)], cfg.holdout)
    log.info("loading %d training and %d validation images", len(train_paths), len(val_paths))
    train_pairs = load_pairs(train_paths, cfg.scale, cfg.n_colors)
    val_pairs = load_pairs(val_paths, cfg.scale, cfg.n_colors)
    for p in train_pairs + val_pairs:
        if p.hr.ndim == 2:
            p.hr, p.lr = p.hr[..., None], p.lr[..., None]
    sampler = PatchSampler(train_pairs, cfg.scale, cfg.patch_size, cfg.batch_size, seed=cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    step, best = 0, -1.0
    ckpt_path = out / "last.pt"
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_psnr"]
        sampler.rng.bit_generator.state = json.loads(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    log_file = (out / "log.csv").open("a", newline="")
    writer = csv.writer(log_file)

    def checkpoint() -> None:
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                      "best_psnr": best, "sampler_rng": json.dumps(sampler.rng.bit_generator.state),
                      "torch_rng": torch.get_rng_state(), "config": asdict(cfg)}, ckpt_path)

    t0, last_t, running = time.time(), time.time(), 0.0
    while step < cfg.iters:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        lr_np, hr_np = sampler.sample()
        lr_t, hr_t = to_tensor(lr_np), to_tensor(hr_np)
        if cfg.channels_last:
            lr_t, hr_t = lr_t.contiguous(memory_format=torch.channels_last), hr_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            sr = model(lr_t)
        loss = loss_fn(sr.float(), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running += loss.item()
        if step % cfg.val_every == 0 or step == cfg.iters:
            score = validate(model, val_pairs, cfg.scale)
            rate = cfg.val_every / (time.time() - last_t)
            last_t = time.time()
            writer.writerow([step, f"{running / cfg.val_every:.4f}", f"{learning_rate(cfg, step):.3e}", f"{score:.3f}",
                             f"{time.time() - t0:.0f}"])
            log_file.flush()
            if progress:
                print(f"step {step}/{cfg.iters} loss {running / cfg.val_every:.3f} val {score:.3f} dB "
                      f"({rate:.1f} it/s)", flush=True)
            running = 0.0
            if score > best:
                best = score
                save_weights(model, out / "best.safetensors",
                             {"steps": step, "val_psnr_y": round(score, 3), "train_images": len(train_pairs)})
        if step % cfg.checkpoint_every == 0 or step == cfg.iters:
            checkpoint()
    log_file.close()
    return {"steps": step, "best_psnr": best, "seconds": time.time() - t0}
