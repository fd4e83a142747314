import json

import numpy as np
import pytest
import torch
from PIL import Image

from superres import imresize
from superres.cli.main import main
from superres.errors import ConfigError
from superres.evaluation.benchmark import EvalConfig, evaluate, find_dataset
from superres.evaluation.metrics import psnr
from superres.imaging.io import Picture, write_image
from superres.models import EDSR, EDSRConfig, load_model, save_weights


@pytest.fixture
def hr_images(photo):
    from skimage import data

    coffee = data.coffee()[100:166, 200:290]
    return {
        "astro": photo[:, :78],
        "coffee": np.ascontiguousarray(coffee),
        "gray": np.ascontiguousarray(photo[:60, :60, 1]),
    }


def make_benchmark(root, hr_images, scales=(2, 3)):
    for name, hr in hr_images.items():
        write_image(root / "HR" / f"{name}.png", Picture(hr))
        for s in scales:
            h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
            write_image(root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png", Picture(imresize(hr[:h, :w], 1 / s)))
    return root


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_weights(EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1)), tmp_path / "m2.safetensors")


def test_layouts_are_recognised(tmp_path, hr_images):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    d = find_dataset(bench)
    assert d.name == "Mini" and d.hr_dir.name == "HR" and d.lr_root.name == "LR_bicubic"
    div = tmp_path / "DIV2K"
    write_image(div / "DIV2K_valid_HR" / "0801.png", Picture(hr_images["astro"]))
    (div / "DIV2K_valid_LR_bicubic" / "X2").mkdir(parents=True)
    d = find_dataset(div)
    assert d.hr_dir.name == "DIV2K_valid_HR" and d.lr_root.name == "DIV2K_valid_LR_bicubic"
    plain = tmp_path / "plain"
    write_image(plain / "a.png", Picture(hr_images["astro"]))
    assert find_dataset(plain).lr_root is None


def test_div2k_folder_with_both_splits(tmp_path, hr_images):
    root = tmp_path / "DIV2K"
    for split in ("train", "valid"):
        write_image(root / f"DIV2K_{split}_HR" / "0001.png", Picture(hr_images["astro"]))
    assert find_dataset(root).hr_dir.name == "DIV2K_valid_HR"
    assert find_dataset(root, split="train").hr_dir.name == "DIV2K_train_HR"
    write_image(root / "Other_HR" / "0001.png", Picture(hr_images["astro"]))
    assert find_dataset(root).hr_dir.name == "DIV2K_valid_HR"


def test_lr_and_hr_of_different_bit_depths_are_refused():
    from superres.imaging.datasets import make_sample

    with pytest.raises(ConfigError, match="bit depth"):
        make_sample("x", np.zeros((8, 8), np.uint16), 2, np.zeros((4, 4), np.uint8))


def test_scores_match_direct_computation_and_lr_files_are_used(tmp_path, hr_images):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    # make one LR file differ from what imresize would give: the file must win
    lr_path = bench / "LR_bicubic" / "X2" / "astrox2.png"
    lr = np.asarray(Image.open(lr_path)).copy()
    lr[0:4, 0:4] = 0
    Image.fromarray(lr).save(lr_path)
    res = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"]))
    row = next(r for r in res.per_image if r["image"] == "astro")
    hr = hr_images["astro"][: lr.shape[0] * 2, : lr.shape[1] * 2]
    assert row["psnr"] == pytest.approx(psnr(imresize(lr, 2), hr, shave=2), abs=1e-4)
    gray = next(r for r in res.per_image if r["image"] == "gray")
    assert np.isfinite(gray["psnr"])


