"""Registry-driven checks over the models that ship inside the package."""

import numpy as np
import pytest

import superres
from superres.inference.upscaler import Upscaler
from superres.models import list_models, load_model
from superres.models.registry import PRETRAINED, bundled_results, default_model_name

BUNDLED = list_models(pretrained=True)


def test_a_default_model_ships_for_every_scale():
    for scale in (2, 3, 4):
        name = default_model_name(scale)
        assert name is not None and PRETRAINED[name].scale == scale
        assert load_model(scale=scale).scale == scale


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_weights_load_and_describe_themselves(name):
    entry = PRETRAINED[name]
    assert entry.path().stat().st_size <= 10 * 2**20
    model = load_model(name)
    assert model.scale == entry.scale
    assert model.metadata["config"]["scale"] == entry.scale and model.metadata["steps"] > 0


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_beats_bicubic_on_a_bundled_photo(name):
    """A trained model must reconstruct a real photo better than bicubic (a random one would not)."""
    from skimage import data

    scale = PRETRAINED[name].scale
    hr = data.coffee()[:240, :300]
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = superres.imresize(hr, 1 / scale)
    ours = superres.psnr(superres.upscale(lr, model=name), hr, shave=scale)
    bicubic = superres.psnr(superres.imresize(lr, scale), hr, shave=scale)
    assert ours > bicubic + 0.3


@pytest.mark.parametrize("name", BUNDLED)
def test_tiled_equals_untiled_for_bundled_models(name):
    model = load_model(name)
    img = np.random.default_rng(0).random((61, 75, 3)).astype(np.float32) * 255
    whole = np.clip(np.round(Upscaler(model, tile=0)(img)), 0, 255)
    tiled = np.clip(np.round(Upscaler(model, tile=24)(img)), 0, 255)
    assert np.abs(whole - tiled).max() <= 1 and np.mean(whole == tiled) >= 0.9999


def test_measured_results_cover_every_bundled_model():
    results = bundled_results()
    for name in BUNDLED:
        entry = PRETRAINED[name]
        labels = {name, "model"} if entry.default else {name}  # 'model' = the default of its scale
        sets = {r["dataset"] for r in results if r["method"] in labels and r["scale"] == entry.scale
                and r["channel"] == "y"}
        assert {"Set5", "Set14", "B100"} <= sets
