"""TaskMix and MetaMix: the paper's algorithm on a meta-iteration's tasks, and a thin adapter
that makes either one a learn2learn taskset.

**The algorithm.** ``TaskMix(...)(tasks)`` takes one meta-iteration's T real tasks and returns
them, untouched, followed by N synthetic tasks: per task pair ``(i, j)``, drawn uniformly, and
``lam ~ Beta(eta, eta)``, row ``r`` of the synthetic task is ``lam * x_i[r] + (1 - lam) *
x_j[r]``. Its labels come in one of two modes (``labels=``):

* ``"slot"``, for episodic N-way tasks (learn2learn's ``NWays``/``KShots``/``RemapLabels``),
  whose label numbers mean nothing across tasks: row ``r`` is the same class slot of both tasks
  (their class layouts must agree), the mixed class is a new class, and it keeps task ``i``'s
  integer label for that slot. The synthetic task looks like a real one to your script:
  integer labels, learn2learn's ``accuracy``, ``.long()``, sorting and prototypes work as they
  are;
* ``"soft"``, the paper's, for tasks that share one label space (the intent benchmark):
  ``y = lam * y_i + (1 - lam) * y_j`` of one-hot rows, soft labels of shape ``(n, C)``.

``labels=None`` (the default) picks ``"soft"`` when the tasks carry soft labels (a
:class:`BatchTaskset`'s) or ``num_classes`` is given, ``"slot"`` for integer labels.
``MetaMix(...)(tasks)`` appends MixUp points of each task's query rows (soft labels).

**The adapter.** ``TaskMix(taskset)`` (or ``MetaMix``) is itself a taskset: ``sample()`` gives
one task at a time, ``len()`` is the tasks of a meta-iteration, ``taskmix[i]`` serves
``DataLoader``. The stream is made of whole meta-iterations, T real tasks, each exactly what
the wrapped taskset returned and sampled when it is served, then the N synthetic tasks that
mix them. Two keyword-only knobs say how many, the same in TaskMix and MetaMix:
``tasks_per_step=M``, the tasks your loop samples per optimizer step (learn2learn's scripts
call it ``meta_batch_size``), makes each step one meta-iteration (T = ceil(M / 2) real, N =
floor(M / 2) synthetic), so such a script keeps its loop and its averages; ``num_real=T`` sets
the real tasks of an iteration whatever the loop (a loop that takes one task a step). An
optimizer step that took part of an iteration is refused at that step, with the line that
fits. ``sample_iteration()`` returns one whole meta-iteration as a list.

Example, learn2learn's MAML step with TaskMix::

    >>> import torch, learn2learn as l2l
    >>> from torch import nn
    >>> from l2l_taskmix import TaskMix
    >>> g = torch.Generator().manual_seed(0)
    >>> data = torch.utils.data.TensorDataset(torch.randn(100, 8, generator=g), torch.arange(100) % 10)
    >>> meta = l2l.data.MetaDataset(data)
    >>> taskset = l2l.data.Taskset(meta, [l2l.data.transforms.NWays(meta, 5), l2l.data.transforms.KShots(meta, 2),
    ...     l2l.data.transforms.LoadData(meta), l2l.data.transforms.RemapLabels(meta)], num_tasks=-1)
    >>> taskset = TaskMix(taskset, tasks_per_step=4, seed=0)       # 2 real + 2 synthetic per step
    >>> maml = l2l.algorithms.MAML(nn.Linear(8, 5), lr=0.1)
    >>> opt = torch.optim.SGD(maml.parameters(), lr=0.01)
    >>> for step in range(2):                                        # learn2learn's loop, unchanged
    ...     opt.zero_grad()
    ...     for task in range(4):                                    # the script's meta_batch_size
    ...         learner = maml.clone()
    ...         x, y = taskset.sample()                              # integer labels, real or synthetic
    ...         learner.adapt(nn.functional.cross_entropy(learner(x[::2]), y[::2]))
    ...         (nn.functional.cross_entropy(learner(x[1::2]), y[1::2]) / 4).backward()
    ...     opt.step()                                               # each step: one whole meta-iteration
    >>> len(taskset), y.dtype
    (4, torch.int64)
"""

