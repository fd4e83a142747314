"""Write the model cards: src/superres/weights/MODELS.md, and the measured Y-PSNR in weights/manifest.json.

Reads the manifest, each weights file (config, metadata), each training run folder (config.json,
log.csv: steps and wall time) and the `superres eval --json` results (Y and RGB) in docs/results/eval.json and
docs/results/previous.json (benchmarks/eval_bundled.sh). Nothing is typed in by hand but the manifest's
descriptions. The manifest's `psnr_y` of each model (Y-PSNR on Set5, Set14 and B100 at each of its scales,
which `superres models` prints) comes from the same results.

    python benchmarks/model_cards.py --runs mdsr-medium=runs/mdsr --configs mdsr-medium=configs/mdsr-medium.toml
    python benchmarks/model_cards.py --runs mspan=/work/runs/mspan-p1,/work/runs/mspan-p2 \\
        --configs mspan=configs/mspan-tails.toml,configs/mspan.toml   # a model trained in stages
    python benchmarks/model_cards.py --runs mspan-photo=kept,/work/runs/mspan-photo-x2 \\
        --configs mspan-photo=,configs/mspan-photo-x2.toml   # a new stage after the card's earlier ones
    python benchmarks/model_cards.py --manifest-only   # psnr_y alone (MODELS.md needs the training runs)

A model whose run is not given keeps the training part of its card from the MODELS.md already there (its run
folder may be gone, as runs live outside the tree): from its first "- Inputs" or "- Training" line to the end
of its last settings block, every stage of a model trained in stages (the results table is made anew).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import sys
from pathlib import Path

from common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src/superres/weights"
RESULTS = ROOT / "docs/results/eval.json"
SETS = ("Set5", "Set14", "B100")
KEPT = "kept"  # in --runs NAME=kept,RUN: the earlier stages as the card has them, then RUN as the next stage


def psnr_y(results: list[dict], name: str, default: bool, scales: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """{scale: {set: Y-PSNR dB}} of a model (its name, or 'model' for the default) at its own scales, to 2
    decimals as published; scales without results left out."""
    methods = {name, "model"} if default else {name}
    out = {}
    for s in scales:
        scores = {
            r["dataset"]: round(r["psnr"], 2)
            for r in results
            if r["method"] in methods and r["scale"] == s and r["channel"] == "y" and r["dataset"] in SETS
        }
        if scores:
            out[str(s)] = {d: scores[d] for d in SETS if d in scores}
    return out


def write_manifest(results: list[dict]) -> None:
    """Set (or drop, where the results hold none) each model's psnr_y in weights/manifest.json."""
    path = WEIGHTS / "manifest.json"
    manifest = json.loads(path.read_text())
    for e in manifest["models"]:
        e.pop("psnr_y", None)
        card = psnr_y(results, e["name"], e.get("default", False), tuple(e["scales"]))
        if card:
            e["psnr_y"] = card
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


def run_facts(run: Path) -> dict:
    """Steps, wall time and best held-out score from a run folder's log.csv and config.json."""
    rows = list(csv.reader((run / "log.csv").open()))
    if rows and rows[0][0] == "step":  # step, loss, lr, steps_per_s, elapsed_s, val_psnr_y[, val_by_scale]
        data = rows[1:]
        steps = int(data[-1][0])
        # elapsed_s restarts at 0 when a run is resumed: add up the segments
        elapsed = [float(r[4]) for r in data]
        seconds = sum(a for a, b in itertools.pairwise(elapsed) if b < a) + elapsed[-1]
        vals = [float(r[5]) for r in data if r[5]]
    else:  # first runs: step, loss, lr, val_psnr_y, elapsed_s
        steps, seconds = int(rows[-1][0]), float(rows[-1][4])
        vals = [float(r[3]) for r in rows]
    config = json.loads((run / "config.json").read_text())
    last_lr = float((data if rows and rows[0][0] == "step" else rows)[-1][2])
    return {
        "steps": steps,
        "seconds": seconds,
        "best_val": max(vals) if vals else None,
        "config": config,
        "last_lr": last_lr,
    }


