"""`python -m reference.fewshot_eval` (fast settings) on tiny-random-clip, and its generated data set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from reference.fewshot_data import CLASSES, POOL, TEST, images

REPO = Path(__file__).resolve().parent.parent


def pixels(pictures: list[Image.Image]) -> np.ndarray:
    f = np.stack([np.asarray(im.resize((24, 24)), dtype=np.float64).ravel() for im in pictures])
    f -= f.mean(axis=1, keepdims=True)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def test_data_set_has_visual_structure_and_disjoint_splits():
    pool, pool_y = images(POOL, 8)
    test, test_y = images(TEST, 10)
    assert len(CLASSES) >= 10 and len({c.label for c in CLASSES}) == len(CLASSES)
    a, b = pixels(pool), pixels(test)
    assert (b @ a.T).max() < 0.999  # no test image repeats a pool image
    # Even 1-nearest-neighbour on raw 24x24 pixels beats chance (1/12) by far: the classes are visible.
    accuracy = (pool_y[(b @ a.T).argmax(axis=1)] == test_y).mean()
    assert accuracy > 2.5 / len(CLASSES)
    assert np.array_equal(np.asarray(images(TEST, 1)[0][3]), np.asarray(test[30]))  # a pure function of its index


def test_eval_prints_the_table_and_writes_the_plot(shared_artifacts, tmp_path):
    root = shared_artifacts.clip("tiny-random-clip")
    out, plot = tmp_path / "report.json", tmp_path / "fewshot.png"
    proc = subprocess.run(
        [sys.executable, "-m", "reference.fewshot_eval", "--artifacts", str(root), "--models", "tiny-random-clip"]
        + ["--shots", "1,4", "--seeds", "2", "--test-per-class", "4", "--plot", str(plot), "--json", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tiny-random-clip is UNTRAINED" in proc.stderr
    (report,) = json.loads(out.read_text())
    assert report["model"] == "tiny-random-clip" and report["test_images"] == 4 * len(CLASSES)
    assert [r["shots"] for r in report["rows"]] == [1, 4]
    for row in report["rows"]:
        assert row["zero-shot"]["std"] == 0.0
        for method in ("zero-shot", "probe", "tip", "auto"):
            assert 0.0 <= row[method]["mean"] <= 1.0
            # Accuracies are counts over 48 test images, averaged over 2 seeds.
            assert abs(row[method]["mean"] * 96 - round(row[method]["mean"] * 96)) < 1e-9
        assert row["auto"]["mean"] in {row["probe"]["mean"], row["tip"]["mean"]} or 0 < row["auto picked probe"] < 1
    lines = proc.stdout.splitlines()
    assert any(line.split()[:1] == ["4"] and line.count("±") == 4 for line in lines), proc.stdout
    with Image.open(plot) as im:
        assert im.size[0] > 300 and im.size[1] > 200


def test_eval_names_a_bad_checkpoint(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "reference.fewshot_eval", "--artifacts", str(tmp_path), "--checkpoint", str(tmp_path)]
        + ["--plot", str(tmp_path / "x.png")],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "cannot export checkpoint" in proc.stderr and "fix:" in proc.stderr
