"""A family registered from this file alone runs everywhere: the seam for new architectures (issue 20).

The toy network works in 0..1 (not EDSR's 0..255), names its keys its own way, takes no scale argument and
is published wrapped in `params_ema`. Nothing outside this file knows it: loading, `superres.upscale`, exact
tiling, self-ensemble, eval, ONNX export, `serve` and video must all work through its `Family` and the
model handle.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import superres
from superres.cli.main import main
from superres.errors import CheckpointError
from superres.imaging.io import Picture, read_image, write_image
from superres.imaging.resize import imresize
from superres.inference.upscaler import Upscaler
from superres.models import Family, load_model, register_family
from superres.models.family import unregister_family


@dataclass(frozen=True)
class ToyConfig:
    scale: int = 2
    n_feats: int = 6
    n_colors: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return cls(**d)


class ToyNet(nn.Module):
    """0..1 in and out: nearest-neighbour upscaling plus a learned 3x3 -> ReLU -> 3x3 -> pixel-shuffle detail."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        c, f, s = config.n_colors, config.n_feats, config.scale
        self.toy_in = nn.Conv2d(c, f, 3, padding=1)
        self.toy_up = nn.Conv2d(f, c * s * s, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.config.scale
        detail = F.pixel_shuffle(self.toy_up(F.relu(self.toy_in(x))), s)
        return F.interpolate(x, scale_factor=s, mode="nearest") + detail


class ToyFamily(Family):
    name = "toy"
    config_class = ToyConfig
    key_patterns = (r"toy_in\.weight", r"toy_up\.weight")

    def read_config(self, state, meta):
        f, c = state["toy_in.weight"].shape[:2]
        s = math.isqrt(state["toy_up.weight"].shape[0] // c)
        if s * s * c != state["toy_up.weight"].shape[0]:
            raise CheckpointError(f"toy_up.weight has {state['toy_up.weight'].shape[0]} outputs; not C x s^2")
        return ToyConfig(scale=s, n_feats=f, n_colors=c)

    def build(self, config):
        return ToyNet(config)

    def scales(self, config):
        return (config.scale,)

    def pixel_range(self, config):
        return 1.0

    def receptive_radius(self, config, scale):
        return 2  # two 3x3 convs at LR

    def activation_bytes_per_pixel(self, config, scale):
        return 4 * (2 * config.n_feats + 2 * config.n_colors * scale**2)

    def describe(self, config):
        return f"Toy x{config.scale}, {config.n_feats} features"

    def forward(self, net, x, scale):
        return net(x)


@pytest.fixture
def toy(tmp_path):
    """The toy family registered for one test, and a checkpoint of it in its own key layout."""
    register_family(ToyFamily)
    torch.manual_seed(3)
    net = ToyNet(ToyConfig(scale=2)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    path = tmp_path / "toy_x2.pth"
    torch.save({"params_ema": net.state_dict(), "iter": 1000}, path)
    yield net, path
    unregister_family("toy")


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40 + seed : 40 + seed + h, 200 : 200 + w])


def by_hand(net: ToyNet, img: np.ndarray) -> np.ndarray:
    """The network on 0..1 pixels, as its authors run it: float64 (H*s, W*s, C) in 0..255."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    with torch.no_grad():
        y = net.double()(x)[0].permute(1, 2, 0).numpy() * 255
    net.float()
    return y


def test_loads_with_its_range_and_wrapper(toy):
    net, path = toy
    handle = load_model(path)
    assert handle.arch == "toy" and handle.pixel_range == 1.0 and handle.scales == (2,)
    assert handle.describe() == "Toy x2, 6 features" and handle.receptive_radius() == 2
    assert all(torch.equal(a, b) for a, b in zip(handle.state_dict().values(), net.state_dict().values(), strict=False))


def test_upscale_feeds_the_range_the_family_states(toy):
    net, path = toy
    img = image(30, 34)
    out = superres.upscale(img, model=path, precision="fp32", device="cpu")
    expected = np.clip(np.floor(by_hand(net, img) + 0.5), 0, 255)
    assert out.shape == (60, 68, 3)
    assert np.abs(out.astype(int) - expected).max() <= 1
    # fed 0..255 instead of 0..1, the same weights give another picture: the range is not a no-op here
    wrong = net(torch.from_numpy(img).permute(2, 0, 1)[None].float()).detach()[0].permute(1, 2, 0).numpy()
    assert np.abs(np.clip(wrong, 0, 255) - expected).mean() > 5


def test_exact_tiling_and_self_ensemble(toy):
    _, path = toy
    handle = load_model(path)
    img = image(50, 45).astype(np.float32)
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)(img)
    assert np.abs(whole - tiled).max() < 1e-3
    ens = Upscaler(handle, device="cpu", precision="fp32", tile=16, self_ensemble=True)(img)
    plain = Upscaler(handle, device="cpu", precision="fp32", tile=0)
    expected = np.zeros_like(whole)
    for k in range(8):  # the 8 flips and rotations, each undone on the output
        t = np.ascontiguousarray(np.rot90(np.flip(img, 1) if k >= 4 else img, k % 4))
        back = np.rot90(plain(t), -(k % 4))
        expected += np.flip(back, 1) if k >= 4 else back
    assert np.abs(ens - expected / 8).max() < 1e-3 and np.abs(ens - whole).mean() > 1e-2


def test_cli_eval_and_onnx_export(toy, tmp_path, capsys):
    net, path = toy
    hr = image(48, 48)
    write_image(tmp_path / "bench" / "HR" / "a.png", Picture(hr))
    write_image(tmp_path / "bench" / "LR_bicubic" / "X2" / "ax2.png", Picture(imresize(hr, 0.5)))
    report = tmp_path / "r.json"
    code = main(["eval", "--data", str(tmp_path / "bench"), "--scale", "2", "--methods", f"bicubic,{path}",
                 "--precision", "fp32", "--json", str(report), "-q"])  # fmt: skip
    assert code == 0
    rows = {r["method"]: r for r in json.loads(report.read_text())["results"] if r["channel"] == "y"}
    assert set(rows) == {"bicubic", str(path)} and all(np.isfinite(r["psnr"]) for r in rows.values())

    pytest.importorskip("onnxruntime")
    assert main(["export", str(path), "-o", str(tmp_path / "toy.onnx")]) == 0
    img = image(21, 26)
    torch_out = superres.upscale(img, model=path, precision="fp32", device="cpu")
    onnx_out = superres.upscale(img, model=tmp_path / "toy.onnx")  # backend auto: onnxruntime
    assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1
    loaded = superres.load_model(tmp_path / "toy.onnx")
    assert loaded.arch == "toy" and loaded.onnx is not None
    in_memory = Upscaler(load_model(path), backend="onnxruntime", tile=16)(img.astype(np.float32))
    assert np.abs(in_memory - by_hand(net, img)).max() < 1e-2


def test_video(toy, tmp_path, capsys):
    pytest.importorskip("av")
    from test_video import make_clip

    _, path = toy
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(32, 24), audio=False, rotation=0)
    assert main(["upscale", str(clip), "--model", str(path), "-o", str(tmp_path / "out.mp4"), "-q"]) == 0
    import av

    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (64, 48)


def test_serve_lists_and_runs_a_user_model(toy, tmp_path):
    from starlette.testclient import TestClient

    from superres.web.app import Server, create_app

    net, path = toy
    server = Server(device="cpu", precision="fp32", models={"toy": path})
    with TestClient(create_app("127.0.0.1", 8000, server), base_url="http://127.0.0.1:8000") as client:
        info = client.get("/api/info").json()
        assert "toy" in [m["name"] for m in info["models"]]
        img = image(20, 22)
        write_image(tmp_path / "in.png", Picture(img))
        with open(tmp_path / "in.png", "rb") as f:
            answer = client.post("/api/upscale", files={"image": ("in.png", f, "image/png")}, data={"model": "toy"})
        assert answer.status_code == 200, answer.text
        (tmp_path / "out.png").write_bytes(answer.content)
        out = read_image(tmp_path / "out.png").pixels
        assert out.shape == (40, 44, 3)
        assert np.abs(out.astype(int) - np.clip(np.floor(by_hand(net, img) + 0.5), 0, 255)).max() <= 1
        with open(tmp_path / "in.png", "rb") as f:  # no photo model for it: refused, naming it as the page does
            answer = client.post(
                "/api/upscale", files={"image": ("in.png", f, "image/png")}, data={"model": "toy", "denoise": "0.5"}
            )
        assert answer.status_code == 422 and "toy" in answer.json()["error"]
        assert str(path) not in answer.text and str(tmp_path) not in answer.text


def test_serve_command_checks_the_user_models_before_it_listens(toy, tmp_path, capsys):
    _, path = toy
    (tmp_path / "junk.pth").write_bytes(b"not weights")
    assert main(["serve", "--port", "0", "--model", str(tmp_path / "junk.pth")]) == 2
    assert "junk.pth" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--model", str(path), "--model", str(path)]) == 2
    assert "already has a model named 'toy_x2'" in capsys.readouterr().err


def test_a_family_without_a_radius_gets_approximate_tiles(toy, monkeypatch):
    from superres.inference.upscaler import APPROXIMATE_MARGIN

    _, path = toy
    monkeypatch.setattr(ToyFamily, "receptive_radius", lambda self, config, scale: None)
    handle = load_model(path)
    assert handle.receptive_radius() is None
    img = image(50, 45).astype(np.float32)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert not tiled.exact and tiled.margin == APPROXIMATE_MARGIN
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    assert np.abs(tiled(img) - whole).max() < 1e-3  # the toy's true radius (2) is inside the margin
    assert Upscaler(handle, device="cpu", tile=16, overlap=4).margin == 4


def test_blending_ramps_sum_to_one_across_every_seam():
    from superres.inference.upscaler import _ramps

    size, tile, b, s = 70, 16, 6, 3
    total = np.zeros(size * s)
    for c0 in range(0, size, tile):
        c1 = min(size, c0 + tile)
        start, end = max(0, c0 - b), min(size, c1 + b)
        total[start * s : end * s] += _ramps(start, end, c0, c1, size, b, s)
    assert np.allclose(total, 1.0, atol=1e-6)


def test_approximate_tiles_of_a_global_network_are_blended_not_cut(toy, monkeypatch):
    """A network whose output depends on the whole picture (here: its mean) cannot be tiled exactly; blended
    tiles change smoothly from one to the next instead of jumping at a cut."""
    _, path = toy
    monkeypatch.setenv("SUPERRES_CACHE", str(path.parent / "cache"))  # the patched forward is another graph
    monkeypatch.setattr(ToyFamily, "receptive_radius", lambda self, config, scale: None)
    monkeypatch.setattr(ToyFamily, "forward", lambda self, net, x, scale: net(x) + x.mean())
    handle = load_model(path)
    img = np.linspace(0, 255, 60 * 64 * 3, dtype=np.float32).reshape(60, 64, 3)
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16, overlap=8)(img)
    error = tiled - whole  # each tile sees its own mean, not the picture's
    assert np.abs(error).max() > 10
    for axis in (0, 1):  # but no jump between neighbours: the error changes by a fraction of itself per pixel
        assert np.abs(np.diff(error, axis=axis)).max() < np.abs(error).max() / 8
