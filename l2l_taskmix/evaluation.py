"""Evaluation on meta-test tasks: copy the weights, fine-tune on the support split, macro-F1.

:func:`evaluate` is the paper's protocol for one trained model; :func:`run_method` is one
(method, seed) run of the benchmark: split off the meta-validation tasks, standardize the
features with meta-training statistics, train with :func:`l2l_taskmix.training.train` (model
selection on the meta-validation tasks) and evaluate on the meta-test tasks.

Example::

    >>> import torch
    >>> from l2l_taskmix.config import BenchmarkConfig
    >>> from l2l_taskmix.evaluation import run_method
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(k):
    ...     return (torch.randn(60, 8, generator=g), torch.arange(60) % 3)
    >>> cfg = BenchmarkConfig(iterations=4, eval_every=2, batch_size=4, hidden=(16,),
    ...                       val_tasks=1, finetune_steps=5)
    >>> out = run_method("maml", 0, [task(k) for k in range(3)], [task(9)], cfg, progress=False)
    >>> 0.0 <= out["macro_f1"] <= 1.0
    True
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .methods import Method, get_method
from .training import Standardizer, make_model, task_arrays, train

__all__ = ["finetune", "predict", "macro_f1", "make_splits", "evaluate", "run_method", "num_task_classes", "choose_val_tasks"]


def num_task_classes(task: Any) -> int:
    """A task's class count: ``len(task.classes)`` where known, else ``max(y) + 1``."""
    classes = getattr(task, "classes", None)
    if classes is not None:
        return len(classes)
    _, y, _ = task_arrays(task)
    return int(y.max()) + 1


def finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int, lr: float) -> nn.Module:
    """Fine-tune ``model`` in place: ``steps`` full-batch Adam steps of cross-entropy on the
    first ``num_classes`` outputs."""
    params = [p for p in model.parameters() if p.requires_grad]
    if steps <= 0 or not params:
        return model
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(int(steps)):
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


