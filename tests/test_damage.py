"""The damage estimator: crops on the JPEG grid, the file's quality before the pixels', and the bundled network's
readings on pictures whose damage is known (made here, from scikit-image's photos)."""

import numpy as np
import pytest

from conftest import answering_chain_net
from superres.imaging.damage import (
    CHAIN_AT,
    CROP,
    NOISE_CLEAN_BELOW,
    NOISE_FLOOR,
    DamageNet,
    bundled_chain_net,
    bundled_damage_net,
    chain_chance,
    crops,
    estimate_damage,
    estimate_jpeg,
    noise_damage,
)
from superres.imaging.degrade import condition, degrade, parse_preset, shrink
from superres.training.damage import make_chain_patches, train_damage_net


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
    jpeg = estimate_damage(photo, jpeg_quality=58, net=zeros, chain=False).jpeg
    assert jpeg == pytest.approx(condition(58)[0])


def test_the_noise_is_read_above_the_floor():
    flat = np.full((256, 256, 3), 120, np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.clip(flat + rng.standard_normal(flat.shape) * 10, 0, 255).round().astype(np.uint8)
    _, noise, sigma, _ = estimate_damage(noisy, jpeg_quality=100, chain=False)
    # the floor (texture) comes off in quadrature: independent texture and noise add as variances
    assert sigma == pytest.approx(10, abs=0.6) and noise == pytest.approx((sigma**2 - NOISE_FLOOR**2) ** 0.5 / 20)
    assert estimate_damage(flat, jpeg_quality=100, chain=False).noise == 0  # below the floor: none
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


def test_a_picture_read_as_the_chain_is_told_the_strongest_damage(photo):
    """With the detector on (auto+chain), at a chance of CHAIN_AT or more (1, 1) is told whatever the tables
    say; below it, or with the detector off (plain auto, the default), the readings as they are."""
    small = shrink(photo, 2)
    high = (CHAIN_AT + 1) / 2
    sure, unsure = answering_chain_net(high), answering_chain_net(CHAIN_AT - 0.05)
    for quality in (None, 90):
        told = estimate_damage(small, quality, chain_net=sure, chain=True)
        assert (told.jpeg, told.noise) == (1.0, 1.0) and told.chain == pytest.approx(high, abs=1e-4)
        plain = estimate_damage(small, quality, chain=False)
        assert estimate_damage(small, quality, chain_net=unsure, chain=True)[:3] == plain[:3]
        assert estimate_damage(small, quality, chain_net=sure) == plain and plain.chain is None  # off by default
    assert estimate_damage(small, 90, chain=False).jpeg == pytest.approx(condition(90)[0])


@pytest.mark.skipif(bundled_chain_net() is None, reason="no chain detector in this install")
def test_the_bundled_detector_tells_the_chain_from_damage_people_s_files_carry(photo):
    """On a picture it did not train on (scikit-image's astronaut): clean, JPEG, noisy, blurred, camera, web and
    soft camera-resolution versions all read well below CHAIN_AT; versions through Real-ESRGAN's chain (eight
    seeds) read well above them, and some at or above CHAIN_AT."""
    kinds = ("clean", "jpeg:90", "jpeg:50", "jpeg:30", "noise:10", "blur:1.5+jpeg:60", "camera", "web")
    others = [chain_chance(degrade(photo, 2, kind, seed=1).pixels) for kind in kinds]
    others += [chain_chance(parse_preset("soft").apply(photo, 2, np.random.default_rng(1)).pixels), chain_chance(photo)]
    assert max(others) < CHAIN_AT - 0.2, dict(zip((*kinds, "soft", "full size"), others, strict=True))
    chained = [chain_chance(degrade(photo, 2, "real", seed=seed).pixels) for seed in range(8)]
    assert np.median(chained) > max(others) + 0.2 and sum(c >= CHAIN_AT for c in chained) >= 2, chained


def test_chain_patches_are_half_chain_and_a_detector_learns_from_them(photo):
    """make_chain_patches labels half its crops as the chain, and those are the chain's (the bundled detector reads
    them far above the rest); soft pictures keep the LR size; a one-output DamageNet trained by cross-entropy on a
    separable toy set tells its two halves apart."""
    from superres.imaging.datasets import Sample

    sample = Sample(name="astronaut", hr=photo, lr=shrink(photo, 2))
    patches, labels = make_chain_patches([sample], 64, seed=0, scales=(2,))
    assert patches.shape == (64, CROP, CROP, 3) and patches.dtype == np.uint8 and labels.shape == (64, 1)
    assert 16 <= labels.sum() <= 48 and set(np.unique(labels)) == {0.0, 1.0}
    if bundled_chain_net() is not None:
        chances = np.array([chain_chance(p) for p in patches])
        chain, rest = chances[labels[:, 0] == 1], chances[labels[:, 0] == 0]
        assert np.median(chain) > np.median(rest) + 0.3 and np.mean(chain > rest.max()) > 0.25, (chain, rest)
    assert degrade(photo, 2, "soft").pixels.shape == (192, 192, 3)
    rng = np.random.default_rng(0)
    flat = np.full((32, CROP, CROP, 3), 128, np.uint8)
    noisy = np.clip(128 + rng.normal(0, 30, flat.shape), 0, 255).astype(np.uint8)
    toy = np.concatenate([flat, noisy])
    net = train_damage_net(toy, np.repeat([[0.0], [1.0]], 32, axis=0).astype(np.float32), steps=200, batch=16)
    assert chain_chance(noisy[0], net) > 0.8 and chain_chance(flat[0], net) < 0.2


def test_the_detector_is_fitted_by_cross_entropy_so_its_answer_is_a_chance():
    """One picture labelled 1 a quarter of the time: cross-entropy's optimum is the share, 0.25 (L1's, the median,
    would be 0), so a detector trained on it answers about 0.25."""
    picture = np.clip(128 + np.random.default_rng(1).normal(0, 20, (40, CROP, CROP, 3)), 0, 255).astype(np.uint8)
    picture[:] = picture[0]  # one picture, 40 times
    labels = (np.arange(40) % 4 == 0).astype(np.float32)[:, None]
    net = train_damage_net(picture, labels, steps=300, batch=16)
    assert 0.15 < chain_chance(picture[0], net) < 0.35
