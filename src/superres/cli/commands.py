"""The commands behind `superres ...`: each takes the parsed arguments and returns an exit code.

Library errors (SuperresError) propagate to cli.main, which prints them as one line.
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from superres.errors import SuperresError, one_line

if TYPE_CHECKING:
    from superres.inference.options import UpscaleOptions

log = logging.getLogger("superres")

# The flag that sets each library parameter an error's hint names (errors.Hint): the CLI words hints with these.
FLAGS = {
    "overwrite": "--overwrite",
    "tile": "--tile",
    "max_pixels": "--max-pixels",
    "resume": "--resume RUN_FOLDER",
    "data": "--data FOLDER",
    "replace": "--replace",
    "pix_fmt": "--pix-fmt yuv444p",
}


def describe_error(error: BaseException, path: str | Path | None = None) -> str:
    """One line for the user, with any hint worded with this CLI's flags."""
    return one_line(error, path, FLAGS)


# ---------------------------------------------------------------------------------------------- inputs


def expand_inputs(inputs: list[str], videos: bool = False) -> tuple[list[Path], list[str]]:
    """Files from paths, folders (their images, and videos if asked, sorted) and glob patterns; plus one error
    per input that matched nothing."""
    from superres.imaging.datasets import list_images
    from superres.imaging.video import VIDEO_SUFFIXES

    files: list[Path] = []
    errors: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = list_images(path)
            if videos:
                found = sorted(
                    found + [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
                )
            if not found:
                errors.append(f"{path}: folder holds no images{' or videos' if videos else ''}")
            files += found
        elif path.exists():
            files.append(path)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                errors.append(f"{text}: no file matches")
            files += found
        else:
            errors.append(f"{path}: no such file")
    unique = list(dict.fromkeys(files))
    return unique, errors


def _report(errors: list[str]) -> None:
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- commands


def cmd_upscale(args: argparse.Namespace) -> int:
    from superres.api import ImageUpscaler
    from superres.inference.batch import Ranks, run_batch, share

    correct = args.correct
    if correct is not None and correct != "default":
        try:
            correct = float(correct)
        except ValueError:  # `--correct photo.png`: the flag had no value and this is an input
            args.inputs.append(correct)
            correct = "default"
    if not args.inputs:
        raise SuperresError("no input images given")
    files, errors = expand_inputs(args.inputs, videos=True)
    ranks = Ranks()
    try:
        on_cpu = args.backend in ("onnxruntime", "openvino") or str(args.model).endswith(".onnx")  # the CPU only
        runner = ImageUpscaler(upscale_options(args, correct, device=ranks.device(args.device, gpu=not on_cpu)))
        jobs, plan_errors = plan_jobs(files, args, runner.size.label())
        errors += plan_errors
        ranks.barrier()  # every process plans before any writes, so all see the same existing files
        shown = not args.quiet and sys.stderr.isatty() and ranks.rank == 0
        outcome = run_batch(
            share(jobs, ranks.rank, ranks.world),
            runner,
            overwrite=args.overwrite,
            **({} if args.max_pixels is None else {"max_pixels": args.max_pixels}),
            video=dict(codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt),
            progress=_bar("upscale", "file", shown and len(jobs) > 1),
            frame_progress=_bar("frames", "frame", shown, leave=False),
            describe=describe_error,
        )
        gathered = ranks.gather((len(outcome.done), outcome.errors))
    finally:
        ranks.close()
    done = sum(n for n, _ in gathered)
    errors += [msg for _, errs in gathered for msg in errs]
    if ranks.rank == 0:
        _report(errors)
        if not args.quiet and (files or errors):
            where = f" on {ranks.world} processes" if ranks.world > 1 else ""
            print(f"upscaled {done} of {done + len(errors)} file(s) {runner.size.label()}{where}", file=sys.stderr)
    return 1 if errors else 0


def upscale_options(args: argparse.Namespace, correct: float | str | None, device: str) -> UpscaleOptions:
    """The options `superres upscale` was given (correct: None, 'default' or a threshold)."""
    from superres.inference.correction import DEFAULT_THRESHOLD
    from superres.inference.options import UpscaleOptions

    width, height = args.size if args.size is not None else (args.width, args.height)
    return UpscaleOptions(
        scale=args.scale,
        width=width,
        height=height,
        model=args.model,
        method=args.method,
        correct=None if correct is None else (DEFAULT_THRESHOLD if correct == "default" else float(correct)),
        denoise=args.denoise,
        denoise_model=args.denoise_model,
        backend=args.backend or "auto",
        device=device,
        precision=args.precision or "auto",
        threads=args.threads or None,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        self_ensemble=args.self_ensemble,
    )


def plan_jobs(files: list[Path], args: argparse.Namespace, label: str) -> tuple[list, list[str]]:
    """Each input's output file, from -o, --suffix and --format; and one error per input that cannot be
    done (output is an input, two inputs with one output, output exists). The same on every process."""
    from superres.imaging.io import WRITE_FORMATS
    from superres.imaging.video import CONTAINERS, VIDEO_SUFFIXES, looks_like_video
    from superres.inference.batch import Job

    out_format = f".{args.out_format.lstrip('.').lower()}" if args.out_format else None
    if out_format and out_format not in WRITE_FORMATS and out_format not in CONTAINERS:
        raise SuperresError(
            f"cannot write '{out_format}'; choose from {', '.join(sorted(WRITE_FORMATS))} "
            f"for images, or {', '.join(sorted(CONTAINERS))} for videos"
        )
    writable = set(WRITE_FORMATS) | set(CONTAINERS)
    output = Path(args.output) if args.output is not None else None
    single_file = (
        output is not None
        and len(args.inputs) == 1
        and len(files) == 1
        and output.suffix.lower() in writable
        and not output.is_dir()
    )
    if output is not None and not single_file and len(files) > 1 and output.suffix.lower() in writable:
        raise SuperresError(f"-o {output} names a file, but there are {len(files)} inputs; give a folder")
    suffix = args.suffix if args.suffix is not None else ("" if output and not single_file else f"_{label}")
    inputs = {p.resolve() for p in files}
    made: dict[Path, Path] = {}  # output -> the input it is made from
    jobs, errors = [], []
    for path in files:
        video = looks_like_video(path) or path.suffix.lower() in VIDEO_SUFFIXES
        if video:  # a video keeps its container unless --format names another (image formats are for images)
            ext = (
                out_format
                if out_format in CONTAINERS
                else path.suffix.lower()
                if path.suffix.lower() in CONTAINERS
                else ".mkv"
            )
        else:
            ext = out_format if out_format in WRITE_FORMATS else path.suffix
        target = output if output is not None and single_file else (output or path.parent) / f"{path.stem}{suffix}{ext}"
        if video and target.suffix.lower() not in CONTAINERS:
            errors.append(
                f"{path}: is a video; its output {target} must be a video file ({', '.join(sorted(CONTAINERS))})"
            )
        elif not video and target.suffix.lower() not in WRITE_FORMATS:
            errors.append(f"{path}: is an image; its output {target} must be an image file")
        elif target.resolve() in inputs:
            errors.append(f"{target}: is an input; refusing to overwrite it (use another -o or --suffix)")
        elif target.resolve() in made:
            errors.append(
                f"{path}: its output {target} would also be made from {made[target.resolve()]} "
                f"(use --suffix or keep the formats apart)"
            )
        elif target.exists() and not args.overwrite:
            errors.append(f"{target}: already exists (use --overwrite to replace it)")
        else:
            made[target.resolve()] = path
            jobs.append(Job(path, target, video))
    return jobs, errors


def _bar(desc: str, unit: str, shown: bool, leave: bool = True):
    """A progress(iterable, total) for run_batch: tqdm with rate and ETA, or nothing."""

    def wrap(items, total):
        from tqdm import tqdm

        return tqdm(items, total=total or None, desc=desc, unit=unit, leave=leave, disable=not shown)

    return wrap


def cmd_degrade(args: argparse.Namespace) -> int:
    from superres.imaging.datasets import as_fraction, bicubic_lr
    from superres.imaging.degrade import image_rng, parse_preset
    from superres.imaging.files import TargetExistsError, write_bytes
    from superres.imaging.io import Picture, read_image, write_image

    files, errors = expand_inputs(args.inputs)
    s = args.scale
    n = as_fraction(s).numerator
    if s < 1:
        raise SuperresError(f"scale {s:g} would enlarge; degrade shrinks by a factor >= 1")
    if abs(float(as_fraction(s)) - s) > 1e-9:
        raise SuperresError(f"scale {s:g} is not a fraction with a denominator up to 64 (e.g. 2.5 = 5/2)")
    preset = parse_preset(args.preset)
    shown = not args.quiet and sys.stderr.isatty() and len(files) > 1
    for path in _bar("degrade", "img", shown)(files, len(files)):
        try:
            pic = read_image(path)
            if min(pic.size) < n:
                raise SuperresError(f"{path}: {pic.size[1]}x{pic.size[0]} is smaller than the scale {s:g}")
            alpha = None if pic.alpha is None else bicubic_lr(pic.alpha, s)
            if preset.is_clean:
                lr, data = bicubic_lr(pic.pixels, s), None
            else:
                if pic.pixels.dtype != np.uint8:
                    raise SuperresError(f"{path}: 16-bit; the '{preset.name}' degradation works on 8-bit images")
                hr = pic.pixels[: pic.size[0] // n * n, : pic.size[1] // n * n]
                degraded = preset.apply(hr, s, image_rng(args.seed, hr))
                lr, data = degraded.pixels, degraded.jpeg
            stem = f"{path.stem}x{s:g}"
            if data is not None and alpha is None:  # the JPEG file itself, as the degradation made it
                target = Path(args.output) / f"{stem}.jpg"
                try:
                    write_bytes(target, data, overwrite=args.overwrite)
                except TargetExistsError:
                    raise SuperresError(f"{target}: already exists (use --overwrite to replace it)") from None
                except OSError as e:
                    raise SuperresError(f"{target}: cannot be written ({e.strerror or e})") from e
            else:
                write_image(
                    Path(args.output) / f"{stem}.png", Picture(lr, alpha, pic.icc_profile), overwrite=args.overwrite
                )
        except SuperresError as e:
            errors.append(describe_error(e))
    _report(errors)
    return 1 if errors else 0


def cmd_info(args: argparse.Namespace) -> int:
    from superres.models.checkpoints import load_model
    from superres.models.summary import format_summary, summarize

    model = load_model(args.model, scale=args.scale, allow_untrained=True)
    scale = args.scale if args.scale is not None else model.scales[0]
    radius = model.receptive_radius(scale)
    tiles = f"exact tiles (radius {radius} LR pixels)" if radius is not None else "approximate tiles (no exact radius)"
    print(
        f"{args.model}: family {model.arch}; scales {', '.join(f'x{s}' for s in model.scales)}; "
        f"{model.parameter_count:,} parameters; pixels 0..{255 if model.onnx else model.pixel_range:g}; precisions "
        f"{', '.join(model.precisions)}; {tiles}"
    )
    print(f"upscale here runs it with {_default_runtime(model)}")
    title = (
        f"{model.describe()}, {model.n_colors} colour(s); at x{scale}, input {args.input_size[0]}x{args.input_size[1]}"
    )
    print(format_summary(summarize(model, args.input_size, scale), title))
    return 0


def _default_runtime(model) -> str:
    """What `upscale` with the default --backend, --device and --precision would use for this model here."""
    from superres.inference.backends import get_backend

    try:
        backend = get_backend("auto", model, "auto", "auto")
        device, precision = backend.check(model, "auto", "auto")
    except SuperresError as e:
        return f"nothing: {e}"
    said = f"backend {backend.name} on {device.type}, precision {precision} (--backend auto --precision auto)"
    if backend.name == "openvino":
        from superres.inference.openvino import int8_files

        if int8_files(model):
            said += "; --precision int8 runs its shipped quantised files"
    return said


def cmd_models(args: argparse.Namespace) -> int:
    from superres.models.user import add_user_model, data_folder, remove_user_model

    action = getattr(args, "models_action", None)
    if action == "add":
        name = add_user_model(args.file, args.name, replace=args.replace)
        print(f"added '{name}' ({data_folder()}); use it as --model {name}")
        return 0
    if action == "remove":
        remove_user_model(args.name)
        print(f"removed '{args.name}'")
        return 0
    _list_presets()
    _list_user_models()
    return _list_bundled()


def _list_user_models() -> None:
    from superres.models.checkpoints import load_model
    from superres.models.user import data_folder, user_models

    mine = user_models()
    if not mine:
        print(f"your models: none (superres models add FILE; kept in {data_folder()})\n")
        return
    print(f"{'your model':<18} {'family':>8} {'scales':>9} {'params':>11}  file")
    for name, path in mine.items():
        try:
            model = load_model(name)
        except SuperresError as e:
            print(f"{name:<18} {'?':>8} {'':>9} {'':>11}  {describe_error(e)}")
            continue
        scales = ",".join(f"x{s}" for s in model.scales)
        print(f"{name:<18} {model.arch:>8} {scales:>9} {model.parameter_count:>11,}  {path}")
    print()


def _list_presets() -> None:
    from superres.models.base import count_parameters
    from superres.models.registry import create_model, presets

    print(f"{'preset':<22} {'family':>8} {'params':>11}  architecture (single-scale families at x2)")
    for name, (family, _) in sorted(presets().items()):
        net = create_model(name)
        print(f"{name:<22} {family.name:>8} {count_parameters(net):>11,}  {net.describe()}")
    print()


def _list_bundled() -> int:
    from superres.models.checkpoints import load_model
    from superres.models.registry import PRETRAINED
    from superres.models.summary import summarize

    if not PRETRAINED:
        print("bundled models: none")
        return 0
    sets = ["Set5", "Set14", "B100"]
    print(
        f"{'bundled model':<18} {'scale':>5} {'params':>9} {'GFLOPs':>7}  "
        + " ".join(f"{s:>6}" for s in sets)
        + "   (GFLOPs for a 1280x720 output; Y-PSNR dB from the model card, weights/manifest.json)"
    )
    for entry in PRETRAINED.values():
        model = load_model(entry.name)
        for s in model.scales:
            gflops = 2 * sum(r.macs for r in summarize(model, (720 // s, 1280 // s), s)) / 1e9
            scores = (entry.psnr_y or {}).get(s, {})
            cells = " ".join(f"{scores[d]:>6.2f}" if d in scores else f"{'-':>6}" for d in sets)
            partner_of = [e.name for e in PRETRAINED.values() if e.photo == entry.name]
            note = (
                "   default"
                if entry.default
                else f"   photo model of {partner_of[0]} (--denoise)"
                if partner_of
                else f"   --denoise S blends it with {entry.photo}"
                if entry.photo
                else ""
            )
            print(f"{entry.name:<18} {'x' + str(s):>5} {model.parameter_count:>9,} {gflops:>7.1f}  {cells}{note}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from superres.evaluation.benchmark import EvalConfig, evaluate
    from superres.inference.correction import DEFAULT_THRESHOLD

    try:
        scales = [float(x) for x in args.scale.split(",") if x.strip()]
    except ValueError:
        raise SuperresError(
            f"--scale must be comma-separated factors (e.g. 2,3,4 or 1.5,2.5), got '{args.scale}'"
        ) from None
    shave = args.shave
    if shave is not None and shave != "div2k":
        try:
            shave = int(shave)
        except ValueError:
            raise SuperresError(f"--shave must be a number of pixels or 'div2k', got '{shave}'") from None
    degrade = [d.strip() for d in (args.degrade or "").split(",") if d.strip()]
    methods = args.methods or ("bicubic,model,photo,auto" if degrade else "bicubic")
    config = EvalConfig(
        datasets=args.data,
        scales=scales,
        methods=[m for m in methods.split(",") if m.strip()],
        channel=args.channel,
        shave=shave,
        precision=args.precision,
        backend=args.backend,
        threshold=DEFAULT_THRESHOLD if args.threshold is None else args.threshold,
        degrade=degrade,
        seed=args.seed,
    )

    def progress(items: Iterable, total: int, desc: str) -> Iterable:
        from tqdm import tqdm

        return tqdm(
            items, total=total, desc=desc, unit="img", leave=False, disable=args.quiet or not sys.stderr.isatty()
        )

    from superres.evaluation.report import CROP_IMAGES

    results = evaluate(config, progress=progress, keep_outputs=CROP_IMAGES if args.report else 0)
    print(results.markdown())
    if args.json_path:
        from superres.imaging.files import write_text

        write_text(args.json_path, results.to_json())
    if args.report:
        from superres.evaluation.report import write_report

        written = write_report(results, args.report)
        print(f"report: {len(written)} files in {args.report}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from superres.training.config import TrainConfig, read_config_file
    from superres.training.loop import train

    given = {k: v for k, v in vars(args).items() if k not in ("command", "verbose", "config", "resume")}
    settings: dict = {}
    resume = getattr(args, "resume", None)
    if resume:
        saved = Path(resume) / "config.json"
        if not saved.is_file():
            raise SuperresError(f"{resume}: not a run folder (no config.json)")
        try:
            settings.update(json.loads(saved.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SuperresError(
                f"{saved}: damaged ({e}); the checkpoint may still be good, but the settings "
                f"must be given again with --config"
            ) from e
        settings["out"] = str(resume)
    if getattr(args, "config", None):
        settings.update(read_config_file(args.config))
    settings.update(given)
    config = TrainConfig.from_dict(settings)
    result = train(config, resume=bool(resume))
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        best = "n/a" if result["best_psnr"] is None else f"{result['best_psnr']:.3f} dB"
        print(
            f"{'stopped' if result['interrupted'] else 'finished'} at step {result['steps']} in "
            f"{result['seconds']:.0f} s; best validation Y-PSNR {best}; run folder {result['run_dir']}"
        )
        if result["interrupted"]:
            print(f"resume with: superres train --resume {result['run_dir']}")
    return 130 if result["interrupted"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from superres.models.checkpoints import load_model, save_weights
    from superres.training.loop import run_weights

    output = Path(args.output)
    fmt = args.out_format or ("onnx" if output.suffix == ".onnx" else "safetensors")
    if output.suffix != f".{fmt}":
        raise SuperresError(f"{output}: a {fmt} export needs a .{fmt} file name")
    if fmt != "onnx" and output.exists() and not args.overwrite:  # ONNX names are checked per scale below
        raise SuperresError(f"{output}: already exists (use --overwrite to replace it)")
    source = Path(args.source)
    is_run = source.is_dir() or (source.suffix == ".pt" and _is_training_checkpoint(source))
    if is_run:
        model, meta = run_weights(source, args.weights)
    elif fmt == "onnx":
        model = load_model(args.source)
        meta = {k: v for k, v in getattr(model, "metadata", {}).items() if k not in ("arch", "config")}
    else:
        raise SuperresError(f"{source}: not a run folder or training checkpoint")
    if fmt == "onnx":
        from superres.inference.onnx import export_onnx

        # one file per scale: the given name for a single scale, <stem>-x<s>.onnx for each of several
        scales = [args.scale] if args.scale is not None else list(model.scales)
        targets = (
            [output] if len(scales) == 1 else [output.with_name(f"{output.stem}-x{s}{output.suffix}") for s in scales]
        )
        for target in targets:  # all checked before any is written
            if target.exists() and not args.overwrite:
                raise SuperresError(f"{target}: already exists (use --overwrite to replace it)")
        for scale, target in zip(scales, targets, strict=True):
            print(f"wrote {export_onnx(model, target, scale=scale, metadata=meta)}")
        return 0
    import torch

    print(f"wrote {save_weights(model, output, meta, dtype=torch.float16 if args.half else None)}")
    return 0


def _is_training_checkpoint(path: Path) -> bool:
    from superres.training.loop import read_checkpoint

    try:
        return "optimizer" in read_checkpoint(path)
    except SuperresError:
        return False


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from superres.cli.demo import PHOTOS, run_demo
    from superres.inference.backends import get_backend
    from superres.inference.devices import resolve_precision
    from superres.models.checkpoints import load_model
    from superres.models.registry import default_model_name

    if args.image not in PHOTOS:
        raise SuperresError(f"unknown image '{args.image}'; choose from {', '.join(PHOTOS)}")
    used = resolve_precision(args.precision, torch.device("cpu"))
    if args.photo:
        return _photo_demo(args, used)
    name = args.model or default_model_name(args.scale)
    model = load_model(name, scale=args.scale) if name else None
    if model is None:
        print(f"note: no bundled model for x{args.scale}; showing interpolation only (give --model FILE)")
    results = run_demo(args.output, model, args.scale, args.image, precision=args.precision)
    runtime = "" if model is None else f" with {get_backend('auto', model, 'cpu', args.precision).name}"
    print(
        f"{args.image}, shrunk x{args.scale} with MATLAB bicubic and upscaled back "
        f"(Y-PSNR, {args.scale}-px border shaved; model: {name or 'none'}, {used}{runtime} on the CPU)"
    )
    _print_results(results)
    print(f"side by side: {Path(args.output) / 'comparison.png'}")
    return 0


def _photo_demo(args: argparse.Namespace, used: str) -> int:
    from superres.cli.demo import run_photo_demo
    from superres.inference.backends import get_backend
    from superres.inference.denoise import PhotoPair

    if args.model is not None:
        raise SuperresError("--photo shows the bundled model and its photo model; it takes no --model")
    if not 1 <= args.quality <= 100:
        raise SuperresError(f"--quality must be from 1 to 100, got {args.quality}")
    pair = PhotoPair.bundled()
    if pair is None:
        raise SuperresError("the bundled default has no photo model to show")
    results, choice = run_photo_demo(args.output, pair, args.scale, args.image, args.quality, precision=args.precision)
    backend = get_backend("auto", pair.clean, "cpu", args.precision).name
    print(
        f"{args.image}, shrunk x{args.scale} with MATLAB bicubic, saved as JPEG quality {args.quality} "
        f"({Path(args.output) / 'lr.jpg'}) and upscaled back (Y-PSNR against the original, {args.scale}-px border "
        f"shaved; {used} with {backend} on the CPU)"
    )
    print(f"auto: {choice.describe()}")
    _print_results(results)
    print(f"side by side: {Path(args.output) / 'comparison.png'}")
    return 0


def _print_results(results) -> None:
    print(f"{'method':<20} {'PSNR (dB)':>9} {'SSIM':>7} {'seconds':>8}  output")
    for r in results:
        print(f"{r.method:<20} {r.psnr_y:>9.2f} {r.ssim_y:>7.4f} {r.seconds:>8.2f}  {r.path}")
