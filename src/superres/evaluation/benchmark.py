"""Benchmark evaluation on the SR protocol: datasets in EDSR, DIV2K or plain-folder layout, methods
(interpolations, models, model + correction), per-image and mean PSNR/SSIM.

    results = evaluate(EvalConfig(datasets=["Set5"], scales=[2], methods=["bicubic", "model"]))
    print(results.markdown())
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from superres.errors import ConfigError, SuperresError
from superres.evaluation.metrics import psnr, ssim
from superres.imaging.datasets import Sample, as_fraction, find_dataset, load_samples
from superres.imaging.degrade import Preset, image_rng, parse_preset
from superres.imaging.io import Picture
from superres.imaging.quality import jpeg_file_quality
from superres.imaging.resize import METHODS, imresize, output_shape_for
from superres.inference.correction import DEFAULT_THRESHOLD, correct
from superres.inference.denoise import AUTOS, PhotoPair, parse_denoise
from superres.inference.sizes import network_scale
from superres.inference.upscaler import Upscaler, upscale_picture
from superres.models.handle import ModelHandle
from superres.models.registry import default_model_name, default_scales, photo_partner

log = logging.getLogger(__name__)
SUFFIXES = ("+correct", "+ensemble")  # model + the correction; model with the 8-transform self-ensemble


# ---------------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Method:
    """What produces an output: an interpolation, or a model (optionally followed by the correction)."""

    label: str  # as given, e.g. "bicubic", "model+correct", "runs/x2/best.safetensors", "auto"
    interpolation: str | None = None
    model: str | None = None  # "model" = the bundled default for each scale, else a name or path
    correct: bool = False
    ensemble: bool = False
    # the bundled default blended with its photo model: a strength (photo = 1, denoise=S) or "auto"
    denoise: float | str | None = None

    @classmethod
    def parse(cls, text: str) -> Method:
        text = text.strip()
        if not text:
            raise ConfigError("empty method name")
        if text in METHODS:
            return cls(text, interpolation=text)
        if text in ("photo", *AUTOS) or text.startswith("denoise="):
            value = 1.0 if text == "photo" else text if text in AUTOS else text[len("denoise=") :]
            return cls(text, model="model", denoise=parse_denoise(value))
        base, found = text, set()
        while base.endswith(SUFFIXES):
            suffix = next(s for s in SUFFIXES if base.endswith(s))
            found.add(suffix)
            base = base[: -len(suffix)]
        if not base:
            raise ConfigError(f"method '{text}' names no model")
        return cls(text, model=base, correct="+correct" in found, ensemble="+ensemble" in found)


class ModelCache:
    """Loads each model once and says which of its scales to run for a factor (None: skip the model there).

    An integer factor needs a network trained for it (the protocol compares like with like); any other
    factor runs the network's smallest scale at or above it (else its largest) and resizes, as `upscale`."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._models: dict[str, ModelHandle | None] = {}
        self._pair: PhotoPair | None = None

    def pair(self) -> PhotoPair:
        """The bundled default and its photo model (for photo, auto and denoise=S). The clean end is the
        cached default itself, so `model` and a strength of 0 share one network and its outputs."""
        if self._pair is None:
            from superres.models.checkpoints import load_model

            name = default_model_name()
            partner = photo_partner(name)
            if name is None or partner is None:
                raise ConfigError("the bundled default has no photo model: photo, auto and denoise=S cannot run")
            clean = self._models.get(name)
            if clean is None:
                clean = self._models[name] = load_model(name).to(self.device)
            self._pair = PhotoPair(clean, load_model(partner).to(self.device))
        return self._pair

    def get(self, spec: str, factor: float) -> tuple[ModelHandle, int] | None:
        from superres.models.checkpoints import load_model

        if spec == "model":  # the bundled default that has the scale this factor runs at
            scales = default_scales()
            spec = (default_model_name(network_scale(scales, factor)) if scales else None) or "model"
        if spec not in self._models:
            model = None if spec == "model" else load_model(spec)
            if model is not None and model.onnx is None:  # an ONNX export runs where onnxruntime does: the CPU
                model.to(self.device)
            self._models[spec] = model
        model = self._models[spec]
        if model is None:
            log.warning("no bundled model for x%g; skipping 'model' there", factor)
            return None
        if factor == int(factor) and factor > 1:
            if int(factor) not in model.scales:
                log.warning("%s upscales x%s; skipping it at x%g", spec, ", x".join(map(str, model.scales)), factor)
                return None
            return model, int(factor)
        return model, network_scale(model.scales, factor)


