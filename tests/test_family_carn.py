"""The CARN-M family (models/carn.py): one network for x2, x3 and x4 whose published layout loads by detection
alone, wrong files are one CheckpointError, the real checkpoint reaches its measured Set5 figures in fp32 and
bf16, tiles cut with the stated radius are exact (and the radius is tight), and the ONNX export matches PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import superres
import superres.models.carn  # registers the family until models/__init__.py imports it
from shared_models import (
    MODELS,
    claimants,
    image,
    load_detected,
    manifest,
    measured_set5,
    needs_benchmark,
    needs_shared_models,
    set5_y_psnr,
    write,
)
from superres.errors import CheckpointError
from superres.inference.upscaler import Upscaler
from superres.models.carn import CARNM, CARNMConfig

TINY = CARNMConfig(scales=(2, 3, 4), n_feats=8, groups=4, n_blocks=2, n_units=2)
TINY_RADIUS = 1 + 2 * 2 * 2 + 2


def tiny_net(config: CARNMConfig = TINY, seed: int = 0) -> CARNM:
    torch.manual_seed(seed)
    return CARNM(config).eval()


LAYOUTS = [
    ("plain.pth", None, ""),  # the official carn_m.pth
    ("plain.safetensors", None, ""),  # carn_m.safetensors
    ("dataparallel.pth", None, "module."),
    ("params.pth", "params", ""),
    ("params_ema.safetensors", None, "module."),
    ("params_ema.pth", "params_ema", ""),
]


@pytest.mark.parametrize(("name", "wrapper", "prefix"), LAYOUTS)
def test_each_layout_loads_by_detection(tmp_path, name, wrapper, prefix):
    net = tiny_net()
    write(net.state_dict(), tmp_path / name, wrapper, prefix)
    handle = superres.load_model(tmp_path / name)
    assert handle.arch == "carn_m" and handle.config == TINY and handle.scales == (2, 3, 4)
    assert handle.pixel_range == 1.0 and handle.n_colors == 3
    assert (
        handle.describe()
        == "CARN-M x2, x3, x4, 2 cascading blocks x 2 uses of a grouped residual block, 8 features, groups 4"
    )
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        for s in (2, 3, 4):
            assert handle.receptive_radius(s) == TINY_RADIUS
            out = handle.run(x, s)
            assert out.shape == (1, 3, 11 * s, 13 * s) and torch.allclose(out, net(x, s), atol=1e-5)


def test_the_mean_shift_is_the_files_and_counts_as_parameters(tmp_path):
    """The shifters are 1x1 convs read from the file (as the official network keeps them): a file with another
    mean gives another output; they count in the parameter total, as in MANIFEST."""
    net = tiny_net()
    state = net.state_dict()
    state["sub_mean.shifter.bias"] = torch.tensor([-0.1, -0.2, -0.3])
    write(state, tmp_path / "other_mean.pth")
    handle = superres.load_model(tmp_path / "other_mean.pth")
    assert torch.equal(handle.state_dict()["sub_mean.shifter.bias"], state["sub_mean.shifter.bias"])
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert (handle.run(x, 2) - net(x, 2)).abs().max() > 1e-4
    assert handle.parameter_count == sum(v.numel() for v in state.values())
    assert not any(p.requires_grad for p in net.sub_mean.parameters())


def test_a_single_scale_network_loads_too(tmp_path):
    """The official code's single-scale CARN-M has one `upsample.up` branch; its scale is read off its shapes."""
    for scale in (2, 3, 4):
        config = CARNMConfig(scales=(scale,), multi_scale=False, n_feats=8, n_blocks=1, n_units=2)
        net = tiny_net(config)
        assert any(k.startswith("upsample.up.body.0.") for k in net.state_dict())
        write(net.state_dict(), tmp_path / f"x{scale}.pth")
        handle = superres.load_model(tmp_path / f"x{scale}.pth")
        assert handle.config == config and handle.scales == (scale,)
        x = torch.rand(1, 3, 7, 8)
        with torch.no_grad():
            assert torch.allclose(handle.run(x), net(x), atol=1e-5)


def test_config_round_trips_and_save_weights_reloads(tmp_path):
    assert CARNMConfig.from_dict(TINY.to_dict()) == TINY
    write(tiny_net().state_dict(), tmp_path / "carn.pth")
    handle = superres.load_model(tmp_path / "carn.pth")
    superres.save_weights(handle, tmp_path / "ours.safetensors")
    assert superres.load_model(tmp_path / "ours.safetensors").config == TINY


