"""Agreement statistics between an exported output and its reference (generic: any rows, any scores)."""

from __future__ import annotations

import numpy as np


def row_cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine of each row pair. reference, candidate: [N, D] -> [N] (float64)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs candidate {candidate.shape}")
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)


def cosine_stats(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """{"cosine_min", "cosine_mean", "max_abs_diff"} over the rows of [N, D] arrays."""
    cos = row_cosines(reference, candidate)
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64)).max()
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "max_abs_diff": float(diff)}


def top1_agreement(reference_scores: np.ndarray, candidate_scores: np.ndarray) -> float:
    """Share of rows whose argmax over the last axis agrees. scores: [..., C] -> fraction in [0, 1]."""
    if reference_scores.shape != candidate_scores.shape:
        raise ValueError(f"shape mismatch: {reference_scores.shape} vs {candidate_scores.shape}")
    return float((reference_scores.argmax(-1) == candidate_scores.argmax(-1)).mean())
