"""`python -m reference.fudd_eval`: zero-shot accuracy over a folder of labelled images, three ways.

    python -m reference.fudd_eval --artifacts artifacts --clip tiny-random-clip \\
        (--llm smollm2 | --descriptions pets_prompt_pairs.json) --data FOLDER [--k 5]

FOLDER holds one subfolder of images per class; the class name is the folder name with "_" read
as a space; classes are indexed in sorted order (as a FuDD descriptions file indexes them, unless
--class-names gives FuDD's <dataset>_class_names.json). Prints accuracy for the class name alone,
the model's template, and FuDD (template first pass, top-K re-ranked with the descriptions), how
many class pairs fell back to the template, and a loud notice when the vision model is untrained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

if __name__ == "__main__":
    # transformers imports torch at load whenever it is installed (seconds, hundreds of MB), though the
    # image processor this command uses is PIL + numpy and nothing here runs torch. Only the command
    # line says so: a process that imports this module may need torch for other work.
    os.environ.setdefault("USE_TORCH", "0")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # else it warns that torch is missing

import numpy as np
from PIL import Image

from contract.errors import LumenError
from reference.descriptions import Describer, GivenDescriber, LlmDescriber
from reference.errors import DataFolderError, DescriptionsFileError
from reference.fudd import DEFAULT_K, rerank, top_k
from reference.fudd_pairs import dump_pairs, load_pairs
from reference.fudd_prompt import FuddPrompt
from reference.fudd_separation import SeparationCheck
from reference.vision import VisionModel, apply_template
from runtime.progress import bar, step

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


@dataclass(frozen=True)
class Dataset:
    class_names: list[str]
    images: list[Path]
    targets: list[int]  # class index of each image


def load_dataset(folder: Path) -> Dataset:
    """One subfolder per class (sorted), its image files (sorted)."""
    if not folder.is_dir():
        raise DataFolderError(f"{folder} is not a folder", fix="pass --data with one subfolder of images per class")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    names, images, targets = [], [], []
    for index, sub in enumerate(classes):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataFolderError(
                f"class folder {sub} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                fix="put at least one image in every class folder, or remove the folder",
            )
        names.append(sub.name.replace("_", " "))
        images += files
        targets += [index] * len(files)
    if len(names) < 2:
        raise DataFolderError(
            f"{folder} has {len(names)} class folder(s); classification needs at least 2",
            fix="make one subfolder per class, e.g. data/cat/*.png, data/dog/*.png",
        )
    return Dataset(names, images, targets)


def class_names_file(path: Path, found: list[str]) -> list[str]:
    """FuDD's <dataset>_class_names.json (a list); must name the same classes as the folders."""
    try:
        names = [str(n).replace("_", " ") for n in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError) as err:
        raise DescriptionsFileError(
            f"cannot read class names from {path}: {err}", fix="a JSON list of class names"
        ) from err
    if sorted(names) != sorted(found):
        raise DescriptionsFileError(
            f"{path} names {sorted(names)}, the data folders {sorted(found)}",
            fix="use the class-names file that belongs to this data set",
        )
    return names


def reindexed(data: Dataset, class_names: list[str]) -> Dataset:
    """The same images with classes indexed in `class_names` order."""
    return Dataset(class_names, data.images, [class_names.index(data.class_names[t]) for t in data.targets])


def cached(embed: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """Embeds each distinct text once over the whole evaluation."""
    memo: dict[str, np.ndarray] = {}

    def run(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, embed(missing), strict=True))
        return np.stack([memo[t] for t in texts])

    return run


def evaluate(args: argparse.Namespace) -> dict:
    data = load_dataset(args.data)
    if args.class_names:
        data = reindexed(data, class_names_file(args.class_names, data.class_names))
    labels = data.class_names
    with step(f"[fudd] load {args.clip}"):
        vision = VisionModel(args.artifacts, args.clip, args.variant)
    info = vision.info
    embed = cached(vision.embed_texts)
    image_embeds = []
    with bar(len(data.images), "[fudd] embed images", unit="img") as progress:
        for path in data.images:
            with Image.open(path) as im:
                image_embeds.append(vision.embed_images([im])[0])
            progress.update(1)
    images = np.stack(image_embeds)  # [N, D]
    targets = np.array(data.targets)
    name_scores = vision.scores(images, embed(labels))  # [N, C]
    template_scores = vision.scores(images, embed([apply_template(info.template, c) for c in labels]))

    describer = _describer(args, labels, info.template, embed)
    k = max(1, min(args.k, len(labels)))
    needed = sorted({tuple(sorted(p)) for s in template_scores for p in combinations(top_k(labels, s, k), 2)})
    with bar(len(needed), "[fudd] describe class pairs", unit="pair") as progress:
        for a, b in needed:
            describer(a, b)
            progress.update(1)
    results = [
        rerank(img, labels, s, k, describer, embed, info) for img, s in zip(images, template_scores, strict=True)
    ]
    fudd_pred = np.array([labels.index(r.reranked[0].label) for r in results])

    if args.save_descriptions:
        attr_type = f"{FuddPrompt.load().attr_type}:{args.llm}" if args.llm else f"file:{args.descriptions.name}"
        args.save_descriptions.write_text(
            json.dumps(dump_pairs(describer.described_pairs(), labels, attr_type), indent=2) + "\n", encoding="utf-8"
        )
    entry = vision.entry
    accuracy = {
        "class name only": _acc(name_scores.argmax(1), targets),
        "template": _acc(template_scores.argmax(1), targets),
        f"FuDD (K={k})": _acc(fudd_pred, targets),
    }
    return {
        "model": entry.id,
        "variant": vision.variant,
        "trained": entry.trained,
        "note": entry.note,
        "images": len(data.images),
        "classes": labels,
        "k": k,
        "template": info.template,
        "descriptions": f"LLM {args.llm}" if args.llm else str(args.descriptions),
        "accuracy": accuracy,
        "class_pairs": len(needed),
        "fallbacks": describer.fallbacks,
        "format_fallbacks": describer.format_fallbacks,
        "separation_check": bool(args.llm and not args.no_separation_check),
        "separation_fallbacks": describer.separation_fallbacks,
        "separation_drops": describer.separation_drops,
        "feature_pairs": sum(len(o.checks or []) for o in describer.outcomes.values()),
        "answer_format": None
        if not args.llm
        else {True: "json", False: "lines", None: "lines-then-json"}[args.structured],
        "json_retries": getattr(describer, "json_retries", 0),
        "llm_calls": getattr(describer, "llm_calls", 0),
        "llm_seconds_per_pair": getattr(describer, "seconds", 0.0) / max(1, len(needed)),
        "reranked_changed_top1": int((fudd_pred != template_scores.argmax(1)).sum()),
    }


