"""One task of a meta-iteration, and its support/query split.

A :class:`Task` is what the package makes: a :class:`~l2l_taskmix.samplers.BatchTaskset`
sample, a synthetic TaskMix task, a MetaMix-extended task. It unpacks, indexes and collates
like a learn2learn task (``x, y = task``, ``task[0]``), and it knows its support and query
parts. A learn2learn sample ``[x, y]`` is never converted on its way through the wrappers;
:func:`as_task` makes a :class:`Task` of one where the package needs it (soft labels).

Example::

    >>> import torch
    >>> from l2l_taskmix import Task
    >>> task = Task(x=torch.arange(4.0)[:, None], y=torch.tensor([0, 0, 1, 1]))
    >>> x, y = task
    >>> task.support[1].tolist(), task[1] is y
    ([0, 1], True)
"""

from __future__ import annotations

import collections.abc
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np
import torch

from . import mixing
from .losses import check_soft_labels
from .validation import check_scalar

__all__ = ["Task", "as_task", "num_classes_of", "partition_task", "split_per_class"]

FEATURIZE_HINT = (
    "TaskMix and MetaMix interpolate numbers: featurize first (e.g. with l2l_taskmix.features) "
    "or mix after your encoder, calling TaskMix()(tasks) on the encoded tasks"
)


def _rows_by_class(classes: torch.Tensor) -> list[torch.Tensor]:
    """The row indices of each class, classes in ascending order, rows in their original order."""
    return [torch.nonzero(classes == c).flatten() for c in torch.unique(classes)]


