"""Bad input to `python -m exporter clip`: a named error with its fix, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real save_pretrained folder of tiny-random-clip (weights, tokenizer, processor)."""
    from exporter.tiny_random import save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-clip"
    save_checkpoint("tiny-random-clip", folder)
    return folder


def _fails_cleanly(model: str, out: Path, *expected: str) -> str:
    proc = run_cli("clip", "--model", model, "--out", str(out), "--variants", "fp32", check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    message, fix = lines[errors[0]], lines[errors[0] + 1 :]
    assert len(fix) == 1 and fix[0].strip().startswith("fix: ") and len(fix[0]) > len("  fix: ") + 10, proc.stderr
    for text in expected:
        assert text in message, message
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".rev/*"))
    return message


def test_hub_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fails_cleanly("openai/clip-vit-base-patch32", tmp_path / "out", "openai/clip-vit-base-patch32", "HF_HUB_OFFLINE")


def test_missing_folder(tmp_path: Path) -> None:
    _fails_cleanly(str(tmp_path / "no-such-model"), tmp_path / "out", "no-such-model")


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _fails_cleanly(str(tmp_path / "empty"), tmp_path / "out", "config.json")


def test_corrupt_config_json(tmp_path: Path, tiny_checkpoint: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "config.json").write_text('{"model_type": "clip", ')
    _fails_cleanly(str(broken), tmp_path / "out", "config.json", "not readable JSON")


def test_truncated_safetensors(tmp_path: Path, tiny_checkpoint: Path) -> None:
    broken = tmp_path / "truncated"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _fails_cleanly(str(broken), tmp_path / "out", "cannot load the clip weights")


def test_unsupported_architecture(tmp_path: Path) -> None:
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    _fails_cleanly(str(bert), tmp_path / "out", "BertModel")


def test_unsupported_architecture_names_what_is_supported(tmp_path: Path) -> None:
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    proc = run_cli("clip", "--model", str(llama), "--out", str(tmp_path / "out"), check=False, timeout=300)
    assert proc.returncode == 2 and "CLIP" in proc.stderr and "SigLIP" in proc.stderr and "ALIGN" in proc.stderr


def test_bad_model_id(tmp_path: Path, tiny_checkpoint: Path) -> None:
    spaced = tmp_path / "my model"
    shutil.copytree(tiny_checkpoint, spaced)
    _fails_cleanly(str(spaced), tmp_path / "out", "cannot be a model id")


def test_unknown_variant_is_an_argument_error(tmp_path: Path) -> None:
    proc = run_cli("clip", "--model", "tiny-random", "--variants", "fp32,int3", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "choose from" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_llm_name_lists_every_built_in_name_and_verbose_works_after_the_subcommand(tmp_path: Path) -> None:
    proc = run_cli("llm", "--model", "no-such-llm", "--out", str(tmp_path), "-v", check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "unrecognized arguments" not in proc.stderr
    assert "smollm2" in proc.stderr and "tiny-random-llama" in proc.stderr
    assert "Traceback" in proc.stderr  # -v (after the subcommand) shows the traceback
