"""The IMDN family (models/imdn.py): its published layouts load by detection alone, wrong files are one
CheckpointError, the real checkpoints reach their published Set5 figures in fp32 and bf16, the family states no
radius (its attention sees the whole picture) and its ONNX export matches PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import superres
import superres.models.imdn  # registers the family until models/__init__.py imports it
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
from superres.models.imdn import IMDN, IMDNConfig

TINY = IMDNConfig(scale=3, n_feats=8, n_blocks=2, distilled=2, cca_mid=2)

# Every IMDN file of ../shared/models, with its scale.
REAL = {"IMDN_x2.pth": 2, "imdn_x2.safetensors": 2, "imdn_x3.safetensors": 3, "imdn_x4.safetensors": 4}


def tiny_net(seed: int = 0) -> IMDN:
    torch.manual_seed(seed)
    return IMDN(TINY).eval()


LAYOUTS = [
    ("plain.pth", None, ""),
    ("dataparallel.pth", None, "module."),  # the official IMDN_x*.pth
    ("dataparallel.safetensors", None, "module."),  # imdn_x*.safetensors keep the prefix
    ("plain.safetensors", None, ""),
    ("params.pth", "params", ""),
    ("params_ema.pth", "params_ema", "module."),
]


@pytest.mark.parametrize(("name", "wrapper", "prefix"), LAYOUTS)
def test_each_layout_loads_by_detection(tmp_path, name, wrapper, prefix):
    net = tiny_net()
    write(net.state_dict(), tmp_path / name, wrapper, prefix)
    handle = superres.load_model(tmp_path / name)
    assert handle.arch == "imdn" and handle.config == TINY and handle.scales == (3,)
    assert handle.pixel_range == 1.0 and handle.receptive_radius() is None
    assert handle.describe() == "IMDN x3, 2 blocks x 8 features (2 distilled per step)"
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.allclose(handle.run(x, 3), net(x), atol=1e-5)
        assert handle.run(x, 3).shape == (1, 3, 33, 39)


def test_config_round_trips_and_save_weights_reloads(tmp_path):
    assert IMDNConfig.from_dict(TINY.to_dict()) == TINY
    handle = superres.load_model(_saved(tmp_path))
    superres.save_weights(handle, tmp_path / "ours.safetensors")
    again = superres.load_model(tmp_path / "ours.safetensors")
    assert again.config == TINY and all(
        torch.equal(a, b) for a, b in zip(again.state_dict().values(), handle.state_dict().values(), strict=True)
    )


def _saved(tmp_path, state: dict[str, torch.Tensor] | None = None):
    path = tmp_path / "imdn.pth"
    write(tiny_net().state_dict() if state is None else state, path, prefix="module.")
    return path


def test_no_other_family_claims_its_layout():
    assert claimants(tiny_net().state_dict()) == ["imdn"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.pop("IMDB2.c3.weight"), "IMDB2.c3.weight"),  # strict loading names it
        (lambda s: s.pop("IMDB1.c4.weight"), "IMDB1.c4.weight"),  # read_config needs it
        (lambda s: s.update({"IMDB1.c5.weight": torch.zeros(8, 6, 1, 1)}), "IMDB1.c5.weight"),
        (lambda s: s.update({"upsampler.0.weight": torch.zeros(20, 8, 3, 3)}), "upsampler.0.weight"),
        (lambda s: s.update({"IMDB2.c1.weight": torch.zeros(8, 8, 1, 1)}), "IMDB2.c1.weight"),
    ],
)
def test_a_wrong_file_is_one_error_naming_the_key(tmp_path, change, named):
    state = tiny_net().state_dict()
    change(state)
    with pytest.raises(CheckpointError) as caught:
        superres.load_model(_saved(tmp_path, state))
    assert named in caught.value.message and "\n" not in caught.value.message


def test_runs_under_autocast_and_tiles_approximately():
    """No dtype breaks under bf16 autocast; with no radius, tiles are cut with the approximate margin."""
    net = tiny_net()
    handle = superres.models.as_handle(net)
    img = image(40, 36).astype(np.float32)
    whole = Upscaler(handle, device="cpu", precision="fp32", tile=0)(img)
    half = Upscaler(handle, device="cpu", precision="bf16", tile=0)(img)
    assert np.isfinite(half).all() and np.abs(half - whole).mean() < 1.0
    tiled = Upscaler(handle, device="cpu", precision="fp32", tile=16)
    assert not tiled.exact
    assert np.abs(tiled(img) - whole).mean() < 5  # the attention's statistics differ per tile: close, not equal


def test_attention_statistics_see_the_whole_picture():
    """Changing one far corner pixel moves the output at the other corner: there is no finite radius."""
    net = tiny_net()
    x = torch.rand(1, 3, 40, 40)
    y = x.clone()
    y[..., 39, 39] += 0.5
    with torch.no_grad():
        assert (net(x)[..., :3, :3] - net(y)[..., :3, :3]).abs().max() > 0


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx

    path = _saved(tmp_path)
    export_onnx(superres.load_model(path), tmp_path / "x.onnx")
    img = image(21, 26)
    torch_out = np.asarray(superres.upscale(img, scale=3, model=path, precision="fp32", device="cpu"))
    onnx_out = np.asarray(superres.upscale(img, scale=3, model=tmp_path / "x.onnx"))
    assert torch_out.shape == onnx_out.shape == (63, 78, 3)
    assert np.abs(torch_out.astype(int) - onnx_out).max() <= 1


# ---------------------------------------------------------------------------------------------- the real files


@needs_shared_models
def test_every_real_file_is_listed_here():
    assert {f for f, row in manifest().items() if row["family"] == "imdn"} == set(REAL)


@needs_shared_models
@pytest.mark.parametrize("file", sorted(REAL))
def test_real_file_loads_by_detection(file):
    load_detected(file, "imdn", (REAL[file],))


@needs_shared_models
@needs_benchmark
@pytest.mark.parametrize("file", sorted(REAL))
def test_real_file_reaches_its_set5_figure_in_fp32_and_bf16(file):
    scale = REAL[file]
    fp32 = set5_y_psnr(MODELS / file, scale)
    assert abs(fp32 - published_set5(file, scale)) < 0.1
    assert abs(fp32 - measured_set5(file, scale)) < 0.02
    bf16 = set5_y_psnr(MODELS / file, scale, precision="bf16")
    assert fp32 - bf16 < 0.05  # what IMDNFamily.precisions claims (measured: under 0.007 dB)
