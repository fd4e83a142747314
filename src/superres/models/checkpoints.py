"""Read and write EDSR weights: detect the key layout, infer the architecture, load strictly.

Three layouts are understood:
- official EDSR-PyTorch state dicts (`head.0.weight`, `body.{i}.body.0.weight`, `tail.0.0.weight`, ...),
  with or without `sub_mean`/`add_mean` and a DataParallel `module.` prefix;
- BasicSR's EDSR (`conv_first`, `body.{i}.conv1`, `conv_after_body`, `upsample.*`, `conv_last`),
  optionally inside `params` / `params_ema`;
- this project's `.safetensors`, whose metadata carries the config.

Weights are read with safetensors or `torch.load(weights_only=True)`: no code from the file runs.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from superres.errors import CheckpointError, UnknownModelError
from superres.files import atomic_path
from superres.models.edsr import EDSR, EDSRConfig
from superres.models.registry import PRESETS, PRETRAINED, create_model, default_model_name, suggest

METADATA_KEY = "superres"  # safetensors metadata entry holding our JSON
ARCH = "edsr"

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
        return f"body.{n_blocks}." + key[len("conv_after_body."):]
    for pattern, repl in _BASICSR_RENAMES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key


def infer_config(state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> EDSRConfig:
    """The architecture a normalised state dict was made for, from tensor shapes (and metadata)."""
    meta = meta or {}
    if "head.0.weight" not in state:
        sample = ", ".join(sorted(state)[:4])
        raise CheckpointError(f"not an EDSR state dict: no 'head.0.weight' or 'conv_first.weight' (keys: {sample}, ...)")
    n_feats, n_colors = state["head.0.weight"].shape[:2]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.body\.0\.weight$", k))}
    n_resblocks = len(blocks)
    if blocks != set(range(n_resblocks)):
        raise CheckpointError(f"residual blocks are not numbered 0..{n_resblocks - 1}: found {sorted(blocks)}")
    up = sorted(int(m.group(1)) for k in state if (m := re.match(r"tail\.0\.(\d+)\.weight$", k)))
    if not up:
        raise CheckpointError("no upsampler found (keys 'tail.0.*' or 'upsample.*')")
    out = state[f"tail.0.{up[0]}.weight"].shape[0]
    if out == 9 * n_feats and len(up) == 1:
        scale = 3
    elif out == 4 * n_feats:
        scale = 2 ** len(up)
    else:
        raise CheckpointError(f"upsampler conv has {out} outputs; expected 4x or 9x n_feats ({n_feats})")
    cfg = dict(meta.get("config", {}))
    res_scale = cfg.get("res_scale", 0.1 if n_feats == 256 else 1.0)
    rgb_range = float(cfg.get("rgb_range", 255.0))
    rgb_mean = cfg.get("rgb_mean")
    if rgb_mean is None and "sub_mean.bias" in state and state["sub_mean.bias"].numel() == n_colors:
        rgb_mean = tuple(round(-float(b) / rgb_range, 6) for b in state["sub_mean.bias"])
    return EDSRConfig(
        scale=scale, n_feats=int(n_feats), n_resblocks=n_resblocks, res_scale=float(res_scale),
        n_colors=int(n_colors), rgb_range=rgb_range, rgb_mean=tuple(rgb_mean) if rgb_mean else None,
    )


def load_state_strict(model: EDSR, state: dict[str, torch.Tensor]) -> None:
    """Load every tensor or fail with one line naming the mismatch. Missing mean shifts are filled in."""
    own = model.state_dict()
    state = dict(state)
    for key in own:
        if key.startswith(("sub_mean.", "add_mean.")) and key not in state:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
    if shapes:
        problems.append(f"shape mismatch: {'; '.join(shapes[:3])}")
    if problems:
        raise CheckpointError("weights do not fit the model: " + "; ".join(problems))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_weights(path: str | os.PathLike, config: EDSRConfig | None = None) -> EDSR:
    """An EDSR with the weights in `path`; its architecture is inferred unless `config` is given."""
    tensors, meta = read_weights(path)
    if meta.get("arch", ARCH) != ARCH:
        raise CheckpointError(f"{path}: architecture '{meta.get('arch')}' is not supported (only '{ARCH}')")
    state = normalize_state_dict(tensors)
    try:
        inferred = infer_config(state, meta)
        model = EDSR(config or inferred)
        load_state_strict(model, state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    model.metadata = meta  # what the file says about itself (training data, steps, PSNR)
    return model.eval()


def save_weights(model: EDSR, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a .safetensors file with the config in its metadata; atomic (temporary file + rename)."""
    path = Path(path)
    meta = {"arch": ARCH, "config": model.config.to_dict(), **(metadata or {})}
    state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta)})
    return path


def load_model(name_or_path: str | os.PathLike | None = None, scale: int | None = None,
               allow_untrained: bool = False) -> EDSR:
    """A ready-to-run model (eval mode) from a bundled name or a weights file.

    With no name, the bundled default for `scale`. A name or file whose scale differs from a given
    `scale` is an error. Preset names (architectures without weights) give an untrained model only
    with allow_untrained=True, e.g. for `superres info`.
    """
    if name_or_path is None:
        if scale is None:
            raise UnknownModelError("give a model name or path, or a scale for the bundled default")
        name_or_path = default_model_name(scale)
        if name_or_path is None:
            raise UnknownModelError(f"no bundled model for x{scale}; pass a weights file, or use an interpolation method")
    key = str(name_or_path)
    if key in PRETRAINED:
        model = load_weights(PRETRAINED[key].path())
    elif key in PRESETS:
        if not allow_untrained:
            bundled = ", ".join(PRETRAINED) or "none yet"
            raise UnknownModelError(f"'{key}' is an architecture without weights; give a weights file or a "
                                    f"bundled model ({bundled})")
        model = create_model(key, scale=scale or 2).eval()
        model.metadata = {"untrained": True}
    elif Path(key).exists() or Path(key).suffix in (".safetensors", ".pt", ".pth"):
        model = load_weights(key)
    else:
        choices = list(PRETRAINED) + list(PRESETS)
        raise UnknownModelError(f"unknown model '{key}'{suggest(key, choices)} (or give a path to a weights file)")
    if scale is not None and model.scale != scale:
        raise CheckpointError(f"model '{key}' upscales x{model.scale}, not x{scale}")
    return model


def init_from_x2(source: EDSR, scale: int) -> EDSR:
    """A model for `scale` with every weight but the upsampler copied from `source` (the paper's x3/x4 recipe)."""
    target = EDSR(replace(source.config, scale=scale))
    own = target.state_dict()
    copied = {k: v for k, v in source.state_dict().items() if not k.startswith("tail.0.")}
    own.update(copied)
    target.load_state_dict(own, strict=True)
    return target
