import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from superres.cli.main import main
from superres.errors import ConfigError
from superres.imaging.datasets import Sample
from superres.imaging.io import Picture, write_image
from superres.models import EDSR, EDSRConfig, load_model, save_weights
from superres.training.config import TrainConfig, learning_rate
from superres.training.loop import build_model, read_checkpoint, train
from superres.training.patches import PatchSampler

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("hr")
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        write_image(folder / f"{name}.png", Picture(np.ascontiguousarray(getattr(data, name)()[:120, :120])))
    return folder


def tiny_config(hr_folder, out, **kw) -> TrainConfig:
    settings = dict(
        data=[str(hr_folder)],
        preset="edsr-tiny",
        iters=40,
        batch_size=4,
        patch_size=16,
        lr=5e-4,
        schedule="cosine",
        holdout=1,
        val_every=20,
        checkpoint_every=5,
        log_every=10,
        out=str(out),
        threads=1,
        seed=3,
    )
    settings.update(kw)
    return TrainConfig(**settings)


def test_loss_falls(hr_folder, tmp_path):
    result = train(tiny_config(hr_folder, tmp_path / "run", iters=60), progress=False)
    assert result["steps"] == 60 and not result["interrupted"]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert losses[-1] < 0.6 * losses[0]
    assert (tmp_path / "run" / "best.safetensors").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["iters"] == 60


def _weights(run: Path) -> dict:
    return read_checkpoint(run / "last.pt")["model"]


