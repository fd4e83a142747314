r"""What an architecture family tells the rest of superres, and the registry of families.

A family is one file in `models/`: the network, its config dataclass, and a `Family` subclass that says how
to recognise its state dicts (key names, then shapes), how to read the config off the shapes, which pixel
range the network takes, its scales and colours, its receptive radius, and the precisions it tolerates.
Registering it is one line: the `@register_family` decorator on that subclass.

    @register_family
    class ToyFamily(Family):
        name = "toy"
        key_patterns = (r"toy_in\.weight", r"toy_out\.weight")
        ...

Loading (checkpoints.py) asks each registered family in turn, builds the first that recognises the file and
loads it strictly; the model handle (handle.py) is what inference holds.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from superres.errors import CheckpointError, ConfigError, UnknownModelError, did_you_mean

StateDict = dict[str, torch.Tensor]

PRECISIONS = ("fp32", "bf16", "fp16")


class Family:
    """One architecture family. Subclasses set the class attributes and implement the methods marked so.

    `config` below is the family's own frozen config dataclass (with `to_dict` / `from_dict`); `net` is the
    module that `build(config)` makes.
    """

    name: ClassVar[str] = ""  # 'edsr': what weights metadata calls the architecture
    config_class: ClassVar[type]  # frozen dataclass with to_dict() and from_dict(d)
    # Regular expressions, each matched by some key of every state dict of the family (after `rename`):
    # the closest family of an unknown file is the one with most of them present, and the first absent one
    # is named in the error.
    key_patterns: ClassVar[tuple[str, ...]] = ()
    # Named architectures of the family (create_model): preset name -> config fields.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Whether the auto backend runs the family with OpenVINO on a CPU (its ONNX export converts, gives the torch
    # output and runs faster: benchmarks/runtimes.py); False keeps it on PyTorch unless openvino is asked for.
    openvino: ClassVar[bool] = True

    # ------------------------------------------------------------------ recognising and reading files

    def rename(self, state: StateDict) -> StateDict:
        """The state dict in the keys `build` makes (e.g. another codebase's layout of the same network)."""
        return state

    def recognize(self, state: StateDict) -> bool:
        """Whether a (renamed) state dict is of this family, from its key names. Default: every key pattern
        is matched."""
        return bool(self.key_patterns) and not self.first_missing(state)

    def first_missing(self, state: StateDict) -> str | None:
        """The first key pattern no key of `state` matches, or None."""
        for pattern in self.key_patterns:
            if not any(re.fullmatch(pattern, key) for key in state):
                return pattern
        return None

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        """The config the state dict was made for, from tensor shapes (and the file's metadata, where it has
        one). Raises CheckpointError naming the first key or shape that does not fit."""
        raise NotImplementedError

    def build(self, config: Any) -> nn.Module:  # pragma: no cover - abstract
        """An untrained network of this config."""
        raise NotImplementedError

    def load(self, net: nn.Module, state: StateDict) -> None:
        """Load every tensor into `net` or raise CheckpointError naming the mismatch."""
        load_state_strict(net, state)

    # ------------------------------------------------------------------ what inference needs

    def scales(self, config: Any) -> tuple[int, ...]:
        """The integer scales the network produces, ascending. Default: the one `config.scale` of a
        single-scale family."""
        return (int(config.scale),)

    def n_colors(self, config: Any) -> int:
        """Channels in and out: 3 (RGB) or 1 (luma)."""
        return int(config.n_colors)

    def pixel_range(self, config: Any) -> float:
        """The value of white for the network's input and output: 255.0 or 1.0. Inference converts 0..255
        pixels to this range and back; any mean the network subtracts is its own business."""
        return 1.0

    def precisions(self, config: Any) -> tuple[str, ...]:
        """The precisions the network keeps its accuracy in; 'auto' picks fp32 where its choice is not here."""
        return PRECISIONS

    def openvino_precisions(self, config: Any) -> tuple[str, ...]:
        """The precisions the network keeps its accuracy in under OpenVINO, whose bf16 runs every layer in bf16
        (PyTorch's autocast keeps some in fp32): by default those of `precisions` but fp16, which OpenVINO does
        not run on a CPU. `benchmarks/auto_psnr.py` measures each family."""
        return tuple(p for p in self.precisions(config) if p != "fp16")

    def receptive_radius(self, config: Any, scale: int) -> int | None:  # pragma: no cover - abstract
        """LR pixels of context an output pixel at `scale` depends on, on each side (exact tiling); None for a
        network whose outputs depend on far more than a tile can hold (global attention, say): its tiles are
        then approximate, cut with the caller's overlap (the Upscaler's APPROXIMATE_MARGIN by default)."""
        raise NotImplementedError

    def activation_bytes_per_pixel(self, config: Any, scale: int) -> int:  # pragma: no cover - abstract
        """About how many bytes of float32 activations one LR pixel costs at inference (tile budgets)."""
        raise NotImplementedError

    def export_min_side(self, config: Any) -> int:
        """The smallest LR side an ONNX export of this network takes: a branch on the input's size (padding
        small pictures, say) is traced for the size it was exported at, so smaller inputs are refused there."""
        return 1

    def describe(self, config: Any) -> str:
        """One line on the architecture."""
        return f"{self.name} {config}"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        """Run `net` at `scale`: (N, C, H, W) in 0..pixel_range -> (N, C, H*s, W*s), not clipped. Default:
        `net(x, scale)`; a family whose networks take no scale returns `net(x)`."""
        return net(x, scale)

    # ------------------------------------------------------------------ named architectures

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> Any:
        """The config of a preset (its `settings`) for `scales` (None: the family's default)."""
        raise ConfigError(f"the {self.name} family has no presets")  # pragma: no cover - families with presets


C = TypeVar("C", bound="FamilyConfig")


class FamilyConfig:
    """Base of a family's frozen config dataclass whose fields are plain values or tuples of them: `to_dict` for
    weights metadata (tuples as lists, as JSON has them), `from_dict` back (lists as tuples; keys it does not
    know, from a newer or older file, are ignored)."""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # pyright: ignore[reportArgumentType] - subclasses are dataclasses
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}  # pyright: ignore[reportArgumentType] - dataclasses
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


