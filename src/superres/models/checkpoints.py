"""Read and write EDSR and MDSR weights: detect the key layout, infer the architecture, load strictly.

Three layouts are understood:
- official EDSR-PyTorch state dicts of EDSR (`head.0.weight`, `body.{i}.body.0.weight`, `tail.0.0.weight`, ...)
  and MDSR (`pre_process.{i}.*`, `upsample.{i}.*`, `tail.0.weight`),
  with or without `sub_mean`/`add_mean` and a DataParallel `module.` prefix;
- BasicSR's EDSR (`conv_first`, `body.{i}.conv1`, `conv_after_body`, `upsample.*`, `conv_last`),
  optionally inside `params` / `params_ema`;
- this project's `.safetensors`, whose metadata carries the config.

Weights are read with safetensors or `torch.load(weights_only=True)`: no code from the file runs.
"""

from __future__ import annotations

import copy

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from superres.errors import CheckpointError, UnknownModelError
from superres.imaging.files import atomic_path
from superres.models.base import SRNet
from superres.models.edsr import EDSRConfig
from superres.models.mdsr import MDSRConfig
from superres.models.registry import (
    FAMILIES,
    PRESETS,
    PRETRAINED,
    create_model,
    default_model_name,
    preset_arch,
    suggest,
)

METADATA_KEY = "superres"  # safetensors metadata entry holding our JSON

