"""Per-task support / test splits, stratified by intent.

The support part is either ``shots`` examples of every class (few-shot) or a ``fraction`` of
every class (rounded per class, at least one example on each side). The draw is deterministic
given ``seed`` (an int or a ``numpy.random.Generator``).

Example::

    >>> from l2l_taskmix.data import support_test_split
    >>> labels = ["a"] * 4 + ["b"] * 6
    >>> s, t = support_test_split(labels, shots=2, seed=0)
    >>> len(s), len(t), sorted(labels[i] for i in s)
    (4, 6, ['a', 'a', 'b', 'b'])
    >>> s, t = support_test_split(labels, fraction=0.5, seed=0)
    >>> len(s), len(t)
    (5, 5)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..validation import check_scalar
from .tasks import IntentTask

__all__ = ["support_test_split", "split_task"]


def support_test_split(
    labels: Sequence,
    shots: int | None = None,
    fraction: float | None = None,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified support / test indices of one task.

    Args:
        labels: class label of each example (any hashable values).
        shots: support examples per class (few-shot); every class needs ``shots + 1``.
        fraction: share of every class in the support part, in (0, 1); rounded per class and
            kept within ``1 .. n_c - 1`` so both parts see every class (needs ``n_c >= 2``).
        seed: int or ``numpy.random.Generator``.

    Returns:
        ``(support_idx, test_idx)``: sorted int64 arrays, disjoint, covering all examples.
    """
    if (shots is None) == (fraction is None):
        raise ValueError("give exactly one of shots (examples per class) or fraction")
    labels = np.asarray(list(labels), dtype=object)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D sequence")
    classes, inverse, counts = np.unique(labels.astype(str), return_inverse=True,
                                         return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"a task needs at least two classes, got {list(classes)}")
    if shots is not None:
        shots = check_scalar(shots, "shots", int, min_val=1)
        small = [str(c) for c, n in zip(classes, counts) if n < shots + 1]
        if small:
            raise ValueError(
                f"shots={shots} needs at least {shots + 1} examples per class; too few in {small}"
            )
        sizes = np.full(len(classes), int(shots))
    else:
        fraction = check_scalar(fraction, "fraction", float, min_val=0, max_val=1, include_boundaries="neither")
        small = [str(c) for c, n in zip(classes, counts) if n < 2]
        if small:
            raise ValueError(f"a fractional split needs >= 2 examples per class; too few in {small}")
        sizes = np.clip(np.rint(float(fraction) * counts).astype(int), 1, counts - 1)
    rng = np.random.default_rng(seed)
    support = []
    for c, k in enumerate(sizes):
        members = np.flatnonzero(inverse == c)
        support.append(rng.permutation(members)[:k])
    support_idx = np.sort(np.concatenate(support)).astype(np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[support_idx] = False
    return support_idx, np.flatnonzero(mask).astype(np.int64)


def split_task(
    task: IntentTask,
    shots: int | None = None,
    fraction: float | None = None,
    seed: int | np.random.Generator = 0,
) -> tuple[IntentTask, IntentTask]:
    """``(support_task, test_task)`` of an :class:`IntentTask`, see :func:`support_test_split`."""
    s, t = support_test_split(task.intents, shots=shots, fraction=fraction, seed=seed)
    return task.subset(s), task.subset(t)