def make_splits(tasks: Sequence[Any], shots: int | None = None, fraction: float | None = None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(support_idx, test_idx)`` per task: ``shots`` examples per class as support (few-shot)
    or ``fraction`` of each class, the rest as test; seeded by ``seed`` and the task's position."""
    from .data import support_test_split

    splits = []
    for k, task in enumerate(tasks):
        _, y, name = task_arrays(task)
        try:
            support, test = support_test_split(y.cpu().numpy(), shots=shots, fraction=fraction, seed=int(seed) * 1000 + k)
        except ValueError as err:
            raise ValueError(f"task {name!r}: {err}") from None
        splits.append((np.asarray(support, dtype=np.int64), np.asarray(test, dtype=np.int64)))
    return splits


def evaluate(
    model: nn.Module,
    method: Method | str,
    tasks: Sequence[Any],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    steps: int,
    lr: float,
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
    generator = torch.Generator().manual_seed(int(seed))
    scores: dict[str, float] = {}
    for k, (task, (support, test)) in enumerate(zip(tasks, splits)):
        x, y, name = task_arrays(task)
        name = names[k] if names is not None else name
        if name in scores:
            name = f"{name}#{k}"
        if len(support) == 0 or len(test) == 0:
            raise ValueError(f"task {name!r}: empty support or test split")
        c = num_task_classes(task)
        support_t, test_t = torch.as_tensor(support), torch.as_tensor(test)
        tuned = method.finetune_model(model, c, generator)
        finetune(tuned, x[support_t], y[support_t], c, steps, lr)
        scores[name] = macro_f1(y[test_t].cpu().numpy(), predict(tuned, x[test_t], c))
    return scores


def compress_history(history: Sequence[dict[str, float]], every: int) -> list[dict[str, float]]:
    """The training curve in windows of ``every`` iterations: the window's last iteration, its
    mean loss and the validation score where one was taken."""
    out = []
    for start in range(0, len(history), max(1, int(every))):
        window = history[start : start + every]
        row = {"iteration": window[-1]["iteration"], "loss": float(np.mean([h["loss"] for h in window]))}
        if "val" in window[-1]:
            row["val"] = window[-1]["val"]
        out.append(row)
    return out


class _Features:
    """A standardized view of a task: ``.x``, ``.y``, ``.name``, ``.classes``."""

    def __init__(self, task: Any, standardizer: Standardizer | None):
        x, y, self.name = task_arrays(task)
        self.x = standardizer(x) if standardizer is not None else x.float()
        self.y = y.long()
        self.classes = list(getattr(task, "classes", range(int(y.max()) + 1)))


def choose_val_tasks(num_train: int, val_tasks: int, seed: int) -> list[int]:
    """Indices of the meta-training tasks held out for validation in run ``seed`` (sorted)."""
    if val_tasks == 0:
        return []
    if num_train - val_tasks < 1:
        raise ValueError(f"val_tasks={val_tasks} leaves no meta-training task out of {num_train}; lower val_tasks")
    rng = np.random.default_rng([int(seed), 7919])
    return sorted(int(i) for i in rng.choice(num_train, size=val_tasks, replace=False))


def run_method(
    method: Method | str,
    seed: int,
    train_tasks: Sequence[Any],
    test_tasks: Sequence[Any],
    config: Any,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """One (method, seed) run of the benchmark; a JSON-ready dict of its scores.

    What depends on ``seed`` alone (which meta-training tasks validate, the support/test splits,
    the initial weights) is the same for every method, so methods are compared on equal terms.

    Returns:
        ``method, seed, macro_f1`` (mean over meta-test tasks), ``per_task`` scores,
        ``best_iteration``, ``val_macro_f1``, ``curve`` (loss and validation curve),
        ``val_tasks``/``train_tasks`` names, ``seconds``.
    """
    method = get_method(method)
    start = time.perf_counter()
    if not test_tasks:
        raise ValueError("no meta-test tasks")
    val_index = choose_val_tasks(len(train_tasks), config.val_tasks, seed)
    raw = [task_arrays(t) for t in list(train_tasks) + list(test_tasks)]
    in_features = raw[0][0].shape[-1] if raw[0][0].dim() == 2 else -1
    for x, y, name in raw:
        if x.dim() != 2 or x.shape[1] != in_features or y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"task {name!r}: features {tuple(x.shape)} and labels {tuple(y.shape)}; expected (n, {in_features}) and (n,)")
    fit = [x for x, _, _ in raw[: len(train_tasks)]]  # statistics of all meta-training data only
    standardizer = Standardizer.fit(fit) if config.standardize else None
    train_side = [_Features(t, standardizer) for t in train_tasks]
    test_side = [_Features(t, standardizer) for t in test_tasks]
    val_side = [train_side[i] for i in val_index]
    fit_side = [t for i, t in enumerate(train_side) if i not in set(val_index)]

    num_classes = max(len(t.classes) for t in train_side + test_side)
    model = make_model(in_features, num_classes, config.hidden, generator=torch.Generator().manual_seed(int(seed)))

    validate = None
    if val_side and method.trains:
        repeats = [make_splits(val_side, config.shots, config.fraction, seed=int(seed) + 500 + r) for r in range(config.val_repeats)]

        def validate(m: nn.Module) -> float:
            scores = [
                np.mean(list(evaluate(m, method, val_side, splits, config.finetune_steps, config.finetune_lr, seed=int(seed) + 500 + r).values()))
                for r, splits in enumerate(repeats)
            ]
            return float(np.mean(scores))

    trained = train(
        model, method, fit_side, config, seed=int(seed), num_classes=num_classes, validate=validate,
        progress=progress, desc=f"{method.name} seed {seed}",
    )
    splits = make_splits(test_side, config.shots, config.fraction, seed=int(seed))
    per_task = evaluate(trained.model, method, test_side, splits, config.finetune_steps, config.finetune_lr, seed=int(seed))
    return {
        "method": method.name,
        "seed": int(seed),
        "macro_f1": float(np.mean(list(per_task.values()))),
        "per_task": per_task,
        "best_iteration": int(trained.best_iteration) if method.trains else 0,
        "val_macro_f1": trained.best_score,
        "curve": compress_history(trained.history, config.eval_every),
        "train_tasks": [t.name for t in fit_side],
        "val_tasks": [t.name for t in val_side],
        "test_split_sizes": {t.name: [int(len(s)), int(len(q))] for t, (s, q) in zip(test_side, splits)},
        "seconds": round(time.perf_counter() - start, 3),
    }