def kept_training_lines(name: str) -> list[str]:
    """The training part of a model's card in the MODELS.md there is: from its first '- Inputs' or '- Training'
    line (one stage's '- Training:', or 'Training, stage 1 of 3:') to the end of its last settings block (or of
    its bullets), every stage of a model trained in stages, or [] where the card has none."""
    path = WEIGHTS / "MODELS.md"
    if not path.exists():
        return []
    section: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            if section:
                break
            section = [line] if line[3:].split(" (")[0] == name else []
        elif section:
            section.append(line)
    starts = [i for i, line in enumerate(section) if line.startswith(("- Inputs", "- Training"))]
    if not starts:
        return []
    lines = section[starts[0] :]
    end, i = 0, 0
    while i < len(lines):  # bullets and each stage's settings block, blank lines between them; the table ends it
        if lines[i] == "```json":
            if "```" not in lines[i + 1 :]:
                raise SystemExit(f"MODELS.md, card {name}: a settings block is not closed")
            i = end = lines.index("```", i + 1) + 1
        elif lines[i].startswith("- "):
            i = end = i + 1
        elif lines[i] == "" and lines[i + 1 : i + 2] and lines[i + 1].startswith(("- ", "```json")):
            i += 1
        else:
            break
    return lines[:end]


def renumbered(line: str, total: int) -> str:
    """A kept card line with its stage label ('Training, stage 1 of 2', 'Inputs, stage 2') counted out of
    `total` stages; a kept single-stage card's '- Training:' and '- Inputs:' become stage 1's."""
    line = re.sub(r"^- Training, stage (\d+) of \d+:", rf"- Training, stage \1 of {total}:", line)
    line = re.sub(r"^- Training:", f"- Training, stage 1 of {total}:", line)
    return re.sub(r"^- Inputs:", "- Inputs, stage 1:", line)


def teacher_lines(cfg: dict) -> list[str]:
    """Which teachers a distilled run had, with each one's licence from ../shared/models/MANIFEST.tsv."""
    if not cfg.get("teacher"):
        return []
    licences = {}
    manifest = ROOT.parent / "shared" / "models" / "MANIFEST.tsv"
    if manifest.exists():
        rows = list(csv.DictReader(manifest.open(), delimiter="\t"))
        licences = {r["file"]: r["licence"] for r in rows}
    names = [Path(t).name for t in cfg["teacher"]]
    return [
        f"- Teachers (distillation, weight {cfg.get('teacher_weight', 1.0):g} against the HR, "
        # runs from before the setting existed ran the teachers per batch
        + ("run on each batch of patches" if cfg.get("teacher_per_batch", True) else "run once on each whole image")
        + (", each over the 8 flips" if cfg.get("teacher_flips") else "")
        + "): "
        + "; ".join(f"`{n}` ({licences.get(n, 'licence not recorded')})" for n in names)
        + ". Their outputs are the targets; no teacher weight is in the file but those `init` names."
    ]


def training_lines(run: Path, label: str, by_scale: dict, config: str, export: str, machine: str) -> list[str]:
    """A card's lines on one training run: what it trained on and how long, its teachers, its command and its
    resolved settings."""
    facts = run_facts(run)
    cfg = facts["config"]
    init = cfg.get("init") or []
    init = [init] if isinstance(init, str) else init
    stopped = (
        f" (stopped at step {facts['steps']:,} of the planned {cfg['iters']:,}, with the learning rate "
        f"down to {facts['last_lr']:.1e}, {100 * facts['last_lr'] / cfg['lr']:.0f}% of its peak)"
        if facts["steps"] < cfg["iters"]
        else ""
    )
    lines = []
    degradation = cfg.get("degradation", "bicubic")
    if degradation not in ("bicubic", "clean"):
        inputs = "Inputs" + label[len("Training") :].split(" of ")[0]  # "Inputs", or "Inputs, stage 3"
        lines.append(
            f"- {inputs}: LR patches made from the HR patches by the `{degradation}` degradation "
            f"(superres/imaging/degrade.py), drawn anew for every patch"
            + (f", CutBlur-style mixing with chance {cfg['cutblur']}" if cfg.get("cutblur") else "")
            + "; validation on the held-out images degraded once (seed 0)."
        )
    extra = [Path(d).name for d in cfg.get("train_only", [])]
    lines += [
        f"- {label}: {facts['steps']:,} steps{stopped} of batch {cfg['batch_size']} x {cfg['patch_size']} px "
        f"LR patches (one scale per batch, {drawn(cfg)}), {facts['seconds'] / 60:.0f} minutes on "
        f"{machine}; data {', '.join(Path(d).name for d in cfg['data'])} "
        f"({cfg.get('holdout', 0)} images held out)"
        + (f", and for training only {', '.join(extra)}" if extra else "")
        + f"; best held-out Y-PSNR {facts['best_val']:.3f} dB "
        "(mean over scales"
        + (": " + ", ".join(f"x{k} {v:.3f}" for k, v in by_scale.items()) if by_scale else "")
        + ")"
        + (f"; started from {', '.join('`' + Path(p).name + '`' for p in init)} (all that fits)" if init else "")
        + (f"; parameters matching `{cfg['frozen']}` frozen" if cfg.get("frozen") else "")
        + ".",
        *teacher_lines(cfg),
        f"- Command: `superres train --config {config}`{', ' + export if export else ''}. Resolved settings:",
        "",
        "```json",
        json.dumps(cfg, indent=1),
        "```",
    ]
    return lines


