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
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import torch
from torch.nn import functional as F

from superres.errors import ConfigError, Hint
from superres.evaluation.metrics import psnr
from superres.imaging.datasets import Sample, find_dataset, load_samples, load_samples_at
from superres.imaging.degrade import Preset, degrade, parse_preset
from superres.imaging.files import atomic_path, write_text
from superres.models.base import SRNet, conditions_of
from superres.models.checkpoints import init_from, load_weights, save_weights
from superres.models.handle import ModelHandle
from superres.models.registry import create_model
from superres.training.config import TrainConfig, learning_rate, split_holdout
from superres.training.distill import Teachers, distilled_samples
from superres.training.patches import DevicePatchSampler, MultiScaleSampler, PatchSampler

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- pieces


def build_model(cfg: TrainConfig) -> SRNet:
    """The network to train: the preset at cfg.scale, started from cfg.init weights where given."""
    model = create_model(cfg.preset, scale=cfg.scale, n_colors=cfg.n_colors, **cfg.overrides())
    if cfg.init:
        sources = [load_weights(path) for path in cfg.init]
        copied = init_from(model, sources)
        shared = r"(head|tail|up\.x\d+)\..*|(sub|add)_mean\..*"  # what is not the body: ends and mean shifts
        if not any(re.fullmatch(shared, model.part_key(k)) is None for k in copied):
            shapes = "; ".join(s.describe() for s in sources)
            raise ConfigError(
                f"init weights ({shapes}) do not fit the model ({model.describe()}): no body weight could be copied"
            )
        log.info("initialised %d of %d tensors from %s", len(copied), len(model.state_dict()), ", ".join(cfg.init))
    return model


def load_training_data(cfg: TrainConfig) -> tuple[dict[int, list[Sample]], dict[int, list[Sample]]]:
    """(training, validation) samples per scale, every LR made (or read) once."""
    train_samples: dict[int, list[Sample]] = {}
    val: dict[int, list[Sample]] = {}
    paths_by_folder = []
    for folder in cfg.data + cfg.train_only:
        dataset = find_dataset(folder, split="train")
        paths = dataset.hr_paths()
        if not paths:
            raise ConfigError(f"{folder}: no images")
        paths_by_folder.append((dataset, paths))
    read = [load_samples_at(dataset, cfg.scale, cfg.n_colors, paths) for dataset, paths in paths_by_folder]
    loaded, extra = read[: len(cfg.data)], read[len(cfg.data) :]
    for scale in cfg.scale:
        samples = [s for by_scale in loaded for s in by_scale[scale]]
        held_out: list[Sample] = []
        if cfg.holdout:  # the same images at every scale: the split depends only on their number
            keep, out = split_holdout(list(range(len(samples))), cfg.holdout)
            samples, held_out = [samples[i] for i in keep], [samples[i] for i in out]
        train_samples[scale] = samples + [s for by_scale in extra for s in by_scale[scale]]
        val[scale] = held_out + [
            s for folder in cfg.val for s in load_samples(find_dataset(folder), scale, cfg.n_colors)
        ]
    preset = parse_preset(cfg.degradation)
    if not preset.is_clean:  # validation on fixed degraded LR: one draw per image, from (seed 0, image)
        val = {
            scale: [Sample(s.name, *_degraded(s.hr, scale, preset)) for s in samples] for scale, samples in val.items()
        }
    return train_samples, val


