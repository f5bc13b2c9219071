"""The benchmark command: the data, where runs execute, the grid of runs, then the outputs.

:func:`run_benchmark` loads and featurizes the data (:func:`load_data`), makes the executor
(:mod:`~l2l_taskmix.benchmark.workers`), runs every (protocol, method, seed) not yet finished
(:func:`~l2l_taskmix.benchmark.grid.run_grid`; one run is
:func:`~l2l_taskmix.benchmark.run.run_method`) and writes the table, CSV, JSON and plots. All it
says goes through the command's reporter (:class:`~l2l_taskmix.benchmark.progress.CommandProgress`).

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

import os
import time
from typing import Any

from ..cluster import ray_session
from ..features import get_encoder
from ..files import check_writable
from .config import BenchmarkConfig, is_feature_file
from .datasets import BenchmarkData, load_features
from .grid import run_grid
from .progress import CommandProgress
from .report import data_notes, markdown_table, paired_table, protocol_words, rounding_words, write_outputs
from .statistics import paired_differences, summarize
from .workers import check_executor, default_workers, make_executor

__all__ = ["run_benchmark", "load_data", "OUT_BYTES"]

#: Free space the output folder must have before a benchmark starts: the run records, tables,
#: JSON and the plot of a large grid take a few MB.
OUT_BYTES = 16 * 2**20


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
                    tracker.log(f"data: features of {tracker.texts_total:,} distinct texts ready after {time.perf_counter() - begin:.0f} s")
            if echo:
                for note in data_notes(data.info):
                    tracker.log(f"data: {note}")
            with make_executor(data, workers, threads, progress=progress, ray_address=ray_address, device=config.device) as executor:
                tracker.set_slots(executor.slots)
                if not tracker.costs:
                    tracker.plan(len(data.train), len(data.test))
                if echo:
                    tracker.log(
                        f"{len(tracker.jobs)} runs, {executor.slots} at a time; {tracker.left_text()} (an estimate, updated as runs finish)"
                    )
                runs, new, store = run_grid(
                    config, out, data, progress=progress, max_runs=max_runs, echo=echo, executor=executor, tracker=tracker
                )
    finally:
        tracker.close()
    if len(runs) < len(config.protocols) * len(config.methods) * config.seeds:
        if echo:
            tracker.log(f"stopped after {new} new run(s) (--max-runs); run the same command again to continue")
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
        tracker.results(
            f"\nAverage Macro F1 on {config.dataset} ({features}); {config.regime}\n\n"
            f"{markdown_table(summary)}\n"
            f"\n{protocol_words(config.iterations, config.val_tasks, config.to_dict()['per_method'])}\n"
            f"\n{rounding_words()}\n"
            "\nPaired differences (per seed: same splits, validation tasks and draws):\n\n"
            f"{paired_table(paired_differences(runs, config.methods))}"
        )
    written = write_outputs(out, runs, record, config.regime, data=data_info, methods=list(config.methods))
    if echo:
        tracker.results(f"\nWrote {written['markdown']}, " + ", ".join(p.name for kind, p in written.items() if kind != "markdown"))
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
    values: dict[str, Any] = dict(
        shots=config.shots, data_root=config.data_root, cache_dir=config.cache_dir, num_train=config.num_train, device=config.device
    )
    if tracker is not None:
        values.update(on_tasks=tracker.plan, on_progress=tracker.encoded)
    if num_train is not None:
        values["num_train"] = num_train
    if not is_feature_file(config.dataset) and (encoder is None or isinstance(encoder, (str, os.PathLike))):
        encoder = get_encoder(encoder if encoder is not None else config.encoder, device=config.device, progress=progress)
    if on_ray and encoder is not None:
        from ..features.on_ray import RayEncoder

        encoder = RayEncoder(encoder)
    return load_features(config.dataset, encoder=config.encoder if encoder is None else encoder, **values)
