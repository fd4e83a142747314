import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from superres.errors import ConfigError
from superres.imaging.degrade import (
    FILES_MIX,
    KERNEL_ONE,
    add_camera_noise,
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    degrade,
    disk_kernel,
    gaussian_kernel,
    image_rng,
    jpeg,
    motion_kernel,
    parse_preset,
    quantize_kernel,
    resize,
    shrink,
    sinc_kernel,
)
from superres.imaging.quality import jpeg_file_quality, jpeg_quality, noise_sigma
from superres.imaging.resize import imresize


@pytest.fixture
def hr():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[80:176, 160:256])  # 96 x 96, divisible by 2, 3, 4


def smooth(h=96, w=96):
    """A smooth colour ramp: no texture, so a noise estimator reads the added noise alone."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([60 + x, 60 + y, 180 - (x + y) // 2], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- kernels and steps


@pytest.mark.parametrize(
    "shape,beta", [("gaussian", 1.0), ("generalized", 0.6), ("generalized", 3.0), ("plateau", 1.5)]
)
def test_kernels_are_normalised_and_point_symmetric(shape, beta):
    k = gaussian_kernel(15, 2.0, 0.7, theta=0.6, shape=shape, beta=beta)
    assert k.shape == (15, 15) and abs(k.sum() - 1) < 1e-12
    assert np.allclose(k, k[::-1, ::-1])  # correlation = convolution
    assert k[7, 7] == k.max()
    assert not np.allclose(k, k.T)  # anisotropic and rotated


def test_isotropic_gaussian_matches_the_formula():
    k = gaussian_kernel(7, 1.3)
    r = np.arange(7) - 3
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.3**2))
    assert np.allclose(k, g / g.sum())


def test_sinc_kernel_is_a_low_pass():
    k = sinc_kernel(21, np.pi / 3)
    assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k.T) and k.min() < 0  # ringing lobes
    spectrum = np.abs(np.fft.fft2(k, (64, 64)))
    assert spectrum[0, 0] > 0.99 and spectrum[32, 32] < 0.1  # DC passes, Nyquist is cut


def test_quantised_kernel_sums_exactly():
    q = quantize_kernel(sinc_kernel(13, 1.1))
    assert q.dtype == np.int64 and q.sum() == KERNEL_ONE


def test_blur_exact_cases(hr):
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    assert np.array_equal(blur(hr, delta), hr)
    flat = np.full((20, 30, 3), 117, np.uint8)
    assert np.array_equal(blur(flat, gaussian_kernel(21, 3.0)), flat)  # kernel wider than the image
    box = np.full((3, 3), 1 / 9)
    ref = np.pad(hr.astype(np.int64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    sums = sum(ref[dy : dy + 96, dx : dx + 96] for dy in range(3) for dx in range(3)) * quantize_kernel(box)[0, 0]
    sums += (KERNEL_ONE - quantize_kernel(box).sum()) * hr  # the rounding remainder sits on the centre tap
    assert np.array_equal(blur(hr, box), np.clip((sums + KERNEL_ONE // 2) >> 16, 0, 255).astype(np.uint8))


def test_resize_modes(hr):
    for mode in ("area", "bilinear", "bicubic"):
        assert resize(hr, (40, 50), mode).shape == (40, 50, 3)
        assert resize(hr, (150, 130), mode).shape == (150, 130, 3)
    assert np.array_equal(
        resize(hr, (48, 48), "area"), imresize(hr, output_shape=(48, 48), method="nearest", antialiasing=True)
    )
    blocks = hr.reshape(48, 2, 48, 2, 3).astype(np.float64).mean(axis=(1, 3))  # area at 1/2 = 2x2 means
    assert np.abs(resize(hr, (48, 48), "area") - blocks).max() <= 1  # rounded after each of the two passes


def test_noise_levels():
    img = np.full((200, 200, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    noisy = add_gaussian_noise(img, rng, 10.0).astype(np.float64) - 128
    assert abs(noisy.std() - 10) < 0.3 and abs(noisy.mean()) < 0.2
    gray = add_gaussian_noise(img, rng, 10.0, gray=True)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    img[0, :, 0] = np.arange(200) + 28  # 200 distinct levels: Poisson counts at 256 levels
    shot = add_poisson_noise(img, rng, 1.0)[1:].astype(np.float64) - 128
    expected = np.sqrt(128 / 255 * 256) / 256 * 255  # sd of counts / levels, in gray levels: about 11.3
    assert abs(shot.std() - expected) < 0.05 * expected and abs(shot.mean()) < 0.3  # less rounding's loss
    half = add_poisson_noise(img, rng, 0.5)[1:].astype(np.float64) - 128
    assert abs(half.std() - expected / 2) < 0.08 * expected / 2


def test_jpeg_is_libjpeg_and_reports_its_quality(hr):
    pixels, data = jpeg(hr, 40)
    assert data[:2] == b"\xff\xd8" and pixels.shape == hr.shape
    assert np.array_equal(pixels, np.asarray(Image.open(io.BytesIO(data))))
    assert jpeg_file_quality(data) == 40


# ---------------------------------------------------------------------------------------------- presets


@pytest.mark.parametrize(
    "name", ["bicubic", "clean", "jpeg:75", "noise:10", "blur:0.8", "blur:1+noise:5+jpeg:70", "real", "photo"]
)
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_presets_give_the_lr_size(hr, name, scale):
    out = degrade(hr, scale, name, seed=1)
    assert out.pixels.shape == (96 // scale, 96 // scale, 3) and out.pixels.dtype == np.uint8
    if name.endswith("jpeg:70") or name == "jpeg:75":
        assert out.jpeg is not None and np.array_equal(out.pixels, np.asarray(Image.open(io.BytesIO(out.jpeg))))


def test_simple_presets_are_the_named_steps(hr):
    lr = imresize(hr, 1 / 2)
    assert np.array_equal(degrade(hr, 2, "bicubic").pixels, lr)
    assert np.array_equal(degrade(hr, 2, "jpeg:75").pixels, jpeg(lr, 75)[0])
    assert np.array_equal(degrade(hr, 2, "blur:0.8").pixels, shrink(blur(hr, gaussian_kernel(7, 0.8)), 2))
    noisy = degrade(hr, 2, "noise:10", seed=4).pixels.astype(np.float64) - lr
    assert 8 < noisy.std() < 11


def test_degradations_are_reproducible_and_depend_on_seed_and_image(hr):
    a = degrade(hr, 2, "real", seed=7)
    assert np.array_equal(a.pixels, degrade(hr, 2, "real", seed=7).pixels)
    assert not np.array_equal(a.pixels, degrade(hr, 2, "real", seed=8).pixels)
    other = hr.copy()
    other[0, 0, 0] ^= 1
    assert image_rng(0, hr).integers(1 << 62) != image_rng(0, other).integers(1 << 62)


def test_real_chain_is_the_same_on_every_machine(hr):
    """A recorded digest: the chain uses exact integer arithmetic, so any CPU must reproduce it bit for bit
    (with this numpy's random streams and this Pillow's libjpeg). A change here changes every degraded set."""
    outs = [degrade(hr, s, "real", seed=seed).pixels for s in (2, 3, 4) for seed in range(4)]
    digest = hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest()
    assert digest == REAL_DIGEST


REAL_DIGEST = "801d5193b1c61ccd4c21134d03e1c07bcc45e61ed04200dfb92ed0da9afd82ae"


def test_real_chain_degrades(hr):
    """Across seeds the chain blurs, resizes, adds noise and compresses: the LR is further from the bicubic LR
    than JPEG quality 90 is, and some outputs are JPEG files, some not (the two final orders)."""
    lr = imresize(hr, 1 / 2).astype(np.float64)
    outs = [degrade(hr, 2, "real", seed=s) for s in range(12)]
    err = np.mean([np.abs(o.pixels - lr).mean() for o in outs])
    assert err > np.abs(jpeg(imresize(hr, 1 / 2), 90)[0] - lr).mean()
    assert 0 < sum(o.jpeg is not None for o in outs) < len(outs)


def test_gray_images(hr):
    gray = np.ascontiguousarray(hr[..., 1])
    for name in ("jpeg:50", "real", "photo"):
        assert degrade(gray, 2, name).pixels.shape == (48, 48)


@pytest.mark.parametrize("bad", ["jpg:75", "jpeg:0", "jpeg:75.5", "noise:x", "noise:-1", "blur:", "real+jpeg:5", ""])
def test_bad_presets_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_preset(bad)


def test_sixteen_bit_is_refused(hr):
    with pytest.raises(ConfigError, match="8-bit"):
        degrade(hr.astype(np.uint16) * 257, 2, "jpeg:50")


# ---------------------------------------------------------------------------------------------- what a file says


@pytest.mark.parametrize("quality", [10, 35, 50, 72, 90, 97])
def test_jpeg_quality_from_the_tables(hr, quality):
    buf = io.BytesIO()
    Image.fromarray(hr).save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert jpeg_quality(im.quantization) == quality
    assert jpeg_quality(None) is None and jpeg_quality({}) is None


def test_noise_sigma_reads_added_noise():
    clean = smooth()
    assert noise_sigma(clean) < 0.5
    for sigma in (5.0, 10.0, 20.0):
        measured = noise_sigma(add_gaussian_noise(clean, np.random.default_rng(0), sigma))
        assert abs(measured - sigma) < 0.15 * sigma
    assert abs(noise_sigma(add_gaussian_noise(clean, np.random.default_rng(0), 10.0)[..., 0]) - 10) < 1.5  # gray


def test_seeds_must_not_be_negative(hr):
    with pytest.raises(ConfigError, match="seed"):
        degrade(hr, 2, "real", seed=-1)


def test_wide_blurs_are_refused():
    parse_preset("blur:10")
    with pytest.raises(ConfigError, match="sigma"):
        parse_preset("blur:11")


# ------------------------------------------------------------------------------------- what files carry


@pytest.mark.parametrize("name", ["web", "camera", "grain", "lens", "files", "clean", "real"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_file_presets_make_the_lr_and_say_their_damage(hr, name, scale):
    a, b = degrade(hr, scale, name, seed=3), degrade(hr, scale, name, seed=3)
    assert a.pixels.shape == (96 // scale, 96 // scale, 3) and a.pixels.dtype == np.uint8
    assert np.array_equal(a.pixels, b.pixels) and a.condition == b.condition  # the seed and the image decide
    assert all(0 <= c <= 1 for c in a.condition)
    if name == "clean":
        assert a.condition == (0.0, 0.0) and np.array_equal(a.pixels, shrink(hr, scale))
    if name == "real":
        assert a.condition == (1.0, 1.0)


def test_a_jpeg_condition_is_the_quality_the_file_tells(hr):
    seen = 0
    for seed in range(12):
        for name in ("web", "camera", "grain", "lens"):
            out = degrade(hr, 2, name, seed=seed)
            if out.jpeg is None:
                assert out.condition[0] == 0
                continue
            seen += 1
            q = jpeg_file_quality(out.jpeg)
            assert out.condition[0] == pytest.approx((100 - q) / 70)
            assert name != "web" or out.condition[1] == 0
    assert seen >= 12
    # simple presets: the lowest quality, and the noise levels added in quadrature
    assert degrade(hr, 2, "noise:6+noise:8+jpeg:65", seed=0).condition == pytest.approx((0.5, 0.5))


def test_camera_noise_has_its_level_and_correlations():
    flat = np.full((256, 256, 3), 128, np.uint8)
    for sigma, colour in ((4.0, 0.2), (10.0, 0.6)):
        noise = add_camera_noise(flat, np.random.default_rng(0), sigma, 0.5, colour, 0.6).astype(np.float64) - 128
        assert noise.std() == pytest.approx(sigma, rel=0.05)
        corr = np.corrcoef(noise[..., 0].ravel(), noise[..., 2].ravel())[0, 1]
        assert corr == pytest.approx(colour, abs=0.05)
        neighbours = np.corrcoef(noise[:, :-1, 0].ravel(), noise[:, 1:, 0].ravel())[0, 1]
        assert neighbours > 0.2  # spread over neighbours, as after demosaicing
    # Poisson-Gaussian: brighter levels are noisier (the shot share); the mean variance is sigma^2
    ramp = np.repeat(np.linspace(20, 235, 256).astype(np.uint8)[None, :, None], 256, axis=0).repeat(3, axis=2)
    noise = add_camera_noise(ramp, np.random.default_rng(1), 8.0, 0.9, 0.0, 0.0).astype(np.float64) - ramp
    assert noise[:, :64].std() < 0.7 * noise[:, -64:].std()


def test_grain_is_white_noise_of_the_sigma_it_tells():
    """On a flat gray picture, `grain` without its JPEG leaves noise of the sigma its condition says, not
    correlated between neighbours (what sets it apart from camera noise)."""
    flat = np.full((256, 256, 3), 128, np.uint8)
    checked = 0
    for seed in range(10):
        out = degrade(flat, 2, "grain", seed=seed)
        if out.jpeg is not None:
            continue
        noise = out.pixels.astype(np.float64) - 128
        sigma = out.condition[1] * 20
        assert noise.std() == pytest.approx(sigma, rel=0.05)
        neighbours = np.corrcoef(noise[:, :-1, 0].ravel(), noise[:, 1:, 0].ravel())[0, 1]
        assert abs(neighbours) < 0.05
        checked += 1
    assert checked >= 3


def test_lens_kernels():
    disk, line = disk_kernel(1.5), motion_kernel(4.0, 0.0)
    for k in (disk, line):
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1)
        assert np.allclose(k, k[::-1, ::-1])  # centred
    assert np.allclose(disk, disk.T) and disk[2, 2] == disk.max() and disk[0, 0] < 0.05 * disk.max()
    assert line[2].sum() > 0.9 and np.allclose(motion_kernel(4.0, np.pi / 2), line.T)  # horizontal; turned


def test_mixtures(hr):
    assert degrade(hr, 2, "mix:clean=1", seed=0).condition == (0, 0)
    webs = [degrade(hr, 2, "mix:web=2", seed=s) for s in range(5)]  # one component: always a web JPEG
    assert all(w.jpeg is not None and w.condition[1] == 0 for w in webs)
    kinds = [degrade(hr, 2, "mix:clean=0.5,real=0.5", seed=s).condition for s in range(40)]
    assert 8 < kinds.count((1.0, 1.0)) < 32 and kinds.count((0.0, 0.0)) == 40 - kinds.count((1.0, 1.0))
    preset = parse_preset("files")
    assert preset.name == "files" and dict(FILES_MIX)["web"] > dict(FILES_MIX)["real"]
    for bad, reason in (
        ("mix:clean=1,jpeg=1", "'jpeg' is not one of"),
        ("mix:files=1", "'files' is not one of"),
        ("mix:web=0", "above 0"),
        ("mix:web=x", "must be a number"),
        ("fog", "mix:clean=0.2,web=0.8"),
    ):
        with pytest.raises(ConfigError, match=reason):
            parse_preset(bad)
