"""SRVGGNetCompact (Real-ESRGAN "Compact"): its layout and shapes, PReLU and weightless activations, the exact
receptive radius, and realesr-animevideov3 in ../shared/models.

The reference network here follows Real-ESRGAN's srvgg_arch.py (a ModuleList `body` of conv / activation pairs, a
pixel shuffle, the nearest-upsampled input added), written independently of superres.models.srvgg.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import superres
import superres.models.rrdbnet
import superres.models.srvgg
from shared_models import MODELS, manifest, measured_set5, needs_benchmark, needs_shared_models, set5_y_psnr
from superres.errors import CheckpointError, ConfigError, UnknownModelError
from superres.inference.upscaler import Upscaler
from superres.models import count_parameters, create_model, load_model, load_weights, save_weights, summarize
from superres.models.family import detect_family, families
from superres.models.srvgg import SRVGGConfig, SRVGGFamily, SRVGGNetCompact


class CompactRef(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact(num_in_ch=c, num_out_ch=c, num_feat=nf, num_conv=nc, upscale=s, act_type)."""

    def __init__(self, s: int = 4, nf: int = 8, nc: int = 3, act: str = "prelu", c: int = 3) -> None:
        super().__init__()
        self.s = s

        def make_act() -> nn.Module:
            return {"prelu": lambda: nn.PReLU(nf), "relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(0.1)}[act]()

        self.body = nn.ModuleList([nn.Conv2d(c, nf, 3, 1, 1), make_act()])
        for _ in range(nc):
            self.body.extend([nn.Conv2d(nf, nf, 3, 1, 1), make_act()])
        self.body.append(nn.Conv2d(nf, c * s * s, 3, 1, 1))

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.s) + F.interpolate(x, scale_factor=self.s, mode="nearest")


def randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * (0.2 if p.ndim == 4 else 0.1))
    return net.eval()


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


# ---------------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("scale,n_convs,n_colors", [(4, 3, 3), (2, 0, 3), (3, 5, 1), (1, 2, 3)])
def test_official_layout_and_shapes(tmp_path, scale, n_convs, n_colors):
    ref = randomized(CompactRef(scale, nc=n_convs, c=n_colors))
    state = ref.state_dict()
    assert max(int(k.split(".")[1]) for k in state) == 2 * n_convs + 2 and state["body.1.weight"].shape == (8,)
    torch.save({"params": state}, tmp_path / "compact.pth")  # Real-ESRGAN's wrapper for these
    handle = load_model(tmp_path / "compact.pth")
    assert handle.arch == "srvgg" and handle.scales == (scale,) and handle.pixel_range == 1.0
    assert handle.config == SRVGGConfig(scale=scale, n_feats=8, n_convs=n_convs, n_colors=n_colors, act="prelu")
    assert handle.describe() == f"SRVGGNetCompact x{scale}, {n_convs} convs x 8 features, PReLU"
    x = torch.rand(2, n_colors, 9, 11)
    assert torch.allclose(handle.run(x, scale), run(ref, x), atol=1e-5)


def test_weightless_activations_are_read_as_leaky_relu_unless_the_file_says(tmp_path, caplog):
    """ReLU and LeakyReLU have no weights: the file shows only convs. The official default is PReLU, which has;
    without it, superres assumes LeakyReLU(0.1) and says so; its own files name the activation."""
    leaky, relu = randomized(CompactRef(act="leakyrelu"), 1), randomized(CompactRef(act="relu"), 1)
    assert set(leaky.state_dict()) == set(relu.state_dict()) and "body.1.weight" not in leaky.state_dict()
    torch.save(leaky.state_dict(), tmp_path / "weightless.pth")
    with caplog.at_level(logging.WARNING, logger="superres.models.srvgg"):
        handle = load_model(tmp_path / "weightless.pth")
    assert handle.config.act == "leakyrelu" and "assuming LeakyReLU(0.1)" in caplog.text
    x = torch.rand(1, 3, 7, 8)
    assert torch.allclose(handle.run(x, 4), run(leaky, x), atol=1e-5)
    assert not torch.allclose(handle.run(x, 4), run(relu, x), atol=1e-3)  # the assumption matters
    net = SRVGGNetCompact(SRVGGConfig(n_feats=8, n_convs=3, act="relu")).eval()
    net.load_state_dict(relu.state_dict())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="superres.models.srvgg"):
        again = load_weights(save_weights(net, tmp_path / "relu.safetensors"))
    assert again.config.act == "relu" and not caplog.text
    assert torch.allclose(again.run(x, 4), run(relu, x), atol=1e-5)


