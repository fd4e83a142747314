from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from superres import upscale
from superres.api import ImageUpscaler
from superres.cli.main import main
from superres.errors import CheckpointError, ConfigError
from superres.imaging.degrade import add_gaussian_noise
from superres.imaging.io import Picture, read_image
from superres.inference.denoise import JPEG_CLEAN, JPEG_FULL, DenoiseChoice, PhotoPair, auto_strength, parse_denoise
from superres.models import create_model, load_model
from superres.models.checkpoints import interpolate
from superres.models.registry import default_model_name, photo_partner


def smooth(h=80, w=96):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([60 + x, 60 + y, 180 - (x + y) // 2], axis=-1).astype(np.uint8)


def test_interpolation_is_a_weight_blend():
    torch.manual_seed(0)
    a, b = create_model("mdsr-tiny"), create_model("mdsr-tiny")
    mid = interpolate(a, b, 0.25)
    for k, v in mid.state_dict().items():
        assert torch.allclose(v, 0.75 * a.state_dict()[k] + 0.25 * b.state_dict()[k], atol=1e-6)
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in interpolate(a, b, 0).state_dict().items())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in interpolate(a, b, 1).state_dict().items())
    assert mid is not a and not torch.equal(a.state_dict()["head.0.weight"], mid.state_dict()["head.0.weight"])
    with pytest.raises(CheckpointError, match="architectures differ"):
        interpolate(a, create_model("edsr-tiny"), 0.5)


def test_auto_strength_from_quality_and_noise():
    clean = smooth()
    assert auto_strength(Picture(clean)).strength == 0
    assert auto_strength(Picture(clean, jpeg_quality=JPEG_CLEAN)).strength == 0
    assert auto_strength(Picture(clean, jpeg_quality=JPEG_FULL)).strength == 1
    ramp = [auto_strength(Picture(clean, jpeg_quality=q)).strength for q in range(100, 20, -5)]
    assert ramp == sorted(ramp) and ramp[0] == 0 and ramp[-1] == 1 and any(0 < s < 1 for s in ramp)
    noisy = add_gaussian_noise(clean, np.random.default_rng(0), 20.0)
    choice = auto_strength(Picture(noisy))
    assert choice.strength == 1 and 17 < choice.sigma < 23 and choice.quality is None
    assert "not a JPEG, noise sigma ~" in choice.describe() and choice.describe().endswith("-> denoise 1")


@pytest.mark.parametrize("bad", ["strong", -0.1, 1.5, "nan"])
def test_bad_strengths(bad):
    with pytest.raises(ConfigError, match="denoise"):
        parse_denoise(bad)


def test_a_model_without_a_photo_counterpart():
    net = create_model("edsr-tiny").eval()
    with pytest.raises(ConfigError, match="photo counterpart"):
        ImageUpscaler(model=net, denoise=0.5)
    auto = ImageUpscaler(model=net, precision="fp32")  # auto: nothing to blend, the model alone
    assert auto.pair is None and auto.choose_denoise(Picture(smooth())).strength == 0
    img = smooth()
    assert np.array_equal(
        auto(Picture(img)).pixels, ImageUpscaler(model=net, precision="fp32", denoise=None)(Picture(img)).pixels
    )


def test_a_jpeg_file_tells_its_quality(tmp_path):
    Image.fromarray(smooth()).save(tmp_path / "a.jpg", quality=63)
    Image.fromarray(smooth()).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.jpg").jpeg_quality == 63
    assert read_image(tmp_path / "a.png").jpeg_quality is None


# ---------------------------------------------------------------------------------------------- the bundled pair


@pytest.fixture(scope="module")
def pair():
    pair = PhotoPair.bundled()
    assert pair is not None and photo_partner(None) == "mspan-photo" and pair.conditioned
    return pair


def test_strengths_run_the_photo_model_told_that_damage(pair, photo):
    """Strength 0 runs the default; S above 0 runs the photo model (mspan-photo, conditioned on (jpeg, noise))
    specialised at (S, S)."""
    assert default_model_name() == "mspan" and pair.clean.name == "mspan"
    assert np.array_equal(
        upscale(photo, 2, denoise=0, precision="fp32"),
        upscale(photo, 2, model=load_model("mspan"), denoise=None, precision="fp32"),
    )
    outputs = []
    for s in (0.5, 1.0):
        got = upscale(photo, 2, denoise=s, precision="fp32")
        at = load_model("mspan-photo").net.eval().specialise((s, s))
        assert np.array_equal(got, upscale(photo, 2, model=at, denoise=None, precision="fp32"))
        outputs.append(got)
    assert not np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], upscale(photo, 2, denoise=0, precision="fp32"))


