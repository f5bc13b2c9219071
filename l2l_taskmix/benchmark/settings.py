"""The settings a trial hands down, as a few frozen types of related values.

A :class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` holds every setting once (its defaults,
help texts and checks); the loop, the methods, evaluation and the validation checks receive
only the groups they use, built by the config: :class:`LoopSettings` (``config.loop``),
:class:`MAMLSettings` (``config.maml``), :class:`MixSettings` (``config.mix``),
:class:`FinetuneSettings` (``config.finetune``) and :class:`ValidationSettings`
(``config.validation``). The types have no defaults of their own: their fields are the config's
fields of the same names, so a value is defined and checked in one place.

Example::

    >>> from l2l_taskmix.benchmark.config import BenchmarkConfig
    >>> BenchmarkConfig().finetune
    FinetuneSettings(finetune_steps=100, finetune_lr=0.001)
    >>> BenchmarkConfig(inner_steps=1).maml.inner_steps
    1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["LoopSettings", "MAMLSettings", "MixSettings", "FinetuneSettings", "ValidationSettings", "check_settings"]


@dataclass(frozen=True)
class LoopSettings:
    """The training loop's: ``iterations``, ``eval_every`` (validation checks and the curve's
    window), ``batch_size`` (support and query rows per task), ``meta_batch_size`` (T, real
    tasks per iteration; ``None``: all) and ``outer_lr`` (the outer Adam's learning rate)."""

    iterations: int
    eval_every: int
    batch_size: int
    meta_batch_size: int | None
    outer_lr: float


@dataclass(frozen=True)
class MAMLSettings:
    """MAML's objective: ``inner_lr``, ``inner_steps``, ``first_order`` and ``engine``
    (``"fast"`` or ``"l2l"``)."""

    inner_lr: float
    inner_steps: int
    first_order: bool
    engine: str


@dataclass(frozen=True)
class MixSettings:
    """The task augmentations' (TaskMix, MetaMix): ``eta`` (lambda ~ Beta(eta, eta)) and
    ``num_synthetic`` (N, TaskMix's synthetic tasks per iteration; ``None``: T; 0: none)."""

    eta: float
    num_synthetic: int | None


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tuning a copy of the model on a task's support split: ``finetune_steps``
    full-batch Adam steps at ``finetune_lr``."""

    finetune_steps: int
    finetune_lr: float


@dataclass(frozen=True)
class ValidationSettings:
    """How the meta-validation tasks are scored: the regime of their support/test draws
    (``shots`` per class, or ``fraction`` of each class) and ``val_repeats`` draws per task."""

    shots: int | None
    fraction: float | None
    val_repeats: int


_T = TypeVar("_T")


def check_settings(value: Any, name: str, kind: type[_T]) -> _T:
    """``value`` if it is a ``kind``, else a ``TypeError`` naming the parameter ``name`` and
    where such an object comes from.

    Example::

        >>> check_settings({"finetune_steps": 5}, "finetune", FinetuneSettings)
        Traceback (most recent call last):
        ...
        TypeError: finetune must be a FinetuneSettings (e.g. BenchmarkConfig().finetune), not dict
    """
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} (e.g. BenchmarkConfig().{name}), not {type(value).__name__}")
    return value