from __future__ import annotations

import collections
import warnings
import weakref
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Iterator, Sequence

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from . import mixing
from .samplers import (
    LazyGenerator,
    RealTasks,
    check_boundary,
    check_taskset_list,
    given_generator,
    is_taskset_list,
)
from .task import Task, as_task, check_features, is_soft, num_classes_of, unpack
from .validation import check_choice, check_scalar

__all__ = ["TaskMix", "MetaMix", "LABEL_MODES"]

#: TaskMix's label modes (see the module's docs); ``None`` picks one from the tasks.
LABEL_MODES = ("slot", "soft")


def _refuse_workers(who: str) -> None:
    if torch.utils.data.get_worker_info() is not None:
        raise RuntimeError(
            f"{who} serves one stream of meta-iterations from one process; a DataLoader worker holds a copy of "
            f"it and would repeat the other workers' synthetic tasks. Use DataLoader(..., num_workers=0)"
        )


def _refuse_unknown(who: str, given: dict[str, Any]) -> None:
    """A keyword the wrapper does not take; ``meta_batch_size`` with the line that says what was meant."""
    if "meta_batch_size" in given:
        raise TypeError(
            f"{who} takes no meta_batch_size: learn2learn's scripts give that name to the tasks their loop samples "
            f"per step, and {who} cannot tell which you mean. For a loop that calls sample() meta_batch_size times "
            f"a step, write {who}(taskset, tasks_per_step=meta_batch_size); for the real tasks of each "
            f"meta-iteration, whatever the loop, write {who}(taskset, num_real={given['meta_batch_size']!r})"
        )
    if given:
        raise TypeError(f"{who}() got an unexpected keyword argument {next(iter(given))!r}")


class _StepWatch:
    """Checks, at each optimizer step (torch's global post-step hook), that the tasks its owner's
    ``sample()``/``[i]`` served since the previous step are whole meta-iterations (one; several
    where steps accumulate, or where a step was skipped, as ``GradScaler`` skips one whose
    gradients overflowed), or a single task (a loop that takes one task a step). Steps that took
    no task (another optimizer) pass,
    and so does any step when no task is mixed with another (``num_synthetic=0``, MetaMix alone:
    the steps' tasks are then the plain loop's)."""

    def __init__(self, owner: "_Augmentation"):
        self.owner = weakref.ref(owner)
        self.served, self.started_at_boundary = 0, True
        self.handle: Any = None

    def serve(self, at_boundary: bool) -> None:
        owner = self.owner()
        if self.handle is None and owner is not None:
            self.handle = register_optimizer_step_post_hook(self.on_step)
            weakref.finalize(owner, self.handle.remove)
        if self.served == 0:
            self.started_at_boundary = at_boundary
        self.served += 1

    def on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        served, self.served = self.served, 0
        owner = self.owner()
        if owner is None or served <= 1 or not owner.mixes_tasks:
            return
        if self.started_at_boundary and owner.at_boundary:  # whole iterations (several: accumulated, or a skipped step)
            return
        raise RuntimeError(owner._step_mistake(served, self.started_at_boundary))


