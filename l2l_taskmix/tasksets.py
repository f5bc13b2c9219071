"""TaskMix and MetaMix as drop-in wrappers around learn2learn tasksets.

Two kinds of task flow through the wrappers, and both come back in the form they went in:

* what a learn2learn ``Taskset``/``TaskDataset`` samples: ``[x, y]`` with integer labels, rows in
  learn2learn's order (``KShots`` gives them class by class). The wrappers never reorder or
  relabel these: a real task comes back as the very object the taskset returned, and your own
  support/query split (learn2learn's even/odd ``adaptation_indices``, or
  :func:`partition_task`) works on the synthetic ones too;
* a :class:`Task`: points ``x``, float soft labels ``y`` of shape ``(n, C)`` and, when the rows
  are ordered support first (as :class:`BatchTaskset` samples them), ``num_support``.

A synthetic TaskMix task is a :class:`Task` that unpacks like a learn2learn task,
``x, y = task``: row ``r`` mixes row ``r`` of two real tasks, and its labels are soft, over the
tasks' own ways (the class count of the sampled tasks, not of the dataset). Where the package
itself needs a support/query split of such a task (``Task.support``, MetaMix, the MAML engine)
it splits per class, never by halves.

One meta-iteration is one call: ``for task in taskmix.sample_iteration()`` gives the T real
tasks and then the N synthetic ones. For loops that sample their own tasks, the wrappers are
also callables on a list of sampled tasks, like timm's ``Mixup``: ``tasks = TaskMix()(tasks)``.

Example, a learn2learn MAML step with TaskMix::

    >>> import torch, learn2learn as l2l
    >>> from torch import nn
    >>> from l2l_taskmix import TaskMix, accuracy
    >>> g = torch.Generator().manual_seed(0)
    >>> data = torch.utils.data.TensorDataset(torch.randn(100, 8, generator=g), torch.arange(100) % 10)
    >>> meta = l2l.data.MetaDataset(data)
    >>> taskset = l2l.data.Taskset(meta, [l2l.data.transforms.NWays(meta, 5), l2l.data.transforms.KShots(meta, 2),
    ...     l2l.data.transforms.LoadData(meta), l2l.data.transforms.RemapLabels(meta)], num_tasks=-1)
    >>> taskmix = TaskMix(taskset, meta_batch_size=4, seed=0)        # T = 4 real + N = 4 synthetic
    >>> maml = l2l.algorithms.MAML(nn.Linear(8, 5), lr=0.1)
    >>> for x, y in taskmix.sample_iteration():                       # one meta-iteration
    ...     learner = maml.clone()
    ...     learner.adapt(nn.functional.cross_entropy(learner(x[::2]), y[::2]))   # integer or soft y
    ...     acc = accuracy(learner(x[1::2]), y[1::2])
    >>> len(taskmix)
    8
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import torch

from . import mixing
from .validation import check_scalar, make_generator

__all__ = [
    "Task",
    "BatchTaskset",
    "RealTasks",
    "TaskMix",
    "MetaMix",
    "as_task",
    "num_classes_of",
    "partition_task",
    "split_per_class",
]

#: T, the real tasks per meta-iteration, when a single taskset is wrapped and none is given.
DEFAULT_META_BATCH_SIZE = 2


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
        y: soft labels, float, shape ``(n, C)``; each row sums to one.
        num_support: when set, rows ``[:num_support]`` are the support part and the rest the
            query part (a :class:`BatchTaskset` sample). ``None``: the rows are in a learn2learn
            taskset's order, and :attr:`support`/:attr:`query` split them per class
            (:func:`split_per_class`).
        source: ``None`` for a real task; ``(i, j, lam)`` for a TaskMix task made as
            ``lam * task_i + (1 - lam) * task_j`` of the same iteration's real tasks.
        num_mixed: how many trailing rows are MetaMix query points (0 without MetaMix).

    A task unpacks like a learn2learn task: ``x, y = task``.

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

    def split(self) -> tuple[torch.Tensor | slice, torch.Tensor | slice]:
        """The support and query rows (slices, or index tensors for a per-class split); the
        query part ends with the ``num_mixed`` MetaMix rows."""
        n = self.x.shape[0]
        if self.num_support is not None:
            return slice(0, self.num_support), slice(self.num_support, n)
        real = n - self.num_mixed
        support, query = split_per_class(self.y[:real].argmax(1))
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


def _check_features(x: torch.Tensor, what: str) -> None:
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{what}: features must be floating point, got {x.dtype}; convert them with x.float()")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} has NaN or infinite features")


def _unpack(sample: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(sample, Task):
        return sample.x, sample.y
    try:
        x, y = sample[0], sample[1]
    except (TypeError, IndexError, KeyError):
        raise TypeError(f"{what}: a task must be (x, y) or a Task, got {type(sample).__name__}") from None
    return torch.as_tensor(x), torch.as_tensor(y)


def num_classes_of(source: Any) -> int | None:
    """The class count of a taskset, a task or a sample; ``None`` when it cannot be told.

    In order: a ``num_classes`` attribute; a :class:`Task`'s label columns; ``max(y) + 1`` of an
    ``(x, y)`` sample with integer labels (learn2learn's ``RemapLabels`` makes these the task's
    ways); the columns of soft labels.

    Example::

        >>> import torch
        >>> num_classes_of((torch.zeros(4, 2), torch.tensor([0, 2, 1, 0])))
        3
    """
    if getattr(source, "num_classes", None) is not None:
        return int(source.num_classes)
    if isinstance(source, Task):
        return int(source.y.shape[1])
    if isinstance(source, (tuple, list)) and len(source) >= 2:
        y = torch.as_tensor(source[1])
        if y.dim() == 1 and y.numel() and not y.dtype.is_floating_point:
            return int(y.max()) + 1
        return int(y.shape[1]) if y.dim() == 2 else None
    return None


def as_task(sample: Any, num_classes: int, what: str = "task") -> Task:
    """A sampled task, ``(x, y)`` or a :class:`Task`, as a :class:`Task` in ``num_classes`` classes.

    Integer labels become one-hot rows; soft labels of shape ``(n, c)`` with ``c <= num_classes``
    are checked and padded with zero columns. The rows keep their order; an ``(x, y)`` pair gets
    ``num_support=None``, so its support/query split is per class (:func:`split_per_class`). A
    :class:`Task` whose labels are already ``num_classes`` wide is returned as it is.

    Example::

        >>> import torch
        >>> t = as_task((torch.randn(4, 3), torch.tensor([0, 0, 1, 1])), num_classes=3)
        >>> t.y.shape, t.num_support
        (torch.Size([4, 3]), None)
    """
    x, y = _unpack(sample, what)
    _check_features(x, what)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: {x.shape[0]} points but {y.shape[0]} labels")
    if isinstance(sample, Task):
        if sample.num_support is not None and not 0 < sample.num_support < x.shape[0]:
            raise ValueError(f"{what}: needs both a support and a query part, got {x.shape[0]} points with num_support={sample.num_support}")
        if y.shape[1] == num_classes:
            return sample
    if y.dtype.is_floating_point and y.dim() == 2:
        if y.shape[1] > num_classes:
            raise ValueError(f"{what}: soft labels have {y.shape[1]} classes, more than num_classes={num_classes}")
        if not torch.isfinite(y).all() or (y < 0).any() or not torch.allclose(y.sum(1), torch.ones_like(y[:, 0]), atol=1e-4):
            raise ValueError(f"{what}: soft labels must be finite, non-negative rows that sum to 1")
        y = torch.nn.functional.pad(y, (0, num_classes - y.shape[1])).to(x.dtype)
    else:
        try:
            y = mixing.one_hot(y.reshape(-1), num_classes, dtype=x.dtype).to(x.device)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    if isinstance(sample, Task):
        return replace(sample, y=y)
    return Task(x=x, y=y)


class BatchTaskset:
    """A meta-training task as the paper samples it: random support and query batches of one
    task's data, drawn independently (no split between them).

    ``sample()`` returns a :class:`Task` with ``num_support`` rows followed by ``num_query`` rows,
    labels one-hot in ``num_classes`` classes (default: ``max(y) + 1``). A task with fewer points
    than a batch is sampled with replacement; otherwise without.

    Example::

        >>> import torch
        >>> bt = BatchTaskset(torch.randn(100, 16), torch.arange(100) % 5, num_support=8, seed=0)
        >>> task = bt.sample(); task.x.shape, task.y.shape, task.num_support
        (torch.Size([16, 16]), torch.Size([16, 5]), 8)
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        num_support: int = 32,
        num_query: int | None = None,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        name: str | None = None,
    ):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        self.name = name or "task"
        _check_features(x, f"task {self.name!r}")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"task {self.name!r}: labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        num_support = check_scalar(num_support, "num_support", int, min_val=1)
        num_query = num_support if num_query is None else check_scalar(num_query, "num_query", int, min_val=1)
        if len(torch.unique(y)) < 2:
            raise ValueError(f"task {self.name!r} has fewer than two classes; it cannot be learned from")
        num_classes = check_scalar(num_classes, "num_classes", int, min_val=1, allow_none=True)
        self.num_classes = num_classes_of((x, y)) if num_classes is None else num_classes
        self.x, self.y = x, mixing.one_hot(y, self.num_classes, dtype=x.dtype)
        self.num_support, self.num_query = num_support, num_query
        self.generator = make_generator(generator, seed)

    def __len__(self) -> int:
        return self.x.shape[0]

    def _draw(self, size: int) -> torch.Tensor:
        n = self.x.shape[0]
        if n >= size:
            return torch.randperm(n, generator=self.generator)[:size]
        return torch.randint(0, n, (size,), generator=self.generator)

    def sample(self) -> Task:
        index = torch.cat([self._draw(self.num_support), self._draw(self.num_query)]).to(self.x.device)
        return Task(x=self.x[index], y=self.y[index], num_support=self.num_support)