_FAMILIES: dict[str, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family known to loading, `create_model` and inference (by its `name`)."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__} needs a name")
    _FAMILIES[cls.name] = cls()
    return cls


def unregister_family(name: str) -> None:
    """Forget a family (for tests that register a toy one)."""
    _FAMILIES.pop(name, None)


def families() -> dict[str, Family]:
    """Registered families by name, in registration order."""
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    """A registered family by name; UnknownModelError naming the known ones otherwise."""
    if name not in _FAMILIES:
        raise UnknownModelError(f"architecture '{name}' is not supported{did_you_mean(name, list(_FAMILIES))}")
    return _FAMILIES[name]


def detect_family(state: StateDict) -> tuple[Family, StateDict]:
    """The family whose layout a normalised state dict has, and the state dict in that family's keys.

    Raises CheckpointError naming the closest family and its first key pattern that no key matched."""
    best: tuple[int, Family, str | None] | None = None
    for family in _FAMILIES.values():
        renamed = family.rename(state)
        if family.recognize(renamed):
            return family, renamed
        present = sum(any(re.fullmatch(p, k) for k in renamed) for p in family.key_patterns)
        if best is None or present > best[0]:
            best = (present, family, family.first_missing(renamed))
    sample = ", ".join(sorted(state)[:3])
    if best is None or best[0] == 0:
        raise CheckpointError(
            f"no known architecture has these keys ({sample}, ...); known: {', '.join(_FAMILIES) or 'none'}"
        )
    _, family, missing = best
    if missing is None:  # every key pattern is there, but the shapes are not the family's: its reader says why
        family.read_config(family.rename(state), {})
        raise CheckpointError(f"the keys are {family.name}'s, but their shapes are not (keys: {sample}, ...)")
    raise CheckpointError(
        f"not a known architecture: closest is {family.name}, but no key matches '{missing}' (keys: {sample}, ...)"
    )


def load_state_strict(net: nn.Module, state: StateDict) -> None:
    """Load every tensor of `state` into `net`, or raise CheckpointError with one line naming the missing and
    unexpected keys and the shape mismatches."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(
            f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
        )
    if shapes:
        problems.append(f"shape mismatch: {'; '.join(shapes[:3])}")
    if problems:
        raise CheckpointError("weights do not fit the model: " + "; ".join(problems))
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
