"""SwinIR (models/swinir.py): tiny random files in the official key layout load by detection alone, with the
config read off their shapes, and run as the network built from them does; wrong files are one CheckpointError
naming the key or shape; odd sizes, autocast and ONNX export work.

The files are written here, wrapped in `params_ema` as the official release is, or bare; with or without the
buffers the official code saves (`attn.relative_position_index`, `attn_mask` for its training patch size).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import superres
import superres.models.swinir  # registers the family (until models/__init__ imports it)
from superres.errors import CheckpointError, ConfigError
from superres.inference.upscaler import APPROXIMATE_MARGIN, Upscaler
from superres.models import load_model, save_weights
from superres.models.family import detect_family
from superres.models.handle import ModelHandle
from superres.models.registry import create_model
from superres.models.swinir import (
    SwinIR,
    SwinIRConfig,
    SwinIRFamily,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
)

TINY: dict[str, Any] = dict(embed_dim=12, depths=(2, 2), num_heads=(2, 2), window_size=4, num_feat=8)
VARIANTS = {
    "classical-x2": SwinIRConfig(scale=2, upsampler="pixelshuffle", **TINY),
    "classical-x3": SwinIRConfig(scale=3, upsampler="pixelshuffle", **TINY),
    "classical-x4": SwinIRConfig(scale=4, upsampler="pixelshuffle", **TINY),
    "lightweight-x3": SwinIRConfig(scale=3, upsampler="pixelshuffledirect", **{**TINY, "num_feat": 64}),  # none
    # depths, heads and the MLP's width differ from layer to layer and from the defaults; the 3-conv residual
    "realworld-x4": SwinIRConfig(
        scale=4,
        upsampler="nearest+conv",
        resi_connection="3conv",
        **{**TINY, "depths": (2, 3), "num_heads": (2, 3)},
        mlp_ratio=1.5,
    ),
    "realworld-x2-gray": SwinIRConfig(scale=2, upsampler="nearest+conv", n_colors=1, **TINY),
}
TRAIN_PATCH = 16  # the patch size the official buffers (attn_mask) of these files are for


def random_state(config: SwinIRConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of `config` with random values everywhere (LayerNorm scales near 1)."""
    torch.manual_seed(seed)
    net = SwinIR(config)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return {k: v.clone() for k, v in net.state_dict().items()}


def explicit_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """The shifted-window mask as the paper describes it: label the 3 x 3 regions by slices, cut into windows,
    -100 between different labels."""
    label = torch.zeros(h, w)
    slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for n, (rows, cols) in enumerate(itertools.product(slices, slices)):
        label[rows, cols] = n
    windows = label.reshape(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(-1, window**2)
    return (windows[:, None, :] != windows[:, :, None]).float() * -100.0


def official(state: dict[str, torch.Tensor], config: SwinIRConfig) -> dict[str, torch.Tensor]:
    """`state` with the buffers the official code saves: every block's position index, and the shifted blocks'
    masks for a TRAIN_PATCH x TRAIN_PATCH patch."""
    out = dict(state)
    w = config.window_size
    for i, depth in enumerate(config.depths):
        for j in range(depth):
            prefix = f"layers.{i}.residual_group.blocks.{j}."
            out[prefix + "attn.relative_position_index"] = relative_position_index(w)
            if j % 2:
                out[prefix + "attn_mask"] = explicit_mask(TRAIN_PATCH, TRAIN_PATCH, w, w // 2)
    return out


def write(path: Path, state: dict[str, torch.Tensor], wrapper: str | None) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrapper: state, "iter": 5} if wrapper else state, path)
    return path


def plain(config: SwinIRConfig, state: dict[str, torch.Tensor]) -> SwinIR:
    """The network built from a state dict by hand: the config known, the parameters loaded strictly."""
    net = SwinIR(config)
    net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()}, strict=True)
    return net.eval()


def claimed_by_another(state: dict[str, torch.Tensor]) -> str | None:
    """The family detection picks for a SwinIR file, when it is not swinir."""
    family, _ = detect_family(state)
    return None if family.name == "swinir" else family.name


