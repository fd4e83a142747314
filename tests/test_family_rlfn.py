"""RLFN (models/rlfn.py): RLFN, RLFN-S and the pruned NTIRE layout load by detection alone, in every wrapper; the
network takes 0..255; it states no radius (ESA's outputs depend on the picture's size) and so gets approximate
tiles; tiny pictures run; ONNX export; and the published files score their Set5 figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import superres
import superres.models.rlfn  # registers the family (until models/__init__ imports it)
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
from superres.inference.upscaler import APPROXIMATE_MARGIN, Upscaler
from superres.models import create_model, load_model
from superres.models.rlfn import RLFN, RLFNConfig

LAYOUTS = {
    "rlfn": dict(scale=2, n_feats=6, mid_feats=6, esa_feats=4, n_blocks=2),  # RLFN and RLFN-S: mid = features
    "ntire": dict(scale=4, n_feats=6, mid_feats=8, esa_feats=5, n_blocks=3),  # the pruned entry: mid != features
}


def tiny(seed: int = 0, **fields) -> RLFN:
    """A small RLFN with random weights whose outputs look like 0..255 pixels (about 115, spread 40)."""
    torch.manual_seed(seed)
    net = RLFN(RLFNConfig(**(LAYOUTS["rlfn"] | fields)))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1 if p.ndim == 1 else 1 / p[0].numel() ** 0.5)
        net.conv_1.weight.div_(128)
        up = net.upsampler[0]
        assert isinstance(up, torch.nn.Conv2d) and up.bias is not None
        x = torch.rand(1, net.config.n_colors, 24, 24) * 255
        up.weight.mul_(40 / float(net(x).std()))
        up.bias.fill_(115)
    return net.eval()


def write(path, state: dict[str, torch.Tensor], wrapper: str) -> None:
    """`state` as published files have it: plain, BasicSR's params / params_ema, DataParallel's `module.`."""
    if wrapper == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrapper: state, "iter": 5} if wrapper in ("params", "params_ema") else state, path)


def plain_forward(state: dict[str, torch.Tensor], config: RLFNConfig, x: torch.Tensor) -> torch.Tensor:
    net = RLFN(config)
    net.load_state_dict(state)
    with torch.no_grad():
        return net.eval()(x)


WRAPPERS = [("plain", ".pth"), ("params", ".pth"), ("params_ema", ".pth"), ("module", ".pth"),
            ("plain", ".safetensors"), ("module", ".safetensors")]  # fmt: skip


@pytest.mark.parametrize(("wrapper", "suffix"), WRAPPERS)
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_every_layout_and_wrapper_loads_by_detection(tmp_path, kind, wrapper, suffix):
    net = tiny(1, **LAYOUTS[kind])
    state = net.state_dict()
    path = tmp_path / f"rlfn{suffix}"
    write(path, state, wrapper)
    handle = load_model(path)
    assert handle.arch == "rlfn" and handle.config == net.config and handle.pixel_range == 255.0
    assert handle.receptive_radius() is None
    x = torch.rand(2, 3, 17, 20) * 255
    with torch.no_grad():
        out = handle.run(x)
    s = net.config.scale
    assert out.shape == (2, 3, 17 * s, 20 * s)
    assert torch.allclose(out, plain_forward(state, handle.config, x), atol=1e-5, rtol=0)
    assert 50 < float(out.mean()) < 200 and float(out.std()) > 10


def test_upscale_feeds_0_to_255(tmp_path):
    net = tiny(2)
    torch.save(net.state_dict(), tmp_path / "rlfn.pth")
    img = np.random.default_rng(0).integers(0, 256, (20, 22, 3), dtype=np.uint8)
    out = np.asarray(superres.upscale(img, model=tmp_path / "rlfn.pth", precision="fp32", device="cpu"))
    with torch.no_grad():
        y = net(torch.from_numpy(img).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert out.shape == (40, 44, 3) and np.abs(out.astype(int) - np.clip(np.floor(y + 0.5), 0, 255)).max() <= 1


def test_wrong_files_are_one_error_naming_the_key_or_shape(tmp_path):
    state = tiny(3).state_dict()
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "block_2.esa.conv3.weight"}, "block_2.esa.conv3.weight"),
        "shape": ({**state, "block_1.c2_r.weight": torch.zeros(6, 6, 1, 1)}, r"block_1.c2_r.weight \(6, 6, 1, 1\)"),
        "up": ({**state, "upsampler.0.weight": torch.zeros(10, 6, 3, 3)}, r"upsampler.0.weight has shape \(10, 6"),
        "numbering": ({k.replace("block_2.", "block_3."): v for k, v in state.items()}, r"found \[1, 3\]"),
    }
    for name, (broken, named) in cases.items():
        write(tmp_path / f"{name}.pth", broken, "plain")
        with pytest.raises(CheckpointError, match=named) as info:
            load_model(tmp_path / f"{name}.pth")
        assert "\n" not in str(info.value), name


def test_no_radius_outputs_depend_on_the_picture_size_and_tiles_are_approximate(tmp_path):
    net = tiny(4)
    x = torch.rand(1, 3, 40, 61) * 255
    with torch.no_grad():  # one more column 60 pixels away moves ESA's upsampling grid: the left edge changes
        assert (net(x)[..., :20] - net(x[..., :60])[..., :20]).abs().max() > 1e-2
    torch.save(net.state_dict(), tmp_path / "rlfn.pth")
    handle = load_model(tmp_path / "rlfn.pth")
    img = np.random.default_rng(1).uniform(0, 255, (50, 45, 3)).astype(np.float32)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert not tiled.exact and tiled.margin == APPROXIMATE_MARGIN
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    assert np.abs(tiled(img) - whole).mean() < 1.0


def test_pictures_smaller_than_esa_needs_run(tmp_path):
    net = tiny(5)
    with torch.no_grad():
        for h, w in ((1, 1), (8, 8), (14, 30), (15, 15)):
            y = net(torch.rand(1, 3, h, w) * 255)
            assert y.shape == (1, 3, 2 * h, 2 * w) and torch.isfinite(y).all()
    torch.save(net.state_dict(), tmp_path / "rlfn.pth")
    img = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    assert np.asarray(superres.upscale(img, model=tmp_path / "rlfn.pth", device="cpu")).shape == (12, 18, 3)


def test_half_precision_runs_under_autocast(tmp_path):
    torch.save(tiny(6).state_dict(), tmp_path / "rlfn.pth")
    handle = load_model(tmp_path / "rlfn.pth")
    img = np.random.default_rng(3).uniform(0, 255, (20, 24, 3)).astype(np.float32)
    full = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    half = Upscaler(handle, device="cpu", precision="bf16", tile=0)(img)
    assert half.dtype == np.float32 and np.abs(half - full).mean() < 2.0


def test_presets_are_the_published_architectures():
    # parameter counts of the published files (../shared/models/MANIFEST.tsv)
    assert sum(p.numel() for p in create_model("rlfn", scale=4).parameters()) == 543740
    assert sum(p.numel() for p in create_model("rlfn-s", scale=2).parameters()) == 454620
    assert sum(p.numel() for p in create_model("rlfn-ntire", scale=4).parameters()) == 317218


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    torch.save({"params": tiny(7, **LAYOUTS["ntire"]).state_dict()}, tmp_path / "rlfn.pth")
    handle = load_model(tmp_path / "rlfn.pth")
    export_onnx(handle, tmp_path / "x.onnx")
    img = np.random.default_rng(4).integers(0, 256, (21, 26, 3), dtype=np.uint8)
    torch_out = np.asarray(
        superres.upscale(img, scale=4, model=tmp_path / "rlfn.pth", precision="fp32", device="cpu", tile=0)
    )
    onnx_out = np.asarray(superres.upscale(img, scale=4, model=tmp_path / "x.onnx", tile=0))
    assert torch_out.shape == (84, 104, 3) and torch_out.std() > 5
    assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- published files

RLFN_FILES = sorted(f for f, row in manifest().items() if row["family"] == "rlfn")


@needs_shared_models
@pytest.mark.parametrize("file", RLFN_FILES)
def test_published_files_load_by_detection(file):
    handle = load_detected(file, "rlfn", (int(manifest()[file]["scales"]),))
    assert handle.config.esa_feats == 16


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("file", RLFN_FILES)
def test_published_files_score_their_set5_figure(file):
    row = manifest()[file]
    scale = int(row["scales"])
    psnr = set5_y_psnr(MODELS / file, scale)
    if row["published_set5"]:
        assert abs(psnr - published_set5(file, scale)) < 0.1, (psnr, published_set5(file, scale))
    else:
        assert abs(psnr - measured_set5(file, scale)) < 0.02