def run_method(
    method: Method,
    lr: np.ndarray,
    factor: float,
    model: tuple[ModelHandle, int] | None,
    threshold: float = DEFAULT_THRESHOLD,
    cache: dict | None = None,
    precision: str = "fp32",
    backend: str = "torch",
) -> tuple[np.ndarray, float]:
    """The output of one method on one LR image (same dtype as the input) and the seconds it takes.

    `model` is (network, the scale to run it at); where that scale is not `factor`, the output is
    resized to the size of imresize(lr, factor) with the MATLAB bicubic (after the correction, which
    works at the network's scale). `cache` (one dict per LR image) keeps each network output and its
    time, so MODEL and MODEL+correct run the network once and both report its time."""
    t0 = time.perf_counter()
    if method.interpolation:
        return imresize(lr, factor, method=method.interpolation), time.perf_counter() - t0
    assert model is not None, "a model method comes with its network"
    net, scale = model
    key = (id(net), scale, method.ensemble)
    if cache is None or key not in cache:
        runner = Upscaler(
            net, scale, device=str(net.device), precision=precision, self_ensemble=method.ensemble, backend=backend
        )
        sr = upscale_picture(Picture(lr), scale, model=runner).pixels
        net_seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        if cache is not None:
            cache[key] = (sr, net_seconds)
    else:
        sr, net_seconds = cache[key]
    if method.correct:
        sr = correct(sr, threshold=threshold, lr=lr)
    if factor != scale:
        sr = imresize(sr, output_shape=output_shape_for(lr.shape[:2], factor))
    return sr, net_seconds + time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- running


@dataclass
class EvalConfig:
    datasets: list[str]
    scales: list[float] = field(default_factory=lambda: [2, 3, 4])  # any factors > 1, e.g. 1.5, 2.5
    methods: list[str] = field(default_factory=lambda: ["bicubic"])
    channel: str = "y"  # "y", "rgb", or both: "y,rgb" (each output is scored on each)
    shave: int | str | None = None  # None: the scale; "div2k": scale + 6; or a number of pixels
    threshold: float = DEFAULT_THRESHOLD  # for MODEL+correct
    device: str = "auto"  # where models run: auto (a GPU when there is one), cpu, cuda
    precision: str = "fp32"  # fp32 gives numbers that do not depend on the CPU; "auto" as `upscale` runs
    backend: str = "torch"  # PyTorch: the reference; "auto" (with precision "auto") scores what `upscale` runs
    degrade: list[str] = field(default_factory=list)  # degradations of the HR (imaging.degrade presets) instead
    seed: int = 0  # of the ready bicubic LR; their random choices come from (seed, image)

    @property
    def channels(self) -> list[str]:
        return [c.strip() for c in self.channel.split(",") if c.strip()]

    def shave_for(self, scale: float) -> int:
        if self.shave is None:
            return math.ceil(scale)
        if self.shave == "div2k":
            return math.ceil(scale) + 6
        return int(self.shave)

    def validate(self) -> None:
        if not self.channels or any(c not in ("y", "rgb") for c in self.channels):
            raise ConfigError(f"channel must be 'y', 'rgb' or 'y,rgb', got '{self.channel}'")
        if not self.datasets:
            raise ConfigError("give at least one dataset folder")
        for d in self.degrade:
            parse_preset(d)
        for s in self.scales:
            if s == 1 and self.degrade:
                continue  # restoration at the same size: the degraded image itself is the baseline
            if not (isinstance(s, (int, float)) and math.isfinite(s) and 1 < s <= 16):
                raise ConfigError(f"scale must be a factor in (1, 16] (or 1 with degradations), got {s}")
            if abs(float(as_fraction(s)) - s) > 1e-9:  # LR x factor must land on whole HR pixels
                raise ConfigError(
                    f"scale {s} is not a fraction with a denominator up to 64 (e.g. 2.5 = 5/2, "
                    f"2.25 = 9/4); the protocol needs LR x scale to be a whole number of HR pixels"
                )
        self.scales = [int(s) if s == int(s) else float(s) for s in self.scales]
        if self.precision not in ("fp32", "auto", "bf16", "fp16", "int8"):
            raise ConfigError(f"precision must be fp32, auto, bf16, fp16 or int8, got '{self.precision}'")
        if self.backend not in ("auto", "torch", "onnxruntime", "openvino"):
            raise ConfigError(f"backend must be auto, torch, onnxruntime or openvino, got '{self.backend}'")
        if not (self.shave is None or self.shave == "div2k" or (isinstance(self.shave, int) and self.shave >= 0)):
            raise ConfigError(f"shave must be a number of pixels >= 0 or 'div2k', got {self.shave!r}")


