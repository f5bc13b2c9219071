"""The six methods of the paper as strategies of one training loop.

A :class:`Method` says three things and nothing else: how the tasks of a training iteration
are sampled (:meth:`Method.sampler`), what is optimized on them (:meth:`Method.objective`: the
MAML outer loss, or multi-task learning with one head per task) and which weights a meta-test
task starts fine-tuning from (:meth:`Method.finetune_model`). The loop itself, the optimizer,
model selection and logging live in :func:`l2l_taskmix.training.train`.

========================  =======================================================  ==========
name                      iteration's tasks                                        objective
========================  =======================================================  ==========
``mtl``                   the T real tasks; one head per task, discarded after     multi-task
``transfer``              none: no meta-training, fine-tune from initialization    --
``maml``                  the T real tasks                                         MAML
``maml+metamix``          ``MetaMix`` of the T real tasks                          MAML
``maml+taskmix``          ``TaskMix``: T real + N = T synthetic tasks              MAML
``maml+metamix+taskmix``  ``MetaMix(TaskMix(...))``                                MAML
========================  =======================================================  ==========

Example::

    >>> from l2l_taskmix.methods import get_method
    >>> m = get_method("maml+taskmix")
    >>> m.name, m.trains, m.taskmix, m.metamix
    ('maml+taskmix', True, True, False)
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import METHOD_NAMES
from .tasksets import MetaMix, Task, TaskMix

__all__ = ["Method", "MTL", "Transfer", "MAMLMethod", "METHODS", "get_method", "RealTasks", "MAMLObjective", "MultiTaskObjective", "new_head"]


class RealTasks:
    """The plain sampler: one task from each taskset per iteration (learn2learn's usual loop),
    or from ``meta_batch`` distinct tasksets drawn at random each iteration.

    It has ``sample_iteration()`` and ``len()``, so ``TaskMix`` and ``MetaMix`` wrap it directly.

    Example::

        >>> import torch
        >>> from l2l_taskmix import BatchTaskset
        >>> ts = [BatchTaskset(torch.randn(20, 3), torch.arange(20) % 2, support=4, seed=k) for k in range(3)]
        >>> len(RealTasks(ts).sample_iteration()), len(RealTasks(ts, meta_batch=2, seed=0).sample_iteration())
        (3, 2)
    """

    def __init__(self, tasksets: Sequence[Any], meta_batch: int | None = None, generator: torch.Generator | None = None, seed: int | None = None):
        if not tasksets:
            raise ValueError("no tasksets given")
        self.tasksets = list(tasksets)
        if meta_batch is not None and (isinstance(meta_batch, bool) or int(meta_batch) < 1):
            raise ValueError(f"meta_batch must be a positive integer, got {meta_batch!r}")
        self.meta_batch = len(self.tasksets) if meta_batch is None else min(int(meta_batch), len(self.tasksets))
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.generator = generator
        self.last_index: list[int] = list(range(self.meta_batch))

    def __len__(self) -> int:
        return self.meta_batch

    def sample_iteration(self) -> list[Task]:
        if self.meta_batch == len(self.tasksets):
            index = list(range(len(self.tasksets)))
        else:
            index = sorted(torch.randperm(len(self.tasksets), generator=self.generator)[: self.meta_batch].tolist())
        self.last_index = index
        return [self.tasksets[i].sample() for i in index]


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


class MAMLObjective:
    """The MAML outer loss over an iteration's tasks, through :mod:`l2l_taskmix.engine`.

    ``engine="fast"`` (the default) calls ``engine.fast_outer_loss`` on the bare model; a model
    the vectorized engine cannot adapt falls back, with a warning, to ``engine="l2l"``, which wraps
    the model in learn2learn's ``MAML`` (``allow_nograd=True``, so frozen parameters are fine) and
    calls ``engine.l2l_outer_loss``.
    """

    def __init__(self, model: nn.Module, inner_lr: float, inner_steps: int, first_order: bool = False, engine: str = "fast"):
        from . import engine as engines

        self.model = model
        self.inner_lr, self.inner_steps, self.first_order = float(inner_lr), int(inner_steps), bool(first_order)
        if engine not in ("l2l", "fast"):
            raise ValueError(f"engine must be 'l2l' or 'fast', got {engine!r}")
        if engine == "fast":
            try:
                engines.check_supported(model)
            except engines.UnsupportedModelError as err:
                warnings.warn(f"the fast MAML engine cannot adapt this model ({err}); using learn2learn's MAML instead")
                engine = "l2l"
        self.engine = engine
        self.maml = None
        if engine == "l2l":
            import learn2learn as l2l

            self.maml = l2l.algorithms.MAML(model, lr=self.inner_lr, first_order=self.first_order, allow_nograd=True)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, tasks: Sequence[Task]) -> torch.Tensor:
        from . import engine

        batch = [(*t.support, *t.query) for t in tasks]
        if self.engine == "l2l":
            return engine.l2l_outer_loss(self.maml, batch, self.inner_steps)
        return engine.fast_outer_loss(self.model, batch, self.inner_lr, self.inner_steps, first_order=self.first_order)


class MultiTaskObjective:
    """Multi-task learning: the shared neck and one linear head per meta-training task.

    The loss is the mean over tasks of the cross-entropy of task ``t``'s head on all of task
    ``t``'s rows (support and query batches together). The heads are discarded after training.
    """

    def __init__(self, model: nn.Module, num_classes: Sequence[int], generator: torch.Generator | None = None):
        if not hasattr(model, "neck") or not hasattr(model, "head"):
            raise TypeError("multi-task learning needs a model with .neck and .head (an IntentClassifier)")
        self.model = model
        width = model.head.in_features
        self.num_classes = [int(c) for c in num_classes]
        self.heads = nn.ModuleList([new_head(width, c, generator) for c in self.num_classes])

    def parameters(self):
        return [p for p in self.model.neck.parameters() if p.requires_grad] + list(self.heads.parameters())

    def loss(self, tasks: Sequence[Task]) -> torch.Tensor:
        if len(tasks) != len(self.heads):
            raise ValueError(f"multi-task learning got {len(tasks)} tasks for {len(self.heads)} heads")
        losses = []
        for task, head, c in zip(tasks, self.heads, self.num_classes):
            logits = head(self.model.neck(task.X))
            targets = task.Y[:, :c]
            losses.append(_soft_cross_entropy(logits, targets))
        return torch.stack(losses).mean()


def new_head(in_features: int, num_classes: int, generator: torch.Generator | None = None) -> nn.Linear:
    """A fresh ``nn.Linear`` head, initialized like PyTorch's default but from ``generator``."""
    head = nn.Linear(int(in_features), int(num_classes))
    from .training import reset_parameters

    reset_parameters(head, generator)
    return head


@dataclass(frozen=True)
class Method:
    """A method of the benchmark: a strategy for :func:`l2l_taskmix.training.train`.

    Attributes:
        name: as on the command line and in outputs.
        trains: whether there is any (meta-)training at all.
        keeps_head: whether meta-test fine-tuning starts from the trained head (MAML variants)
            or from a new head (MTL, transfer).
        taskmix, metamix: the task augmentations of a MAML variant.
    """

    name: str
    trains: bool = True
    keeps_head: bool = True
    taskmix: bool = False
    metamix: bool = False

    def sampler(self, tasksets: Sequence[Any], eta: float, num_classes: int, generator: torch.Generator, meta_batch: int | None = None):
        """The iteration sampler: ``sample_iteration() -> list[Task]``.

        The real tasks come from :class:`RealTasks` (``meta_batch`` of the tasksets per
        iteration, all by default); TaskMix adds N = T synthetic tasks; MetaMix appends mixed
        query points to every task (after TaskMix when both are on).
        """
        sampler: Any = RealTasks(tasksets, meta_batch=meta_batch, generator=generator)
        if self.taskmix:
            sampler = TaskMix(sampler, eta=eta, num_classes=num_classes, generator=generator)
        if self.metamix:
            sampler = MetaMix(sampler, eta=eta, num_classes=num_classes, generator=generator)
        return sampler

    def objective(self, model: nn.Module, task_classes: Sequence[int], config: Any, generator: torch.Generator):
        """What the loop optimizes: an object with ``parameters()`` and ``loss(tasks)``."""
        return MAMLObjective(model, config.inner_lr, config.inner_steps, config.first_order, config.engine)

    def finetune_model(self, model: nn.Module, num_classes: int, generator: torch.Generator | None = None) -> nn.Module:
        """A copy of ``model`` ready to fine-tune on a task of ``num_classes`` classes.

        MAML variants keep the meta-learned head (the task uses its first ``num_classes``
        outputs); MTL and transfer get a new head with ``num_classes`` outputs.
        """
        tuned = copy.deepcopy(model)
        if not self.keeps_head:
            tuned.head = new_head(tuned.head.in_features, num_classes, generator)
        return tuned


@dataclass(frozen=True)
class _MTL(Method):
    def sampler(self, tasksets, eta, num_classes, generator, meta_batch=None):
        return RealTasks(tasksets)  # every task every step: each has its own head

    def objective(self, model, task_classes, config, generator):
        return MultiTaskObjective(model, task_classes, generator)


MTL = _MTL("mtl", trains=True, keeps_head=False)
Transfer = Method("transfer", trains=False, keeps_head=False)
MAMLMethod = Method("maml")

#: The six methods by name, in the paper's order.
METHODS: dict[str, Method] = {
    "mtl": MTL,
    "transfer": Transfer,
    "maml": MAMLMethod,
    "maml+metamix": Method("maml+metamix", metamix=True),
    "maml+taskmix": Method("maml+taskmix", taskmix=True),
    "maml+metamix+taskmix": Method("maml+metamix+taskmix", taskmix=True, metamix=True),
}
assert tuple(METHODS) == METHOD_NAMES


def get_method(name: str | Method) -> Method:
    """The :class:`Method` called ``name`` (``ValueError`` for an unknown name)."""
    if isinstance(name, Method):
        return name
    try:
        return METHODS[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
