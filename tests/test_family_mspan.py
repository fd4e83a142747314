"""MSPAN (models/mspan.py): one SPAN body, a tail per scale. Its training form folds exactly into the deploy form it
is saved in; a deploy kernel unfolds exactly into branches; SPAN files of each scale start it (init_from) with the
same output at their scales; its files load by detection; the radius it states makes tiles exact; and `superres
train` trains it by distillation."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest
import torch

import superres.training.distill
from superres.cli.main import main
from superres.errors import ConfigError
from superres.imaging.io import Picture, write_image
from superres.inference.upscaler import Upscaler
from superres.models import init_from, load_model, save_weights
from superres.models.mspan import MSPAN, MSPANConfig, MSPANFamily, unfold_into_branches
from superres.models.span import SPAN, Conv3XC, bias_of
from superres.training.config import TrainConfig
from superres.training.distill import Teachers, dihedral, undo_dihedral
from superres.training.loop import _trained_parameters, build_model
from test_family_span import tiny as tiny_span

SMALL: dict[str, Any] = dict(n_feats=6, mid_feats=6, n_blocks=2)


def log_rows(run) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def started_from_spans(gain: int) -> tuple[MSPAN, SPAN, SPAN]:
    """An x2/x3/x4 MSPAN started from a small SPAN x2 and a SPAN x4 of the same width (in eval mode)."""
    x2, x4 = tiny_span(0, scale=2), tiny_span(1, scale=4)
    net = MSPAN(MSPANConfig(scales=(2, 3, 4), gain=gain, **SMALL))
    copied = init_from(net, [x2, x4])
    assert "tail.x3.conv_cat.weight" in copied and "tail.x3.upsampler.0.weight" not in copied
    return net.eval(), x2, x4


@pytest.mark.parametrize("gain", [0, 2])
def test_spans_of_each_scale_start_it_with_their_outputs(gain):
    net, x2, x4 = started_from_spans(gain)
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        assert torch.allclose(net(x, 2), x2(x), atol=1e-5)  # the body and the x2 tail are SPAN x2's
        # x3: conv_2 and conv_cat from the nearest scale's tail (x2); a silent upsampler gives the flat mean
        assert torch.allclose(net(x, 3), net.mean.expand(2, 3, 39, 33), atol=1e-6)
        assert net.tail_of(3).conv_cat.weight.equal(x2.conv_cat.weight)
        assert net.tail_of(4).up_conv.weight.equal(x4.state_dict()["upsampler.0.weight"])
    assert net.scales == (2, 3, 4) and net.receptive_radius(3) == 1 + 3 * 2 + 1 + 1


def test_a_deploy_kernel_unfolds_into_branches_exactly():
    torch.manual_seed(0)
    layer = Conv3XC(5, 7, 2)
    weight, bias = torch.randn(7, 5, 3, 3), torch.randn(7)
    unfold_into_branches(layer, weight, bias)
    assert torch.allclose(layer.eval_conv.weight, weight, atol=1e-6) and torch.allclose(bias_of(layer.eval_conv), bias)
    x = torch.randn(1, 5, 8, 9)
    with torch.no_grad():
        assert torch.allclose(layer.train()(x), torch.nn.functional.conv2d(x, weight, bias, padding=1), atol=1e-5)
    layer(x).square().sum().backward()  # every branch can move: no factor is stuck between two zeros
    assert layer.conv is not None and layer.sk is not None
    for conv in (*layer.conv, layer.sk):
        assert isinstance(conv, torch.nn.Conv2d) and conv.weight.grad is not None
        assert conv.weight.grad.abs().sum() > 0
    c1, c2 = layer.conv[1], layer.conv[2]
    assert isinstance(c1, torch.nn.Conv2d) and isinstance(c2, torch.nn.Conv2d)
    assert c1.weight.grad is not None and c2.weight.grad is not None
    assert c1.weight.grad[:7, 5:].abs().sum() > 0 and c2.weight.grad[:, 7:].abs().sum() > 0  # the other halves


def test_training_form_folds_exactly_into_the_saved_deploy_form(tmp_path):
    torch.manual_seed(3)
    net = MSPAN(MSPANConfig(scales=(2, 4), gain=2, **SMALL))
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 10, 12)
    net.train()
    with torch.no_grad():
        branches = {s: net(x, s) for s in (2, 4)}  # the training form computes through its branches
    save_weights(net.eval(), tmp_path / "m.safetensors")
    handle = load_model(tmp_path / "m.safetensors")
    assert handle.arch == "mspan" and handle.scales == (2, 4) and handle.config.gain == 2
    deploy = MSPAN(MSPANConfig(scales=(2, 4), **SMALL))
    deploy.load_state_dict(net.deploy_state_dict())
    save_weights(deploy, tmp_path / "d.safetensors")
    small = load_model(tmp_path / "d.safetensors")
    assert small.config.gain == 0 and small.parameter_count < handle.parameter_count
    for s in (2, 4):
        with torch.no_grad():
            assert torch.allclose(handle.run(x, s), branches[s], atol=1e-4)
            assert torch.allclose(small.run(x, s), branches[s], atol=1e-4)


def test_files_of_other_families_are_not_taken_for_it(tmp_path):
    save_weights(tiny_span(0), tmp_path / "span.safetensors")
    assert load_model(tmp_path / "span.safetensors").arch == "span"
    net, _, _ = started_from_spans(0)
    save_weights(net, tmp_path / "mspan.safetensors")
    assert load_model(tmp_path / "mspan.safetensors").arch == "mspan"


def test_the_radius_is_exact_and_tight(tmp_path, monkeypatch):
    net, _, _ = started_from_spans(0)
    save_weights(net, tmp_path / "m.safetensors")
    handle = load_model(tmp_path / "m.safetensors")
    img = np.random.default_rng(0).uniform(0, 255, (50, 45, 3)).astype(np.float32)
    for scale in (2, 4):
        whole = Upscaler(handle, scale=scale, device="cpu", precision="fp32", tile=0)(img)
        tiled = Upscaler(handle, scale=scale, device="cpu", precision="fp32", tile=16)
        assert tiled.exact and np.abs(tiled(img) - whole).max() < 1e-3
    monkeypatch.setattr(MSPANFamily, "receptive_radius", lambda self, config, scale: 8)  # one pixel short
    short = Upscaler(handle, scale=2, device="cpu", precision="fp32", tile=16)(img)
    assert np.abs(short - Upscaler(handle, scale=2, device="cpu", precision="fp32", tile=0)(img)).max() > 1e-3


def test_the_eight_views_undo_exactly():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    views = [dihedral(x, k) for k in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert all(torch.equal(undo_dihedral(v, k), x) for k, v in enumerate(views))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("hr")
    for name in ("astronaut", "coffee", "chelsea"):
        write_image(folder / f"{name}.png", Picture(np.ascontiguousarray(getattr(data, name)()[:96, :96])))
    return folder


def test_teachers_give_their_mean_in_pixels_and_refuse_what_does_not_fit(tmp_path):
    x2 = tiny_span(0, scale=2)
    save_weights(x2, tmp_path / "t2.safetensors")
    save_weights(tiny_span(1, scale=2), tmp_path / "u2.safetensors")
    save_weights(tiny_span(2, scale=4), tmp_path / "t4.safetensors")
    files = [str(tmp_path / f) for f in ("t2.safetensors", "u2.safetensors")]
    teachers = Teachers(files, [2, 3], 3, torch.device("cpu"), False)
    assert teachers.covers(2) and not teachers.covers(3) and teachers.targets(torch.zeros(1, 3, 8, 8), 3) is None
    lr = torch.rand(2, 3, 12, 10) * 255
    other = load_model(tmp_path / "u2.safetensors")
    bf16 = teachers.by_scale[2][0].precision == "bf16"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        expected = ((x2(lr / 255).float() + other.run(lr / 255).float()) / 2 * 255).clamp(0, 255)
    got = teachers.targets(lr, 2)
    assert got is not None and (got - expected).abs().mean() < 0.02 and teachers.seconds > 0  # bf16: sums differ
    with pytest.raises(ConfigError, match="none of the scales trained"):
        Teachers([str(tmp_path / "t4.safetensors")], [2, 3], 3, torch.device("cpu"), False)
    with pytest.raises(ConfigError, match="has 3 colour channels; the run trains 1"):
        Teachers([str(tmp_path / "t2.safetensors")], [2], 1, torch.device("cpu"), False)


def test_a_student_started_from_its_teacher_has_almost_nothing_to_learn(photos, tmp_path, monkeypatch):
    """The pixel ranges line up: an MSPAN started from a SPAN x2 and taught by that SPAN has a mean error under a
    gray level (the teacher runs in inference's bf16 where the CPU has it: 0.36 here), where a range or offset
    error anywhere in the plumbing would give tens."""
    monkeypatch.setattr(superres.training.distill, "DISTILL_MARGIN", 0)  # the teacher's target everywhere
    wide = dict(n_feats=48, mid_feats=48, n_blocks=6)
    save_weights(tiny_span(0, scale=2, **wide), tmp_path / "t.safetensors")
    args = [
        "train",
        "--data",
        str(photos),
        "--scale",
        "2",
        "--preset",
        "mspan-deploy",
        "--no-bf16",
        "--teacher-per-batch",
    ]
    args += ["--init", str(tmp_path / "t.safetensors"), "--teacher", str(tmp_path / "t.safetensors")]
    args += ["--iters", "2", "--batch-size", "2", "--patch-size", "16", "--lr", "1e-12", "--log-every", "1"]
    args += ["--out", str(tmp_path / "run"), "--threads", "1"]
    assert main(args) == 0
    rows = log_rows(tmp_path / "run")
    assert 0 <= float(rows[0]["loss"]) < 1, rows[0]


def test_distillation_trains_an_mspan_and_frozen_parts_stay(photos, tmp_path):
    save_weights(tiny_span(0, scale=2), tmp_path / "t2.safetensors")
    torch.manual_seed(0)
    start = MSPAN(MSPANConfig(scales=(2, 3)))  # the preset's size
    save_weights(start, tmp_path / "start.safetensors")
    args = ["train", "--data", str(photos), "--scale", "2,3", "--preset", "mspan-deploy", "--holdout", "1"]
    args += ["--init", str(tmp_path / "start.safetensors")]
    args += ["--teacher", str(tmp_path / "t2.safetensors"), "--teacher-weight", "0.5", "--teacher-flips"]
    args += ["--teacher-per-batch"]
    args += ["--frozen", "^block_1\\.", "--iters", "6", "--batch-size", "2", "--patch-size", "16", "--val-every", "3"]
    args += ["--log-every", "2", "--out", str(tmp_path / "run"), "--threads", "1"]
    assert main(args) == 0
    rows = log_rows(tmp_path / "run")
    assert rows[-1]["step"] == "6" and float(rows[-1]["teacher_share"]) > 0
    trained = load_model(tmp_path / "run" / "best.safetensors")
    assert trained.arch == "mspan" and trained.scales == (2, 3)
    meta = trained.metadata["training"]
    assert meta["teachers"] == ["t2.safetensors"] and meta["teacher_weight"] == 0.5 and meta["teacher_flips"]
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    before = start.state_dict()
    assert all(after[k].equal(v) for k, v in before.items() if k.startswith("block_1."))
    assert not all(after[k].equal(v) for k, v in before.items() if k.startswith("block_2."))
    with pytest.raises(ConfigError, match="nothing to train"):
        _trained_parameters(build_model(TrainConfig(data=["x"], preset="mspan-deploy")), TrainConfig(frozen="."))


def test_the_teachers_target_keeps_the_hr_at_the_patch_edge():
    from superres.training.distill import with_hr_border

    target, hr = torch.zeros(1, 3, 10, 12), torch.ones(1, 3, 10, 12)
    mixed = with_hr_border(target, hr, 2)
    assert mixed[..., 2:8, 2:10].eq(0).all() and mixed.sum() == 3 * (10 * 12 - 6 * 8)
    assert with_hr_border(target, hr, 5).equal(hr)  # no inside left


def test_teachers_once_per_image_replace_the_hr_with_their_mix(photos, tmp_path):
    from superres.imaging.datasets import Sample
    from superres.training.distill import distilled_samples

    save_weights(tiny_span(0, scale=2), tmp_path / "t2.safetensors")
    teachers = Teachers([str(tmp_path / "t2.safetensors")], [2, 3], 3, torch.device("cpu"), False)
    rng = np.random.default_rng(0)
    sample = Sample(
        "a", rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), rng.integers(0, 256, (18, 22, 3), dtype=np.uint8)
    )
    whole = teachers.targets(torch.from_numpy(sample.lr).permute(2, 0, 1)[None].float(), 2)
    assert whole is not None
    (mixed,) = distilled_samples([sample], teachers, 2, 0.25)
    expected = 0.25 * whole[0].permute(1, 2, 0).numpy() + 0.75 * sample.hr
    assert mixed.hr.dtype == np.float32 and np.abs(mixed.hr - expected).max() < 1e-3 and mixed.lr is sample.lr
    assert distilled_samples([sample], teachers, 3, 0.25) == [sample]  # no teacher at x3: the HR stays
    # and a run: the targets are made before the first step, and no step runs a teacher
    args = ["train", "--data", str(photos), "--scale", "2", "--preset", "mspan-deploy", "--iters", "2"]
    args += ["--teacher", str(tmp_path / "t2.safetensors"), "--batch-size", "2", "--patch-size", "16"]
    args += ["--log-every", "1", "--out", str(tmp_path / "run"), "--threads", "1"]
    assert main(args) == 0
    assert [float(r["teacher_share"]) for r in log_rows(tmp_path / "run")] == [0.0, 0.0]


# ------------------------------------------------------------------------- conditioned (the photo model)


def conditioned(seed: int = 0, gain: int = 0) -> MSPAN:
    """A small conditioned MSPAN whose modulation is not the identity (random, as after training)."""
    torch.manual_seed(seed)
    net = MSPAN(MSPANConfig(scales=(2, 3, 4), gain=gain, conditions=2, cond_hidden=8, **SMALL))
    for p in net.modulation.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return net.eval()


@pytest.mark.parametrize("gain", [0, 2])
def test_a_condition_folds_into_a_plain_network(gain):
    net = conditioned(gain=gain)
    x = torch.rand(2, 3, 13, 17)
    for condition in ((0.0, 0.0), (0.3, 0.8), (1.0, 0.1)):
        plain = net.specialise(condition)
        assert plain.modulation is None and plain.config.gain == 0 and plain.config.conditions == 0
        for s in (2, 3, 4):
            want = net(x, s, torch.tensor([condition] * 2))
            assert torch.allclose(plain(x, s), want, atol=2e-5)
    assert not torch.allclose(net.specialise((0.0, 0.0))(x, 2), net.specialise((1.0, 1.0))(x, 2), atol=1e-3)
    assert torch.equal(net(x, 2), net(x, 2, torch.zeros(2, 2)))  # no condition: (0, 0)
    with pytest.raises(ConfigError, match="takes 2 condition values"):
        net.specialise((0.5,))
    with pytest.raises(ConfigError, match="takes no condition"):
        net.specialise((0.0, 0.0)).specialise((0.0, 0.0))


def test_each_image_of_a_batch_has_its_own_condition():
    net = conditioned()
    x = torch.rand(2, 3, 9, 9)
    both = net(x, 3, torch.tensor([[0.2, 0.0], [0.9, 0.7]]))
    assert torch.allclose(both[1:], net(x[1:], 3, torch.tensor([[0.9, 0.7]])), atol=1e-5)
    assert torch.allclose(both[:1], net(x[:1], 3, torch.tensor([[0.2, 0.0]])), atol=1e-5)


def test_a_new_modulation_starts_as_the_plain_network():
    plain = MSPAN(MSPANConfig(scales=(2, 4), **SMALL)).eval()
    net = MSPAN(MSPANConfig(scales=(2, 4), conditions=2, **SMALL)).eval()
    copied = init_from(net, [plain])
    assert not any(k.startswith("modulation.") for k in copied)
    x = torch.rand(1, 3, 10, 10)
    assert torch.equal(net(x, 4, torch.tensor([[0.7, 0.4]])), plain(x, 4))


def test_a_conditioned_file_reads_back(tmp_path):
    net = conditioned(3)
    save_weights(net, tmp_path / "photo.safetensors")
    back = load_model(tmp_path / "photo.safetensors")
    assert back.config.conditions == 2 and back.config.cond_hidden == 8
    assert "conditioned on 2 values" in back.describe()
    x, c = torch.rand(1, 3, 8, 8), torch.tensor([[0.4, 0.6]])
    assert torch.equal(back.net.eval()(x, 2, c), net(x, 2, c))


def test_a_conditioned_network_trains_on_degraded_patches_with_their_conditions(photos, tmp_path):
    cfg = TrainConfig(
        data=[str(photos)],
        scale=[2, 4],
        preset="mspan-photo",
        degradation="mix:clean=0.3,web=0.4,camera=0.3",
        iters=4,
        batch_size=2,
        patch_size=16,
        holdout=1,
        val_every=4,
        checkpoint_every=4,
        log_every=2,
        out=str(tmp_path / "run"),
        threads=1,
    )
    from superres.training.loop import train

    assert train(cfg)["steps"] == 4
    best = load_model(tmp_path / "run" / "best.safetensors")
    assert best.config.conditions == 2


def test_a_conditioned_sampler_gives_each_patch_its_damage():
    from superres.imaging.datasets import Sample
    from superres.imaging.degrade import parse_preset
    from superres.training.patches import PatchSampler

    hr = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    samples = [Sample("a", hr[::2, ::2], hr)]
    options = dict(degradation=parse_preset("mix:clean=0.5,real=0.5"), flips=False, seed=1)
    lr, hr_batch, condition = PatchSampler(samples, 2, 16, 8, conditioned=True, **options).sample()
    assert lr.shape == (8, 16, 16, 3) and condition.shape == (8, 2) and condition.dtype == np.float32
    assert set(map(tuple, condition.tolist())) == {(0.0, 0.0), (1.0, 1.0)}  # both kinds drawn, each told
    from superres.imaging.degrade import shrink

    for patch, target, c in zip(lr, hr_batch, condition, strict=True):
        assert (c[0] == 0) == np.array_equal(patch, shrink(target, 2))  # clean patches are the bicubic LR
    assert len(PatchSampler(samples, 2, 16, 8, **options).sample()) == 2  # unconditioned: (lr, hr)