def test_config_checks():
    with pytest.raises(ConfigError, match="act must be"):
        SRVGGConfig(act="gelu")
    with pytest.raises(ConfigError, match="scale"):
        SRVGGConfig(scale=0)
    with pytest.raises(ConfigError, match="n_convs"):
        SRVGGConfig(n_convs=-1)
    assert SRVGGConfig.from_dict({**SRVGGConfig(act="relu").to_dict(), "other": 0}) == SRVGGConfig(act="relu")


def test_presets_are_the_compact_models():
    assert count_parameters(create_model("srvgg-animevideo")) == 621_424  # realesr-animevideov3
    general = create_model("srvgg-compact")  # realesr-general-x4v3
    assert general.config == SRVGGConfig(scale=4, n_feats=64, n_convs=32) and count_parameters(general) == 1_213_296
    assert create_model("srvgg-compact", scale=2).scales == (2,)
    with pytest.raises(ConfigError, match="one scale"):
        create_model("srvgg-compact", scale=(2, 4))
    with pytest.raises(UnknownModelError):
        create_model("srvgg")


def base_state(**kw) -> dict:
    return randomized(CompactRef(**kw)).state_dict()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s.pop("body.3.weight"), r"body\.3\.weight is missing"),
        (lambda s: s.update({"body.4.weight": torch.zeros(8, 6, 3, 3)}), r"body\.4\.weight has shape \(8, 6, 3, 3\)"),
        (lambda s: s.update({"body.5.weight": torch.zeros(1)}), r"body\.5 should be a PReLU with 8 weights"),
        (lambda s: s.pop("body.6.bias"), r"body\.6 should be a conv"),
    ],
)
def test_a_compact_file_that_does_not_fit_is_named(tmp_path, edit, message):
    state = base_state()
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "bad.pth")


# ---------------------------------------------------------------------------------------------- not mistaken


def test_body_keys_alone_do_not_claim_a_file():
    """Only `body.{i}` keys, but shapes no SRVGGNetCompact has: not claimed (and never claimed by EDSR/MDSR)."""
    ours = SRVGGFamily()
    good = base_state()
    assert ours.recognize(good) and detect_family(good)[0].name == "srvgg"
    for family in families().values():
        if family.name != "srvgg":
            assert not family.recognize(family.rename(good)), family.name
    odd_last = {k: v for k, v in good.items() if not k.startswith("body.8.")}  # ends on an activation
    not_colours = {**good, "body.8.weight": torch.zeros(40, 8, 3, 3), "body.8.bias": torch.zeros(40)}  # 40 != 3*s*s
    wide_input = {**good, "body.0.weight": torch.zeros(8, 64, 3, 3)}  # 64 input channels: not an image
    one_by_one = {**good, "body.0.weight": torch.zeros(8, 3, 1, 1)}
    extra = {**good, "head.0.weight": torch.zeros(8, 3, 3, 3)}
    for state in (odd_last, not_colours, wide_input, one_by_one, extra):
        assert not ours.recognize(ours.rename(state))


def test_edsr_mdsr_and_rrdbnet_files_are_not_claimed():
    from superres.models.rrdbnet import RRDBNet, RRDBNetConfig

    ours = SRVGGFamily()
    edsr = create_model("edsr-tiny", scale=4).state_dict()
    mdsr = create_model("mdsr-tiny").state_dict()
    body_only = {k: v for k, v in edsr.items() if k.startswith("body.")}  # EDSR's body: body.N.body.K and body.4
    rrdb = RRDBNet(RRDBNetConfig(n_feats=8, n_blocks=1, growth=4)).state_dict()
    for state in (edsr, mdsr, body_only, rrdb):
        assert not ours.recognize(ours.rename(state))


