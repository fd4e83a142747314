"""Training EDSR on random aligned patches: `train(TrainConfig(...))` -> a run folder.

The run folder holds config.json (the resolved settings), log.csv, last.pt (the resumable checkpoint:
model, optimizer, EMA, step, best score, random states of torch and of every rank's patch sampler;
written atomically) and best.safetensors (the weights with the best validation Y-PSNR, EMA weights
when EMA is on). The learning rate is a pure function of the step, so the step is the schedule's state.

Runs on CPU (bf16 autocast, channels_last), one GPU, or many through torchrun (DistributedDataParallel:
gloo on CPU, NCCL on GPU; each rank samples its own patches; rank 0 alone validates, logs and writes).
"""

from __future__ import annotations

import copy
import csv
import datetime
import json
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from superres.imaging.datasets import Sample, find_dataset, load_samples, load_samples_at
from superres.imaging.degrade import degrade, parse_preset
from superres.training.patches import DevicePatchSampler, MultiScaleSampler, PatchSampler
from superres.errors import ConfigError
from superres.imaging.files import atomic_path, write_text
from superres.evaluation.metrics import psnr
from superres.models.base import SRNet
from superres.models.checkpoints import init_from, load_weights, save_weights
from superres.models.registry import create_model
from superres.training.config import TrainConfig, learning_rate, split_holdout

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- pieces


def build_model(cfg: TrainConfig) -> SRNet:
    """The network to train: the preset at cfg.scale, started from cfg.init weights where given."""
    model = create_model(cfg.preset, scale=cfg.scale, n_colors=cfg.n_colors, **cfg.overrides())
    if cfg.init:
        sources = [load_weights(path) for path in cfg.init]
        copied = init_from(model, sources)
        if not any(k.startswith("body.") for k in copied):
            shapes = "; ".join(s.describe() for s in sources)
            raise ConfigError(
                f"--init weights ({shapes}) do not fit the model ({model.describe()}): no body weights could be copied"
            )
        log.info("initialised %d of %d tensors from %s", len(copied), len(model.state_dict()), ", ".join(cfg.init))
    return model


def load_training_data(cfg: TrainConfig) -> tuple[dict[int, list[Sample]], dict[int, list[Sample]]]:
    """(training, validation) samples per scale, every LR made (or read) once."""
    train_samples: dict[int, list[Sample]] = {}
    val: dict[int, list[Sample]] = {}
    paths_by_folder = []
    for folder in cfg.data:
        dataset = find_dataset(folder, split="train")
        paths = dataset.hr_paths()
        if not paths:
            raise ConfigError(f"{folder}: no images")
        paths_by_folder.append((dataset, paths))
    loaded = [load_samples_at(dataset, cfg.scale, cfg.n_colors, paths) for dataset, paths in paths_by_folder]
    for scale in cfg.scale:
        samples = [s for by_scale in loaded for s in by_scale[scale]]
        held_out: list[Sample] = []
        if cfg.holdout:  # the same images at every scale: the split depends only on their number
            keep, out = split_holdout(list(range(len(samples))), cfg.holdout)
            samples, held_out = [samples[i] for i in keep], [samples[i] for i in out]
        train_samples[scale] = samples
        val[scale] = held_out + [
            s for folder in cfg.val for s in load_samples(find_dataset(folder), scale, cfg.n_colors)
        ]
    preset = parse_preset(cfg.degradation)
    if not preset.is_clean:  # validation on fixed degraded LR: one draw per image, from (seed 0, image)
        val = {
            scale: [Sample(s.name, degrade(s.hr, scale, preset, seed=0).pixels, s.hr) for s in samples]
            for scale, samples in val.items()
        }
    return train_samples, val


