"""Per-method hyperparameter search on meta-validation tasks: ``l2l-taskmix tune``.

Every method gets the same budget: ``trials`` complete trials of its own search space
(:attr:`~l2l_taskmix.benchmark.methods.Method.space`, declared next to the method), each
scored over the same ``seeds``. A trial is a function of its settings and nothing else
(:func:`score_settings`): for each seed, the model-selection protocol's split of the
meta-training tasks (``val_tasks`` held out, as the benchmark's ``select`` runs hold them out),
meta-training on the rest with the trial's settings, and the macro-F1 of the *final* weights on
the held-out meta-validation tasks (fine-tuned on ``val_repeats`` support/test draws each). The
trial's value is the mean over seeds. The meta-test tasks are never used: only their class
count, so that the model's head has the benchmark's width.

The engine is Optuna (imported inside the functions: ``import l2l_taskmix.benchmark`` does not
load it): one study per method in ``OUT/study.journal`` (a journal file, appended to, so a
killed study resumes where it stopped), sampled by TPE seeded from ``seed``, the method and the
number of finished trials, made afresh for each ask, so that a resumed study draws what an
uninterrupted one would. Trials run through the benchmark's executors
(:mod:`~l2l_taskmix.benchmark.workers`: here, worker processes or Ray tasks), several at once
where there are slots. After each finished trial ``OUT/trials.csv``, ``OUT/best.yaml`` (what
``l2l-taskmix benchmark --config`` reads: the ``per_method`` section), ``OUT/trials.png`` and
``OUT/study.json`` are rewritten whole.

Example, with precomputed features of five tiny tasks and a narrow space::

    >>> import tempfile, torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
    >>> from l2l_taskmix.benchmark.methods import SearchParam
    >>> from l2l_taskmix.benchmark.tune import run_tune
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(24, 8, generator=g), torch.arange(24) % 3, ["a", "b", "c"])
    >>> data = BenchmarkData([task(f"t{k}") for k in range(4)], [task("z")])
    >>> cfg = BenchmarkConfig(seeds=1, iterations=4, batch_size=4, hidden=(8,), val_tasks=1, finetune_steps=3)
    >>> space = {"maml": (SearchParam("inner_lr", 0.05, 0.5, log=True),)}
    >>> best = run_tune(cfg, tempfile.mkdtemp(), methods=["maml"], trials=2, data=data, space=space, progress=False, echo=False)
    >>> sorted(best["maml"])
    ['inner_lr']
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..files import atomic_write, check_writable, file_lock
from ..validation import check_scalar, short_repr
from .config import RESULT_FIELDS, BenchmarkConfig
from .datasets import BenchmarkData
from .methods import METHOD_NAMES, SearchParam, get_method

__all__ = ["run_tune", "score_settings", "trial_job", "check_space", "TUNE_INSTALL", "STARTUP_TRIALS", "DIVERGED", "OUT_FILES"]

#: How to install the optional dependency (Optuna).
TUNE_INSTALL = "pip install 'l2l-taskmix[tune]'"
#: TPE's random start: trials per method drawn at random before TPE models the results (Optuna's
#: default is 10; budgets here are 10 to 30 trials, so half that leaves TPE something to do).
STARTUP_TRIALS = 5
#: The score of a seed whose training or fine-tuning diverges (a ``FloatingPointError``): the
#: worst macro-F1, so that TPE learns to avoid such settings; the trial counts as any other.
DIVERGED = 0.0
#: What the command writes into its output folder.
OUT_FILES = ("study.journal", "trials.csv", "best.yaml", "trials.png", "study.json")
#: Free space the output folder must have: the journal, the table and the figure take under 1 MB.
OUT_BYTES = 4 * 2**20
#: Settings a study's value does not depend on: tune sets ``eval_every`` to the trial's
#: iterations (one validation check, on the final weights); the others do not change a run.
_NOT_DECIDING = ("methods", "protocols", "cache_dir", "device", "per_method", "eval_every", "test_draws")  # test_draws: meta-test only


def import_optuna():
    """Optuna, or ``ModuleNotFoundError`` naming :data:`TUNE_INSTALL` (the command line turns it
    into its missing-dependency message)."""
    try:
        import optuna
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"l2l-taskmix tune needs Optuna; install it with: {TUNE_INSTALL}", name="optuna") from err
    return optuna


def check_space(method: str, space: Sequence[SearchParam], config: BenchmarkConfig) -> tuple[SearchParam, ...]:
    """``space`` checked for ``method``: names from ``config.METHOD_FIELDS``, each once,
    ``low <= high`` (``low > 0`` on a log scale), and both bounds accepted by the setting's own
    check (``config.per_method``'s)."""
    from .config import METHOD_FIELDS

    space = tuple(space)
    names = [p.name for p in space]
    for param in space:
        if not isinstance(param, SearchParam):
            raise TypeError(f"the search space of {method} must hold SearchParam items, got {type(param).__name__}")
        if param.name not in METHOD_FIELDS:
            raise ValueError(
                f"the search space of {method} names {short_repr(param.name)}, not a per-method setting ({', '.join(METHOD_FIELDS)})"
            )
        if names.count(param.name) > 1:
            raise ValueError(f"the search space of {method} gives {param.name} twice")
        if not param.low <= param.high or (param.log and param.low <= 0):
            raise ValueError(f"the search space of {method}: {param.describe()} is empty or not positive on a log scale")
        _check_grid(method, param)
        for value in (param.low, param.high):
            value = int(value) if param.integer else float(value)
            config.replace(per_method={method: {param.name: value}})  # the setting's own check, naming it
    return space


def _check_grid(method: str, param: SearchParam) -> None:
    """``param``'s whole-number grid as Optuna takes it unchanged: whole bounds, a ``step`` only
    with ``integer``, a positive whole number that divides ``high - low``, and no step on a log
    scale."""
    where = f"the search space of {method}: {param.name}"
    if not param.integer:
        if param.step is not None:
            raise ValueError(f"{where}: a step needs integer=True (a number is drawn from the whole range), got step {param.step!r}")
        return
    if any(isinstance(v, bool) or not float(v).is_integer() for v in (param.low, param.high)):
        raise ValueError(f"{where}: the bounds of a whole number must be whole, got [{param.low!r}, {param.high!r}]")
    if param.step is None:
        return
    if isinstance(param.step, bool) or not isinstance(param.step, int) or param.step < 1:
        raise ValueError(f"{where}: step {param.step!r} must be a positive whole number")
    if param.log and param.step > 1:
        raise ValueError(
            f"{where}: a log scale takes no step (Optuna draws whole numbers on a log scale with step 1), got step {param.step}"
        )
    if (int(param.high) - int(param.low)) % param.step:
        raise ValueError(
            f"{where}: {int(param.high)} - {int(param.low)} is not a multiple of the step {param.step}; give a high bound on the grid"
        )


def _head_width(data: BenchmarkData) -> int:
    """The benchmark's head: the largest class count over the meta-training and meta-test tasks
    (the meta-test tasks' class counts are all a study reads of them)."""
    return max(t.num_classes for t in list(data.train) + list(data.test))


def score_settings(
    method: str,
    settings: Mapping[str, Any],
    config: BenchmarkConfig,
    data: BenchmarkData,
    seeds: int,
    head_width: int | None = None,
    diverged: float | None = None,
    device: str | None = None,
) -> list[float]:
    """The validation macro-F1 of ``method`` at ``settings`` (over ``config.for_method(method)``)
    for each seed ``0 .. seeds-1``: the model-selection protocol's split of ``data.train``
    (``config.val_tasks`` held out), meta-training on the rest, and the final weights
    fine-tuned and scored on the held-out tasks (``val_repeats`` draws each). ``data.test`` is
    not used (``head_width``: the head's outputs, default the largest class count of both sides,
    the benchmark's model). A seed whose training or fine-tuning diverges (``FloatingPointError``)
    raises, or with ``diverged`` set scores that (the tuner gives such settings 0, the worst
    macro-F1, so that TPE learns to avoid them). ``device``: where the seeds train and are scored
    (default ``config.device``, ``"auto"`` decided here)."""
    from ..validation import check_device
    from .run import fit_run, validation_scorer

    method = get_method(method).name
    if config.val_tasks < 1:
        raise ValueError("val_tasks == 0: tuning scores settings on held-out meta-validation tasks; give --val-tasks 1 or more")
    head_width = head_width if head_width is not None else _head_width(data)
    device = check_device(config.device if device is None else device, "device")
    base = config.for_method(method).replace(**dict(settings))
    cfg = base.replace(eval_every=base.iterations)  # one check, on the final weights
    scores = []
    for seed in range(int(seeds)):
        try:
            run = fit_run(method, seed, data.train, [], cfg, protocol="select", head_width=head_width, device=device, progress=False)
            if run.trained.best_score is not None:
                scores.append(float(run.trained.best_score))
            else:  # transfer: nothing trains, the initial weights are fine-tuned on the validation tasks
                scorer = validation_scorer(get_method(method), run.val_side, seed=seed, validation=cfg.validation, finetune=cfg.finetune)
                scores.append(float(scorer(run.trained.model)))
        except FloatingPointError:
            if diverged is None:
                raise
            scores.append(float(diverged))
    return scores


def trial_job(
    data: BenchmarkData,
    method: str,
    settings: dict[str, Any],
    config: BenchmarkConfig,
    seeds: int,
    head_width: int,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """One trial on ``data``, what an executor of :mod:`~l2l_taskmix.benchmark.workers` calls:
    ``{"values": per-seed scores, "seconds": wall time}``; ``device``: where it runs."""
    begin = time.perf_counter()
    values = score_settings(method, settings, config, data, seeds, head_width=head_width, diverged=DIVERGED, device=device)
    return {"values": values, "seconds": round(time.perf_counter() - begin, 3)}


def _sampler_seed(seed: int, method: str, asked: int) -> int:
    """The seed of the sampler that draws ``method``'s trial after ``asked`` others (finished or
    in flight): a resumed study draws what an uninterrupted one would."""
    text = f"{int(seed)}|{method}|{int(asked)}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _fingerprint(
    method: str,
    config: BenchmarkConfig,
    seeds: int,
    data_key: str,
    space: Sequence[SearchParam],
    sampler_seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """What decides a trial's value in ``method``'s study, and the sampler's seed (what decides
    which settings its trials draw). The kind of ``device`` the trials run on is added where it is
    not the CPU (a GPU's numbers differ by float rounding), as in a run's key."""
    import torch

    values = config.for_method(method).to_dict()
    shared = {k: values[k] for k in RESULT_FIELDS if k not in _NOT_DECIDING}
    kind = torch.device(device).type
    return {
        **({"device": kind} if kind != "cpu" else {}),
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in shared.items()},
        "seeds": int(seeds),
        "data": data_key,
        "space": [p.describe() for p in space],
        "sampler_seed": int(sampler_seed),
    }


def _check_fingerprint(study: Any, method: str, want: dict[str, Any], out: Path) -> None:
    have = study.user_attrs.get("fingerprint")
    if have is None:
        study.set_user_attr("fingerprint", want)
        return
    if "sampler_seed" not in have:  # a fingerprint without it: the seed study.json records
        have = {**have, "sampler_seed": _recorded_sampler_seed(out, want["sampler_seed"])}
    differ = [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
    if differ:
        shown = "; ".join(f"{k}: {short_repr(have.get(k))} there, {short_repr(want.get(k))} now" for k in differ[:4])
        raise ValueError(
            f"--out {out} holds a study of {method} under other settings ({shown}); its trials would not compare with new "
            "ones: give the same settings to resume it, or another --out"
        )


def _recorded_sampler_seed(out: Path, default: int) -> Any:
    """The sampler's seed ``out/study.json`` records, ``default`` where it records none."""
    try:
        return json.loads((out / "study.json").read_text()).get("sampler_seed", default)
    except (OSError, ValueError, AttributeError):
        return default


def _distributions(optuna: Any, space: Sequence[SearchParam]) -> dict[str, Any]:
    d = optuna.distributions
    out = {}
    for p in space:
        if p.integer:
            out[p.name] = d.IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            out[p.name] = d.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


class _Reporter:
    """The command's console output: one bar over every method's trials, with the time left,
    and one line per finished trial."""

    def __init__(self, total: int, done: int, slots: int, progress: bool, echo: bool) -> None:
        self.total, self.done, self.slots, self.echo = total, done, max(1, slots), echo
        self.seconds: dict[str, list[float]] = {}
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True)

    def log(self, message: str) -> None:
        if not self.echo:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def left_text(self, remaining: Mapping[str, int]) -> str:
        every = [s for values in self.seconds.values() for s in values]
        if not every:
            return "time left: estimated after the first trial"
        total = sum(n * float(np.mean(self.seconds.get(m) or every)) for m, n in remaining.items())
        left = total / self.slots
        return f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left"

    def finished(
        self, method: str, number: int, value: float | None, best: float | None, seconds: float, remaining: Mapping[str, int]
    ) -> None:
        self.seconds.setdefault(method, []).append(seconds)
        self.done += 1
        left = self.left_text(remaining)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(left, refresh=False)
        score = "failed" if value is None else f"validation macro-F1 {value:.3f}"
        self.log(
            f"{method:<21} trial {number:>3}: {score} (best {best:.3f}; {seconds:.0f} s; {left})"
            if best is not None
            else f"{method:<21} trial {number:>3}: {score} ({seconds:.0f} s)"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_tune(
    config: BenchmarkConfig,
    out: str | os.PathLike,
    *,
    methods: Sequence[str] | None = None,
    trials: int = 20,
    seed: int = 0,
    data: BenchmarkData | None = None,
    space: Mapping[str, Sequence[SearchParam]] | None = None,
    workers: int | None = 1,
    threads: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    echo: bool = True,
    command: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Tune each of ``methods`` (default ``config.methods``) with ``trials`` complete trials of
    ``config.seeds`` seeds each, resuming the study in ``out``; write the outputs; return each
    method's best settings.

    ``space``: search spaces to use instead of the methods' own (``{method: (SearchParam,
    ...)}``; a narrow one for a quick study). ``workers``, ``threads``, ``ray_address``: where
    trials run, as the benchmark's runs (:func:`~l2l_taskmix.benchmark.workers.make_executor`).
    ``seed``: the sampler's. ``command``: the command line, for the outputs' header.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    from ..cluster import ray_session
    from ..validation import check_device
    from .runner import load_data
    from .store import data_fingerprint
    from .workers import check_executor, make_executor

    optuna = import_optuna()
    trials = check_scalar(trials, "trials", int, min_val=1, max_val=100_000)
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=2**31 - 1)
    if config.val_tasks < 1:
        raise ValueError("val_tasks == 0: tuning scores settings on held-out meta-validation tasks; give --val-tasks 1 or more")
    methods = tuple(get_method(m).name for m in (methods or config.methods))
    spaces = {m: check_space(m, (space or {}).get(m, get_method(m).space), config) for m in methods}
    check_executor(workers, threads)
    out = check_writable(out, "--out", need_bytes=OUT_BYTES)
    started = datetime.now(timezone.utc)
    load_before, begin = _load(), time.perf_counter()

    def waiting() -> None:
        print(f"another l2l-taskmix tune is writing {out}; waiting for it to finish", file=sys.stderr, flush=True)

    with file_lock(out / ".tune.lock", on_wait=waiting), ray_session(ray_address) as on_ray:
        if data is None:
            data = load_data(config, on_ray=on_ray, progress=progress)
        if len(data.train) <= config.val_tasks:
            raise ValueError(f"val_tasks == {config.val_tasks} leaves no meta-training task out of {len(data.train)}; lower --val-tasks")
        head_width = _head_width(data)
        data_key = f"{data_fingerprint(data.train)}|head {head_width}"  # the meta-test side: its class count only
        with make_executor(data, workers, threads, progress=False, ray_address=ray_address, device=config.device) as executor:
            # "auto" is decided where the trials execute: this machine, or the Ray cluster's GPUs
            device = check_device(config.device, "device", cuda_available=getattr(executor, "cuda_available", None))
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
            studies = {}
            for m in methods:
                study = optuna.create_study(study_name=m, storage=storage, direction="maximize", load_if_exists=True)
                _check_fingerprint(study, m, _fingerprint(m, config, config.seeds, data_key, spaces[m], seed, device), out)
                _requeue_orphans(optuna, study, [p.name for p in spaces[m]])
                studies[m] = study
            dists = {m: _distributions(optuna, spaces[m]) for m in methods}

            def complete(m: str) -> int:
                return sum(t.state == optuna.trial.TrialState.COMPLETE for t in studies[m].get_trials(deepcopy=False))

            done = {m: complete(m) for m in methods}
            reporter = _Reporter(trials * len(methods), sum(min(trials, d) for d in done.values()), executor.slots, progress, echo)
            if any(done.values()):
                reporter.log(f"resumed: {sum(done.values())} finished trial(s) in {out / 'study.journal'} are kept")
            write = dict(out=out, studies=studies, spaces=spaces, config=config, command=command, trials=trials, seed=seed)
            inflight: dict[Any, tuple[str, Any, dict[str, Any]]] = {}
            try:
                while True:
                    while len(inflight) < executor.slots:
                        m = _next_method(methods, done, inflight, trials)
                        if m is None:
                            break
                        study = studies[m]
                        asked = done[m] + sum(job[0] == m for job in inflight.values())  # this trial's place in the method's study
                        study.sampler = optuna.samplers.TPESampler(
                            seed=_sampler_seed(seed, m, asked), n_startup_trials=STARTUP_TRIALS, constant_liar=True
                        )
                        trial = study.ask(dists[m])
                        settings = dict(trial.params)
                        future = executor.submit(trial_job, m, settings, config, config.seeds, head_width, str(device))
                        inflight[future] = (m, trial, settings)
                    if not inflight:
                        break
                    finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                    for future in finished:
                        m, trial, settings = inflight.pop(future)
                        study = studies[m]
                        result = future.result()
                        trial.set_user_attr("seed_values", result["values"])
                        trial.set_user_attr("seconds", result["seconds"])
                        study.tell(trial, float(np.mean(result["values"])))
                        done[m] += 1
                        best = study.best_value
                        remaining = {k: max(0, trials - done[k]) for k in methods}
                        reporter.finished(m, trial.number, float(np.mean(result["values"])), best, result["seconds"], remaining)
                        _write_outputs(**write, session=_session(command, started, begin, load_before))
            finally:
                reporter.close()
        best = _write_outputs(**write, session=_session(command, started, begin, load_before))
    if echo:
        print(f"Wrote {out / 'best.yaml'} (use it with: l2l-taskmix benchmark --config {out / 'best.yaml'}), trials.csv, trials.png")
    return best