# ---------------------------------------------------------------------------------------------- loading


LAYOUTS = {  # suffix, wrapper, official buffers
    "params_ema+buffers": (".pth", "params_ema", True),
    "bare": (".pth", None, False),
    "bare-safetensors+buffers": (".safetensors", None, True),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loads_by_detection_with_the_config_off_the_shapes(variant, layout, tmp_path):
    config = VARIANTS[variant]
    suffix, wrapper, buffers = LAYOUTS[layout]
    state = random_state(config)
    saved = official(state, config) if buffers else state
    assert claimed_by_another(saved) is None  # no other family takes a SwinIR file for its own
    handle = load_model(write(tmp_path / f"{variant}{suffix}", saved, wrapper))
    assert handle.arch == "swinir" and handle.config == config
    assert handle.scales == (config.scale,) and handle.n_colors == config.n_colors and handle.pixel_range == 1.0
    assert handle.receptive_radius() is None and handle.precisions == ("fp32",)
    x = torch.rand(2, config.n_colors, 11, 13)
    with torch.no_grad():
        assert torch.equal(handle.run(x), plain(config, state)(x))


@pytest.mark.parametrize("variant", ["classical-x2", "classical-x4"])
def test_the_family_reads_classical_files(variant):
    """What detection would do, asked of the family itself (detection is tested above)."""
    config = VARIANTS[variant]
    state = official(random_state(config), config)
    family = SwinIRFamily()
    assert family.recognize(state)
    read = family.read_config(state, {})
    assert read == config
    net = family.build(read)
    family.load(net, state)
    x = torch.rand(1, 3, 9, 6)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), plain(config, state)(x))


def test_the_official_sizes():
    """The presets have the paper's shapes; the lightweight model's 878K parameters are without its 32,400
    relative-position bias entries (4 x 6 blocks x 15^2 offsets x 6 heads)."""
    with torch.device("meta"):
        counts = {
            (name, s): sum(p.numel() for p in create_model(name, scale=s).parameters())
            for name, s in [("swinir-classical", 2), ("swinir-lightweight", 2), ("swinir-realworld-large", 4)]
        }
    assert counts[("swinir-classical", 2)] == 11_752_487
    assert counts[("swinir-lightweight", 2)] == 877_752 + 4 * 6 * 15**2 * 6
    assert counts[("swinir-realworld-large", 4)] == 28_013_059
    with torch.device("meta"):
        large = create_model("swinir-realworld-large")
    assert large.config.scale == 4 and large.config.resi_connection == "3conv"
    assert SwinIRFamily().describe(large.config) == (
        "SwinIR x4 (nearest+conv), 9x6 blocks x 240 dims, 8 heads, window 8, 3conv"
    )
    with pytest.raises(ConfigError, match="x2, x4"):
        create_model("swinir-realworld", scale=3)


def test_saved_weights_round_trip(tmp_path):
    config = VARIANTS["classical-x3"]
    state = random_state(config)
    net = plain(config, state)
    path = save_weights(ModelHandle(net, SwinIRFamily(), config), tmp_path / "mine.safetensors")
    handle = load_model(path)  # the file names its family: no detection
    assert handle.config == config
    x = torch.rand(1, 3, 10, 7)
    with torch.no_grad():
        assert torch.equal(handle.run(x), net(x))


# ---------------------------------------------------------------------------------------------- the network