def split_per_class(classes: torch.Tensor, shots: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and query row indices of a task, taken within each class.

    ``shots=None``: alternate rows of each class, the first, third, ... to the support part. On
    rows that ``KShots`` ordered class by class with an even count per class this is exactly
    learn2learn's even/odd ``adaptation_indices`` split; unlike that split, it stays per class
    whatever the row order. ``shots=k``: the first ``k`` rows of each class to the support part,
    as learn2learn's ``partition_task``. Both index tensors keep the original row order.

    Example::

        >>> import torch
        >>> support, query = split_per_class(torch.tensor([0, 0, 1, 1, 1, 1]))
        >>> support.tolist(), query.tolist()
        ([0, 2, 4], [1, 3, 5])
        >>> [i.tolist() for i in split_per_class(torch.tensor([0, 0, 1, 1, 1, 1]), shots=1)]
        [[0, 2], [1, 3, 4, 5]]
    """
    classes = torch.as_tensor(classes)
    if classes.dim() != 1:
        raise ValueError(f"classes must have shape (n,), got {tuple(classes.shape)}")
    shots = check_scalar(shots, "shots", int, min_val=1, allow_none=True)
    in_support = torch.zeros(classes.shape[0], dtype=torch.bool)
    for rows in _rows_by_class(classes.cpu()):
        in_support[rows[0::2] if shots is None else rows[:shots]] = True
    return torch.nonzero(in_support).flatten(), torch.nonzero(~in_support).flatten()


def _classes(y: torch.Tensor) -> torch.Tensor:
    """Each row's class: the label itself, or the largest soft label's column."""
    return y.argmax(1) if y.dim() == 2 else y


def partition_task(data: torch.Tensor, labels: torch.Tensor, shots: int = 1):
    """learn2learn's ``partition_task`` that also takes soft labels.

    Returns ``(support_data, support_labels), (query_data, query_labels)``: the first ``shots``
    rows of each class form the support part, the others the query part, grouped by class in
    ascending order. For integer labels the result equals ``learn2learn.data.partition_task``'s;
    soft labels of shape ``(n, C)`` (TaskMix's synthetic tasks) are grouped by their largest
    column and come back soft.

    Example::

        >>> import torch
        >>> (xs, ys), (xq, yq) = partition_task(torch.arange(6.0), torch.tensor([1, 0, 1, 0, 1, 0]), shots=1)
        >>> xs.tolist(), ys.tolist(), xq.tolist()
        ([1.0, 0.0], [0, 1], [3.0, 5.0, 2.0, 4.0])
    """
    data, labels = torch.as_tensor(data), torch.as_tensor(labels)
    if data.shape[0] != labels.shape[0]:
        raise ValueError(f"partition_task: {data.shape[0]} points but {labels.shape[0]} labels")
    shots = check_scalar(shots, "shots", int, min_val=1)
    support, query = [], []
    for rows in _rows_by_class(_classes(labels).cpu()):
        if rows.shape[0] <= shots:
            raise ValueError(f"partition_task: a class has {rows.shape[0]} rows; shots={shots} leaves none for the query part")
        support.append(rows[:shots])
        query.append(rows[shots:])
    s, q = torch.cat(support).to(data.device), torch.cat(query).to(data.device)
    return (data[s], labels[s.to(labels.device)]), (data[q], labels[q.to(labels.device)])


@dataclass
class Task:
    """One task of a meta-iteration.

    Attributes:
        x: all points, shape ``(n, ...)``.
        y: soft labels, float, shape ``(n, C)``, each row summing to one; or integer labels of
            shape ``(n,)`` (a TaskMix task made with ``labels="slot"``, labelled like
            learn2learn's).
        num_support: when set, rows ``[:num_support]`` are the support part and the rest the
            query part (a :class:`BatchTaskset` sample). ``None``: the rows are in a learn2learn
            taskset's order, and :attr:`support`/:attr:`query` split them per class
            (:func:`split_per_class`).
        source: ``None`` for a real task; ``(i, j, lam)`` for a TaskMix task made as
            ``lam * task_i + (1 - lam) * task_j`` of the same iteration's real tasks.
        num_mixed: how many trailing rows are MetaMix query points (0 without MetaMix).

    A task unpacks and indexes like a learn2learn task: ``x, y = task``, ``task[0]``,
    ``task[1]``, and PyTorch's ``DataLoader`` collates it as it does ``[x, y]``.

    Example::

        >>> import torch
        >>> t = Task(x=torch.arange(4.0)[:, None], y=torch.eye(2)[[0, 0, 1, 1]])
        >>> t.support[0].flatten().tolist(), t.query[0].flatten().tolist()
        ([0.0, 2.0], [1.0, 3.0])
    """

    x: torch.Tensor
    y: torch.Tensor
    num_support: int | None = None
    source: tuple[int, int, float] | None = None
    num_mixed: int = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.x
        yield self.y

    def __getitem__(self, index: int | slice) -> Any:
        return (self.x, self.y)[index]

    def __len__(self) -> int:
        return 2

    def split(self) -> tuple[torch.Tensor | slice, torch.Tensor | slice]:
        """The support and query rows (slices, or index tensors for a per-class split); the
        query part ends with the ``num_mixed`` MetaMix rows."""
        n = self.x.shape[0]
        if self.num_support is not None:
            return slice(0, self.num_support), slice(self.num_support, n)
        real = n - self.num_mixed
        support, query = split_per_class(_classes(self.y[:real]))
        query = torch.cat([query, torch.arange(real, n)])
        return support.to(self.x.device), query.to(self.x.device)

    @property
    def support(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the support (adaptation) part."""
        rows, _ = self.split()
        return self.x[rows], self.y[rows]

    @property
    def query(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the query (evaluation) part, MetaMix points included."""
        _, rows = self.split()
        return self.x[rows], self.y[rows]

    @property
    def is_synthetic(self) -> bool:
        return self.source is not None

    def to(self, *args: Any, **kwargs: Any) -> "Task":
        """A copy with ``x`` and ``y`` moved as by ``Tensor.to``."""
        return replace(self, x=self.x.to(*args, **kwargs), y=self.y.to(*args, **kwargs))


collections.abc.Sequence.register(Task)


def check_features(x: torch.Tensor, what: str) -> None:
    """Refuse features that cannot be mixed: empty, not floating point (token ids, raw codes), or
    not finite; ``what`` names the task in the message."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{what}: features must be floating point, got {x.dtype}. If they are token ids or other codes, "
            f"{FEATURIZE_HINT}; if they are measurements, convert them with x.float()"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} has NaN or infinite features")


def unpack(sample: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A sampled task's ``(x, y)`` as tensors; data that are not arrays are refused."""
    if isinstance(sample, Task):
        return sample.x, sample.y
    try:
        x, y = sample[0], sample[1]
    except (TypeError, IndexError, KeyError):
        raise TypeError(f"{what}: a task must be (x, y) or a Task, got {type(sample).__name__}") from None
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        inner = f" of {type(x[0]).__name__}" if isinstance(x, (list, tuple)) and len(x) else ""
        raise TypeError(f"{what}: its data are a {type(x).__name__}{inner}, not a tensor. {FEATURIZE_HINT}")
    return torch.as_tensor(x), torch.as_tensor(y)


def is_soft(y: torch.Tensor) -> bool:
    """Whether labels are soft: float rows of shape ``(n, C)``."""
    return y.dim() == 2 and y.dtype.is_floating_point


def num_classes_of(source: Any) -> int | None:
    """The class count of a taskset, a task or a sample; ``None`` when it cannot be told.

    In order: a ``num_classes`` attribute; the columns of soft labels; ``max(y) + 1`` of integer
    labels (learn2learn's ``RemapLabels`` makes these the task's ways).

    Example::

        >>> import torch
        >>> num_classes_of((torch.zeros(4, 2), torch.tensor([0, 2, 1, 0])))
        3
    """
    if getattr(source, "num_classes", None) is not None:
        return int(source.num_classes)
    if isinstance(source, Task):
        y = source.y
    elif isinstance(source, (tuple, list)) and len(source) >= 2:
        y = torch.as_tensor(source[1])
    else:
        return None
    if y.dim() == 1 and y.numel() and not y.dtype.is_floating_point:
        return int(y.max()) + 1
    return int(y.shape[1]) if y.dim() == 2 else None


def as_task(sample: Any, num_classes: int, what: str = "task") -> Task:
    """A sampled task, ``(x, y)`` or a :class:`Task`, as a :class:`Task` with soft labels in
    ``num_classes`` classes.

    Integer labels become one-hot rows; soft labels of shape ``(n, c)`` with ``c <= num_classes``
    are checked and padded with zero columns. The rows keep their order; an ``(x, y)`` pair gets
    ``num_support=None``, so its support/query split is per class (:func:`split_per_class`). A
    :class:`Task` whose soft labels are already ``num_classes`` wide is returned as it is.

    Example::

        >>> import torch
        >>> t = as_task((torch.randn(4, 3), torch.tensor([0, 0, 1, 1])), num_classes=3)
        >>> t.y.shape, t.num_support
        (torch.Size([4, 3]), None)
    """
    x, y = unpack(sample, what)
    check_features(x, what)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: {x.shape[0]} points but {y.shape[0]} labels")
    if isinstance(sample, Task) and sample.num_support is not None and not 0 < sample.num_support < x.shape[0]:
        raise ValueError(f"{what}: needs both a support and a query part, got {x.shape[0]} points with num_support={sample.num_support}")
    if is_soft(y):
        if y.shape[1] > num_classes:
            raise ValueError(f"{what}: soft labels have {y.shape[1]} classes, more than num_classes={num_classes}")
        check_soft_labels(y, what)
        if isinstance(sample, Task) and y.shape[1] == num_classes:
            return sample
        y = torch.nn.functional.pad(y, (0, num_classes - y.shape[1])).to(x.dtype)
    else:
        try:
            y = mixing.one_hot(y.reshape(-1), num_classes, dtype=x.dtype).to(x.device)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    if isinstance(sample, Task):
        return replace(sample, y=y)
    return Task(x=x, y=y)