def _session(command: str | None, started: datetime, begin: float, load_before: list[float] | None) -> dict[str, Any]:
    return {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - begin, 1),
        "load_before": load_before,
        "load_after": _load(),
    }


def _next_method(methods: Sequence[str], done: Mapping[str, int], inflight: Mapping[Any, tuple], trials: int) -> str | None:
    """The method whose next trial starts now: among those with trials still to start, one with
    none in flight if there is one (its trials then run one after another, so the study does not
    depend on the number of workers), the most trials still to start first."""
    running = {m: sum(job[0] == m for job in inflight.values()) for m in methods}
    open_ = [m for m in methods if done[m] + running[m] < trials]
    if not open_:
        return None
    idle = [m for m in open_ if running[m] == 0] or open_
    return max(idle, key=lambda m: (trials - done[m] - running[m], -methods.index(m)))


def _requeue_orphans(optuna: Any, study: Any, names: Sequence[str]) -> None:
    """Trials a killed process left running: failed, and their settings asked again first, so no
    sampled point is lost and no finished trial runs twice. An orphan whose settings a killed
    resume already queued is only failed: queued twice, they would run twice. An orphan killed
    while its settings were drawn (without every one of ``names``) is only failed too: the next
    ask, under the same sampler seed, draws it again whole, as the uninterrupted study did."""
    queued = {t.user_attrs.get("rerun_of") for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.number not in queued and set(names) <= set(trial.params):
            study.enqueue_trial(dict(trial.params), user_attrs={"rerun_of": trial.number})
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _write_outputs(
    out: Path,
    studies: Mapping[str, Any],
    spaces: Mapping[str, Sequence[SearchParam]],
    config: BenchmarkConfig,
    command: str | None,
    trials: int,
    seed: int,
    session: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """``trials.csv``, ``best.yaml``, ``trials.png`` and ``study.json``, each written whole;
    each method's best settings."""
    import optuna

    rows, best, best_values = [], {}, {}
    names = list(dict.fromkeys(p.name for m in studies for p in spaces[m]))
    seeds = config.seeds
    for m, study in studies.items():
        finished = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.RUNNING and t.state != optuna.trial.TrialState.WAITING
        ]
        for t in finished:
            values = t.user_attrs.get("seed_values") or []
            row = {"method": m, "trial": t.number, "state": t.state.name, "value": "" if t.value is None else repr(float(t.value))}
            row.update({f"seed{k}": repr(float(values[k])) if k < len(values) else "" for k in range(seeds)})
            row.update({n: t.params.get(n, "") for n in names})
            row["seconds"] = t.user_attrs.get("seconds", "")
            rows.append(row)
        complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE][:trials]  # the budget, if --trials was lowered
        if complete:
            top = max(complete, key=lambda t: (t.value, -t.number))
            best[m] = {p.name: top.params[p.name] for p in spaces[m]}
            best_values[m] = float(top.value)
    text = io.StringIO()
    fieldnames = ["method", "trial", "state", "value", *[f"seed{k}" for k in range(seeds)], *names, "seconds"]
    writer = csv.DictWriter(text, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "trials.csv", text.getvalue())
    atomic_write(out / "best.yaml", _best_yaml(best, best_values, config, command, trials, seed))
    _plot(out / "trials.png", studies)
    _write_study_json(out, studies, config, trials, seed, session)
    return best


