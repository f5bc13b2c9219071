"""Evaluation on meta-test tasks: copy the weights, fine-tune on the support split, macro-F1.

:func:`evaluate` is the paper's protocol for one trained model: for each task, a copy of the
model (with a new head for MTL and transfer) is fine-tuned on the task's support split and
scored by macro-F1 on its test split. :func:`make_splits` draws the support/test splits;
:func:`evaluate_over_draws` scores each task over several draws (:func:`draw_seeds`) and
averages them (the benchmark's ``test_draws``).

Example::

    >>> import torch
    >>> from l2l_taskmix import make_model
    >>> from l2l_taskmix.benchmark.config import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> task = FeatureTask("t", torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> splits = make_splits([task], shots=5, seed=0)
    >>> finetune = BenchmarkConfig(finetune_steps=5, finetune_lr=1e-2).finetune
    >>> scores = evaluate(make_model(8, 3, (16,), g), "maml", [task], splits, finetune=finetune)
    >>> list(scores), 0.0 <= scores["t"] <= 1.0
    (['t'], True)
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import support_test_split
from ..features import FeatureTask
from ..validation import check_scalar
from .methods import Method, get_method
from .settings import FinetuneSettings, check_settings

__all__ = [
    "finetune",
    "finetune_many",
    "predict",
    "macro_f1",
    "make_splits",
    "evaluate",
    "evaluate_draws",
    "draw_seeds",
    "evaluate_over_draws",
    "DRAW_STREAM",
]

#: The stream of a run's further meta-test draws: mixed into each one's seed (see :func:`draw_seeds`).
DRAW_STREAM = 0x7E57D8A3
#: Further draws' seeds are at least this, above every run seed and validation draw seed.
_DRAW_SEED_BASE = 2**32


def finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, *, finetune_steps: int, finetune_lr: float) -> nn.Module:
    """Fine-tune ``model`` in place: ``finetune_steps`` full-batch Adam steps (learning rate
    ``finetune_lr``) of cross-entropy on the first ``num_classes`` outputs.

    The sequential reference of :func:`finetune_many`, which gives the same weights (to float
    rounding) for many models at once."""
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


_finetune_one = finetune  # for :func:`evaluate_draws`, whose ``finetune`` parameter is the settings


def finetune_many(
    models: Sequence[nn.Module],
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    num_classes: Sequence[int],
    *,
    finetune_steps: int,
    finetune_lr: float,
) -> list[nn.Module]:
    """:func:`finetune` of every ``models[k]`` on ``(xs[k], ys[k])``, all at once; in place.

    The models (same architecture, parameters of the same shapes) are stacked into one batched
    model (``torch.func.stack_module_state`` and ``vmap``), their support sets padded to the
    longest; one Adam step updates all of them. Adam works element by element and each model's
    loss depends only on its own weights, so every model gets the weights :func:`finetune`
    gives it alone, up to float rounding: padded rows weigh nothing, outputs past a model's
    ``num_classes`` are masked out of its softmax (their gradients are exactly zero).

    Example::

        >>> from l2l_taskmix import make_model
        >>> g = torch.Generator().manual_seed(0)
        >>> models = [make_model(8, 3, (16,), g) for _ in range(2)]
        >>> xs, ys = [torch.randn(6, 8, generator=g), torch.randn(4, 8, generator=g)], [torch.arange(6) % 3, torch.arange(4) % 2]
        >>> tuned = finetune_many(models, xs, ys, [3, 2], finetune_steps=5, finetune_lr=1e-2)
        >>> len(tuned)
        2
    """
    models = list(models)
    if not (len(models) == len(xs) == len(ys) == len(num_classes)):
        raise ValueError(f"finetune_many: {len(models)} models, {len(xs)} xs, {len(ys)} ys, {len(num_classes)} num_classes")
    if not models or finetune_steps <= 0:
        return models
    from torch.func import functional_call, stack_module_state

    shapes = [[tuple(p.shape) for p in m.parameters()] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("finetune_many: the models' parameters differ in shape; fine-tune them one by one")
    names = [name for name, p in models[0].named_parameters() if p.requires_grad]
    if not names:
        return models
    params, buffers = stack_module_state(models)
    params = {name: p.detach().requires_grad_(name in names) for name, p in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = torch.vmap(forward)
    ref = params[names[0]]
    rows = max(int(x.shape[0]) for x in xs)
    X = torch.zeros(len(models), rows, int(xs[0].shape[1]), dtype=ref.dtype, device=ref.device)
    Y = torch.zeros(len(models), rows, dtype=torch.long, device=ref.device)
    weight = torch.zeros(len(models), rows, dtype=ref.dtype, device=ref.device)  # 1/n on a model's rows, 0 on padding
    for k, (x, y) in enumerate(zip(xs, ys)):
        X[k, : len(x)], Y[k, : len(y)], weight[k, : len(y)] = x, y, 1.0 / len(y)
    width = int(batched(params, buffers, X[:, :1]).shape[-1])
    masked = torch.arange(width, device=ref.device)[None, None, :] >= torch.as_tensor(list(num_classes), device=ref.device)[:, None, None]
    optimizer = torch.optim.Adam([params[name] for name in names], lr=finetune_lr)
    for _ in range(int(finetune_steps)):
        optimizer.zero_grad()
        logits = batched(params, buffers, X).masked_fill(masked, float("-inf"))
        nll = -torch.log_softmax(logits, -1).gather(-1, Y[..., None]).squeeze(-1)
        losses = (nll * weight).sum(1)  # each model's mean cross-entropy
        losses.sum().backward()
        optimizer.step()
    bad = [k for k in range(len(models)) if not torch.isfinite(losses[k])]
    if bad:
        raise FloatingPointError(f"fine-tuning loss became {losses[bad[0]].item()} (model {bad[0]}); lower finetune_lr")
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                if name in names:
                    p.copy_(params[name][k])
    return models


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
            support, test = support_test_split(
                task.y.cpu().numpy(), shots=shots, fraction=fraction, seed=int(seed) * 1000 + k, groups=groups
            )
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
    finetune: FinetuneSettings,
    seed: int = 0,
    names: Sequence[str] | None = None,
    batched: bool | None = None,
) -> dict[str, float]:
    """Macro-F1 per task after fine-tuning a copy of ``model`` on the task's support split
    (``finetune``: :class:`~l2l_taskmix.benchmark.settings.FinetuneSettings`, ``config.finetune``).

    New heads (MTL, transfer) are drawn from a generator seeded by ``seed``, so calling this
    twice gives the same scores; ``model`` itself is never changed. ``batched``: fine-tune the
    copies of all tasks at once (:func:`finetune_many`) or one after another (:func:`finetune`);
    the same scores up to float rounding. ``None``: batched where that is faster, on a GPU; on
    a CPU the padded batch does more work than it saves (``benchmarks/speed.py``).

    Returns:
        ``{task name: macro-F1 on its test split}`` (the Average Macro F1 is the mean).
    """
    return evaluate_draws(model, method, tasks, [(splits, seed)], finetune=finetune, names=names, batched=batched)[0]


def evaluate_draws(
    model: nn.Module,
    method: Method | str,
    tasks: Sequence[FeatureTask],
    draws: Sequence[tuple[Sequence[tuple[np.ndarray, np.ndarray]], int]],
    *,
    finetune: FinetuneSettings,
    names: Sequence[str] | None = None,
    batched: bool | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate` for several ``(splits, seed)`` draws of the same tasks: one dict per
    draw, each what ``evaluate(..., splits, seed=seed)`` returns. With ``batched``, the copies
    of every task of every draw are fine-tuned together in one batched model (the validation
    checks of the model-selection protocol: a few tasks times a few draws)."""
    method = get_method(method)
    finetune = check_settings(finetune, "finetune", FinetuneSettings)
    jobs = []  # (draw, name, tuned copy, support x, support y, classes, test x, test y)
    for d, (splits, seed) in enumerate(draws):
        if len(tasks) != len(splits):
            raise ValueError(f"{len(tasks)} tasks but {len(splits)} splits")
        generator = torch.Generator().manual_seed(check_scalar(seed, "seed", int))
        seen: set[str] = set()
        for k, (task, (support, test)) in enumerate(zip(tasks, splits)):
            name = names[k] if names is not None else task.name
            if name in seen:
                name = f"{name}#{k}"
            seen.add(name)
            if len(support) == 0 or len(test) == 0:
                raise ValueError(f"task {name!r}: empty support or test split")
            c = task.num_classes
            support_t, test_t = torch.as_tensor(support), torch.as_tensor(test)
            tuned = method.finetune_model(model, c, generator)  # draws a new head in task order
            jobs.append((d, name, tuned, task.x[support_t], task.y[support_t], c, task.x[test_t], task.y[test_t]))
    hp = dict(finetune_steps=finetune.finetune_steps, finetune_lr=finetune.finetune_lr)
    if batched is None:
        batched = next(model.parameters()).device.type == "cuda"
    if batched and len(jobs) > 1:
        width = max(int(job[2].head.out_features) for job in jobs) if hasattr(model, "head") else None
        tuned = [_pad_head(job[2], width) if width else job[2] for job in jobs]
        finetune_many(tuned, [j[3] for j in jobs], [j[4] for j in jobs], [j[5] for j in jobs], **hp)
    else:
        tuned = [_finetune_one(job[2], job[3], job[4], job[5], **hp) for job in jobs]
    scores: list[dict[str, float]] = [{} for _ in draws]
    for job, model_k in zip(jobs, tuned):
        d, name, _, _, _, c, x_test, y_test = job
        scores[d][name] = macro_f1(y_test.cpu().numpy(), predict(model_k, x_test, c))
    return scores


