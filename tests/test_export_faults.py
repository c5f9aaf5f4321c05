"""Issue #12: every exporter fault is a named error with its fix and exit code 2, found early.

Runs `exporter.cli.main` in-process (the subprocess path, exit code and no traceback, is
test_cli_errors.py's): tiny-random models and hand-corrupted files, so each case takes seconds.
Disk-full and read-only cases use real tmpfs mounts (root only; skipped, and saying so, elsewhere).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from exporter.cli import main


def fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    """Runs the CLI; asserts exit 2, one `error:` line holding `expected`, then one `fix:` line."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    fixes = [line for line in lines if line.startswith("  fix: ")]
    assert len(errors) == 1 and len(fixes) == 1 and len(fixes[0]) > 20, err
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def nothing_committed(out: Path) -> None:
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".rev/*/*"))
    assert not [p for p in out.rglob("*.onnx*") if p.is_file()], "a partial ONNX file was left behind"


# ---------------------------------------------------------------- checkpoints on disk


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder of the tiny-random Llama (weights, config, tokenizer)."""
    import torch
    from transformers import LlamaForCausalLM

    from exporter.llm_sources import smollm2_tokenizer, tiny_config

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-llama"
    tokenizer = smollm2_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.tiny_random import save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-clip"
    save_checkpoint("tiny-random-clip", folder)
    return folder


def broken_copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def llm_args(model: Path | str, out: Path) -> list[str]:
    return ["llm", "--model", str(model), "--out", str(out), "--variants", "q4", "--no-mlc"]


def clip_args(model: Path | str, out: Path) -> list[str]:
    return ["clip", "--model", str(model), "--out", str(out), "--variants", "fp32"]


@pytest.mark.parametrize("kind", ["llm", "clip"])
def test_truncated_safetensors(kind: str, llm_folder: Path, clip_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(llm_folder if kind == "llm" else clip_folder, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    args = llm_args if kind == "llm" else clip_args
    fails_with(capsys, args(folder, tmp_path / "out"), "cannot load the", "weights")
    nothing_committed(tmp_path / "out")


@pytest.mark.parametrize("kind", ["llm", "clip"])
def test_corrupt_safetensors_header(kind: str, llm_folder: Path, clip_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(llm_folder if kind == "llm" else clip_folder, tmp_path)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"\xff" * 32  # inside the JSON header
    weights.write_bytes(bytes(data))
    args = llm_args if kind == "llm" else clip_args
    fails_with(capsys, args(folder, tmp_path / "out"), "cannot load the", "weights")


def test_llm_config_that_does_not_match_the_weights(llm_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(llm_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 160  # the saved MLP weights are 128 wide
    (folder / "config.json").write_text(json.dumps(config))
    fails_with(capsys, llm_args(folder, tmp_path / "out"), "does not match", "size mismatch")


def test_clip_config_that_does_not_match_the_weights(clip_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(clip_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["projection_dim"] = config["projection_dim"] * 2
    (folder / "config.json").write_text(json.dumps(config))
    fails_with(capsys, clip_args(folder, tmp_path / "out"), "does not match", "size mismatch")


def test_llm_missing_tokenizer_files(llm_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(llm_folder, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    fails_with(capsys, llm_args(folder, tmp_path / "out"), "tokenizer")


def test_clip_missing_tokenizer_files(clip_folder: Path, tmp_path: Path, capsys) -> None:
    folder = broken_copy(clip_folder, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    fails_with(capsys, clip_args(folder, tmp_path / "out"), "tokenizer")


# ---------------------------------------------------------------- hand-made GGUF files


def write_gguf(path: Path, q_shape: tuple[int, int] = (64, 64), q4_rows: int = 64) -> None:
    """A 1-block Llama GGUF (embedding 64, 4 heads, ffn 128, 32 tokens); attn_q and a Q4_1 tensor take
    the given shapes (GGUF order: numpy shape is [rows, innermost])."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf import quants as ggml_quants

    writer = GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_token_list([f"t{i}" for i in range(32)])
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((32, 64), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", rng.standard_normal(q_shape[::-1], dtype=np.float32))
    raw = ggml_quants.quantize(rng.standard_normal((128, 64), dtype=np.float32), GGMLQuantizationType.Q4_1)
    writer.add_tensor("blk.0.ffn_up.weight", raw, raw_dtype=GGMLQuantizationType.Q4_1)  # bytes [128, 40]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if q4_rows != 64:  # hand-corrupt the Q4_1 tensor's innermost dimension in its tensor-info record
        data = bytearray(path.read_bytes())
        name = b"blk.0.ffn_up.weight"
        at = data.index(name) + len(name) + 4  # n_dims (u32), then ne[0] (u64)
        assert int.from_bytes(data[at : at + 8], "little") == 64
        data[at : at + 8] = q4_rows.to_bytes(8, "little")
        path.write_bytes(bytes(data))


def test_gguf_tensor_shape_contradicting_the_metadata_fails_fast(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad-shape.gguf"
    write_gguf(path, q_shape=(64, 48))
    started = time.monotonic()
    fails_with(capsys, llm_args(path, tmp_path / "out"), "blk.0.attn_q.weight", "[64, 48]", "[64, 64]")
    assert time.monotonic() - started < 30


def test_gguf_tensor_type_inconsistent_with_its_shape_fails_fast(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad-type.gguf"
    write_gguf(path, q4_rows=48)  # Q4_1 blocks hold 32 values: 48 is no whole number of blocks
    fails_with(capsys, llm_args(path, tmp_path / "out"), "gguf")


def test_truncated_gguf(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cut.gguf"
    write_gguf(path)
    path.write_bytes(path.read_bytes()[:-5000])
    fails_with(capsys, llm_args(path, tmp_path / "out"), "gguf")


# ---------------------------------------------------------------- the output folder


def test_corrupt_manifest_is_found_before_the_llm_export_starts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"models": [ {"id": ')
    started = time.monotonic()
    fails_with(capsys, llm_args("tiny-random", out), "not a valid manifest")
    assert time.monotonic() - started < 10  # before the model load, not after the export


@contextmanager
def tmpfs(size: str, read_only: bool = False) -> Iterator[Path]:
    """A real small (or read-only) file system; needs root (mount)."""
    with tempfile.TemporaryDirectory(prefix="lumen-tmpfs-") as tmp:
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", tmp], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): disk-full / read-only untested")
        try:
            yield Path(tmp)
        finally:
            subprocess.run(["umount", tmp], check=True)


@pytest.mark.parametrize("kind", ["llm", "clip"])
def test_read_only_out_fails_before_any_work(kind: str, capsys) -> None:
    with tmpfs("1m", read_only=True) as out:
        started = time.monotonic()
        args = llm_args("tiny-random", out / "artifacts") if kind == "llm" else clip_args("tiny-random", out / "a")
        fails_with(capsys, args, "cannot write to", "Read-only file system")
        assert time.monotonic() - started < 10


# Sizes chosen so the disk fills at different writes: a tiny-random CLIP fp32 export writes
# tokenizer.json (3.5 MB) first, then the towers (about 8 MB in all: 11 MB holds the whole export).
@pytest.mark.parametrize(
    "kind, where, size",
    [
        ("clip", "out", "200k"),
        ("clip", "out", "3m"),
        ("clip", "out", "7m"),
        ("clip", "tmp", "200k"),  # the fp32 ONNX export in the work folder
        ("clip", "tmp", "4m"),
        ("llm", "out", "1m"),  # the tokenizer (3.5 MB)
        ("llm", "tmp", "1m"),  # the fp32 decoder export
    ],
)
def test_disk_full_is_a_disk_full_error(
    kind: str, where: str, size: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tmpfs(size) as small:
        out = small / "artifacts" if where == "out" else tmp_path / "out"
        if where == "tmp":
            monkeypatch.setattr(tempfile, "tempdir", str(small))
        args = llm_args("tiny-random", out) if kind == "llm" else clip_args("tiny-random", out)
        message = fails_with(capsys, args, "no space left")
        print(f"\n{kind}, {where} on a {size} tmpfs: {message}")
        nothing_committed(out)
        assert not [p for p in small.rglob("*.onnx*") if p.is_file()], "a partial ONNX file was left in the full folder"


# ---------------------------------------------------------------- fidelity: no failing default


def test_a_trained_model_whose_only_variant_misses_the_targets_gets_no_default() -> None:
    from exporter.errors import FidelityTargetsError
    from exporter.llm_export import _choose_defaults

    q5_0_today = {"q4": {"meets_targets": False, "forced_agreement": 0.68, "nll_rel_diff": 0.75, "bytes": 1}}
    with pytest.raises(FidelityTargetsError) as caught:
        _choose_defaults(q5_0_today, trained=True)
    assert "0.68" in str(caught.value) and "+75%" in str(caught.value) and caught.value.fix
    assert caught.value.exit_code == 2
    # A random-weight test model keeps a default (its numbers mean nothing either way) ...
    assert _choose_defaults(q5_0_today, trained=False)[0] == {"wasm": "q4", "webgpu": "q4"}
    # ... and a passing variant is chosen over a failing one.
    both = {**q5_0_today, "q8": {"meets_targets": True, "forced_agreement": 0.99, "nll_rel_diff": 0.01, "bytes": 2}}
    assert _choose_defaults(both, trained=True)[0] == {"wasm": "q8", "webgpu": "q8"}
