"""The SMFANet family (models/smfanet.py): its published layouts load by detection alone, wrong files are one
CheckpointError, the real checkpoints reach their published Set5 figures in fp32 and bf16, the family states no
radius, inputs under 8 pixels are padded, and the ONNX export (whose padding, pooling and resizing are gathers)
matches PyTorch bit for bit in those layers and within a gray level end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import superres
import superres.models.smfanet  # registers the family until models/__init__.py imports it
from shared_models import (
    MODELS,
    claimants,
    image,
    load_detected,
    manifest,
    measured_set5,
    needs_benchmark,
    needs_shared_models,
    published_set5,
    set5_y_psnr,
    write,
)
from superres.errors import CheckpointError
from superres.inference.upscaler import Upscaler
from superres.models.smfanet import (
    SMFA,
    SMFANet,
    SMFANetConfig,
    adaptive_max_pool_exportable,
    nearest_exportable,
    pad_exportable,
)

TINY = SMFANetConfig(scale=2, dim=8, n_blocks=2, ffn_hidden=16, partial=4, lde_hidden=16)

# Every SMFANet file of ../shared/models, with its scale.
REAL = {"smfanet_df2k_x2.safetensors": 2, "smfanet_df2k_x4.safetensors": 4}


def tiny_net(seed: int = 0) -> SMFANet:
    """Random weights, alpha and belt included (belt starts at zero, which would hide the variance term)."""
    torch.manual_seed(seed)
    net = SMFANet(TINY).eval()
    with torch.no_grad():
        for block in net.modules():
            if isinstance(block, SMFA):
                block.alpha.uniform_(0.5, 1.5)
                block.belt.uniform_(-1.0, 1.0)
    return net


LAYOUTS = [
    ("params.pth", "params", ""),  # the official SMFANet_DF2K_100w_x*SR.pth
    ("plain.safetensors", None, ""),  # smfanet_df2k_x*.safetensors: the inner dict
    ("params_ema.pth", "params_ema", ""),
    ("plain.pth", None, ""),
    ("dataparallel.pth", "params", "module."),
    ("dataparallel.safetensors", None, "module."),
]


@pytest.mark.parametrize(("name", "wrapper", "prefix"), LAYOUTS)
def test_each_layout_loads_by_detection(tmp_path, name, wrapper, prefix):
    net = tiny_net()
    write(net.state_dict(), tmp_path / name, wrapper, prefix)
    handle = superres.load_model(tmp_path / name)
    assert handle.arch == "smfanet" and handle.config == TINY and handle.scales == (2,)
    assert handle.pixel_range == 1.0 and handle.receptive_radius() is None
    assert handle.describe() == "SMFANet x2, 2 blocks x 8 features"
    x = torch.rand(1, 3, 19, 26)
    with torch.no_grad():
        out = handle.run(x, 2)
        assert out.shape == (1, 3, 38, 52) and torch.allclose(out, net(x), atol=1e-5)


def test_config_round_trips_and_save_weights_reloads(tmp_path):
    assert SMFANetConfig.from_dict(TINY.to_dict()) == TINY
    write(tiny_net().state_dict(), tmp_path / "s.pth", "params")
    handle = superres.load_model(tmp_path / "s.pth")
    superres.save_weights(handle, tmp_path / "ours.safetensors")
    assert superres.load_model(tmp_path / "ours.safetensors").config == TINY


def test_no_other_family_claims_its_layout():
    assert claimants(tiny_net().state_dict()) == ["smfanet"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.pop("feats.1.smfa.lde.conv_1.weight"), "feats.1.smfa.lde.conv_1.weight"),  # strict loading
        (lambda s: s.pop("feats.0.pcfn.conv_1.weight"), "feats.0.pcfn.conv_1.weight"),  # read_config needs it
        (lambda s: s.pop("feats.1.smfa.belt"), "feats.1.smfa.belt"),
        (lambda s: s.update({"to_img.0.weight": torch.zeros(10, 8, 3, 3)}), "to_img.0.weight"),
        (lambda s: s.update({"feats.0.smfa.linear_0.weight": torch.zeros(12, 8, 1, 1)}), "linear_0.weight"),
        (lambda s: s.update({"feats.1.smfa.dw_conv.weight": torch.zeros(8, 1, 5, 5)}), "feats.1.smfa.dw_conv.weight"),
    ],
)
def test_a_wrong_file_is_one_error_naming_the_key(tmp_path, change, named):
    state = tiny_net().state_dict()
    change(state)
    write(state, tmp_path / "s.pth", "params")
    with pytest.raises(CheckpointError) as caught:
        superres.load_model(tmp_path / "s.pth")
    assert named in caught.value.message and "\n" not in caught.value.message


def test_exportable_pooling_and_resizing_equal_pytorchs():
    """The gathers the ONNX graph holds compute what F.adaptive_max_pool2d and nearest F.interpolate do, bit for
    bit, for every size the network meets (cells = size // 8, sizes not multiples of 8 included)."""
    torch.manual_seed(1)
    for h, w in itertools.product([*range(8, 41), 63, 100, 257], [8, 15, 16, 17, 45, 129]):
        x = torch.randn(1, 2, h, w)
        cells = (h // 8, w // 8)
        pooled = F.adaptive_max_pool2d(x, cells)
        assert torch.equal(adaptive_max_pool_exportable(x, 8), pooled), (h, w)
        assert torch.equal(nearest_exportable(pooled, cells, (h, w)), F.interpolate(pooled, (h, w)))


def test_small_inputs_are_padded_to_eight():
    """Under 8 LR pixels the official network has no pooling cells; this one repeats the last row or column up
    to 8 and crops the output back."""
    net = tiny_net()
    x = torch.rand(1, 3, 5, 11)
    with torch.no_grad():
        out = net(x)
        padded = net(F.pad(x, (0, 0, 0, 3), mode="replicate"))
    assert out.shape == (1, 3, 10, 22) and torch.equal(out, padded[..., :10, :])
    for h, w in [(5, 11), (1, 1), (2, 30), (8, 8), (9, 12)]:  # the ONNX graph's padding is the same, and none at 8+
        x = torch.rand(1, 3, h, w)
        padded = F.pad(x, (0, max(8 - w, 0), 0, max(8 - h, 0)), mode="replicate")
        assert torch.equal(pad_exportable(x, 8), padded)
    img = image(3, 4)
    assert np.asarray(superres.upscale(img, scale=2, model=superres.models.as_handle(net), device="cpu")).shape == (
        6,
        8,
        3,
    )


def test_variance_and_pooling_see_the_whole_picture_and_tiles_are_approximate():
    net = tiny_net()
    x = torch.rand(1, 3, 40, 40)
    y = x.clone()
    y[..., 39, 39] += 0.5
    with torch.no_grad():
        assert (net(x)[..., :3, :3] - net(y)[..., :3, :3]).abs().max() > 0
    handle = superres.models.as_handle(net)
    img = image(50, 45).astype(np.float32)
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert not tiled.exact and np.abs(tiled(img) - whole).mean() < 5
    half = Upscaler(handle, device="cpu", precision="bf16", tile=0)(img)  # nothing breaks under autocast
    assert np.isfinite(half).all() and np.abs(half - whole).mean() < 1.0


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    write(tiny_net().state_dict(), tmp_path / "s.pth", "params")
    export_onnx(superres.load_model(tmp_path / "s.pth"), tmp_path / "x.onnx")
    # the graph was traced at 32 x 32: other sizes, 8 not dividing them, and under 8 (padded in the graph too)
    for h, w in [(21, 26), (16, 40), (9, 33), (5, 6)]:
        img = image(h, w)
        torch_out = np.asarray(superres.upscale(img, scale=2, model=tmp_path / "s.pth", precision="fp32", device="cpu"))
        onnx_out = np.asarray(superres.upscale(img, scale=2, model=tmp_path / "x.onnx"))
        assert torch_out.shape == onnx_out.shape == (2 * h, 2 * w, 3)
        assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- the real files


@needs_shared_models
def test_every_real_file_is_listed_here():
    assert {f for f, row in manifest().items() if row["family"] == "smfanet"} == set(REAL)


@needs_shared_models
@pytest.mark.parametrize("file", sorted(REAL))
def test_real_file_loads_by_detection(file):
    load_detected(file, "smfanet", (REAL[file],))


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("file", sorted(REAL))
def test_real_file_reaches_its_set5_figure_in_fp32_and_bf16(file):
    scale = REAL[file]
    fp32 = set5_y_psnr(MODELS / file, scale)
    assert abs(fp32 - published_set5(file, scale)) < 0.1
    assert abs(fp32 - measured_set5(file, scale)) < 0.02
    bf16 = set5_y_psnr(MODELS / file, scale, precision="bf16")
    assert fp32 - bf16 < 0.05  # what SMFANetFamily.precisions claims (measured: under 0.008 dB)