def _pad_head(model: nn.Module, width: int) -> nn.Module:
    """``model`` with its head widened to ``width`` outputs by zero rows (in place), so copies
    with new heads of different class counts stack; the extra outputs are masked out of the
    loss and ignored by :func:`predict`, so nothing else changes."""
    head = model.head
    if head.out_features == width:
        return model
    wide = nn.Linear(head.in_features, width, bias=head.bias is not None, device="meta", dtype=head.weight.dtype)
    wide = wide.to_empty(device=head.weight.device)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[: head.out_features] = head.weight
        if head.bias is not None:
            wide.bias.zero_()
            wide.bias[: head.out_features] = head.bias
    model.head = wide
    return model


def draw_seeds(seed: int, test_draws: int) -> list[int]:
    """The seeds of run ``seed``'s ``test_draws`` meta-test draws (each seeds the support/test
    splits, :func:`make_splits`, and the new heads, :func:`evaluate`).

    The first is ``seed`` itself, the run's own split and heads, so ``test_draws=1`` scores as
    ``evaluate(..., make_splits(..., seed=seed), seed=seed)`` does. Draw ``r >= 1`` has ``2**32 +`` the first word of
    ``numpy.random.SeedSequence([seed, DRAW_STREAM, r])``: a stream of its own, at least
    ``2**32``, so it is no run's seed and no validation draw's (``seed + 500 + r``, below
    ``2**32`` for every seed the benchmark takes), and other runs' further draws differ from
    it (32-bit hashes of different inputs).

    Example::

        >>> s = draw_seeds(3, 3)
        >>> s[0], len(set(s)), all(x >= 2**32 for x in s[1:])
        (3, 3, True)
        >>> draw_seeds(3, 2) == s[:2]
        True
    """
    seed = check_scalar(seed, "seed", int, min_val=0)
    test_draws = check_scalar(test_draws, "test_draws", int, min_val=1)
    further = [int(np.random.SeedSequence([seed, DRAW_STREAM, r]).generate_state(1, np.uint32)[0]) for r in range(1, test_draws)]
    return [int(seed)] + [_DRAW_SEED_BASE + x for x in further]


