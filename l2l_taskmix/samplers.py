"""Samplers of real tasks: the paper's batch task, and one meta-iteration's real tasks.

:class:`BatchTaskset` samples a meta-training task as the paper does (random support and query
batches of the same data); :class:`RealTasks` gives the T real tasks of each meta-iteration from
a list of tasksets or from one, and is the one kind of sampler :class:`~l2l_taskmix.TaskMix` and
:class:`~l2l_taskmix.MetaMix` wrap. The checks of what a training taskset is
(:func:`check_taskset`, :func:`check_taskset_list`) and how one task is taken from it
(:func:`take_task`) live here, beside :class:`RealTasks`, which applies them.

Example::

    >>> import torch
    >>> from l2l_taskmix import BatchTaskset, RealTasks
    >>> ts = [BatchTaskset(torch.randn(20, 3), torch.arange(20) % 2, num_support=4, seed=k) for k in range(3)]
    >>> [t.x.shape[0] for t in RealTasks(ts).sample_iteration()]
    [8, 8, 8]
"""

from __future__ import annotations

import collections
from typing import Any, Sequence

import torch

from . import mixing
from .task import Task, check_features, num_classes_of
from .validation import check_scalar, make_generator

__all__ = ["BatchTaskset", "RealTasks", "DEFAULT_META_BATCH_SIZE"]

#: T, the real tasks per meta-iteration, when a single taskset is wrapped and neither
#: ``meta_batch_size`` nor ``tasks_per_step`` is given.
DEFAULT_META_BATCH_SIZE = 2


#: The ``mode`` values of learn2learn's datasets (``MiniImagenet(mode=)``, ``FC100``, ...) that
#: are not training data.
HELD_OUT_MODES = ("validation", "valid", "val", "test")


def _datasets_of(taskset: Any, depth: int = 8) -> list[Any]:
    """The chain of ``.dataset`` attributes under a taskset (learn2learn's Taskset, MetaDataset,
    FilteredMetaDataset, the vision dataset), nearest first."""
    chain, current = [], taskset
    for _ in range(depth):
        current = getattr(current, "dataset", None)
        if current is None:
            break
        chain.append(current)
    return chain


def held_out_mode(taskset: Any) -> str | None:
    """The ``mode`` of a held-out split (``"validation"``, ``"test"``) that a taskset's data were
    loaded with, as learn2learn's vision datasets record it; ``None`` when none is found."""
    for dataset in _datasets_of(taskset):
        mode = getattr(dataset, "mode", None)
        if isinstance(mode, str) and mode.lower() in HELD_OUT_MODES:
            return mode
    return None


def _class_subset(taskset: Any) -> tuple[int, frozenset, frozenset] | None:
    """``(id of the parent dataset, its classes here, all the parent's classes)`` for a taskset
    over a ``FilteredMetaDataset``, the way ``get_tasksets`` splits one dataset's classes into
    train, validation and test."""
    for dataset in _datasets_of(taskset):
        parent, labels = getattr(dataset, "dataset", None), getattr(dataset, "labels", None)
        if parent is not None and hasattr(dataset, "to_true_indices") and labels is not None:
            return id(parent), frozenset(labels), frozenset(getattr(parent, "labels", ()) or ())
    return None


def check_taskset(source: Any, who: str) -> None:
    """Refuse what is not a training taskset, naming the fix: a ``BenchmarkTasksets`` (train,
    validation, test), a taskset of a validation or test split, an object without ``sample()``."""
    fields = getattr(source, "_fields", None)
    if isinstance(source, tuple) and fields and "train" in fields:
        others = ", ".join(f for f in fields if f != "train")
        raise TypeError(
            f"{who} got a {type(source).__name__} of {', '.join(fields)} tasksets: it would mix {others} tasks "
            f"into training. Wrap the training taskset only, e.g. "
            f"tasksets = tasksets._replace(train={who}(tasksets.train, ...))"
        )
    if not hasattr(source, "sample"):
        raise TypeError(f"a taskset must have a sample() method, got {type(source).__name__}")
    mode = held_out_mode(source)
    if mode is not None:
        raise ValueError(
            f"{who} got a taskset of mode={mode!r} data: it would train on {mode} tasks. Wrap the training "
            f"taskset only, e.g. tasksets = tasksets._replace(train={who}(tasksets.train, ...))"
        )