def _best_yaml(
    best: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, float],
    config: BenchmarkConfig,
    command: str | None,
    trials: int,
    seed: int,
) -> str:
    """``best.yaml``: the shared settings that differ from the defaults, and each method's
    ``per_method`` section (``best``, over the config's own sections); the header states each
    method's value of the trial chosen (``values``)."""
    import yaml

    defaults = BenchmarkConfig().to_dict()
    given = config.to_dict()
    shared = {k: given[k] for k in RESULT_FIELDS if k not in _NOT_DECIDING and given[k] != defaults[k]}
    shared = {k: (list(v) if isinstance(v, tuple) else v) for k, v in shared.items()}
    lines = [
        "# Per-method settings chosen by l2l-taskmix tune; use them with: l2l-taskmix benchmark --config THIS_FILE",
        f"# command: {command}" if command else "# command: l2l_taskmix.benchmark.tune.run_tune (Python)",
        f"# written: {datetime.now(timezone.utc).isoformat(timespec='seconds')} (l2l-taskmix {__version__})",
        f"# each method's best of {trials} trial(s), seed {seed} of the sampler; a trial's value is the mean over "
        f"{config.seeds} seed(s) of the validation macro-F1",
        f"# of the final weights on {config.val_tasks} meta-validation task(s) held out of the meta-training tasks "
        "(the meta-test tasks are never used)",
    ]
    for m, value in values.items():
        lines.append(f"#   {m}: {value:.4f}")
    body = dict(shared)
    per_method = {m: dict(s) for m, s in config.per_method}  # the input's sections: the study ran under them
    for m, s in best.items():
        per_method.setdefault(m, {}).update(s)
    body["per_method"] = {m: {k: _plain(v) for k, v in s.items()} for m, s in per_method.items() if s}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)