def test_sigkill_then_resume_gives_identical_weights(hr_folder, tmp_path):
    """A run killed with SIGKILL mid-way and resumed ends where an uninterrupted run ends, bit for bit."""
    cfg = tiny_config(hr_folder, tmp_path / "whole", ema=0.9)
    train(cfg, progress=False)
    killed = tmp_path / "killed"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({**cfg.__dict__, "out": str(killed)}))
    script = textwrap.dedent(f"""
        import json, os, signal
        from superres.training import patches
        from superres.training.config import TrainConfig
        from superres.training.loop import train
        calls = 0
        original = patches.PatchSampler.sample
        def sample(self):  # the 23rd batch drawn: kill the process outright
            global calls
            calls += 1
            if calls == 23:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self)
        patches.PatchSampler.sample = sample
        train(TrainConfig(**json.load(open({str(settings)!r}))), progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    stopped_at = read_checkpoint(killed / "last.pt")["step"]
    assert 0 < stopped_at < 40
    code = main(["train", "--resume", str(killed)])
    assert code == 0
    whole, resumed = _weights(tmp_path / "whole"), _weights(killed)
    assert read_checkpoint(killed / "last.pt")["step"] == 40
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    ema_a, ema_b = read_checkpoint(tmp_path / "whole" / "last.pt")["ema"], read_checkpoint(killed / "last.pt")["ema"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_sigint_stops_with_a_checkpoint(hr_folder, tmp_path, monkeypatch):
    from superres.training import patches

    calls = {"n": 0}
    original = patches.PatchSampler.sample

    def sample(self):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(patches.PatchSampler, "sample", sample)
    result = train(tiny_config(hr_folder, tmp_path / "run", prefetch=0, checkpoint_every=100), progress=False)
    assert result["interrupted"] and result["steps"] < 40
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == result["steps"]


def test_export_round_trip(hr_folder, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(hr_folder, run, iters=10, ema=0.5, holdout=0), progress=False)
    assert main(["export", str(run), "-o", str(tmp_path / "m.safetensors")]) == 0
    assert (
        main(["export", str(run / "last.pt"), "-o", str(tmp_path / "last.safetensors"), "--weights", "last", "--half"])
        == 0
    )
    model = load_model(tmp_path / "m.safetensors")
    assert model.metadata["steps"] == 10 and model.metadata["training"]["ema"] == 0.5
    ema = EDSR(model.config)
    ema.load_state_dict(read_checkpoint(run / "last.pt")["ema"])
    x = torch.rand(1, 3, 10, 12) * 255
    with torch.no_grad():
        assert torch.allclose(model(x), ema(x))
        half = load_model(tmp_path / "last.safetensors")
        assert (half(x) - ema(x)).abs().max() < 0.5  # fp16 storage
    assert main(["export", str(run), "-o", str(tmp_path / "m.safetensors")]) == 2  # no clobbering


def test_x4_from_x2_copies_the_body(tmp_path):
    torch.manual_seed(0)
    x2 = EDSR(EDSRConfig(scale=2, n_feats=16, n_resblocks=4))
    path = save_weights(x2, tmp_path / "x2.safetensors")
    model = build_model(TrainConfig(data=["x"], scale=4, preset="edsr-tiny", init=str(path)))
    assert model.scale == 4
    for k, v in x2.state_dict().items():
        if not k.startswith("tail.0."):
            assert torch.equal(model.state_dict()[k], v)
    with pytest.raises(ConfigError, match="do not fit the model"):
        build_model(TrainConfig(data=["x"], scale=4, preset="edsr-small", init=str(path)))


def test_learning_rate_schedules():
    step = TrainConfig(lr=1e-4, schedule="step", lr_step=100, lr_gamma=0.5)
    assert [learning_rate(step, s) for s in (0, 99, 100, 250)] == [1e-4, 1e-4, 5e-5, 2.5e-5]
    cos = TrainConfig(lr=1e-3, schedule="cosine", iters=110, warmup_iters=10, min_lr=0.0)
    assert learning_rate(cos, 0) == pytest.approx(1e-4)
    assert learning_rate(cos, 10) == pytest.approx(1e-3)
    assert learning_rate(cos, 60) == pytest.approx(5e-4)
    assert learning_rate(cos, 110) == pytest.approx(0.0, abs=1e-12)


def test_patches_are_aligned_under_every_augmentation():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    hr = lr.repeat(3, 0).repeat(3, 1)
    sampler = PatchSampler([Sample("a", lr, hr)], scale=3, patch_size=8, batch_size=64, seed=1)
    lrs, hrs = sampler.sample()
    assert lrs.shape == (64, 8, 8, 3) and hrs.shape == (64, 24, 24, 3)
    assert all(np.array_equal(h[::3, ::3], lo) for lo, h in zip(lrs, hrs, strict=True))
    bright = PatchSampler([Sample("a", lr, hr)], scale=3, patch_size=8, batch_size=8, brightness=0.3, seed=1)
    lrs, hrs = bright.sample()
    assert lrs.dtype == np.float32
    assert all(np.allclose(h[::3, ::3], lo) for lo, h in zip(lrs, hrs, strict=True))
    permuted = PatchSampler([Sample("a", lr, hr)], scale=3, patch_size=8, batch_size=16, rgb_permute=1.0, seed=1)
    lrs, hrs = permuted.sample()
    assert all(np.array_equal(h[::3, ::3], lo) for lo, h in zip(lrs, hrs, strict=True))


def test_small_images_are_skipped_with_a_warning(caplog):
    big = Sample("big", np.zeros((20, 20, 3), np.uint8), np.zeros((40, 40, 3), np.uint8))
    small = Sample("small", np.zeros((5, 5, 3), np.uint8), np.zeros((10, 10, 3), np.uint8))
    sampler = PatchSampler([big, small], scale=2, patch_size=8, batch_size=2)
    assert [s.name for s in sampler.samples] == ["big"] and "skipping small" in caplog.text
    with pytest.raises(ConfigError, match="large enough"):
        PatchSampler([small], scale=2, patch_size=8, batch_size=2)


def test_config_file_and_flag_override(hr_folder, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'data = ["{hr_folder}"]\npreset = "edsr-tiny"\niters = 5\nbatch-size = 2\npatch_size = 16\n'
        f'out = "{tmp_path / "run"}"\nval_every = 100\ncheckpoint_every = 100\n'
    )
    assert main(["train", "--config", str(toml), "--iters", "7"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["iters"] == 7 and saved["batch_size"] == 2 and saved["preset"] == "edsr-tiny"
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 7
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(
        f"data: [{hr_folder}]\npreset: edsr-tiny\niters: 3\npatch_size: 16\nbatch_size: 2\nout: {tmp_path / 'run2'}\n"
    )
    assert main(["train", "--config", str(yaml_file)]) == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--iters", "0"], "iters must be a positive integer"),
        (["--loss", "l3"], "invalid choice"),
        (["--preset", "edsr-huge"], "unknown preset"),
        (["--ema", "1.5"], "ema decay"),
        (["--patch-size", "2"], "patch_size"),
        (["--frozen", "("], "frozen is not a regular expression"),
        (["--teacher-weight", "1.5"], "teacher_weight must be in [0, 1]"),
        (["--teacher", "t.safetensors", "--teacher-per-batch", "--degradation", "photo"], "degraded targets"),
    ],
)
def test_bad_values_give_clear_errors(hr_folder, tmp_path, capsys, args, message):
    code = main(["train", "--data", str(hr_folder), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_config_values_are_converted_or_refused(hr_folder, tmp_path, capsys):
    cfg = TrainConfig.from_dict({"data": str(hr_folder), "lr": "1e-4", "iters": 10.0, "ema": "0.99", "flips": "false"})
    assert cfg.data == [str(hr_folder)] and cfg.lr == 1e-4 and cfg.iters == 10 and cfg.ema == 0.99 and not cfg.flips
    assert TrainConfig.from_dict({"data": ["x"], "scale_weights": "0.5,1"}).scale_weights == [0.5, 1.0]
    for bad in ({"brightness": "lots"}, {"iters": 2.5}, {"flips": "maybe"}, {"scale_weights": "2,many"}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict({"data": ["x"], **bad})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"data: [{hr_folder}]\nbrightness: lots\n")
    assert main(["train", "--config", str(yaml_file)]) == 2
    assert "brightness must be a number" in capsys.readouterr().err


def test_resume_with_another_architecture_is_refused(hr_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(hr_folder, run, iters=2), progress=False)
    assert main(["train", "--resume", str(run), "--n-feats", "8", "--iters", "4"]) == 2
    assert "does not fit these settings" in capsys.readouterr().err


def test_bad_config_files_and_existing_runs(hr_folder, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("itres = 5\n")
    assert main(["train", "--config", str(bad), "--data", str(hr_folder)]) == 2
    assert "unknown training setting(s): itres" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "no training data" in capsys.readouterr().err
    run = tmp_path / "run"
    train(tiny_config(hr_folder, run, iters=2), progress=False)
    assert main(["train", "--data", str(hr_folder), "--out", str(run), "--preset", "edsr-tiny"]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("preset, scales", [("edsr-tiny", "2"), ("mdsr-tiny", "2,3")])
def test_ddp_two_gloo_processes(hr_folder, tmp_path, preset, scales):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "superres",
        "train",
        "--data",
        str(hr_folder),
        "--preset",
        preset,
        "--scale",
        scales,
        "--iters",
        "6",
        "--batch-size",
        "2",
        "--patch-size",
        "16",
        "--holdout",
        "1",
        "--val-every",
        "3",
        "--checkpoint-every",
        "3",
        "--threads",
        "1",
        "--out",
        str(run),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = read_checkpoint(run / "last.pt")
    assert state["step"] == 6 and state["world_size"] == 2
    ranks = [json.loads(s) for s in state["sampler_states"]]
    assert ranks[0]["scales"] != ranks[1]["scales"]  # each rank samples its own patches
    assert ranks[0]["choice"] == ranks[1]["choice"]  # but all ranks train the same scale at each step
    assert proc.stdout.count("finished at step 6") == 1  # only rank 0 reports
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 2


@pytest.mark.parametrize(
    "options", [dict(), dict(rgb_permute=0.5), dict(brightness=0.3, rgb_permute=1.0), dict(flips=False)]
)
def test_device_sampler_cuts_the_same_patches(rng, options):
    """Patches cut with torch (on the training device) equal PatchSampler's numpy patches for the same seed."""
    from superres.training.patches import DevicePatchSampler

    samples = [Sample(f"s{i}", rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8), None) for i in range(3)]
    for s in samples:
        s.hr = rng.integers(0, 256, (s.lr.shape[0] * 3, s.lr.shape[1] * 3, 3), dtype=np.uint8)
    host = PatchSampler(samples, 3, 8, 6, seed=5, **options)
    device = DevicePatchSampler(samples, 3, 8, 6, "cuda" if torch.cuda.is_available() else "cpu", seed=5, **options)
    for _ in range(3):
        (lr_a, hr_a), (lr_b, hr_b) = host.sample(), device.sample()
        assert lr_b.shape == (6, 3, 8, 8) and hr_b.shape == (6, 3, 24, 24) and lr_b.dtype == torch.float32
        assert np.array_equal(lr_b.permute(0, 2, 3, 1).cpu().numpy(), lr_a.astype(np.float32))
        assert np.array_equal(hr_b.permute(0, 2, 3, 1).cpu().numpy(), hr_a.astype(np.float32))
    if options.get("rgb_permute") == 1.0:  # every patch had its channels shuffled: some order is not RGB
        assert any(order is not None and list(order) != [0, 1, 2] for *_, order in host._choose()[0])


