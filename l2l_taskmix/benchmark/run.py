"""One run of the benchmark: a (protocol, method, seed), trained and scored on the meta-test tasks.

One run (:func:`run_method`) is a few steps, each its own function: under the model-selection
protocol split off the meta-validation tasks (:func:`choose_val_tasks`), optionally keep a
subset of the meta-training tasks (:func:`choose_train_subset`), standardize features with
meta-training statistics (:func:`standardize`), build the model, make the validation scorer
(:func:`validation_scorer`), train (:func:`~l2l_taskmix.benchmark.training.train`), evaluate
on the meta-test tasks (:func:`~l2l_taskmix.benchmark.evaluation.evaluate`) and assemble the
record. Its training half is :func:`fit_run` (also ``l2l-taskmix train``'s). A run is a
function of its arguments alone: the settings come from the config, as the typed groups of
:mod:`~l2l_taskmix.benchmark.settings`. :func:`run_key` is what a stored run must match to be
reused.

Example, with precomputed features of four tiny tasks::

    >>> import torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.run import run_method
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> cfg = BenchmarkConfig(iterations=4, eval_every=2, batch_size=4, hidden=(16,), val_tasks=1, finetune_steps=5)
    >>> record = run_method("maml+taskmix", 0, [task("a"), task("b"), task("c")], [task("z")], cfg, progress=False)
    >>> record["protocol"], len(record["fit_tasks"]), list(record["per_task"])
    ('select', 2, ['z'])
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..features import FeatureTask, Standardizer, check_same_width
from ..models import make_model
from ..validation import check_choice, check_device, check_scalar
from .config import PROTOCOLS, BenchmarkConfig, check_head_width
from .datasets import BenchmarkData
from .evaluation import evaluate_draws, evaluate_over_draws, make_splits
from .methods import Method, get_method
from .settings import FinetuneSettings, ValidationSettings, check_settings
from .store import data_fingerprint
from .training import TrainResult, train

__all__ = [
    "run_method",
    "fit_run",
    "FittedRun",
    "fit_standardizer",
    "run_key",
    "score_meta_test",
    "choose_val_tasks",
    "choose_train_subset",
    "standardize",
    "validation_scorer",
    "compress_history",
]


def choose_val_tasks(num_train: int, val_tasks: int, seed: int) -> list[int]:
    """Indices of the meta-training tasks held out for validation in run ``seed`` (sorted)."""
    if val_tasks == 0:
        return []
    if num_train - val_tasks < 1:
        raise ValueError(f"val_tasks={val_tasks} leaves no meta-training task out of {num_train}; lower val_tasks")
    rng = np.random.default_rng([int(seed), 7919])
    return sorted(int(i) for i in rng.choice(num_train, size=val_tasks, replace=False))


def fit_standardizer(tasks: Sequence[FeatureTask], enabled: bool) -> Standardizer | None:
    """The statistics of all of ``tasks`` (a run's: the meta-training tasks it sees, those it
    holds out for validation included), ``None`` when ``enabled`` is false."""
    if not tasks:
        raise ValueError("no meta-training tasks to standardize with")
    check_same_width(tasks)
    return Standardizer.fit([t.x for t in tasks]) if enabled else None


def standardize(
    tasks: Sequence[FeatureTask], test_tasks: Sequence[FeatureTask], standardizer: Standardizer | None
) -> tuple[list[FeatureTask], list[FeatureTask]]:
    """Both sides (a run's meta-training tasks, as :func:`fit_standardizer` takes them, and the
    meta-test tasks) standardized with ``standardizer``, as float32 and unchanged when it is
    ``None``."""
    check_same_width(list(tasks) + list(test_tasks))
    if standardizer is None:
        return [t.with_x(t.x.float()) for t in tasks], [t.with_x(t.x.float()) for t in test_tasks]
    return [standardizer.transform(t) for t in tasks], [standardizer.transform(t) for t in test_tasks]


def validation_scorer(
    method: Method,
    val_side: Sequence[FeatureTask],
    *,
    seed: int,
    validation: ValidationSettings,
    finetune: FinetuneSettings,
) -> Callable[[nn.Module], float]:
    """``model -> mean few-shot macro-F1`` on the validation tasks over ``validation.val_repeats``
    fixed support/test draws (the same draws at every check and for every method of a seed),
    each task fine-tuned as ``finetune`` says (``config.validation``, ``config.finetune``)."""
    validation = check_settings(validation, "validation", ValidationSettings)
    finetune = check_settings(finetune, "finetune", FinetuneSettings)
    draws = [
        (make_splits(val_side, validation.shots, validation.fraction, seed=int(seed) + 500 + r), int(seed) + 500 + r)
        for r in range(validation.val_repeats)
    ]

    def score(model: nn.Module) -> float:
        scores = evaluate_draws(model, method, val_side, draws, finetune=finetune)
        return float(np.mean([np.mean(list(per_task.values())) for per_task in scores]))

    return score


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


def choose_train_subset(num_fit: int, train_subset: int | None, seed: int) -> list[int]:
    """Indices (sorted) of the ``train_subset`` meta-training tasks that run ``seed`` trains on,
    out of ``num_fit`` (all when ``train_subset`` is ``None``)."""
    if train_subset is None:
        return list(range(num_fit))
    if train_subset > num_fit:
        raise ValueError(f"train_subset={train_subset} but only {num_fit} meta-training tasks are left to train on")
    rng = np.random.default_rng([int(seed), 104729])
    return sorted(int(i) for i in rng.choice(num_fit, size=train_subset, replace=False))


@dataclass
class FittedRun:
    """What :func:`fit_run` returns: a run trained, not yet evaluated on its meta-test tasks.

    Attributes:
        trained: the loop's :class:`~l2l_taskmix.benchmark.training.TrainResult` (its ``model``
            holds the kept weights).
        standardizer: the statistics the run's features were standardized with (``None``
            with ``config.standardize`` off).
        fit_side, val_side, test_side: the run's meta-training, meta-validation and meta-test
            tasks, standardized and on the run's device.
        num_classes: the head's outputs.
        stages: seconds spent training, on validation checks and on evaluations at horizons.
        early: ``{horizon: per-task scores}`` of the weights at each horizon.
        early_draws: ``{horizon: each meta-test draw's Average Macro F1}`` of those weights.
    """

    trained: TrainResult
    standardizer: Standardizer | None
    fit_side: list[FeatureTask]
    val_side: list[FeatureTask]
    test_side: list[FeatureTask]
    num_classes: int
    stages: dict[str, float]
    early: dict[int, dict[str, float]]
    early_draws: dict[int, list[float]] = field(default_factory=dict)


def fit_run(
    method: Method | str,
    seed: int,
    train_tasks: Sequence[FeatureTask],
    test_tasks: Sequence[FeatureTask],
    config: BenchmarkConfig,
    *,
    protocol: str = "select",
    horizons: Sequence[int] = (),
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    head_width: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> FittedRun:
    """The training half of :func:`run_method` (the benchmark's and ``l2l-taskmix train``'s one
    path): choose the meta-validation and meta-training tasks of run ``seed``, standardize, build
    the model, train. ``test_tasks`` may be empty (nothing to evaluate: a model for later use).

    ``head_width``: the head's outputs, at least the largest class count of ``train_tasks`` and
    ``test_tasks`` (``None``: that count, the paper's head). ``splits``: the meta-test support/test
    splits, needed to score ``horizons`` on the way.
    """
    method = get_method(method)
    seed = check_scalar(seed, "seed", int)
    protocol = check_choice(protocol, "protocol", PROTOCOLS)
    device = check_device(device)
    if not train_tasks:
        raise ValueError("no meta-training tasks")
    val_index = choose_val_tasks(len(train_tasks), config.val_tasks, seed) if protocol == "select" else []
    fit_index = [i for i in range(len(train_tasks)) if i not in val_index]
    fit_index = [fit_index[k] for k in choose_train_subset(len(fit_index), config.train_subset, seed)]
    used = sorted(val_index + fit_index)  # the meta-training tasks this run sees
    standardizer = fit_standardizer([train_tasks[i] for i in used], config.standardize)
    used_side, test_side = standardize([train_tasks[i] for i in used], test_tasks, standardizer)
    used_side, test_side = [t.to(device) for t in used_side], [t.to(device) for t in test_side]
    side = dict(zip(used, used_side))
    val_side = [side[i] for i in val_index]
    fit_side = [side[i] for i in fit_index]

    num_classes = max(t.num_classes for t in list(train_tasks) + list(test_tasks))
    if head_width is not None:
        head_width = check_head_width(head_width, config.hidden, "head_width", in_features=used_side[0].dim)
        if head_width < num_classes:
            raise ValueError(
                f"head_width (--head-width) {head_width} is narrower than the largest task's {num_classes} classes; "
                f"give at least {num_classes}"
            )
        num_classes = head_width
    model = make_model(used_side[0].dim, num_classes, config.hidden, generator=torch.Generator().manual_seed(int(seed))).to(device)
    stages = {"training": 0.0, "validation": 0.0, "evaluation": 0.0}  # seconds of each, for benchmarks/speed.py
    if val_side and method.trains:
        checks = validation_scorer(method, val_side, seed=seed, validation=config.validation, finetune=config.finetune)
    else:
        checks = None

    def timed_checks(model: nn.Module) -> float:
        begin = time.perf_counter()
        try:
            return checks(model)
        finally:
            stages["validation"] += time.perf_counter() - begin

    horizons = sorted({check_scalar(h, "horizon", int, min_val=1) for h in horizons} - {config.iterations})
    if horizons and (protocol != "paper" or horizons[-1] > config.iterations or splits is None):
        raise ValueError(f"horizons {horizons} need the paper protocol, meta-test splits and at most iterations={config.iterations}")
    early: dict[int, dict[str, float]] = {}
    early_draws: dict[int, list[float]] = {}

    def at_horizon(iteration: int, model: nn.Module) -> None:
        begin = time.perf_counter()
        early[iteration], early_draws[iteration] = score_meta_test(model, method, test_side, int(seed), config)
        stages["evaluation"] += time.perf_counter() - begin

    trained = train(
        model,
        method,
        fit_side,
        seed=int(seed),
        num_classes=num_classes,
        score=timed_checks if checks else None,
        checkpoints=horizons,
        on_checkpoint=at_horizon if horizons else None,
        progress=progress,
        desc=f"{method.name} seed {seed} ({protocol})",
        loop=config.loop,
        maml=config.maml,
        mix=config.mix,
    )
    stages["training"] = trained.seconds - stages["validation"] - stages["evaluation"]
    return FittedRun(trained, standardizer, fit_side, val_side, test_side, num_classes, stages, early, early_draws)


def score_meta_test(
    model: nn.Module, method: Method, test_side: Sequence[FeatureTask], seed: int, config: BenchmarkConfig
) -> tuple[dict[str, float], list[float]]:
    """A run's meta-test scores: each task over ``config.test_draws`` support/test draws
    (:func:`~l2l_taskmix.benchmark.evaluation.evaluate_over_draws`, in ``config``'s regime and
    fine-tuning); ``(per_task, per_draw)``. The benchmark's runs and ``meta_train``'s model card
    score through it.

    Example::

        >>> import torch
        >>> from l2l_taskmix import make_model
        >>> g = torch.Generator().manual_seed(0)
        >>> task = FeatureTask("t", torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
        >>> config = BenchmarkConfig(test_draws=2, finetune_steps=5)
        >>> per_task, per_draw = score_meta_test(make_model(8, 3, (16,), g), "maml", [task], 0, config)
        >>> sorted(per_task), len(per_draw)
        (['t'], 2)
    """
    return evaluate_over_draws(
        model, method, test_side, seed, test_draws=config.test_draws, shots=config.shots, fraction=config.fraction, finetune=config.finetune
    )


def run_method(
    method: Method | str,
    seed: int,
    train_tasks: Sequence[FeatureTask],
    test_tasks: Sequence[FeatureTask],
    config: BenchmarkConfig,
    *,
    protocol: str = "select",
    horizons: Sequence[int] = (),
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """One (method, seed) run of the benchmark under ``protocol``; a JSON-ready dict of its scores.

    ``protocol``: ``"paper"`` meta-trains on every meta-training task for ``config.iterations``
    iterations and evaluates the final weights; ``"select"`` holds ``config.val_tasks`` of them
    out and keeps the checked iteration that scores best on those (model selection).
    What depends on ``seed`` alone (which meta-training tasks validate or are used, the
    support/test splits, the initial weights) is the same for every method, so methods are
    compared on equal terms. Training is :func:`fit_run`.

    ``horizons`` (paper protocol): iterations short of ``config.iterations`` at which the
    weights of that moment are evaluated too, as a run of that many iterations would be (the
    same numbers, bit for bit: evaluation draws nothing from training's generator). They come
    back under ``"horizons"``: ``{iteration: {macro_f1, per_task, curve}}`` (and ``draw_macro_f1``, as the record).

    ``device``: where the model trains, fine-tunes and predicts (``"auto"``: CUDA when present).
    Everything random is drawn on the CPU (initial weights, new heads, batches, lambdas), so a
    GPU run starts from the same numbers as a CPU run; a CPU run's numbers do not depend on how
    the CPU was chosen (``"cpu"``, or ``"auto"`` without a GPU).

    Returns:
        ``method, seed, protocol, macro_f1`` (mean over meta-test tasks), ``per_task`` scores
        (each the mean over ``config.test_draws`` support/test draws,
        :func:`~l2l_taskmix.benchmark.evaluation.evaluate_over_draws`; with more than one,
        ``draw_macro_f1``: each draw's mean over tasks),
        ``best_iteration``, ``val_macro_f1``, ``curve`` (loss and validation curve),
        ``fit_tasks`` (the names of the meta-training tasks it trained on) and ``validation_tasks``
        (of those it held out, ``config.val_tasks`` of them), ``test_split_sizes``, ``seconds`` (and
        ``stage_seconds``: of training, validation checks and evaluation).
    """
    method = get_method(method)
    device = check_device(device)
    start = time.perf_counter()
    if not test_tasks:
        raise ValueError("no meta-test tasks")
    horizons = sorted({check_scalar(h, "horizon", int, min_val=1) for h in horizons} - {config.iterations})
    splits = make_splits(list(test_tasks), config.shots, config.fraction, seed=int(seed))  # rows and labels only: as after standardizing
    run = fit_run(
        method, seed, train_tasks, test_tasks, config, protocol=protocol, horizons=horizons, splits=splits, device=device, progress=progress
    )
    trained, stages, early, early_draws = run.trained, run.stages, run.early, run.early_draws
    begin = time.perf_counter()
    per_task, draws = score_meta_test(trained.model, method, run.test_side, int(seed), config)
    stages["evaluation"] += time.perf_counter() - begin
    if not method.trains:  # nothing trains: every horizon is the untrained model
        early, early_draws = {h: per_task for h in horizons}, {h: draws for h in horizons}
    record = {
        "method": method.name,
        "seed": int(seed),
        "protocol": protocol,
        "macro_f1": float(np.mean(list(per_task.values()))),
        "per_task": per_task,
        **({"draw_macro_f1": draws} if len(draws) > 1 else {}),
        "best_iteration": int(trained.best_iteration) if method.trains else 0,
        "val_macro_f1": trained.best_score,
        "curve": compress_history(trained.history, config.eval_every),
        "fit_tasks": [t.name for t in run.fit_side],
        "validation_tasks": [t.name for t in run.val_side],
        "test_split_sizes": {t.name: [int(len(s)), int(len(q))] for t, (s, q) in zip(run.test_side, splits)},
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
    }
    if horizons:
        record["horizons"] = {
            h: {
                "macro_f1": float(np.mean(list(scores.values()))),
                "per_task": scores,
                "curve": compress_history(trained.history[:h], config.eval_every),
                **({"draw_macro_f1": early_draws[h]} if len(early_draws[h]) > 1 else {}),
            }
            for h, scores in early.items()
        }
    return record


def run_key(config: BenchmarkConfig, data: BenchmarkData, device: str | torch.device = "cpu") -> str:
    """What a stored run must match to be reused: configuration, data, package version and,
    where it is not the CPU, the kind of device the run computes on (a GPU's numbers differ by
    float rounding). The device is added only where it is not the CPU, so a CPU run's key does
    not depend on the device flag (``--device cpu`` and ``auto`` on a machine without CUDA give
    one key); a new package version gives every run a new key."""
    text = f"{config.run_hash()}|{data_fingerprint(list(data.train) + list(data.test))}|{__version__}"
    kind = torch.device(device).type
    if kind != "cpu":
        text += f"|{kind}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