def evaluate_over_draws(
    model: nn.Module,
    method: Method | str,
    tasks: Sequence[FeatureTask],
    seed: int,
    *,
    test_draws: int = 1,
    shots: int | None = None,
    fraction: float | None = None,
    finetune: FinetuneSettings,
    batched: bool | None = None,
) -> tuple[dict[str, float], list[float]]:
    """Each task scored on ``test_draws`` support/test draws (:func:`draw_seeds` of ``seed``:
    the splits of :func:`make_splits` with ``shots`` or ``fraction``, and the new heads), the
    scores averaged per task.

    With one draw this is ``evaluate(model, method, tasks, make_splits(tasks, shots, fraction,
    seed=seed), seed=seed)``, number for number. Which 5 utterances are a task's support set
    moves its macro-F1 as much as another meta-training run does (``benchmarks/variance.py``);
    the mean over draws keeps the meta-training run's part.

    Returns:
        ``(per_task, per_draw)``: ``{task name: mean macro-F1 over the draws}`` and each draw's
        Average Macro F1 (the mean over tasks), in draw order.

    Example::

        >>> import torch
        >>> from l2l_taskmix import make_model
        >>> g = torch.Generator().manual_seed(0)
        >>> task = FeatureTask("t", torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
        >>> model = make_model(8, 3, (16,), g)
        >>> from l2l_taskmix.benchmark.settings import FinetuneSettings
        >>> tune = FinetuneSettings(finetune_steps=5, finetune_lr=1e-2)
        >>> per_task, per_draw = evaluate_over_draws(model, "maml", [task], 0, test_draws=3, shots=5, finetune=tune)
        >>> len(per_draw), abs(per_task["t"] - sum(per_draw) / 3) < 1e-12
        (3, True)
    """
    tasks = list(tasks)
    draws = [(make_splits(tasks, shots, fraction, seed=s), s) for s in draw_seeds(seed, test_draws)]
    scores = evaluate_draws(model, method, tasks, draws, finetune=finetune, batched=batched)
    per_task = {name: sum(draw[name] for draw in scores) / len(scores) for name in scores[0]}
    per_draw = [float(np.mean(list(draw.values()))) for draw in scores]
    return per_task, per_draw