def to_tensor(batch: np.ndarray | torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(N, H, W, C) uint8 or float 0..255 -> float32 (N, C, H, W) on device. A tensor batch (from a
    DevicePatchSampler) is already (N, C, H, W) float32 on the device."""
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch.contiguous()
    t = torch.from_numpy(np.ascontiguousarray(batch))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).float()
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()


@torch.inference_mode()
def validate(model: SRNet, samples: dict[int, list[Sample]], device: torch.device) -> dict[int, float]:
    """Mean Y-PSNR (shave = scale) over whole validation images at each scale, fp32."""
    was_training = model.training
    model.eval()
    means = {}
    for scale, scale_samples in samples.items():
        scores = []
        for s in scale_samples:
            sr = model(to_tensor(s.lr[None], device, False), scale)[0].permute(1, 2, 0).float().cpu().numpy()
            scores.append(psnr(sr, s.hr, shave=scale, channel="y"))
        means[scale] = float(np.mean(scores))
    model.train(was_training)
    return means


class Prefetcher:
    """Prepares batches in a background thread. Each batch comes with the sampler state after it, so a
    checkpoint can record exactly where the consumed stream stopped (prefetched batches are redone)."""

    def __init__(self, sampler: MultiScaleSampler, depth: int) -> None:
        self.sampler, self.depth = sampler, depth
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.thread = None
        if depth > 0:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _produce(self) -> tuple[tuple[int, np.ndarray, np.ndarray], dict]:
        batch = self.sampler.sample()
        return batch, copy.deepcopy(self.sampler.state)

    def _run(self) -> None:
        while not self.stop.is_set():
            item = self._produce()
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def next(self) -> tuple[tuple[int, np.ndarray, np.ndarray], dict]:
        return self.queue.get() if self.thread else self._produce()

    def close(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(timeout=5)


def _atomic_torch_save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint, read without running code from it."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"{path}: not a readable training checkpoint ({str(e).splitlines()[0] if str(e) else e})"
        ) from e


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each step, writes a checkpoint and returns."""

    def __init__(self) -> None:
        self.raised = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, the run is stopped from outside
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, resume: bool = False, progress: bool | None = None) -> dict:
    """Train to cfg.iters steps. With resume=True, continue from cfg.out/last.pt.

    Returns {"steps", "best_psnr", "seconds", "interrupted", "run_dir", "world_size"}.
    """
    cfg.validate()
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{out} already holds a run; use --resume {out} to continue it, or another --out")
    if resume and not ckpt_path.exists():
        raise ConfigError(f"{out}: no checkpoint (last.pt) to resume from")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA GPU is available")
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        # rank 0 validates while the others wait in the next all-reduce: allow a long validation
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=2))
    main_rank = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)

    train_samples, val_samples = load_training_data(cfg)
    clean = parse_preset(cfg.degradation).is_clean
    on_device = cfg.data_on_device if cfg.data_on_device is not None else device.type == "cuda" and clean
    options = dict(flips=cfg.flips, brightness=cfg.brightness, rgb_permute=cfg.rgb_permute)
    if not clean:
        options.update(degradation=parse_preset(cfg.degradation), cutblur=cfg.cutblur)
    sampler = MultiScaleSampler(
        {
            s: (
                DevicePatchSampler(
                    train_samples[s],
                    s,
                    cfg.patch_size,
                    cfg.batch_size,
                    device,
                    seed=cfg.seed + 1000 * rank + s,
                    **options,
                )
                if on_device
                else PatchSampler(
                    train_samples[s], s, cfg.patch_size, cfg.batch_size, seed=cfg.seed + 1000 * rank + s, **options
                )
            )
            for s in cfg.scale
        },
        seed=cfg.seed,
    )  # every rank trains the same scale at each step (DDP reduces one set of gradients)
    has_val = any(val_samples.values())
    n_train = len(train_samples[cfg.scale[0]])
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    step, best = 0, float("-inf")
    state = read_checkpoint(ckpt_path) if resume else None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ConfigError(
                f"{ckpt_path} does not fit these settings (architecture changed?): {str(e).strip().splitlines()[0]}"
            ) from e
    ema = copy.deepcopy(model).eval() if cfg.ema else None  # starts from the (resumed) weights
    if state is not None:
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step, best = int(state["step"]), float(state["best_psnr"])
        states = [json.loads(s) for s in state["sampler_states"]]
        try:
            if len(states) != world:
                raise ConfigError(f"checkpoint was written by {len(states)} process(es), now {world}")
            sampler.state = states[rank]
        except (ConfigError, KeyError, TypeError) as e:
            log.warning("%s: patch sampling restarts", e)
        if world == 1:
            torch.set_rng_state(state["torch_rng"])
        if main_rank:
            log.info("resumed %s at step %d", out, step)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")

    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = model
    if world > 1:
        # a multi-scale step leaves the other scales' parts without gradients
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if use_cuda else None, find_unused_parameters=len(model.scales) > 1
        )
    if cfg.compile:
        net = torch.compile(net)
    model.train()
    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    prefetcher = Prefetcher(sampler, 0 if on_device else cfg.prefetch)  # on the device, cutting is cheap
    sampler_state = copy.deepcopy(sampler.state)  # the state after the last consumed batch
    scored = ema if ema is not None else model

    def checkpoint() -> None:
        states = [json.dumps(sampler_state)]
        if world > 1:
            gathered: list = [None] * world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if main_rank:
            _atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "step": step,
                    "best_psnr": best,
                    "sampler_states": states,
                    "torch_rng": torch.get_rng_state(),
                    "config": json.dumps(asdict(cfg)),
                    "world_size": world,
                },
                ckpt_path,
            )

    writer = None
    if main_rank:
        log_file = (out / "log.csv").open("a", newline="")
        writer = csv.writer(log_file)
        if log_file.tell() == 0:
            writer.writerow(["step", "loss", "lr", "steps_per_s", "elapsed_s", "val_psnr_y", "val_by_scale"])
    board = _tensorboard(out) if main_rank else None
    show_bar = main_rank and (progress if progress is not None else sys.stderr.isatty())
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iters, initial=step, unit="step", dynamic_ncols=True)
    if main_rank and has_val and step == 0:  # where the run starts from (worth knowing with --init)
        start = validate(scored, val_samples, device)
        print("validation before training: " + " ".join(f"x{k} {v:.3f} dB" for k, v in start.items()), flush=True)
    t0 = time.time()
    window_loss, window_steps, window_t = 0.0, 0, time.time()
    interrupted = False
    try:
        with _StopFlag() as stop:
            while step < cfg.iters:
                lr_now = learning_rate(cfg, step)
                for group in opt.param_groups:
                    group["lr"] = lr_now
                (scale, lr_np, hr_np), sampler_state = prefetcher.next()
                lr_t = to_tensor(lr_np, device, cfg.channels_last)
                hr_t = to_tensor(hr_np, device, cfg.channels_last)
                with autocast:
                    sr = net(lr_t, scale)
                loss = loss_fn(sr.float(), hr_t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                if ema is not None:
                    with torch.no_grad():
                        for p_ema, p in zip(ema.parameters(), model.parameters()):
                            p_ema.lerp_(p, 1 - cfg.ema)
                step += 1
                window_loss += loss.item()
                window_steps += 1
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_now:.2e}")
                val_score, by_scale = None, {}
                if main_rank and has_val and (step % cfg.val_every == 0 or step == cfg.iters):
                    by_scale = validate(scored, val_samples, device)
                    val_score = float(np.mean(list(by_scale.values())))  # the best checkpoint: mean over scales
                    if val_score > best:
                        best = val_score
                        save_weights(
                            scored, out / "best.safetensors", _weights_metadata(cfg, step, best, n_train, by_scale)
                        )
                if main_rank and (step % cfg.log_every == 0 or val_score is not None or step == cfg.iters):
                    rate = window_steps / max(1e-9, time.time() - window_t)
                    writer.writerow(
                        [
                            step,
                            f"{window_loss / max(1, window_steps):.5f}",
                            f"{lr_now:.4e}",
                            f"{rate:.2f}",
                            f"{time.time() - t0:.1f}",
                            "" if val_score is None else f"{val_score:.4f}",
                            " ".join(f"x{k}:{v:.4f}" for k, v in by_scale.items()),
                        ]
                    )
                    log_file.flush()
                    if board is not None:
                        board.add_scalar("train/loss", window_loss / max(1, window_steps), step)
                        board.add_scalar("train/lr", lr_now, step)
                        if val_score is not None:
                            board.add_scalar("val/psnr_y", val_score, step)
                    if bar is None and (val_score is not None or step == cfg.iters):
                        print(
                            f"step {step}/{cfg.iters} loss {window_loss / max(1, window_steps):.4f} lr {lr_now:.2e} "
                            f"{rate:.2f} it/s"
                            + ("" if val_score is None else f" val {val_score:.3f} dB")
                            + "".join(f" x{k} {v:.3f}" for k, v in by_scale.items() if len(by_scale) > 1),
                            flush=True,
                        )
                    window_loss, window_steps, window_t = 0.0, 0, time.time()
                stop_now = stop.raised
                if world > 1:  # every rank must stop at the same step
                    flag = torch.tensor([1.0 if stop_now else 0.0], device=device)
                    torch.distributed.all_reduce(flag)
                    stop_now = bool(flag.item() > 0)
                if step % cfg.checkpoint_every == 0 or step == cfg.iters or stop_now:
                    if world > 1:
                        check_ranks_agree(model, world)
                    checkpoint()
                if stop_now:
                    interrupted = True
                    break
    finally:
        prefetcher.close()
        if bar is not None:
            bar.close()
        if main_rank:
            log_file.close()
        if board is not None:
            board.close()
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if main_rank and not has_val:  # nothing to choose by: the last weights are the ones to keep
        save_weights(scored, out / "best.safetensors", _weights_metadata(cfg, step, None, n_train))
    return {
        "steps": step,
        "best_psnr": best if has_val else None,
        "seconds": time.time() - t0,
        "interrupted": interrupted,
        "run_dir": str(out),
        "world_size": world,
    }