def _degraded(hr: np.ndarray, scale: int, preset: Preset) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(LR, HR, condition) of a validation image: one draw, from (seed 0, image)."""
    out = degrade(hr, scale, preset, seed=0)
    return out.pixels, hr, out.condition


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
    k = model.rgb_range / 255.0
    n_conditions = conditions_of(model)
    for scale, scale_samples in samples.items():
        scores = []
        for s in scale_samples:
            x = to_tensor(s.lr[None], device, False) * k
            if n_conditions:
                condition = torch.tensor([s.condition or (0.0,) * n_conditions], device=device)
                sr = model(x, scale, condition)[0] / k
            else:
                sr = model(x, scale)[0] / k
            sr = sr.permute(1, 2, 0).float().cpu().numpy()
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

    def _produce(self) -> tuple[tuple, dict]:
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

    def next(self) -> tuple[tuple, dict]:
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

    def __enter__(self) -> _StopFlag:
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
    """Train to cfg.iters steps, into the run folder cfg.out. With resume=True, continue from cfg.out/last.pt.

    progress: a progress bar on stderr (None: when stderr is a terminal; without one, a line is printed at
    each validation and at the end). Returns {"steps": the steps done in all, "best_psnr": the best mean
    validation Y-PSNR in dB (None without validation images), "seconds": wall-clock seconds of this call's
    steps, "interrupted": whether a signal stopped it, "run_dir", "world_size": the number of processes}.
    """
    cfg.validate()
    out = _run_folder(cfg, resume)
    ranks = _join_ranks(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + ranks.rank)
    run = _prepare(cfg, out, ranks, resume)
    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    autocast = torch.autocast(ranks.device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    batches = Prefetcher(run.sampler, 0 if run.on_device else cfg.prefetch)  # on the device, cutting is cheap
    run.sampler_state = copy.deepcopy(run.sampler.state)
    report = _Report(cfg, out, ranks.main, progress, run.step)
    try:
        if ranks.main and run.has_val and run.step == 0:  # where the run starts from (worth knowing with --init)
            start = validate(run.scored, run.val_samples, ranks.device)
            print("validation before training: " + " ".join(f"x{k} {v:.3f} dB" for k, v in start.items()), flush=True)
        report.start()
        with _StopFlag() as stop:
            while run.step < cfg.iters and not run.interrupted:
                run.interrupted = _step(run, batches, loss_fn, autocast, report, stop)
    finally:
        batches.close()
        report.close()
    _finish(run)
    return {
        "steps": run.step,
        "best_psnr": run.best if run.has_val else None,
        "seconds": time.time() - report.t0,
        "interrupted": run.interrupted,
        "run_dir": str(out),
        "world_size": ranks.world,
    }


@dataclass
class _Ranks:
    """Where this process trains: its rank among `world` processes (torchrun's environment; one process
    without it), its GPU among the node's (local_rank), and its device."""

    world: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0, which alone validates, logs and writes."""
        return self.rank == 0


@dataclass
class _Run:
    """A run's state: what the loop trains, and what it changes (the step, the best score, where the patch
    stream stands) and a checkpoint keeps."""

    cfg: TrainConfig
    ranks: _Ranks
    out: Path
    model: SRNet
    opt: torch.optim.Optimizer
    ema: SRNet | None  # the moving average of the weights (cfg.ema), which is then validated and kept
    sampler: MultiScaleSampler
    on_device: bool  # the sampler cuts patches on the device
    val_samples: dict[int, list[Sample]]
    n_train: int  # training images (at the first scale)
    teachers: Teachers | None  # distillation targets (cfg.teacher)
    net: torch.nn.Module = field(init=False)  # the model as trained: channels_last, DistributedDataParallel, compiled
    step: int = 0
    best: float = float("-inf")  # the best mean validation Y-PSNR, dB
    sampler_state: dict = field(default_factory=dict)  # the sampler's state after the last consumed batch
    interrupted: bool = False

    @property
    def scored(self) -> SRNet:
        """The weights validated and kept: the EMA when there is one."""
        return self.ema if self.ema is not None else self.model

    @property
    def has_val(self) -> bool:
        return any(self.val_samples.values())


def _run_folder(cfg: TrainConfig, resume: bool) -> Path:
    """cfg.out, refused if it holds a run and resume is False, or holds none to resume."""
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    if ckpt_path.exists() and not resume:
        raise ConfigError(
            f"{out} already holds a run",
            hint=Hint("resume", "use {} to continue it, or another output folder", "resume=True"),
        )
    if resume and not ckpt_path.exists():
        raise ConfigError(f"{out}: no checkpoint (last.pt) to resume from")
    return out


def _join_ranks(cfg: TrainConfig) -> _Ranks:
    """This process's rank and device (cfg.device; 'auto': CUDA when there is a GPU), from torchrun's
    environment; joins the process group (NCCL on GPUs, gloo on CPUs) when there are several processes."""
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
    return _Ranks(world, rank, local_rank, device)


def _prepare(cfg: TrainConfig, out: Path, ranks: _Ranks, resume: bool) -> _Run:
    """The data, the patch sampler, the model and its optimizer, resumed from out/last.pt when `resume`, and
    the model made ready to train; rank 0 writes out/config.json."""
    train_samples, val_samples = load_training_data(cfg)
    teachers = None
    if cfg.teacher:
        teachers = Teachers(cfg.teacher, cfg.scale, cfg.n_colors, ranks.device, cfg.teacher_flips)
        if ranks.main:
            log.info("teachers: %s", teachers.describe())
        if not cfg.teacher_per_batch:
            train_samples = {
                s: distilled_samples(samples, teachers, s, cfg.teacher_weight) for s, samples in train_samples.items()
            }
            if ranks.main:
                print(f"teachers' targets for {n_images(train_samples)} training images: {teachers.seconds:.0f} s")
            teachers = None  # nothing more to run
    model = build_model(cfg).to(ranks.device)
    sampler, on_device = _make_sampler(cfg, train_samples, ranks, conditions_of(model) > 0)
    opt = torch.optim.Adam(_trained_parameters(model, cfg), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    state = read_checkpoint(out / "last.pt") if resume else None
    if state is not None:
        _load_weights_and_optimizer(model, opt, state, out / "last.pt")
    ema = copy.deepcopy(model).eval() if cfg.ema else None  # starts from the (resumed) weights
    n_train = len(train_samples[cfg.scale[0]])
    run = _Run(cfg, ranks, out, model, opt, ema, sampler, on_device, val_samples, n_train, teachers)
    if state is not None:
        _resume_progress(run, state)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
    _make_trainable(run)
    return run


def _trained_parameters(model: SRNet, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """The parameters the optimizer moves: all but those cfg.frozen matches (which stop needing gradients)."""
    trained = []
    for name, p in model.named_parameters():
        if cfg.frozen is not None and re.search(cfg.frozen, name):
            p.requires_grad_(False)
        elif p.requires_grad:
            trained.append(p)
    if not trained:
        raise ConfigError(f"frozen={cfg.frozen!r} matches every parameter of {model.describe()}: nothing to train")
    return trained


def n_images(samples: dict[int, list[Sample]]) -> int:
    return sum(len(v) for v in samples.values())


def _make_sampler(
    cfg: TrainConfig, samples: dict[int, list[Sample]], ranks: _Ranks, conditioned: bool
) -> tuple[MultiScaleSampler, bool]:
    """The patch sampler of every scale (seeded by cfg.seed, the rank and the scale), and whether it cuts
    patches on the device (cfg.data_on_device; by default on a GPU when the LR images are clean). conditioned:
    degraded batches come with each patch's condition (a conditioned network trains)."""
    clean = parse_preset(cfg.degradation).is_clean
    on_device = cfg.data_on_device if cfg.data_on_device is not None else ranks.device.type == "cuda" and clean
    options: dict[str, Any] = dict(flips=cfg.flips, brightness=cfg.brightness, rgb_permute=cfg.rgb_permute)
    if not clean:
        options.update(degradation=parse_preset(cfg.degradation), cutblur=cfg.cutblur, conditioned=conditioned)

    def one_scale(s: int) -> PatchSampler | DevicePatchSampler:
        seed = cfg.seed + 1000 * ranks.rank + s
        if on_device:
            return DevicePatchSampler(samples[s], s, cfg.patch_size, cfg.batch_size, ranks.device, seed=seed, **options)
        return PatchSampler(samples[s], s, cfg.patch_size, cfg.batch_size, seed=seed, **options)

    # every rank trains the same scale at each step (DDP reduces one set of gradients)
    weights = None if cfg.scale_weights is None else dict(zip(cfg.scale, cfg.scale_weights, strict=True))
    return MultiScaleSampler({s: one_scale(s) for s in cfg.scale}, seed=cfg.seed, weights=weights), on_device