@dataclass
class EvalResults:
    results: list[dict] = field(default_factory=list)
    per_image: list[dict] = field(default_factory=list)
    # outputs kept for the report's crops: (dataset, scale) -> one dict per image: name, hr, {method: sr}
    outputs: dict[tuple, list[dict]] = field(default_factory=dict, repr=False)  # key: (dataset, scale[, degradation])

    def to_json(self) -> str:
        return json.dumps({"results": self.results, "per_image": self.per_image}, indent=2)

    def markdown(self) -> str:
        """Per channel: methods as rows, dataset x scale as columns, 'PSNR / SSIM' in each cell."""
        if any("degradation" in r for r in self.results):
            return self._markdown_by_degradation()
        blocks = []
        for channel in dict.fromkeys(r["channel"] for r in self.results):
            rows = [r for r in self.results if r["channel"] == channel]
            columns = list(dict.fromkeys((r["dataset"], r["scale"]) for r in rows))
            methods = list(dict.fromkeys(r["method"] for r in rows))
            cell = {(r["method"], r["dataset"], r["scale"]): f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in rows}
            lines = [
                "| method | " + " | ".join(f"{d} x{s}" for d, s in columns) + " |",
                "|" + "---|" * (len(columns) + 1),
            ]
            for m in methods:
                lines.append(f"| {m} | " + " | ".join(cell.get((m, d, s), "-") for d, s in columns) + " |")
            shaves = ", ".join(sorted({f"{x['shave']} px at x{x['scale']}" for x in rows}))
            lines.append(f"\nPSNR (dB) / SSIM on {'Y (BT.601)' if channel == 'y' else 'RGB'}, border shaved: {shaves}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def _markdown_by_degradation(self) -> str:
        """Per channel, dataset and scale: degradations as rows, methods as columns, 'PSNR / SSIM' in each cell."""
        blocks = []
        for channel, dataset, scale in dict.fromkeys((r["channel"], r["dataset"], r["scale"]) for r in self.results):
            rows = [r for r in self.results if (r["channel"], r["dataset"], r["scale"]) == (channel, dataset, scale)]
            methods = list(dict.fromkeys(r["method"] for r in rows))
            cell = {(r["degradation"], r["method"]): f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in rows}
            lines = [
                f"{dataset} x{scale:g}" + (" (bicubic at x1 is the degraded input itself)" if scale == 1 else ""),
                "",
                "| input | " + " | ".join(methods) + " |",
                "|" + "---|" * (len(methods) + 1),
            ]
            for d in dict.fromkeys(r["degradation"] for r in rows):
                lines.append(f"| {d} | " + " | ".join(cell.get((d, m), "-") for m in methods) + " |")
            lines.append(
                f"\nPSNR (dB) / SSIM on {'Y (BT.601)' if channel == 'y' else 'RGB'} against the clean HR, "
                f"border shaved: {rows[0]['shave']} px"
            )
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)


