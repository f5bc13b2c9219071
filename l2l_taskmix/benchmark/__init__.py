"""The paper's benchmark: six methods, meta-trained and fine-tuned on intent tasks, as one table.

Layers, each importing only those above it in this list (and the core, data and feature
layers): :mod:`~l2l_taskmix.benchmark.settings` (the typed groups of settings a trial hands
down), :mod:`~l2l_taskmix.benchmark.methods` (the six methods as strategies),
:mod:`~l2l_taskmix.benchmark.config` (the settings), :mod:`~l2l_taskmix.benchmark.training`
(the one loop), :mod:`~l2l_taskmix.benchmark.evaluation` (fine-tune and macro-F1),
:mod:`~l2l_taskmix.benchmark.statistics` (means, paired differences),
:mod:`~l2l_taskmix.benchmark.store` (the resume store of finished runs),
:mod:`~l2l_taskmix.benchmark.report` (tables, figures, the output files),
:mod:`~l2l_taskmix.benchmark.datasets` (dataset name -> features),
:mod:`~l2l_taskmix.benchmark.workers` (where runs execute),
:mod:`~l2l_taskmix.benchmark.progress` (the command's bar, estimate of the time left and reporter),
:mod:`~l2l_taskmix.benchmark.run` (one run), :mod:`~l2l_taskmix.benchmark.grid` (every run of a
configuration, resumable), :mod:`~l2l_taskmix.benchmark.runner` (the benchmark command: data, grid, outputs),
:mod:`~l2l_taskmix.benchmark.sweep` (one setting varied), :mod:`~l2l_taskmix.benchmark.tune`
(each method's settings searched on meta-validation tasks), :mod:`~l2l_taskmix.benchmark.artifact`
(the model folder) and :mod:`~l2l_taskmix.benchmark.classifier` (a meta-trained model adapted to
a new task); :mod:`~l2l_taskmix.benchmark.paper` holds the paper's published tables.

Example::

    >>> from l2l_taskmix.benchmark import METHOD_NAMES, BenchmarkConfig
    >>> BenchmarkConfig().methods == METHOD_NAMES
    True
"""

import importlib

#: Each public name and the module that defines it. They load on first use, so that
#: ``import l2l_taskmix.benchmark.config`` (the command line's flags) needs neither pandas nor
#: scikit-learn: a base install without the ``benchmark`` extra can say what to install.
_EXPORTS = {
    "BenchmarkConfig": "config",
    "load_config_file": "config",
    "BenchmarkData": "datasets",
    "load_split": "datasets",
    "load_features": "datasets",
    "save_feature_split": "datasets",
    "load_feature_split": "datasets",
    "Method": "methods",
    "METHODS": "methods",
    "METHOD_NAMES": "methods",
    "get_method": "methods",
    "train": "training",
    "TrainResult": "training",
    "evaluate": "evaluation",
    "make_splits": "evaluation",
    "RunStore": "store",
    "summarize": "statistics",
    "markdown_table": "report",
    "write_outputs": "report",
    "run_method": "run",
    "run_benchmark": "runner",
    "run_grid": "grid",
    "run_sweep": "sweep",
    "run_tune": "tune",
    "FewShotIntentClassifier": "classifier",
    "meta_train": "classifier",
    "MetaTrainedModel": "artifact",
    "PROTOCOLS": "config",
    "PAPER_TABLES": "paper",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
