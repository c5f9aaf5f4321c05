"""`python -m exporter clip`: CLIP / SigLIP / ALIGN towers, parity with PyTorch, tokenizers, atomicity.

Exports go through the real CLI once per session (conftest.shared_artifacts); references are
rebuilt independently here (the seeded tiny model, the `tokenizers` library, onnxruntime).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import AutoImageProcessor

from conftest import REPO, run_cli
from contract.manifest import Manifest, ModelEntry, load_manifest, revision_dir
from exporter.artifacts import ArtifactStore, sha256_file, write_text_atomic
from exporter.errors import ParityError
from runtime.onnx_int8_expand import expand_int8_weights

FAMILIES = {"tiny-random-clip": "clip", "tiny-random-siglip": "siglip", "tiny-random-align": "align"}
# Quantized towers of the tiny random models, measured: int8 >= 0.994, 4-bit >= 0.89 (32-wide layers
# quantize worse than real ones); fp32 must match PyTorch to 1e-4 (the exporter's own gate).
FP32_MIN, INT8_MIN, Q4_MIN = 0.9999, 0.99, 0.85
MIN_BY_VARIANT = {"fp32": FP32_MIN, "int8": INT8_MIN, "q4": Q4_MIN}
CAT_IDS = {
    "clip": [49406, 320, 1125, 539, 320, 2368, 49407],
    "siglip": [49406, 320, 1125, 539, 320, 2368, 49407],
    "align": [101, 1037, 6302, 1997, 1037, 4937, 102],
}
ONNX_FILES = {"fp32": "", "int8": "_quantized", "q4": "_q4"}


def _entry(root: Path, model_id: str) -> ModelEntry:
    entry = load_manifest(root).get(model_id)
    assert entry is not None, f"{model_id} missing from {root}/manifest.json"
    return entry


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _assert_files_match(root: Path) -> None:
    """Every file the manifest lists exists in its revision with the listed size and sha256."""
    for entry in load_manifest(root).models:
        folder = revision_dir(root, entry)
        for f in entry.files:
            path = folder / f.path[len(entry.id) + 1 :]
            assert path.is_file(), path
            assert path.stat().st_size == f.bytes and sha256_file(path) == f.sha256, path


def _snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every symlink's target (directories themselves are not compared)."""
    state = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            state[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            state[rel] = sha256_file(p)
    return state


@pytest.fixture(params=list(FAMILIES))
def exported(request: pytest.FixtureRequest, shared_artifacts) -> tuple[Path, str]:
    return shared_artifacts.clip(request.param), request.param


@pytest.fixture
def baseline(tmp_path: Path, shared_artifacts) -> Path:
    """A private artifact folder holding only the shared tiny-random-clip export (byte copies)."""
    shared = shared_artifacts.clip("tiny-random-clip")
    entry = _entry(shared, "tiny-random-clip")
    root = tmp_path / "artifacts"
    shutil.copytree(revision_dir(shared, entry), revision_dir(root, entry))
    write_text_atomic(root / "manifest.json", Manifest(models=[entry]).model_dump_json(indent=2))
    ArtifactStore(root).repair()
    _assert_files_match(root)
    return root


def test_manifest_entry_and_files(exported: tuple[Path, str]) -> None:
    root, name = exported
    family = FAMILIES[name]
    entry = _entry(root, name)
    _assert_files_match(root)
    expected = {
        f"{name}/{p}"
        for p in (
            "config.json",
            "preprocessor_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "export-report.json",
        )
    }
    expected |= {
        f"{name}/onnx/{graph}{suffix}.onnx"
        for graph in ("vision_model", "text_model", "model")  # "model": the peers' combined graph
        for suffix in ONNX_FILES.values()
    }
    assert {f.path for f in entry.files} == expected
    assert entry.task == "zero-shot-image-classification" and entry.family == family and not entry.trained
    assert "python -m exporter clip --model openai/clip-vit-base-patch32" in entry.note
    assert entry.defaults == {"wasm": "int8", "webgpu": "int8"}
    for variant, suffix in ONNX_FILES.items():
        assert entry.variants[variant].dtype == variant
        assert entry.variants[variant].expand_weights == (["wasm"] if variant == "q4" else [])
        assert entry.variants[variant].files == {
            graph: f"{name}/onnx/{graph}{suffix}.onnx" for graph in ("vision_model", "text_model", "model")
        }
    info = entry.vision
    assert info.scoring == ("sigmoid" if family == "siglip" else "softmax")
    assert info.template == ("This is a photo of {}." if family == "siglip" else "a photo of a {}.")
    assert (info.image_size, info.embed_dim) == (32, 32)
    assert info.pad_to_max_length == (family == "siglip")
    assert info.text_max_length == {"clip": 77, "siglip": 64, "align": 64}[family]
    session = ort.InferenceSession(str(root / name / "onnx" / "text_model_quantized.onnx"))
    assert [i.name for i in session.get_inputs()] == info.text_inputs
    assert [o.name for o in session.get_outputs()] == ["text_embeds"]


def test_report_parity_sizes_and_versions(exported: tuple[Path, str]) -> None:
    root, name = exported
    report = json.loads((root / name / "export-report.json").read_text())
    assert report["versions"]["onnxruntime"] == ort.__version__
    assert report["probe"]["images"] >= 10 and len(report["probe"]["labels"]) == 20
    for variant, minimum in MIN_BY_VARIANT.items():
        data = report["variants"][variant]
        for tower in ("vision_model", "text_model"):
            stats = data["parity"][tower]
            assert stats["cosine_min"] >= minimum, (variant, tower, stats)
            assert stats["cosine_mean"] >= stats["cosine_min"]
            file = data["files"][tower]
            assert (root / name / file["path"]).stat().st_size == file["bytes"]
            assert data["export_seconds"][tower] > 0
        assert 0.0 <= data["parity"]["zero_shot_top1_agreement"] <= 1.0
    assert report["variants"]["fp32"]["parity"]["zero_shot_top1_agreement"] == 1.0
    expanded = report["variants"]["int8"]["expanded_parity"]  # as the browser runs int8 when asked to expand
    assert report["variants"]["int8"]["expanded_on"] == []  # not by default: measured slower than as downloaded
    for tower in ("vision_model", "text_model"):
        assert expanded[tower]["products"] > 0 and expanded[tower]["dynamic_quantize_left"] == 0, expanded
        assert expanded[tower]["cosine_min"] >= MIN_BY_VARIANT["int8"], expanded
    sizes = {v: report["variants"][v]["files"]["text_model"]["bytes"] for v in ONNX_FILES}
    assert sizes["int8"] < 0.4 * sizes["fp32"]  # the token embedding table is quantized too


def test_onnx_matches_pytorch_on_fresh_input(exported: tuple[Path, str]) -> None:
    """Rebuild the seeded model, feed inputs the exporter never saw, compare with its HF API directly."""
    from exporter.tiny_random import build

    root, name = exported
    family, folder = FAMILIES[name], root / name
    model = build(name)
    generator = torch.Generator().manual_seed(7)
    pixel_values = torch.randn(3, 3, 32, 32, generator=generator)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    if family != "siglip":
        tokenizer.enable_padding(pad_id=0)
    encodings = tokenizer.encode_batch(["a zebra on a skateboard", "x", "the quick brown fox jumps over it"])
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        image_ref = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixel_values), dim=-1)
        text_ref = torch.nn.functional.normalize(
            model.get_text_features(input_ids=ids, attention_mask=None if family == "siglip" else mask), dim=-1
        )
    text_feeds = {"input_ids": ids.numpy()} | ({} if family == "siglip" else {"attention_mask": mask.numpy()})

    def session(path: Path, expand: bool) -> ort.InferenceSession:
        return ort.InferenceSession(
            expand_int8_weights(onnx.load(path)).model.SerializeToString() if expand else str(path)
        )

    for variant, suffix, expand in (("fp32", "", False), ("int8", "_quantized", False), ("int8", "_quantized", True)):
        image = session(folder / f"onnx/vision_model{suffix}.onnx", expand).run(
            None, {"pixel_values": pixel_values.numpy()}
        )[0]
        text = session(folder / f"onnx/text_model{suffix}.onnx", expand).run(None, text_feeds)[0]
        assert image.shape == (3, 32) and text.shape == (3, 32)
        np.testing.assert_allclose(np.linalg.norm(image, axis=-1), 1.0, atol=1e-5)
        assert _cosines(image, image_ref.numpy()).min() >= MIN_BY_VARIANT[variant], variant
        assert _cosines(text, text_ref.numpy()).min() >= MIN_BY_VARIANT[variant], variant


