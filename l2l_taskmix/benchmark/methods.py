"""The six methods of the paper as strategies of one training loop.

A :class:`Method` says three things and nothing else: how the tasks of a training iteration
are sampled (:meth:`Method.sampler`), what is optimized on them (:meth:`Method.objective`: the
MAML outer loss, or multi-task learning with one head per task) and which weights a meta-test
task starts fine-tuning from (:meth:`Method.finetune_model`). The loop itself, the optimizer,
model selection and logging live in :func:`l2l_taskmix.benchmark.training.train`. Each
strategy receives the values it uses, never the whole configuration.

========================  =======================================================  ==========
name                      iteration's tasks                                        objective
========================  =======================================================  ==========
``mtl``                   the T real tasks; one head per task, discarded after     multi-task
``transfer``              none: no meta-training, fine-tune from initialization    --
``maml``                  the T real tasks                                         MAML
``maml+metamix``          ``MetaMix`` of the T real tasks                          MAML
``maml+taskmix``          ``TaskMix``: T real + N synthetic tasks (N = T default)  MAML
``maml+metamix+taskmix``  ``MetaMix(TaskMix(...))``                                MAML
========================  =======================================================  ==========

Example::

    >>> from l2l_taskmix.benchmark.methods import METHOD_NAMES, get_method
    >>> m = get_method("maml+taskmix")
    >>> m.name, m.trains, m.taskmix, m.metamix
    ('maml+taskmix', True, True, False)
    >>> METHOD_NAMES[:3]
    ('mtl', 'transfer', 'maml')
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .. import engine as engines
from ..losses import soft_cross_entropy
from ..models import reset_parameters
from ..samplers import RealTasks
from ..task import Task
from ..tasksets import MetaMix, TaskMix
from ..validation import check_choice
from .settings import MAMLSettings, MixSettings, check_settings

__all__ = [
    "Method",
    "METHODS",
    "METHOD_NAMES",
    "ENGINES",
    "SearchParam",
    "get_method",
    "MAMLObjective",
    "MultiTaskObjective",
    "new_head",
]

#: MAML implementations: the vectorized engine, or learn2learn's ``MAML`` clone/adapt loop.
ENGINES = ("fast", "l2l")


class MAMLObjective:
    """The MAML outer loss over an iteration's tasks, through :mod:`l2l_taskmix.engine`.

    ``engine="fast"`` (the default) calls ``engine.fast_outer_loss`` on the bare model; a model
    the vectorized engine cannot adapt falls back, with a warning, to ``engine="l2l"``, which wraps
    the model in learn2learn's ``MAML`` (``allow_nograd=True``, so frozen parameters are fine) and
    calls ``engine.l2l_outer_loss``.
    """

    def __init__(self, model: nn.Module, inner_lr: float, inner_steps: int, first_order: bool, engine: str):
        self.model = model
        self.inner_lr, self.inner_steps, self.first_order = float(inner_lr), int(inner_steps), bool(first_order)
        check_choice(engine, "engine", ENGINES)
        if engine == "fast":
            try:
                engines.check_supported(model)
            except engines.UnsupportedModelError as err:
                warnings.warn(f"the fast MAML engine cannot adapt this model ({err}); using learn2learn's MAML instead", stacklevel=2)
                engine = "l2l"
        self.engine = engine
        self.maml = None
        if engine == "l2l":
            l2l = engines.import_learn2learn()
            self.maml = l2l.algorithms.MAML(model, lr=self.inner_lr, first_order=self.first_order, allow_nograd=True)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, tasks: Sequence[Task]) -> torch.Tensor:
        batch = [(*t.support, *t.query) for t in tasks]
        if self.engine == "l2l":
            return engines.l2l_outer_loss(self.maml, batch, self.inner_steps)
        return engines.fast_outer_loss(self.model, batch, self.inner_lr, self.inner_steps, first_order=self.first_order)


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
        device = model.head.weight.device  # drawn on the CPU from generator, then moved: the same weights on any device
        self.heads = nn.ModuleList([new_head(width, c, generator) for c in self.num_classes]).to(device)

    def parameters(self):
        return [p for p in self.model.neck.parameters() if p.requires_grad] + list(self.heads.parameters())

    def loss(self, tasks: Sequence[Task]) -> torch.Tensor:
        if len(tasks) != len(self.heads):
            raise ValueError(f"multi-task learning got {len(tasks)} tasks for {len(self.heads)} heads")
        losses = []
        for task, head, c in zip(tasks, self.heads, self.num_classes):
            logits = head(self.model.neck(task.x))
            targets = task.y[:, :c]
            losses.append(soft_cross_entropy(logits, targets))
        return torch.stack(losses).mean()


def new_head(in_features: int, num_classes: int, generator: torch.Generator | None = None) -> nn.Linear:
    """A fresh ``nn.Linear`` head, initialized like PyTorch's default but from ``generator``."""
    return reset_parameters(nn.Linear(int(in_features), int(num_classes)), generator)


