"""Registry-driven checks over the models that ship inside the package, at every scale they produce."""

import numpy as np
import pytest

import superres
from superres.inference.upscaler import Upscaler
from superres.models import list_models, load_model
from superres.models.registry import PRETRAINED, bundled_results, default_model_name, default_scales

BUNDLED = list_models(pretrained=True)
AT_SCALES = [(name, s) for name in BUNDLED for s in PRETRAINED[name].scales]


def test_one_default_model_serves_every_scale():
    assert default_scales() == (2, 3, 4)
    names = {default_model_name(s) for s in (2, 3, 4)}
    assert len(names) == 1 and None not in names  # one network for every scale
    assert load_model().scales == (2, 3, 4)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_weights_load_and_describe_themselves(name):
    entry = PRETRAINED[name]
    assert entry.path().stat().st_size <= 10 * 2**20
    model = load_model(name)
    assert model.scales == entry.scales and model.metadata["steps"] > 0
    assert model.metadata["arch"] == model.arch and model.metadata["config"] == model.config.to_dict()


@pytest.mark.parametrize("name, scale", AT_SCALES)
def test_bundled_model_beats_bicubic_on_a_bundled_photo(name, scale):
    """A trained model must reconstruct a real photo better than bicubic (a random one would not)."""
    from skimage import data

    hr = data.coffee()[:240, :300]
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = superres.imresize(hr, 1 / scale)
    ours = superres.psnr(superres.upscale(lr, scale, model=name), hr, shave=scale)
    bicubic = superres.psnr(superres.imresize(lr, scale), hr, shave=scale)
    assert ours > bicubic + 0.3


@pytest.mark.parametrize("name, scale", AT_SCALES)
def test_tiled_equals_untiled_for_bundled_models(name, scale):
    """Compared as floats: a margin short of the receptive radius would show at the seams."""
    model = load_model(name)
    img = np.random.default_rng(0).random((61, 75, 3)).astype(np.float32) * 255
    whole = Upscaler(model, scale, device="cpu", precision="fp32", tile=0)(img)
    tiled = Upscaler(model, scale, device="cpu", precision="fp32", tile=24)(img)
    assert np.abs(whole - tiled).max() < 1e-2


def test_measured_results_cover_every_bundled_model():
    """Clean models in weights/eval.json; photo models (a model's counterpart, `photo` in `eval --degrade`) in
    the results their cards and docs/photos.md come from: mspan-photo on the first 25 B100 images
    (benchmarks/photo_targets.sh), mdsr-medium-photo on Set5, Set14 and B100 (benchmarks/eval_degraded.sh, when it
    was the default's)."""
    import json
    from pathlib import Path

    results_dir = Path(__file__).resolve().parents[1] / "docs" / "results"
    photo_results = {
        "mspan-photo": (["photo-x2.json", "photo-x3.json", "photo-x4.json"], {"B100-25"}),
        "mdsr-medium-photo": (["degraded.json"], {"Set5", "Set14", "B100"}),
    }
    photo_models = {PRETRAINED[n].photo for n in BUNDLED if PRETRAINED[n].photo}
    assert photo_models <= set(photo_results)
    for name in BUNDLED:
        entry = PRETRAINED[name]
        if name in photo_models:
            files, wanted = photo_results[name]
            results = [r for f in files for r in json.loads((results_dir / f).read_text())["results"]]
            labels = {"photo"}
        else:
            results, wanted = bundled_results(), {"Set5", "Set14", "B100"}
            labels = {name, "model"} if entry.default else {name}  # 'model' = the bundled default
        for scale in entry.scales:
            sets = {
                r["dataset"] for r in results if r["method"] in labels and r["scale"] == scale and r["channel"] == "y"
            }
            assert wanted <= sets, (name, scale)
