"""Newell & Deng's utility of pre-training, U(n) = n̂/n − 1, where a model trained from scratch on n̂ labels
scores what the fine-tuned model scores on n: how many more labels scratch training needs for the same result.

The scratch curve is measured at a few label counts only, so n̂ is read off it by interpolation, linear in
log n (the curves are close to straight there). Written by hand: it is a few lines of numpy, and no pinned
library computes it. Two choices the paper leaves open, made here and reported with every value:
- the curve's monotone envelope is used (more labels never score less), so n̂ is unique;
- a score beyond the measured range extends the nearest segment of the curve, and n̂ is clamped to
  [n_min / max_factor, n_max * max_factor], so U stays finite; such values are flagged as extrapolated.
"""
from __future__ import annotations

import numpy as np


def matched_count(counts, scratch, score: float, max_factor: float = 10.0) -> tuple[float, bool]:
    """n̂ with scratch(n̂) = score on the scratch curve (counts ascending, one score each) -> (n̂, extrapolated)."""
    counts, scratch = np.asarray(counts, float), np.asarray(scratch, float)
    if len(counts) < 2 or np.any(np.diff(counts) <= 0):
        raise ValueError(f"the scratch curve needs at least 2 strictly increasing label counts; got {counts.tolist()}")
    if max_factor < 1:
        raise ValueError(f"max_factor must be >= 1; got {max_factor}")
    envelope = np.maximum.accumulate(scratch)
    rising = np.concatenate([[True], np.diff(envelope) > 0])  # keep each level's first count
    log_n, level = np.log(counts[rising]), envelope[rising]
    low, high = np.log(counts[0] / max_factor), np.log(counts[-1] * max_factor)
    if len(level) == 1:  # a flat curve: any other score lies beyond it
        if score == level[0]:
            return float(counts[0]), False
        return float(np.exp(high if score > level[0] else low)), True
    if level[0] <= score <= level[-1]:
        return float(np.exp(np.interp(score, level, log_n))), False
    i = -2 if score > level[-1] else 0  # extend the last (or first) segment
    slope = (log_n[i + 1] - log_n[i]) / (level[i + 1] - level[i])
    return float(np.exp(np.clip(log_n[i] + slope * (score - level[i]), low, high))), True


def utility(counts, scratch, finetuned, max_factor: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """U(n) = n̂/n − 1 at every count of the curves (the same counts, ascending) -> (U, extrapolated flags)."""
    matched = [matched_count(counts, scratch, score, max_factor) for score in finetuned]
    n_hat = np.array([m[0] for m in matched])
    return n_hat / np.asarray(counts, float) - 1, np.array([m[1] for m in matched])
