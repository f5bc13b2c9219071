"""The one training loop shared by every method, and what it needs around it.

:func:`train` runs any :class:`~l2l_taskmix.methods.Method`: the method decides how an
iteration's tasks are sampled and what is optimized; the loop owns the outer Adam optimizer,
the progress bar, NaN checks and model selection (the checkpoint with the best score on
held-out meta-validation tasks is kept; MAML overfits the few meta-training tasks).

Example::

    >>> import torch
    >>> from l2l_taskmix.config import BenchmarkConfig
    >>> from l2l_taskmix.training import make_model, train
    >>> g = torch.Generator().manual_seed(0)
    >>> tasks = [(torch.randn(40, 8, generator=g), torch.arange(40) % 3) for _ in range(3)]
    >>> model = make_model(8, 3, hidden=(16,), generator=g)
    >>> cfg = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), val_tasks=0)
    >>> result = train(model, "maml+taskmix", tasks, cfg, seed=0, progress=False)
    >>> len(result.history)
    5
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .models import IntentClassifier
from .tasksets import BatchTaskset

__all__ = ["train", "TrainResult", "make_model", "reset_parameters", "Standardizer", "task_arrays"]


def reset_parameters(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialize every ``nn.Linear`` (PyTorch's default scheme) and ``nn.PReLU`` (0.25) of
    ``module`` in place, drawing from ``generator`` instead of the global RNG."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            with torch.no_grad():
                nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
                if sub.bias is not None:
                    bound = 1.0 / math.sqrt(sub.in_features) if sub.in_features > 0 else 0.0
                    nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
        elif isinstance(sub, nn.PReLU):
            with torch.no_grad():
                sub.weight.fill_(0.25)
    return module


def make_model(in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256), generator: torch.Generator | None = None) -> IntentClassifier:
    """An :class:`~l2l_taskmix.models.IntentClassifier` initialized from ``generator`` (the global
    RNG is not drawn from: the layers are built on the meta device, then initialized)."""
    with torch.device("meta"):
        model = IntentClassifier(in_features, num_classes, hidden=hidden)
    model = model.to_empty(device="cpu")
    return reset_parameters(model, generator)


def task_arrays(task: Any) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(x, y, name)`` of a ``FeatureTask``-like object (``.x``, ``.y``, ``.name``) or an
    ``(x, y)`` pair."""
    if hasattr(task, "x") and hasattr(task, "y"):
        return torch.as_tensor(task.x), torch.as_tensor(task.y), str(getattr(task, "name", "task"))
    x, y = task
    return torch.as_tensor(x), torch.as_tensor(y), "task"


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


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model, its weights those of the selected checkpoint.
        best_iteration: the iteration whose checkpoint was kept (the last one without validation).
        history: one dict per iteration: ``iteration``, ``loss`` and, where checked, ``val``.
        seconds: wall time of the loop.
    """

    model: nn.Module
    best_iteration: int = 0
    best_score: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(
    model: nn.Module,
    method: Any,
    tasks: Sequence[Any],
    config: Any,
    *,
    seed: int = 0,
    num_classes: int | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """Train ``model`` on the meta-training ``tasks`` with ``method``; the one loop for all methods.

    Args:
        model: an :class:`~l2l_taskmix.models.IntentClassifier` (or any module; multi-task
            learning needs ``.neck`` and ``.head``). Trained in place.
        method: a :class:`~l2l_taskmix.methods.Method` or its name.
        tasks: the meta-training tasks, ``FeatureTask``-like (``.x``, ``.y``) or ``(x, y)`` pairs,
            ``y`` integer labels ``0..c-1``.
        config: a :class:`~l2l_taskmix.config.BenchmarkConfig` (iterations, batch_size, inner_lr,
            inner_steps, outer_lr, first_order, engine, eta, eval_every are used).
        seed: seeds every draw of the task sampling and the multi-task heads.
        num_classes: C, the head's outputs (default: the model's ``num_classes``).
        validate: ``model -> score`` (higher is better) on held-out meta-validation data; checked
            every ``eval_every`` iterations and at the end; the best of these checkpoints is kept
            (the untrained initialization is not a candidate: a method is judged by what its
            training gives). ``None``: keep the last weights.
        progress: show a tqdm bar over iterations.
    """
    from .methods import get_method

    method = get_method(method)
    start = time.perf_counter()
    result = TrainResult(model=model)
    if not method.trains:
        result.seconds = time.perf_counter() - start
        return result
    if not tasks:
        raise ValueError("train needs at least one meta-training task")
    if num_classes is None:
        num_classes = int(getattr(model, "num_classes", 0)) or None
    arrays = [task_arrays(t) for t in tasks]
    classes = [len(t.classes) if getattr(t, "classes", None) is not None else int(y.max()) + 1 for t, (_, y, _) in zip(tasks, arrays)]
    if num_classes is None:
        num_classes = max(classes)
    if max(classes) > num_classes:
        raise ValueError(f"a meta-training task has {max(classes)} classes but the head has only {num_classes} outputs")
    if len(arrays) < 2 and method.taskmix:
        raise ValueError(f"{method.name} needs at least two meta-training tasks to mix, got {len(arrays)}")

    generator = torch.Generator().manual_seed(int(seed))
    tasksets = [
        BatchTaskset(x, y, support=config.batch_size, query=config.batch_size, num_classes=num_classes, generator=generator, name=name)
        for x, y, name in arrays
    ]
    sampler = method.sampler(tasksets, config.eta, num_classes, generator, meta_batch=getattr(config, "meta_batch", None))
    objective = method.objective(model, classes, config, generator)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.outer_lr)

    best_state = None

    from tqdm.auto import tqdm

    bar = tqdm(range(1, config.iterations + 1), desc=desc or method.name, leave=False, disable=not progress, dynamic_ncols=True)
    for iteration in bar:
        batch = sampler.sample_iteration()
        loss = objective.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{method.name}: the training loss became {loss.item()} at iteration {iteration}; lower the learning rates")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        record = {"iteration": iteration, "loss": float(loss.item())}
        if validate is not None and (iteration % config.eval_every == 0 or iteration == config.iterations):
            score = float(validate(model))
            record["val"] = score
            if result.best_score is None or score > result.best_score:
                result.best_score, result.best_iteration = score, iteration
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{score:.3f}", refresh=False)
        result.history.append(record)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_iteration = config.iterations
    result.seconds = time.perf_counter() - start
    return result
