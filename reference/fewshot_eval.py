"""`python -m reference.fewshot_eval`: few-shot accuracy on generated shapes, for every exported vision model.

    python -m reference.fewshot_eval --artifacts artifacts [--models a,b] [--checkpoint DIR ...]
        [--shots 1,2,4,8,16] [--seeds 5] [--test-per-class 20] [--plot docs/fewshot.png] [--json out.json]

Data: reference/fewshot_data.py (12 classes: shape x colour x texture, a held-out test split). For
each model, shot count and seed, `shots` examples per class are drawn from the training pool and
four classifiers are measured on the test split: zero-shot (the model's template), the linear probe,
the Tip-style cache, and "auto" (whichever of the two had the better leave-one-out score, as the
browser picks). Accuracy is the mean over seeds with its standard deviation. `--checkpoint` exports
a local Hugging Face checkpoint folder first (int8, the exporter in a subprocess: this process stays
torch-free). Untrained models are named loudly: their numbers describe random features.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

if __name__ == "__main__":
    os.environ.setdefault("USE_TORCH", "0")  # see reference/fudd_eval.py: the image processor needs no torch
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np

from contract.errors import LumenError
from contract.manifest import load_manifest
from reference.errors import DataFolderError
from reference.fewshot import best, fit, predict
from reference.fewshot_data import CLASSES, POOL, TEST, images
from reference.fudd_eval import untrained_notice
from reference.vision import VisionModel, apply_template
from runtime.progress import bar, step

METHODS = ("zero-shot", "probe", "tip", "auto")
POOL_PER_CLASS = 32  # examples are drawn from here; more than the largest shot count, so seeds differ


def embed(model: VisionModel, split: int, per_class: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    pictures, labels = images(split, per_class)
    out = []
    with bar(len(pictures), f"[fewshot] {model.entry.id}: embed {what}", unit="img") as progress:
        for i in range(0, len(pictures), 16):
            out.append(model.embed_images(pictures[i : i + 16]))
            progress.update(len(pictures[i : i + 16]))
    return np.concatenate(out), labels  # [N, D] unit rows, [N]


def draw(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of `shots` pool examples per class, drawn without replacement (numpy's seeded generator)."""
    rng = np.random.default_rng([seed, shots])
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in np.unique(labels)])


def evaluate_model(model: VisionModel, shot_counts: list[int], seeds: int, test_per_class: int) -> dict:
    info = model.info
    text = model.embed_texts([apply_template(info.template, c.label) for c in CLASSES])  # [C, D]
    pool, pool_y = embed(model, POOL, POOL_PER_CLASS, "training pool")
    test, test_y = embed(model, TEST, test_per_class, "test split")
    zero_shot = float((model.scores(test, text).argmax(1) == test_y).mean())
    rows = []
    with bar(len(shot_counts) * seeds, f"[fewshot] {model.entry.id}: fit", unit="fit") as progress:
        for shots in shot_counts:
            accuracy: dict[str, list[float]] = {m: [] for m in METHODS[1:]}
            loo: list[float] = []
            picked_probe = 0
            for seed in range(seeds):
                chosen = draw(pool_y, shots, seed)
                fitted = {
                    m: fit(text, info.logit_scale, pool[chosen], pool_y[chosen], m, seed) for m in ("probe", "tip")
                }
                # "auto" fits both and keeps the better leave-one-out candidate: the same as best() over both grids.
                winner = best([best(fitted["probe"].candidates), best(fitted["tip"].candidates)])
                fitted["auto"] = fitted[winner.method]
                picked_probe += winner.method == "probe"
                for m, c in fitted.items():
                    accuracy[m].append(float((predict(c, test).argmax(1) == test_y).mean()))
                loo.append(fitted["auto"].loo_accuracy)
                progress.update(1)
            rows.append(
                {
                    "shots": shots,
                    "zero-shot": {"mean": zero_shot, "std": 0.0},
                    **{m: {"mean": float(np.mean(v)), "std": float(np.std(v))} for m, v in accuracy.items()},
                    "auto picked probe": picked_probe / seeds,
                    "loo (auto)": float(np.mean(loo)),
                }
            )
    entry = model.entry
    return {
        "model": entry.id,
        "variant": model.variant,
        "trained": entry.trained,
        "note": entry.note,
        "embed_dim": int(text.shape[1]),
        "rows": rows,
    }


