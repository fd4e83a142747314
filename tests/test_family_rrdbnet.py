"""RRDBNet (ESRGAN / Real-ESRGAN): the three key layouts, x4 / x2 / x1 (pixel-unshuffled inputs), mixed-dtype files,
approximate tiling, and the published Real-ESRGAN files in ../shared/models.

The reference networks here are written from the original repositories' descriptions, independently of
superres.models.rrdbnet: Real-ESRGAN's `RRDBNet` (BasicSR), with BasicSR's own pixel_unshuffle (view / permute), and
the original ESRGAN's `RRDB_Net` (architecture.py), a flattened nn.Sequential whose state-dict keys (`model.0`,
`model.1.sub.N.RDB1.conv1.0`, `model.3`, ...) come out of its module structure, not from a table of names.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

import superres
import superres.models.rrdbnet
import superres.models.srvgg
from shared_models import MODELS, manifest, measured_set5, needs_benchmark, needs_shared_models, set5_y_psnr
from superres.errors import CheckpointError, ConfigError, UnknownModelError
from superres.inference.upscaler import APPROXIMATE_MARGIN, Upscaler
from superres.models import count_parameters, create_model, load_model, load_weights, save_weights, summarize
from superres.models.family import detect_family, families
from superres.models.rrdbnet import RRDBNet, RRDBNetConfig, RRDBNetFamily

# ---------------------------------------------------------------------------------------------- references


def lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def conv(i: int, o: int) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, 1, 1)


class DenseRef(nn.Module):
    """A residual dense block, in the attribute names of `names` (conv1..conv5, each a conv or conv_block)."""

    def __init__(self, nf: int, gc: int, block: bool) -> None:
        super().__init__()
        ins = [nf, nf + gc, nf + 2 * gc, nf + 3 * gc, nf + 4 * gc]
        outs = [gc, gc, gc, gc, nf]
        for j, (i, o) in enumerate(zip(ins, outs, strict=True), 1):
            # ESRGAN 2018 wraps each conv in a conv_block Sequential (conv, LeakyReLU), conv5 (conv) alone
            setattr(self, f"conv{j}", nn.Sequential(conv(i, o), *([lrelu()] if j < 5 else [])) if block else conv(i, o))
        self.block = block

    def forward(self, x):
        act = (lambda t: t) if self.block else F.leaky_relu
        kw = {} if self.block else {"negative_slope": 0.2}
        feats = [x]
        for j in range(1, 5):
            feats.append(act(getattr(self, f"conv{j}")(torch.cat(feats, 1)), **kw))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDBRef(nn.Module):
    def __init__(self, nf: int, gc: int, names: str, block: bool) -> None:
        super().__init__()
        self.names = [f"{names}{k}" for k in (1, 2, 3)]
        for name in self.names:
            setattr(self, name, DenseRef(nf, gc, block))

    def forward(self, x):
        out = x
        for name in self.names:
            out = getattr(self, name)(out)
        return out * 0.2 + x


def basicsr_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """BasicSR's pixel_unshuffle (basicsr/archs/arch_util.py), by view and permute."""
    b, c, hh, hw = x.shape
    h, w = hh // scale, hw // scale
    return x.view(b, c, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale, h, w)