def drawn(cfg: dict) -> str:
    """How a run drew each batch's scale: 'drawn at random', or with the chances of its scale_weights."""
    weights = cfg.get("scale_weights")
    if not weights or len(cfg["scale"]) < 2:
        return "drawn at random"
    total = sum(weights)
    return "drawn with chances " + ", ".join(
        f"x{s} {w / total:.2g}" for s, w in zip(cfg["scale"], weights, strict=True)
    )


def hardware() -> str:
    return f"{os.cpu_count()} CPU cores ({cpu_name()}), no GPU"


def table(results: list[dict], name: str, default: bool) -> list[str]:
    """Y and RGB PSNR / SSIM of the model (its name, or 'model' for the default) and bicubic, every scale
    the results hold (non-integer factors too)."""
    names = {name, "model"} if default else {name}

    def cell(methods: set[str], dataset: str, scale: float, channel: str) -> str:
        for r in results:
            if r["method"] in methods and (r["dataset"], r["scale"], r["channel"]) == (dataset, scale, channel):
                return f"{r['psnr']:.2f} / {r['ssim']:.4f}"
        return "-"

    lines = ["| scale | set | model Y | bicubic Y | model RGB | bicubic RGB |", "|---|---|---|---|---|---|"]
    for s in sorted({r["scale"] for r in results if r["method"] in names}):
        for d in SETS:
            lines.append(
                f"| x{s:g} | {d} | {cell(names, d, s, 'y')} | {cell({'bicubic'}, d, s, 'y')} | "
                f"{cell(names, d, s, 'rgb')} | {cell({'bicubic'}, d, s, 'rgb')} |"
            )
    return lines


