"""Any factor, any size: OutputSize, the network's scale for a factor, and the pipeline's exact sizes."""

import numpy as np
import pytest
import torch

import superres
from superres.api import ImageUpscaler
from superres.cli.main import main
from superres.errors import ConfigError
from superres.imaging.io import Picture, read_image, write_image
from superres.inference.sizes import OutputSize, network_scale
from superres.models import create_model, save_weights


def mdsr(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("mdsr-tiny").eval()


def test_output_size_shapes():
    assert OutputSize(2).shape_for((20, 30)) == (40, 60)
    assert OutputSize(2.5).shape_for((21, 31)) == (53, 78)  # MATLAB: ceil(n * factor)
    assert OutputSize(width=1920, height=1080).shape_for((300, 400)) == (1080, 1920)
    assert OutputSize(width=100).shape_for((30, 40)) == (75, 100)
    assert OutputSize(height=45).shape_for((30, 40)) == (45, 60)
    assert OutputSize(width=101).shape_for((30, 40)) == (76, 101)  # 75.75 rounds
    assert OutputSize(2.5).label() == "x2.5" and OutputSize(width=7, height=5).label() == "7x5"
    assert OutputSize(width=1920).label() == "w1920" and OutputSize(height=1080).label() == "h1080"
    for bad in (dict(), dict(factor=0.0), dict(factor=float("nan")), dict(factor=2.0, width=5), dict(width=0)):
        with pytest.raises(ConfigError):
            OutputSize(**bad)


def test_network_scale_is_the_smallest_at_or_above():
    assert network_scale((2, 3, 4), 1.5) == 2
    assert network_scale((2, 3, 4), 2) == 2
    assert network_scale((2, 3, 4), 2.01) == 3
    assert network_scale((2, 3, 4), 3.7) == 4
    assert network_scale((2, 3, 4), 6) == 4  # beyond the largest: the largest, then the resize
    assert network_scale((3,), 1.2) == 3


@pytest.mark.parametrize("factor, net_scale", [(1.5, 2), (2, 2), (2.5, 3), (3, 3), (3.7, 4)])
def test_any_factor_runs_the_right_scale_then_resizes(factor, net_scale):
    model = mdsr()
    img = np.random.default_rng(0).integers(0, 256, size=(20, 26, 3), dtype=np.uint8)
    out = superres.upscale(img, factor, model=model, precision="fp32")
    expected_shape = superres.imresize(img, factor).shape
    assert out.shape == expected_shape
    direct = superres.upscale(img, net_scale, model=model, precision="fp32")  # the network at its scale
    if net_scale != factor:
        direct = superres.imresize(direct, output_shape=expected_shape[:2])
    assert np.array_equal(out, direct)


def test_exact_sizes_with_alpha_and_16_bit():
    model = mdsr()
    rng = np.random.default_rng(1)
    rgba = np.dstack([rng.integers(0, 65536, size=(18, 24, 3)), np.linspace(0, 65535, 18 * 24).reshape(18, 24)])
    rgba = rgba.astype(np.uint16)
    out = superres.upscale(rgba, model=model, size=(61, 37))
    assert out.shape == (37, 61, 4) and out.dtype == np.uint16
    # alpha goes straight from the input to the exact size with bicubic (a gradient, not a constant)
    assert np.array_equal(out[..., 3], superres.imresize(rgba[..., 3], output_shape=(37, 61)))
    assert superres.upscale(rgba, model=model, width=50).shape == (38, 50, 4)  # aspect kept: 18 * 50 / 24 = 37.5
    assert superres.upscale(rgba[..., :3], method="bicubic", height=27).shape == (27, 36, 3)


def test_cli_scale_size_width_and_names(tmp_path, capsys):
    weights = save_weights(mdsr(), tmp_path / "m.safetensors")
    img = np.random.default_rng(2).integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    write_image(tmp_path / "in.png", Picture(img))
    assert main(["upscale", str(tmp_path / "in.png"), "-m", str(weights), "--scale", "2.5"]) == 0
    assert read_image(tmp_path / "in_x2.5.png").pixels.shape == (40, 50, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-m", str(weights), "--size", "33x21"]) == 0
    assert read_image(tmp_path / "in_33x21.png").pixels.shape == (21, 33, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-m", str(weights), "--width", "30"]) == 0
    assert read_image(tmp_path / "in_w30.png").pixels.shape == (24, 30, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-m", str(weights), "--scale", "3", "--size", "3x3"]) == 2
    assert main(["upscale", str(tmp_path / "in.png"), "-m", str(weights), "--size", "12"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_tiled_streaming_and_correction_at_a_non_integer_factor(tmp_path):
    """--scale 2.5 with tiles and the correction equals the untiled pipeline."""
    model = mdsr(3)
    img = np.random.default_rng(3).integers(0, 256, size=(40, 44, 3), dtype=np.uint8)
    tiled = ImageUpscaler(scale=2.5, model=model, precision="fp32", tile=16, correct=20)(Picture(img)).pixels
    whole = ImageUpscaler(scale=2.5, model=model, precision="fp32", tile=0, correct=20)(Picture(img)).pixels
    assert tiled.shape == (100, 110, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_no_enlargement_is_a_plain_bicubic_resize():
    """An output no larger than the input runs no network (it would have nothing to add)."""
    model = mdsr()
    img = np.random.default_rng(4).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    out = superres.upscale(img, model=model, size=(15, 10))
    assert np.array_equal(out, superres.imresize(img, output_shape=(10, 15)))
    assert superres.upscale(img, 1, model=model).shape == img.shape


def test_size_edges_and_messages():
    """Found by mutmut: the one-pixel edge, and the words each refusal uses."""
    assert OutputSize(width=1).shape_for((10, 10)) == (1, 1) and OutputSize(height=1).shape_for((10, 10)) == (1, 1)
    assert OutputSize(width=10).shape_for((1, 1000)) == (1, 10)  # a sliver still has a row
    assert OutputSize(height=10).shape_for((1000, 1)) == (10, 1)
    with pytest.raises(ConfigError, match="give either a scale factor or an output width and/or height"):
        OutputSize()
    with pytest.raises(ConfigError, match=r"scale must be a number > 0, got -2"):
        OutputSize(-2.0)
    for bad in (0, True, 2.5):
        with pytest.raises(ConfigError, match=r"output width must be a whole number of pixels >= 1, got"):
            OutputSize(width=bad)
    assert network_scale((2, 3, 4), 3.0) == 3 and network_scale((2, 3, 4), 3.0000000001) == 3