def _describer(
    args: argparse.Namespace, labels: list[str], template: str, embed: Callable[[list[str]], np.ndarray]
) -> Describer:
    if args.descriptions:
        return GivenDescriber(load_pairs(args.descriptions, labels), template)
    from reference.llm import ChatLLM

    with step(f"[fudd] load {args.llm}"):
        llm = ChatLLM(args.artifacts, args.llm, args.llm_variant)
    prompt = FuddPrompt.load()
    check = None if args.no_separation_check else SeparationCheck(embed, prompt.min_text_separation)
    return LlmDescriber(llm, prompt, template, args.pairs_per_class, structured=args.structured, check=check)


def _acc(pred: np.ndarray, targets: np.ndarray) -> dict:
    correct = int((pred == targets).sum())
    return {"correct": correct, "total": len(targets), "accuracy": correct / len(targets)}


def untrained_notice(report: dict) -> str:
    bar_line = "!" * 78
    return (
        f"{bar_line}\n!! {report['model']} is UNTRAINED (random weights): these accuracies mean NOTHING.\n"
        f"!! {report['note'] or 'Export a trained checkpoint to measure real accuracy.'}\n{bar_line}"
    )


def format_report(report: dict) -> str:
    lines = [
        (
            f"FuDD evaluation: {report['images']} images, {len(report['classes'])} classes, "
            f"model {report['model']} ({report['variant']}), descriptions: {report['descriptions']}"
        )
    ]
    if not report["trained"]:
        lines.append(untrained_notice(report))
    lines.append(f"{'method':<18}{'accuracy':>10}{'correct':>10}")
    for method, acc in report["accuracy"].items():
        lines.append(f"{method:<18}{acc['accuracy']:>9.1%}{acc['correct']:>6}/{acc['total']}")
    pairs, fallbacks = report["class_pairs"], report["fallbacks"]
    share = f" ({fallbacks / pairs:.0%})" if pairs else ""
    by_check = report["separation_fallbacks"]
    lines.append(
        f"class pairs described: {pairs}, template fallbacks: {fallbacks}{share} "
        f"(format: {report['format_fallbacks']}, every feature rejected: "
        f"{fallbacks - report['format_fallbacks'] - by_check}, no feature separating: {by_check}), "
        f"LLM calls: {report['llm_calls']} ({report['json_retries']} pairs asked again as JSON; "
        f"{report['llm_seconds_per_pair']:.1f} s per pair), "
        f"top-1 changed by FuDD: {report['reranked_changed_top1']}"
    )
    if report["separation_check"]:
        lines.append(
            f"separation check: {report['separation_drops']} of {report['feature_pairs']} parsed feature pairs "
            "dropped (they do not move similarity toward their own class)"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference.fudd_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact folder (with manifest.json)")
    parser.add_argument("--clip", required=True, help="vision model id in the manifest")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--llm", help="chat model id in the manifest: writes the descriptions")
    source.add_argument("--descriptions", type=Path, help="FuDD pairwise JSON (<dataset>_prompt_pairs.json format)")
    parser.add_argument("--data", type=Path, required=True, help="folder with one subfolder of images per class")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help=f"candidates re-ranked (default {DEFAULT_K})")
    parser.add_argument(
        "--class-names", type=Path, help="FuDD <dataset>_class_names.json: the index order of --descriptions"
    )
    parser.add_argument("--variant", help="vision variant (default: the manifest's WASM default, as the browser)")
    parser.add_argument("--llm-variant", help="LLM variant (default: the manifest's WASM default)")
    parser.add_argument(
        "--pairs-per-class", type=int, help="description pairs asked per class pair (default: the prompt file's)"
    )
    answer_format = parser.add_mutually_exclusive_group()
    answer_format.add_argument(
        "--structured",
        action="store_const",
        const=True,
        help="always constrain the LLM's answer to the JSON schema of contract/fudd_prompt.json's `structured` "
        "(Python xgrammar, which loads torch); default: lines, and JSON again for a pair with no well-formed line",
    )
    answer_format.add_argument(
        "--lines", dest="structured", action="store_const", const=False, help="lines only, never JSON"
    )
    parser.add_argument(
        "--no-separation-check",
        action="store_true",
        help="keep every parsed feature pair (default: drop those that do not separate their two classes in the "
        "vision model's text space, reference/fudd_separation.py)",
    )
    parser.add_argument("--save-descriptions", type=Path, help="write the descriptions used, in FuDD's pairwise format")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1:
        build_parser().error("--k must be at least 1")
    try:
        report = evaluate(args)
    except LumenError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not report["trained"]:
        print(untrained_notice(report), file=sys.stderr)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