@dataclass(frozen=True)
class SearchParam:
    """One setting of a method's search space (``l2l-taskmix tune``): a number from ``low`` to
    ``high`` (both included), drawn on a log scale with ``log``, a whole number with
    ``integer`` (``step``: only every ``step``-th whole number from ``low``). ``name`` is a
    per-method setting of the benchmark's config (``config.METHOD_FIELDS``). Plain data: the
    tuner turns it into Optuna's distributions.

    Example::

        >>> SearchParam("inner_steps", 1, 5, integer=True).describe()
        'inner_steps: whole number in [1, 5]'
    """

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False
    step: int | None = None

    def describe(self) -> str:
        """The range in words (the documentation and ``tune --help`` list it)."""
        kind = "whole number" if self.integer else "number"
        scale = ", log scale" if self.log else ""
        step = f", step {self.step}" if self.step else ""
        return f"{self.name}: {kind} in [{self.low:g}, {self.high:g}]{scale}{step}"


# The search spaces' building blocks (why each range: docs/tune.md). Fine-tuning: 10 steps already
# fit a 5-shot support set at a high rate, 300 at 1e-4 is where it stops moving; rates from 1e-4
# (barely moves in 10 steps) to 3e-2 (Adam on a 256-wide head starts to diverge beyond).
_FINETUNE = (
    SearchParam("finetune_steps", 10, 300, log=True, integer=True),
    SearchParam("finetune_lr", 1e-4, 3e-2, log=True),
)
# Meta-training: Adam's usual 1e-4..1e-2; 100 iterations (MAML's meta-loss still falling on the
# sample) to 800 (twice the default; validation stops improving well before 400), in steps of 50.
_TRAINING = (
    SearchParam("outer_lr", 1e-4, 1e-2, log=True),
    SearchParam("iterations", 100, 800, integer=True, step=50),
)
# MAML's inner loop: SGD rates from 0.01 (too small to adapt in 5 steps) to 1 (the edge of
# divergence on standardized features), 1 to 5 steps (the paper's range).
_MAML = (
    SearchParam("inner_lr", 0.01, 1.0, log=True),
    SearchParam("inner_steps", 1, 5, integer=True),
)
# Beta(eta, eta): 0.2 (lambdas near 0 or 1: almost no mixing) to 5 (lambdas near 1/2).
_ETA = (SearchParam("eta", 0.2, 5.0, log=True),)
# TaskMix's N: 1 to 16, twice the default T = 8.
_SYNTHETIC = (SearchParam("num_synthetic", 1, 16, integer=True),)