def test_tokenizer_json_round_trip(exported: tuple[Path, str]) -> None:
    root, name = exported
    family = FAMILIES[name]
    tokenizer = Tokenizer.from_file(str(root / name / "tokenizer.json"))
    ids = tokenizer.encode("a photo of a cat").ids
    if family == "siglip":  # fixed-length padding with <|endoftext|>, as the text tower was exported
        assert len(ids) == 64 and ids[:7] == CAT_IDS[family] and set(ids[7:]) == {49407}
    else:
        assert ids == CAT_IDS[family]
    assert tokenizer.decode(ids).strip(" .") == "a photo of a cat"
    assert tokenizer.get_vocab_size() == (30522 if family == "align" else 49408)
    long_ids = tokenizer.encode("word " * 500).ids
    assert len(long_ids) == {"clip": 77, "siglip": 64, "align": 64}[family]


def test_preprocessor_is_the_real_hf_processor(exported: tuple[Path, str]) -> None:
    root, name = exported
    family, folder = FAMILIES[name], root / name
    config = json.loads((folder / "preprocessor_config.json").read_text())
    expected = {
        "clip": {
            "image_processor_type": "CLIPImageProcessor",
            "resample": 3,
            "do_center_crop": True,
            "size": {"shortest_edge": 32},
            "crop_size": {"height": 32, "width": 32},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
        },
        # SiglipImageProcessor's default and google/siglip-* checkpoints: bicubic (3), square resize, no crop
        "siglip": {
            "image_processor_type": "SiglipImageProcessor",
            "resample": 3,
            "size": {"height": 32, "width": 32},
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        },
        "align": {
            "image_processor_type": "EfficientNetImageProcessor",
            "resample": 2,
            "do_center_crop": True,
            "size": {"height": 38, "width": 38},
            "crop_size": {"height": 32, "width": 32},
            "rescale_offset": True,
            "do_normalize": False,
            "include_top": False,
        },
    }[family]
    assert {k: config[k] for k in expected} == expected
    processor = AutoImageProcessor.from_pretrained(folder, use_fast=False)
    pixels = processor(images=Image.new("RGB", (90, 40), (255, 0, 0)), return_tensors="np")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)
    if family == "align":  # rescaled to [-1, 1], no mean/std
        assert np.allclose(pixels[0, 0], 1.0) and np.allclose(pixels[0, 1], -1.0)


