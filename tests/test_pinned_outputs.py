"""The bundled models' outputs, pinned: every case below must stay bit-identical. First pinned before the
refactor of issue 20 (one file per family, model handles, one options object, backends); pinned again when
issue 24 made `mspan` the default (the denoise cases, which run the mdsr-medium pair, kept their digests);
the three denoise cases again when issue 25 replaced `mspan-photo` with its second training stage, and
with its third (and `auto-noisy` when auto's noise floor came off in quadrature).

`tests/data/pinned_outputs.npz` holds each case's output and `PINNED` its SHA-256, both made by running this
file as a script (`python tests/test_pinned_outputs.py --pin`). fp32 only: the
bf16 kernels differ between CPUs by design. Where this machine's fp32 convolution kernels sum in another order
than the machine that pinned them (another CPU family can), a pixel may round the other way; the test then
falls back to the stored arrays and allows at most 1 gray level on at most 0.5% of the values, with a warning.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import superres

DATA = Path(__file__).parent / "data" / "pinned_outputs.npz"


def _inputs() -> dict[str, np.ndarray]:
    from skimage import data

    photo = data.astronaut()[100:132, 180:220].copy()  # 32x40 RGB, ships with scikit-image
    rng = np.random.default_rng(20)
    noisy = np.clip(photo.astype(np.float64) + rng.normal(0, 12, photo.shape), 0, 255).round().astype(np.uint8)
    gray = data.camera()[200:232, 240:276].copy()  # 32x36 gray
    alpha = np.linspace(0, 255, 32 * 40).reshape(32, 40).round().astype(np.uint8)
    deep = (photo.astype(np.uint16) * 257) ^ rng.integers(0, 256, photo.shape, dtype=np.uint16)
    return {"photo": photo, "noisy": noisy, "gray": gray, "rgba": np.dstack([photo, alpha]), "deep": deep}


# name -> (input, superres.upscale options); all fp32 on the CPU
CASES: dict[str, tuple[str, dict]] = {
    "x2": ("photo", dict(scale=2)),
    "x3": ("photo", dict(scale=3)),
    "x4": ("photo", dict(scale=4)),
    "x2.5": ("photo", dict(scale=2.5)),
    "size": ("photo", dict(size=(97, 61))),
    "width": ("photo", dict(width=150)),
    "shrink": ("photo", dict(scale=0.75)),
    "tiled": ("photo", dict(scale=2, tile=16)),
    "ensemble": ("photo", dict(scale=3, self_ensemble=True)),
    "correct": ("photo", dict(scale=2, correct=superres.DEFAULT_THRESHOLD)),
    "auto-noisy": ("noisy", dict(scale=2, denoise="auto")),
    "denoise-0.5": ("noisy", dict(scale=2, denoise=0.5)),
    "denoise-1": ("noisy", dict(scale=4, denoise=1)),
    "photo-model": ("noisy", dict(scale=2, model="mdsr-medium-photo")),
    "gray": ("gray", dict(scale=2)),
    "rgba": ("rgba", dict(scale=3)),
    "16-bit": ("deep", dict(scale=2)),
    "bicubic": ("photo", dict(scale=2.3, method="bicubic")),
}

# made by `python tests/test_pinned_outputs.py --pin` (it rewrites the .npz and prints this)
PINNED = {
    "x2": "19730219fa421b00fa317c04fe78911dd61d449f6f4c7f3e79f93dc7c93b5536",
    "x3": "cd18ada22d492739a97cbc094084865447ab33948ba3f57b45d48aa3b233e2f2",
    "x4": "7a48c7813b071048d7221cad6fc6d3ba1b0fe9d62958e7a3288517f22545bcb3",
    "x2.5": "c4933e03f9f142b4f16624c274a8c3732e3907b7b90445f3754fab696e2aa680",
    "size": "aa9d871e8616ac9814de405d57c2ba0aefe5d2acf4a0e3388e324bf97f33ba0a",
    "width": "b9d85f792daeafe8139e60c2131b67a4a4ea29b0889c0a50f16691e8d0cc1cc0",
    "shrink": "26c965f9bb68cc130e3e2b68cd08210fc631eb4f66a24e53aa0ed41518f88305",
    "tiled": "19730219fa421b00fa317c04fe78911dd61d449f6f4c7f3e79f93dc7c93b5536",
    "ensemble": "c97745857b67be9e463693e7445c8b8fd8d63c1aedf9f6a34e97d2cbc044e11b",
    "correct": "19730219fa421b00fa317c04fe78911dd61d449f6f4c7f3e79f93dc7c93b5536",
    "auto-noisy": "1e2aa9950302edbdedd53f0d4afecf5a220320d9e28f8c7dec98e52db5ad2a00",
    "denoise-0.5": "56f799217cb64cfa261c678fbb3c5a0e3ee8dd61b8e0aed73cf2e0bf85d07bc1",
    "denoise-1": "762d2e88896ef38b6f375e48bef9e57a7b4ea022e5a71ffd005b4a6e464debc8",
    "photo-model": "f20eff2820250939871998e2b464874e7c20e61787f922a325b6d500830ccdec",
    "gray": "4794a482ec86e020ca58255406357cfdb2aadc1dcc899d4f81931dcd64a38e7c",
    "rgba": "b0b0f29f0edc67647bcca92f23b2919b1085ea51c40c0ae5985922e8f7d5aa86",
    "16-bit": "344c8a4ff98e0ab68704308f8bb66ea5c3ded25d3c282ae8ec305a8bd2e2a67e",
    "bicubic": "f148a5b9473f7856c81ed033a24d0cf4ff56159b11655bda8a41d80dbab58bee",
}


def _run(case: str, backend: str = "torch") -> np.ndarray:
    source, options = CASES[case]
    options = {"denoise": None, **options}
    if "method" not in options:
        options.update(device="cpu", precision="fp32", backend=backend)
    return superres.upscale(_inputs()[source], **options)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bundled_output_is_pinned(case):
    out = _run(case)
    if _digest(out) == PINNED[case]:
        return
    _assert_within_rounding(case, out)
    warnings.warn(
        f"{case}: not bit-identical on this CPU; within the fp32 summation-order tolerance",
        stacklevel=2,
    )


@pytest.mark.parametrize("case", sorted(c for c in CASES if c != "bicubic"))
def test_the_default_backend_in_fp32_gives_the_pinned_outputs_to_float_rounding(case):
    """--backend auto (OpenVINO on this CPU where it is installed) in fp32: the same outputs up to float
    summation order, as PyTorch on another CPU would give."""
    _assert_within_rounding(case, _run(case, backend="auto"))


def _assert_within_rounding(case: str, out: np.ndarray) -> None:
    expected = np.load(DATA)[case]
    assert out.shape == expected.shape and out.dtype == expected.dtype
    diff = np.abs(out.astype(np.int64) - expected.astype(np.int64))
    # the stored array is the one whose digest was pinned: it must not have changed since
    assert _digest(expected) == PINNED[case]
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.005, f"{case}: {(diff > 0).sum()} values differ, max {diff.max()}"


if __name__ == "__main__" and sys.argv[1:] == ["--pin"]:
    outputs = {case: _run(case) for case in CASES}
    np.savez_compressed(DATA, **outputs)
    print("PINNED = {")
    for case, out in outputs.items():
        print(f'    "{case}": "{_digest(out)}",')
    print("}")