@needs_shared_models
def test_no_other_shared_file_is_claimed_and_ours_only_by_us():
    from superres.models.checkpoints import normalize_state_dict, read_weights

    ours = SRVGGFamily()
    for file, row in manifest().items():
        state = normalize_state_dict(read_weights(MODELS / file)[0])
        assert ours.recognize(ours.rename(state)) == (row["family"] == "srvgg"), file
        if row["family"] == "srvgg":
            assert detect_family(state)[0].name == "srvgg"


# ---------------------------------------------------------------------------------------------- inference


def test_radius_is_exact_and_tiles_are_exact():
    net = randomized(SRVGGNetCompact(SRVGGConfig(scale=2, n_feats=8, n_convs=4)), seed=3)
    handle = superres.models.as_handle(net)
    radius = handle.receptive_radius()
    assert radius == 6  # 4 convs + the first and the last
    x = torch.rand(1, 3, 31, 31)
    bumped = x.clone()
    bumped[0, :, 15, 15] += 0.5
    changed = (run(net, bumped) - run(net, x)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    # LR rows 15 - radius .. 15 + radius, i.e. output rows 2 * (15 - r) .. 2 * (15 + r) + 1
    assert rows.min() == 2 * (15 - radius) and rows.max() == 2 * (15 + radius) + 1
    img = np.random.default_rng(2).random((45, 50, 3)).astype(np.float32) * 255
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert tiled.exact and tiled.margin == radius and np.abs(tiled(img) - whole).max() < 1e-3


def test_upscale_summary_and_onnx(tmp_path):
    ref = randomized(CompactRef(3), seed=4)
    torch.save({"params": ref.state_dict()}, tmp_path / "x3.pth")
    img = np.random.default_rng(3).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    out = superres.upscale(img, model=tmp_path / "x3.pth", precision="fp32", device="cpu")
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    expected = np.clip(np.floor(run(ref, x)[0].permute(1, 2, 0).numpy() * 255 + 0.5), 0, 255)
    assert out.shape == (51, 69, 3) and np.abs(out.astype(int) - expected).max() <= 1
    rows = summarize(load_model(tmp_path / "x3.pth"), (10, 12))
    assert [r.name for r in rows][-2:] == ["body.8", "upsampler"] and rows[-1].output_shape == (3, 30, 36)
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    export_onnx(load_model(tmp_path / "x3.pth"), tmp_path / "x3.onnx")
    assert np.abs(superres.upscale(img, model=tmp_path / "x3.onnx").astype(int) - out).max() <= 1


# ---------------------------------------------------------------------------------------------- the real files


@needs_shared_models
def test_animevideov3_pth_and_safetensors_are_one_model():
    pth = load_model(MODELS / "realesr-animevideov3.pth")  # {'params': ...}, saved on CUDA
    st = load_model(MODELS / "realesr-animevideov3.safetensors")
    assert pth.config == st.config == SRVGGConfig(scale=4, n_feats=64, n_convs=16, n_colors=3, act="prelu")
    assert pth.parameter_count == st.parameter_count == int(manifest()["realesr-animevideov3.pth"]["params"])
    assert all(torch.equal(a, b) for a, b in zip(pth.state_dict().values(), st.state_dict().values(), strict=True))
    assert pth.receptive_radius() == 18


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("file", ["realesr-animevideov3.pth", "realesr-animevideov3.safetensors"])
def test_animevideov3_set5(file):
    assert abs(set5_y_psnr(MODELS / file, 4) - measured_set5(file, 4)) <= 0.02  # 28.23


def test_a_near_miss_names_what_does_not_fit(tmp_path):
    from superres.errors import CheckpointError
    from superres.models import create_model, load_model

    state = create_model("srvgg-animevideo").state_dict()
    state["body.0.weight"] = state["body.0.weight"][:, :2]  # two input channels: no such SRVGG
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "odd.pth")
    assert "None" not in str(e.value) and "body.0" in str(e.value)
