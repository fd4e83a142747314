"""Promises of the README checked against references that do not share the code under test: kernels and
colour formulas written out here, models whose output is known by hand, float comparisons where rounding
would hide a difference. Each test names the wrong code it catches (found by mutation testing)."""

import math

import numpy as np
import pytest
from PIL import Image, ImageCms

import superres
from conftest import nearest_edsr
from superres.cli import main
from superres.imaging.io import Picture, encode_image, read_image, write_image
from superres.imaging.png import chunk
from superres.inference.upscaler import Upscaler
from superres.models import load_model, save_weights

# ---------------------------------------------------------------------------------------------- resize


def _cubic(x):  # Keys' cubic with a = -0.5, as MATLAB's imresize documents it
    x = abs(x)
    x2 = x * x
    x3 = x2 * x
    if x <= 1:
        return 1.5 * x3 - 2.5 * x2 + 1
    if x <= 2:
        return -0.5 * x3 + 2.5 * x2 - 4 * x + 2
    return 0.0


def _triangle(x):
    return max(0.0, 1 - abs(x))


def _box(x):
    return 1.0 if -0.5 <= x < 0.5 else 0.0


def _lanczos(a):
    def kernel(x):
        if x == 0:
            return 1.0
        if abs(x) >= a:
            return 0.0
        return a * math.sin(math.pi * x) * math.sin(math.pi * x / a) / (math.pi**2 * x * x)

    return kernel


KERNELS = {
    "bicubic": (_cubic, 4),
    "bilinear": (_triangle, 2),
    "nearest": (_box, 1),
    "lanczos2": (_lanczos(2), 4),
    "lanczos3": (_lanczos(3), 6),
}


def reference_resize(img: np.ndarray, shape: tuple[int, int], method: str, larger_first: bool = False) -> np.ndarray:
    """MATLAB's imresize to an output shape, from its documentation: per dimension scale = out/in; the
    dimension with the smaller scale first; when shrinking (not nearest) the kernel widened by 1/scale;
    mirror padding; weights normalised, then summed tap by tap in order as imresizemex does; uint8 rounded
    after each dimension. (Which way a value within 1e-14 of .5 rounds depends on the order of the float sum
    of the weights; MATLAB's is not documented, and this takes numpy's.)"""
    kernel, width = KERNELS[method]
    out = img.astype(np.float64)
    scales = [shape[d] / img.shape[d] for d in range(2)]
    for axis in sorted(range(2), key=lambda d: scales[d], reverse=larger_first):
        scale, n_in, n_out = scales[axis], out.shape[axis], shape[axis]
        shrink = scale < 1 and method != "nearest"
        w = width / scale if shrink else width
        source = np.moveaxis(out, axis, 0)
        result = np.zeros((n_out, *source.shape[1:]))
        for i in range(n_out):
            u = (i + 1) / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - w / 2)
            taps = []
            for j in range(left, left + math.ceil(w) + 2):
                k = j
                while k < 1 or k > n_in:
                    k = 1 - k if k < 1 else 2 * n_in + 1 - k
                taps.append((scale * kernel(scale * (u - j)) if shrink else kernel(u - j), k - 1))
            total = np.sum([t for t, _ in taps])  # numpy's summation, as the code's: exact .5 ties agree
            for weight, k in taps:
                result[i] = result[i] + (weight / total) * source[k]
        out = np.moveaxis(result, 0, axis)
        if img.dtype == np.uint8:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out.astype(img.dtype) if img.dtype == np.uint8 else out


@pytest.mark.parametrize("method", sorted(KERNELS))
@pytest.mark.parametrize("shape", [(5, 20), (26, 4), (7, 7), (39, 33), (13, 20), (4, 11)])
def test_resize_matches_kernels_written_out_here(rng, method, shape):
    """Catches a wrong lanczos formula, a widened bilinear kernel, and the smaller-scale-first order ignored
    (the shapes give the two dimensions different scales, and uint8 rounds between them)."""
    img = rng.integers(0, 256, size=(13, 11, 3), dtype=np.uint8)
    got = superres.imresize(img, output_shape=shape, method=method)
    assert got.shape[:2] == shape and np.array_equal(got, reference_resize(img, shape, method))
    f = rng.random((13, 11))
    np.testing.assert_allclose(
        superres.imresize(f, output_shape=shape, method=method), reference_resize(f, shape, method), atol=1e-12
    )