def test_multi_scale_training_validates_every_scale(hr_folder, tmp_path):
    cfg = tiny_config(
        hr_folder, tmp_path / "ms", preset="mdsr-tiny", scale=[2, 3, 4], iters=24, val_every=12, rgb_permute=0.5
    )
    result = train(cfg, progress=False)
    assert result["steps"] == 24
    rows = list(csv.DictReader((tmp_path / "ms" / "log.csv").open()))
    scored = [r for r in rows if r["val_psnr_y"]]
    assert scored and all(set(r["val_by_scale"].split()) and len(r["val_by_scale"].split()) == 3 for r in scored)
    by_scale = [dict(item.split(":") for item in r["val_by_scale"].split()) for r in scored]
    # the score that picks the best checkpoint is the mean over scales
    for r, scales in zip(scored, by_scale, strict=True):
        assert float(r["val_psnr_y"]) == pytest.approx(np.mean([float(v) for v in scales.values()]), abs=1e-3)
    model = load_model(tmp_path / "ms" / "best.safetensors")
    assert model.scales == (2, 3, 4) and model.metadata["val_psnr_y_by_scale"].keys() == {"2", "3", "4"}


def test_multi_scale_sampler_draws_every_scale_and_resumes(rng):
    from superres.training.patches import MultiScaleSampler

    samples = {
        s: [
            Sample(
                "a",
                rng.integers(0, 256, (20, 20, 3), dtype=np.uint8),
                rng.integers(0, 256, (20 * s, 20 * s, 3), dtype=np.uint8),
            )
        ]
        for s in (2, 3, 4)
    }

    def make(weights=None):
        return MultiScaleSampler(
            {s: PatchSampler(v, s, 8, 2, seed=s) for s, v in samples.items()}, seed=1, weights=weights
        )

    a = make()
    drawn = [a.sample() for _ in range(30)]
    assert {scale for scale, *_ in drawn} == {2, 3, 4}
    assert all(hr.shape[1] == 8 * scale for scale, _, hr in drawn)  # the same LR patch size at every scale
    b = make()
    for _ in range(10):
        b.sample()
    state = json.loads(json.dumps(b.state))
    c = make()
    c.state = state
    for (s1, lr1, hr1), (s2, lr2, hr2) in zip(drawn[10:], [c.sample() for _ in range(20)], strict=False):
        assert s1 == s2 and np.array_equal(lr1, lr2) and np.array_equal(hr1, hr2)

    # weighted: the draws follow the weights, a zero weight never draws its scale, and a resume continues alike
    weighted = make({2: 3, 3: 0, 4: 1})
    scales = [weighted.sample()[0] for _ in range(400)]
    assert 3 not in scales and 0.65 < scales.count(2) / len(scales) < 0.85
    state = json.loads(json.dumps(weighted.state))
    again = make({2: 3, 3: 0, 4: 1})
    again.state = state
    assert [weighted.sample()[0] for _ in range(20)] == [again.sample()[0] for _ in range(20)]