def degraded_table(results: list[dict]) -> list[str]:
    """Y-PSNR on degraded inputs (`superres eval --degrade`): bicubic, the clean model, the photo model and auto."""
    methods = ("bicubic", "model", "photo", "auto")
    cells = {
        (r["dataset"], r["scale"], r["degradation"], r["method"]): r["psnr"] for r in results if r["channel"] == "y"
    }
    lines = [
        "| scale | set | input | " + " | ".join("input" if m == "bicubic" else m for m in methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    sets = list(dict.fromkeys(r["dataset"] for r in results))
    for s in sorted({r["scale"] for r in results}):
        for d in sets:
            for deg in dict.fromkeys(r["degradation"] for r in results if r["scale"] == s):
                row = [cells.get((d, s, deg, m)) for m in methods]
                if all(v is None for v in row):
                    continue
                lines.append(
                    f"| x{s:g} | {d} | {deg} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in row) + " |"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[],
        metavar="NAME=CONFIG",
        help="the config file each run was started with (for the command line in the card)",
    )
    parser.add_argument("--hardware", default=None, help="where the runs trained (default: this machine)")
    parser.add_argument(
        "--results",
        nargs="+",
        default=[str(RESULTS), str(RESULTS.with_name("previous.json"))],
        help="`superres eval --json` results of the clean models (the default's, then the previous default's)",
    )
    parser.add_argument(
        "--manifest-only", action="store_true", help="only write the psnr_y fields of manifest.json, not MODELS.md"
    )
    parser.add_argument(
        "--degraded",
        nargs="*",
        default=[
            "mspan-photo=docs/results/photo-x2.json,docs/results/photo-x3.json,docs/results/photo-x4.json",
            "mdsr-medium-photo=docs/results/degraded.json,docs/results/degraded-x1.json",
        ],
        metavar="NAME=JSON,...",
        help="`superres eval --degrade` results of each photo model, shown on its card",
    )
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    degraded_files = {name: files.split(",") for name, files in (item.split("=", 1) for item in args.degraded)}
    configs = dict(item.split("=", 1) for item in args.configs)
    results = [r for path in args.results for r in json.loads(Path(path).read_text())["results"]]
    write_manifest(results)
    if args.manifest_only:
        return 0
    # the package, for the cards (not needed for the manifest's scores)
    from superres.models.checkpoints import load_model
    from superres.models.registry import PRETRAINED
    from superres.models.summary import summarize

    out = [
        "# Bundled models",
        "",
        "Generated by `python benchmarks/model_cards.py` from the weights, their training runs and "
        "`superres eval` results in docs/results/eval.json (PSNR dB / SSIM; Y = BT.601 luma, shave = ceil(scale); "
        "MATLAB-bicubic LR from the EDSR benchmark sets, made by `superres eval` at non-integer factors). The "
        "benchmark sets were never used for training or for choosing checkpoints: validation used training "
        "images held out of the training folders (each card says how many).",
        "",
    ]
    for entry in PRETRAINED.values():
        model = load_model(entry.name)
        meta = model.metadata
        gflops = ", ".join(
            f"{2 * sum(r.macs for r in summarize(model, (720 // s, 1280 // s), s)) / 1e9:.1f} at x{s}"
            for s in model.scales
        )
        size = entry.path().stat().st_size
        out += [
            f"## {entry.name}{' (the default)' if entry.default else ''}",
            "",
            entry.description,
            "",
            f"- Architecture: {model.describe()}, {'RGB' if model.n_colors == 3 else 'grayscale'}; "
            f"{model.parameter_count:,} parameters; GFLOPs for a 1280x720 output: {gflops}.",
            f"- Weights: `{entry.file}`, {size / 1e6:.2f} MB, "
            f"{str(next(iter(model.state_dict().values())).dtype).replace('torch.', '')}.",
        ]
        if entry.name in runs:
            stages = runs[entry.name].split(",")
            files = configs.get(entry.name, "").split(",")
            earlier: list[str] = []
            if stages[0] == KEPT:  # the earlier stages' lines as the card has them (their runs are gone)
                stages, files = stages[1:], files[1:]
                earlier = kept_training_lines(entry.name)
            done = sum(line.startswith("- Training, stage") for line in earlier) or (1 if earlier else 0)
            total = done + len(stages)
            out += [renumbered(line, total) for line in earlier]
            if earlier:
                out.append("")
            for k, run_dir in enumerate(stages):
                last = k == len(stages) - 1
                label = f"Training, stage {done + k + 1} of {total}" if total > 1 else "Training"
                by_scale = (meta.get("val_psnr_y_by_scale") or {}) if last else {}
                config = files[k] if k < len(files) and files[k] else "CONFIG"
                export = f"then `superres export {run_dir} -o src/superres/weights/{entry.file}`" if last else ""
                out += training_lines(Path(run_dir), label, by_scale, config, export, args.hardware or hardware())
        elif kept := kept_training_lines(entry.name):
            out += kept
        elif meta.get("steps"):
            out.append(f"- Training: {meta['steps']:,} steps (from the weights' metadata).")
        photo_of = [e.name for e in PRETRAINED.values() if e.photo == entry.name]
        if photo_of:
            files = degraded_files.get(entry.name, [])
            degraded = [r for p in files if Path(p).exists() for r in json.loads(Path(p).read_text())["results"]]
            conditioned = getattr(model.config, "conditions", 0)
            script = "benchmarks/photo_targets.sh" if conditioned else "benchmarks/eval_degraded.sh"
            auto = (
                "this model told the damage `--denoise auto` reads, or the clean model where it reads none"
                if conditioned
                else "the two blended by `--denoise auto`"
            )
            out += [
                "",
                f"Scores on degraded inputs (`{script}`: Y-PSNR dB against the clean HR; model = {photo_of[0]}, "
                f"photo = this model{' at full strength' if conditioned else ''}, auto = {auto}; at x1 the input "
                f"column is the degraded image itself):",
                "",
                *degraded_table(degraded),
                "",
            ]
        else:
            out += ["", *table(results, entry.name, entry.default), ""]
    (WEIGHTS / "MODELS.md").write_text("\n".join(out) + "\n")
    print(f"wrote {WEIGHTS / 'MODELS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