def test_json_schema_and_methods(tmp_path, hr_images, model_file, capsys):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    plain = tmp_path / "Plain"
    for name, hr in hr_images.items():
        write_image(plain / f"{name}.png", Picture(hr))
    out = tmp_path / "r.json"
    code = main(
        [
            "eval",
            "--data",
            str(bench),
            str(plain),
            "--scale",
            "2,3",
            "--methods",
            f"bicubic,bilinear,{model_file},{model_file}+correct",
            "--json",
            str(out),
            "--shave",
            "div2k",
            "-q",
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0
    assert "| method |" in stdout and "Mini x2" in stdout
    data = json.loads(out.read_text())
    keys = {"dataset", "scale", "method", "channel", "shave", "psnr", "ssim", "images", "seconds_per_image"}
    assert data["results"] and all(keys <= set(r) for r in data["results"])
    assert {r["shave"] for r in data["results"] if r["scale"] == 2} == {8}
    # the x2 model is skipped at x3, interpolations are not
    assert {(r["method"], r["scale"]) for r in data["results"] if r["dataset"] == "Mini"} == {
        ("bicubic", 2),
        ("bilinear", 2),
        (str(model_file), 2),
        (f"{model_file}+correct", 2),
        ("bicubic", 3),
        ("bilinear", 3),
    }
    assert all(r["images"] == 3 for r in data["results"])
    per = data["per_image"]
    assert all({"dataset", "scale", "method", "channel", "image", "psnr", "ssim"} <= set(r) for r in per)
    assert len(per) == 2 * (4 + 2) * 3
    mean = np.mean([r["psnr"] for r in per if r["dataset"] == "Plain" and r["scale"] == 3 and r["method"] == "bicubic"])
    res = next(r for r in data["results"] if r["dataset"] == "Plain" and r["scale"] == 3 and r["method"] == "bicubic")
    assert res["psnr"] == pytest.approx(mean, abs=1e-3)


def test_correction_never_leaves_the_bilinear_band(tmp_path, hr_images, model_file):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    res = evaluate(
        EvalConfig(
            datasets=[str(bench)],
            scales=[2],
            methods=["bilinear", str(model_file), f"{model_file}+correct"],
            threshold=0,
        )
    )
    by = {r["method"]: r["psnr"] for r in res.results}
    assert by[f"{model_file}+correct"] == pytest.approx(by["bilinear"])  # threshold 0: every pixel replaced


def test_report_files(tmp_path, hr_images, model_file):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    report = tmp_path / "report"
    code = main(
        [
            "eval",
            "--data",
            str(bench),
            "--scale",
            "2",
            "--methods",
            f"bilinear,{model_file},{model_file}+correct",
            "--report",
            str(report),
            "-q",
        ]
    )
    assert code == 0
    names = {p.name for p in report.iterdir()}
    assert {"results.md", "results.csv", "results.json", "psnr_Mini_x2.png"} <= names
    crops = sorted(n for n in names if n.startswith("crops_"))
    assert len(crops) == 3
    img = Image.open(report / crops[0])
    assert img.width > 3 * img.height  # bilinear | model | model+correct | HR side by side
    assert (report / "results.csv").read_text().splitlines()[0].startswith("dataset,scale,method")


def test_bad_settings(tmp_path):
    with pytest.raises(ConfigError):
        evaluate(EvalConfig(datasets=[str(tmp_path / "none")], scales=[2]))
    with pytest.raises(ConfigError):
        evaluate(EvalConfig(datasets=[str(tmp_path)], scales=[5]))
    assert main(["eval", "--data", str(tmp_path), "--scale", "x"]) == 2
    assert main(["eval", "--data", str(tmp_path), "--channel", "lab"]) == 2


def test_method_suffixes():
    from superres.evaluation.benchmark import Method

    m = Method.parse("model+ensemble+correct")
    assert m.model == "model" and m.ensemble and m.correct
    assert Method.parse("bicubic").interpolation == "bicubic"
    with pytest.raises(ConfigError):
        Method.parse("+correct")


def test_self_ensemble_as_a_method(tmp_path, hr_images, model_file):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    res = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=[str(model_file), f"{model_file}+ensemble"]))
    assert {r["method"] for r in res.results} == {str(model_file), f"{model_file}+ensemble"}


def test_y_and_rgb_in_one_run(tmp_path, hr_images):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    both = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"], channel="y,rgb"))
    y = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"], channel="y"))
    rgb = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"], channel="rgb"))
    by = {r["channel"]: r["psnr"] for r in both.results}
    assert by == {"y": y.results[0]["psnr"], "rgb": rgb.results[0]["psnr"]}
    assert "on Y (BT.601)" in both.markdown() and "on RGB" in both.markdown()