def export_checkpoint(folder: Path, out: Path) -> str:
    """Exports a local checkpoint folder (int8) into `out` with the exporter CLI; returns its model id."""
    model_id = f"checkpoint-{folder.resolve().name}"
    with step(f"[fewshot] export {folder}"):
        proc = subprocess.run(
            [sys.executable, "-m", "exporter", "clip", "--model", str(folder), "--out", str(out)]
            + ["--variants", "int8", "--id", model_id],
            check=False,
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        raise DataFolderError(
            f"cannot export checkpoint {folder}: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}",
            fix="pass a CLIP/SigLIP/ALIGN folder written by save_pretrained (python -m exporter clip --model DIR says more)",
        )
    return model_id


def format_table(report: dict) -> str:
    lines = [
        (
            f"{report['model']} ({report['variant']}, {report['embed_dim']}-d, "
            f"{'trained' if report['trained'] else 'UNTRAINED'}): accuracy on {report['test_images']} held-out "
            f"images, {len(CLASSES)} classes (chance {1 / len(CLASSES):.3f}), mean ± std over {report['seeds']} seeds"
        ),
        f"{'shots':>5}  " + "".join(f"{m:>15}" for m in METHODS) + f"{'LOO (auto)':>12}{'auto=probe':>12}",
    ]
    for row in report["rows"]:
        cells = "".join(f"{row[m]['mean']:>9.3f} ±{row[m]['std']:.3f}" for m in METHODS)
        lines.append(f"{row['shots']:>5}  {cells}{row['loo (auto)']:>12.3f}{row['auto picked probe']:>12.0%}")
    return "\n".join(lines)


def plot(reports: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(4.2 * len(reports), 3.6), squeeze=False)
    for ax, report in zip(axes[0], reports, strict=True):
        shots = [r["shots"] for r in report["rows"]]
        for k, method in enumerate(METHODS):
            mean = [r[method]["mean"] for r in report["rows"]]
            std = [r[method]["std"] for r in report["rows"]]
            style = "--" if method == "zero-shot" else "-"
            ax.errorbar(shots, mean, yerr=std, fmt=style + "o", ms=3, capsize=2, color=f"C{k}", label=method)
        ax.axhline(1 / len(CLASSES), color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("examples per class")
        ax.set_title(f"{report['model']}{'' if report['trained'] else ' (untrained)'}", fontsize=9)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Few-shot on generated shapes ({len(CLASSES)} classes), image tower locked", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference.fewshot_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact folder (with manifest.json)")
    parser.add_argument("--models", help="comma-separated vision model ids (default: every vision model there)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="a local checkpoint folder")
    parser.add_argument("--shots", default="1,2,4,8,16", help="examples per class (default 1,2,4,8,16)")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the examples per shot count (default 5)")
    parser.add_argument("--test-per-class", type=int, default=20, help="held-out images per class (default 20)")
    parser.add_argument("--variant", help="vision variant (default: the manifest's WASM default, as the browser)")
    parser.add_argument("--plot", type=Path, default=Path("docs/fewshot.png"), help="PNG to write")
    parser.add_argument("--json", type=Path, help="also write the reports as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    shot_counts = [int(s) for s in args.shots.split(",")]
    if not shot_counts or min(shot_counts) < 1 or max(shot_counts) > POOL_PER_CLASS or args.seeds < 1:
        raise DataFolderError(
            f"--shots {args.shots} / --seeds {args.seeds} out of range",
            fix=f"shots between 1 and {POOL_PER_CLASS}, at least one seed",
        )
    targets = [(args.artifacts, m) for m in args.models.split(",")] if args.models else []
    if not args.models and (args.artifacts / "manifest.json").exists():
        targets = [(args.artifacts, e.id) for e in load_manifest(args.artifacts).models if e.vision]
    scratch = Path(tempfile.mkdtemp(prefix="lumen-fewshot-")) if args.checkpoint else None
    targets += [(scratch, export_checkpoint(folder, scratch)) for folder in args.checkpoint]  # type: ignore[arg-type]
    if not targets:
        raise DataFolderError(
            f"{args.artifacts} has no vision models", fix="export one: python -m exporter clip --model tiny-random-clip"
        )
    reports = []
    for root, model_id in targets:
        with step(f"[fewshot] load {model_id}"):
            model = VisionModel(root, model_id, args.variant)
        report = evaluate_model(model, shot_counts, args.seeds, args.test_per_class)
        report |= {"seeds": args.seeds, "test_images": args.test_per_class * len(CLASSES)}
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        reports = run(args)
    except LumenError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        import json

        args.json.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    plot(reports, args.plot)
    for report in reports:
        if not report["trained"]:
            print(untrained_notice(report), file=sys.stderr)
        print(format_table(report) + "\n")
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
