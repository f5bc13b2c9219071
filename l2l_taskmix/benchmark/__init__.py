"""The paper's benchmark: six methods, meta-trained and fine-tuned on intent tasks, as one table.

Layers, each importing only those above it in this list (and the core, data and feature
layers): :mod:`~l2l_taskmix.benchmark.methods` (the six methods as strategies),
:mod:`~l2l_taskmix.benchmark.config` (the settings), :mod:`~l2l_taskmix.benchmark.training`
(the one loop), :mod:`~l2l_taskmix.benchmark.evaluation` (fine-tune and macro-F1),
:mod:`~l2l_taskmix.benchmark.results` (run store, tables, plot),
:mod:`~l2l_taskmix.benchmark.datasets` (dataset name -> features) and
:mod:`~l2l_taskmix.benchmark.runner` (runs and outputs).

Example::

    >>> from l2l_taskmix.benchmark import METHOD_NAMES, BenchmarkConfig
    >>> BenchmarkConfig().methods == METHOD_NAMES
    True
"""
from .config import BenchmarkConfig, load_config_file
from .datasets import BenchmarkData, load_feature_split, load_features, load_split, save_feature_split
from .evaluation import evaluate, make_splits
from .methods import METHOD_NAMES, METHODS, Method, get_method
from .results import RunStore, markdown_table, summarize, write_outputs
from .runner import run_benchmark, run_method
from .training import TrainResult, train

__all__ = [
    "BenchmarkConfig",
    "load_config_file",
    "BenchmarkData",
    "load_split",
    "load_features",
    "save_feature_split",
    "load_feature_split",
    "Method",
    "METHODS",
    "METHOD_NAMES",
    "get_method",
    "train",
    "TrainResult",
    "evaluate",
    "make_splits",
    "RunStore",
    "summarize",
    "markdown_table",
    "write_outputs",
    "run_method",
    "run_benchmark",
]