def test_non_integer_factors_follow_the_protocol(tmp_path, hr_images):
    """x1.5: HR cut to a multiple of 3 (the numerator of 3/2), LR = MATLAB bicubic by 1/1.5, shave ceil(1.5) = 2;
    a model runs at its smallest scale >= 1.5 and is resized to the HR size."""
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    torch.manual_seed(0)
    from superres.models import create_model

    weights = save_weights(create_model("mdsr-tiny"), tmp_path / "ms.safetensors")
    res = evaluate(EvalConfig(datasets=[str(bench)], scales=[1.5, 2.5], methods=["bicubic", str(weights)]))
    hr = hr_images["coffee"]  # 66 x 90
    crop = hr[: 66 // 3 * 3, : 90 // 3 * 3]
    lr = imresize(crop, 1 / 1.5)
    assert lr.shape[:2] == (44, 60)
    row = next(r for r in res.per_image if r["image"] == "coffee" and r["scale"] == 1.5 and r["method"] == "bicubic")
    assert row["psnr"] == pytest.approx(psnr(imresize(lr, 1.5), crop, shave=2), abs=1e-4)
    from superres import upscale

    sr = imresize(upscale(lr, 2, model=load_model(weights), precision="fp32"), output_shape=crop.shape[:2])
    row = next(r for r in res.per_image if r["image"] == "coffee" and r["scale"] == 1.5 and r["method"] == str(weights))
    assert row["psnr"] == pytest.approx(psnr(sr, crop, shave=2), abs=1e-4)
    assert {(r["scale"], r["shave"]) for r in res.results} == {(1.5, 2), (2.5, 3)}


def test_eval_precision_setting(tmp_path, hr_images, model_file):
    bench = make_benchmark(tmp_path / "Mini", hr_images)
    fp32 = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=[str(model_file)]))
    bf16 = evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=[str(model_file)], precision="bf16"))
    assert fp32.results[0]["psnr"] != bf16.results[0]["psnr"]  # the setting reaches the network
    assert abs(fp32.results[0]["psnr"] - bf16.results[0]["psnr"]) < 0.5
    with pytest.raises(ConfigError, match="precision"):
        evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"], precision="fp8"))
    with pytest.raises(ConfigError, match="denominator"):  # 2.33 = 233/100: LR x 2.33 misses whole HR pixels
        evaluate(EvalConfig(datasets=[str(bench)], scales=[2.33], methods=["bicubic"]))


def test_eval_on_degraded_inputs(tmp_path, hr_images, model_file, capsys):
    from superres.imaging.degrade import degrade

    bench = make_benchmark(tmp_path / "Mini", hr_images)
    out = evaluate(
        EvalConfig(
            datasets=[str(bench)],
            scales=[2, 1],
            methods=["bicubic", str(model_file)],
            degrade=["clean", "jpeg:50", "noise:10"],
            seed=3,
        )
    )
    rows = {(r["scale"], r["degradation"], r["method"]): r["psnr"] for r in out.results}
    assert (1, "clean", "bicubic") not in rows  # at x1 the clean input is the HR itself
    assert rows[(2, "clean", "bicubic")] > rows[(2, "jpeg:50", "bicubic")]
    # at x1 the baseline is the degraded image itself, scored against the HR
    hr = hr_images["coffee"][:66, :90]
    noisy = degrade(hr, 1, "noise:10", seed=3).pixels
    per = {(r["scale"], r["degradation"], r["method"], r["image"]): r["psnr"] for r in out.per_image}
    assert per[(1, "noise:10", "bicubic", "coffee")] == round(psnr(noisy, hr, shave=1, channel="y"), 4)
    assert "| noise:10 |" in out.markdown() and "degraded input itself" in out.markdown()
    code = main(
        [
            "eval",
            "--data",
            str(bench),
            "--scale",
            "2",
            "--methods",
            "bicubic",
            "--degrade",
            "jpeg:40",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0 and json.loads((tmp_path / "r.json").read_text())["results"][0]["degradation"] == "jpeg:40"
    with pytest.raises(ConfigError, match="scale"):
        evaluate(EvalConfig(datasets=[str(bench)], scales=[1], methods=["bicubic"]))  # x1 needs degradations
    with pytest.raises(ConfigError, match="degradation"):
        evaluate(EvalConfig(datasets=[str(bench)], scales=[2], methods=["bicubic"], degrade=["jpeg"]))