def check_taskset_list(tasksets: Sequence[Any], who: str) -> None:
    """Refuse a list of tasksets that are the train, validation and test fields of one
    ``BenchmarkTasksets`` (``list(get_tasksets(...))``): three tasksets over disjoint classes of
    one dataset that together hold all its classes, as ``get_tasksets`` splits it (tasksets over
    some of a dataset's classes each, one per meta-training task, are fine)."""
    for member in tasksets:
        check_taskset(member, who)
    groups: dict[int, list[tuple[int, frozenset, frozenset]]] = {}
    for k, member in enumerate(tasksets):
        subset = _class_subset(member)
        if subset is not None:
            groups.setdefault(subset[0], []).append((k, subset[1], subset[2]))
    for members in groups.values():
        parts = [classes for _, classes, _ in members]
        everything = members[0][2]
        if len(members) == 3 and sum(map(len, parts)) == len(frozenset().union(*parts)) == len(everything):
            j, k = members[0][0], members[1][0]
            raise ValueError(
                f"{who} got tasksets {j} and {k} over disjoint classes of one dataset, as get_tasksets(...) "
                "splits it into train, validation and test: it would mix held-out tasks into training. Wrap "
                f"the training taskset only: tasksets = tasksets._replace(train={who}(tasksets.train, ...))"
            )


def given_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    """``generator``, or one seeded with ``seed``; with neither, ``None``: the owner seeds one
    from torch's global RNG when it first draws (so ``torch.manual_seed`` makes runs repeat, and
    a wrapper that never draws, ``num_synthetic=0``, leaves the script's global stream as it was)."""
    if generator is None and seed is None:
        return None
    return make_generator(generator, seed)


def is_taskset_list(tasksets: Any) -> bool:
    """Whether ``tasksets`` is a list of tasksets (a namedtuple such as ``BenchmarkTasksets`` is not)."""
    return isinstance(tasksets, (list, tuple)) and not hasattr(tasksets, "_fields")


class LazyGenerator:
    """A ``generator`` property over ``self._generator`` (from :func:`given_generator`): seeded
    from torch's global RNG at the first draw when none was given."""

    _generator: torch.Generator | None

    @property
    def generator(self) -> torch.Generator:
        """The source of this object's random draws."""
        if self._generator is None:
            self._generator = make_generator()
        return self._generator


def check_boundary(sampler: Any) -> None:
    """Refuse ``sample_iteration()`` part-way through an iteration served by ``sample()``."""
    if not sampler.at_boundary:
        raise RuntimeError(
            f"this {type(sampler).__name__} is part-way through a meta-iteration served by sample(); "
            "take the rest with sample() before calling sample_iteration()"
        )


def take_task(taskset: Any, index: int | None) -> Any:
    """One task of ``taskset``: ``taskset.sample()``, or, for a ``DataLoader``'s ``index``, what a
    ``DataLoader`` over the taskset itself would take. A learn2learn ``Taskset`` with
    ``num_tasks=-1`` has one index, and every ``taskset[0]`` is a new task drawn without
    ``sample()``'s draw from Python's ``random``; any other taskset gives ``sample()``."""
    if index is not None and hasattr(taskset, "__getitem__") and hasattr(taskset, "__len__") and len(taskset) == 1:
        return taskset[0]
    return taskset.sample()


def distinct_tasks(taskset: Any) -> int | None:
    """How many distinct tasks a taskset can give: learn2learn's ``num_tasks`` when it caches
    them (``num_tasks >= 1``), else ``None`` (a new task each time)."""
    num_tasks = getattr(taskset, "num_tasks", None)
    return int(num_tasks) if isinstance(num_tasks, int) and num_tasks >= 1 else None


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
        check_features(x, f"task {self.name!r}")
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