def _load_weights_and_optimizer(model: SRNet, opt: torch.optim.Optimizer, state: dict, ckpt_path: Path) -> None:
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"{ckpt_path} does not fit these settings (architecture changed?): {str(e).strip().splitlines()[0]}"
        ) from e


def _resume_progress(run: _Run, state: dict) -> None:
    """The EMA, the step, the best score, this rank's patch stream and torch's random state from a checkpoint.
    A checkpoint of another number of processes restarts the patch sampling (a warning)."""
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    run.step, run.best = int(state["step"]), float(state["best_psnr"])
    states = [json.loads(s) for s in state["sampler_states"]]
    try:
        if len(states) != run.ranks.world:
            raise ConfigError(f"checkpoint was written by {len(states)} process(es), now {run.ranks.world}")
        run.sampler.state = states[run.ranks.rank]
    except (ConfigError, KeyError, TypeError) as e:
        log.warning("%s: patch sampling restarts", e)
    if run.ranks.world == 1:
        torch.set_rng_state(state["torch_rng"])
    if run.ranks.main:
        log.info("resumed %s at step %d", run.out, run.step)


def _make_trainable(run: _Run) -> None:
    """run.net: the model in channels_last memory (cfg.channels_last), wrapped for several processes
    (DistributedDataParallel) and compiled (cfg.compile); the model in training mode."""
    cfg, ranks = run.cfg, run.ranks
    if cfg.channels_last:
        run.model = run.model.to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue] - torch's stubs omit memory_format
    model = run.model
    net: torch.nn.Module = model
    if ranks.world > 1:
        ids = [ranks.local_rank] if ranks.device.type == "cuda" else None
        unused = len(model.scales) > 1  # a multi-scale step leaves the other scales' parts without gradients
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
    if cfg.compile:
        net = cast(torch.nn.Module, torch.compile(net))
    model.train()
    run.net = net