def test_no_other_family_claims_its_layout():
    assert claimants(tiny_net().state_dict()) == ["carn_m"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.pop("b2.b1.body.2.weight"), "b2.b1.body.2.weight"),  # strict loading names it
        (lambda s: s.pop("b1.b1.body.0.weight"), "b1.b1.body.0.weight"),  # read_config needs it
        (lambda s: s.update({"upsample.up3.body.0.weight": torch.zeros(40, 2, 3, 3)}), "upsample.up3.body.0.weight"),
        (lambda s: s.update({"c2.body.0.weight": torch.zeros(8, 16, 1, 1)}), "c2.body.0.weight"),
        (lambda s: s.update({"b1.b1.body.4.weight": torch.zeros(8, 8, 3, 3)}), "b1.b1.body.4.weight"),
        (lambda s: s.pop("upsample.up4.body.3.weight"), "upsample.up4.body"),
    ],
)
def test_a_wrong_file_is_one_error_naming_the_key(tmp_path, change, named):
    state = tiny_net().state_dict()
    change(state)
    write(state, tmp_path / "carn.pth")
    with pytest.raises(CheckpointError) as caught:
        superres.load_model(tmp_path / "carn.pth")
    assert named in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiles_cut_with_the_radius_are_exact(scale):
    handle = superres.models.as_handle(tiny_net())
    img = image(50, 45).astype(np.float32)
    whole = Upscaler(handle, scale, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, scale, device="cpu", precision="fp32", tile=16)
    assert tiled.exact and whole.shape == (50 * scale, 45 * scale, 3)
    assert np.abs(tiled(img) - whole).max() < 1e-3


def gradient_reach(net: CARNM, scale: int, size: int = 61) -> tuple[int, int, int, int]:
    """How far (top, bottom, left, right, in LR pixels) the input pixels that move the outputs of the centre
    LR pixel reach."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    net(x, scale)[0, :, c * scale : (c + 1) * scale, c * scale : (c + 1) * scale].sum().backward()
    assert x.grad is not None
    rows, cols = x.grad[0].abs().sum(0).nonzero().unbind(1)
    return c - int(rows.min()), int(rows.max()) - c, c - int(cols.min()), int(cols.max()) - c


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_no_output_reaches_beyond_the_radius(scale):
    assert max(gradient_reach(tiny_net(), scale, size=41)) <= TINY_RADIUS


def test_runs_under_autocast():
    handle = superres.models.as_handle(tiny_net())
    img = image(30, 28).astype(np.float32)
    for scale in (2, 3, 4):
        whole = Upscaler(handle, scale, device="cpu", precision="fp32", tile=0)(img)
        half = Upscaler(handle, scale, device="cpu", precision="bf16", tile=0)(img)
        assert np.isfinite(half).all() and np.abs(half - whole).mean() < 1.0


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    write(tiny_net().state_dict(), tmp_path / "carn.pth")
    handle = superres.load_model(tmp_path / "carn.pth")
    img = image(21, 26)
    for scale in (3, 4):  # a multi-scale network: one file per scale
        export_onnx(handle, tmp_path / f"x{scale}.onnx", scale=scale)
        torch_out = np.asarray(
            superres.upscale(img, scale=scale, model=tmp_path / "carn.pth", precision="fp32", device="cpu")
        )
        onnx_out = np.asarray(superres.upscale(img, scale=scale, model=tmp_path / f"x{scale}.onnx"))
        assert torch_out.shape == onnx_out.shape == (21 * scale, 26 * scale, 3)
        assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- the real file

# CARN-M's published figures (Ahn et al., table) are "as recalled" in MANIFEST and x2's is 0.15 dB under what the
# file measures: each scale is held to MANIFEST's measurement (0.02 dB), and to the published figure where that
# is within 0.1 dB of the measurement.
PUBLISHED = {2: 37.53, 3: 33.99, 4: 31.92}


@needs_shared_models
def test_the_real_file_is_the_only_one():
    assert [f for f, row in manifest().items() if row["family"] == "carn_m"] == ["carn_m.safetensors"]


@needs_shared_models
def test_real_file_loads_by_detection_and_its_radius_is_tight():
    handle = load_detected("carn_m.safetensors", "carn_m", (2, 3, 4))
    for scale in (2, 3, 4):
        assert handle.receptive_radius(scale) == 21
        assert gradient_reach(handle.net, scale, size=45) == (21, 21, 21, 21)  # type: ignore[arg-type]


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_real_file_reaches_its_set5_figure_in_fp32_and_bf16(scale):
    file = "carn_m.safetensors"
    fp32 = set5_y_psnr(MODELS / file, scale)
    measured = measured_set5(file, scale)
    assert abs(fp32 - measured) < 0.02
    if abs(PUBLISHED[scale] - measured) <= 0.1:
        assert abs(fp32 - PUBLISHED[scale]) < 0.1
    bf16 = set5_y_psnr(MODELS / file, scale, precision="bf16")
    assert fp32 - bf16 < 0.05  # what CARNMFamily.precisions claims (measured: under 0.002 dB)