@pytest.mark.parametrize("size", [(1, 1), (1, 3), (2, 2), (3, 2)])
@pytest.mark.parametrize("method", ["bicubic", "lanczos3"])
def test_tiny_images_mirror_at_their_borders(rng, size, method):
    """Kernels wider than the image reach past both borders, more than once: mirror padding throughout."""
    img = rng.random(size)
    for shape in [(5, 7), (1, 1), (2, 9)]:
        np.testing.assert_allclose(
            superres.imresize(img, output_shape=shape, method=method), reference_resize(img, shape, method), atol=1e-12
        )


def test_resize_order_matters_here(rng):
    """The check above can fail: with uint8 rounded between the passes, the other order gives other values."""
    img = rng.integers(0, 256, size=(13, 11, 3), dtype=np.uint8)
    for shape in [(5, 20), (26, 4)]:
        wrong = reference_resize(img, shape, "bicubic", larger_first=True)
        assert not np.array_equal(wrong, superres.imresize(img, output_shape=shape))


# ---------------------------------------------------------------------------------------------- pictures


def test_alpha_is_resized_with_bicubic_not_nearest(photo):
    alpha = np.add.outer(np.linspace(0, 200, 64), np.linspace(0, 55, 80)).astype(np.uint8)  # a gradient
    out = superres.upscale(np.dstack([photo, alpha]), model=nearest_edsr(2), device="cpu", precision="fp32")
    assert np.array_equal(out[..., 3], reference_resize(alpha, (128, 160), "bicubic"))


def test_16bit_pixels_keep_16_bits_through_a_model(rng):
    """Random 16-bit data through an exact x2 model: every value kept (a path through 8 bits would not)."""
    px = rng.integers(0, 65536, size=(12, 10, 3), dtype=np.uint16)
    out = superres.upscale(px, model=nearest_edsr(2), device="cpu", precision="fp32")
    assert out.dtype == np.uint16 and np.array_equal(out, px.repeat(2, 0).repeat(2, 1))


def test_gray_through_a_colour_model_is_the_mean_of_its_channels(rng):
    gains = (0.5, 1.0, 1.5)
    model = nearest_edsr(2, gains=gains)
    gray = rng.integers(0, 256, size=(9, 7), dtype=np.uint8)
    out = superres.upscale(gray, model=model, device="cpu", precision="fp32")
    mean = np.array(model.config.rgb_mean) * model.config.rgb_range
    channels = [m + g * (gray.astype(np.float64) - m) for g, m in zip(gains, mean, strict=False)]
    expected = np.clip(np.floor(np.mean(channels, axis=0) + 0.5), 0, 255).repeat(2, 0).repeat(2, 1)
    assert out.shape == expected.shape and np.abs(out.astype(int) - expected).max() <= 1
    assert np.abs(out.astype(int) - np.clip(channels[0], 0, 255).repeat(2, 0).repeat(2, 1)).max() > 10


def test_colour_through_a_luma_model_takes_bicubic_chroma(photo):
    """A one-channel model upscales Y; Cb and Cr go through bicubic (BT.601 written out here)."""
    rgb = photo[:20, :24].astype(np.float64)
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
    ycc = rgb @ m.T + [16, 128, 128]
    y = ycc[..., 0].repeat(2, 0).repeat(2, 1)  # the model: nearest on luma
    chroma = reference_resize(ycc[..., 1:], (40, 48), "bicubic")
    expected = np.clip(np.floor((np.dstack([y, chroma]) - [16, 128, 128]) @ np.linalg.inv(m).T + 0.5), 0, 255)
    out = superres.upscale(photo[:20, :24], model=nearest_edsr(2, colors=1), device="cpu", precision="fp32")
    assert np.abs(out.astype(int) - expected).max() <= 1


