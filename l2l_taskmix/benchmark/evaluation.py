"""Evaluation on meta-test tasks: copy the weights, fine-tune on the support split, macro-F1.

:func:`evaluate` is the paper's protocol for one trained model: for each task, a copy of the
model (with a new head for MTL and transfer) is fine-tuned on the task's support split and
scored by macro-F1 on its test split. :func:`make_splits` draws the support/test splits.

Example::

    >>> import torch
    >>> from l2l_taskmix import make_model
    >>> from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> task = FeatureTask("t", torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> splits = make_splits([task], shots=5, seed=0)
    >>> scores = evaluate(make_model(8, 3, (16,), g), "maml", [task], splits, finetune_steps=5, finetune_lr=1e-2)
    >>> list(scores), 0.0 <= scores["t"] <= 1.0
    (['t'], True)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import support_test_split
from ..features import FeatureTask
from ..validation import check_scalar
from .methods import Method, get_method

__all__ = ["finetune", "predict", "macro_f1", "make_splits", "evaluate"]


def finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, *, finetune_steps: int, finetune_lr: float) -> nn.Module:
    """Fine-tune ``model`` in place: ``finetune_steps`` full-batch Adam steps (learning rate
    ``finetune_lr``) of cross-entropy on the first ``num_classes`` outputs."""
    params = [p for p in model.parameters() if p.requires_grad]
    if finetune_steps <= 0 or not params:
        return model
    optimizer = torch.optim.Adam(params, lr=finetune_lr)
    for _ in range(int(finetune_steps)):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x)[:, :num_classes], y)
        loss.backward()
        optimizer.step()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"fine-tuning loss became {loss.item()}; lower finetune_lr")
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, num_classes: int) -> np.ndarray:
    """Predicted class indices among the first ``num_classes`` outputs."""
    return model(x)[:, :num_classes].argmax(1).cpu().numpy()


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """scikit-learn's macro-averaged F1 (classes absent from both count as nothing)."""
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(y_true), np.asarray(y_pred), average="macro", zero_division=0))


def make_splits(
    tasks: Sequence[FeatureTask], shots: int | None = None, fraction: float | None = None, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(support_idx, test_idx)`` per task: ``shots`` examples per class as support (few-shot)
    or ``fraction`` of each class, the rest as test; seeded by ``seed`` and the task's position.
    Rows of the same text (a task's ``groups``) stay on one side."""
    seed = check_scalar(seed, "seed", int)
    splits = []
    for k, task in enumerate(tasks):
        try:
            groups = None if task.groups is None else task.groups.cpu().numpy()
            support, test = support_test_split(task.y.cpu().numpy(), shots=shots, fraction=fraction, seed=int(seed) * 1000 + k, groups=groups)
        except ValueError as err:
            raise ValueError(f"task {task.name!r}: {err}") from None
        splits.append((np.asarray(support, dtype=np.int64), np.asarray(test, dtype=np.int64)))
    return splits


def evaluate(
    model: nn.Module,
    method: Method | str,
    tasks: Sequence[FeatureTask],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    finetune_steps: int,
    finetune_lr: float,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Macro-F1 per task after fine-tuning a copy of ``model`` on the task's support split.

    New heads (MTL, transfer) are drawn from a generator seeded by ``seed``, so calling this
    twice gives the same scores; ``model`` itself is never changed.

    Returns:
        ``{task name: macro-F1 on its test split}`` (the Average Macro F1 is the mean).
    """
    method = get_method(method)
    if len(tasks) != len(splits):
        raise ValueError(f"{len(tasks)} tasks but {len(splits)} splits")
    generator = torch.Generator().manual_seed(check_scalar(seed, "seed", int))
    scores: dict[str, float] = {}
    for k, (task, (support, test)) in enumerate(zip(tasks, splits)):
        x, y = task.x, task.y
        name = names[k] if names is not None else task.name
        if name in scores:
            name = f"{name}#{k}"
        if len(support) == 0 or len(test) == 0:
            raise ValueError(f"task {name!r}: empty support or test split")
        c = task.num_classes
        support_t, test_t = torch.as_tensor(support), torch.as_tensor(test)
        tuned = method.finetune_model(model, c, generator)
        finetune(tuned, x[support_t], y[support_t], c, finetune_steps=finetune_steps, finetune_lr=finetune_lr)
        scores[name] = macro_f1(y[test_t].cpu().numpy(), predict(tuned, x[test_t], c))
    return scores
