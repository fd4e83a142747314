"""Command line: a thin layer over the Python API. The only module that prints for users.

Exit codes: 0 success, 1 some inputs failed (the others were still done), 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import traceback

from superres.cli.commands import (
    cmd_degrade,
    cmd_demo,
    cmd_eval,
    cmd_export,
    cmd_info,
    cmd_models,
    cmd_train,
    cmd_upscale,
    describe_error,
)
from superres.cli.serve import add_serve_parser, cmd_serve
from superres.errors import SuperresError

log = logging.getLogger("superres")


def _positive(kind: type, what: str, example: str):
    """An argparse type: `kind` (int or float) parsed from the text, finite and > 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {example}, got '{text}'") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{what} must be > 0, got {text}")
        return value

    return parse


_factor = _positive(float, "scale", "a number such as 2 or 2.5")
_pixels = _positive(int, "a size in pixels", "a whole number")
_scale = _positive(int, "scale", "an integer (2, 3 or 4)")


def _seed(text: str) -> int:
    """An argparse type: a random seed, an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {value}")
    return value


def _wxh(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), width first."""
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 1920x1080, got '{text}'")
    return _pixels(parts[0]), _pixels(parts[1])


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 720x1280 (HxW), got '{text}'") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got '{text}'")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """The `superres` command line: global flags and one subcommand each (COMMANDS names what each runs)."""
    parser = argparse.ArgumentParser(prog="superres", description="Image super-resolution with EDSR.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_upscale(sub)
    _add_degrade(sub)
    add_serve_parser(sub)
    _add_info(sub)
    _add_models(sub)
    _add_eval(sub)
    _add_train(sub)
    _add_export(sub)
    _add_demo(sub)
    return parser


Subparsers = argparse._SubParsersAction  # what add_subparsers returns (argparse names no public type for it)


def _add_models(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list presets, bundled models and yours; add or remove yours")
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    add = actions.add_parser("add", help="register a weights file under a name that works in every command")
    add.add_argument("file", help="a .safetensors, .pt or .pth file of any family superres reads")
    add.add_argument("--name", help="the name to use (default: the file name without its extension)")
    add.add_argument("--replace", action="store_true", help="replace a model of yours that has this name")
    remove = actions.add_parser("remove", help="forget one of your models (and delete its copy)")
    remove.add_argument("name")


def _add_upscale(sub: Subparsers) -> None:
    p = sub.add_parser("upscale", help="upscale images with a model or an interpolation method")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    _add_output_size_flags(p)
    _add_model_flags(p)
    _add_device_flags(p)
    _add_output_file_flags(p)
    _add_video_flags(p)


def _add_output_size_flags(p: argparse.ArgumentParser) -> None:
    """upscale: the output's size, by a factor or in pixels (one of them)."""
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--scale",
        "-s",
        type=_factor,
        help="any factor, e.g. 2, 2.5 or 3.7 (default 2, or the model's "
        "only scale): the network's smallest scale at or above it, then a MATLAB-bicubic resize",
    )
    size.add_argument("--size", type=_wxh, metavar="WxH", help="exact output size, e.g. 1920x1080")
    size.add_argument("--width", type=_pixels, metavar="W", help="output width; the height keeps the aspect ratio")
    size.add_argument("--height", type=_pixels, metavar="H", help="output height; the width keeps the aspect ratio")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """upscale: the model or interpolation, and what is done with and around it (correction, denoising,
    self-ensemble, tiles)."""
    from superres.imaging.resize import METHODS  # noqa: PLC0415

    how = p.add_mutually_exclusive_group()
    how.add_argument("--model", "-m", help="bundled model name, preset, or weights file (.safetensors/.pt/.pth)")
    how.add_argument("--method", choices=sorted(METHODS), help="interpolation instead of a model")
    p.add_argument(
        "--correct",
        nargs="?",
        const="default",
        default=None,
        metavar="TAU",
        help="replace output values more than TAU gray levels from the bilinear upscaling by that "
        "value (the original report's correction; default TAU from the sweep)",
    )
    p.add_argument(
        "--denoise",
        default="auto",
        metavar="S|auto|auto+chain",
        help="0: the clean model, 1: its photo model (JPEG and noise removed), between: the two blended; "
        "auto (default): from each file's JPEG quality and noise level (--verbose says what it chose); "
        "auto+chain: auto, and the strongest setting for pictures that read as many times degraded "
        "(Real-ESRGAN's chain: old, reprocessed pictures; it misreads a stained-tissue micrograph). "
        "With --scale 1 (or a smaller size) and a strength above 0, restores without enlarging",
    )
    p.add_argument(
        "--denoise-model",
        metavar="FILE|NAME",
        help="the model at --denoise 1 for a --model of yours (the same architecture: e.g. Real-ESRGAN's "
        "realesr-general-x4v3 and its wdn twin); --denoise S blends the two",
    )
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (EDSR+; 8x slower)")
    p.add_argument(
        "--tile", type=int, help="LR tile side in pixels (0: no tiling; default: from image size and memory)"
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        help="LR margin per tile (default and minimum: the receptive radius; for a model without an exact one, 32, "
        "and tiles blended across their edges)",
    )


def _add_device_flags(p: argparse.ArgumentParser) -> None:
    """upscale: where and how the network runs."""
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="auto: CUDA, else Apple's MPS, else the CPU",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        default="auto",
        help="auto (default): fp16 on a GPU, bf16 on a CPU with native bf16 (AMX, AVX512-BF16), else fp32; int8: "
        "mdsr-medium quantised (--model mdsr-medium), with OpenVINO on a CPU (1.3-1.6x bf16's speed, up to 0.04 dB "
        "less); the default, mspan, does not quantise within 0.02 dB",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnxruntime", "openvino"],
        help="auto (default): torch, or onnxruntime for an .onnx file; openvino: OpenVINO on the CPU (its extra)",
    )
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")


