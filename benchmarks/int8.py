"""Whether int8 earns its place (issue 22): the bundled default quantised by NNCF with accuracy control, against
OpenVINO bf16, by Y-PSNR on Set5, Set14 and B100 and by speed. `--precision int8` ships only if it costs at most
0.05 dB on every set and scale and runs at least 1.3x faster than bf16; this script prints both.

    pip install nncf                      # not a dependency of superres: only this script needs it
    python benchmarks/int8.py             # x2, x3, x4
    python benchmarks/int8.py --scales 2 --calibration 32 --validation 10
    python benchmarks/int8.py --max-drop 0.02 --save src/superres/weights   # what ships (below)

Calibration: LR patches (MATLAB bicubic) of the first --calibration images of ../shared/data/train/T91 and
BSD200. Accuracy control: NNCF's quantize_with_accuracy_control with an absolute drop of at most --max-drop dB of
mean Y-PSNR on --validation images of ../shared/data/train/BSDS500-test (training images the default never
saw as benchmark images; no benchmark image is used before the final report). Speed: best of 3, 640x360 LR
at x2 (427x240 at x3, 320x180 at x4), OpenVINO on this CPU with its default threads.

--save DIR writes the quantised models as OpenVINO files <name>-int8-x<scale>.xml/.bin and records them, with
the SHA-256 of the weights they were made from, in DIR/manifest.json: `--precision int8` runs them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from common import best_time
from superres.evaluation.metrics import psnr
from superres.imaging.datasets import find_dataset, load_samples
from superres.inference.devices import native_bf16
from superres.inference.onnx import onnx_bytes
from superres.inference.openvino import openvino_core, weights_digest
from superres.models import load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def nchw(a: np.ndarray) -> np.ndarray:
    """(H, W, 3) or gray (H, W) uint8 -> (1, 3, H, W) float32; gray goes in as three equal channels, as superres
    runs it (upscaler.model_upscale_strips)."""
    a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None].astype(np.float32))


def outputs(compiled, samples) -> list[np.ndarray]:
    out = []
    for s in samples:
        sr = compiled(nchw(s.lr))[0][0].transpose(1, 2, 0)
        sr = sr.mean(axis=2) if s.lr.ndim == 2 else sr  # gray: the mean of the three outputs
        out.append(np.clip(np.floor(sr + 0.5), 0, 255).astype(np.uint8))
    return out


def mean_y_psnr(compiled, samples, scale: int) -> float:
    return float(
        np.mean([psnr(sr, s.hr, shave=scale) for sr, s in zip(outputs(compiled, samples), samples, strict=True)])
    )


def fidelity(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[int, float]:
    """The largest difference between two runs' outputs in gray levels, and the share of values off by more than 8."""
    diffs = [np.abs(x.astype(np.int16) - y.astype(np.int16)) for x, y in zip(a, b, strict=True)]
    return int(max(d.max() for d in diffs)), float(sum((d > 8).sum() for d in diffs) / sum(d.size for d in diffs))


def calibration_patches(scale: int, count: int, size: int = 64) -> list[np.ndarray]:
    """Centre LR patches of the first `count` images of T91, then BSD200."""
    patches = []
    for folder in ("T91", "BSD200"):
        dataset = find_dataset(DATA / "train" / folder)
        for sample in load_samples(dataset, scale, paths=dataset.hr_paths()[: count - len(patches)]):
            h, w = sample.lr.shape[:2]
            if min(h, w) >= size:
                patches.append(nchw(sample.lr[(h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2]))
    return patches


def save(ov, quantized, folder: Path, handle, scale: int) -> None:
    """The quantised model as folder/<name>-int8-x<scale>.xml/.bin, listed under the model's manifest entry."""
    name = f"{handle.name}-int8-x{scale}.xml"
    ov.save_model(quantized, str(folder / name), compress_to_fp16=False)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (entry,) = [e for e in manifest["models"] if e["name"] == handle.name]
    digest = weights_digest(handle)
    if entry.get("int8_digest") != digest:
        entry["int8"] = {}
    entry["int8_digest"] = digest
    entry["int8"] = {**entry.get("int8", {}), str(scale): name}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--validation", type=int, default=20)
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument(
        "--ranges",
        default="minmax",
        choices=["minmax", "nncf"],
        help="activation ranges: the calibration's "
        "min and max (default: no value the network meets is clipped), or NNCF's default estimator",
    )
    parser.add_argument("--save", type=Path, help="write the quantised models here and list them in its manifest")
    args = parser.parse_args()
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ranges = None
    if args.ranges == "minmax":
        ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    core = openvino_core()
    handle = load_model(None)
    print(f"{handle.name}; native bf16: {native_bf16()}; OpenVINO {ov.__version__}, NNCF {nncf.__version__}\n")
    print("| scale | set | bf16 - fp32 (dB) | int8 - fp32 (dB) | int8 max diff | int8 > 8 levels | bf16 ms | int8 ms "
          "| int8 speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for scale in (int(s) for s in args.scales.split(",")):
        model = ov.convert_model(io.BytesIO(onnx_bytes(handle, scale)))
        held_out = find_dataset(DATA / "train" / "BSDS500-test")
        validation = list(load_samples(held_out, scale, paths=held_out.hr_paths()[: args.validation]))
        calibration = calibration_patches(scale, args.calibration)
        quantized = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(calibration),
            nncf.Dataset(validation, lambda s: nchw(s.lr)),
            validation_fn=lambda compiled, data, scale=scale: mean_y_psnr(compiled, data, scale),
            max_drop=args.max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(calibration),
            advanced_quantization_parameters=ranges,
        )
        if args.save is not None:
            save(ov, quantized, args.save, handle, scale)
        fp32 = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        bf16 = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        int8 = core.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        x = np.random.default_rng(0).uniform(0, 255, (1, 3, 720 // scale, 1280 // scale)).astype(np.float32)
        t_bf16, t_int8 = best_time(lambda m=bf16, x=x: m(x)), best_time(lambda m=int8, x=x: m(x))
        for name in ("Set5", "Set14", "B100"):
            samples = list(load_samples(find_dataset(DATA / "benchmark" / name), scale))
            ref = mean_y_psnr(fp32, samples, scale)
            d_bf16 = mean_y_psnr(bf16, samples, scale) - ref
            d_int8 = mean_y_psnr(int8, samples, scale) - ref
            worst, share = fidelity(outputs(int8, samples), outputs(fp32, samples))
            print(
                f"| x{scale} | {name} | {d_bf16:+.3f} | {d_int8:+.3f} | {worst} | {share:.4%} | {t_bf16 * 1000:.0f} | "
                f"{t_int8 * 1000:.0f} | {t_bf16 / t_int8:.2f}x |",
                flush=True,
            )
    print("", file=sys.stderr)


if __name__ == "__main__":
    main()
