import re

import numpy as np
import pytest
import torch

import superres
from superres.errors import CheckpointError, ConfigError, UnknownModelError
from superres.models import (
    EDSR,
    EDSRConfig,
    count_parameters,
    create_model,
    format_summary,
    init_from,
    list_models,
    load_model,
    load_weights,
    save_weights,
    summarize,
)


def tiny(scale=2, n_colors=3, custom_mean=True, **kw) -> EDSR:
    torch.manual_seed(0)
    cfg = dict(scale=scale, n_feats=8, n_resblocks=2, n_colors=n_colors)
    cfg.update(kw)
    model = EDSR(EDSRConfig(**cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        if custom_mean:  # a non-default mean shift that loading must carry through
            model.sub_mean.bias.add_(7.0)
            model.add_mean.bias.sub_(5.0)
    return model


def same_output(a: EDSR, b: EDSR, colors=3) -> bool:
    x = torch.rand(1, colors, 9, 7) * 255
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-5)


@pytest.mark.parametrize("scale,expected", [(2, 1_369_859), (3, 1_554_499), (4, 1_517_571)])
def test_baseline_parameter_counts_match_official(scale, expected):
    assert count_parameters(create_model("edsr-baseline", scale=scale)) == expected


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("n_colors", [1, 3])
def test_output_shape_every_scale_and_colour(scale, n_colors):
    model = tiny(scale, n_colors)
    with torch.no_grad():
        y = model(torch.rand(2, n_colors, 5, 7) * 255)
    assert y.shape == (2, n_colors, 5 * scale, 7 * scale)


def test_state_dict_keys_are_official():
    keys = set(tiny(scale=4).state_dict())
    expected = {
        "sub_mean.weight",
        "sub_mean.bias",
        "add_mean.weight",
        "add_mean.bias",
        "head.0.weight",
        "head.0.bias",
        "body.2.weight",
        "body.2.bias",
        "tail.0.0.weight",
        "tail.0.0.bias",
        "tail.0.2.weight",
        "tail.0.2.bias",
        "tail.1.weight",
        "tail.1.bias",
    }
    expected |= {f"body.{i}.body.{j}.{p}" for i in range(2) for j in (0, 2) for p in ("weight", "bias")}
    assert keys == expected
    x3 = tiny(scale=3).state_dict()
    assert set(x3) == expected - {"tail.0.2.weight", "tail.0.2.bias"}
    assert x3["tail.0.0.weight"].shape == (9 * 8, 8, 3, 3)


def test_residual_scaling_and_global_skip():
    model = tiny(res_scale=0.1)
    assert model.body[0].res_scale == 0.1
    x = torch.rand(1, 8, 4, 4)
    block = model.body[0]
    with torch.no_grad():
        assert torch.allclose(block(x), x + 0.1 * block.body(x))


def test_mean_shift_is_not_trainable_and_matches_div2k_mean():
    model = EDSR(EDSRConfig(scale=2, n_feats=4, n_resblocks=0))
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith(("sub_mean", "add_mean")) for n in names)
    np.testing.assert_allclose(model.sub_mean.bias.numpy(), -255 * np.array([0.4488, 0.4371, 0.4040]), rtol=1e-6)


def test_presets_listed_and_unknown_name_suggests():
    assert {"edsr", "edsr-baseline", "edsr-small"} <= set(list_models())
    with pytest.raises(UnknownModelError, match="did you mean 'edsr-baseline'"):
        create_model("edsr-basline")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="scale"):
        EDSRConfig(scale=5)
    with pytest.raises(ConfigError, match="n_colors"):
        EDSRConfig(n_colors=2)


# --------------------------------------------------------------------------------- checkpoints


