"""Featurized tasks: what the benchmark trains and evaluates on.

A :class:`FeatureTask` is one task after a frozen encoder ran over its utterances: features
``x``, integer labels ``y`` indexing the task's own sorted ``classes``. :class:`Standardizer`
centres and scales features with statistics of meta-training tasks only.

Example::

    >>> import torch
    >>> from l2l_taskmix.features import FeatureTask, Standardizer
    >>> task = FeatureTask("alarm", torch.tensor([[1.0, 2.0], [3.0, 6.0]]), torch.tensor([0, 1]), ["SET", "STOP"])
    >>> task.num_classes, task.dim
    (2, 2)
    >>> Standardizer.fit([task.x]).transform(task).x
    tensor([[-0.7071, -0.7071],
            [ 0.7071,  0.7071]])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from ..data.tasks import check_name

__all__ = ["FeatureTask", "Standardizer", "check_same_width"]


def check_same_width(tasks: Sequence["FeatureTask"], where: str = "") -> int:
    """The feature width of ``tasks``, refusing tasks of another width than the first, naming
    both tasks and widths (``where``: a prefix for the message, e.g. the file).

    Example::

        >>> a = FeatureTask("a", torch.zeros(2, 4), torch.tensor([0, 1]), ["x", "y"])
        >>> b = FeatureTask("b", torch.zeros(2, 8), torch.tensor([0, 1]), ["x", "y"])
        >>> check_same_width([a, a])
        4
        >>> check_same_width([a, b])
        Traceback (most recent call last):
        ...
        ValueError: task 'b' has features of width 8, task 'a' of width 4: ...
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError(f"{where}no tasks")
    first = tasks[0]
    for task in tasks[1:]:
        if task.dim != first.dim:
            raise ValueError(
                f"{where}task {task.name!r} has features of width {task.dim}, task {first.name!r} of width {first.dim}: "
                "every task needs features of one width (of one encoder); featurize them all with the same encoder"
            )
    return first.dim


@dataclass
class FeatureTask:
    """A task after featurization.

    Attributes:
        name: task name (as in its ``IntentTask``).
        x: ``FloatTensor[n, d]`` features.
        y: ``LongTensor[n]``, indexes ``classes`` (0 .. c-1).
        classes: the task's own intents, sorted.
        meta: copied from the ``IntentTask``.
        groups: ``LongTensor[n]`` or ``None``: rows with the same value hold the exact same text
            (the row index of its first occurrence); support/test splits keep a group on one side.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    meta: dict = field(default_factory=dict)
    groups: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            check_name(self.name, "task name")
        if not isinstance(self.x, torch.Tensor) or self.x.ndim != 2 or not self.x.is_floating_point():
            raise ValueError(f"task {self.name!r}: x must be a float tensor [n, d]")
        if not isinstance(self.y, torch.Tensor) or self.y.ndim != 1 or self.y.dtype != torch.long:
            raise ValueError(f"task {self.name!r}: y must be a LongTensor [n]")
        if len(self.x) != len(self.y):
            raise ValueError(f"task {self.name!r}: {len(self.x)} rows in x, {len(self.y)} in y")
        self.classes = list(self.classes)
        for c in self.classes:
            if isinstance(c, str):
                check_name(c, "intent", f"task {self.name!r}")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.classes)):
            shown = ", ".join(map(repr, self.classes[:5])) + (", ..." if len(self.classes) > 5 else "")
            if int(self.y.min()) < 0:
                raise ValueError(f"task {self.name!r}: y holds the label {int(self.y.min())}; labels index classes, from 0")
            raise ValueError(
                f"task {self.name!r}: y holds the label {int(self.y.max())}, but classes has {len(self.classes)} name(s)"
                f"{f' ({shown})' if shown else ''}: y indexes classes, so give a class name for each label 0..{int(self.y.max())}"
            )
        if not torch.isfinite(self.x).all():
            raise ValueError(f"task {self.name!r}: x has NaN or infinite values")
        if self.groups is not None:
            self.groups = torch.as_tensor(self.groups)
            if self.groups.shape != self.y.shape or self.groups.dtype != torch.long:
                raise ValueError(f"task {self.name!r}: groups must be a LongTensor of {len(self.y)} rows")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_x(self, x: torch.Tensor) -> "FeatureTask":
        """The same task with features ``x`` (e.g. standardized)."""
        return replace(self, x=x, meta=dict(self.meta))

    def to(self, device: torch.device | str) -> "FeatureTask":
        """The same task with ``x`` and ``y`` on ``device`` (``groups`` stays on the CPU: it
        only decides splits); itself where they are there already."""
        device = torch.device(device)
        if self.x.device == device and self.y.device == device:
            return self
        return replace(self, x=self.x.to(device), y=self.y.to(device), meta=dict(self.meta))

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> "FeatureTask":
        """The rows at ``index`` (same ``classes``), e.g. a support or test part."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        groups = None if self.groups is None else self.groups[idx]
        return FeatureTask(self.name, self.x[idx], self.y[idx], self.classes, dict(self.meta), groups)


class Standardizer:
    """Centre and scale features with the mean and standard deviation of meta-training data.

    Example::

        >>> import torch
        >>> s = Standardizer.fit([torch.tensor([[1.0, 2.0], [3.0, 6.0]])])
        >>> s(torch.tensor([[2.0, 4.0]]))
        tensor([[0., 0.]])
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, features: Sequence[torch.Tensor], eps: float = 1e-6) -> "Standardizer":
        """Statistics of the rows of ``features`` (feature matrices of shape ``(n, d)``)."""
        if not features:
            raise ValueError("Standardizer.fit needs at least one feature matrix")
        x = torch.cat([torch.as_tensor(f, dtype=torch.float32) for f in features])
        if x.dim() != 2 or x.shape[0] < 2:
            raise ValueError(f"Standardizer.fit needs at least two feature rows of shape (n, d), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("features have NaN or infinite values")
        return cls(x.mean(0), x.std(0).clamp_min(eps))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.as_tensor(x, dtype=torch.float32) - self.mean) / self.std

    def transform(self, task: FeatureTask) -> FeatureTask:
        """``task`` with standardized features (a new :class:`FeatureTask`)."""
        return task.with_x(self(task.x))
