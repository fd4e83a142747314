"""Training settings: the TrainConfig dataclass, config files (TOML, YAML, JSON), the learning-rate
schedule and the fixed hold-out split. The CLI fills a TrainConfig; `training.train` runs it."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import numpy as np

from superres.errors import ConfigError, Hint
from superres.imaging.degrade import parse_preset
from superres.models.registry import preset_config, presets

# The families `superres train` can train: networks whose parts (part_key, init_from) the loop knows. Other
# families load, run and teach (--teacher), but are not trained here.
TRAINABLE_FAMILIES = ("edsr", "mdsr", "mspan")


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # folders: HR images, or EDSR/DIV2K layouts with LR
    # more folders, for training only: never held out, so adding them leaves the hold-out split of `data` unchanged
    train_only: list[str] = field(default_factory=list)
    scale: list[int] = field(default_factory=lambda: [2])  # several (MDSR presets): one drawn per batch
    scale_weights: list[float] | None = None  # the chance of each scale's batch (normalised); None: uniform
    preset: str = "edsr-baseline"
    n_feats: int | None = None  # overrides of the preset
    n_resblocks: int | None = None
    res_scale: float | None = None
    n_colors: int = 3
    iters: int = 300_000  # the paper's
    batch_size: int = 16  # per process
    patch_size: int = 48  # LR side, as in EDSR
    lr: float = 1e-4
    schedule: str = "step"  # "step": times lr_gamma every lr_step steps (the paper); "cosine": warm-up then cosine
    lr_step: int = 200_000
    lr_gamma: float = 0.5
    warmup_iters: int = 0
    min_lr: float = 0.0
    loss: str = "l1"
    grad_clip: float | None = None  # max gradient norm
    ema: float | None = None  # EMA decay of the weights, e.g. 0.999; validation and export use the EMA
    flips: bool = True  # the 8 flips/rotations
    rgb_permute: float = 0.0  # chance that a patch's RGB channels are shuffled (Yoo et al., CVPR 2020)
    brightness: float = 0.0  # the original report's brightness change: factor in [1 - b, 1 + b]
    degradation: str = "bicubic"  # how LR patches are made from HR ones: an imaging.degrade preset ("photo", ...)
    cutblur: float = 0.0  # chance that a rectangle of a degraded patch is swapped with the clean LR
    val: list[str] = field(default_factory=list)  # benchmark-layout or HR folders
    holdout: int = 0  # training images kept out of training for validation
    val_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 100
    out: str = "runs/edsr"
    init: list[str] = field(default_factory=list)  # weights to start from: all that fits (models.init_from)
    frozen: str | None = None  # a regular expression: parameters whose names it matches are not trained
    teacher: list[str] = field(default_factory=list)  # distillation: models whose outputs are targets (distill.py)
    teacher_weight: float = 1.0  # the loss is w * L(out, teachers' mean) + (1 - w) * L(out, HR) where teachers exist
    teacher_flips: bool = False  # each teacher's output averaged over the 8 flips and rotations (8x its cost)
    # False: teachers run once on each whole training image before the first step (their targets then replace the
    # HR, mixed by teacher_weight); True: once per batch of patches (augmented patches get their own targets)
    teacher_per_batch: bool = False
    bf16: bool = True  # autocast
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    prefetch: int = 2  # batches prepared ahead by a background thread (0: none)
    data_on_device: bool | None = None  # training images on the device, patches cut there; None: on a GPU
    threads: int | None = None  # torch CPU threads
    device: str = "auto"  # auto, cpu, cuda
    seed: int = 0

    def __post_init__(self) -> None:  # one scale or init file given alone, as from Python
        if isinstance(self.scale, int):
            self.scale = [self.scale]
        if isinstance(self.init, str):
            self.init = [self.init]
        if isinstance(self.teacher, str):
            self.teacher = [self.teacher]

    def validate(self) -> None:  # noqa: C901 - a flat list of independent checks, one per setting
        if not self.data:
            raise ConfigError(
                "no training data",
                hint=Hint("data", "give at least one folder of HR images ({})", "data=[folder, ...]"),
            )
        self._check_scales()
        positive = ("iters", "batch_size", "val_every", "checkpoint_every", "log_every", "lr_step")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("holdout", "warmup_iters", "prefetch", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if isinstance(self.patch_size, bool) or not isinstance(self.patch_size, int) or self.patch_size < 4:
            raise ConfigError(f"patch_size must be >= 4, got {self.patch_size}")
        trainable = sorted(name for name, (family, _) in presets().items() if family.name in TRAINABLE_FAMILIES)
        if self.preset not in presets():
            raise ConfigError(f"unknown preset '{self.preset}'; choose from {', '.join(trainable)}")
        if self.preset not in trainable:
            family = presets()[self.preset][0].name
            raise ConfigError(
                f"'{self.preset}' is a {family} network: superres loads and runs it, but trains only the "
                f"{' and '.join(TRAINABLE_FAMILIES)} presets ({', '.join(trainable)})"
            )
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"loss must be 'l1' or 'l2', got '{self.loss}'")
        if self.schedule not in ("step", "cosine"):
            raise ConfigError(f"schedule must be 'step' or 'cosine', got '{self.schedule}'")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ConfigError(f"ema decay must be between 0 and 1, got {self.ema}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0, got {self.grad_clip}")
        if not 0 <= self.rgb_permute <= 1:
            raise ConfigError(f"rgb_permute must be a probability in [0, 1], got {self.rgb_permute}")
        clean = parse_preset(self.degradation).is_clean
        if not 0 <= self.cutblur <= 1:
            raise ConfigError(f"cutblur must be a probability in [0, 1], got {self.cutblur}")
        if self.cutblur and clean:
            raise ConfigError("cutblur mixes degraded and clean inputs: it needs a degradation other than bicubic")
        if not clean and self.data_on_device:
            raise ConfigError("degradations run on the CPU: they cannot be combined with data_on_device")
        self._check_fine_tuning()
        if not 0 <= self.brightness < 1:
            raise ConfigError(f"brightness must be in [0, 1), got {self.brightness}")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got '{self.device}'")
        preset_config(self.preset, scale=self.scale, n_colors=self.n_colors, **self.overrides())  # checks ranges

    def _check_scales(self) -> None:
        if not self.scale or any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in self.scale):
            raise ConfigError(f"scale must be one or more integers >= 2, got {self.scale!r}")
        if len(set(self.scale)) != len(self.scale):
            raise ConfigError(f"scale lists a factor twice: {self.scale}")
        if self.scale_weights is not None and (
            len(self.scale_weights) != len(self.scale)
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in self.scale_weights)
            or sum(self.scale_weights) <= 0
        ):
            raise ConfigError(
                f"scale_weights must be one number >= 0 per scale ({len(self.scale)}), not all zero; "
                f"got {self.scale_weights!r}"
            )

    def _check_fine_tuning(self) -> None:
        """The settings of what is trained towards what: frozen parameters, teachers."""
        if self.frozen is not None:
            try:
                re.compile(self.frozen)
            except re.error as e:
                raise ConfigError(f"frozen is not a regular expression ({e}): {self.frozen!r}") from None
        if not 0 <= self.teacher_weight <= 1:
            raise ConfigError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")
        if self.teacher and self.teacher_per_batch and not parse_preset(self.degradation).is_clean:
            raise ConfigError(
                "teachers run per batch would see the degraded patches and make degraded targets: leave out "
                "teacher_per_batch (they then run once on each clean image)"
            )

    def overrides(self) -> dict:
        return {k: getattr(self, k) for k in ("n_feats", "n_resblocks", "res_scale") if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        # `from __future__ import annotations`: every field's type is its annotation's text
        types = {f.name: cast(str, f.type) for f in fields(cls)}
        return cls(**{k: _coerce(k, v, types[k]) for k, v in d.items()})


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """A setting converted to its field's type ('int', 'float | None', 'list[str]', ...); YAML reads 1e-4
    as a string, TOML may give 2 for 2.0. Raises ConfigError naming the setting."""
    optional = annotation.endswith("| None")
    base = annotation.replace("| None", "").strip()
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} needs a value")
    try:
        if base == "list[str]":
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        if base in ("list[int]", "list[float]"):
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            return [_coerce(name, v, base[5:-1]) for v in items]
        if base == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if isinstance(value, bool):
                return value
            raise ValueError
        if base == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be {'an integer' if base == 'int' else 'a number' if base == 'float' else base}"
            f", got {value!r}"
        ) from None
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML, YAML or JSON file (keys as in TrainConfig; dashes allowed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: config files are .toml, .yaml/.yml or .json")
    except ConfigError:
        raise
    except Exception as e:  # each parser has its own error type
        raise ConfigError(f"{path}: cannot parse ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    data = data.get("train", data)  # allow a [train] table
    return {k.replace("-", "_"): v for k, v in data.items()}


def split_holdout(items: list, holdout: int) -> tuple[list, list]:
    """(training, held-out) items: a fixed pseudo-random choice that does not depend on the run's seed."""
    if len(items) <= holdout:
        raise ConfigError(f"found {len(items)} images; need more than holdout={holdout}")
    order = np.random.default_rng(12345).permutation(len(items))
    return [items[i] for i in order[holdout:]], [items[i] for i in order[:holdout]]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate for step `step` (0-based)."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    if cfg.schedule == "step":
        return cfg.lr * cfg.lr_gamma ** (step // cfg.lr_step)
    t = (step - cfg.warmup_iters) / max(1, cfg.iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))