def test_safetensors_round_trip_keeps_config_and_outputs(tmp_path):
    model = tiny(scale=3, res_scale=0.5)
    path = save_weights(model, tmp_path / "m.safetensors", {"note": "hello"})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.metadata["note"] == "hello"
    assert same_output(model, loaded)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("with_mean", [True, False])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_pt_layout(tmp_path, with_mean, prefix):
    model = tiny(scale=4, custom_mean=with_mean)  # without the keys, loading uses the default mean
    state = {prefix + k: v for k, v in model.state_dict().items() if with_mean or "mean" not in k}
    torch.save(state, tmp_path / "edsr.pt")
    loaded = load_weights(tmp_path / "edsr.pt")
    assert loaded.config.scale == 4 and loaded.config.n_feats == 8 and loaded.config.n_resblocks == 2
    assert same_output(model, loaded)


def to_basicsr(state: dict) -> dict:
    out = {}
    n = max(int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.body", k))) + 1
    for k, v in state.items():
        if "mean" in k:
            continue  # BasicSR keeps its mean outside the state dict
        k = re.sub(r"^head\.0\.", "conv_first.", k)
        k = re.sub(r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1.", k)
        k = re.sub(r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2.", k)
        k = re.sub(rf"^body\.{n}\.", "conv_after_body.", k)
        k = re.sub(r"^tail\.0\.", "upsample.", k)
        k = re.sub(r"^tail\.1\.", "conv_last.", k)
        out[k] = v
    return out


@pytest.mark.parametrize("wrapper", [None, "params", "params_ema"])
@pytest.mark.parametrize("scale", [2, 3])
def test_basicsr_layout(tmp_path, wrapper, scale):
    model = tiny(scale=scale, custom_mean=False)  # BasicSR files hold no mean: the default DIV2K one
    state = to_basicsr(model.state_dict())
    assert "conv_after_body.weight" in state and "body.1.conv2.weight" in state
    torch.save(state if wrapper is None else {wrapper: state}, tmp_path / "basicsr.pth")
    loaded = load_model(tmp_path / "basicsr.pth", scale=scale)
    assert same_output(model, loaded)


def test_grayscale_model_round_trip(tmp_path):
    model = tiny(n_colors=1)
    loaded = load_model(save_weights(model, tmp_path / "g.safetensors"))
    assert loaded.config.n_colors == 1 and same_output(model, loaded, colors=1)


def test_res_scale_inferred_for_wide_models(tmp_path):
    wide = EDSR(EDSRConfig(scale=2, n_feats=256, n_resblocks=0))
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    assert load_weights(tmp_path / "wide.pt").config.res_scale == 0.1
    torch.save(tiny().state_dict(), tmp_path / "narrow.pt")
    assert load_weights(tmp_path / "narrow.pt").config.res_scale == 1.0


def test_strict_load_names_the_mismatch(tmp_path):
    model = tiny()
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "tail.1.bias"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\): tail\.1\.bias"):
        load_weights(tmp_path / "missing.pt")
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 1 key\(s\): extra\.weight"):
        load_weights(tmp_path / "extra.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(tmp_path / "missing.pt")
    assert "\n" not in str(info.value) and "missing.pt" in str(info.value)


def test_shape_mismatch_is_named():
    from superres.models.family import load_state_strict

    gray = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=2, n_colors=1))
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*head\.0\.weight \(8, 3, 3, 3\) vs \(8, 1, 3, 3\)"):
        load_state_strict(gray, tiny().state_dict())


def test_presets_are_not_weights():
    with pytest.raises(UnknownModelError, match="architecture without weights"):
        load_model("edsr-baseline")
    assert load_model("edsr-baseline", allow_untrained=True).config.n_feats == 64


def test_scale_mismatch_and_unknown_names(tmp_path):
    path = save_weights(tiny(scale=2), tmp_path / "x2.safetensors")
    with pytest.raises(CheckpointError, match="x2, not x4"):
        load_model(path, scale=4)
    with pytest.raises(UnknownModelError, match="unknown model"):
        load_model("no-such-model")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.safetensors")


def test_unreadable_and_foreign_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_weights(tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_weights(tmp_path / "junk.safetensors")
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no known architecture has these keys"):
        load_weights(tmp_path / "other.pt")


class _Evil:
    def __reduce__(self):
        import os

        return (os.makedirs, ("/tmp/superres-pwned-by-pickle",))


def test_loading_never_runs_code_from_the_file(tmp_path):
    import os
    import pickle

    marker = "/tmp/superres-pwned-by-pickle"
    if os.path.exists(marker):
        os.rmdir(marker)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"head.0.weight": _Evil()}, f)
    with pytest.raises(CheckpointError):
        load_weights(tmp_path / "evil.pt")
    assert not os.path.exists(marker)