class RealTasks(LazyGenerator):
    """The real tasks of each meta-iteration, the one kind of sampler TaskMix and MetaMix wrap.

    A list of tasksets gives one task from each per iteration (learn2learn's usual loop, the
    paper's setting), or from ``meta_batch_size`` distinct ones drawn at random each iteration
    (sorted); a single taskset gives ``meta_batch_size`` of its tasks (default 2). Each task is
    what the taskset's ``sample()`` returned.

    ``sample_iteration()`` returns one iteration's tasks; ``sample()`` serves them one at a time,
    each sampled when it is served (the random draw of the iteration's tasksets comes first),
    ``[index]`` the same for a ``DataLoader`` (:func:`take_task`), and ``len()`` is T. Neither a
    ``BenchmarkTasksets``, nor a list of its fields, nor a held-out split is taken
    (:func:`check_taskset_list`).

    Example::

        >>> import torch
        >>> ts = [BatchTaskset(torch.randn(20, 3), torch.arange(20) % 2, num_support=4, seed=k) for k in range(3)]
        >>> len(RealTasks(ts).sample_iteration()), len(RealTasks(ts, meta_batch_size=2, seed=0).sample_iteration())
        (3, 2)
    """

    def __init__(
        self,
        tasksets: Any,
        meta_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        meta_batch_size = check_scalar(meta_batch_size, "meta_batch_size", int, min_val=1, allow_none=True)
        self.is_list = is_taskset_list(tasksets)
        if self.is_list:
            if not tasksets:
                raise ValueError("no tasksets given")
            self.tasksets = list(tasksets)
            self.meta_batch_size = len(self.tasksets) if meta_batch_size is None else min(meta_batch_size, len(self.tasksets))
        else:
            self.tasksets = [tasksets]
            self.meta_batch_size = DEFAULT_META_BATCH_SIZE if meta_batch_size is None else meta_batch_size
        check_taskset_list(self.tasksets, "RealTasks")
        self._generator = given_generator(generator, seed)
        self.last_index: list[int] = self._all()
        self._queue: collections.deque[int] = collections.deque()

    def __len__(self) -> int:
        return self.meta_batch_size

    def _all(self) -> list[int]:
        return list(range(self.meta_batch_size)) if self.is_list else [0] * self.meta_batch_size

    def _draw_index(self) -> list[int]:
        """This iteration's tasksets (a draw only when a list is subsampled)."""
        if not self.is_list or self.meta_batch_size == len(self.tasksets):
            index = self._all()
        else:
            index = sorted(torch.randperm(len(self.tasksets), generator=self.generator)[: self.meta_batch_size].tolist())
        self.last_index = index
        return index

    @property
    def at_boundary(self) -> bool:
        """Whether the next task starts a new meta-iteration."""
        return not self._queue

    def sample_iteration(self) -> list[Any]:
        """One task from each of this iteration's tasksets."""
        check_boundary(self)
        return [self.tasksets[i].sample() for i in self._draw_index()]

    def sample(self) -> Any:
        """The next task of the current meta-iteration."""
        return self._take(None)

    def __getitem__(self, index: int) -> Any:
        """The next task of the current meta-iteration, taken from its taskset as a
        ``DataLoader`` over that taskset takes one (:func:`take_task`)."""
        return self._take(index)

    def _take(self, index: int | None) -> Any:
        if not self._queue:
            self._queue.extend(self._draw_index())
        return take_task(self.tasksets[self._queue.popleft()], index)

    @property
    def num_distinct(self) -> int | None:
        """How many distinct tasks the tasksets can give all together (``None``: unbounded)."""
        counts = {id(ts): distinct_tasks(ts) for ts in self.tasksets}
        return None if None in counts.values() else sum(counts.values())