_BASICSR_RENAMES = [
    (re.compile(r"^conv_first\."), "head.0."),
    (re.compile(r"^body\.(\d+)\.conv1\."), r"body.\1.body.0."),
    (re.compile(r"^body\.(\d+)\.conv2\."), r"body.\1.body.2."),
    (re.compile(r"^upsample\."), "tail.0."),
    (re.compile(r"^conv_last\."), "tail.1."),
]


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and our metadata (empty for foreign files) from a .safetensors, .pt or .pth file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get(METADATA_KEY)
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
        try:
            meta = json.loads(raw) if raw else {}
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: metadata '{METADATA_KEY}' is not valid JSON") from e
        return tensors, meta
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors come in many types; all mean the same to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot be read as a PyTorch weights file ({first})") from e
    return _unwrap(obj, path)


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta: dict[str, Any] = {}
    if isinstance(obj, dict):
        if isinstance(obj.get(METADATA_KEY), dict):
            meta = obj[METADATA_KEY]
        for key in ("params_ema", "params", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    return dict(obj), meta


def normalize_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.` prefixes and rename BasicSR keys to the official EDSR layout."""
    state = {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}
    if "conv_first.weight" in state:
        n_blocks = len({m.group(1) for k in state if (m := re.match(r"body\.(\d+)\.conv1\.", k))})
        state = {_rename_basicsr(k, n_blocks): v for k, v in state.items()}
    return state


def _rename_basicsr(key: str, n_blocks: int) -> str:
    if key.startswith("conv_after_body."):
        return f"body.{n_blocks}." + key[len("conv_after_body.") :]
    for pattern, repl in _BASICSR_RENAMES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key


def _upsampler_scale(state: dict[str, torch.Tensor], prefix: str, n_feats: int) -> int:
    """The factor of an upsampler whose convs are `{prefix}{i}.weight` (conv + shuffle, repeated)."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.weight$", k)))
    if not convs:
        raise CheckpointError(f"no upsampler found (keys '{prefix}*')")
    out = state[f"{prefix}{convs[0]}.weight"].shape[0]
    if out == 9 * n_feats and len(convs) == 1:
        return 3
    if out == 4 * n_feats:
        return 2 ** len(convs)
    raise CheckpointError(f"upsampler conv {prefix}{convs[0]} has {out} outputs; expected 4x or 9x n_feats ({n_feats})")


def _count_blocks(state: dict[str, torch.Tensor], pattern: str, what: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    if found != set(range(len(found))):
        raise CheckpointError(f"{what} are not numbered 0..{len(found) - 1}: found {sorted(found)}")
    return len(found)


def detect_arch(state: dict[str, torch.Tensor]) -> str:
    """'edsr' or 'mdsr', from the key names of a normalised state dict."""
    if "head.0.weight" not in state:
        sample = ", ".join(sorted(state)[:4])
        raise CheckpointError(
            f"not an EDSR or MDSR state dict: no 'head.0.weight' or 'conv_first.weight' (keys: {sample}, ...)"
        )
    return "mdsr" if any(k.startswith("upsample.") for k in state) else "edsr"


def infer_config(state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> EDSRConfig | MDSRConfig:
    """The architecture a normalised state dict was made for, from tensor shapes (and metadata)."""
    meta = meta or {}
    arch = detect_arch(state)
    n_feats, n_colors = (int(n) for n in state["head.0.weight"].shape[:2])
    n_resblocks = _count_blocks(state, r"body\.(\d+)\.body\.0\.weight$", "residual blocks")
    cfg = dict(meta.get("config", {}))
    common = dict(
        n_feats=n_feats,
        n_resblocks=n_resblocks,
        n_colors=n_colors,
        res_scale=float(cfg.get("res_scale", 0.1 if n_feats == 256 else 1.0)),
        rgb_range=float(cfg.get("rgb_range", 255.0)),
    )
    rgb_mean = cfg.get("rgb_mean")
    if rgb_mean is None and "sub_mean.bias" in state and state["sub_mean.bias"].numel() == n_colors:
        rgb_mean = tuple(round(-float(b) / common["rgb_range"], 6) for b in state["sub_mean.bias"])
    common["rgb_mean"] = tuple(rgb_mean) if rgb_mean else None
    if arch == "edsr":
        return EDSRConfig(scale=_upsampler_scale(state, "tail.0.", n_feats), **common)
    n_scales = _count_blocks(state, r"upsample\.(\d+)\.0\.weight$", "upsamplers")
    scales = tuple(_upsampler_scale(state, f"upsample.{i}.", n_feats) for i in range(n_scales))
    if list(scales) != sorted(set(scales)):
        raise CheckpointError(f"upsamplers are for x{', x'.join(map(str, scales))}; expected distinct ascending scales")
    return MDSRConfig(scales=scales, pre_process="pre_process.0.0.body.0.weight" in state, **common)


def load_state_strict(model: SRNet, state: dict[str, torch.Tensor]) -> None:
    """Load every tensor or fail with one line naming the mismatch. Missing mean shifts are filled in."""
    own = model.state_dict()
    state = dict(state)
    for key in own:
        if key.startswith(("sub_mean.", "add_mean.")) and key not in state:
            state[key] = own[key]
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
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def build(arch: str, config: EDSRConfig | MDSRConfig) -> SRNet:
    """An untrained network of a family, from its config."""
    return FAMILIES[arch](config)


def build_from_dict(arch: str, config: dict[str, Any]) -> SRNet:
    """An untrained network from a family name and a config as saved in weights metadata."""
    if arch not in FAMILIES:
        raise CheckpointError(f"architecture '{arch}' is not supported (known: {', '.join(FAMILIES)})")
    return build(arch, FAMILIES[arch].config_class.from_dict(config))


def load_weights(path: str | os.PathLike) -> SRNet:
    """The network in `path` (EDSR or MDSR, as detected from its keys) with its weights, in eval mode."""
    tensors, meta = read_weights(path)
    if meta.get("arch") is not None and meta["arch"] not in FAMILIES:
        raise CheckpointError(
            f"{path}: architecture '{meta.get('arch')}' is not supported (known: {', '.join(FAMILIES)})"
        )
    state = normalize_state_dict(tensors)
    try:
        config = infer_config(state, meta)
        model = build(detect_arch(state), config)
        load_state_strict(model, state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    model.metadata = meta  # what the file says about itself (training data, steps, PSNR)
    return model.eval()


def save_weights(
    model: SRNet, path: str | os.PathLike, metadata: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Write a .safetensors file with the architecture and config in its metadata; atomic (temporary file
    + rename)."""
    path = Path(path)
    meta = {"arch": model.arch, "config": model.config.to_dict(), **(metadata or {})}
    state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta)})
    return path


def load_model(
    name_or_path: str | os.PathLike | None = None, scale: int | None = None, allow_untrained: bool = False
) -> SRNet:
    """A ready-to-run model (eval mode) from a bundled name or a weights file.

    With no name, the bundled default (the one that has `scale`, if given). A name or file without a
    given `scale` is an error. Preset names (architectures without weights) give an untrained model only
    with allow_untrained=True, e.g. for `superres info`.
    """
    if name_or_path is None:
        name_or_path = default_model_name(scale)
        if name_or_path is None:
            raise UnknownModelError(
                f"no bundled model{'' if scale is None else f' for x{scale}'}; pass a weights "
                f"file, or use an interpolation method"
            )
    key = str(name_or_path)
    if key in PRETRAINED:
        model = load_weights(PRETRAINED[key].path())
    elif key in PRESETS:
        if not allow_untrained:
            bundled = ", ".join(PRETRAINED) or "none yet"
            raise UnknownModelError(
                f"'{key}' is an architecture without weights; give a weights file or a bundled model ({bundled})"
            )
        # an MDSR preset keeps all its scales (the check below still applies); an EDSR one is built for `scale`
        model = (create_model(key) if preset_arch(key) == "mdsr" else create_model(key, scale=scale or 2)).eval()
        model.metadata = {"untrained": True}
    elif Path(key).exists() or Path(key).suffix in (".safetensors", ".pt", ".pth"):
        model = load_weights(key)
    else:
        choices = list(PRETRAINED) + list(PRESETS)
        raise UnknownModelError(f"unknown model '{key}'{suggest(key, choices)} (or give a path to a weights file)")
    if scale is not None and scale not in model.scales:
        raise CheckpointError(f"model '{key}' upscales x{', x'.join(map(str, model.scales))}, not x{scale}")
    return model


def init_from(target: SRNet, sources: list[SRNet]) -> list[str]:
    """Copy into `target` every tensor of `sources` that fits it, across families (EDSR <-> MDSR).

    Tensors are matched by their family-neutral name (`SRNet.part_key`) and shape. A scale-specific
    part (an upsampler) comes from the first source that has that scale; a shared part (head, body,
    last conv) from the first source that has it. This is the paper's recipe for x3/x4 (start from the
    x2 model) and for MDSR (start from single-scale models). Returns the target keys that were copied.
    """
    own = target.state_dict()
    by_part = {target.part_key(k): k for k in own}
    copied: dict[str, torch.Tensor] = {}
    for source in sources:
        for key, value in source.state_dict().items():
            mine = by_part.get(source.part_key(key))
            if mine is not None and mine not in copied and own[mine].shape == value.shape:
                copied[mine] = value
    target.load_state_dict({**own, **copied}, strict=True)
    return sorted(copied)


def interpolate(a: SRNet, b: SRNet, t: float) -> SRNet:
    """A new network whose every tensor is (1 - t) * a + t * b: network interpolation (Wang et al., 2019), as
    Real-ESRGAN's `-dn` blends its general and denoising models. a and b must have the same architecture and
    are left unchanged; t = 0 and t = 1 give exact copies of a and b."""
    if a.state_dict().keys() != b.state_dict().keys() or any(
        x.shape != y.shape for x, y in zip(a.state_dict().values(), b.state_dict().values())
    ):
        raise CheckpointError(f"cannot blend {a.describe()} with {b.describe()}: the architectures differ")
    out = copy.deepcopy(a)
    with torch.no_grad():
        mixed = {
            k: (v if t == 0 else b.state_dict()[k] if t == 1 else torch.lerp(v, b.state_dict()[k], t))
            for k, v in a.state_dict().items()
        }
    out.load_state_dict(mixed)
    return out