def test_init_from_an_x2_model_copies_all_but_the_upsampler():
    x2 = tiny(scale=2)
    for scale in (3, 4):
        model = tiny(scale=scale)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        copied = init_from(model, [x2])
        src, dst = x2.state_dict(), model.state_dict()
        assert set(copied) == {k for k in dst if not k.startswith("tail.0.")}
        for k, v in dst.items():
            assert torch.equal(v, before[k] if k.startswith("tail.0.") else src[k]), k


# --------------------------------------------------------------------------------- summary


def test_summary_totals_and_conv_macs():
    model = create_model("edsr-baseline", scale=2)
    rows = summarize(model, (10, 20))
    assert sum(r.params for r in rows) == 1_369_859
    head = next(r for r in rows if r.name == "head.0")
    assert head.output_shape == (64, 10, 20) and head.macs == 64 * 10 * 20 * 3 * 9
    assert rows[-1].name == "add_mean" and rows[-1].output_shape == (3, 20, 40)
    text = format_summary(rows)
    assert "1,369,859" in text and "PixelShuffle(2)" in text


def test_public_api_exports():
    for name in ("load_model", "upscale", "imresize", "create_model", "psnr", "init_from"):
        assert name in superres.__all__ and callable(getattr(superres, name))
    from superres.evaluation import EvalConfig, evaluate  # the evaluation API keeps its name

    assert callable(evaluate) and EvalConfig


# ---------------------------------------------------------------------------------------------- found by mutmut


@pytest.mark.parametrize("wrapper", ["state_dict", "params_ema", "params", "model"])
def test_wrapped_pt_files_load_with_their_metadata(tmp_path, wrapper):
    import torch

    from superres.models import EDSR, EDSRConfig, load_model
    from superres.models.checkpoints import METADATA_KEY

    torch.manual_seed(0)
    model = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1))
    torch.save({wrapper: model.state_dict(), METADATA_KEY: {"note": "kept"}}, tmp_path / "w.pt")
    loaded = load_model(tmp_path / "w.pt")
    assert loaded.metadata == {"note": "kept"}
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=False)
    )


@pytest.mark.parametrize("content", [[1, 2, 3], {}, {"a": 1}])
def test_a_pt_file_without_tensors_is_named_in_its_error(tmp_path, content):
    import torch

    from superres.errors import CheckpointError
    from superres.models import load_model

    torch.save(content, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: holds no state dict of tensors"):
        load_model(tmp_path / "odd.pt")


def test_an_unknown_architecture_is_named(tmp_path):
    from superres.errors import CheckpointError
    from superres.models.checkpoints import build_from_dict

    with pytest.raises(CheckpointError, match="architecture 'nosuchnet' is not supported"):
        build_from_dict("nosuchnet", {})


def test_blending_refuses_networks_of_other_shapes_even_with_the_same_keys():
    from superres.errors import CheckpointError
    from superres.models import EDSR, EDSRConfig
    from superres.models.checkpoints import interpolate

    a = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1))
    wider = EDSR(EDSRConfig(scale=2, n_feats=16, n_resblocks=1))  # same names, other shapes
    deeper = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=2))  # other names
    for b in (wider, deeper):
        with pytest.raises(CheckpointError, match="the architectures differ"):
            interpolate(a, b, 0.5)


