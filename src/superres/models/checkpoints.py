"""Read and write weights files: unwrap, detect the family, read its config off the shapes, load strictly.

Any registered family (models/family.py) is understood; for EDSR and MDSR that means the official
EDSR-PyTorch layouts, BasicSR's EDSR, and this project's `.safetensors`, whose metadata carries the
architecture and its config. Common wrappers are stripped first: `params_ema`, `params`, `state_dict`,
`model` (with optimizer state, epochs and the like beside them) and DataParallel's `module.` prefix.

Weights are read with safetensors or `torch.load(weights_only=True)`: no code from the file runs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from superres.errors import CheckpointError, UnknownModelError, did_you_mean
from superres.imaging.files import atomic_path
from superres.models.base import SRNet
from superres.models.family import Family, StateDict, detect_family, get_family
from superres.models.handle import ModelHandle, as_handle
from superres.models.registry import PRETRAINED, create_model, default_model_name, preset_arch, presets
from superres.models.user import user_models

METADATA_KEY = "superres"  # safetensors metadata entry holding our JSON
WRAPPERS = ("params_ema", "params", "state_dict", "model")  # BasicSR, Lightning-style and plain trainers
MAX_WEIGHTS_BYTES = 4 * 2**30  # larger files are refused before they are read (memory, and no SR model is)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and our metadata (empty for foreign files) from a .safetensors, .pt or .pth file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:  # read before anything is loaded: a file this large is no SR checkpoint
        raise CheckpointError(
            f"{path}: {size / 2**30:.1f} GiB is more than the {MAX_WEIGHTS_BYTES / 2**30:.0f} GiB a weights file may "
            f"be (the largest published SR models are under 0.5 GiB)"
        )
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
        if "weights_only" in str(e):  # torch's advice would be to run code from the file: never
            first = "it holds Python objects besides tensors, which superres never unpickles"
        raise CheckpointError(f"{path}: cannot be read as a PyTorch weights file ({first})") from e
    return _unwrap(obj, path)


def _unwrap(obj: Any, path: Path) -> tuple[StateDict, dict[str, Any]]:
    """The state dict inside a loaded .pt object (unwrapping one level of WRAPPERS; entries that are not
    tensors, such as an epoch or optimizer state beside the weights, are dropped) and our metadata."""
    meta: dict[str, Any] = {}
    if isinstance(obj, dict):
        if isinstance(obj.get(METADATA_KEY), dict):
            meta = obj[METADATA_KEY]
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not tensors or not all(isinstance(k, str) for k in tensors):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    return tensors, meta


def normalize_state_dict(state: StateDict) -> StateDict:
    """Strip DataParallel's `module.` prefixes (however many)."""
    return {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}


def build_from_dict(arch: str, config: dict[str, Any]) -> ModelHandle:
    """An untrained model from a family name and a config as saved in weights metadata."""
    family = _family_named(arch)
    config_obj = family.config_class.from_dict(config)
    return ModelHandle(family.build(config_obj), family, config_obj)


def _family_named(arch: str) -> Family:
    try:
        return get_family(arch)
    except UnknownModelError as e:
        raise CheckpointError(str(e)) from None


def read_model(tensors: StateDict, meta: dict[str, Any]) -> ModelHandle:
    """The model a state dict holds: the family its metadata names (else the one its keys match), its config
    from the shapes, its weights loaded strictly. Errors name what did not fit."""
    state = normalize_state_dict(tensors)
    if meta.get("arch") is not None:
        family = _family_named(str(meta["arch"]))
        state = family.rename(state)
    else:
        family, state = detect_family(state)
    config = family.read_config(state, meta)
    net = family.build(config)
    family.load(net, state)
    net.metadata = meta  # type: ignore[assignment] - what the file says about itself (training data, PSNR)
    return ModelHandle(net.eval(), family, config, metadata=meta)


def load_weights(path: str | os.PathLike) -> ModelHandle:
    """The model in a weights file (.safetensors, .pt, .pth), its family detected, in eval mode."""
    tensors, meta = read_weights(path)
    try:
        handle = read_model(tensors, meta)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e.message}") from e
    return replace(handle, name=str(path))