def _plain(value: Any) -> Any:
    """A setting's value as YAML writes it plainly: ``None``, a bool, a float or an int."""
    return value if value is None or isinstance(value, bool) else float(value) if isinstance(value, float) else int(value)


def _plot(path: Path, studies: Mapping[str, Any]) -> None:
    import optuna

    from .report import png_figure

    with png_figure(path, 120, figsize=(7, 4.2)) as (plt, fig, ax):
        for m in METHOD_NAMES:
            if m not in studies:
                continue
            values = [t.value for t in studies[m].get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
            if values:
                ax.plot(range(1, len(values) + 1), np.maximum.accumulate(values), marker="o", markersize=3, label=m)
        ax.set_xlabel("complete trials")
        ax.set_ylabel("best validation macro-F1 so far")
        ax.set_title("l2l-taskmix tune: each method's best meta-validation score")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)


def _write_study_json(
    out: Path, studies: Mapping[str, Any], config: BenchmarkConfig, trials: int, seed: int, session: dict[str, Any]
) -> None:
    """``study.json``: the study's budget and each session's command, start, wall time and load
    (sessions appended: a resumed study keeps the earlier ones)."""
    path = out / "study.json"
    sessions = []
    if path.exists():
        try:
            sessions = list(json.loads(path.read_text()).get("sessions", []))
        except (ValueError, AttributeError):
            sessions = []
    if sessions and sessions[-1].get("started") == session["started"]:
        sessions[-1] = session
    else:
        sessions.append(session)
    record = {
        "version": __version__,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "methods": list(studies),
        "trials": trials,
        "seeds": config.seeds,
        "sampler_seed": seed,
        "sessions": sessions,
    }
    atomic_write(path, json.dumps(record, indent=2) + "\n")
