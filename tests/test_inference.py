import logging

import numpy as np
import pytest
import torch

import superres
from conftest import nearest_edsr
from superres.cli.main import main
from superres.errors import ConfigError
from superres.imaging.io import Picture, read_image, write_image
from superres.inference.upscaler import MIN_TILE, Upscaler
from superres.models import EDSR, EDSRConfig, load_model, save_weights


def busy_model(scale: int, n_colors: int = 3, blocks: int = 3) -> EDSR:
    """Random weights, scaled up so that every input pixel in the receptive field matters."""
    torch.manual_seed(scale)
    model = EDSR(EDSRConfig(scale=scale, n_feats=16, n_resblocks=blocks, n_colors=n_colors)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    return model


def image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).random((h, w, c)).astype(np.float32) * 255


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(53, 71), (16, 90), (40, 17)])
def test_tiled_equals_untiled(scale, size):
    model = busy_model(scale)
    img = image(*size)
    whole = Upscaler(model, tile=0)(img)
    tiled = Upscaler(model, tile=MIN_TILE)(img)
    a, b = np.clip(np.round(whole), 0, 255), np.clip(np.round(tiled), 0, 255)
    assert np.abs(a - b).max() <= 1
    assert np.mean(a == b) >= 0.9999
    assert np.abs(whole - tiled).max() < 1e-2  # only summation order differs


def test_margin_below_the_receptive_radius_would_show_seams():
    """The check above can fail: one pixel less context than the radius changes the output."""
    model = busy_model(2)
    img = image(53, 71)
    up = Upscaler(model, tile=MIN_TILE)
    up.margin = up.radius - 1
    assert np.abs(Upscaler(model, tile=0)(img) - up(img)).max() > 1


def test_grayscale_model_tiled():
    model = busy_model(2, n_colors=1)
    img = image(37, 45, 1)
    assert np.abs(Upscaler(model, tile=0)(img) - Upscaler(model, tile=MIN_TILE)(img)).max() < 1e-2


def test_small_tiles_rejected_and_small_overlap_raised(caplog):
    model = busy_model(2)
    with pytest.raises(ConfigError, match="at least"):
        Upscaler(model, tile=4)
    with caplog.at_level(logging.INFO):
        up = Upscaler(model, tile=32, overlap=2)
    assert up.margin == model.receptive_radius() == 2 * 3 + 4


def test_automatic_tile_follows_the_memory_budget():
    model = busy_model(2)
    img = image(90, 120)
    assert Upscaler(model).auto_tile(90, 120) == 0  # small image: one piece
    small_budget = Upscaler(model, memory_budget=2_000_000)
    tile = small_budget.auto_tile(90, 120)
    assert MIN_TILE <= tile < 90
    assert np.abs(small_budget(img) - Upscaler(model, tile=0)(img)).max() < 1e-2


def test_no_gpu_paths(caplog):
    model = busy_model(2)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            Upscaler(model, device="cuda")
        assert Upscaler(model, device="auto").device.type == "cpu"
    with caplog.at_level(logging.WARNING):
        half = Upscaler(model, device="cpu", precision="fp16")
    assert half.precision == "bf16" and "bf16" in caplog.text
    img = image(20, 24)
    out = half(img)
    assert out.shape == (40, 48, 3) and np.isfinite(out).all()


