"""ArtifactStore: content-addressed revisions, atomic publish, cleanup, locking (no models needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contract.manifest import REVISIONS_DIR, ModelEntry, load_manifest, revision_dir
from exporter.artifacts import STAGING_DIR, ArtifactStore, sha256_file
from exporter.errors import ArtifactStoreError

VISION = {
    "scoring": "softmax",
    "logit_scale": 100.0,
    "template": "a photo of a {}.",
    "image_size": 32,
    "embed_dim": 8,
    "text_max_length": 77,
    "pad_to_max_length": False,
    "text_inputs": ["input_ids"],
}


def _commit(store: ArtifactStore, model_id: str, payload: bytes, extra: dict[str, bytes] | None = None):
    with store.stage(model_id) as staging:
        staging.path("onnx/vision_model.onnx").write_bytes(payload)
        staging.path("onnx/text_model.onnx").write_bytes(payload[::-1])
        staging.path("export-report.json").write_text("{}")
        for rest, data in (extra or {}).items():
            staging.path(rest).write_bytes(data)
        return staging.commit(
            variants={
                "fp32": {
                    "dtype": "fp32",
                    "files": {"vision_model": "onnx/vision_model.onnx", "text_model": "onnx/text_model.onnx"},
                }
            },
            report="export-report.json",
            task="zero-shot-image-classification",
            family="clip",
            source="test",
            trained=False,
            defaults={"wasm": "fp32"},
            vision=VISION,
        )


def _assert_consistent(root: Path) -> None:
    """Every listed file exists under its revision with the recorded size and sha256."""
    manifest = load_manifest(root)
    for entry in manifest.models:
        folder = revision_dir(root, entry)
        for f in entry.files:
            path = folder / f.path[len(entry.id) + 1 :]  # logical '<id>/<rest>'
            assert path.stat().st_size == f.bytes
            assert sha256_file(path) == f.sha256
        assert (root / entry.id).resolve() == folder.resolve()


def test_commit_writes_manifest_symlink_and_hashes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    entry = _commit(store, "m1", b"weights-1")
    assert load_manifest(tmp_path).get("m1") == entry
    assert (tmp_path / "m1" / "onnx" / "vision_model.onnx").read_bytes() == b"weights-1"
    assert entry.file("m1/onnx/vision_model.onnx").sha256 == hashlib.sha256(b"weights-1").hexdigest()
    assert entry.variants["fp32"].files["vision_model"] == "m1/onnx/vision_model.onnx"
    assert entry.report == "m1/export-report.json"
    assert not list((tmp_path / STAGING_DIR).glob("*"))
    _assert_consistent(tmp_path)


def test_revision_is_content_addressed_and_old_ones_are_dropped(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = _commit(store, "m1", b"a")
    again = _commit(store, "m1", b"a")
    assert again.revision == first.revision  # same bytes -> same revision, kept once
    second = _commit(store, "m1", b"b")
    assert second.revision != first.revision
    revisions = sorted(p.name for p in (tmp_path / REVISIONS_DIR / "m1").iterdir())
    assert revisions == [second.revision]
    _assert_consistent(tmp_path)


def test_models_with_org_ids_live_side_by_side(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _commit(store, "m1", b"a")
    _commit(store, "org/m2", b"b")
    assert [m.id for m in load_manifest(tmp_path).models] == ["m1", "org/m2"]
    assert (tmp_path / "org" / "m2" / "onnx" / "vision_model.onnx").read_bytes() == b"b"
    _assert_consistent(tmp_path)


def test_exception_inside_stage_leaves_everything_unchanged(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    _commit(store, "m1", b"a")
    before = (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(RuntimeError), store.stage("m1") as staging:
        staging.path("onnx/vision_model.onnx").write_bytes(b"half-written")
        raise RuntimeError("boom")
    assert (tmp_path / "manifest.json").read_bytes() == before
    assert (tmp_path / "m1" / "onnx" / "vision_model.onnx").read_bytes() == b"a"
    assert not list((tmp_path / STAGING_DIR).glob("*"))


def test_a_second_writer_gets_a_named_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store._locked(), pytest.raises(ArtifactStoreError) as err:
        _commit(store, "m1", b"a")
    assert err.value.fix
    assert not (tmp_path / "manifest.json").exists()


def test_repair_drops_leftovers_and_restores_the_symlink(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    entry = _commit(store, "m1", b"a")
    leftover = tmp_path / STAGING_DIR / "m1.dead"
    leftover.mkdir(parents=True)
    orphan = tmp_path / REVISIONS_DIR / "m1" / "0123456789abcdef"
    orphan.mkdir()
    (tmp_path / "m1").unlink()
    (tmp_path / "m1").symlink_to(orphan.relative_to(tmp_path))
    report = store.repair()
    assert not leftover.exists() and not orphan.exists()
    assert (tmp_path / "m1").resolve() == revision_dir(tmp_path, entry).resolve()
    _assert_consistent(tmp_path)
    # It says what it did; a second run finds nothing to do.
    assert report.symlinks_fixed == ["m1"] and report.staging_removed == 1
    assert report.revisions_removed == ["revisions/m1/0123456789abcdef".replace("revisions", REVISIONS_DIR)]
    assert "re-pointed 1 symlink(s) (m1)" in report.summary()
    assert store.repair().summary().startswith("nothing to repair")


def test_invalid_manifest_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "models": [{"id": "../x"}]}))
    with pytest.raises(ArtifactStoreError) as err:
        ArtifactStore(tmp_path).manifest()
    assert "not a valid manifest" in str(err.value) and err.value.fix


def test_a_commit_leaves_other_live_exports_staging_alone(tmp_path: Path) -> None:
    """Two exports into one folder: the first to commit must not delete the other's half-written files."""
    store = ArtifactStore(tmp_path)
    with store.stage("slow") as slow:
        slow.path("config.json").write_text("{}")
        _commit(store, "fast", b"a")  # commits, and cleans leftovers of *dead* exports only
        assert (slow.dir / "config.json").read_text() == "{}"
    assert not list((tmp_path / STAGING_DIR).glob("*"))  # gone once its export ends


def test_leftovers_of_a_killed_export_are_dropped_by_the_next_commit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    dead = tmp_path / STAGING_DIR / "m1.killed"
    (dead / "onnx").mkdir(parents=True)
    (dead / "onnx" / "vision_model.onnx").write_bytes(b"partial")
    _commit(store, "m1", b"a")
    assert not dead.exists()


def test_config_files_get_their_roles_in_the_manifest(tmp_path):
    """web/ reads config files by role from the manifest; a role must name a listed file."""
    with ArtifactStore(tmp_path).stage("m") as staging:
        for rest in ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", "notes.json"):
            staging.path(rest).write_bytes(b"{}")
        entry = staging.commit(
            variants={"fp32": {"dtype": "fp32", "files": {"model": "onnx/model.onnx"}}},
            task="text-generation",
            family="llama",
            source="test",
            trained=False,
            defaults={"wasm": "fp32"},
            llm={
                "context_length": 8,
                "num_layers": 1,
                "num_kv_heads": 1,
                "head_dim": 2,
                "vocab_size": 4,
                "eos_token_ids": [2],
            },
        )
    assert entry.configs == {
        "tokenizer": "m/tokenizer.json",
        "tokenizer_config": "m/tokenizer_config.json",
        "config": "m/config.json",
    }
    assert load_manifest(tmp_path).get("m") == entry
    with pytest.raises(ValidationError, match="config role 'tokenizer' names unlisted file"):
        ModelEntry.model_validate({**entry.model_dump(), "configs": {"tokenizer": "m/missing.json"}})
