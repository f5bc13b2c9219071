"""TaskMix and MetaMix as drop-in wrappers around learn2learn tasksets.

A *task* here is a :class:`Task`: all its points ``x``, float soft labels ``y`` of shape
``(n, C)`` in the common label space of ``C`` classes, and ``num_support``: the first
``num_support`` rows are the support (adaptation) part and the rest the query (evaluation) part.
It unpacks like a learn2learn task, ``x, y = task``. A wrapped learn2learn ``Taskset`` gives
``(x, y)`` with integer labels; its first half becomes the support part and its second half the
query part.

Example, a learn2learn MAML loop with TaskMix (the only changes: the wrapper and a loss that
takes soft labels)::

    >>> import torch, learn2learn as l2l
    >>> from l2l_taskmix import TaskMix, BatchTaskset
    >>> g = torch.Generator().manual_seed(0)
    >>> tasksets = [BatchTaskset(torch.randn(40, 8), torch.arange(40) % 3, num_support=8,
    ...                          num_classes=3, generator=g) for _ in range(4)]
    >>> taskmix = TaskMix(tasksets, eta=2.0, generator=g)   # T = 4 real + N = 4 synthetic
    >>> maml = l2l.algorithms.MAML(torch.nn.Linear(8, 3), lr=0.1)
    >>> for task in taskmix.sample_iteration():
    ...     learner = maml.clone()
    ...     (xs, ys), (xq, yq) = task.support, task.query
    ...     learner.adapt(torch.nn.functional.cross_entropy(learner(xs), ys))  # soft labels
    ...     loss = torch.nn.functional.cross_entropy(learner(xq), yq)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import torch

from . import mixing
from .validation import check_scalar, make_generator

__all__ = ["Task", "BatchTaskset", "RealTasks", "TaskMix", "MetaMix", "as_task", "num_classes_of"]


@dataclass
class Task:
    """One task of a meta-iteration.

    Attributes:
        x: all points, shape ``(n, ...)``; rows ``[:num_support]`` are the support part.
        y: soft labels, float, shape ``(n, C)``; each row sums to one.
        num_support: how many leading rows form the support part.
        source: ``None`` for a real task; ``(i, j, lam)`` for a TaskMix task made as
            ``lam * task_i + (1 - lam) * task_j`` of the same iteration's real tasks.
        num_mixed: how many trailing query rows are MetaMix points (0 without MetaMix).
    """

    x: torch.Tensor
    y: torch.Tensor
    num_support: int
    source: tuple[int, int, float] | None = None
    num_mixed: int = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.x
        yield self.y

    @property
    def support(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the support (adaptation) part."""
        return self.x[: self.num_support], self.y[: self.num_support]

    @property
    def query(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the query (evaluation) part, MetaMix points included."""
        return self.x[self.num_support :], self.y[self.num_support :]

    @property
    def is_synthetic(self) -> bool:
        return self.source is not None

    def to(self, *args: Any, **kwargs: Any) -> "Task":
        """A copy with ``x`` and ``y`` moved as by ``Tensor.to``."""
        return replace(self, x=self.x.to(*args, **kwargs), y=self.y.to(*args, **kwargs))


def _check_features(x: torch.Tensor, what: str) -> None:
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    if x.dtype.is_floating_point and not torch.isfinite(x).all():
        raise ValueError(f"{what} has NaN or infinite features")


def as_task(sample: Any, num_classes: int, what: str = "task") -> Task:
    """Normalize a taskset's sample, ``(x, y)`` or a :class:`Task`, to a :class:`Task` in C classes.

    Integer labels become one-hot rows; float labels of shape ``(n, c)`` with ``c <= C`` are taken
    as soft labels and padded with zero columns. An ``(x, y)`` pair is split in halves: support
    first, query second.
    """
    if isinstance(sample, Task):
        x, y, num_support = sample.x, sample.y, sample.num_support
    else:
        try:
            x, y = sample[0], sample[1]
        except (TypeError, IndexError, KeyError):
            raise TypeError(f"{what}: a taskset must return (x, y) or a Task, got {type(sample).__name__}") from None
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        num_support = x.shape[0] // 2 if x.dim() else 0
    _check_features(x, what)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: {x.shape[0]} points but {y.shape[0]} labels")
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    if y.dtype.is_floating_point and y.dim() == 2:
        if y.shape[1] > num_classes:
            raise ValueError(f"{what}: soft labels have {y.shape[1]} classes, more than num_classes={num_classes}")
        if not torch.isfinite(y).all() or (y < 0).any() or not torch.allclose(y.sum(1), torch.ones_like(y[:, 0]), atol=1e-4):
            raise ValueError(f"{what}: soft labels must be finite, non-negative rows that sum to 1")
        y = torch.nn.functional.pad(y, (0, num_classes - y.shape[1])).to(dtype)
    else:
        try:
            y = mixing.one_hot(y.reshape(-1), num_classes, dtype=dtype).to(x.device)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    if not 0 < num_support < x.shape[0]:
        raise ValueError(f"{what}: needs both a support and a query part, got {x.shape[0]} points with num_support={num_support}")
    if isinstance(sample, Task):
        return replace(sample, y=y)
    return Task(x=x, y=y, num_support=int(num_support))


class BatchTaskset:
    """A meta-training task as the paper samples it: random support and query batches of one
    task's data, drawn independently (no split between them).

    ``sample()`` returns a :class:`Task` with ``num_support`` rows followed by ``num_query`` rows,
    labels one-hot in ``num_classes`` classes (default: ``max(y) + 1``). A task with fewer points than a batch is sampled with
    replacement; otherwise without.

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
        self.num_classes = num_classes_of((x, y)) if num_classes is None else num_classes
        self.x, self.y = x, mixing.one_hot(y, self.num_classes, dtype=x.dtype if x.dtype.is_floating_point else torch.float32)
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


def num_classes_of(source: Any) -> int | None:
    """The class count C of a taskset, a task or a sample; ``None`` when it cannot be told.

    In order: a ``num_classes`` attribute; a :class:`Task`'s label columns; ``max(y) + 1`` of an
    ``(x, y)`` sample with integer labels; ``max + 1`` of a learn2learn ``TaskDataset``'s
    ``dataset.labels``.

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
        if y.numel() and not y.dtype.is_floating_point:
            return int(y.max()) + 1
        return int(y.shape[1]) if y.dim() == 2 else None
    labels = getattr(getattr(source, "dataset", None), "labels", None)  # learn2learn TaskDataset
    if labels is not None and len(labels):
        try:
            return int(max(int(label) for label in labels)) + 1
        except (TypeError, ValueError):
            return None
    return None


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
    """What TaskMix and MetaMix share: the wrapped tasksets, the generator and the task stream."""

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
        self.is_list = isinstance(tasksets, (list, tuple))
        self.tasksets = list(tasksets) if self.is_list else tasksets
        members = self.tasksets if self.is_list else [self.tasksets]
        if not members:
            raise ValueError("no tasksets given")
        for ts in members:
            if not (hasattr(ts, "sample") or hasattr(ts, "sample_iteration")):
                raise TypeError(f"a taskset must have a sample() method, got {type(ts).__name__}")
        meta_batch_size = check_scalar(meta_batch_size, "meta_batch_size", int, min_val=1, allow_none=True)
        if self.is_list and meta_batch_size is not None and meta_batch_size != len(members):
            raise ValueError("meta_batch_size applies to a single taskset; a list gives one task per taskset")
        self.meta_batch_size = len(members) if self.is_list else (meta_batch_size or 2)
        if num_classes is None:
            inferred = [num_classes_of(ts) for ts in members]
            num_classes = max(inferred) if all(c is not None for c in inferred) else None
        self.num_classes = check_scalar(num_classes, "num_classes", int, min_val=1, allow_none=True)
        self.generator = make_generator(generator, seed)
        self._stream: deque[Task] = deque()

    # -- the real tasks of one iteration --------------------------------------------------
    def _inner_iteration(self) -> list[Task]:
        if not self.is_list and hasattr(self.tasksets, "sample_iteration"):
            return list(self.tasksets.sample_iteration())  # a wrapped TaskMix / MetaMix
        members = self.tasksets if self.is_list else [self.tasksets] * self.meta_batch_size
        samples = [ts.sample() for ts in members]
        if self.num_classes is None:  # last resort: infer from the first iteration's labels
            counts = [num_classes_of(s) for s in samples]
            if None in counts:
                raise ValueError("cannot tell the class count from the sampled labels; pass num_classes=")
            self.num_classes = max(counts)
        return [as_task(s, self.num_classes, what=f"task {k}") for k, s in enumerate(samples)]

    def real_tasks_per_iteration(self) -> int:
        inner = self.tasksets
        if not self.is_list and hasattr(inner, "sample_iteration"):
            return len(inner)
        return self.meta_batch_size

    # -- learn2learn Taskset behaviour ------------------------------------------------------
    @abstractmethod
    def sample_iteration(self) -> list[Task]:
        """The tasks of a new meta-iteration."""

    def sample(self) -> Task:
        """The next task of the stream of iterations (learn2learn's ``Taskset.sample``)."""
        if not self._stream:
            self._stream.extend(self.sample_iteration())
        return self._stream.popleft()

    def __getitem__(self, index: int) -> Task:
        """Like a learn2learn ``Taskset`` with ``num_tasks=-1``: a fresh task, index ignored."""
        return self.sample()

    def __iter__(self) -> Iterator[Task]:
        """The tasks of one new meta-iteration."""
        return iter(self.sample_iteration())


class TaskMix(_TaskAugmentation):
    """TaskMix: meta-train on the T real tasks of an iteration plus N tasks that interpolate them.

    Each meta-iteration (:meth:`sample_iteration`) samples one batch from each of the T wrapped
    tasksets (or T = ``meta_batch_size`` batches from one taskset), draws N pairs ``(i, j)``
    uniformly (``i != j``) and, per pair, ``lam ~ Beta(eta, eta)``, and returns the T real tasks
    followed by N synthetic ones with ``x = lam * x_i + (1 - lam) * x_j`` and
    ``y = lam * y_i + (1 - lam) * y_j`` (support and query with the same ``lam``). ``y`` are soft
    labels, so the loss must accept probabilities, e.g. ``F.cross_entropy(logits, y)``.

    Args:
        tasksets: a learn2learn ``Taskset``/``TaskDataset`` (or anything with ``sample()``
            returning ``(x, y)`` or a :class:`Task`), a list of them (one per meta-training
            task, the paper's setting), or a :class:`MetaMix`.
        eta: the Beta parameter; default :data:`~l2l_taskmix.mixing.DEFAULT_ETA` (1.0, uniform
            ``lam``; see the README for how it was chosen).
        num_tasks: N, the number of synthetic tasks per iteration; default T. ``0`` gives the
            wrapped tasks unchanged and leaves all random streams untouched (plain MAML).
        num_classes: C, the common label space; inferred from the tasksets when absent.
        generator, seed: the source of every random draw of the mixing (one or the other).
        meta_batch_size: T when a single taskset is wrapped (default 2).

    Example::

        >>> import torch
        >>> from l2l_taskmix import BatchTaskset, TaskMix
        >>> ts = [BatchTaskset(torch.randn(30, 4), torch.arange(30) % 3, num_support=5, seed=k)
        ...       for k in range(3)]
        >>> tasks = TaskMix(ts, seed=0).sample_iteration()
        >>> len(tasks), tasks[3].source is not None
        (6, True)
    """

    def __init__(
        self,
        tasksets: Any,
        eta: float = mixing.DEFAULT_ETA,
        num_tasks: int | None = None,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        meta_batch_size: int | None = None,
    ):
        self.num_tasks = check_scalar(num_tasks, "num_tasks", int, min_val=0, allow_none=True)
        super().__init__(tasksets, eta, num_classes, generator, seed, meta_batch_size)

    def __len__(self) -> int:
        """Tasks per meta-iteration: T real + N synthetic."""
        real = self.real_tasks_per_iteration()
        return real + (real if self.num_tasks is None else self.num_tasks)

    def sample_iteration(self) -> list[Task]:
        """The T real tasks of a new meta-iteration followed by its N synthetic tasks."""
        real = self._inner_iteration()
        n = len(real) if self.num_tasks is None else self.num_tasks
        if n == 0:
            return real
        if len(real) < 2:
            raise ValueError(f"TaskMix needs at least two tasks per iteration to mix, got {len(real)}")
        first = real[0]
        for k, task in enumerate(real[1:], start=1):
            if task.x.shape != first.x.shape or task.y.shape != first.y.shape or task.num_support != first.num_support:
                raise ValueError(
                    "TaskMix mixes tasks of equal batch shapes; "
                    f"task 0 has x {tuple(first.x.shape)} (support {first.num_support}) but task {k} has "
                    f"x {tuple(task.x.shape)} (support {task.num_support}): sample equal support/query sizes"
                )
        pairs = mixing.sample_pairs(len(real), n, generator=self.generator)
        lams = mixing.sample_lambda(self.eta, n, generator=self.generator, dtype=torch.float64)
        synthetic = []
        for (i, j), lam in zip(pairs.tolist(), lams.tolist()):
            a, b = real[i], real[j]
            synthetic.append(
                Task(
                    x=mixing.mix(a.x, b.x, lam),
                    y=mixing.mix(a.y, b.y, lam),
                    num_support=a.num_support,
                    source=(i, j, lam),
                    num_mixed=a.num_mixed,
                )
            )
        return real + synthetic


class MetaMix(_TaskAugmentation):
    """MetaMix as the TaskMix paper uses it: MixUp of query points within each task.

    For every task of an iteration it pairs each query point with a random query point of the
    same task (a random permutation), draws ``lam ~ Beta(eta, eta)`` per new point and appends
    the mixed points and their soft labels to the task's query part. The outer loss on the
    extended query, averaged over its rows, is the mean of the plain query loss and the MixUp
    loss: the additional term per task. Yao et al.'s original MetaMix instead mixes support
    with query points at a randomly chosen hidden layer; this version mixes the frozen features.

    Takes the same inputs as :class:`TaskMix`. The paper's combined method,
    MAML+MetaMix+TaskMix, is ``MetaMix(TaskMix(tasksets))``: MetaMix on every real and synthetic
    task. ``TaskMix(MetaMix(tasksets))`` also works (it mixes the MetaMix-extended tasks).

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
        tasksets: Any,
        eta: float = mixing.DEFAULT_ETA,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        meta_batch_size: int | None = None,
    ):
        super().__init__(tasksets, eta, num_classes, generator, seed, meta_batch_size)

    def __len__(self) -> int:
        """Tasks per meta-iteration (MetaMix adds points, not tasks)."""
        return self.real_tasks_per_iteration()

    def augment(self, task: Task) -> Task:
        """``task`` with MixUp points of its (original) query part appended to its query part."""
        end = task.x.shape[0] - task.num_mixed
        xq, yq = task.x[task.num_support : end], task.y[task.num_support : end]
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

    def sample_iteration(self) -> list[Task]:
        """The tasks of a new meta-iteration, each with MetaMix query points appended."""
        return [self.augment(task) for task in self._inner_iteration()]