class RealESRGANRef(nn.Module):
    """Real-ESRGAN's RRDBNet: x4 tail always; x2 and x1 take a pixel-unshuffled input (12 or 48 channels)."""

    def __init__(self, scale: int = 4, nf: int = 8, nb: int = 2, gc: int = 4, c: int = 3) -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = conv(c * {4: 1, 2: 4, 1: 16}[scale], nf)
        self.body = nn.Sequential(*[RRDBRef(nf, gc, "rdb", block=False) for _ in range(nb)])
        self.conv_body = conv(nf, nf)
        self.conv_up1, self.conv_up2, self.conv_hr = conv(nf, nf), conv(nf, nf), conv(nf, nf)
        self.conv_last = conv(nf, c)

    def forward(self, x):
        if self.scale < 4:
            x = basicsr_unshuffle(x, 4 // self.scale)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class Shortcut(nn.Module):
    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class OldESRGANRef(nn.Module):
    """The original ESRGAN's RRDB_Net (architecture.py): one flattened Sequential named `model`."""

    def __init__(self, n_up: int = 2, nf: int = 8, nb: int = 2, gc: int = 4, c: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv(c, nf)]
        layers.append(Shortcut(nn.Sequential(*[RRDBRef(nf, gc, "RDB", block=True) for _ in range(nb)], conv(nf, nf))))
        for _ in range(n_up):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(nf, nf), lrelu()]
        layers += [conv(nf, nf), lrelu(), conv(nf, c)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    """`net` with weights drawn so that every layer matters (default init makes the 0.2-scaled branches tiny)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * (0.15 if p.ndim == 4 else 0.05))
    return net.eval()


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def to_esrgan_2019(state: dict) -> dict:
    """Real-ESRGAN keys in ESRGAN's RRDBNet_arch.py names (also BSRGAN's)."""
    subs = [(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."), (r"^conv_body\.", "trunk_conv."),
            (r"^conv_up(\d)\.", r"upconv\1."), (r"^conv_hr\.", "HRconv.")]  # fmt: skip
    out = {}
    for k, v in state.items():
        for pattern, repl in subs:
            k = re.sub(pattern, repl, k)
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("scale,in_channels", [(4, 3), (2, 12), (1, 48)])
def test_real_esrgan_layout_at_x4_x2_x1(tmp_path, scale, in_channels):
    ref = randomized(RealESRGANRef(scale))
    ema = ref.state_dict()
    path = tmp_path / "net.pth"
    torch.save({"params": {k: torch.zeros_like(v) for k, v in ema.items()}, "params_ema": ema}, path)
    handle = load_model(path)
    assert handle.arch == "rrdbnet" and handle.scales == (scale,) and handle.pixel_range == 1.0
    c = handle.config
    assert (c.n_blocks, c.n_feats, c.growth, c.n_colors, c.unshuffle) == (2, 8, 4, 3, 4 // scale)
    assert handle.state_dict()["conv_first.weight"].shape[1] == in_channels
    x = torch.rand(2, 3, 12, 16)
    assert torch.allclose(handle.run(x, scale), run(ref, x), atol=1e-5)
    assert handle.describe().startswith(f"RRDBNet x{scale}, 2 blocks x 8 features, growth 4")


@pytest.mark.parametrize("scale", [2, 1])
def test_unshuffled_models_take_any_size_as_real_esrgan_pads_it(scale):
    """Real-ESRGAN's inference reflect-pads to a multiple of the unshuffle factor and crops the output."""
    ref = randomized(RealESRGANRef(scale), seed=1)
    net = RRDBNet(RRDBNetConfig(scale=scale, n_feats=8, n_blocks=2, growth=4)).eval()
    net.load_state_dict(ref.state_dict())
    u = 4 // scale
    for h, w in [(13, 18), (9, 11), (1, 2)]:
        x = torch.rand(1, 3, h, w)
        ph, pw = -h % u, -w % u
        mode = "reflect" if ph < h and pw < w else "replicate"
        expected = run(ref, F.pad(x, (0, pw, 0, ph), mode=mode))[..., : h * scale, : w * scale]
        y = run(net, x)
        assert y.shape == (1, 3, h * scale, w * scale) and torch.allclose(y, expected, atol=1e-5)
    # channels-last input (what the PyTorch runner feeds) gives the same
    x = torch.rand(1, 3, 10, 14)
    assert torch.allclose(run(net, x.contiguous(memory_format=torch.channels_last)), run(net, x), atol=1e-5)