def _step(
    run: _Run, batches: Prefetcher, loss_fn: Callable, autocast: torch.autocast, report: _Report, stop: _StopFlag
) -> bool:
    """One optimisation step, then what falls due after it: validation, a log row, a checkpoint. Returns
    whether the run stops here (a signal on any rank; a checkpoint is written first)."""
    loss, lr_now = _optimise(run, batches, loss_fn, autocast)
    report.stepped(run.step, loss, lr_now)
    val_score, by_scale = _validate_due(run)
    report.record(run.step, lr_now, val_score, by_scale, run.teachers.seconds if run.teachers else 0.0)
    stop_now = _stop_agreed(run, stop)
    if run.step % run.cfg.checkpoint_every == 0 or run.step == run.cfg.iters or stop_now:
        if run.ranks.world > 1:
            check_ranks_agree(run.model, run.ranks.world)
        _checkpoint(run)
    return stop_now


def _optimise(
    run: _Run, batches: Prefetcher, loss_fn: Callable, autocast: torch.autocast
) -> tuple[torch.Tensor, float]:
    """One step of the optimizer on the next batch, at the schedule's learning rate, and the EMA's update.
    Returns the batch's loss (a tensor) and the learning rate used."""
    cfg, model = run.cfg, run.model
    lr_now = learning_rate(cfg, run.step)
    for group in run.opt.param_groups:
        group["lr"] = lr_now
    (scale, lr_np, hr_np, *condition), run.sampler_state = batches.next()
    lr_t = to_tensor(lr_np, run.ranks.device, cfg.channels_last)
    hr_t = to_tensor(hr_np, run.ranks.device, cfg.channels_last)
    target = run.teachers.batch_targets(lr_t, hr_t, scale) if run.teachers is not None else None
    k = model.rgb_range / 255.0  # the network's white; patches, targets and the loss are in 0..255
    inputs: tuple = (lr_t * k if k != 1 else lr_t, scale)
    if conditions_of(model):  # the damage of each patch (all 0 for clean patches)
        inputs += (torch.as_tensor(condition[0], device=run.ranks.device) if condition else None,)
    with autocast:
        sr = run.net(*inputs)
    sr = sr.float() / k if k != 1 else sr.float()
    if target is None:
        loss = loss_fn(sr, hr_t)
    elif cfg.teacher_weight == 1:
        loss = loss_fn(sr, target)
    else:
        loss = cfg.teacher_weight * loss_fn(sr, target) + (1 - cfg.teacher_weight) * loss_fn(sr, hr_t)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    run.opt.step()
    if run.ema is not None:
        assert cfg.ema is not None, "an EMA copy exists only when cfg.ema is set"
        with torch.no_grad():
            for p_ema, p in zip(run.ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - cfg.ema)
    run.step += 1
    return loss, lr_now


