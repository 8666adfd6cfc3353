"""Intervals for accuracies: how far a figure can be trusted given how many test images it rests on."""

from __future__ import annotations

import math


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion correct/n (sound near 0 and 1 and for small n, unlike
    the normal approximation). (0, 1) when n is 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: list[float], n_test: int) -> tuple[float, float]:
    """95 % interval of the seeds' mean accuracy from test sampling: Wilson on the mean accuracy with the
    test set's size (the same test images serve every seed, so seeds add no test images)."""
    if not values:
        return (0.0, 1.0)
    m = sum(values) / len(values)
    return wilson(round(m * n_test), n_test)