@dataclass(frozen=True)
class Method:
    """A method of the benchmark: a strategy for :func:`l2l_taskmix.benchmark.training.train`.

    Attributes:
        name: as on the command line and in outputs.
        trains: whether there is any (meta-)training at all.
        keeps_head: whether meta-test fine-tuning starts from the trained head (MAML variants)
            or from a new head (MTL, transfer).
        taskmix, metamix: the task augmentations of a MAML variant.
        space: the settings ``l2l-taskmix tune`` searches for it (:class:`SearchParam` each).
    """

    name: str
    trains: bool = True
    keeps_head: bool = True
    taskmix: bool = False
    metamix: bool = False
    space: tuple[SearchParam, ...] = ()

    def sampler(
        self,
        tasksets: Sequence[Any],
        *,
        mix: MixSettings,
        meta_batch_size: int | None,
        num_classes: int,
        generator: torch.Generator,
    ):
        """The iteration sampler: ``sample_iteration() -> list[Task]``.

        The real tasks come from :class:`~l2l_taskmix.samplers.RealTasks` (``meta_batch_size``
        of the tasksets per iteration; ``None``: all); TaskMix adds ``mix.num_synthetic`` synthetic
        tasks (``None``: N = T; 0: none, and no random draw, so the run is MAML's exactly);
        MetaMix appends mixed query points to every task (after TaskMix when both are on); both
        draw lambda from Beta(``mix.eta``, ``mix.eta``).
        """
        mix = check_settings(mix, "mix", MixSettings)
        sampler: Any = RealTasks(tasksets, meta_batch_size=meta_batch_size, generator=generator)
        if self.taskmix:
            sampler = TaskMix(sampler, eta=mix.eta, num_synthetic=mix.num_synthetic, num_classes=num_classes, generator=generator)
        if self.metamix:
            sampler = MetaMix(sampler, eta=mix.eta, num_classes=num_classes, generator=generator)
        return sampler

    def objective(self, model: nn.Module, task_classes: Sequence[int], *, maml: MAMLSettings, generator: torch.Generator):
        """What the loop optimizes: an object with ``parameters()`` and ``loss(tasks)``.

        ``task_classes``: the class count of each meta-training task (multi-task heads);
        ``maml``: MAML's settings (:class:`~l2l_taskmix.benchmark.settings.MAMLSettings`).
        """
        maml = check_settings(maml, "maml", MAMLSettings)
        return MAMLObjective(model, maml.inner_lr, maml.inner_steps, maml.first_order, maml.engine)

    def finetune_model(self, model: nn.Module, num_classes: int, generator: torch.Generator | None = None) -> nn.Module:
        """A copy of ``model`` ready to fine-tune on a task of ``num_classes`` classes.

        MAML variants keep the meta-learned head (the task uses its first ``num_classes``
        outputs); MTL and transfer get a new head with ``num_classes`` outputs.
        """
        tuned = copy.deepcopy(model)
        if not self.keeps_head:
            tuned.head = new_head(tuned.head.in_features, num_classes, generator).to(tuned.head.weight.device)
        return tuned


@dataclass(frozen=True)
class MultiTaskMethod(Method):
    """Multi-task learning: every task every step, each with its own head (discarded after)."""

    def sampler(self, tasksets, *, mix, meta_batch_size, num_classes, generator):
        check_settings(mix, "mix", MixSettings)
        return RealTasks(tasksets, generator=generator)

    def objective(self, model, task_classes, *, maml, generator):
        check_settings(maml, "maml", MAMLSettings)
        return MultiTaskObjective(model, task_classes, generator)


#: The six methods by name, in the paper's order.
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        MultiTaskMethod("mtl", keeps_head=False, space=_TRAINING + _FINETUNE),
        Method("transfer", trains=False, keeps_head=False, space=_FINETUNE),
        Method("maml", space=_MAML + _TRAINING + _FINETUNE),
        Method("maml+metamix", metamix=True, space=_MAML + _TRAINING + _ETA + _FINETUNE),
        Method("maml+taskmix", taskmix=True, space=_MAML + _TRAINING + _ETA + _SYNTHETIC + _FINETUNE),
        Method("maml+metamix+taskmix", taskmix=True, metamix=True, space=_MAML + _TRAINING + _ETA + _SYNTHETIC + _FINETUNE),
    )
}
#: Their names, in the paper's order.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def get_method(name: str | Method) -> Method:
    """The :class:`Method` called ``name`` (``ValueError`` for an unknown name)."""
    if isinstance(name, Method):
        return name
    try:
        return METHODS[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