def _validate_due(run: _Run) -> tuple[float | None, dict[int, float]]:
    """On rank 0, every cfg.val_every steps and at the last: the mean validation Y-PSNR over the scales and
    each scale's (dB), and the weights written to best.safetensors when the mean is the best yet. Else
    (None, {})."""
    cfg, step = run.cfg, run.step
    if not (run.ranks.main and run.has_val and (step % cfg.val_every == 0 or step == cfg.iters)):
        return None, {}
    by_scale = validate(run.scored, run.val_samples, run.ranks.device)
    val_score = float(np.mean(list(by_scale.values())))  # the best checkpoint: mean over scales
    if val_score > run.best:
        run.best = val_score
        meta = _weights_metadata(cfg, step, run.best, run.n_train, by_scale)
        save_weights(run.scored, run.out / "best.safetensors", meta)
    return val_score, by_scale


def _stop_agreed(run: _Run, stop: _StopFlag) -> bool:
    """Whether a signal asked this run to stop; with several processes, whether it reached any of them (every
    rank must stop at the same step)."""
    stop_now = stop.raised
    if run.ranks.world > 1:
        flag = torch.tensor([1.0 if stop_now else 0.0], device=run.ranks.device)
        torch.distributed.all_reduce(flag)
        stop_now = bool(flag.item() > 0)
    return stop_now


def _checkpoint(run: _Run) -> None:
    """out/last.pt, written atomically by rank 0, with every rank's patch sampler state (gathered)."""
    states = [json.dumps(run.sampler_state)]
    if run.ranks.world > 1:
        gathered: list = [None] * run.ranks.world
        torch.distributed.all_gather_object(gathered, states[0])
        states = gathered
    if run.ranks.main:
        _atomic_torch_save(
            {
                "model": run.model.state_dict(),
                "optimizer": run.opt.state_dict(),
                "ema": run.ema.state_dict() if run.ema is not None else None,
                "step": run.step,
                "best_psnr": run.best,
                "sampler_states": states,
                "torch_rng": torch.get_rng_state(),
                "config": json.dumps(asdict(run.cfg)),
                "world_size": run.ranks.world,
            },
            run.out / "last.pt",
        )


def _finish(run: _Run) -> None:
    """The process group left; without validation images, the last weights written as best.safetensors."""
    if run.ranks.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if run.ranks.main and not run.has_val:  # nothing to choose by: the last weights are the ones to keep
        save_weights(run.scored, run.out / "best.safetensors", _weights_metadata(run.cfg, run.step, None, run.n_train))