@pytest.mark.parametrize("n_up,scale", [(2, 4), (1, 2), (0, 1), (3, 8)])
def test_original_esrgan_layout(tmp_path, n_up, scale):
    ref = randomized(OldESRGANRef(n_up), seed=2)
    state = ref.state_dict()
    top = sorted({int(k.split(".")[1]) for k in state if re.fullmatch(r"model\.\d+\.weight", k)})
    assert top == [0, *(3 * k for k in range(1, n_up + 1)), 3 * n_up + 2, 3 * n_up + 4]  # x4: 0, 3, 6, 8, 10
    expected = {"model.1.sub.0.RDB1.conv1.0.weight", "model.1.sub.1.RDB3.conv5.0.bias", "model.1.sub.2.weight"}
    assert expected <= set(state)  # two RRDBs, then the body's last conv
    torch.save(state, tmp_path / "old.pth")
    handle = load_model(tmp_path / "old.pth")
    assert handle.arch == "rrdbnet" and handle.scales == (scale,)
    assert (handle.config.n_blocks, handle.config.n_upsample, handle.config.unshuffle) == (2, n_up, 1)
    x = torch.rand(1, 3, 7, 9)
    assert torch.allclose(handle.run(x, scale), run(ref, x), atol=1e-5)


@pytest.mark.parametrize("scale,n_up", [(4, 2), (2, 1)])
def test_esrgan_2019_and_bsrgan_layout(tmp_path, scale, n_up):
    """RRDBNet_arch.py's names (RRDB_trunk, trunk_conv, upconv1/2, HRconv); BSRGAN's x2 has upconv1 only."""
    net = randomized(RRDBNet(RRDBNetConfig(scale=scale, n_upsample=n_up, n_feats=8, n_blocks=2, growth=4)), seed=3)
    state = to_esrgan_2019(net.state_dict())
    assert "RRDB_trunk.1.RDB3.conv5.weight" in state and ("upconv2.weight" in state) == (n_up == 2)
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "esrgan.pth")  # a DataParallel save
    handle = load_model(tmp_path / "esrgan.pth")
    assert handle.scales == (scale,) and handle.config.unshuffle == 1
    x = torch.rand(1, 3, 8, 6)
    assert torch.allclose(handle.run(x, scale), run(net, x), atol=1e-6)


def test_all_layouts_of_one_network_load_to_the_same_tensors():
    family = RRDBNetFamily()
    ref = randomized(OldESRGANRef(2), seed=4)
    old = ref.state_dict()
    current = family.rename(old)
    assert family.rename(current) is current and family.rename(to_esrgan_2019(current)) == current
    assert set(current) == set(RRDBNet(RRDBNetConfig(n_feats=8, n_blocks=2, growth=4)).state_dict())


# ---------------------------------------------------------------------------------------------- loading


def test_mixed_dtype_files_load_in_the_networks_dtype(tmp_path):
    """conv weights fp16 and biases fp32 (as the shared Real-ESRGAN rebuilds are): cast on load."""
    net = randomized(RRDBNet(RRDBNetConfig(n_feats=8, n_blocks=1, growth=4)), seed=5)
    mixed = {k: v.half() if v.ndim == 4 else v for k, v in net.state_dict().items()}
    save_file(mixed, tmp_path / "mixed.safetensors")
    handle = load_model(tmp_path / "mixed.safetensors")
    assert {p.dtype for p in handle.parameters()} == {torch.float32}
    rounded = RRDBNet(net.config).eval()
    rounded.load_state_dict({k: v.float() for k, v in mixed.items()})
    x = torch.rand(1, 3, 6, 7)
    assert torch.equal(handle.run(x, 4), run(rounded, x))


def test_save_and_reload_keeps_config_and_outputs(tmp_path):
    net = randomized(RRDBNet(RRDBNetConfig(scale=2, n_feats=8, n_blocks=1, growth=4, n_colors=1)), seed=6)
    path = save_weights(net, tmp_path / "gray.safetensors", metadata={"note": "x"})
    handle = load_weights(path)
    assert handle.config == net.config and handle.n_colors == 1 and handle.metadata["note"] == "x"
    x = torch.rand(1, 1, 5, 9)
    assert torch.equal(handle.run(x, 2), run(net, x))


def test_config_checks():
    with pytest.raises(ConfigError, match="scale must be one of"):
        RRDBNetConfig(scale=3)
    with pytest.raises(ConfigError, match=r"pixel-unshuffle by 0\.5"):
        RRDBNetConfig(scale=8, n_upsample=2)
    with pytest.raises(ConfigError, match="n_blocks"):
        RRDBNetConfig(n_blocks=0)
    with pytest.raises(ConfigError, match="n_colors"):
        RRDBNetConfig(n_colors=4)
    assert RRDBNetConfig.from_dict(RRDBNetConfig(scale=1).to_dict() | {"extra": 1}) == RRDBNetConfig(scale=1)