def _png_with_exif(path, pixels, alpha, orientation):
    """A PNG (16-bit colour too, which Pillow cannot write) with an eXIf chunk holding the orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode_image(Picture(pixels, alpha), "PNG")
    end = data.rindex(b"IEND") - 4
    path.write_bytes(
        data[:end]
        + chunk(b"eXIf", exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes())
        + data[end:]
    )
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_exif_orientation_turns_16bit_pixels_and_alpha(tmp_path, rng, dtype):
    peak = np.iinfo(dtype).max
    px = rng.integers(0, peak + 1, size=(6, 9, 3), dtype=dtype)
    alpha = rng.integers(0, peak + 1, size=(6, 9), dtype=dtype)
    got = read_image(_png_with_exif(tmp_path / "turned.png", px, alpha, 6))  # 6: turn 90 degrees clockwise
    assert np.array_equal(got.pixels, np.rot90(px, -1)) and np.array_equal(got.alpha, np.rot90(alpha, -1))


@pytest.mark.parametrize("suffix, pixels", [(".png", "8"), (".tif", "16"), (".jpg", "8")])
def test_the_icc_profile_survives_the_upscale_command(tmp_path, photo, suffix, pixels):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    px = photo[:16, :16] if pixels == "8" else photo[:16, :16].astype(np.uint16) * 257
    write_image(tmp_path / f"in{suffix}", Picture(px, None, icc))
    model = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    assert (
        main(["upscale", str(tmp_path / f"in{suffix}"), "--model", str(model), "-o", str(tmp_path / f"out{suffix}")])
        == 0
    )
    assert read_image(tmp_path / f"out{suffix}").icc_profile == icc


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["mspan", "mdsr-medium"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiling_of_the_bundled_models_is_exact_in_float(photo, scale, name):
    """Tiles cut with a margin of the receptive radius give the untiled output up to float summation order;
    a margin short of it shows as differences of whole gray levels at the seams."""
    net = load_model(name)
    image = photo[:48, :56].astype(np.float32)
    whole = Upscaler(net, scale, device="cpu", precision="fp32", tile=0)(image)
    tiled = Upscaler(net, scale, device="cpu", precision="fp32", tile=16)(image)
    assert np.abs(whole - tiled).max() < 2e-3


def test_non_integer_scale_resizes_the_network_output_with_bicubic(tmp_path, photo):
    write_image(tmp_path / "in.png", Picture(photo[:20, :24]))
    model = nearest_edsr(3)
    save_weights(model, tmp_path / "x3.safetensors")
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "in.png"),
                "--model",
                str(tmp_path / "x3.safetensors"),
                "--scale",
                "2.5",
                "--precision",
                "fp32",
                "-o",
                str(tmp_path / "out.png"),
            ]
        )
        == 0
    )
    x3 = photo[:20, :24].repeat(3, 0).repeat(3, 1)
    expected = reference_resize(x3, (50, 60), "bicubic")
    assert np.array_equal(read_image(tmp_path / "out.png").pixels, expected)


def test_eval_ensemble_is_the_self_ensemble(tmp_path, photo):
    """`MODEL+ensemble` in eval scores the 8-transform average, not the plain model."""
    import torch

    from superres.evaluation.benchmark import EvalConfig, evaluate
    from superres.evaluation.metrics import psnr
    from superres.models import EDSR, EDSRConfig

    folder = tmp_path / "set"
    folder.mkdir()
    hr = photo[:32, :40]
    write_image(folder / "a.png", Picture(hr))
    torch.manual_seed(0)
    model = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1))
    weights = save_weights(model, tmp_path / "tiny.safetensors")
    results = evaluate(EvalConfig(datasets=[str(folder)], scales=[2], methods=[str(weights), f"{weights}+ensemble"]))
    scores = {r["method"]: r["psnr"] for r in results.per_image}
    lr = superres.imresize(hr, 0.5)

    def scored(**options) -> float:
        sr = Upscaler(load_model(weights), 2, device="cpu", precision="fp32", **options)(lr)
        return psnr(np.clip(np.floor(sr + 0.5), 0, 255).astype(np.uint8), hr, shave=2)

    plain, ensemble = scored(), scored(self_ensemble=True)
    assert abs(plain - ensemble) > 0.01  # the two differ, so the check below can tell them apart
    assert scores == pytest.approx({str(weights): plain, f"{weights}+ensemble": ensemble}, abs=1e-3)
