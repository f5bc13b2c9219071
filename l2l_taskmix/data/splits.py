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

__all__ = ["support_test_split", "split_task", "check_shots"]


def support_test_split(
    labels: Sequence,
    shots: int | None = None,
    fraction: float | None = None,
    seed: int | np.random.Generator = 0,
    groups: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified support / test indices of one task.

    Args:
        labels: class label of each example (any hashable values).
        shots: support examples per class (few-shot); every class needs ``shots + 1``.
        fraction: share of every class in the support part, in (0, 1); rounded per class and
            kept within ``1 .. n_c - 1`` so both parts see every class (needs ``n_c >= 2``).
        seed: int or ``numpy.random.Generator``.
        groups: optional group id per example: examples of one group (the same text repeated)
            go to the same side, never both. A group counts as one example of its most common
            label (the first row's on a tie); without repeats the split is the same as with
            ``groups=None``.

    Returns:
        ``(support_idx, test_idx)``: sorted int64 arrays, disjoint, covering all examples.

    Example::

        >>> s, t = support_test_split(["a", "a", "a", "b", "b", "b"], shots=1, seed=0, groups=[0, 0, 2, 3, 4, 5])
        >>> bool({0, 1} <= set(s) or {0, 1} <= set(t))        # rows 0 and 1 are the same text
        True
    """
    if (shots is None) == (fraction is None):
        raise ValueError("give exactly one of shots (examples per class) or fraction")
    labels = np.asarray(list(labels), dtype=object)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D sequence")
    names, label_code = np.unique(labels.astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"a task needs at least two classes, got {list(names)}")
    if groups is None:
        unit_of_row = np.arange(len(labels))
    else:
        groups = np.asarray(list(groups))
        if groups.shape != labels.shape:
            raise ValueError(f"groups must have one value per example ({len(labels)}), got shape {groups.shape}")
        _, first_row, unit_of_row = np.unique(groups, return_index=True, return_inverse=True)
        # number units by their first row, so that without repeats unit k is row k
        rank = np.argsort(np.argsort(first_row))
        unit_of_row = rank[unit_of_row]
    num_units = int(unit_of_row.max()) + 1
    votes = np.zeros((num_units, len(names)), dtype=np.int64)
    np.add.at(votes, (unit_of_row, label_code), 1)
    first_label = np.empty(num_units, dtype=np.int64)
    first_label[unit_of_row[::-1]] = label_code[::-1]  # the first row's label of each unit
    best = votes.max(1, keepdims=True)
    unit_label = np.where(votes[np.arange(num_units), first_label] == best[:, 0], first_label, votes.argmax(1))
    counts = np.bincount(unit_label, minlength=len(names))
    what = "examples" if groups is None else "distinct texts"
    absent = [str(c) for c, n in zip(names, counts) if n == 0]
    if absent:
        raise ValueError(f"classes {absent} occur only on repeated texts labelled otherwise; they cannot be split")
    if shots is not None:
        shots = check_scalar(shots, "shots", int, min_val=1)
        small = [str(c) for c, n in zip(names, counts) if n < shots + 1]
        if small:
            least = int(counts.min())
            fix = f"use shots of at most {least - 1}" if least >= 2 else f"a class has a single {what[:-1]}"
            raise ValueError(
                f"shots={shots} needs at least {shots + 1} {what} per class ({shots} support + 1 test); "
                f"too few in {small[:5]}{' ...' if len(small) > 5 else ''} (the smallest class has {least}): "
                f"{fix}, or leave the task out / add examples"
            )
        sizes = np.full(len(names), int(shots))
    else:
        fraction = check_scalar(fraction, "fraction", float, min_val=0, max_val=1, include_boundaries="neither")
        small = [str(c) for c, n in zip(names, counts) if n < 2]
        if small:
            raise ValueError(
                f"a fractional split needs >= 2 {what} per class; too few in {small[:5]}"
                f"{' ...' if len(small) > 5 else ''}: leave the task out or add examples"
            )
        sizes = np.clip(np.rint(float(fraction) * counts).astype(int), 1, counts - 1)
    rng = np.random.default_rng(seed)
    chosen = []
    for c, k in enumerate(sizes):
        members = np.flatnonzero(unit_label == c)
        chosen.append(rng.permutation(members)[:k])
    in_support = np.isin(unit_of_row, np.concatenate(chosen))
    return np.flatnonzero(in_support).astype(np.int64), np.flatnonzero(~in_support).astype(np.int64)


def split_task(
    task: IntentTask,
    shots: int | None = None,
    fraction: float | None = None,
    seed: int | np.random.Generator = 0,
) -> tuple[IntentTask, IntentTask]:
    """``(support_task, test_task)`` of an :class:`IntentTask`, see :func:`support_test_split`."""
    s, t = support_test_split(task.intents, shots=shots, fraction=fraction, seed=seed)
    return task.subset(s), task.subset(t)


def check_shots(tasks: Sequence[IntentTask], shots: int | None) -> None:
    """Refuse, before anything is encoded, a ``shots`` that some task cannot split: the same
    check as :func:`support_test_split` (repeated texts count once, as the benchmark splits
    them), as a ValueError naming the task. ``shots=None`` (the fractional regime) needs two
    distinct texts per class.

    Example::

        >>> task = IntentTask("alarm", ["a", "b", "c", "d"], ["SET", "SET", "STOP", "STOP"])
        >>> check_shots([task], 1)
        >>> check_shots([task], 2)
        Traceback (most recent call last):
        ...
        ValueError: task 'alarm': shots=2 needs at least 3 distinct texts per class (2 support + 1 test); too few in ['SET', 'STOP'] (the smallest class has 2): use shots of at most 1, or leave the task out / add examples
    """  # noqa: E501 (a doctest's expected message)
    for task in tasks:
        groups = task.groups()
        try:
            if shots is None:
                support_test_split(task.intents, fraction=0.5, groups=groups)
            else:
                support_test_split(task.intents, shots=shots, groups=groups)
        except ValueError as err:
            raise ValueError(f"task {task.name!r}: {err}") from None