class RealTasks:
    """The plain sampler of a meta-iteration: one task from each taskset (learn2learn's usual
    loop), or from ``meta_batch_size`` distinct tasksets drawn at random each iteration.

    It has ``sample_iteration()`` and ``len()`` (T), so :class:`TaskMix` and :class:`MetaMix`
    wrap it directly.

    Example::

        >>> import torch
        >>> ts = [BatchTaskset(torch.randn(20, 3), torch.arange(20) % 2, num_support=4, seed=k) for k in range(3)]
        >>> len(RealTasks(ts).sample_iteration()), len(RealTasks(ts, meta_batch_size=2, seed=0).sample_iteration())
        (3, 2)
    """

    def __init__(
        self,
        tasksets: Sequence[Any],
        meta_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        if not tasksets:
            raise ValueError("no tasksets given")
        self.tasksets = list(tasksets)
        meta_batch_size = check_scalar(meta_batch_size, "meta_batch_size", int, min_val=1, allow_none=True)
        self.meta_batch_size = len(self.tasksets) if meta_batch_size is None else min(meta_batch_size, len(self.tasksets))
        self.generator = make_generator(generator, seed)
        self.last_index: list[int] = list(range(self.meta_batch_size))

    def __len__(self) -> int:
        return self.meta_batch_size

    def sample_iteration(self) -> list[Task]:
        """One task from each of this iteration's tasksets."""
        if self.meta_batch_size == len(self.tasksets):
            index = list(range(len(self.tasksets)))
        else:
            index = sorted(torch.randperm(len(self.tasksets), generator=self.generator)[: self.meta_batch_size].tolist())
        self.last_index = index
        return [self.tasksets[i].sample() for i in index]


class _TaskAugmentation(ABC):
    """What TaskMix and MetaMix share: the wrapped tasksets, the generator, the class count and
    the stream of :meth:`sample`."""

    def __init__(
        self,
        tasksets: Any,
        eta: float,
        num_classes: int | None,
        generator: torch.Generator | None,
        seed: int | None,
        meta_batch_size: int | None,
    ):
        self.eta = mixing.check_eta(eta)
        self.num_classes = check_scalar(num_classes, "num_classes", int, min_val=1, allow_none=True)
        meta_batch_size = check_scalar(meta_batch_size, "meta_batch_size", int, min_val=1, allow_none=True)
        self.is_list = isinstance(tasksets, (list, tuple))
        self.tasksets = list(tasksets) if self.is_list else tasksets
        if tasksets is not None:
            members = self.tasksets if self.is_list else [self.tasksets]
            if not members:
                raise ValueError("no tasksets given")
            for ts in members:
                if not (hasattr(ts, "sample") or hasattr(ts, "sample_iteration")):
                    raise TypeError(f"a taskset must have a sample() method, got {type(ts).__name__}")
            if self.is_list and meta_batch_size is not None and meta_batch_size != len(members):
                raise ValueError(
                    f"meta_batch_size={meta_batch_size} applies to a single taskset; a list of {len(members)} "
                    "tasksets gives one task per taskset"
                )
        self._meta_batch_size = meta_batch_size
        self.generator = make_generator(generator, seed)
        self._stream: list[Any] = []
        self._warned_stream = False

    @property
    def meta_batch_size(self) -> int | None:
        """T, the real tasks of a meta-iteration (``None`` for a callable-only wrapper)."""
        if self.tasksets is None:
            return self._meta_batch_size
        if self.is_list:
            return len(self.tasksets)
        if hasattr(self.tasksets, "sample_iteration"):  # a wrapped TaskMix / MetaMix
            return self.tasksets.meta_batch_size
        return self._meta_batch_size or DEFAULT_META_BATCH_SIZE

    def _tasks_in(self) -> int:
        """How many tasks each iteration brings to this wrapper."""
        if not self.is_list and hasattr(self.tasksets, "sample_iteration"):
            return len(self.tasksets)
        return self.meta_batch_size

    def _sample_real(self) -> list[Any]:
        """The tasks this wrapper augments in one iteration, as the tasksets return them."""
        if self.tasksets is None:
            raise TypeError(
                f"this {type(self).__name__} wraps no taskset: call it on a list of sampled tasks, "
                f"{type(self).__name__.lower()}(tasks), or build it as {type(self).__name__}(taskset)"
            )
        if not self.is_list and hasattr(self.tasksets, "sample_iteration"):
            return list(self.tasksets.sample_iteration())
        members = self.tasksets if self.is_list else [self.tasksets] * self.meta_batch_size
        return [ts.sample() for ts in members]

    def _as_tasks(self, tasks: Sequence[Any]) -> list[Task]:
        """``tasks`` as :class:`Task` objects in one label space: ``num_classes`` if given, else
        the largest class count among these tasks."""
        if isinstance(tasks, (Task, torch.Tensor)) or not isinstance(tasks, Sequence) or not len(tasks):
            raise TypeError(f"{type(self).__name__} is called on a non-empty list of tasks, got {type(tasks).__name__}")
        num_classes = self.num_classes
        if num_classes is None:
            counts = [num_classes_of(t) if isinstance(t, Task) else num_classes_of(_unpack(t, f"task {k}")) for k, t in enumerate(tasks)]
            if None in counts:
                k = counts.index(None)
                raise ValueError(f"task {k}: cannot tell its class count from its labels; pass num_classes=")
            num_classes = max(counts)
        return [as_task(t, num_classes, what=f"task {k}") for k, t in enumerate(tasks)]

    @abstractmethod
    def _augment(self, tasks: Sequence[Any]) -> list[Any]:
        """This wrapper's own augmentation of one iteration's tasks."""

    def __call__(self, tasks: Sequence[Any]) -> list[Any]:
        """Augment a list of already-sampled tasks (one meta-iteration's), like timm's ``Mixup``.

        A wrapped TaskMix/MetaMix augments them first: ``MetaMix(TaskMix())(tasks)`` is the
        paper's combined method on ``tasks``.
        """
        if isinstance(self.tasksets, _TaskAugmentation):
            tasks = self.tasksets(tasks)
        return self._augment(tasks)

    def sample_iteration(self) -> list[Any]:
        """The tasks of a new meta-iteration: sample the real tasks, then augment them."""
        return self._augment(self._sample_real())

    def sample(self) -> Any:
        """One task at a time from a stream of whole meta-iterations.

        The stream holds each iteration's ``len(self)`` tasks in order (for TaskMix: T real,
        then N synthetic). A learn2learn loop that calls ``sample()`` ``meta_batch_size`` times
        per step does not get one iteration per step; iterate over :meth:`sample_iteration`
        instead, or call ``sample()`` ``len(self)`` times per step.
        """
        if not self._warned_stream:
            self._warned_stream = True
            warnings.warn(
                f"{type(self).__name__}.sample() streams whole meta-iterations one task at a time "
                f"({len(self)} tasks each); a step must take len({type(self).__name__.lower()}) = {len(self)} of them. "
                f"Use 'for task in {type(self).__name__.lower()}.sample_iteration():' for one iteration per step.",
                stacklevel=2,
            )
        if not self._stream:
            self._stream.extend(self.sample_iteration())
        return self._stream.pop(0)


class TaskMix(_TaskAugmentation):
    """TaskMix: meta-train on the T real tasks of an iteration plus N tasks that interpolate them.

    Each meta-iteration (:meth:`sample_iteration`) samples T real tasks, one from each of the
    wrapped tasksets (or ``meta_batch_size`` from one taskset), draws N pairs ``(i, j)``
    uniformly (``i != j``) and, per pair, ``lam ~ Beta(eta, eta)``, and returns the T real tasks,
    exactly as sampled, followed by N synthetic :class:`Task` objects with
    ``x = lam * x_i + (1 - lam) * x_j`` and ``y = lam * y_i + (1 - lam) * y_j`` row by row (the
    same ``lam`` for every row, support and query alike). Synthetic labels are soft, so the loss
    must accept probabilities (``F.cross_entropy`` does) and accuracy too (:func:`accuracy`).

    ``TaskMix(...)(tasks)`` does the same to a list of tasks you sampled yourself.

    Args:
        tasksets: a learn2learn ``Taskset``/``TaskDataset`` (or anything with ``sample()``
            returning ``(x, y)`` or a :class:`Task`), a list of them (one per meta-training
            task, the paper's setting), a :class:`MetaMix`, or ``None`` for the callable form.
        eta: the Beta parameter; default :data:`~l2l_taskmix.mixing.DEFAULT_ETA` (1.0, uniform
            ``lam``; see the README for how it was chosen).
        num_synthetic: N, the synthetic tasks per iteration; default T, the number of real tasks.
            ``0`` returns the real tasks unchanged and leaves every random stream untouched
            (plain MAML).
        num_classes: the width of the soft labels; default: the largest class count among each
            iteration's sampled tasks (with ``RemapLabels``: the ways). Give it when the labels
            are not remapped and the model has a fixed number of outputs.
        generator, seed: the source of every random draw of the mixing (one or the other).
        meta_batch_size: T when a single taskset is wrapped (default 2).
        num_tasks: the old name of ``num_synthetic``; deprecated (learn2learn's ``num_tasks`` is
            the number of cached task descriptions).

    Example::

        >>> import torch
        >>> from l2l_taskmix import BatchTaskset, TaskMix
        >>> ts = [BatchTaskset(torch.randn(30, 4), torch.arange(30) % 3, num_support=5, seed=k)
        ...       for k in range(3)]
        >>> tasks = TaskMix(ts, seed=0).sample_iteration()
        >>> len(tasks), tasks[3].source is not None
        (6, True)
        >>> len(TaskMix(num_synthetic=2, seed=0)([t.sample() for t in ts]))   # the callable form
        5
    """

    def __init__(
        self,
        tasksets: Any = None,
        eta: float = mixing.DEFAULT_ETA,
        num_synthetic: int | None = None,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        meta_batch_size: int | None = None,
        *,
        num_tasks: int | None = None,
    ):
        if num_tasks is not None:
            if num_synthetic is not None:
                raise TypeError("give num_synthetic or its deprecated name num_tasks, not both")
            warnings.warn(
                "TaskMix(num_tasks=) is deprecated and will be removed in 0.4; use num_synthetic= "
                "(learn2learn's num_tasks means the number of cached task descriptions)",
                DeprecationWarning,
                stacklevel=2,
            )
            num_synthetic = check_scalar(num_tasks, "num_tasks", int, min_val=0)
        self.num_synthetic = check_scalar(num_synthetic, "num_synthetic", int, min_val=0, allow_none=True)
        super().__init__(tasksets, eta, num_classes, generator, seed, meta_batch_size)

    def __len__(self) -> int:
        """Tasks per meta-iteration: T real + N synthetic."""
        real = self._tasks_in()
        if real is None:
            raise TypeError("a TaskMix that wraps no taskset has no fixed length; give meta_batch_size=")
        return real + (real if self.num_synthetic is None else self.num_synthetic)

    def _augment(self, tasks: Sequence[Any]) -> list[Any]:
        """``tasks`` (the T real tasks, returned unchanged) followed by N synthetic tasks."""
        soft = self._as_tasks(tasks)
        n = len(soft) if self.num_synthetic is None else self.num_synthetic
        if n == 0:
            return list(tasks)
        if len(soft) < 2:
            raise ValueError(f"TaskMix needs at least two tasks per iteration to mix, got {len(soft)}")
        first = soft[0]
        for k, task in enumerate(soft[1:], start=1):
            if (task.x.shape, task.y.shape, task.num_support, task.num_mixed) != (first.x.shape, first.y.shape, first.num_support, first.num_mixed):
                raise ValueError(
                    "TaskMix mixes tasks of equal batch shapes; "
                    f"task 0 has x {tuple(first.x.shape)} (support {first.num_support}) but task {k} has "
                    f"x {tuple(task.x.shape)} (support {task.num_support}): sample equal support/query sizes"
                )
        pairs = mixing.sample_pairs(len(soft), n, generator=self.generator)
        lams = mixing.sample_lambda(self.eta, n, generator=self.generator, dtype=torch.float64)
        synthetic = []
        for (i, j), lam in zip(pairs.tolist(), lams.tolist()):
            a, b = soft[i], soft[j]
            synthetic.append(
                Task(
                    x=mixing.mix(a.x, b.x, lam),
                    y=mixing.mix(a.y, b.y, lam),
                    num_support=a.num_support,
                    source=(i, j, lam),
                    num_mixed=a.num_mixed,
                )
            )
        return list(tasks) + synthetic

    @property
    def num_tasks(self) -> int | None:
        """Deprecated name of :attr:`num_synthetic`."""
        warnings.warn("TaskMix.num_tasks is deprecated; use num_synthetic", DeprecationWarning, stacklevel=2)
        return self.num_synthetic


class MetaMix(_TaskAugmentation):
    """MetaMix as the TaskMix paper uses it: MixUp of query points within each task.

    For every task of an iteration it pairs each query point with a random query point of the
    same task (a random permutation), draws ``lam ~ Beta(eta, eta)`` per new point and appends
    the mixed points and their soft labels at the end of the task, where they belong to the
    query part (also for learn2learn's even/odd split, which marks support rows only among the
    first ``2 * shots * ways``). The outer loss on the extended query, averaged over its rows,
    is the mean of the plain query loss and the MixUp loss: the additional term per task.
    Yao et al.'s original MetaMix instead mixes support with query points at a randomly chosen
    hidden layer; this version mixes the frozen features. The query points of a learn2learn
    sample are its per-class query rows (:func:`split_per_class`).

    Takes the same inputs as :class:`TaskMix`, and ``MetaMix(...)(tasks)`` augments a list of
    tasks you sampled yourself. The paper's combined method, MAML+MetaMix+TaskMix, is
    ``MetaMix(TaskMix(tasksets))``: MetaMix on every real and synthetic task.
    ``TaskMix(MetaMix(tasksets))`` also works (it mixes the MetaMix-extended tasks).

    Example::

        >>> import torch
        >>> from l2l_taskmix import BatchTaskset, MetaMix
        >>> ts = [BatchTaskset(torch.randn(30, 4), torch.arange(30) % 3, num_support=5, seed=k)
        ...       for k in range(2)]
        >>> task = MetaMix(ts, seed=0).sample_iteration()[0]
        >>> task.query[0].shape[0], task.num_mixed
        (10, 5)
    """

    def __init__(
        self,
        tasksets: Any = None,
        eta: float = mixing.DEFAULT_ETA,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        meta_batch_size: int | None = None,
    ):
        super().__init__(tasksets, eta, num_classes, generator, seed, meta_batch_size)

    def __len__(self) -> int:
        """Tasks per meta-iteration (MetaMix adds points, not tasks)."""
        real = self._tasks_in()
        if real is None:
            raise TypeError("a MetaMix that wraps no taskset has no fixed length; give meta_batch_size=")
        return real

    def augment(self, task: Task) -> Task:
        """``task`` with MixUp points of its (original) query part appended to its query part."""
        _, query = task.split()
        if isinstance(query, slice):
            query = slice(query.start, query.stop - task.num_mixed)
        else:
            query = query[: query.shape[0] - task.num_mixed]
        xq, yq = task.x[query], task.y[query]
        perm = torch.randperm(xq.shape[0], generator=self.generator).to(xq.device)
        lam = mixing.sample_lambda(self.eta, xq.shape[0], generator=self.generator, dtype=xq.dtype).to(xq.device)
        lam_x = lam.reshape((-1,) + (1,) * (xq.dim() - 1))
        x_mixed = mixing.mix(xq, xq[perm], lam_x)
        y_mixed = mixing.mix(yq, yq[perm], lam.reshape(-1, 1).to(yq.dtype))
        return replace(
            task,
            x=torch.cat([task.x, x_mixed]),
            y=torch.cat([task.y, y_mixed]),
            num_mixed=task.num_mixed + xq.shape[0],
        )

    def _augment(self, tasks: Sequence[Any]) -> list[Task]:
        """Each of ``tasks`` with MetaMix query points appended."""
        return [self.augment(task) for task in self._as_tasks(tasks)]