class _Report:
    """Rank 0's account of a run: a row of out/log.csv every cfg.log_every steps, at each validation and at the
    last step (the mean loss, learning rate and steps per second since the previous row); the same as
    TensorBoard scalars when tensorboard is installed; a progress bar when `progress` (None: when stderr is a
    terminal), else a printed line at each validation and at the end. On the other ranks it does nothing."""

    HEADER = ("step", "loss", "lr", "steps_per_s", "elapsed_s", "val_psnr_y", "val_by_scale", "teacher_share")

    def __init__(self, cfg: TrainConfig, out: Path, main: bool, progress: bool | None, step: int) -> None:
        self.cfg = cfg
        self.log_file: TextIO | None = None
        self.writer = self.board = self.bar = None
        if main:
            self.log_file = (out / "log.csv").open("a", newline="")
            self.writer = csv.writer(self.log_file)
            if self.log_file.tell() == 0:
                self.writer.writerow(self.HEADER)
            self.board = _tensorboard(out)
            if progress if progress is not None else sys.stderr.isatty():
                from tqdm import tqdm  # noqa: PLC0415

                self.bar = tqdm(total=cfg.iters, initial=step, unit="step", dynamic_ncols=True)
        self.start()

    def start(self) -> None:
        """The clock starts (elapsed_s and the result's seconds count from here)."""
        self.t0 = time.time()
        self.window_loss, self.window_steps, self.window_t = 0.0, 0, time.time()
        self.window_teacher_s = 0.0

    def stepped(self, step: int, loss: torch.Tensor, lr_now: float) -> None:
        self.window_loss += loss.item()
        self.window_steps += 1
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0:
                self.bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_now:.2e}")

    def record(
        self, step: int, lr_now: float, val_score: float | None, by_scale: dict[int, float], teacher_s: float = 0.0
    ) -> None:
        """The row for `step` when one is due (val_score: the mean validation Y-PSNR in dB, or None; teacher_s:
        the seconds the teachers took so far, of which the row reports the share of the time since the last)."""
        cfg = self.cfg
        if self.log_file is None or self.writer is None:  # not rank 0
            return
        if not (step % cfg.log_every == 0 or val_score is not None or step == cfg.iters):
            return
        window = max(1e-9, time.time() - self.window_t)
        rate, teacher_share = self.window_steps / window, (teacher_s - self.window_teacher_s) / window
        loss = self.window_loss / max(1, self.window_steps)
        self.writer.writerow(
            [
                step,
                f"{loss:.5f}",
                f"{lr_now:.4e}",
                f"{rate:.2f}",
                f"{time.time() - self.t0:.1f}",
                "" if val_score is None else f"{val_score:.4f}",
                " ".join(f"x{k}:{v:.4f}" for k, v in by_scale.items()),
                f"{teacher_share:.3f}",
            ]
        )
        self.log_file.flush()
        if self.board is not None:
            self.board.add_scalar("train/loss", loss, step)
            self.board.add_scalar("train/lr", lr_now, step)
            if val_score is not None:
                self.board.add_scalar("val/psnr_y", val_score, step)
        if self.bar is None and (val_score is not None or step == cfg.iters):
            print(
                f"step {step}/{cfg.iters} loss {loss:.4f} lr {lr_now:.2e} {rate:.2f} it/s"
                + ("" if val_score is None else f" val {val_score:.3f} dB")
                + "".join(f" x{k} {v:.3f}" for k, v in by_scale.items() if len(by_scale) > 1)
                + (f" (teachers {teacher_share:.0%} of the time)" if teacher_s else ""),
                flush=True,
            )
        self.window_loss, self.window_steps, self.window_t = 0.0, 0, time.time()
        self.window_teacher_s = teacher_s

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.log_file is not None:
            self.log_file.close()
        if self.board is not None:
            self.board.close()


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
            "train_only": [Path(d).name for d in cfg.train_only],
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
            "teachers": [Path(p).name for p in cfg.teacher],
            "teacher_weight": cfg.teacher_weight if cfg.teacher else None,
            "teacher_flips": cfg.teacher_flips if cfg.teacher else None,
            "teacher_per_batch": cfg.teacher_per_batch if cfg.teacher else None,
        },
    }


def run_weights(source: str | Path, weights: str = "best") -> tuple[ModelHandle | SRNet, dict]:
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


def _export_metadata(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("arch", "config")}