def test_local_checkpoint_folder(tmp_path_factory: pytest.TempPathFactory, shared_artifacts) -> None:
    """save_pretrained folder -> id from the folder name, trained, own tokenizer; same graph as the tiny build."""
    from exporter.tiny_random import save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt") / "local-tiny-clip"
    save_checkpoint("tiny-random-clip", folder)
    root = shared_artifacts.export("clip", "--model", str(folder), "--variants", "fp32")
    entry = _entry(root, "local-tiny-clip")
    assert entry.trained and entry.note is None and entry.defaults == {"wasm": "fp32", "webgpu": "fp32"}
    assert list(entry.variants) == ["fp32"]
    report = json.loads((root / "local-tiny-clip" / "export-report.json").read_text())
    assert report["variants"]["fp32"]["parity"]["text_model"]["cosine_min"] >= FP32_MIN
    tiny = shared_artifacts.clip("tiny-random-clip")
    for rest in ("tokenizer.json", "preprocessor_config.json", "onnx/text_model.onnx", "onnx/vision_model.onnx"):
        assert (root / "local-tiny-clip" / rest).read_bytes() == (tiny / "tiny-random-clip" / rest).read_bytes(), rest


def test_exception_mid_export_changes_nothing(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import quantize
    from exporter.vision_export import export_vision

    before = _snapshot(baseline)

    def explode(*args, **kwargs) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(quantize, "quantize_4bit", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_vision("tiny-random-clip", baseline, ["fp32", "int8", "q4"])
    assert _snapshot(baseline) == before
    _assert_files_match(baseline)


def test_fp32_parity_failure_commits_nothing(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import vision_export

    before = _snapshot(baseline)
    monkeypatch.setattr(vision_export, "FP32_MIN_COSINE", 1.5)  # unreachable: every export must fail the gate
    with pytest.raises(ParityError) as err:
        vision_export.export_vision("tiny-random-clip", baseline, ["fp32", "int8"])
    assert "nothing was committed" in str(err.value) and err.value.fix
    assert _snapshot(baseline) == before


def test_expanded_int8_gate_failure_commits_nothing(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import vision_export

    before = _snapshot(baseline)
    monkeypatch.setattr(vision_export, "EXPANDED_MIN_COSINE", 1.5)  # unreachable
    with pytest.raises(ParityError) as err:
        vision_export.export_vision("tiny-random-clip", baseline, ["fp32", "int8"])
    assert "expanded to fp32 weights" in str(err.value) and "nothing was committed" in str(err.value)
    assert err.value.fix
    assert _snapshot(baseline) == before


def _staged(root: Path, pattern: str) -> Callable[[], bool]:
    return lambda: any((root / ".staging").glob(pattern))


@pytest.mark.timeout(900)
def test_sigkill_at_several_moments_keeps_a_valid_manifest(baseline: Path) -> None:
    """A real SIGKILL of `python -m exporter clip` while it imports, exports, quantizes, and is about to commit."""
    old_revision = _entry(baseline, "tiny-random-clip").revision
    start = time.monotonic()
    moments = {
        "importing": lambda: time.monotonic() - start > 1.0,
        "exporting": _staged(baseline, "*/onnx/*.onnx"),
        "quantizing": _staged(baseline, "*/onnx/*_q4.onnx"),
        "reporting": _staged(baseline, "*/export-report.json"),
    }
    revisions: dict[str, str] = {}
    for moment, ready in moments.items():
        start = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "clip",
                "--model",
                "tiny-random-clip",
                "--variants",
                "fp32,q4",
                "--out",
                str(baseline),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None and not ready() and time.monotonic() - start < 300:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        if moment != "reporting":  # the last moment may race the commit; the others are surely before it
            assert proc.returncode == -signal.SIGKILL, moment
        _assert_files_match(baseline)  # the manifest parses and names only complete, verified files
        revisions[moment] = _entry(baseline, "tiny-random-clip").revision
        (baseline / "tiny-random-clip").resolve(strict=True)
    assert [revisions[m] for m in ("importing", "exporting", "quantizing")] == [old_revision] * 3
    run_cli("repair", "--out", str(baseline))
    assert not list((baseline / ".staging").glob("*"))
    entry = _entry(baseline, "tiny-random-clip")
    assert (baseline / "tiny-random-clip").resolve() == revision_dir(baseline, entry).resolve()
    assert sorted(p.name for p in (baseline / ".rev" / "tiny-random-clip").iterdir()) == [entry.revision]
    _assert_files_match(baseline)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_full_size_clip_vit_b32_int8_parity(tmp_path: Path) -> None:
    """The full ViT-B/32 architecture (random weights): int8 towers keep cosine >= 0.999 with PyTorch."""
    run_cli(
        "clip", "--model", "random-clip-vit-b32", "--variants", "fp32,int8,q4", "--out", str(tmp_path), timeout=1800
    )
    report = json.loads((tmp_path / "random-clip-vit-b32" / "export-report.json").read_text())
    for tower in ("vision_model", "text_model"):
        assert report["variants"]["fp32"]["parity"][tower]["cosine_min"] >= FP32_MIN
        assert report["variants"]["int8"]["parity"][tower]["cosine_min"] >= 0.999, report["variants"]["int8"]
        expanded = report["variants"]["int8"]["expanded_parity"][tower]  # the WASM default's form
        assert expanded["cosine_min"] >= 0.999 and expanded["dynamic_quantize_left"] == 0, expanded
    _assert_files_match(tmp_path)
