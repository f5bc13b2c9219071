"""The grid: every (protocol, method, seed) run of a configuration, resumable.

:func:`run_grid` runs every (protocol, method, seed) not yet finished in an output folder's
run store, saving each at once, in the start order of :func:`_start_order`; each run is a job
(:func:`run_job`) that an executor of :mod:`~l2l_taskmix.benchmark.workers` runs, here or in
worker processes, and that saves its own record (and one per shorter horizon scored on the
way). What the grid says goes through the command's reporter
(:class:`~l2l_taskmix.benchmark.progress.CommandProgress`).

Example, with precomputed features of four tiny tasks::

    >>> import tempfile, torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
    >>> from l2l_taskmix.benchmark.grid import run_grid
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> data = BenchmarkData([task("a"), task("b"), task("c")], [task("z")])
    >>> cfg = BenchmarkConfig(methods=("transfer", "maml"), seeds=1, iterations=2, batch_size=4, hidden=(16,),
    ...                       protocols=("paper",), finetune_steps=5)
    >>> out = tempfile.mkdtemp()
    >>> runs, new, store = run_grid(cfg, out, data, progress=False, echo=False)
    >>> [r["method"] for r in runs], new, run_grid(cfg, out, data, progress=False, echo=False)[1]
    (['transfer', 'maml'], 2, 0)
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..validation import check_device, check_scalar
from .config import BenchmarkConfig
from .datasets import BenchmarkData
from .progress import CommandProgress
from .report import PROTOCOL_TITLES, markdown_table
from .run import run_key, run_method
from .statistics import summarize
from .store import RunStore
from .workers import InProcess

__all__ = ["run_grid", "run_job"]


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

    Each method runs with its own settings (:meth:`~l2l_taskmix.benchmark.config.BenchmarkConfig.for_method`:
    the config's ``per_method`` section over the shared values), and its runs are stored under
    the key of those settings, so a method without a section of its own reuses the runs of the
    shared settings.

    Returns ``(runs, new, store)``: the run records in grid order, how many were run now, and
    the store of ``config``'s shared settings. With ``max_runs``, stops after that many new runs (``runs``
    is then incomplete: compare its length with the grid's).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    lengths = sorted({check_scalar(h, "horizon", int, min_val=1) for h in horizons} | {config.iterations})
    if horizons and config.protocols != ("paper",):
        raise ValueError("scoring shorter horizons on the way evaluates the weights after each: give --protocols paper")
    settings = {m: config.for_method(m) for m in config.methods}  # each method's own settings (per_method)
    if horizons:
        for m, cfg in settings.items():
            if cfg.iterations != config.iterations:
                raise ValueError(
                    f"per_method.{m} sets iterations={cfg.iterations}: scoring horizons on the way needs one iteration count "
                    "for every method; remove it from the config file's per_method section"
                )
    executor = executor if executor is not None else InProcess(data, progress=progress)
    # "auto" is decided where the runs execute: this machine, or the Ray cluster's GPUs
    device = check_device(config.device, "device", cuda_available=getattr(executor, "cuda_available", None))
    ends = {m: cfg.iterations for m, cfg in settings.items()}  # each method's run length
    stores = {
        m: {
            h: RunStore(out, run_key(cfg.replace(iterations=h), data, device))
            for h in sorted(set(lengths) - {config.iterations} | {ends[m]})
        }
        for m, cfg in settings.items()
    }
    # what a job writes into: absolute, since a worker's working directory need not be this one's (Ray)
    job_stores = {m: {h: RunStore(os.path.abspath(out), store.key) for h, store in by_length.items()} for m, by_length in stores.items()}
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
        loaded = {h: store.load(job[1], job[2], job[0]) for h, store in stores[job[1]].items()}
        if all(r is not None for r in loaded.values()):
            found[job] = loaded
            tracker.reused(job)
            if echo:
                tracker.log(f"{_label(*job)}: {_scores_text(loaded, horizons)}  (finished earlier, reused)")
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
                inflight[executor.submit(run_job, method, seed, settings[method], protocol, job_stores[method], str(device))] = job
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in done:
                job = inflight.pop(future)
                found[job] = _stored(future.result(), stores[job[1]])
                new += 1
                record = found[job][ends[job[1]]]
                tracker.run_finished(job, record["seconds"])
                pending[job[0]] -= 1
                if echo:
                    best = (
                        f"best iteration {record['best_iteration']}/{ends[job[1]]}, " if job[0] == "select" and job[1] != "transfer" else ""
                    )
                    left = f"; {tracker.left_text()}" if queue or inflight else ""
                    tracker.log(f"{_label(*job)}: {_scores_text(found[job], horizons)}  ({best}{record['seconds']:.0f} s{left})")
                    if pending[job[0]] == 0 and (queue or inflight) and not horizons:
                        column = [found[j][ends[j[1]]] for j in grid if j[0] == job[0]]
                        tracker.log(
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
        runs += [{**found[job][h], "horizon": h} for h in lengths] if horizons else [found[job][ends[job[1]]]]
    return runs, new, RunStore(out, run_key(config.replace(per_method=()), data, device))


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

    def waiting() -> None:  # in whichever process runs the job: a reporter of its own, for this line
        reporter = CommandProgress(config, progress=False)
        reporter.log(f"{_label(protocol, method, seed)}: another process is computing this run; waiting to reuse it")

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
