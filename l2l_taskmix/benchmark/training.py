"""The one training loop shared by every method.

:func:`train` runs any :class:`~l2l_taskmix.benchmark.methods.Method`: the method decides how
an iteration's tasks are sampled and what is optimized; the loop owns the outer Adam optimizer,
the progress bar, NaN checks and model selection (the checkpoint with the best score on
held-out meta-validation tasks is kept; MAML overfits the few meta-training tasks). It takes
its settings as a few typed groups (:mod:`~l2l_taskmix.benchmark.settings`), which a
:class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` builds: ``config.loop``, ``config.maml``
and ``config.mix``.

Example::

    >>> import torch
    >>> from l2l_taskmix import make_model
    >>> from l2l_taskmix.benchmark.config import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.training import train
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> tasks = [FeatureTask(f"t{k}", torch.randn(40, 8, generator=g), torch.arange(40) % 3, ["a", "b", "c"])
    ...          for k in range(3)]
    >>> cfg = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), val_tasks=0)
    >>> result = train(make_model(8, 3, hidden=(16,), generator=g), "maml+taskmix", tasks, seed=0,
    ...                loop=cfg.loop, maml=cfg.maml, mix=cfg.mix, progress=False)
    >>> len(result.history)
    5
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from ..features import FeatureTask
from ..samplers import BatchTaskset
from ..validation import check_scalar
from .methods import Method, get_method
from .settings import LoopSettings, MAMLSettings, MixSettings, check_settings

__all__ = ["train", "TrainResult"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model, its weights those of the selected checkpoint.
        best_iteration: the iteration whose checkpoint was kept (the last one without scoring).
        best_score: its validation score (``None`` without scoring).
        history: one dict per iteration: ``iteration``, ``loss`` and, where scored, ``val``.
        seconds: wall time of the loop.
    """

    model: nn.Module
    best_iteration: int = 0
    best_score: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(
    model: nn.Module,
    method: Method | str,
    tasks: Sequence[FeatureTask],
    *,
    loop: LoopSettings,
    maml: MAMLSettings,
    mix: MixSettings,
    seed: int,
    num_classes: int | None = None,
    score: Callable[[nn.Module], float] | None = None,
    checkpoints: Sequence[int] = (),
    on_checkpoint: Callable[[int, nn.Module], None] | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """Train ``model`` on the meta-training ``tasks`` with ``method``; the one loop for all methods.

    Args:
        model: an :class:`~l2l_taskmix.models.IntentClassifier` (or any module; multi-task
            learning needs ``.neck`` and ``.head``). Trained in place.
        method: a :class:`~l2l_taskmix.benchmark.methods.Method` or its name.
        tasks: the meta-training tasks.
        loop: the loop's settings (:class:`~l2l_taskmix.benchmark.settings.LoopSettings`:
            iterations, eval_every, batch_size, meta_batch_size, outer_lr).
        maml: MAML's, for the method's objective (:class:`~l2l_taskmix.benchmark.settings.MAMLSettings`).
        mix: TaskMix's and MetaMix's, for the method's sampler (:class:`~l2l_taskmix.benchmark.settings.MixSettings`).
        seed: seeds every draw of the task sampling and the multi-task heads.
        num_classes: C, the head's outputs (default: the model's ``num_classes``).
        score: ``model -> score`` (higher is better) on held-out meta-validation data; called
            every ``loop.eval_every`` iterations and at the end; the best of these checkpoints is kept
            (the untrained initialization is not a candidate: a method is judged by what its
            training gives). ``None``: keep the last weights.
        checkpoints, on_checkpoint: ``on_checkpoint(iteration, model)`` is called after each
            iteration in ``checkpoints``, with the weights of that moment; it must not change
            ``model`` (evaluating a copy draws nothing from the loop's generator, so training
            continues exactly as without it: one long run gives every shorter horizon).
        progress: show a tqdm bar over iterations; ``desc`` is its label.
    """
    method = get_method(method)
    loop = check_settings(loop, "loop", LoopSettings)
    maml = check_settings(maml, "maml", MAMLSettings)
    mix = check_settings(mix, "mix", MixSettings)
    seed = check_scalar(seed, "seed", int)
    iterations, eval_every, batch_size = loop.iterations, loop.eval_every, loop.batch_size
    start = time.perf_counter()
    result = TrainResult(model=model)
    if not method.trains:
        result.seconds = time.perf_counter() - start
        return result
    if not tasks:
        raise ValueError("train needs at least one meta-training task")
    classes = [task.num_classes for task in tasks]
    if num_classes is None:
        num_classes = int(getattr(model, "num_classes", 0)) or max(classes)
    if max(classes) > num_classes:
        raise ValueError(f"a meta-training task has {max(classes)} classes but the head has only {num_classes} outputs")
    if len(tasks) < 2 and method.taskmix:
        raise ValueError(f"{method.name} needs at least two meta-training tasks to mix, got {len(tasks)}")

    generator = torch.Generator().manual_seed(int(seed))
    tasksets = [
        BatchTaskset(t.x, t.y, num_support=batch_size, num_query=batch_size, num_classes=num_classes, generator=generator, name=t.name)
        for t in tasks
    ]
    sampler = method.sampler(tasksets, mix=mix, meta_batch_size=loop.meta_batch_size, num_classes=num_classes, generator=generator)
    objective = method.objective(model, classes, maml=maml, generator=generator)
    optimizer = torch.optim.Adam(objective.parameters(), lr=loop.outer_lr)

    best_state = None
    marks = {int(i) for i in checkpoints}

    from tqdm.auto import tqdm

    bar = tqdm(range(1, iterations + 1), desc=desc or method.name, leave=False, disable=not progress, dynamic_ncols=True)
    for iteration in bar:
        batch = sampler.sample_iteration()
        loss = objective.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{method.name}: the training loss became {loss.item()} at iteration {iteration}; lower the learning rates"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        record = {"iteration": iteration, "loss": float(loss.item())}
        if score is not None and (iteration % eval_every == 0 or iteration == iterations):
            value = float(score(model))
            record["val"] = value
            if result.best_score is None or value > result.best_score:
                result.best_score, result.best_iteration = value, iteration
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{value:.3f}", refresh=False)
        result.history.append(record)
        if on_checkpoint is not None and iteration in marks:
            on_checkpoint(iteration, model)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_iteration = iterations
    result.seconds = time.perf_counter() - start
    return result
