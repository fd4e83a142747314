"""The damage estimator: crops on the JPEG grid, the file's quality before the pixels', and the bundled network's
readings on pictures whose damage is known (made here, from scikit-image's photos)."""

import numpy as np
import pytest

from superres.imaging.damage import (
    CROP,
    NOISE_CLEAN_BELOW,
    NOISE_FLOOR,
    DamageNet,
    bundled_damage_net,
    crops,
    estimate_damage,
    estimate_jpeg,
    noise_damage,
)
from superres.imaging.degrade import condition, degrade, shrink


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:384, :384])


def test_crops_start_on_the_jpeg_grid_and_cover_small_pictures():
    y, x = np.mgrid[0:300, 0:200]
    img = np.repeat(((y % 8) * 8 + x % 8).astype(np.uint8)[..., None], 3, axis=2)  # each pixel's place in its block
    got = crops(img)
    assert got.shape == (16, CROP, CROP, 3)
    assert all(np.array_equal(c, img[:CROP, :CROP]) for c in got)  # every crop starts on the 8-pixel grid
    assert crops(img[:20, :30]).shape == (1, CROP, CROP, 3)  # padded to one crop
    assert crops(img[..., 0]).shape == (16, CROP, CROP, 3)  # gray: three equal channels


def test_a_jpeg_files_quality_comes_from_its_tables(photo):
    zeros = DamageNet().eval()  # an untrained network: its answer must not matter for a JPEG file
    jpeg, _, _ = estimate_damage(photo, jpeg_quality=58, net=zeros)
    assert jpeg == pytest.approx(condition(58)[0])


def test_the_noise_is_read_above_the_floor():
    flat = np.full((256, 256, 3), 120, np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.clip(flat + rng.standard_normal(flat.shape) * 10, 0, 255).round().astype(np.uint8)
    _, noise, sigma = estimate_damage(noisy, jpeg_quality=100)
    # the floor (texture) comes off in quadrature: independent texture and noise add as variances
    assert sigma == pytest.approx(10, abs=0.6) and noise == pytest.approx((sigma**2 - NOISE_FLOOR**2) ** 0.5 / 20)
    assert estimate_damage(flat, jpeg_quality=100)[1] == 0  # below the floor: none
    # the cut-off sits at about the reading the linear floor's cut-off (0.13) stood for; readings either side
    assert noise_damage(NOISE_FLOOR + 20 * 0.13) == pytest.approx(NOISE_CLEAN_BELOW, abs=1e-3)
    assert noise_damage(3.8) < NOISE_CLEAN_BELOW < noise_damage(4.2)


@pytest.mark.skipif(bundled_damage_net() is None, reason="no estimator weights in this install")
def test_the_bundled_network_reads_jpeg_damage_from_pixels(photo):
    """On pixels alone (no tables), the network reads a quality-40 picture as more damaged than a quality-90
    one, and that as more damaged than the clean shrink; the estimate for q40 is within 20 quality units of the
    truth, and the clean shrink reads as undamaged (below the cut-off)."""
    clean = shrink(photo, 2)
    raw = {q: estimate_jpeg(degrade(photo, 2, f"jpeg:{q}").pixels) for q in (40, 90)}
    raw[100] = estimate_jpeg(clean)
    assert raw[40] > raw[90] > raw[100]
    q40 = estimate_damage(degrade(photo, 2, "jpeg:40").pixels)[0]
    assert abs(q40 - condition(40)[0]) * 70 < 20
    assert estimate_damage(clean)[:2] == (0.0, 0.0)