@pytest.mark.parametrize("weights", [[1.0, 2.0], [1.0, -1.0, 1.0], [0, 0, 0], [True, 1, 1]])
def test_scale_weights_must_give_one_weight_per_scale(weights):
    cfg = TrainConfig(data=["x"], scale=[2, 3, 4], preset="mdsr-tiny", scale_weights=weights)
    with pytest.raises(ConfigError, match="scale_weights must be one number >= 0 per scale"):
        cfg.validate()


def test_init_from_an_edsr_x2_into_mdsr(hr_folder, tmp_path):
    x2 = EDSR(EDSRConfig(scale=2, n_feats=16, n_resblocks=4))
    path = save_weights(x2, tmp_path / "x2.safetensors")
    model = build_model(TrainConfig(data=["x"], scale=[2, 3, 4], preset="mdsr-tiny", init=[str(path)]))
    x = torch.rand(1, 3, 9, 9) * 255
    with torch.no_grad():
        assert torch.allclose(model.eval()(x, 2), x2.eval()(x), atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_keeps_the_images_on_the_device(hr_folder, tmp_path):
    result = train(tiny_config(hr_folder, tmp_path / "gpu", device="cuda", iters=30), progress=False)
    assert result["steps"] == 30
    cfg = json.loads((tmp_path / "gpu" / "config.json").read_text())
    assert cfg["device"] == "cuda"


# ---------------------------------------------------------------------------------------------- degraded training


def _sample(photo, scale=2):
    from superres.imaging.datasets import make_sample

    return make_sample("p", np.ascontiguousarray(photo[:64, :64]), scale)


def test_degraded_patches_are_made_from_the_hr_patch(photo):
    from superres.imaging.degrade import jpeg, parse_preset
    from superres.imaging.resize import imresize

    sampler = PatchSampler(
        [_sample(photo)], scale=2, patch_size=12, batch_size=6, flips=True, degradation=parse_preset("jpeg:40"), seed=5
    )
    lr, hr = sampler.sample()
    assert lr.shape == (6, 12, 12, 3) and hr.shape == (6, 24, 24, 3)
    for a, b in zip(lr, hr, strict=False):  # each LR is exactly the named degradation of its (turned, flipped) HR patch
        assert np.array_equal(a, jpeg(imresize(b, 0.5), 40)[0])


def test_degraded_sampling_resumes_the_same_stream(photo):
    from superres.imaging.degrade import parse_preset

    def make():
        return PatchSampler(
            [_sample(photo, 3)], scale=3, patch_size=8, batch_size=3, degradation=parse_preset("photo"), seed=2
        )

    a, b = make(), make()
    a.sample()
    b.state = a.state
    assert all(np.array_equal(x, y) for x, y in zip(a.sample(), b.sample(), strict=False))


def test_cutblur_swaps_a_rectangle_with_the_clean_lr(photo):
    from superres.imaging.degrade import parse_preset

    sample = _sample(photo)

    def clean_share(cutblur):
        sampler = PatchSampler(
            [sample],
            scale=2,
            patch_size=16,
            batch_size=32,
            flips=False,
            degradation=parse_preset("noise:30"),
            cutblur=cutblur,
            seed=1,
        )
        choices, _ = sampler._choose()
        sampler.rng.bit_generator.state = PatchSampler([sample], 2, 16, 32, flips=False, seed=1).rng.bit_generator.state
        lr, _ = sampler.sample()
        clean = np.stack([sample.lr[y : y + 16, x : x + 16] for _, y, x, *_ in choices])
        return (lr == clean).all(axis=-1).mean(axis=(1, 2))  # per patch: the share of pixels equal to the clean LR

    assert clean_share(0.0).max() < 0.1  # sigma 30 noise leaves few pixels unchanged
    shares = clean_share(1.0)
    assert (shares > 0.08).all() and (shares < 0.95).all()  # a clean rectangle inside, or a noisy one inside
    assert (shares > 0.5).any() and (shares < 0.5).any()  # both ways round


def test_degradation_settings_are_checked(hr_folder, tmp_path):
    with pytest.raises(ConfigError, match="degradation"):
        tiny_config(hr_folder, tmp_path, degradation="jpg:5").validate()
    with pytest.raises(ConfigError, match="cutblur"):
        tiny_config(hr_folder, tmp_path, cutblur=0.5).validate()
    with pytest.raises(ConfigError, match="data_on_device"):
        tiny_config(hr_folder, tmp_path, degradation="photo", data_on_device=True).validate()


def test_training_on_degraded_inputs_validates_on_degraded_images(hr_folder, tmp_path):
    from superres.imaging.degrade import degrade
    from superres.training.loop import load_training_data

    cfg = tiny_config(hr_folder, tmp_path / "photo", degradation="noise:20", cutblur=0.5, iters=20, val_every=10)
    _, val = load_training_data(cfg)
    _, clean_val = load_training_data(tiny_config(hr_folder, tmp_path / "clean"))
    (held_out,), (clean,) = val[2], clean_val[2]
    assert np.array_equal(held_out.hr, clean.hr) and not np.array_equal(held_out.lr, clean.lr)
    assert np.array_equal(held_out.lr, degrade(clean.hr, 2, "noise:20", seed=0).pixels)  # fixed: seed 0 and the image
    result = train(cfg, progress=False)
    assert result["steps"] == 20 and np.isfinite(result["best_psnr"])


def test_presets_of_families_the_loop_cannot_train_are_refused_by_name():
    from superres.training.config import TrainConfig

    with pytest.raises(ConfigError, match="'rrdbnet' is a rrdbnet network: superres loads and runs it"):
        TrainConfig(data=["hr"], preset="rrdbnet").validate()


def test_train_only_folders_are_trained_on_and_leave_the_held_out_split_unchanged(hr_folder, tmp_path):
    from superres.training.loop import load_training_data

    extra = tmp_path / "extra"
    extra.mkdir()
    for i in range(3):
        write_image(extra / f"x{i}.png", Picture(np.full((40, 40, 3), 60 * i, np.uint8)))
    train_before, val_before = load_training_data(tiny_config(hr_folder, tmp_path / "a"))
    train_after, val_after = load_training_data(tiny_config(hr_folder, tmp_path / "b", train_only=[str(extra)]))
    assert [s.name for s in val_after[2]] == [s.name for s in val_before[2]]  # the same image held out
    assert [s.name for s in train_after[2]] == [s.name for s in train_before[2]] + ["x0", "x1", "x2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="empty: no images"):
        load_training_data(tiny_config(hr_folder, tmp_path / "c", train_only=[str(empty)]))