def test_self_ensemble_is_the_mean_of_the_eight_transforms():
    model = busy_model(2)
    img = image(15, 19)
    ens = Upscaler(model, precision="fp32", tile=0, self_ensemble=True, backend="torch")(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    outs = []
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                t = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
                y = torch.rot90(model(t), -k, dims=(-2, -1))
                outs.append(y.flip(-1) if flip else y)
    ref = torch.stack(outs).mean(0)[0].permute(1, 2, 0).numpy()
    assert ens.shape == (30, 38, 3) and np.abs(ens - ref).max() < 1e-3
    tiled = Upscaler(model, precision="fp32", tile=MIN_TILE, self_ensemble=True)(img)
    assert np.abs(ens - tiled).max() < 1e-2


def test_self_ensemble_keeps_an_equivariant_model_unchanged():
    """A model that does nearest-neighbour upscaling commutes with flips and rotations."""
    model = nearest_edsr()
    img = np.random.default_rng(2).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    plain = superres.upscale(img, model=model, precision="fp32")
    ens = superres.upscale(img, model=model, self_ensemble=True, precision="fp32")
    assert np.array_equal(plain, ens) and np.array_equal(plain, img.repeat(2, 0).repeat(2, 1))


def test_any_factor(tmp_path):
    model = busy_model(2)
    img = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    out = superres.upscale(img, model=model, scale=2.5)
    assert out.shape == (50, 75, 3)
    rgba = np.dstack([img, np.full((20, 30), 99, np.uint8)])
    out = superres.upscale(rgba, model=model, scale=1.5)
    assert out.shape == (30, 45, 4) and np.all(out[..., 3] == 99)
    assert superres.upscale(img, method="bicubic", scale=1.7).shape == (34, 51, 3)
    with pytest.raises(TypeError, match="outscale"):  # its former name is gone (CHANGELOG)
        superres.upscale(img, model=model, outscale=2.5)


def test_onnx_export_and_backend_match_pytorch(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model = busy_model(3, blocks=2)
    weights = save_weights(model, tmp_path / "m.safetensors")
    assert main(["export", str(weights), "-o", str(tmp_path / "m.onnx")]) == 0
    rng = np.random.default_rng(1)
    write_image(tmp_path / "in.png", Picture(rng.integers(0, 256, size=(37, 51, 3), dtype=np.uint8)))
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "in.png"),
                "--model",
                str(weights),
                "--precision",
                "fp32",
                "-o",
                str(tmp_path / "pt.png"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "in.png"),
                "--model",
                str(tmp_path / "m.onnx"),
                "--backend",
                "onnxruntime",
                "--tile",
                "16",
                "-o",
                str(tmp_path / "ort.png"),
            ]
        )
        == 0
    )
    a, b = read_image(tmp_path / "pt.png").pixels, read_image(tmp_path / "ort.png").pixels
    assert a.shape == (111, 153, 3)
    assert np.abs(a.astype(int) - b).max() <= 1 and np.mean(a == b) > 0.999
    (tmp_path / "junk.onnx").write_bytes(b"nope")
    assert main(["upscale", str(tmp_path / "in.png"), "--model", str(tmp_path / "junk.onnx")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def test_half_precision_overflow_falls_back_to_fp32(caplog):
    """fp16 overflows where fp32 does not (on GPUs); simulate it: this model returns inf under autocast."""
    model = busy_model(2)
    plain = model.forward

    def overflowing(x, scale=None):
        y = plain(x, scale)
        return y * float("inf") if torch.is_autocast_enabled("cpu") else y

    model.forward = overflowing
    with caplog.at_level(logging.WARNING):
        out = Upscaler(model, device="cpu", precision="bf16", tile=0, backend="torch")(image(8, 8))
    assert "recomputing it in fp32" in caplog.text
    assert np.array_equal(out, Upscaler(model, device="cpu", precision="fp32", tile=0, backend="torch")(image(8, 8)))


def test_strips_come_top_to_bottom_one_band_of_tiles_at_a_time():
    model = busy_model(3)
    img = image(50, 37)
    strips = list(Upscaler(model, tile=MIN_TILE).strips(img))
    assert [len(s) for s in strips] == [48, 48, 48, 6]  # LR rows 16, 16, 16, 2 at x3
    assert np.abs(np.concatenate(strips) - Upscaler(model, tile=0)(img)).max() < 1e-2
    assert [len(s) for s in Upscaler(model, tile=0).strips(img)] == [150]


def test_out_of_gpu_memory_retries_with_smaller_tiles(monkeypatch, caplog):
    """Simulated: the 'device' holds at most 44x44 input pixels per call. The budget first allows a batch
    of four 50x50 boxes; a retry halves the tile and quarters the budget, so batching cannot fill the
    device again."""
    model = busy_model(2)
    img = image(40, 60)
    expected = Upscaler(model, tile=0)(img)
    probe = Upscaler(model, tile=0)
    limit = (24 + 2 * probe.margin) ** 2
    up = Upscaler(model, tile=0, memory_budget=probe._bytes_per_pixel() * 50 * 50 * 4)
    plain = up._forward
    seen = []

    def small_device(x, cancel=None):
        if x.shape[0] * x.shape[2] * x.shape[3] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        seen.append(tuple(x.shape))
        return plain(x, cancel)

    monkeypatch.setattr(up, "_forward", small_device)
    with caplog.at_level(logging.WARNING):
        out = up(img)
    assert caplog.text.count("retrying with") == 1 and "retrying with 30 px tiles" in caplog.text
    assert np.abs(out - expected).max() < 1e-2
    assert seen and all(n * h * w <= limit for n, _, h, w in seen)

    def no_room(x, cancel=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(up, "_forward", no_room)
    with pytest.raises(ConfigError, match="smallest tile"):
        up(img)


def test_auto_precision_follows_the_hardware(monkeypatch):
    from superres.inference import devices as mod

    model = busy_model(2, blocks=1)
    monkeypatch.setattr(mod, "native_bf16", lambda: False)
    assert Upscaler(model, device="cpu").precision == "fp32"  # no native bf16: fp32, never a slow emulation
    monkeypatch.setattr(mod, "native_bf16", lambda: True)
    assert Upscaler(model, device="cpu").precision == "bf16"
    assert Upscaler(model, device="cpu", precision="fp32").precision == "fp32"
    assert mod.resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert mod.resolve_precision(None, torch.device("mps")) == "fp16"
    with pytest.raises(ConfigError, match="precision"):
        Upscaler(model, device="cpu", precision="int4")


def test_native_bf16_reads_the_cpu_flags(monkeypatch, tmp_path):
    from superres.inference import devices as mod

    real_open = open
    for flags, expected in (
        ("fpu sse avx512f avx512_bf16", True),
        ("fpu amx_bf16 amx_tile", True),
        ("fpu sse avx2 avx512f", False),
    ):
        (tmp_path / "cpuinfo").write_text(f"processor : 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(
            "builtins.open", lambda p, *a, **k: real_open(tmp_path / "cpuinfo" if p == "/proc/cpuinfo" else p, *a, **k)
        )
        assert mod.native_bf16() is expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_default_is_fp16_and_close_to_fp32():
    model = busy_model(2, blocks=2)
    img = image(40, 36)
    up = Upscaler(model)  # device auto, precision auto
    assert up.device.type == "cuda" and up.precision == "fp16"
    ref = Upscaler(model, device="cpu", precision="fp32")(img)
    assert np.abs(up(img) - ref).mean() < 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    """A real CUDA OOM raised for calls above a size: the band is redone with smaller tiles, same output."""
    model = busy_model(2, blocks=2)
    img = image(64, 64)
    up = Upscaler(model, precision="fp32", tile=0)
    expected = Upscaler(model, device="cpu", precision="fp32", tile=0)(img)
    net = up._net

    def limited(x):  # tiles larger than 40 x 40 do not fit
        if x.shape[-1] * x.shape[-2] > 40 * 40:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated limit)")
        return net(x)

    monkeypatch.setattr(up, "_net", limited)
    assert np.abs(up(img) - expected).max() < 1e-2


def test_onnx_export_of_a_multi_scale_model_writes_one_file_per_scale(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from superres.models import create_model

    torch.manual_seed(0)
    model = create_model("mdsr-tiny").eval()
    weights = save_weights(model, tmp_path / "ms.safetensors")
    (tmp_path / "ms-x4.onnx").write_bytes(b"keep")  # already there: nothing is written, not even x2 and x3
    assert main(["export", str(weights), "-o", str(tmp_path / "ms.onnx")]) == 2
    assert not (tmp_path / "ms-x2.onnx").exists() and (tmp_path / "ms-x4.onnx").read_bytes() == b"keep"
    assert main(["export", str(weights), "-o", str(tmp_path / "ms.onnx"), "--overwrite"]) == 0
    img = image(19, 23)
    for scale in (2, 3, 4):
        ort = Upscaler(load_model(tmp_path / f"ms-x{scale}.onnx"), tile=0)
        assert ort.scale == scale
        expected = Upscaler(model, scale, device="cpu", precision="fp32", tile=0)(img)
        assert np.abs(ort(img) - expected).max() < 1e-2
    assert main(["export", str(weights), "-o", str(tmp_path / "x3.onnx"), "--scale", "3"]) == 0
    assert Upscaler(load_model(tmp_path / "x3.onnx")).scale == 3


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(scale=True), "scale must be a number"),
        (dict(self_ensemble="no"), "self_ensemble must be True or False"),
        (dict(threads=True), "threads must be a whole number"),
        (dict(tile=16.5), "tile must be a whole number"),
        (dict(tile=8), "at least 16"),
        (dict(correct="3"), "correction threshold must be a number"),
        (dict(device="gpu"), "device must be auto, cpu"),
        (dict(tile_overlap=-1), "tile_overlap must be a whole number >= 0"),
        (dict(scale=2, width=100), "not both"),
        (dict(method="bicubic"), "needs a scale or an output size"),
    ],
)
def test_upscale_options_refuse_bad_values_by_name(options, message):
    with pytest.raises(ConfigError, match=message):
        superres.UpscaleOptions(**options)