def test_position_index_and_mask_match_their_definitions():
    w = 4
    index = relative_position_index(w)
    for i, j in itertools.product(range(w * w), repeat=2):
        (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
        assert index[i, j] == (yi - yj + w - 1) * (2 * w - 1) + (xi - xj + w - 1)
    for h, wd in [(4, 4), (8, 12), (16, 8)]:
        assert torch.equal(shifted_window_mask(h, wd, w, 2, torch.device("cpu")), explicit_mask(h, wd, w, 2))


def test_attention_adds_the_bias_of_each_offset():
    """One window, one head, computed token by token: softmax(q.k / sqrt(d) + table[offset]) . v."""
    config = SwinIRConfig(**{**TINY, "num_heads": (1, 1)})
    attn = cast(
        WindowAttention, plain(config, random_state(config)).get_submodule("layers.0.residual_group.blocks.0.attn")
    )
    x = torch.randn(1, 16, 12)
    with torch.no_grad():
        q, k, v = attn.qkv(x)[0].split(12, dim=-1)
        out = torch.empty(16, 12)
        for i in range(16):
            (yi, xi) = divmod(i, 4)
            table = attn.relative_position_bias_table[:, 0]
            logits = torch.stack(
                [q[i] @ k[j] / math.sqrt(12) + table[(yi - j // 4 + 3) * 7 + xi - j % 4 + 3] for j in range(16)]
            )
            out[i] = logits.softmax(0) @ v
        assert torch.allclose(attn(x, None)[0], attn.proj(out), atol=1e-5)


@pytest.mark.parametrize("size", [(5, 7), (9, 13), (3, 2), (1, 1), (4, 8)])
def test_any_size_is_padded_by_reflection_and_cropped(size):
    config = VARIANTS["lightweight-x3"]
    net = plain(config, random_state(config))
    h, w = size
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (2, 3, 3 * h, 3 * w) and torch.isfinite(y).all()
        assert torch.allclose(net(x[1:]), y[1:], atol=1e-5)  # each picture on its own
        if h > 3 and w > 3:  # the padding (up to 3) fits inside the picture: numpy's reflection
            padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect"))
            assert torch.allclose(net(padded)[:, :, : 3 * h, : 3 * w], y, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_runs_under_autocast(dtype):
    config = VARIANTS["realworld-x4"]
    net = plain(config, random_state(config))
    x = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        exact = net(x)
        with torch.autocast("cpu", dtype=dtype):
            low = net(x)
    assert low.shape == exact.shape and torch.isfinite(low).all()
    assert (low.float() - exact).abs().mean() < 0.05 * exact.abs().mean()


def test_upscale_and_approximate_tiles(tmp_path):
    config = VARIANTS["lightweight-x3"]
    state = random_state(config)
    path = write(tmp_path / "light.pth", official(state, config), "params_ema")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (14, 17, 3), dtype=np.uint8)
    out = np.asarray(superres.upscale(img, model=path, precision="fp32", device="cpu"))
    with torch.no_grad():
        expected = plain(config, state)(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    expected = np.clip(np.floor(expected[0].permute(1, 2, 0).numpy() * 255 + 0.5), 0, 255)
    assert out.shape == (42, 51, 3) and np.abs(out.astype(int) - expected).max() <= 1
    with pytest.raises(ConfigError, match="fp32"):
        superres.upscale(img, model=path, precision="bf16", device="cpu")
    tiled = Upscaler(load_model(path), device="cpu", precision="fp32", tile=16)
    assert not tiled.exact and tiled.margin == APPROXIMATE_MARGIN
    assert tiled(rng.random((40, 45, 3), dtype=np.float32) * 255).shape == (120, 135, 3)


# ---------------------------------------------------------------------------------------------- wrong files


def _corrupt(state: dict[str, torch.Tensor], how: str) -> dict[str, torch.Tensor]:
    s = dict(state)
    block = "layers.1.residual_group.blocks.1."
    if how == "table rows":
        s = {k: torch.zeros(24, 2) if k.endswith("bias_table") else v for k, v in s.items()}
    elif how == "window across layers":
        s = {
            k: torch.zeros(25, 2) if k.startswith("layers.1.") and k.endswith("bias_table") else v for k, v in s.items()
        }
    elif how == "heads within a layer":
        s["layers.1.residual_group.blocks.0.attn.relative_position_bias_table"] = torch.zeros(49, 3)
    elif how == "missing qkv":
        del s["layers.0.residual_group.blocks.1.attn.qkv.weight"]
    elif how == "fc1 width":
        s[block + "mlp.fc1.weight"] = torch.zeros(20, 12)
    elif how == "index values":
        s[block + "attn.relative_position_index"] = relative_position_index(4).flip(0)
    elif how == "block gap":
        s = {
            k.replace("layers.0.residual_group.blocks.1.", "layers.0.residual_group.blocks.2."): v for k, v in s.items()
        }
    elif how == "absolute position embedding":
        s["absolute_pos_embed"] = torch.zeros(1, 256, 12)
    elif how == "conv_last channels":
        s["conv_last.weight"], s["conv_last.bias"] = torch.zeros(4, 8, 3, 3), torch.zeros(4)
    elif how == "no upsampler":
        s = {k: v for k, v in s.items() if not k.startswith(("conv_before_upsample", "conv_up", "conv_hr"))}
        s["conv_last.weight"] = torch.zeros(3, 12, 3, 3)
    return s


WRONG = {
    "table rows": "layers.0.residual_group.blocks.0.attn.relative_position_bias_table has 24 rows",
    "window across layers": "layers.1.residual_group.blocks.0.attn.relative_position_bias_table is for window 3, not 4",
    "heads within a layer": "layers.1.residual_group.blocks.0.attn.relative_position_bias_table",
    "missing qkv": "missing 1 key.*layers.0.residual_group.blocks.1.attn.qkv.weight",
    "fc1 width": "shape mismatch: layers.1.residual_group.blocks.1.mlp.fc1.weight",
    "index values": "layers.1.residual_group.blocks.1.attn.relative_position_index",
    "block gap": r"layers.0.residual_group.blocks.N are not numbered 0..n-1: found \[0, 2\]",
    "absolute position embedding": "unexpected 1 key.*absolute_pos_embed",
    "conv_last channels": "conv_last.weight",
    "no upsampler": "no upsampler",
}


@pytest.mark.parametrize("how", list(WRONG))
def test_a_wrong_file_is_one_error_naming_the_key(how, tmp_path):
    config = VARIANTS["realworld-x2-gray"]
    state = _corrupt(official(random_state(config), config), how)
    path = write(tmp_path / "wrong.pth", state, "params_ema")
    with pytest.raises(CheckpointError, match=WRONG[how]) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_another_swin_family_is_not_taken_for_swinir():
    """HAT-like blocks (a conv branch beside the attention) share SwinIR's outer keys; SwinIR declines them."""
    config = VARIANTS["lightweight-x3"]
    state = random_state(config)
    state["layers.0.residual_group.blocks.0.conv_block.cab.0.weight"] = torch.zeros(4, 12, 3, 3)
    assert not SwinIRFamily().recognize(state)
    with pytest.raises(
        CheckpointError, match=re.escape("(not layers.0.residual_group.blocks.0.conv_block.cab.0.weight)")
    ):
        detect_family(state)


# ---------------------------------------------------------------------------------------------- ONNX


def test_onnx_export_keeps_sizes_dynamic(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from superres.cli.main import main
    from superres.inference.onnx import onnx_bytes

    config = VARIANTS["realworld-x4"]
    state = random_state(config)
    path = write(tmp_path / "real.pth", official(state, config), "params_ema")
    assert main(["export", str(path), "-o", str(tmp_path / "real.onnx")]) == 0
    loaded = load_model(tmp_path / "real.onnx")
    assert loaded.arch == "swinir" and loaded.config == config
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (21, 26, 3), dtype=np.uint8)
    torch_out = np.asarray(superres.upscale(img, model=path, precision="fp32", device="cpu"))
    onnx_out = np.asarray(superres.upscale(img, model=tmp_path / "real.onnx"))
    assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1

    for variant in ("classical-x3", "lightweight-x3"):  # the other upsamplers, in memory
        config = VARIANTS[variant]
        net = plain(config, random_state(config))
        session = ort.InferenceSession(onnx_bytes(ModelHandle(net, SwinIRFamily(), config), config.scale))
        for h, w in [(21, 26), (8, 8), (3, 5), (1, 1)]:  # smaller than a window too
            x = torch.rand(2, 3, h, w) * 255
            with torch.no_grad():
                expected = net(x / 255).numpy() * 255
            got = session.run(None, {"lr": x.numpy()})[0]
            assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-2