def save_weights(
    model: ModelHandle | nn.Module,
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a .safetensors file with the architecture and config in its metadata; atomic (temporary file
    + rename)."""
    handle = as_handle(model)
    path = Path(path)
    meta = {"arch": handle.arch, "config": handle.config.to_dict(), **(metadata or {})}
    state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in handle.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta)})
    return path


def load_model(
    name_or_path: str | os.PathLike | None = None, scale: int | None = None, allow_untrained: bool = False
) -> ModelHandle:
    """A ready-to-run model (eval mode) from a bundled name, a weights file or an ONNX export.

    With no name, the bundled default (the one that has `scale`, if given). A name or file without a
    given `scale` is an error. Preset names (architectures without weights) give an untrained model only
    with allow_untrained=True, e.g. for `superres info`.
    """
    if name_or_path is None:
        name_or_path = default_model_name(scale)
        if name_or_path is None:
            raise UnknownModelError(
                f"no bundled model{'' if scale is None else f' for x{scale}'}; pass a weights file, or use an "
                f"interpolation method"
            )
    key = str(name_or_path)
    if key in PRETRAINED:
        model = replace(load_weights(PRETRAINED[key].path()), name=key)
    elif key in presets():
        if not allow_untrained:
            bundled = ", ".join(PRETRAINED) or "none yet"
            raise UnknownModelError(
                f"'{key}' is an architecture without weights; give a weights file or a bundled model ({bundled})"
            )
        # a multi-scale preset keeps all its scales (the check below still applies); an EDSR one is built for `scale`
        net = create_model(key) if preset_arch(key) == "mdsr" else create_model(key, scale=scale or 2)
        net.metadata = {"untrained": True}
        model = as_handle(net.eval(), name=key)
    elif Path(key).suffix == ".onnx":
        model = read_onnx_model(key)
    elif Path(key).is_file():  # a file beats a registered name, so a broken registry never hides a path
        model = load_weights(key)
    elif key in (mine := user_models()):
        model = replace(load_weights(mine[key]), name=key)
    elif Path(key).exists() or Path(key).suffix in (".safetensors", ".pt", ".pth"):
        model = load_weights(key)
    else:
        choices = list(PRETRAINED) + list(presets()) + list(user_models())
        raise UnknownModelError(f"unknown model '{key}'{did_you_mean(key, choices)} (or give a path to a weights file)")
    if scale is not None and scale not in model.scales:
        raise CheckpointError(f"model '{key}' upscales x{', x'.join(map(str, model.scales))}, not x{scale}")
    return model


def read_onnx_model(path: str | os.PathLike) -> ModelHandle:
    """A handle describing an ONNX export of ours (`superres export --format onnx`): its family and config from
    the file's metadata, the network built on the meta device (it answers questions; the onnxruntime
    backend runs the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        import onnx
    except ImportError as e:
        raise CheckpointError(f"{path}: reading ONNX files needs the onnx package: pip install 'superres[onnx]'") from e
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's decode errors come in several types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable ONNX model ({first})") from e
    raw = {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
    if not raw:
        raise CheckpointError(f"{path}: not a superres ONNX export (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw)
        family = _family_named(str(meta.get("arch", "edsr")))
        config = family.config_class.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its '{METADATA_KEY}' metadata is not what superres writes ({e})") from e
    with torch.device("meta"):
        net = family.build(config)
    scale = meta.get("scale")
    fixed = (int(scale),) if scale is not None else None
    return ModelHandle(net, family, config, str(path), meta, onnx=path, fixed_scales=fixed)


def init_from(target: SRNet, sources: Sequence[ModelHandle | SRNet]) -> list[str]:
    """Copy into `target` every tensor of `sources` that fits it, across families (EDSR <-> MDSR).

    Tensors are matched by their family-neutral name (`SRNet.part_key`) and shape. A scale-specific
    part (an upsampler) comes from the first source that has that scale; a shared part (head, body,
    last conv) from the first source that has it. This is the paper's recipe for x3/x4 (start from the
    x2 model) and for MDSR (start from single-scale models). The target then `adopt`s the copies (and may fill
    more from them). Returns the target keys that were copied or filled.
    """
    nets = [cast(SRNet, s.net) if isinstance(s, ModelHandle) else s for s in sources]
    own = target.state_dict()
    by_part = {target.part_key(k): k for k in own}
    copied: dict[str, torch.Tensor] = {}
    for source in nets:
        for key, value in source.state_dict().items():
            mine = by_part.get(source.part_key(key))
            if mine is not None and mine not in copied and own[mine].shape == value.shape:
                copied[mine] = value
    target.load_state_dict({**own, **copied}, strict=True)
    return sorted([*copied, *target.adopt(sorted(copied))])


def interpolate(a: ModelHandle, b: ModelHandle, t: float) -> ModelHandle:
    """A new model whose every tensor is (1 - t) * a + t * b: network interpolation (Wang et al., 2019), as
    Real-ESRGAN's `-dn` blends its general and denoising models. a and b must have the same architecture and
    are left unchanged; t = 0 and t = 1 give exact copies of a and b."""
    a, b = as_handle(a), as_handle(b)
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(x.shape != y.shape for x, y in zip(sa.values(), sb.values(), strict=True)):
        raise CheckpointError(f"cannot blend {a.describe()} with {b.describe()}: the architectures differ")
    net = copy.deepcopy(a.net)
    with torch.no_grad():
        mixed = {k: (v if t == 0 else sb[k] if t == 1 else torch.lerp(v, sb[k], t)) for k, v in sa.items()}
    net.load_state_dict(mixed)
    return replace(a, net=net, name=f"{a.name}~{b.name}@{t:g}" if a.name or b.name else "")
