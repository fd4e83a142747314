"""SPAN (models/span.py): its training and deploy layouts load by detection alone, in every wrapper it is published
in; the training layout folds exactly into the deploy one; the radius it states makes tiles exact; ONNX export; and
the published files score their published Set5 figures."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

import superres
import superres.models.span
from shared_models import (
    MODELS,
    load_detected,
    manifest,
    measured_set5,
    needs_benchmark,
    needs_shared_models,
    published_set5,
    set5_y_psnr,
)
from superres.errors import CheckpointError
from superres.inference.upscaler import Upscaler
from superres.models import load_model
from superres.models.span import SPAN, Conv3XC, SPANConfig, SPANFamily


def tiny(seed: int = 0, **fields) -> SPAN:
    """A small SPAN with random weights, in eval mode (branches folded, as loading does). Its weights are scaled
    as a trained network's are: each block's attention input y spread over a few units (the attention
    sigmoid(y) - 0.5 shrinks small values quadratically: unscaled, deep blocks would hardly count), and the
    output near 0.45 with some spread."""
    settings: dict[str, Any] = {"scale": 2, "n_feats": 6, "mid_feats": 6, "n_blocks": 2, "gain": 2, **fields}
    torch.manual_seed(seed)
    net = SPAN(SPANConfig(**settings))
    x = torch.rand(1, net.config.n_colors, 16, 16)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1 if p.ndim == 1 else 0.8 / p[0].numel() ** 0.5)
        scale_layer(net.conv_1, 1 / float(net.conv_1((x - net.mean) * 255 if net.config.norm else x).std()))
        out = feat = last = net.conv_1((x - net.mean) * 255 if net.config.norm else x)
        for block in net.blocks():
            y = block.c3_r(F.silu(block.c2_r(F.silu(block.c1_r(out)))))
            scale_layer(block.c3_r, 3 / float(y.std()))
            out, last = block(out)
        up = net.upsampler[0]
        assert isinstance(up, torch.nn.Conv2d) and up.bias is not None
        cat = net.conv_cat(torch.cat([feat, net.conv_2(out), net.blocks()[0](feat)[0], last], 1))
        up.weight.mul_(0.15 / float(F.conv2d(cat, up.weight, padding=1).std()))
        up.bias.fill_(0.45)
    return net.eval()


def scale_layer(layer: Conv3XC, k: float) -> None:
    """Multiply a Conv3XC's outputs by k (its branches' last layers; the fold follows)."""
    assert layer.sk is not None and layer.conv is not None
    for p in (*layer.sk.parameters(), *layer.conv[2].parameters()):
        p.mul_(k)
    layer.fold()


def plain_forward(state: dict[str, torch.Tensor], config: SPANConfig, x: torch.Tensor) -> torch.Tensor:
    """The network built from a state dict by hand (no detection), in eval mode."""
    net = SPAN(config)
    result = net.load_state_dict(state, strict=False)  # a training file may lack eval_conv: eval() folds it
    assert not result.unexpected_keys and all(".eval_conv." in k for k in result.missing_keys)
    with torch.no_grad():
        return net.eval()(x)


def write(path, state: dict[str, torch.Tensor], wrapper: str) -> None:
    """`state` as the published files have it: plain, BasicSR's params / params_ema, DataParallel's `module.`."""
    if wrapper == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrapper: state, "iter": 5} if wrapper in ("params", "params_ema") else state, path)


def layout(name: str) -> tuple[SPAN, dict[str, torch.Tensor]]:
    """A tiny network and its state dict in one of the published layouts."""
    if name == "deploy":
        net = tiny(1)
        return net, net.deploy_state_dict()
    if name == "deploy-x3-nonorm":  # chaiNNer's / traiNNer's SPAN trained with norm=False: a `no_norm` buffer
        net = tiny(2, scale=3, norm=False, mid_feats=4, n_blocks=3)
        return net, net.deploy_state_dict()
    net = tiny(3)
    state = net.state_dict()
    if name == "training-unfused":
        state = {k: v for k, v in state.items() if ".eval_conv." not in k}
    return net, state


WRAPPERS = [("plain", ".pth"), ("params", ".pth"), ("params_ema", ".pth"), ("module", ".pth"),
            ("plain", ".safetensors"), ("module", ".safetensors")]  # fmt: skip


@pytest.mark.parametrize(("wrapper", "suffix"), WRAPPERS)
@pytest.mark.parametrize("kind", ["deploy", "deploy-x3-nonorm", "training", "training-unfused"])
def test_every_layout_and_wrapper_loads_by_detection(tmp_path, kind, wrapper, suffix):
    net, state = layout(kind)
    path = tmp_path / f"span{suffix}"
    write(path, state, wrapper)
    handle = load_model(path)
    expected = net.config if kind.startswith("training") else SPANConfig(**{**net.config.to_dict(), "gain": 0})
    assert handle.arch == "span" and handle.config == expected and handle.pixel_range == 1.0
    assert handle.receptive_radius() == 3 * net.config.n_blocks + 3
    x = torch.rand(2, 3, 11, 13)
    with torch.no_grad():
        out = handle.run(x)
    assert out.shape == (2, 3, 11 * net.config.scale, 13 * net.config.scale)
    assert torch.allclose(out, plain_forward(state, handle.config, x), atol=1e-5, rtol=0)
    assert 0.2 < float(out.mean()) < 0.8 and float(out.std()) > 0.01  # a picture, not a constant


def test_training_layout_folds_exactly_into_the_deploy_layout(tmp_path):
    torch.manual_seed(0)
    net = tiny(4, mid_feats=5, n_blocks=3)
    x = torch.rand(1, 3, 17, 19)
    with torch.no_grad():
        unfolded = net.train()(x)  # the branches: 1x1 skip + (1x1 -> 3x3 on a zero-padded input -> 1x1)
        folded = net.eval()(x)  # one 3x3 conv per layer
    assert torch.allclose(unfolded, folded, atol=1e-5, rtol=0)

    # a training file whose fused convs are stale (saved mid-training) loads as the fold of its branches
    state = {k: (torch.randn_like(v) if ".eval_conv." in k else v) for k, v in net.state_dict().items()}
    torch.save({"params": state}, tmp_path / "train.pth")
    save_file(net.deploy_state_dict(), str(tmp_path / "deploy.safetensors"))
    training, deploy = load_model(tmp_path / "train.pth"), load_model(tmp_path / "deploy.safetensors")
    assert len(deploy.state_dict()) == 2 * (2 + 3 * 3 + 1 + 1)  # eval_conv x (conv_1, 9 in blocks, conv_2), cat, up
    with torch.no_grad():
        assert torch.allclose(training.run(x), deploy.run(x), atol=1e-5, rtol=0)
        assert torch.allclose(training.run(x), folded, atol=1e-5, rtol=0)

    # weights changed in training are folded again on eval()
    trained = copy.deepcopy(net).train()
    with torch.no_grad():
        skip = trained.blocks()[1].c2_r.sk
        assert skip is not None
        skip.weight.add_(0.1)
        before = trained.eval()(x)
        assert (before - folded).abs().max() > 1e-2 and torch.allclose(before, trained.train()(x), atol=1e-5)
    assert not any(p.requires_grad for n, p in trained.named_parameters() if ".eval_conv." in n)


def test_the_published_deploy_layout_has_44_keys():
    net = SPAN(SPANConfig(scale=4, gain=2))
    keys = set(net.deploy_state_dict())
    assert len(keys) == 44 and "conv_cat.weight" in keys and "block_6.c3_r.eval_conv.bias" in keys
    assert all(
        k.startswith(("conv_1.eval_conv", "block_", "conv_cat", "conv_2.eval_conv", "upsampler.0")) for k in keys
    )
    # the published files' parameter counts (../shared/models/MANIFEST.tsv)
    assert sum(p.numel() for p in SPAN(SPANConfig(scale=2)).parameters()) == 410700
    assert sum(p.numel() for p in SPAN(SPANConfig(scale=4)).parameters()) == 426288


def test_wrong_files_are_one_error_naming_the_key_or_shape(tmp_path):
    _, state = layout("deploy")
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "block_2.c2_r.eval_conv.weight"}, "block_2.c2_r.eval_conv"),
        "shape": ({**state, "block_1.c3_r.eval_conv.weight": torch.zeros(6, 6, 1, 1)}, "block_1.c3_r.eval_conv.weight"),
        "cat": ({**state, "conv_cat.weight": torch.zeros(6, 23, 1, 1)}, r"conv_cat.weight has shape \(6, 23, 1, 1\)"),
        "up": ({**state, "upsampler.0.weight": torch.zeros(10, 6, 3, 3)}, r"upsampler.0.weight has shape \(10, 6"),
        "branch": ({k: v for k, v in tiny(5).state_dict().items() if k != "block_1.c1_r.conv.1.weight"},
                   "block_1.c1_r.conv.1.weight"),
    }  # fmt: skip
    for name, (broken, named) in cases.items():
        write(tmp_path / f"{name}.pth", broken, "plain")
        with pytest.raises(CheckpointError, match=named) as info:
            load_model(tmp_path / f"{name}.pth")
        assert "\n" not in str(info.value), name


def test_the_radius_is_exact_and_tight(tmp_path, monkeypatch):
    _, state = layout("deploy")
    save_file(state, str(tmp_path / "span.safetensors"))
    handle = load_model(tmp_path / "span.safetensors")
    assert handle.receptive_radius() == 9  # 1 + 3 * 2 + 1 + 1
    img = np.random.default_rng(0).uniform(0, 255, (50, 45, 3)).astype(np.float32)
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert tiled.exact and np.abs(tiled(img) - whole).max() < 1e-3
    monkeypatch.setattr(SPANFamily, "receptive_radius", lambda self, config, scale: 8)  # one pixel short
    assert np.abs(Upscaler(handle, device="cpu", precision="fp32", tile=16)(img) - whole).max() > 1e-3


def test_half_precision_runs_under_autocast(tmp_path):
    _, state = layout("training")
    torch.save(state, tmp_path / "span.pth")
    handle = load_model(tmp_path / "span.pth")
    img = np.random.default_rng(1).uniform(0, 255, (20, 24, 3)).astype(np.float32)
    full = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    half = Upscaler(handle, device="cpu", precision="bf16", tile=0)(img)
    assert half.dtype == np.float32 and np.abs(half - full).mean() < 1.0


def test_presets_and_saved_weights_round_trip(tmp_path):
    from superres.models import create_model, save_weights

    net = create_model("span", scale=2)
    assert isinstance(net, SPAN) and net.config.gain == 2 and net.config.n_feats == 48
    small = tiny(6)
    save_weights(small, tmp_path / "mine.safetensors")
    back = load_model(tmp_path / "mine.safetensors")
    x = torch.rand(1, 3, 9, 9)
    assert back.config == small.config
    with torch.no_grad():
        assert torch.equal(back.run(x), small(x))


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    _, state = layout("training")
    torch.save({"params_ema": state}, tmp_path / "span.pth")
    handle = load_model(tmp_path / "span.pth")
    export_onnx(handle, tmp_path / "x.onnx")
    img = np.random.default_rng(2).integers(0, 256, (21, 26, 3), dtype=np.uint8)
    torch_out = np.asarray(superres.upscale(img, model=tmp_path / "span.pth", precision="fp32", device="cpu"))
    onnx_out = np.asarray(superres.upscale(img, model=tmp_path / "x.onnx"))
    assert torch_out.shape == (42, 52, 3) and torch_out.std() > 5
    assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- published files

SPAN_FILES = sorted(f for f, row in manifest().items() if row["family"] == "span")


@needs_shared_models
@pytest.mark.parametrize("file", SPAN_FILES)
def test_published_files_load_by_detection(file):
    handle = load_detected(file, "span", (int(manifest()[file]["scales"]),))
    assert handle.config.gain == 0 and handle.config.n_blocks == 6 and handle.config.n_feats == 48


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("file", SPAN_FILES)
def test_published_files_score_their_set5_figure(file):
    row = manifest()[file]
    scale = int(row["scales"])
    psnr = set5_y_psnr(MODELS / file, scale)
    if row["published_set5"]:
        assert abs(psnr - published_set5(file, scale)) < 0.1, (psnr, published_set5(file, scale))
    else:
        assert abs(psnr - measured_set5(file, scale)) < 0.02