def test_the_mdsr_pair_still_blends(photo):
    """mdsr-medium keeps its photo model, blended by strength (network interpolation)."""
    pair = PhotoPair.bundled("mdsr-medium")
    assert pair is not None and not pair.conditioned and pair.photo.name == "mdsr-medium-photo"
    half = upscale(photo, 2, model="mdsr-medium", denoise=0.5, precision="fp32")
    blend = interpolate(load_model("mdsr-medium"), load_model("mdsr-medium-photo"), 0.5)
    assert np.array_equal(half, upscale(photo, 2, model=blend, denoise=None, precision="fp32"))


def test_restoring_at_the_same_size(pair):
    noisy = add_gaussian_noise(smooth(), np.random.default_rng(1), 15.0)
    restored = upscale(noisy, 1, denoise=1, precision="fp32")
    assert restored.shape == noisy.shape
    truth = smooth().astype(np.float64)
    assert np.abs(restored - truth).mean() < 0.6 * np.abs(noisy - truth).mean()  # the noise is mostly gone
    assert np.array_equal(upscale(noisy, 1, denoise=0), noisy)  # nothing to restore: a plain copy


def test_auto_reads_the_damage_of_each_file(pair, tmp_path, capsys):
    """A poor JPEG: its tables tell quality 35, so the photo model is told jpeg 0.95 (the estimator adds the
    noise); a clean PNG reads as little damaged; each output is the photo model at what was read."""
    from skimage import data

    big = np.ascontiguousarray(data.astronaut()[:128, :128])
    Image.fromarray(big).save(tmp_path / "poor.jpg", quality=35)
    Image.fromarray(big).save(tmp_path / "clean.png")
    args = [
        "--verbose",
        "upscale",
        str(tmp_path / "poor.jpg"),
        str(tmp_path / "clean.png"),
        "-o",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--precision", "fp32", "--format", "png"]) == 0
    err = capsys.readouterr().err
    assert "poor.jpg: JPEG quality ~35 (file), noise sigma ~" in err and "-> damage jpeg 0.95, noise " in err
    poor, clean = read_image(tmp_path / "poor.jpg"), read_image(tmp_path / "clean.png")
    low, high = pair.choose(clean), pair.choose(poor)
    assert high.condition[0] == 0.95 and low.condition[0] <= 0.1 and low.condition[1] <= 0.15
    for name, picture, choice in (("poor", poor, high), ("clean", clean, low)):
        want = upscale(picture.pixels, 2, model=pair.at(choice.setting), denoise=None, precision="fp32")
        assert np.array_equal(read_image(tmp_path / "out" / f"{name}.png").pixels, want)


def test_photo_demo(pair, tmp_path, capsys):
    assert main(["demo", "--photo", "--image", "coffee", "-o", str(tmp_path / "d"), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "saved as JPEG quality 70" in out and "auto: JPEG quality ~70 (file), noise sigma ~" in out
    scores = {
        line.split()[0]: float(line.split()[-4])
        for line in out.splitlines()
        if line.startswith(("bicubic ", "clean model ", "auto (denoise"))
    }
    assert scores["auto"] > scores["clean"] and scores["auto"] > scores["bicubic"]
    assert (tmp_path / "d" / "lr.jpg").read_bytes()[:2] == b"\xff\xd8" and (tmp_path / "d" / "comparison.png").is_file()


def test_blends_do_not_depend_on_where_the_ends_ran():
    """An Upscaler moves the network it runs onto its device; blends are made from CPU copies, so running the
    clean model first (anywhere) cannot make a later blend mix devices."""
    pair = PhotoPair.bundled("mdsr-medium")
    assert pair is not None
    pair.clean.to(torch.float64)  # stands in for a move elsewhere: the ends change, the blend must not
    try:
        half = pair.at(0.35)
        assert next(half.parameters()).dtype == torch.float32
    finally:
        pair.clean.to(torch.float32)


def test_correction_is_skipped_when_denoising(pair):
    noisy = add_gaussian_noise(smooth(), np.random.default_rng(2), 15.0)
    plain = upscale(noisy, 2, denoise=1, precision="fp32")
    assert np.array_equal(upscale(noisy, 2, denoise=1, precision="fp32", correct=10), plain)


def test_a_user_pair_blends_like_the_bundled_one(tmp_path, capsys):
    from conftest import nearest_edsr
    from superres.imaging.io import write_image
    from superres.models import EDSR, EDSRConfig, save_weights

    clean = save_weights(nearest_edsr(2, gains=(1.0, 1.0, 1.0)), tmp_path / "general.safetensors")
    strong = save_weights(nearest_edsr(2, gains=(0.5, 0.5, 0.5)), tmp_path / "general-wdn.safetensors")
    img = np.random.default_rng(4).integers(0, 256, (12, 10, 3), dtype=np.uint8)

    def run(model, **options):
        return upscale(img, 2, model=model, precision="fp32", device="cpu", **options)

    assert np.array_equal(run(str(clean), denoise_model=str(strong), denoise=0), run(str(clean), denoise=None))
    assert np.array_equal(run(str(clean), denoise_model=str(strong), denoise=1), run(str(strong), denoise=None))
    half = interpolate(load_model(clean), load_model(strong), 0.5)
    assert np.array_equal(run(str(clean), denoise_model=str(strong), denoise=0.5), run(half, denoise=None))
    other = save_weights(EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1)), tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="architectures differ"):
        run(str(clean), denoise_model=str(other), denoise=0.5)
    with pytest.raises(ConfigError, match="give model too"):
        upscale(img, 2, denoise_model=str(strong))
    write_image(tmp_path / "in.png", Picture(img))
    args = ["upscale", str(tmp_path / "in.png"), "--model", str(clean), "--denoise-model", str(strong)]
    assert main([*args, "--denoise", "1", "--precision", "fp32", "-o", str(tmp_path / "out.png")]) == 0
    assert np.array_equal(read_image(tmp_path / "out.png").pixels, run(str(strong), denoise=None))


def test_a_conditioned_photo_model_is_told_the_damage(tmp_path):
    """A photo model conditioned on (jpeg, noise): --denoise S runs it specialised at (S, S), 0 runs the clean
    model, auto at the damage it reads (the jpeg part from a JPEG file's tables)."""
    from superres.imaging.degrade import condition
    from superres.models import save_weights
    from superres.models.mspan import MSPAN, MSPANConfig

    torch.manual_seed(0)
    small = dict(scales=(2, 3, 4), n_feats=6, mid_feats=6, n_blocks=2)
    clean = save_weights(MSPAN(MSPANConfig(**small)), tmp_path / "clean.safetensors")
    photo_net = MSPAN(MSPANConfig(conditions=2, cond_hidden=8, **small))
    for p in photo_net.modulation.parameters():
        torch.nn.init.normal_(p, std=0.3)
    photo = save_weights(photo_net, tmp_path / "photo.safetensors")
    img = np.random.default_rng(5).integers(0, 256, (70, 70, 3), dtype=np.uint8)

    def run(model, **options):
        return upscale(img, 2, model=model, precision="fp32", device="cpu", **options)

    pair = PhotoPair(load_model(clean), load_model(photo))
    assert pair.conditioned and pair.fixed(0.4).condition == (0.4, 0.4) and pair.at(0) is pair.clean
    assert np.array_equal(run(str(clean), denoise_model=str(photo), denoise=0), run(str(clean), denoise=None))
    at = load_model(photo).net.eval().specialise((0.4, 0.4))
    assert np.array_equal(run(str(clean), denoise_model=str(photo), denoise=0.4), run(at, denoise=None))
    assert not np.array_equal(run(at, denoise=None), run(str(clean), denoise=None))
    choice = pair.choose(Picture(img, jpeg_quality=44))
    assert choice.condition is not None and choice.condition[0] == round(round(condition(44)[0] / 0.05) * 0.05, 2)
    assert choice.strength == max(choice.condition) and "JPEG quality ~44 (file)" in choice.describe()


def test_auto_chain_tells_what_the_chain_detector_is_sure_of(tmp_path, capsys, monkeypatch):
    """--denoise auto+chain: a picture the chain detector is sure of is told (1, 1) and the line says so; plain
    auto (the default) never asks the detector; a picture smaller than its crop is not read."""
    from skimage import data

    from conftest import answering_chain_net
    from superres.imaging import damage

    monkeypatch.setattr(damage, "bundled_chain_net", lambda: answering_chain_net(0.99))
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:96, :96])).save(tmp_path / "old.png")
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:48, :48])).save(tmp_path / "tiny.png")
    files = [str(tmp_path / "old.png"), str(tmp_path / "tiny.png")]
    common = ["--precision", "fp32", "--format", "png", "-o", str(tmp_path / "out")]
    assert main(["--verbose", "upscale", *files, "--denoise", "auto+chain", *common]) == 0
    err = capsys.readouterr().err
    assert "old.png: Real-ESRGAN-like damage chain (detected, chance 0.99) -> damage jpeg 1, noise 1" in err
    assert "tiny.png: Real-ESRGAN" not in err and "tiny.png: JPEG quality" in err
    assert main(["--verbose", "upscale", files[0], "--denoise", "auto", "--overwrite", *common]) == 0
    assert "Real-ESRGAN" not in capsys.readouterr().err
    assert parse_denoise("auto+chain") == "auto+chain"
    with pytest.raises(ConfigError, match="auto\\+chain"):
        parse_denoise("auto+chains")
    plain = DenoiseChoice(0.2, None, 2.3, (0.2, 0.1))
    assert "noise sigma ~2.3" in plain.describe() and replace(plain, chain=0.97).describe().startswith("Real-ESRGAN")