def test_model_loading_messages_and_presets():
    """Found by mutmut: what load_model says and builds for presets, missing files and wrong scales."""
    from superres.errors import CheckpointError, UnknownModelError
    from superres.models import load_model

    mdsr = load_model("mdsr-tiny", allow_untrained=True)
    assert mdsr.scales == (2, 3, 4) and mdsr.metadata == {"untrained": True}
    assert load_model("edsr-tiny", scale=3, allow_untrained=True).scales == (3,)
    assert load_model("edsr-tiny", allow_untrained=True).scales == (2,)
    with pytest.raises(
        UnknownModelError,
        match=r"'edsr-tiny' is an architecture without weights; give a weights "
        r"file or a bundled model \(mspan, mspan-photo, mdsr-medium, mdsr-medium-photo\)",
    ):
        load_model("edsr-tiny")
    for missing in ("nowhere.pt", "nowhere.pth", "nowhere.safetensors"):
        with pytest.raises(CheckpointError, match=rf"{missing}: no such file"):
            load_model(missing)
    with pytest.raises(CheckpointError, match=r"model 'mdsr-tiny' upscales x2, x3, x4, not x5"):
        load_model("mdsr-tiny", scale=5, allow_untrained=True)


def test_half_precision_export_stores_fp16(tmp_path):
    import torch
    from safetensors.torch import load_file

    from superres.models import EDSR, EDSRConfig, save_weights

    model = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1))
    full = save_weights(model, tmp_path / "full.safetensors")
    half = save_weights(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert {t.dtype for t in load_file(str(half)).values()} == {torch.float16}
    assert {t.dtype for t in load_file(str(full)).values()} == {torch.float32}


def test_foreign_weights_bring_their_mean_and_mismatches_are_spelt_out(tmp_path):
    """Found by mutmut: a .pt without our metadata keeps its own mean (from sub_mean), and a state dict
    that does not fit says what is missing, extra, or of another shape."""
    import torch

    from superres.errors import CheckpointError
    from superres.models import EDSR, EDSRConfig, load_model
    from superres.models.family import load_state_strict

    model = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1, rgb_mean=(0.3, 0.5, 0.7)))
    torch.save(model.state_dict(), tmp_path / "foreign.pt")
    assert load_model(tmp_path / "foreign.pt").config.rgb_mean == (0.3, 0.5, 0.7)
    state = model.state_dict()
    target = EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=2))
    with pytest.raises(CheckpointError) as e:
        load_state_strict(
            target,
            {
                **state,
                "extra.a": torch.zeros(1),
                "extra.b": torch.zeros(1),
                "extra.c": torch.zeros(1),
                "extra.d": torch.zeros(1),
            },
        )
    assert str(e.value) == (
        "weights do not fit the model: missing 6 key(s): body.1.body.0.weight, "
        "body.1.body.0.bias, body.1.body.2.weight ...; unexpected 6 key(s): body.1.weight, "
        "body.1.bias, extra.a ..."
    )
    wide = EDSR(EDSRConfig(scale=2, n_feats=16, n_resblocks=1))
    with pytest.raises(CheckpointError, match=r"shape mismatch: head\.0\.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        load_state_strict(wide, state)


def test_an_unknown_layout_names_the_closest_family_and_its_first_missing_key(tmp_path):
    state = tiny(scale=2).state_dict()
    del state["tail.1.weight"], state["tail.1.bias"]  # an EDSR without its last conv
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(
        CheckpointError, match=r"cut\.pt: not a known architecture: closest is edsr, but no key matches 'tail"
    ):
        load_weights(tmp_path / "cut.pt")
    torch.save({"state_dict": tiny(scale=2).state_dict(), "epoch": 7, "optimizer": {"lr": 1e-4}}, tmp_path / "run.pt")
    assert load_weights(tmp_path / "run.pt").scales == (2,)  # a trainer's wrapper, its extras dropped


def test_a_weights_file_too_large_to_be_one_is_refused_before_it_is_read(tmp_path):
    from superres.models.checkpoints import MAX_WEIGHTS_BYTES

    huge = tmp_path / "huge.pth"
    with open(huge, "wb") as f:  # sparse: no disk is used
        f.truncate(MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(CheckpointError, match=r"huge\.pth: 4\.0 GiB is more than the 4 GiB"):
        load_weights(huge)