def test_presets_are_the_real_esrgan_models():
    assert count_parameters(create_model("rrdbnet")) == 16_697_987  # RealESRGAN_x4plus (and ESRGAN)
    assert count_parameters(create_model("rrdbnet-6b")) == 4_467_779  # RealESRGAN_x4plus_anime_6B
    x2, x8 = create_model("rrdbnet-6b", scale=2), create_model("rrdbnet-6b", scale=8)
    assert (x2.config.unshuffle, x2.config.n_upsample) == (2, 2)  # as RealESRGAN_x2plus
    assert x2.conv_first.in_channels == 12
    assert (x8.config.unshuffle, x8.config.n_upsample) == (1, 3)
    with pytest.raises(ConfigError, match="one scale"):
        create_model("rrdbnet", scale=(2, 4))
    with pytest.raises(UnknownModelError):
        create_model("rrdbnet-7b")


def state_of(**kw) -> dict:
    return RRDBNet(RRDBNetConfig(**{"n_feats": 8, "n_blocks": 2, "growth": 4, **kw})).state_dict()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s.update({"conv_first.weight": torch.zeros(8, 6, 3, 3)}), "takes 6 channels"),
        (lambda s: [s.pop(k) for k in list(s) if k.startswith("body.0.")], r"RRDBs are not numbered 0..0"),
        (lambda s: s.pop("conv_hr.weight"), "conv_hr"),
        (lambda s: s.update({"conv_up3.weight": s.pop("conv_up2.weight")}), "conv_up"),
        (lambda s: s.update({"conv_last.weight": torch.zeros(4, 8, 3, 3)}), "makes 4 channels"),
    ],
)
def test_a_file_that_does_not_fit_is_named(tmp_path, edit, message):
    state = state_of()
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "bad.pth")


def test_x1_of_a_tail_too_short_for_its_unshuffle_is_refused():
    state = state_of(scale=2)  # 12 inputs (unshuffled by 2) with a x4 tail
    for key in ("conv_up1.weight", "conv_up1.bias", "conv_up2.weight", "conv_up2.bias"):
        del state[key]
    with pytest.raises(CheckpointError, match=r"would make x0\.5"):
        RRDBNetFamily().read_config(state, {})


