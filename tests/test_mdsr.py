"""MDSR: the official EDSR-PyTorch layout loads strictly and computes the same function; detection; tiling
at every scale; moving weights between EDSR and MDSR."""

import numpy as np
import pytest
import torch
from torch import nn

from superres.errors import CheckpointError, ConfigError
from superres.inference.upscaler import MIN_TILE, Upscaler
from superres.models import MDSR, MDSRConfig, count_parameters, create_model, init_from, load_model, save_weights


# An MDSR written the way EDSR-PyTorch's model/mdsr.py and model/common.py write it (module for module),
# independently of superres's model file: the reference that official checkpoints were made with.
class _OfficialResBlock(nn.Module):
    def __init__(self, n_feats, kernel_size):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
            nn.ReLU(True),
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
        )

    def forward(self, x):
        return self.body(x) + x


def _official_upsampler(scale, n_feats):
    layers = []
    if scale == 3:
        layers += [nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1), nn.PixelShuffle(3)]
    else:
        for _ in range(int(np.log2(scale))):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


class _OfficialMeanShift(nn.Conv2d):
    def __init__(self, sign):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * 255 * torch.tensor((0.4488, 0.4371, 0.4040))
        for p in self.parameters():
            p.requires_grad = False


class OfficialMDSR(nn.Module):
    def __init__(self, n_resblocks, n_feats, scales=(2, 3, 4)):
        super().__init__()
        self.scale_idx = 0
        self.sub_mean = _OfficialMeanShift(-1)
        self.add_mean = _OfficialMeanShift(+1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.pre_process = nn.ModuleList(
            [nn.Sequential(_OfficialResBlock(n_feats, 5), _OfficialResBlock(n_feats, 5)) for _ in scales]
        )
        self.body = nn.Sequential(
            *[_OfficialResBlock(n_feats, 3) for _ in range(n_resblocks)], nn.Conv2d(n_feats, n_feats, 3, padding=1)
        )
        self.upsample = nn.ModuleList([_official_upsampler(s, n_feats) for s in scales])
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3, 3, padding=1))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        x = self.pre_process[self.scale_idx](x)
        x = self.body(x) + x
        return self.add_mean(self.tail(self.upsample[self.scale_idx](x)))


