"""Few-shot adaptation: the numpy reference (reference/fewshot.py) checked against independent
computations (primal gradient descent, brute-force leave-one-out), and the browser's TypeScript
(web/src/engine/fewshot/, run in Node) against the reference: same choice, weights and probabilities
within 1e-5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from browser_support import ENGINE, run_engine_script
from reference.errors import FewShotError
from reference.fewshot import (
    FOLDS,
    MAX_LOO,
    PROBE_STEPS,
    fit,
    fold_of_each,
    predict,
    softmax,
    tip_candidates,
    tip_logits,
    train_probe,
)

PARITY = 1e-5


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def clustered(classes: int, dim: int, shots: int, seed: int, spread: float = 1.5):
    """Text embeddings near class centres, `shots` examples per class, and 10 queries per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    text = unit(centres + rng.normal(size=(classes, dim)) * spread)
    y = np.repeat(np.arange(classes), shots)
    x = unit(centres[y] + rng.normal(size=(len(y), dim)) * spread)
    qy = np.repeat(np.arange(classes), 10)
    q = unit(centres[qy] + rng.normal(size=(len(qy), dim)) * spread)
    return text, x, y, q, qy


# ---------------------------------------------------------------- the reference against itself


def test_probe_in_the_span_of_the_examples_equals_primal_gradient_descent():
    """Training A [C, n] on the Gram matrix is the same Nesterov descent as training V [C, D] directly."""
    text, x, y, _, _ = clustered(3, 8, 4, seed=1)
    scale, mu = 12.0, 0.01
    xs, t = x.astype(np.float64), text.astype(np.float64)
    onehot = np.eye(3)[y]
    a = train_probe(xs @ xs.T, scale * xs @ t.T, onehot, mu)
    # Primal: gradient of mean CE + mu/2 ||V - V0||^2 in V, the same step size and momentum.
    n = len(xs)
    lipschitz = 0.5 * np.abs(xs @ xs.T).sum(axis=1).max() / n + mu
    root = np.sqrt(mu / lipschitz)
    momentum = (1 - root) / (1 + root)
    v0 = scale * t
    v = prev = v0.copy()
    for _ in range(PROBE_STEPS):
        look = v + momentum * (v - prev)
        grad = (softmax(xs @ look.T) - onehot).T @ xs / n + mu * (look - v0)
        prev, v = v, look - grad / lipschitz
    np.testing.assert_allclose(v0 + a @ xs, v, atol=1e-10)
    # And it learned: the training examples are fitted better than by the zero-shot weights.

    def nll(w: np.ndarray) -> float:
        return float(-np.log(softmax(xs @ w.T)[np.arange(n), y]).mean())

    assert nll(v) < nll(v0) - 0.1


def test_strong_pull_keeps_the_zero_shot_classifier():
    text, x, y, _, _ = clustered(3, 8, 4, seed=2)
    xs = x.astype(np.float64)
    a = train_probe(xs @ xs.T, 10 * xs @ text.T.astype(np.float64), np.eye(3)[y], mu=1e6)
    assert np.abs(a).max() < 1e-5


def test_tip_leave_one_out_equals_dropping_each_example():
    text, x, y, _, _ = clustered(4, 16, 3, seed=3)
    t, xs = text.astype(np.float64), x.astype(np.float64)
    candidates = tip_candidates(xs, y, t, 20.0)
    for c in candidates[::7]:
        correct, nll = 0, 0.0
        for i in range(len(xs)):
            keep = np.arange(len(xs)) != i
            logits = tip_logits(xs[i : i + 1], t, 20.0, xs[keep], np.eye(4)[y[keep]], **c.params)[0]
            correct += int(logits.argmax() == y[i])
            nll -= np.log(softmax(logits)[y[i]])
        assert c.correct == correct
        assert c.nll == pytest.approx(nll, rel=1e-9)


def test_fit_adapts_beyond_zero_shot_and_reports_leave_one_out():
    text, x, y, q, qy = clustered(5, 32, 8, seed=4, spread=2.0)
    zero_shot = float(((q @ text.T).argmax(1) == qy).mean())
    for method in ("probe", "tip"):
        c = fit(text, 30.0, x, y, method)
        assert c.method == method and c.folds == FOLDS  # 40 examples: seeded folds
        assert 0 <= c.loo_accuracy <= 1
        assert float((predict(c, q).argmax(1) == qy).mean()) > zero_shot
    assert fit(text, 30.0, x, y).method in ("probe", "tip")


def test_folds_are_leave_one_out_then_seeded():
    assert fold_of_each(5, 0)[0] == 5 and list(fold_of_each(5, 0)[1]) == [0, 1, 2, 3, 4]
    assert fold_of_each(MAX_LOO, 0)[0] == MAX_LOO
    folds, a = fold_of_each(75, 1)
    assert folds == FOLDS and sorted(np.bincount(a)) == [7] * 5 + [8] * 5
    assert list(a) == list(fold_of_each(75, 1)[1]) and list(a) != list(fold_of_each(75, 2)[1])


@pytest.mark.parametrize(
    "text, labels, fix",
    [
        (np.ones((1, 4), np.float32), [0], "2+ labels"),
        (np.ones((2, 4), np.float32), [2], "label every example"),
    ],
)
def test_bad_inputs_name_the_fix(text, labels, fix):
    with pytest.raises(FewShotError) as err:
        fit(text, 1.0, np.ones((1, 4), np.float32), np.array(labels))
    assert fix in str(err.value)


# ---------------------------------------------------------------- the browser's TypeScript against it


@pytest.mark.parametrize(
    "method, classes, shots, seed",
    [("auto", 4, 3, 5), ("probe", 3, 2, 6), ("tip", 5, 4, 7), ("auto", 6, 7, 8)],  # last: 42 examples, folds
)
def test_typescript_fit_matches_numpy(method, classes, shots, seed):
    text, x, y, q, _ = clustered(classes, 24, shots, seed)
    want = fit(text, 25.0, x, y, method, seed=seed)
    got = run_engine_script(f"""
import {{ fit, predict }} from "{ENGINE}/fewshot/fit.ts";
const rows = (a) => a.map((r) => Float32Array.from(r));
const c = fit({{ text: rows({json.dumps(text.tolist())}), scale: 25, examples: rows({json.dumps(x.tolist())}),
  labels: {json.dumps(y.tolist())}, method: "{method}", seed: {seed} }});
print({{ method: c.method, params: c.params, folds: c.folds, loo: c.looAccuracy, candidates: c.candidates,
  weights: c.weights && Array.from(c.weights),
  probs: predict(c, rows({json.dumps(q.tolist())})).map((p) => Array.from(p)) }});
""")
    assert (got["method"], got["params"], got["folds"]) == (want.method, want.params, want.folds)
    assert got["loo"] == want.loo_accuracy
    assert [c["correct"] for c in got["candidates"]] == [c.correct for c in want.candidates]
    np.testing.assert_allclose([c["nll"] for c in got["candidates"]], [c.nll for c in want.candidates], rtol=1e-9)
    if want.weights is not None:
        np.testing.assert_allclose(np.array(got["weights"]).reshape(want.weights.shape), want.weights, atol=PARITY)
    else:
        assert got["weights"] is None
    np.testing.assert_allclose(got["probs"], predict(want, q), atol=PARITY, rtol=0)