def as_basicsr(key: str, n_blocks: int) -> str:
    """An official EDSR key in BasicSR's names (conv_first, body.N.conv1/2, conv_after_body, upsample, conv_last)."""
    subs = [(r"^head\.0\.", "conv_first."), (rf"^body\.{n_blocks}\.", "conv_after_body."),
            (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."), (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
            (r"^tail\.0\.", "upsample."), (r"^tail\.1\.", "conv_last.")]  # fmt: skip
    for pattern, repl in subs:
        key = re.sub(pattern, repl, key)
    return key


def test_not_mistaken_for_other_families_nor_they_for_it():
    edsr = create_model("edsr-tiny", scale=4).state_dict()
    mdsr = create_model("mdsr-tiny").state_dict()
    basicsr_edsr = {as_basicsr(k, 4): v for k, v in edsr.items() if "_mean." not in k}
    assert "conv_after_body.weight" in basicsr_edsr and "body.3.conv2.weight" in basicsr_edsr
    from superres.models.srvgg import SRVGGConfig, SRVGGNetCompact

    srvgg = SRVGGNetCompact(SRVGGConfig(n_feats=8, n_convs=2)).state_dict()
    ours = RRDBNetFamily()
    for other, name in ((edsr, "edsr"), (mdsr, "mdsr"), (basicsr_edsr, "edsr"), (srvgg, "srvgg")):
        assert not ours.recognize(ours.rename(other)) and detect_family(other)[0].name == name
    for layout in (state_of(), to_esrgan_2019(state_of()), randomized(OldESRGANRef()).state_dict()):
        for family in families().values():
            if family.name != "rrdbnet":
                assert not family.recognize(family.rename(layout)), family.name
        assert detect_family(layout)[0].name == "rrdbnet"


@needs_shared_models
def test_no_other_shared_file_is_claimed_and_ours_only_by_us():
    from superres.models.checkpoints import normalize_state_dict, read_weights

    ours = RRDBNetFamily()
    for file, row in manifest().items():
        state = normalize_state_dict(read_weights(MODELS / file)[0])
        assert ours.recognize(ours.rename(state)) == (row["family"] == "rrdbnet"), file
        if row["family"] == "rrdbnet":
            assert detect_family(state)[0].name == "rrdbnet"


# ---------------------------------------------------------------------------------------------- inference


def test_upscale_runs_in_0_to_1_with_approximate_tiles(tmp_path):
    ref = randomized(RealESRGANRef(2), seed=7)
    torch.save({"params_ema": ref.state_dict()}, tmp_path / "x2.pth")
    handle = load_model(tmp_path / "x2.pth")
    assert handle.receptive_radius() is None
    img = np.random.default_rng(0).integers(0, 256, (26, 31, 3), dtype=np.uint8)
    out = superres.upscale(img, model=handle, precision="fp32", device="cpu")
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    expected = run(ref, F.pad(x, (0, 1, 0, 0), mode="reflect"))[..., :62] * 255
    expected = np.clip(np.floor(expected[0].permute(1, 2, 0).numpy() + 0.5), 0, 255)
    assert out.shape == (52, 62, 3) and np.abs(out.astype(int) - expected).max() <= 1
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert not tiled.exact and tiled.margin == APPROXIMATE_MARGIN
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img.astype(np.float32))
    assert tiled(img.astype(np.float32)).shape == whole.shape


def test_summary_and_onnx_export_at_odd_sizes(tmp_path):
    ref = randomized(RealESRGANRef(1), seed=8)
    torch.save({"params_ema": ref.state_dict()}, tmp_path / "x1.pth")
    handle = load_model(tmp_path / "x1.pth")
    rows = summarize(handle, (10, 14))
    assert rows[0].name == "conv_first" and rows[0].output_shape == (8, 3, 4)  # 48 channels in, at a quarter
    assert rows[-1].name == "conv_last" and rows[-1].output_shape == (3, 12, 16)  # before the crop to 10 x 14
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    export_onnx(handle, tmp_path / "x1.onnx", scale=1)
    img = np.random.default_rng(1).integers(0, 256, (21, 27, 3), dtype=np.uint8)  # not a multiple of 4
    torch_out = superres.upscale(img, model=handle, precision="fp32", device="cpu")
    onnx_out = superres.upscale(img, model=tmp_path / "x1.onnx")
    assert onnx_out.shape == (21, 27, 3) and np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- the real files


@needs_shared_models
@pytest.mark.parametrize(
    "file,blocks", [("RealESRGAN_x4plus_anime_6B.safetensors", 6), ("RealESRGAN_x4plus.safetensors", 23)]
)
def test_real_esrgan_files_load(file, blocks):
    handle = load_model(MODELS / file)
    assert handle.arch == "rrdbnet" and handle.scales == (4,) and handle.pixel_range == 1.0
    c = handle.config
    assert (c.n_blocks, c.n_feats, c.growth, c.n_colors, c.unshuffle) == (blocks, 64, 32, 3, 1)
    assert handle.parameter_count == int(manifest()[file]["params"])
    assert {p.dtype for p in handle.parameters()} == {torch.float32}  # the file's fp16 conv weights, cast


@needs_shared_models
@needs_benchmark
def test_anime_6b_set5():
    file = "RealESRGAN_x4plus_anime_6B.safetensors"
    assert abs(set5_y_psnr(MODELS / file, 4) - measured_set5(file, 4)) <= 0.02  # 25.22


@needs_shared_models
@needs_benchmark
def test_x4plus_set5():
    """16.7M parameters: 6 s on the idle 2-core development CPU, over a minute when it is busy."""
    file = "RealESRGAN_x4plus.safetensors"
    assert abs(set5_y_psnr(MODELS / file, 4) - measured_set5(file, 4)) <= 0.02  # 26.63