def _randomize(model: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


@pytest.mark.parametrize("preset, blocks, expected", [("mdsr-baseline", 16, 3_227_203), ("mdsr", 80, 7_953_987)])
def test_parameter_counts_match_the_official_models(preset, blocks, expected):
    assert count_parameters(create_model(preset)) == expected
    assert sum(p.numel() for p in OfficialMDSR(blocks, 64).parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_checkpoint_loads_strictly_and_computes_the_same(tmp_path, prefix):
    official = _randomize(OfficialMDSR(n_resblocks=2, n_feats=8)).eval()
    torch.save({prefix + k: v for k, v in official.state_dict().items()}, tmp_path / "MDSR.pt")
    model = load_model(tmp_path / "MDSR.pt")
    assert isinstance(model.net, MDSR)
    assert model.scales == (2, 3, 4) and model.config.pre_process and model.config.n_resblocks == 2
    x = torch.rand(1, 3, 11, 9) * 255
    for i, scale in enumerate((2, 3, 4)):
        official.scale_idx = i
        with torch.no_grad():
            expected, got = official(x), model(x, scale)
        assert got.shape == (1, 3, 11 * scale, 9 * scale)
        assert torch.allclose(got, expected, atol=1e-3), scale


def test_detection_reads_scales_and_preprocessing(tmp_path):
    model = create_model("mdsr-tiny", scale=(2, 4))
    save_weights(_randomize(model), tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.scales == (2, 4) and not loaded.config.pre_process
    x = torch.rand(1, 3, 6, 7) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x, 4), model.eval()(x, 4))
    with pytest.raises(ConfigError, match="x2, x4, not x3"):
        loaded(x, 3)
    with pytest.raises(ConfigError, match="choose one"):
        loaded(x)
    with pytest.raises(CheckpointError, match="not x3"):
        load_model(tmp_path / "m.safetensors", scale=3)


def test_a_missing_key_is_named(tmp_path):
    state = _randomize(OfficialMDSR(n_resblocks=2, n_feats=8)).state_dict()
    del state["pre_process.1.0.body.2.weight"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"broken\.pt.*pre_process\.1\.0\.body\.2\.weight"):
        load_model(tmp_path / "broken.pt")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_equals_untiled_at_every_scale(scale):
    model = _randomize(create_model("mdsr-tiny", pre_process=True), seed=scale).eval()
    img = np.random.default_rng(scale).uniform(0, 255, size=(45, 37, 3)).astype(np.float32)
    whole = Upscaler(model, scale, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(model, scale, device="cpu", precision="fp32", tile=MIN_TILE)(img)
    assert whole.shape == (45 * scale, 37 * scale, 3)
    # float comparison: only summation order may differ between tiles and the whole image
    assert np.abs(whole - tiled).max() < 1e-3


def test_receptive_radius_is_the_context_the_output_needs():
    """A change to one input pixel moves output pixels no further than the radius (and some that far).
    The ReLUs are made linear so that no path is cut off by chance and the reach is the structural one."""
    # weights large enough that paths through all ~20 layers do not fade below float64 rounding
    model = _randomize(create_model("mdsr-tiny", pre_process=True), std=0.3).eval().double()
    for layer in model.modules():
        if isinstance(layer, nn.ReLU):
            layer.forward = lambda x: x
    for scale in model.scales:
        radius = model.receptive_radius(scale)
        x = torch.rand(1, 3, 2 * radius + 9, 2 * radius + 9, dtype=torch.float64) * 255
        y = x.clone()
        c = radius + 4
        y[0, :, c, c] += 50
        with torch.no_grad():
            diff = (model(x, scale) - model(y, scale)).abs().sum(dim=(0, 1))
        rows = torch.nonzero(diff.sum(dim=1) > 1e-3).flatten()
        lr_reach = max(c - int(rows.min()) // scale, int(rows.max()) // scale - c)
        assert lr_reach <= radius
        assert lr_reach >= radius - 1, (scale, radius, lr_reach)  # and tight: no wasted margin


def test_init_from_single_scale_edsrs_into_mdsr():
    x2, x3 = (_randomize(create_model("edsr-tiny", scale=s), seed=s) for s in (2, 3))
    mdsr = create_model("mdsr-tiny")
    copied = init_from(mdsr, [x2, x3])
    state = mdsr.state_dict()
    assert torch.equal(state["body.1.body.0.weight"], x2.state_dict()["body.1.body.0.weight"])  # shared: first file
    assert torch.equal(state["tail.0.weight"], x2.state_dict()["tail.1.weight"])
    assert torch.equal(state["upsample.0.0.weight"], x2.state_dict()["tail.0.0.weight"])  # x2 from the x2 file
    assert torch.equal(state["upsample.1.0.weight"], x3.state_dict()["tail.0.0.weight"])  # x3 from the x3 file
    assert not any(k.startswith("upsample.2.") for k in copied)  # no x4 source: left as initialised
    x = torch.rand(1, 3, 8, 8) * 255
    with torch.no_grad():
        assert torch.allclose(mdsr.eval()(x, 2), x2.eval()(x), atol=1e-4)  # the x2 path is the x2 network


def test_bad_configs():
    with pytest.raises(ConfigError, match="distinct"):
        MDSRConfig(scales=(2, 2))
    with pytest.raises(ConfigError, match="distinct"):
        MDSRConfig(scales=(5,))
    assert MDSRConfig(scales=(4, 2)).scales == (2, 4)
    with pytest.raises(ConfigError, match="single-scale EDSR"):
        create_model("edsr-tiny", scale=(2, 3))


def test_pixel_valued_layers_stay_fp32_under_autocast():
    """The first conv always, and the last conv at x2, run in fp32 under bf16 autocast (FULL_PRECISION_TAIL_SCALES):
    bf16 would round output values near 100 by up to a quarter of a gray level."""
    model = _randomize(create_model("mdsr-tiny")).eval()
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        exact = model(x, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half2, half4 = model(x, 2), model(x, 4)
    assert half2.dtype == torch.float32 and half4.dtype == torch.bfloat16
    assert (half2 - exact).abs().max() < 0.5  # the body's bf16 error only, not the output rounding on top