def _add_output_file_flags(p: argparse.ArgumentParser) -> None:
    """upscale: where the outputs go and in what format; the input limit and the progress bar."""
    p.add_argument("-o", "--output", help="output file (one input) or folder (default: beside each input)")
    p.add_argument("--suffix", default=None, help="added to output names (default: _x<scale>, or none with -o FOLDER)")
    p.add_argument("--format", dest="out_format", help="output extension, e.g. png (default: the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=None, help="largest input accepted, in pixels (default 200M)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _add_video_flags(p: argparse.ArgumentParser) -> None:
    v = p.add_argument_group("video (inputs are videos by their content; needs superres[video])")
    v.add_argument("--codec", default=None, help="video encoder: h264 (default, libx264), hevc, vp9, av1, ffv1, ...")
    v.add_argument(
        "--crf", type=int, default=None, help="constant quality for x264/x265/VP9/AV1 (default 18; lower is better)"
    )
    v.add_argument(
        "--pix-fmt",
        default=None,
        help="output pixel format (default: the input's where the encoder takes it, else yuv420p)",
    )


def _add_degrade(sub: Subparsers) -> None:
    p = sub.add_parser(
        "degrade",
        help="make LR images from HR ones: the MATLAB bicubic (EDSR benchmark naming), "
        "or with JPEG, noise, blur or the real-photo chain",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--scale", "-s", type=_factor, required=True, help="shrink factor: 2, 3, 4, 1.5, ... or 1 (none)")
    p.add_argument(
        "--preset",
        default="bicubic",
        help="bicubic (default), jpeg:Q, noise:SIGMA, blur:SIGMA, several "
        "joined by '+' (e.g. blur:1+noise:5+jpeg:70), real (Real-ESRGAN's random chain), photo, web, camera, "
        "lens, files (what people's files carry) or a mixture mix:NAME=W,...",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random choices come from the seed and each image (default 0)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder; writes <stem>x<scale>.png, or .jpg where the last step is a JPEG save",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")


def _add_info(sub: Subparsers) -> None:
    p = sub.add_parser("info", help="the layers of a model: output shapes, parameters, multiply-adds")
    p.add_argument("model", help="bundled model name, preset, or weights file")
    p.add_argument("--scale", "-s", type=_scale, default=None, help="scale for a preset (default 2)")
    p.add_argument(
        "--input-size", type=_size, default=(100, 100), metavar="HxW", help="LR input size (default 100x100)"
    )


def _add_eval(sub: Subparsers) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM of methods on benchmark sets (the field's protocol)")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="DIR",
        help="EDSR benchmark layout (HR/ + LR_bicubic/), DIV2K layout, or a folder of HR images",
    )
    p.add_argument(
        "--scale", default="2,3,4", help="comma-separated factors, any > 1 (default 2,3,4; e.g. 1.5,2.5,3.5)"
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "auto", "bf16", "fp16", "int8"],
        default="fp32",
        help="fp32 (default: numbers that do not depend on the CPU), or auto as upscale runs",
    )
    p.add_argument(
        "--backend",
        choices=["torch", "auto", "onnxruntime", "openvino"],
        default="torch",
        help="torch (default: the reference), or auto (with --precision auto) to score what upscale runs",
    )
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated: bicubic, bilinear, nearest, lanczos, "
        "model (bundled default), a model name or weights path, and any of those + '+correct'; photo "
        "(its photo model), denoise=S (the two blended), auto and auto+chain (as upscale's --denoise). Default: "
        "bicubic, or with --degrade: bicubic,model,photo,auto",
    )
    p.add_argument(
        "--degrade",
        default=None,
        metavar="PRESETS",
        help="comma-separated degradations of the HR, each scored against the clean HR: clean, "
        "jpeg:Q, noise:SIGMA, blur:SIGMA, real, ... (see `superres degrade`); --scale 1 restores "
        "without enlarging",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, help="the degradations' random choices: from the seed and each image"
    )
    p.add_argument(
        "--channel",
        choices=["y", "rgb", "y,rgb"],
        default="y",
        metavar="y|rgb|y,rgb",  # the choices' own list would read {y,rgb,y,rgb}
        help="score Y (BT.601 luma, the default), RGB, or both",
    )
    p.add_argument(
        "--shave",
        default=None,
        help="border pixels cut before scoring: a number, or 'div2k' (scale + 6); default: the scale",
    )
    p.add_argument("--threshold", type=float, default=None, help="correction threshold for MODEL+correct (gray levels)")
    p.add_argument("--json", dest="json_path", help="write results as JSON")
    p.add_argument("--report", help="folder for results.md/csv/json, per-image plots and crop comparisons")
    p.add_argument("--quiet", "-q", action="store_true")


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train an EDSR on folders of HR images (torchrun for several processes)",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="TOML, YAML or JSON file of settings; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (its config, flags override)")
    add_train_flags(p)