class _Augmentation(LazyGenerator, ABC):
    """The learn2learn adapter that TaskMix and MetaMix share: the wrapped sampler, the
    generator, and the taskset interface (``sample``, ``len``, indexing, iteration) over the
    stream of augmented meta-iterations. Subclasses say what one iteration is."""

    def __init__(self, tasksets: Any, *, eta: float, num_real: int | None, num_classes: int | None, generator, seed):
        self.eta = mixing.check_eta(eta)
        self.num_classes = check_scalar(num_classes, "num_classes", int, min_val=1, allow_none=True)
        self._generator = given_generator(generator, seed)
        self._pending: collections.deque[Any] = collections.deque()
        self._watch = _StepWatch(self)
        name = type(self).__name__
        if tasksets is None:
            self.source = None
            self._num_real = num_real
        elif isinstance(tasksets, (_Augmentation, RealTasks)):
            if num_real is not None and num_real != len(tasksets):
                raise ValueError(f"num_real={num_real}, but the wrapped {type(tasksets).__name__} gives {len(tasksets)} tasks an iteration")
            self.source = tasksets
        else:
            is_list = is_taskset_list(tasksets)
            if is_list and num_real is not None and num_real != len(tasksets):
                raise ValueError(
                    f"num_real={num_real} applies to a single taskset; a list of {len(tasksets)} "
                    "tasksets gives one task per taskset (RealTasks(tasksets, meta_batch_size=) draws a subset)"
                )
            check_taskset_list(tasksets if is_list else [tasksets], name)
            self.source = RealTasks(tasksets, meta_batch_size=num_real, generator=self._generator)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_watch"]  # a weak reference to this object: each copy gets its own watch
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._watch = _StepWatch(self)

    @staticmethod
    def _check_step(tasksets: Any, tasks_per_step: int | None, num_real: int | None) -> int | None:
        """``tasks_per_step``, checked against the other arguments (it applies to one taskset)."""
        tasks_per_step = check_scalar(tasks_per_step, "tasks_per_step", int, min_val=1, allow_none=True)
        if tasks_per_step is not None:
            if num_real is not None:
                raise TypeError("give num_real (T, the real tasks of an iteration) or tasks_per_step (the tasks a step), not both")
            if tasksets is None or is_taskset_list(tasksets) or isinstance(tasksets, (_Augmentation, RealTasks)):
                raise TypeError("tasks_per_step applies to a single taskset; a list or a wrapped sampler fixes T itself")
        return tasks_per_step

    # -- the algorithm -------------------------------------------------------------------------

    @abstractmethod
    def _augment(self, tasks: Sequence[Any]) -> list[Any]:
        """This wrapper's own augmentation of one whole iteration's tasks."""

    @abstractmethod
    def _next(self, index: int | None) -> list[Any]:
        """The next tasks of the stream (possibly none): what :meth:`sample` serves."""

    @abstractmethod
    def _iteration_words(self) -> str:
        """What one meta-iteration is, for messages: ``"8 tasks (4 real, then 4 synthetic)"``."""

    def _step_line(self, served: int) -> str:
        """The line that makes a step of ``served`` ``sample()`` calls one meta-iteration."""
        return f"{type(self).__name__}(taskset, tasks_per_step={served})"

    def _step_mistake(self, served: int, started: bool) -> str:
        """What is wrong when an optimizer step took ``served`` tasks that began (``started``
        false) or ended part-way through an iteration."""
        where = "began part-way through a meta-iteration" if not started else "ended part-way through a meta-iteration"
        return (
            f"this optimizer step took {served} tasks from {type(self).__name__} and {where} of {self._iteration_words()}: "
            "its steps would train on real tasks only, then on synthetic ones only, or on two iterations' tasks. Make "
            f"each step one iteration: for a loop that calls sample() {served} times a step, write {self._step_line(served)}"
        )

    def __call__(self, tasks: Sequence[Any]) -> list[Any]:
        """Augment a list of already-sampled tasks (one meta-iteration's), like timm's ``Mixup``.

        A wrapped TaskMix/MetaMix augments them first: ``MetaMix(TaskMix())(tasks)`` is the
        paper's combined method on ``tasks``.
        """
        if isinstance(tasks, (Task, torch.Tensor)) or not isinstance(tasks, Sequence) or not len(tasks):
            raise TypeError(f"{type(self).__name__} is called on a non-empty list of tasks, got {type(tasks).__name__}")
        if isinstance(self.source, _Augmentation):
            tasks = self.source(tasks)
        return self._augment(tasks)

    def _tasks_in(self) -> int:
        """How many tasks each iteration brings to this wrapper (T for a wrapped taskset)."""
        if self.source is not None:
            return len(self.source)
        if self._num_real is None:
            name = type(self).__name__
            raise TypeError(f"a {name} that wraps no taskset has no fixed length; give num_real=")
        return self._num_real

    def _num_classes(self, tasks: Sequence[Any]) -> int:
        """``num_classes`` if given, else the largest class count among ``tasks``."""
        if self.num_classes is not None:
            return self.num_classes
        counts = [num_classes_of(unpack(t, f"task {k}")) for k, t in enumerate(tasks)]
        if None in counts:
            k = counts.index(None)
            raise ValueError(f"task {k}: cannot tell its class count from its labels; pass num_classes=")
        return max(counts)

    def _as_tasks(self, tasks: Sequence[Any]) -> list[Task]:
        """``tasks`` as :class:`Task` objects with soft labels in one label space."""
        num_classes = self._num_classes(tasks)
        return [as_task(t, num_classes, what=f"task {k}") for k, t in enumerate(tasks)]

    # -- the taskset interface -------------------------------------------------------------------

    def _source(self) -> Any:
        if self.source is None:
            name = type(self).__name__
            raise TypeError(
                f"this {name} wraps no taskset: call it on a list of sampled tasks, {name.lower()}(tasks), or build it as {name}(taskset)"
            )
        return self.source

    @property
    def num_real(self) -> int | None:
        """T, the real tasks of a meta-iteration (``None`` for a callable-only wrapper)."""
        if self.source is None:
            return self._num_real
        if isinstance(self.source, _Augmentation):
            return self.source.num_real
        return len(self.source)

    @property
    def at_boundary(self) -> bool:
        """Whether the next task starts a new meta-iteration."""
        return not self._pending and (self.source is None or self.source.at_boundary)

    @property
    def mixes_tasks(self) -> bool:
        """Whether this wrapper (or one it wraps) makes tasks from two tasks of an iteration."""
        return isinstance(self.source, _Augmentation) and self.source.mixes_tasks

    def sample_iteration(self) -> list[Any]:
        """The tasks of a new meta-iteration: sample the real tasks, then augment them."""
        check_boundary(self)
        return self._augment(self._source().sample_iteration())

    def sample(self) -> Any:
        """The next task of the stream of meta-iterations, as a learn2learn taskset's ``sample()``.

        ``len(self)`` consecutive calls from the start (or from the end of an iteration) give
        one whole meta-iteration. Each real task is sampled from the wrapped taskset when it is
        served; synthetic tasks are made once their iteration's real tasks have been served. An
        optimizer step after some of an iteration's tasks, but not all, is refused (it would mix
        two iterations' tasks in one step); a loop that takes one task a step is not.
        """
        self._source()
        self._watch.serve(self.at_boundary)
        return self._serve(None)

    def __getitem__(self, index: int) -> Any:
        """The next task of the stream, as :meth:`sample`, for ``DataLoader(taskmix)``. A real
        task is taken as a ``DataLoader`` over the wrapped taskset would take it: from a
        learn2learn ``Taskset(num_tasks=-1)`` by indexing, not ``sample()`` (which draws from
        Python's ``random``), so with ``num_synthetic=0`` every random stream is the plain
        loader's."""
        _refuse_workers(type(self).__name__)
        self._source()
        self._watch.serve(self.at_boundary)
        return self._serve(index)

    def _serve(self, index: int | None) -> Any:
        while not self._pending:
            self._pending.extend(self._next(index))
        return self._pending.popleft()

    def _take(self, index: int | None) -> Any:
        """One task of the wrapped sampler, for ``sample()`` (``index=None``) or ``self[index]``."""
        if isinstance(self.source, _Augmentation):
            return self.source._serve(index)
        return self.source.sample() if index is None else self.source[index]

    def __iter__(self) -> Iterator[Any]:
        """The next ``len(self)`` tasks of the stream: one meta-iteration from a boundary."""
        for _ in range(len(self)):
            yield self.sample()


