"""The benchmark's runner: every (protocol, method, seed) run of a configuration, resumable, then the outputs.

One run (:func:`run_method`) is a few steps, each its own function: under the model-selection
protocol split off the meta-validation tasks (:func:`choose_val_tasks`), optionally keep a
subset of the meta-training tasks (:func:`choose_train_subset`), standardize features with meta-training
statistics (:func:`standardize`), build the model, make the validation scorer
(:func:`validation_scorer`), train (:func:`~l2l_taskmix.benchmark.training.train`), evaluate
on the meta-test tasks (:func:`~l2l_taskmix.benchmark.evaluation.evaluate`) and assemble the
record. :func:`run_grid` runs every (protocol, method, seed) not yet finished, saving each at
once; :func:`run_benchmark` does that and writes the table, CSV, JSON and plots.

Example, with precomputed features of four tiny tasks::

    >>> import tempfile, torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData, run_benchmark
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> data = BenchmarkData([task("a"), task("b"), task("c")], [task("z")])
    >>> cfg = BenchmarkConfig(methods=("maml", "maml+taskmix"), seeds=1, iterations=4, eval_every=2,
    ...                       batch_size=4, hidden=(16,), val_tasks=1, finetune_steps=5)
    >>> summary = run_benchmark(cfg, tempfile.mkdtemp(), data=data, progress=False, echo=False)
    >>> summary[["protocol", "method"]].values.tolist()
    [['paper', 'maml'], ['paper', 'maml+taskmix'], ['select', 'maml'], ['select', 'maml+taskmix']]
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..cluster import ray_session
from ..features import FeatureTask, Standardizer, check_same_width, get_encoder
from ..files import check_writable
from ..models import make_model
from ..validation import check_choice, check_device, check_scalar
from .config import PROTOCOLS, BenchmarkConfig, check_head_width, is_feature_file
from .datasets import BenchmarkData, load_features
from .evaluation import evaluate_draws, evaluate_over_draws, make_splits
from .methods import Method, get_method
from .progress import CommandProgress
from .report import PROTOCOL_TITLES, data_notes, markdown_table, paired_table, protocol_words, rounding_words, write_outputs
from .statistics import paired_differences, summarize
from .store import RunStore, data_fingerprint
from .training import TrainResult, train
from .workers import InProcess, check_executor, default_workers, make_executor

__all__ = [
    "run_benchmark",
    "run_grid",
    "run_job",
    "run_method",
    "fit_run",
    "FittedRun",
    "fit_standardizer",
    "run_key",
    "choose_val_tasks",
    "choose_train_subset",
    "standardize",
    "validation_scorer",
    "compress_history",
]

#: Free space the output folder must have before a benchmark starts: the run records, tables,
#: JSON and the plot of a large grid take a few MB.
OUT_BYTES = 16 * 2**20


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
    shots: int | None,
    fraction: float | None,
    val_repeats: int,
    finetune_steps: int,
    finetune_lr: float,
) -> Callable[[nn.Module], float]:
    """``model -> mean few-shot macro-F1`` on the validation tasks over ``val_repeats`` fixed
    support/test draws (the same draws at every check and for every method of a seed)."""
    draws = [(make_splits(val_side, shots, fraction, seed=int(seed) + 500 + r), int(seed) + 500 + r) for r in range(val_repeats)]

    def score(model: nn.Module) -> float:
        scores = evaluate_draws(model, method, val_side, draws, finetune_steps=finetune_steps, finetune_lr=finetune_lr)
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
    """

    trained: TrainResult
    standardizer: Standardizer | None
    fit_side: list[FeatureTask]
    val_side: list[FeatureTask]
    test_side: list[FeatureTask]
    num_classes: int
    stages: dict[str, float]
    early: dict[int, dict[str, float]]


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
    checks = validation_scorer(method, val_side, seed=seed, **config.kwargs_for(validation_scorer)) if val_side and method.trains else None

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

    def at_horizon(iteration: int, model: nn.Module) -> None:
        begin = time.perf_counter()
        early[iteration] = evaluate_over_draws(model, method, test_side, int(seed), **config.kwargs_for(evaluate_over_draws))[0]
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
        **config.kwargs_for(train),
    )
    stages["training"] = trained.seconds - stages["validation"] - stages["evaluation"]
    return FittedRun(trained, standardizer, fit_side, val_side, test_side, num_classes, stages, early)


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
    back under ``"horizons"``: ``{iteration: {macro_f1, per_task, curve}}``.

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
    trained, stages, early = run.trained, run.stages, run.early
    begin = time.perf_counter()
    per_task, draws = evaluate_over_draws(trained.model, method, run.test_side, int(seed), **config.kwargs_for(evaluate_over_draws))
    stages["evaluation"] += time.perf_counter() - begin
    if not method.trains:  # nothing trains: every horizon is the untrained model
        early = {h: per_task for h in horizons}
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


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def run_grid(
    config: BenchmarkConfig,
    out: str | os.PathLike,
    data: BenchmarkData,
    *,
    horizons: Sequence[int] = (),
    progress: bool = True,
    max_runs: int | None = None,
    echo: bool = True,
    executor: Any = None,
    tracker: CommandProgress | None = None,
) -> tuple[list[dict[str, Any]], int, RunStore]:
    """Every (protocol, method, seed) run of ``config`` on ``data``: loaded from ``out``'s run
    store where finished earlier, else run and saved at once (atomically) as each finishes.

    ``executor`` runs the missing runs (:mod:`~l2l_taskmix.benchmark.workers`: ``None`` is
    :class:`~l2l_taskmix.benchmark.workers.InProcess`, one after another here;
    :class:`~l2l_taskmix.benchmark.workers.LocalWorkers` runs several at once in worker
    processes); the records are the same whichever runs them.

    ``horizons`` (paper protocol only): shorter iteration counts at which each run is scored
    too, on the way to ``config.iterations`` (:func:`run_method`); each horizon's record is
    stored under the key of a run of that length (it has the same numbers, bit for bit), so a
    benchmark with ``--iterations H`` reuses it. The records then come once per length, shortest
    first, each with ``"horizon"`` set.

    The runs of the first protocol start in grid order (the quick methods first, so the first
    numbers come early); those of later protocols start longest first (by
    :func:`~l2l_taskmix.benchmark.progress.run_cost`), so that no long run is left alone at the
    end. When every run of a protocol is done and others remain, its column is logged at once.
    ``tracker``: the command's :class:`~l2l_taskmix.benchmark.progress.CommandProgress` (its
    bar and estimate of the time left; default: one for this grid alone). The order changes
    no record.

    Returns ``(runs, new, store)``: the run records in grid order, how many were run now, and
    the store of ``config`` itself. With ``max_runs``, stops after that many new runs (``runs``
    is then incomplete: compare its length with the grid's).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    lengths = sorted({check_scalar(h, "horizon", int, min_val=1) for h in horizons} | {config.iterations})
    if horizons and config.protocols != ("paper",):
        raise ValueError("scoring shorter horizons on the way evaluates the weights after each: give --protocols paper")
    executor = executor if executor is not None else InProcess(data, progress=progress)
    # "auto" is decided where the runs execute: this machine, or the Ray cluster's GPUs
    device = check_device(config.device, "device", cuda_available=getattr(executor, "cuda_available", None))
    stores = {h: RunStore(out, run_key(config.replace(iterations=h), data, device)) for h in lengths}
    # what a job writes into: absolute, since a worker's working directory need not be this one's (Ray)
    job_stores = {h: RunStore(os.path.abspath(out), store.key) for h, store in stores.items()}
    grid = [(p, m, s) for p in config.protocols for m in config.methods for s in range(config.seeds)]
    found: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
    own_tracker = tracker is None
    if tracker is None:
        tracker = CommandProgress(config, slots=executor.slots, progress=progress)
    tracker.set_slots(executor.slots)
    if not tracker.costs:
        tracker.plan(len(data.train), len(data.test))
    queue = []
    for job in grid:
        loaded = {h: stores[h].load(job[1], job[2], job[0]) for h in lengths}
        if all(r is not None for r in loaded.values()):
            found[job] = loaded
            tracker.reused(job)
            if echo:
                _log(f"{_label(*job)}: {_scores_text(loaded, horizons)}  (finished earlier, reused)")
        else:
            queue.append(job)
    queue = _start_order(queue, config.protocols, tracker.costs)
    if max_runs is not None:
        queue = queue[: max(0, max_runs)]
    pending = {p: sum(job[0] == p and job not in found for job in grid) for p in config.protocols}
    new, inflight = 0, {}
    try:
        while queue or inflight:
            while queue and len(inflight) < executor.slots:
                protocol, method, seed = job = queue.pop(0)
                tracker.run_started(job)
                inflight[executor.submit(run_job, method, seed, config, protocol, job_stores, str(device))] = job
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in done:
                job = inflight.pop(future)
                found[job] = _stored(future.result(), stores)
                new += 1
                record = found[job][config.iterations]
                tracker.run_finished(job, record["seconds"])
                pending[job[0]] -= 1
                if echo:
                    best = (
                        f"best iteration {record['best_iteration']}/{config.iterations}, "
                        if job[0] == "select" and job[1] != "transfer"
                        else ""
                    )
                    left = f"; {tracker.left_text()}" if queue or inflight else ""
                    _log(f"{_label(*job)}: {_scores_text(found[job], horizons)}  ({best}{record['seconds']:.0f} s{left})")
                    if pending[job[0]] == 0 and (queue or inflight) and not horizons:
                        column = [found[j][config.iterations] for j in grid if j[0] == job[0]]
                        _log(
                            f"\n{PROTOCOL_TITLES.get(job[0], job[0]).capitalize()}, all {len(column)} runs done "
                            f"(the other protocol's runs go on):\n\n{markdown_table(summarize(column, config.methods))}\n"
                        )
    finally:
        if own_tracker:
            tracker.close()
    runs = []
    for job in grid:
        if job not in found:
            break
        runs += [{**found[job][h], "horizon": h} for h in lengths] if horizons else [found[job][config.iterations]]
    return runs, new, stores[config.iterations]


def run_job(
    data: BenchmarkData,
    method: str,
    seed: int,
    config: BenchmarkConfig,
    protocol: str,
    stores: dict[int, RunStore],
    device: str = "cpu",
    progress: bool = True,
) -> dict[int, dict[str, Any]]:
    """One run of a grid on ``data``, saved into ``stores`` (``{iterations: store}``: the run's
    length and any shorter horizon scored on the way) by whichever process runs it, so a run
    finished on a worker is kept even if the caller dies; what an executor of
    :mod:`~l2l_taskmix.benchmark.workers` calls. Returns ``{iterations: record}``.

    The run holds its lock in the store (:meth:`~l2l_taskmix.benchmark.store.RunStore.lock`)
    while it computes: a second process writing the same ``--out`` waits for it and then reuses
    the saved run instead of computing it again."""
    lengths = sorted(stores)

    def waiting() -> None:
        _log(f"{_label(protocol, method, seed)}: another process is computing this run; waiting to reuse it")

    with stores[config.iterations].lock(method, seed, protocol, on_wait=waiting):
        saved = {h: stores[h].load(method, seed, protocol) for h in lengths}
        if all(r is not None for r in saved.values()):  # finished meanwhile by another process
            return saved
        record = run_method(
            method,
            seed,
            data.train,
            data.test,
            config,
            protocol=protocol,
            horizons=[h for h in lengths if h != config.iterations],
            device=device,
            progress=progress,
        )
        return _save_lengths(record, stores, lengths, config.iterations)


def _stored(found: dict[int, dict[str, Any]], stores: dict[int, RunStore]) -> dict[int, dict[str, Any]]:
    """A job's records, saved here too where the worker's copy is not in ``stores`` (a cluster
    node without this machine's file system)."""
    for h, record in found.items():
        if stores[h].load(record["method"], record["seed"], record["protocol"]) is None:
            stores[h].save(record)
    return found


def _start_order(queue: list[tuple[str, str, int]], protocols: Sequence[str], costs: dict) -> list[tuple[str, str, int]]:
    """The first protocol's runs in grid order, then each later protocol's longest first."""
    first = [job for job in queue if job[0] == protocols[0]]
    rest = [job for job in queue if job[0] != protocols[0]]
    rank = {p: k for k, p in enumerate(protocols)}
    rest.sort(key=lambda job: (rank[job[0]], -costs.get(job, 0.0)))  # stable: equal costs keep grid order
    return first + rest


def _label(protocol: str, method: str, seed: int) -> str:
    return f"{protocol:<6} {method:<21} seed {seed}"


def _save_lengths(
    record: dict[str, Any], stores: dict[int, RunStore], lengths: Sequence[int], iterations: int
) -> dict[int, dict[str, Any]]:
    """A finished run's record, and one per shorter horizon scored on the way, each saved
    under its store's key; ``{length: record}``."""
    early = record.pop("horizons", {})
    found = {}
    for h in lengths:
        if h != iterations:
            found[h] = {**record, **early[h], "best_iteration": h if record["best_iteration"] else 0, "horizon_of": iterations}
    found[iterations] = record
    for h in lengths:
        found[h]["key"] = stores[h].key
        stores[h].save(found[h])
    return found


def _scores_text(found: dict[int, dict[str, Any]], horizons: Sequence[int]) -> str:
    """``macro-F1 0.512`` or, with horizons, ``macro-F1 at 100: 0.512, 200: ...``."""
    if not horizons:
        return f"macro-F1 {next(iter(found.values()))['macro_f1']:.3f}"
    return "macro-F1 at " + ", ".join(f"{h}: {r['macro_f1']:.3f}" for h, r in found.items())


def run_benchmark(
    config: BenchmarkConfig,
    out: str | os.PathLike,
    *,
    data: BenchmarkData | None = None,
    progress: bool = True,
    max_runs: int | None = None,
    echo: bool = True,
    encoder: Any = None,
    workers: int | None = 1,
    threads: int | None = None,
    ray_address: str | None = None,
):
    """Run every (protocol, method, seed) of ``config`` not yet finished in ``out``, then write
    the outputs.

    Each finished run is saved at once (atomically) under ``out/runs/<key>/``; a rerun skips it.
    ``data``: featurized tasks to use instead of loading ``config.dataset``; ``encoder``: an
    encoder object to use instead of ``config.encoder``. ``max_runs`` stops after that many new
    runs (returns ``None`` then, writing no table). ``workers``: runs at once, each in its own
    process (:func:`~l2l_taskmix.benchmark.workers.make_executor`; ``None``: as many as the
    cores allow); the numbers do not depend on it. ``threads``: torch threads per run (default:
    this process's count). ``ray_address``: run on Ray instead (``"local"``: a new local
    instance, shut down at the end; else a cluster's address): featurization through encoder
    actors (:class:`~l2l_taskmix.features.on_ray.RayEncoder`) and each run a Ray task
    (:class:`~l2l_taskmix.benchmark.workers.RayWorkers`), with the same numbers.

    Returns:
        the summary ``DataFrame`` (``protocol, method, macro_f1_mean, macro_f1_std, seeds``), or
        ``None`` when stopped early by ``max_runs``.
    """
    checked = check_executor(workers, threads)  # before the data are loaded
    out = check_writable(out, "--out", need_bytes=OUT_BYTES)  # before any compute is spent
    tracker = CommandProgress(config, slots=checked[0] or default_workers(checked[1]), progress=progress)
    try:
        with ray_session(ray_address) as on_ray:
            if data is None:
                begin = time.perf_counter()
                data = load_data(config, encoder, on_ray=on_ray, progress=progress, tracker=tracker)
                if echo and tracker.texts_total:
                    _log(f"data: features of {tracker.texts_total:,} distinct texts ready after {time.perf_counter() - begin:.0f} s")
            if echo:
                for note in data_notes(data.info):
                    _log(f"data: {note}")
            with make_executor(data, workers, threads, progress=progress, ray_address=ray_address, device=config.device) as executor:
                tracker.set_slots(executor.slots)
                if not tracker.costs:
                    tracker.plan(len(data.train), len(data.test))
                if echo:
                    _log(
                        f"{len(tracker.jobs)} runs, {executor.slots} at a time; {tracker.left_text()} (an estimate, updated as runs finish)"
                    )
                runs, new, store = run_grid(
                    config, out, data, progress=progress, max_runs=max_runs, echo=echo, executor=executor, tracker=tracker
                )
    finally:
        tracker.close()
    if len(runs) < len(config.protocols) * len(config.methods) * config.seeds:
        if echo:
            _log(f"stopped after {new} new run(s) (--max-runs); run the same command again to continue")
        return None
    data_info = dict(data.info)
    data_info["run_key"] = store.key
    data_info["runs_folder"] = str(store.folder)
    record = config.to_dict()
    if encoder is not None:  # an encoder object was used, not config.encoder
        record["encoder"] = str(data.info.get("encoder") or type(encoder).__name__)
    summary = summarize(runs, config.methods)
    if echo:  # the table first: writing the plots takes a few seconds
        features = "precomputed features" if is_feature_file(config.dataset) else f"{record['encoder']} features"
        print(f"\nAverage Macro F1 on {config.dataset} ({features}); {config.regime}\n")
        print(markdown_table(summary))
        print(f"\n{protocol_words(config.iterations, config.val_tasks)}")
        print(f"\n{rounding_words()}")
        print("\nPaired differences (per seed: same splits, validation tasks and draws):\n")
        print(paired_table(paired_differences(runs, config.methods)), flush=True)
    written = write_outputs(out, runs, record, config.regime, data=data_info, methods=list(config.methods))
    if echo:
        print(f"\nWrote {written['markdown']}, " + ", ".join(p.name for kind, p in written.items() if kind != "markdown"))
    return summary


def load_data(
    config: BenchmarkConfig,
    encoder: Any = None,
    on_ray: bool = False,
    progress: bool = True,
    num_train: int | str | None = None,
    tracker: CommandProgress | None = None,
) -> BenchmarkData:
    """``config.dataset`` featurized (cached) with ``encoder`` (an object) or ``config.encoder``;
    ``on_ray``: the texts not yet cached through encoder actors on the connected Ray cluster
    (the same features). ``progress``: the progress bar of an encoder built here by name.
    ``num_train``: instead of ``config.num_train`` (``"all"``: every task of a task table).
    ``tracker``: told the tasks and featurization's progress (the command's estimate)."""
    values = config.kwargs_for(load_features)
    if tracker is not None:
        values.update(on_tasks=tracker.plan, on_progress=tracker.encoded)
    if num_train is not None:
        values["num_train"] = num_train
    if not is_feature_file(config.dataset) and (encoder is None or isinstance(encoder, (str, os.PathLike))):
        encoder = get_encoder(encoder if encoder is not None else config.encoder, device=config.device, progress=progress)
    if on_ray and encoder is not None:
        from ..features.on_ray import RayEncoder

        encoder = RayEncoder(encoder)
    return load_features(**(values if encoder is None else {**values, "encoder": encoder}))