def check_ranks_agree(model: torch.nn.Module, world: int) -> None:
    """Every rank must hold the same weights: DistributedDataParallel averages the gradients, so all take the
    same steps. A difference means they trained apart; it is an error, not a checkpoint of one rank's run."""
    mine = torch.stack(
        [p.detach().double().sum() for p in model.parameters()]
        + [p.detach().double().abs().sum() for p in model.parameters()]
    )
    every = [torch.empty_like(mine) for _ in range(world)]
    torch.distributed.all_gather(every, mine)
    if any(not torch.equal(other, mine) for other in every):
        raise RuntimeError("the ranks' weights differ: their gradients were not averaged (DistributedDataParallel)")


def _tensorboard(out: Path):
    """A TensorBoard writer into out/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


def _weights_metadata(
    cfg: TrainConfig, step: int, val_psnr: float | None, n_images: int, by_scale: dict[int, float] | None = None
) -> dict:
    return {
        "steps": step,
        "val_psnr_y": None if val_psnr is None else round(val_psnr, 4),
        "val_psnr_y_by_scale": {str(k): round(v, 4) for k, v in (by_scale or {}).items()},
        "training": {
            "data": [Path(d).name for d in cfg.data],
            "images": n_images,
            "holdout": cfg.holdout,
            "val": [Path(d).name for d in cfg.val],
            "patch_size": cfg.patch_size,
            "batch_size": cfg.batch_size,
            "iters": cfg.iters,
            "lr": cfg.lr,
            "schedule": cfg.schedule,
            "loss": cfg.loss,
            "ema": cfg.ema,
            "flips": cfg.flips,
            "rgb_permute": cfg.rgb_permute,
            "init": [Path(p).name for p in cfg.init],
        },
    }


def run_weights(source: str | Path, weights: str = "best") -> tuple[SRNet, dict]:
    """The model and its metadata from a run folder or a training checkpoint.

    weights='best': the run's best.safetensors (best validation score); 'last': the checkpoint's latest
    weights (EMA when present).
    """
    source = Path(source)
    if weights not in ("best", "last"):
        raise ConfigError(f"weights must be 'best' or 'last', got '{weights}'")
    if source.is_dir():
        best_file, ckpt = source / "best.safetensors", source / "last.pt"
        if weights == "best" and best_file.exists():
            model = load_weights(best_file)
            return model, _export_metadata(model.metadata)
        if not ckpt.exists():
            raise ConfigError(f"{source}: not a run folder (no best.safetensors or last.pt)")
        source = ckpt
    state = read_checkpoint(source)
    try:
        cfg = TrainConfig.from_dict(json.loads(state["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{source}: not a superres training checkpoint") from e
    model = create_model(cfg.preset, scale=cfg.scale, n_colors=cfg.n_colors, **cfg.overrides())
    model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    meta = _weights_metadata(cfg, int(state["step"]), None, 0)
    meta["val_psnr_y"] = round(float(state["best_psnr"]), 4) if math.isfinite(state["best_psnr"]) else None
    return model.eval(), meta


def export(source: str | Path, output: str | Path, weights: str = "best", half: bool = False) -> Path:
    """Write deployable .safetensors (fp16 storage with half=True) from a run folder or a checkpoint."""
    model, meta = run_weights(source, weights)
    return save_weights(model, output, meta, dtype=torch.float16 if half else None)


def _export_metadata(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("arch", "config")}