class TaskMix(_Augmentation):
    """TaskMix: meta-train on the T real tasks of an iteration plus N tasks that interpolate them.

    Each meta-iteration samples T real tasks (one from each of the wrapped tasksets, or
    ``num_real`` from one taskset), draws N pairs ``(i, j)`` uniformly (``i != j``) and,
    per pair, ``lam ~ Beta(eta, eta)``, and gives the T real tasks, exactly as sampled, followed
    by N synthetic :class:`Task` objects with ``x = lam * x_i + (1 - lam) * x_j`` row by row (one
    ``lam`` for every row, support and query alike). Their labels follow ``labels`` (see the
    module's docs): ``"slot"`` keeps task ``i``'s integer labels, the class slots of both tasks
    being the same rows; ``"soft"`` mixes one-hot labels, ``y = lam * y_i + (1 - lam) * y_j``.

    ``TaskMix(...)(tasks)`` does the same to a list of tasks you sampled yourself;
    ``sample_iteration()`` returns one whole meta-iteration; ``sample()`` serves the stream of
    meta-iterations one task at a time, as a learn2learn taskset does.

    Args:
        tasksets: a learn2learn ``Taskset`` (or anything with ``sample()`` returning ``(x, y)``
            or a :class:`Task`), a list of them (one per meta-training task, the paper's
            setting), a :class:`RealTasks`, a :class:`MetaMix`, or ``None`` for the callable
            form. Not a ``BenchmarkTasksets`` (train, validation, test), nor a list of its
            fields, nor a taskset of validation or test data: wrap its ``.train``.

    Every other argument is keyword-only, with the same name and meaning in :class:`MetaMix`:

    Keyword Args:
        tasks_per_step: the tasks your loop samples per optimizer step (learn2learn's examples:
            their ``meta_batch_size``): each step's tasks are then one meta-iteration, T =
            ``tasks_per_step - N`` real and N synthetic (N = ``tasks_per_step // 2`` unless
            given). A single taskset only.
        num_real: instead of ``tasks_per_step``, T, the real tasks of each meta-iteration when a
            single taskset is wrapped (default 2), whatever the loop's step: a loop that takes
            one task a step (prototypical networks) gets ``num_real=2``.
        num_synthetic: N, the synthetic tasks per iteration; default T (with
            ``tasks_per_step``: ``tasks_per_step // 2``). ``0`` gives the real tasks only and
            leaves every random stream untouched (plain MAML), through ``sample()`` and a
            ``DataLoader`` alike.
        eta: the Beta parameter; default :data:`~l2l_taskmix.mixing.DEFAULT_ETA`.
        labels: ``"slot"``, ``"soft"``, or ``None`` to pick from the tasks: ``"soft"`` when they
            carry soft labels or ``num_classes`` is given, else ``"slot"``.
        num_classes: the width of soft labels; default: the largest class count among each
            iteration's tasks. Giving it declares one shared label space (``labels="soft"``).
        generator, seed: the source of every random draw of the mixing (one or the other).

    A ``meta_batch_size=`` is refused with the line that says what you meant. An optimizer step
    that takes more than one task but not one whole iteration is refused at that step, naming
    the ``tasks_per_step`` that fits the loop. A taskset that caches a single task
    (``Taskset(..., num_tasks=1)``) is refused: every synthetic task would mix it with itself.

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
        *,
        tasks_per_step: int | None = None,
        num_real: int | None = None,
        num_synthetic: int | None = None,
        eta: float = mixing.DEFAULT_ETA,
        labels: str | None = None,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **unknown: Any,
    ):
        _refuse_unknown("TaskMix", unknown)
        num_synthetic = check_scalar(num_synthetic, "num_synthetic", int, min_val=0, allow_none=True)
        num_real = check_scalar(num_real, "num_real", int, min_val=1, allow_none=True)
        self.labels = None if labels is None else check_choice(labels, "labels", LABEL_MODES)
        if self.labels == "slot" and num_classes is not None:
            raise ValueError("num_classes sets the width of soft labels; labels='slot' keeps integer labels and takes none")
        tasks_per_step = self._check_step(tasksets, tasks_per_step, num_real)
        if tasks_per_step is not None:
            num_real, num_synthetic = self._split_step(tasks_per_step, num_synthetic)
        elif num_synthetic != 0 and num_real == 1 and not is_taskset_list(tasksets):
            raise ValueError(
                "num_real=1 gives one real task per meta-iteration, and TaskMix mixes two or more; "
                "give num_real >= 2 (a loop that takes one task per step gets them one per sample() call)"
            )
        self.num_synthetic = num_synthetic
        super().__init__(tasksets, eta=eta, num_real=num_real, num_classes=num_classes, generator=generator, seed=seed)
        self._real: list[Any] = []
        if isinstance(self.source, RealTasks) and self.num_synthetic != 0:
            self._check_distinct(self.source)

    @staticmethod
    def _split_step(tasks_per_step: int, num_synthetic: int | None) -> tuple[int, int]:
        """``(T, N)`` for a loop that takes ``tasks_per_step`` tasks a step (N = half unless given)."""
        synthetic = tasks_per_step // 2 if num_synthetic is None else num_synthetic
        real = tasks_per_step - synthetic
        if real < 1:
            raise ValueError(f"num_synthetic={synthetic} leaves no real task in tasks_per_step={tasks_per_step}")
        if (synthetic or num_synthetic is None) and real < 2:
            raise ValueError(
                f"tasks_per_step={tasks_per_step} leaves {real} real task per meta-iteration, and TaskMix "
                "mixes two or more. For a loop that takes one task "
                "per step (prototypical networks, for instance) give num_real=2 instead: each meta-iteration's "
                "2 real and 2 synthetic tasks are then served one per sample() call"
            )
        return real, synthetic

    @staticmethod
    def _check_distinct(source: RealTasks) -> None:
        """Refuse tasksets that can only ever give one task; warn when fewer than T."""
        distinct = source.num_distinct
        if distinct is None:
            return
        if distinct < 2:
            raise ValueError(
                f"the wrapped taskset holds num_tasks={distinct} task: every synthetic task would be that task mixed "
                "with itself. Build it with num_tasks=-1 (a new task each sample()) or num_tasks >= 2, or pass "
                "num_synthetic=0"
            )
        if distinct < len(source):
            warnings.warn(
                f"the wrapped taskset holds num_tasks={distinct} tasks, fewer than the {len(source)} real tasks of a "
                "meta-iteration: some synthetic tasks will mix a task with itself",
                stacklevel=3,
            )

    def __len__(self) -> int:
        """Tasks per meta-iteration: T real + N synthetic."""
        real = self._tasks_in()
        return real + self._n(real)

    def _n(self, real: int) -> int:
        return real if self.num_synthetic is None else self.num_synthetic

    def _next(self, index: int | None) -> list[Any]:
        if len(self._real) < len(self.source):
            task = self._take(index)
            if self._n(len(self.source)):  # refuse what cannot be mixed before serving it
                check_features(unpack(task, f"task {len(self._real)}")[0], f"task {len(self._real)}")
            self._real.append(task)
            if not self._n(len(self.source)) and len(self._real) == len(self.source):
                self._real = []  # nothing to make: the iteration ends with its last real task
            return [task]
        real, self._real = self._real, []
        return self._synthesize(real)

    def _iteration_words(self) -> str:
        real = self._tasks_in()
        return f"{len(self)} tasks ({real} real, then {self._n(real)} synthetic)"

    def _step_line(self, served: int) -> str:
        return super()._step_line(served) if served >= 3 else "TaskMix(taskset, num_real=2)"

    @property
    def at_boundary(self) -> bool:
        return not self._real and super().at_boundary

    @property
    def mixes_tasks(self) -> bool:
        return self.num_synthetic != 0 or super().mixes_tasks

    def _augment(self, tasks: Sequence[Any]) -> list[Any]:
        """``tasks`` (the T real tasks, returned unchanged) followed by N synthetic tasks."""
        return list(tasks) + self._synthesize(tasks)

    def _mode(self, tasks: Sequence[Any]) -> str:
        if self.labels is not None:
            return self.labels
        if self.num_classes is not None:
            return "soft"
        return "soft" if any(is_soft(unpack(t, f"task {k}")[1]) for k, t in enumerate(tasks)) else "slot"

    def _synthesize(self, tasks: Sequence[Any]) -> list[Task]:
        """The N synthetic tasks of one iteration's real ``tasks``: the paper's algorithm."""
        n = self._n(len(tasks))
        if n == 0:
            return []
        mode = self._mode(tasks)
        prepared = self._slot_tasks(tasks) if mode == "slot" else self._soft_tasks(tasks)
        if len(prepared) < 2:
            raise ValueError(
                f"TaskMix needs at least two tasks per meta-iteration to mix, got {len(prepared)}; "
                "give num_real >= 2 (or tasks_per_step >= 3)"
            )
        pairs = mixing.sample_pairs(len(prepared), n, generator=self.generator)
        lams = mixing.sample_lambda(self.eta, n, generator=self.generator, dtype=torch.float64)
        synthetic = []
        for (i, j), lam in zip(pairs.tolist(), lams.tolist()):
            a, b = prepared[i], prepared[j]
            y = a.y.clone() if mode == "slot" else mixing.mix(a.y, b.y, lam)
            synthetic.append(Task(x=mixing.mix(a.x, b.x, lam), y=y, num_support=a.num_support, source=(i, j, lam), num_mixed=a.num_mixed))
        return synthetic

    def _soft_tasks(self, tasks: Sequence[Any]) -> list[Task]:
        soft = self._as_tasks(tasks)
        first = soft[0]
        for k, task in enumerate(soft[1:], start=1):
            _check_row_shape(first.x, task.x, k)
            if (task.x.shape, task.y.shape, task.num_support, task.num_mixed) != (
                first.x.shape,
                first.y.shape,
                first.num_support,
                first.num_mixed,
            ):
                raise ValueError(
                    "TaskMix mixes tasks of equal batch shapes; "
                    f"task 0 has x {tuple(first.x.shape)} (support {first.num_support}) but task {k} has "
                    f"x {tuple(task.x.shape)} (support {task.num_support}): sample equal support/query sizes"
                )
        return soft

    def _slot_tasks(self, tasks: Sequence[Any]) -> list[Task]:
        """Tasks with integer labels, checked to share one class layout row by row."""
        out, layouts = [], []
        for k, sample in enumerate(tasks):
            what = f"task {k}"
            x, y = unpack(sample, what)
            check_features(x, what)
            if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"{what}: labels='slot' needs one integer label per row, shape ({x.shape[0]},); got {y.dtype} "
                    f"of shape {tuple(y.shape)}. For soft labels over one shared label space pass labels='soft'"
                )
            layout = mixing.class_layout(y)
            ways = int(layout.max()) + 1
            if self.labels is None and (int(y.min()) < 0 or int(y.max()) >= ways):
                raise ValueError(
                    f"{what}: its {ways} classes are labelled {sorted(set(y.tolist()))[:8]}, not "
                    f"0..{ways - 1}: without RemapLabels the label numbers name dataset classes. Pass "
                    "labels='soft' (and num_classes=) if the tasks share that label space, or labels='slot' to label "
                    "each mixed class with the first task's label for its slot"
                )
            if out:
                _check_row_shape(out[0].x, x, k)
            if out and (x.shape != out[0].x.shape or not torch.equal(layout, layouts[0])):
                raise ValueError(
                    f"TaskMix mixes row r of two tasks, which must be the same class slot, but task 0 has "
                    f"{_describe_layout(out[0].x, layouts[0])} and {what} has {_describe_layout(x, layout)}. Sample every "
                    "task with the same ways and shots (one taskset, or tasksets of one layout), or pass labels='soft' "
                    "if the tasks share one label space"
                )
            layouts.append(layout)
            out.append(sample if isinstance(sample, Task) else Task(x=x, y=y))
        return out


def _check_row_shape(first: torch.Tensor, x: torch.Tensor, k: int) -> None:
    """Refuse task ``k``'s features ``x`` when their rows are not of task 0's shape (features of
    another width): no choice of ways, shots or labels can mix them."""
    if first.shape[1:] != x.shape[1:]:
        what = "features of width" if first.dim() == 2 and x.dim() == 2 else "rows of shape"
        size = (lambda t: t.shape[1]) if what == "features of width" else (lambda t: tuple(t.shape[1:]))
        raise ValueError(
            f"TaskMix mixes the rows of two tasks, but task 0 has {what} {size(first)} and task {k} {size(x)}: "
            "give every task features of one width (one encoder, one input size)"
        )


def _describe_layout(x: torch.Tensor, layout: torch.Tensor) -> str:
    """``"5 classes x 6 rows (30 rows of shape (1, 28, 28))"`` and the like, for error messages."""
    counts = torch.bincount(layout).tolist()
    sizes = f"{len(counts)} classes x {counts[0]} rows" if len(set(counts)) == 1 else f"{len(counts)} classes of {counts} rows"
    order = "" if torch.equal(layout, torch.sort(layout).values) else ", rows not grouped by class"
    return f"{sizes}{order} ({x.shape[0]} rows of shape {tuple(x.shape[1:])})"


class MetaMix(_Augmentation):
    """MetaMix as the TaskMix paper uses it: MixUp of query points within each task.

    For every task of an iteration it pairs each query point with a random query point of the
    same task (a random permutation), draws ``lam ~ Beta(eta, eta)`` per new point and appends
    the mixed points and their soft labels at the end of the task, where they belong to the
    query part (also for learn2learn's even/odd split, which marks support rows only among the
    first ``2 * shots * ways``). The outer loss on the extended query, averaged over its rows,
    is the mean of the plain query loss and the MixUp loss: the additional term per task.
    Yao et al.'s original MetaMix instead mixes support with query points at a randomly chosen
    hidden layer; this version mixes the frozen features. The query points of a learn2learn
    sample are its per-class query rows (:func:`split_per_class`). Its labels are soft, so the
    loss must take probabilities (``F.cross_entropy`` does) and accuracy too
    (:func:`l2l_taskmix.accuracy`).

    Takes the same inputs as :class:`TaskMix`, under the same keyword-only names
    (``tasks_per_step``, which here is T, ``num_real``, ``eta``, ``num_classes``, ``generator``,
    ``seed``), and ``MetaMix(...)(tasks)`` augments a list of tasks you sampled yourself. On tasks
    with integer labels (a learn2learn script's) it warns once, at the first task, that its tasks
    carry soft labels and which loss and accuracy take them. Raw text is refused at the first
    task, before it is served. The paper's combined method, MAML+MetaMix+TaskMix, is
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
        *,
        tasks_per_step: int | None = None,
        num_real: int | None = None,
        eta: float = mixing.DEFAULT_ETA,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **unknown: Any,
    ):
        _refuse_unknown("MetaMix", unknown)
        num_real = check_scalar(num_real, "num_real", int, min_val=1, allow_none=True)
        tasks_per_step = self._check_step(tasksets, tasks_per_step, num_real)
        if tasks_per_step is not None:
            num_real = tasks_per_step  # MetaMix adds points, not tasks: a step's tasks are the real ones
        super().__init__(tasksets, eta=eta, num_real=num_real, num_classes=num_classes, generator=generator, seed=seed)
        self._noticed = False

    def __len__(self) -> int:
        """Tasks per meta-iteration (MetaMix adds points, not tasks)."""
        return self._tasks_in()

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
        soft = self._as_tasks(tasks)
        self._notice(tasks, stacklevel=4)  # _augment, then __call__ or sample_iteration, then the caller
        return [self.augment(task) for task in soft]

    def _next(self, index: int | None) -> list[Task]:
        task = self._take(index)
        (soft,) = self._as_tasks([task])
        self._notice([task], stacklevel=5)  # _next, _serve, then sample() or [i], then the caller
        return [self.augment(soft)]

    def _notice(self, tasks: Sequence[Any], stacklevel: int) -> None:
        """Say once that the tasks now carry soft labels, when they came with integer ones."""
        if self._noticed or all(is_soft(unpack(t, "task")[1]) for t in tasks):
            return
        self._noticed = True
        warnings.warn(
            "MetaMix gives each task soft labels, float rows of shape (n, classes): its MixUp points lie between "
            "two classes. Use a loss that takes probabilities (F.cross_entropy, nn.CrossEntropyLoss) and "
            "l2l_taskmix.accuracy; learn2learn's accuracy, y.view(...) or sorting by label need integer labels",
            stacklevel=stacklevel,
        )

    def _iteration_words(self) -> str:
        return f"{len(self)} tasks"