def evaluate(
    config: EvalConfig, progress: Callable[[Iterable, int, str], Iterable] | None = None, keep_outputs: int = 0
) -> EvalResults:
    """Score every method on every dataset, scale and degradation. `progress(iterable, total, description)`
    may wrap loops. The outputs of the first `keep_outputs` images of each group are kept (for the report)."""
    config.validate()
    methods = [Method.parse(m) for m in config.methods]
    datasets = [find_dataset(d) for d in config.datasets]
    models = ModelCache(
        "cuda"
        if config.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if config.device == "auto"
        else config.device
    )
    presets = [parse_preset(d) for d in config.degrade] or [None]
    out = EvalResults()
    for dataset in datasets:
        for scale in config.scales:
            shave = config.shave_for(scale)
            active = [(m, models.get(m.model, scale) if m.model else None) for m in methods]
            active = [(m, model) for m, model in active if m.interpolation or model is not None]
            samples = None
            for preset in presets:
                if scale == 1 and (preset is None or preset.is_clean):
                    log.warning("skipping the clean input at x1: it is the HR itself")
                    continue
                if samples is None:  # non-integer factors: HR cut to whole LR pixels, LR made
                    samples = list(load_samples(dataset, scale)) if len(presets) > 1 else load_samples(dataset, scale)
                group = (dataset.name, scale) if preset is None else (dataset.name, scale, preset.name)
                images = samples
                if progress is not None:
                    images = progress(samples, len(dataset.hr_paths()), " ".join(f"{g}" for g in group))
                _score_group(config, group, images, active, models, preset, shave, out, keep_outputs)
    if not out.results:
        raise SuperresError("nothing was evaluated (no method applies to the given scales)")
    return out


def _degraded_lr(
    config: EvalConfig, sample: Sample, scale: int, preset: Preset | None
) -> tuple[np.ndarray, int | None]:
    """The LR a method sees for a sample, and its JPEG quality where the degradation saved it as a JPEG."""
    if preset is None or preset.is_clean:
        return sample.lr, None
    degraded = preset.apply(sample.hr, scale, image_rng(config.seed, sample.hr))
    return degraded.pixels, None if degraded.jpeg is None else jpeg_file_quality(degraded.jpeg)


def _with_strength(method: Method, model, lr: np.ndarray, quality: int | None, models: ModelCache):
    """For a denoise method: the blended network at the strength it uses on this LR, and that strength."""
    if method.denoise is None:
        return model, {}
    pair = models.pair()
    choice = pair.choose(Picture(lr, jpeg_quality=quality), method.denoise)
    found: dict = {"denoise": choice.strength}
    if choice.condition is not None:
        found["damage"] = list(choice.condition)
    return (pair.at(choice.setting), model[1]), found


def _score_group(
    config: EvalConfig,
    group: tuple,
    samples: Iterable[Sample],
    active: list,
    models: ModelCache,
    preset: Preset | None,
    shave: int,
    out: EvalResults,
    keep_outputs: int,
) -> None:
    """Every method on the samples of one dataset, scale and degradation (preset None: the bicubic LR as given)."""
    dataset, scale = group[0], group[1]
    tag = {} if preset is None else {"degradation": preset.name}
    scores: dict[tuple[str, str], list[tuple[float, float, float]]] = {
        (m.label, c): [] for m, _ in active for c in config.channels
    }
    kept = out.outputs.setdefault(group, [])
    for i, sample in enumerate(samples):
        lr, quality = _degraded_lr(config, sample, scale, preset)
        outputs: dict = {}  # model outputs of this image, shared by MODEL and MODEL+correct
        if i < keep_outputs:
            kept.append({"name": sample.name, "hr": sample.hr, "methods": {}})
        for method, model in active:
            model, extra = _with_strength(method, model, lr, quality, models)
            sr, seconds = run_method(
                method, lr, scale, model, config.threshold, outputs, config.precision, config.backend
            )
            if i < keep_outputs:
                kept[-1]["methods"][method.label] = sr
            for channel in config.channels:
                p = psnr(sr, sample.hr, shave=shave, channel=channel)
                s = ssim(sr, sample.hr, shave=shave, channel=channel)
                scores[(method.label, channel)].append((p, s, seconds))
                row = {"dataset": dataset, "scale": scale, **tag, "method": method.label, "channel": channel}
                out.per_image.append({**row, "image": sample.name, "psnr": round(p, 4), "ssim": round(s, 5), **extra})
    _summarise(scores, dataset, scale, tag, shave, out)


def _summarise(scores: dict, dataset: str, scale: int, tag: dict, shave: int, out: EvalResults) -> None:
    """One result row per method and channel: the means over the group's images."""
    for (label, channel), rows in scores.items():
        if not rows:
            continue
        arr = np.array(rows)
        out.results.append(
            {
                "dataset": dataset,
                "scale": scale,
                **tag,
                "method": label,
                "channel": channel,
                "shave": shave,
                "psnr": round(float(arr[:, 0].mean()), 4),
                "ssim": round(float(arr[:, 1].mean()), 5),
                "images": len(rows),
                "seconds_per_image": round(float(arr[:, 2].mean()), 4),
            }
        )