def test_upscale_options_take_none_as_the_default_and_keep_one_spelling():
    options = superres.UpscaleOptions(scale=2.5, precision=None, backend=None, device=None)
    assert (options.precision, options.backend, options.device) == ("auto", "auto", "auto")
    assert options.output == superres.OutputSize(2.5) and options.but(scale=3).scale == 3
    with pytest.raises(TypeError):
        superres.UpscaleOptions(size=(10, 10))  # the API's shorthand, not a field


@pytest.mark.parametrize("exact", [True, False])
def test_a_cancel_takes_effect_within_one_tile(exact):
    """strips(cancel=event): tiles run one per network call, and once the event is set (here during the third
    call) no further call starts: Cancelled. For exact tiles and for blended (approximate) ones."""
    import threading

    from superres.errors import Cancelled

    up = Upscaler(nearest_edsr(2), 2, device="cpu", tile=MIN_TILE, overlap=None if exact else 4)
    up.exact = exact  # the nearest EDSR has a radius; blended tiles are what a network without one gets
    cancel, calls = threading.Event(), []
    run = up.runner.run

    def counted(x, scale):
        calls.append(x.shape[0])
        if len(calls) == 3:
            cancel.set()
        return run(x, scale)

    up.runner.run = counted
    image = np.random.default_rng(0).integers(0, 256, (4 * MIN_TILE, 4 * MIN_TILE, 3)).astype(np.uint8)
    with pytest.raises(Cancelled):
        for _ in up.strips(image, cancel=cancel):
            pass
    assert calls == [1, 1, 1]  # 16 tiles, one per call, and none after the cancel
    up.runner.run = run
    assert np.array_equal(  # without a cancel, the same tiles make the same picture (batched when exact)
        up(image, cancel=threading.Event()), up(image)
    )
