"""Few-shot adaptation on a locked image tower (numpy reference of web/src/engine/fewshot/).

The image embeddings stay as the tower made them (LiT's "locked image"); only a classifier on top
of them learns from the user's labelled examples, starting from the zero-shot one (the class text
embeddings). Two methods, hyperparameters chosen by cross-validation on the user's own examples
(leave-one-out up to MAX_LOO examples, else FOLDS seeded folds). docs/fewshot.md explains.

* probe: logit weights V [C, D] = scale * text + A @ X, trained by full-batch Nesterov gradient
  descent on mean cross-entropy + mu/2 * ||V - scale * text||^2 (pulled toward the zero-shot
  classifier). V - V0 stays in the span of the examples, so training runs on the Gram matrix
  K = X X^T [n, n] with A [C, n]: a step costs C*n^2, not C*n*D.
* tip: zero-shot logits + alpha * exp(-beta * (1 - cos(x, example))) @ one_hot(labels) (Tip-Adapter).

Everything is float64 inside; embeddings and weights are float32 at the edges, as in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reference.errors import FewShotError
from reference.sampling import SeededRandom

PROBE_MU = (1.0, 0.1, 0.01, 0.001)
PROBE_STEPS = 200
TIP_ALPHA = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
TIP_BETA = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
MAX_LOO = 32  # exact leave-one-out up to here: the probe is trained once per example
FOLDS = 10  # above it, 10-fold cross-validation (a fold costs about n^2, so LOO would grow as n^3)
METHODS = ("probe", "tip")
# Two candidates whose held-out log-likelihoods differ by less than this (relative) count as tied:
# the first in grid order wins, so float rounding cannot flip the choice between numpy and the browser.
TIE = 1e-9


@dataclass(frozen=True)
class Candidate:
    method: str  # "probe" | "tip"
    params: dict[str, float]
    correct: int  # held-out examples predicted right
    nll: float  # sum of -log p(true class) over held-out examples


@dataclass
class Classifier:
    method: str
    params: dict[str, float]
    scale: float
    text: np.ndarray  # [C, D] float32, unit rows: the zero-shot classifier
    examples: np.ndarray  # [n, D] float32, unit rows
    labels: np.ndarray  # [n] int class indices
    weights: np.ndarray | None  # probe only: [C, D] float32 logit weights
    folds: int
    loo_accuracy: float
    candidates: list[Candidate] = field(default_factory=list)


def softmax(logits: np.ndarray) -> np.ndarray:  # over the last axis, float64
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def fold_of_each(n: int, seed: int) -> tuple[int, np.ndarray]:
    """(number of folds, fold index [n]): one example per fold up to MAX_LOO, else a seeded shuffle
    (mulberry32 Fisher-Yates, as the browser draws it) dealt round-robin into FOLDS folds."""
    if n <= MAX_LOO:
        return n, np.arange(n)
    order = list(range(n))
    rng = SeededRandom(seed)
    for i in range(n - 1, 0, -1):
        j = int(rng.next() * (i + 1))
        order[i], order[j] = order[j], order[i]
    fold = np.empty(n, dtype=np.int64)
    for k, example in enumerate(order):
        fold[example] = k % FOLDS
    return FOLDS, fold


def train_probe(gram: np.ndarray, zero_shot: np.ndarray, targets: np.ndarray, mu: float) -> np.ndarray:
    """gram K [n, n], zero_shot logits Z [n, C], one-hot targets Y [n, C] -> A [C, n].

    Logits of the training examples are Z + K @ A.T; the loss gradient in A is (P - Y).T / n + mu * A.
    Step 1/L with L = 0.5 * max row sum |K| / n + mu (softmax's Hessian is at most 0.5), constant
    Nesterov momentum for a mu-strongly convex problem, PROBE_STEPS steps.
    """
    n, classes = zero_shot.shape
    a = np.zeros((classes, n))
    if n == 0:
        return a
    lipschitz = 0.5 * np.abs(gram).sum(axis=1).max() / n + mu
    rate = 1.0 / lipschitz
    root = np.sqrt(mu / lipschitz)
    momentum = (1 - root) / (1 + root)
    previous = a
    for _ in range(PROBE_STEPS):
        look = a + momentum * (a - previous)
        probs = softmax(zero_shot + gram @ look.T)  # [n, C]
        grad = (probs - targets).T / n + mu * look  # [C, n]
        previous, a = a, look - rate * grad
    return a


def probe_weights(text: np.ndarray, scale: float, examples: np.ndarray, a: np.ndarray) -> np.ndarray:
    """[C, D] float32: scale * text + A @ X."""
    return (scale * text.astype(np.float64) + a @ examples.astype(np.float64)).astype(np.float32)


def tip_logits(
    queries: np.ndarray, text: np.ndarray, scale: float, keys: np.ndarray, onehot: np.ndarray, alpha: float, beta: float
) -> np.ndarray:
    """queries [m, D], text [C, D], keys [n, D], onehot [n, C] -> logits [m, C] (float64)."""
    q = queries.astype(np.float64)
    affinity = np.exp(-beta * (1.0 - q @ keys.astype(np.float64).T))  # [m, n]
    return scale * (q @ text.astype(np.float64).T) + alpha * (affinity @ onehot)


def _score(logits: np.ndarray, targets: np.ndarray) -> tuple[int, float]:
    """Held-out logits [m, C] and class indices [m] -> (correct, sum of -log p(true))."""
    correct = int((logits.argmax(axis=1) == targets).sum())
    nll = float(-log_softmax(logits)[np.arange(len(targets)), targets].sum())
    return correct, nll


def probe_candidates(
    x: np.ndarray, y: np.ndarray, text: np.ndarray, scale: float, fold: np.ndarray, folds: int
) -> list[Candidate]:
    classes = text.shape[0]
    gram = x @ x.T  # [n, n]
    zero_shot = scale * (x @ text.T)  # [n, C]
    onehot = np.eye(classes)[y]
    out = []
    for mu in PROBE_MU:
        correct, nll = 0, 0.0
        for f in range(folds):
            train, held = fold != f, fold == f
            a = train_probe(gram[np.ix_(train, train)], zero_shot[train], onehot[train], mu)
            logits = zero_shot[held] + gram[np.ix_(held, train)] @ a.T
            hits, loss = _score(logits, y[held])
            correct, nll = correct + hits, nll + loss
        out.append(Candidate("probe", {"mu": mu}, correct, nll))
    return out


def tip_candidates(x: np.ndarray, y: np.ndarray, text: np.ndarray, scale: float) -> list[Candidate]:
    """Exact leave-one-out: each example's own cache entry is dropped."""
    classes = text.shape[0]
    onehot = np.eye(classes)[y]
    zero_shot = scale * (x @ text.T)
    distance = 1.0 - x @ x.T  # [n, n]
    out = []
    for alpha in TIP_ALPHA:
        for beta in TIP_BETA:
            affinity = np.exp(-beta * distance)
            np.fill_diagonal(affinity, 0.0)
            correct, nll = _score(zero_shot + alpha * (affinity @ onehot), y)
            out.append(Candidate("tip", {"alpha": alpha, "beta": beta}, correct, nll))
    return out


def best(candidates: list[Candidate]) -> Candidate:
    """Most held-out examples right; ties: lower held-out NLL; still tied (within TIE): the first."""
    chosen = candidates[0]
    for c in candidates[1:]:
        if c.correct > chosen.correct or (
            c.correct == chosen.correct and c.nll < chosen.nll - TIE * max(1.0, abs(chosen.nll))
        ):
            chosen = c
    return chosen


def check_inputs(text: np.ndarray, examples: np.ndarray, labels: np.ndarray, method: str) -> None:
    if method not in (*METHODS, "auto"):
        raise FewShotError(f"unknown few-shot method {method!r}", fix="use 'probe', 'tip' or 'auto'")
    if text.ndim != 2 or text.shape[0] < 2:
        raise FewShotError(f"need at least 2 classes, got text weights of shape {text.shape}", fix="give 2+ labels")
    if len(examples) == 0:
        raise FewShotError("no labelled examples", fix="give at least one example image with its label")
    if examples.ndim != 2 or examples.shape[1] != text.shape[1]:
        raise FewShotError(
            f"example embeddings {examples.shape} do not match the text embeddings {text.shape}",
            fix="embed the examples with the same vision model as the labels",
        )
    if labels.shape != (len(examples),) or labels.min() < 0 or labels.max() >= text.shape[0]:
        raise FewShotError("an example's label is not one of the labels", fix="label every example with a given label")


def fit(
    text: np.ndarray, scale: float, examples: np.ndarray, labels: np.ndarray, method: str = "auto", seed: int = 0
) -> Classifier:
    """text [C, D] and examples [n, D] (unit rows, float32), labels [n] -> the classifier chosen by
    cross-validation among `method`'s candidates ("auto": both methods)."""
    labels = np.asarray(labels, dtype=np.int64)
    check_inputs(text, examples, labels, method)
    x = examples.astype(np.float64)
    t = text.astype(np.float64)
    folds, fold = fold_of_each(len(x), seed)
    candidates: list[Candidate] = []
    if method in ("probe", "auto"):
        candidates += probe_candidates(x, labels, t, scale, fold, folds)
    if method in ("tip", "auto"):
        candidates += tip_candidates(x, labels, t, scale)
    chosen = best(candidates)
    weights = None
    if chosen.method == "probe":
        onehot = np.eye(len(t))[labels]
        a = train_probe(x @ x.T, scale * (x @ t.T), onehot, chosen.params["mu"])
        weights = probe_weights(text, scale, examples, a)
    return Classifier(
        chosen.method,
        dict(chosen.params),
        scale,
        text.astype(np.float32),
        examples.astype(np.float32),
        labels,
        weights,
        folds,
        chosen.correct / len(x),
        candidates,
    )


def logits(classifier: Classifier, queries: np.ndarray) -> np.ndarray:
    """queries [m, D] unit rows -> [m, C] float64 logits."""
    if classifier.method == "probe":
        assert classifier.weights is not None
        return queries.astype(np.float64) @ classifier.weights.astype(np.float64).T
    onehot = np.eye(len(classifier.text))[classifier.labels]
    p = classifier.params
    return tip_logits(queries, classifier.text, classifier.scale, classifier.examples, onehot, p["alpha"], p["beta"])


def predict(classifier: Classifier, queries: np.ndarray) -> np.ndarray:
    """queries [m, D] -> class probabilities [m, C] (softmax over the classes, for every family)."""
    return softmax(logits(classifier, queries))