def _add_export(sub: Subparsers) -> None:
    p = sub.add_parser("export", help="write a run's weights as .safetensors with their config and metadata")
    p.add_argument("source", help="run folder or training checkpoint (.pt); for ONNX also any model name or file")
    p.add_argument("-o", "--output", required=True, help="output file (.safetensors, or .onnx)")
    p.add_argument(
        "--format",
        dest="out_format",
        choices=["safetensors", "onnx"],
        default=None,
        help="default: from the output's extension",
    )
    p.add_argument(
        "--weights",
        choices=["best", "last"],
        default="best",
        help="best validation score (default) or the latest weights (EMA when present)",
    )
    p.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    p.add_argument(
        "--scale",
        "-s",
        type=_scale,
        help="ONNX: the one scale to export (default: every scale of the "
        "network, one file each, named <stem>-x<scale>.onnx where there are several)",
    )
    p.add_argument("--overwrite", action="store_true")


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="shrink a bundled photo, upscale it back, print PSNR, write a comparison")
    p.add_argument("-o", "--output", default="demo-output", help="folder for the images (default demo-output)")
    p.add_argument("--model", "-m", help="model name or weights file (default: the bundled model for the scale)")
    p.add_argument("--scale", "-s", type=_scale, default=2)
    p.add_argument("--image", default="astronaut", help="scikit-image photo: astronaut, coffee, chelsea, rocket")
    p.add_argument(
        "--photo",
        action="store_true",
        help="a real-photo case: the shrunk image saved as a JPEG of "
        "--quality, upscaled by bicubic, the clean model and --denoise auto",
    )
    p.add_argument("--quality", type=int, default=70, help="JPEG quality for --photo (default 70)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto (default, as upscale): bf16 on a CPU with native bf16, else fp32",
    )


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults live in TrainConfig, so only given flags override."""
    _add_train_model_flags(p)
    _add_train_patch_flags(p)
    _add_train_run_flags(p)


def _add_train_model_flags(p: argparse.ArgumentParser) -> None:
    """train: the data, the architecture and the optimisation."""
    p.add_argument("--data", nargs="+", metavar="DIR", help="folders of HR images, or EDSR/DIV2K layouts")
    p.add_argument(
        "--train-only", nargs="+", metavar="DIR", help="more folders for training only (never held out by --holdout)"
    )
    p.add_argument("--scale", help="factor, or several for one multi-scale network (mdsr, mspan), e.g. 2,3,4")
    p.add_argument(
        "--scale-weights", metavar="W,...", help="chance of each scale's batches, e.g. 0.5,0.2,0.3 (default: equal)"
    )
    p.add_argument("--preset", help="architecture preset (default edsr-baseline)")
    p.add_argument("--n-feats", type=int)
    p.add_argument("--n-resblocks", type=int)
    p.add_argument("--res-scale", type=float)
    p.add_argument("--n-colors", type=int, choices=[1, 3])
    p.add_argument("--iters", type=int, help="training steps (default 300000)")
    p.add_argument("--batch-size", type=int, help="patches per step and process (default 16)")
    p.add_argument("--patch-size", type=int, help="LR patch side (default 48)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    p.add_argument("--schedule", choices=["step", "cosine"], help="step: halve every --lr-step (default); cosine")
    p.add_argument("--lr-step", type=int)
    p.add_argument("--lr-gamma", type=float)
    p.add_argument("--warmup-iters", type=int)
    p.add_argument("--min-lr", type=float)
    p.add_argument("--loss", choices=["l1", "l2"])
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--ema", type=float, help="EMA decay of the weights, e.g. 0.999")


def _add_train_patch_flags(p: argparse.ArgumentParser) -> None:
    """train: how the training patches are augmented and degraded."""
    p.add_argument("--flips", action=argparse.BooleanOptionalAction, help="the 8 flips/rotations (default on)")
    p.add_argument("--brightness", type=float, help="random brightness factor in [1-B, 1+B] (default off)")
    p.add_argument(
        "--rgb-permute", type=float, metavar="P", help="chance of shuffling a patch's RGB channels (default 0)"
    )
    p.add_argument(
        "--degradation",
        metavar="PRESET",
        help="how LR patches are made: bicubic (default), files, web, camera, lens, real, photo, jpeg:Q, "
        "noise:SIGMA, mix:NAME=W,...",
    )
    p.add_argument(
        "--cutblur",
        type=float,
        metavar="P",
        help="chance that a rectangle of a degraded patch is swapped with the clean LR (default 0)",
    )


def _add_train_run_flags(p: argparse.ArgumentParser) -> None:
    """train: validation, the run folder, the starting weights and how the run computes."""
    p.add_argument("--val", nargs="+", metavar="DIR", help="validation sets (benchmark layout or HR folder)")
    p.add_argument("--holdout", type=int, help="training images held out for validation")
    p.add_argument("--val-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--out", metavar="RUN_DIR")
    p.add_argument(
        "--init",
        nargs="+",
        metavar="WEIGHTS",
        help="start from these weights, all that fits: shared parts from the first file, each scale's "
        "upsampler from the first file with that scale (e.g. an EDSR x2 file for x3/x4 or MDSR)",
    )
    p.add_argument("--frozen", metavar="REGEX", help="parameters whose names match are not trained, e.g. '^block_'")
    p.add_argument(
        "--teacher",
        nargs="+",
        metavar="WEIGHTS",
        help="distillation: any models superres loads; at each scale the mean output of those that have it is the "
        "target (mixed with the HR by --teacher-weight)",
    )
    p.add_argument("--teacher-weight", type=float, help="weight of the teachers' target against the HR (default 1)")
    p.add_argument(
        "--teacher-flips",
        action=argparse.BooleanOptionalAction,
        help="average each teacher over the 8 flips and rotations (8x its cost; default off)",
    )
    p.add_argument(
        "--teacher-per-batch",
        action=argparse.BooleanOptionalAction,
        help="run the teachers on each batch of patches instead of once on each whole training image (default)",
    )
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bf16 autocast (default on)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the model")
    p.add_argument("--prefetch", type=int, help="batches prepared ahead in a thread (default 2)")
    p.add_argument(
        "--data-on-device",
        action=argparse.BooleanOptionalAction,
        help="keep training images on the device and cut patches there (default: on a GPU)",
    )
    p.add_argument("--threads", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{rank}%(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    previous = _stop_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except SuperresError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {describe_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM stops a command as Ctrl-C does, so half-written temporary files are removed on the way out
    (training installs its own handler, which checkpoints first). Returns the handler it replaced."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


COMMANDS = {
    "upscale": cmd_upscale,
    "degrade": cmd_degrade,
    "info": cmd_info,
    "models": cmd_models,
    "demo": cmd_demo,
    "eval": cmd_eval,
    "train": cmd_train,
    "export": cmd_export,
    "serve": cmd_serve,
}
