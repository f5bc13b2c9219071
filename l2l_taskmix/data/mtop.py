"""MTOP: the release-layout loader and the paper's MTOP-Long and MTOP-Wide task splits.

MTOP's release layout is ``ROOT/{lang}/{train,eval,test}.txt``, one example per line, 8
tab-separated columns: ``id, intent, slots, utterance, domain, locale, decoupled form, tokens
json``. :func:`load_mtop` reads whichever split files are present, so the same code reads the
bundled six-language sample (``root=None``; eval + test only) and a full MTOP download.

* **MTOP-Long** (:func:`build_mtop_long`): one task per domain (11), all languages pooled;
  classes with >= 20 examples kept; 7 meta-training and 4 meta-testing tasks.
* **MTOP-Wide** (:func:`build_mtop_wide`): one task per domain x language (66 on full MTOP);
  classes with >= 50 examples kept; about 80% of the tasks for meta-training. The paper's text
  gives "54 + 14" tasks for 66 subsets, which does not add up (54 + 14 = 68); here
  ``train_fraction=0.8`` gives ``round(0.8 * 66) = 53`` meta-training and 13 meta-test tasks.

The bundled sample is about 1/8 of MTOP per language, so the paper's Wide threshold (50 per
domain x language) leaves at most two classes in any of its 66 tasks and drops most of them.
With ``root=None`` and ``min_class_count=None`` the Wide builder therefore uses the sample-scale
threshold :data:`SAMPLE_WIDE_MIN_CLASS_COUNT` (8: keeps all 66 tasks with >= 2 classes and about
95% of the utterances); pointed at a full download it uses the paper's 50. The paper's Long
threshold (20, languages pooled) already works on the sample. Every builder records in
``MetaSplit.info`` what it dropped and why.

MTOP's languages are translations of one another, so in MTOP-Wide (the paper's setting) a
meta-test task such as ``alarm/de`` has translations of its utterances inside meta-training
tasks such as ``alarm/en``. Pass ``train_tasks``/``test_tasks`` (e.g. hold out whole domains)
for a stricter split.

Example::

    >>> from l2l_taskmix.data import build_mtop_long
    >>> split = build_mtop_long(seed=0)              # bundled sample
    >>> len(split.train), len(split.test)
    (7, 4)
    >>> split.info["min_class_count"]
    20
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..validation import check_scalar
from .tasks import IntentTask, MetaSplit, assign_tasks, filter_classes

__all__ = [
    "MTOP_COLUMNS",
    "MTOP_SPLITS",
    "PAPER_LONG_MIN_CLASS_COUNT",
    "PAPER_WIDE_MIN_CLASS_COUNT",
    "SAMPLE_WIDE_MIN_CLASS_COUNT",
    "bundled_mtop_root",
    "intent_domains",
    "load_mtop",
    "mtop_tasks",
    "build_mtop_long",
    "build_mtop_wide",
]

MTOP_COLUMNS = ("id", "intent", "slots", "utterance", "domain", "locale", "decoupled", "tokens")
MTOP_SPLITS = ("train", "eval", "test")
PAPER_LONG_MIN_CLASS_COUNT = 20
PAPER_WIDE_MIN_CLASS_COUNT = 50
SAMPLE_WIDE_MIN_CLASS_COUNT = 8


def bundled_mtop_root() -> Path:
    """Folder of the bundled six-language MTOP sample (CC BY-SA 4.0, see its README)."""
    return Path(str(resources.files("l2l_taskmix.data") / "mtop_sample"))


def intent_domains() -> dict[str, str]:
    """MTOP's intent-to-domain mapping, ``{"CREATE_ALARM": "alarm", ...}`` (114 intents)."""
    text = (resources.files("l2l_taskmix.data") / "mtop-intent-domains.txt").read_text("utf-8")
    out = {}
    for line in text.splitlines():
        if line.strip():
            domain, intent = line.strip().split(":", 1)
            out[intent] = domain
    return out


def _read_mtop_file(path: Path, language: str, split: str, domains: dict | None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(MTOP_COLUMNS):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(MTOP_COLUMNS)} tab-separated columns ({', '.join(MTOP_COLUMNS)}), found {len(cols)}"
                )
            row = dict(zip(MTOP_COLUMNS, cols))
            if not row["utterance"].strip():
                raise ValueError(f"{path}:{lineno}: empty utterance")
            if not row["intent"].strip():
                raise ValueError(f"{path}:{lineno}: empty intent")
            if not row["domain"].strip():
                if domains is None:
                    domains = intent_domains()
                key = row["intent"].removeprefix("IN:")
                if key not in domains:
                    raise ValueError(f"{path}:{lineno}: empty domain and unknown intent {key!r}")
                row["domain"] = domains[key]
            row["language"] = language
            row["split"] = split
            row["line"] = lineno
            rows.append(row)
    return rows


def load_mtop(
    root: str | Path | None = None,
    languages: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read MTOP files from ``ROOT/{lang}/{split}.txt``.

    Args:
        root: dataset folder; ``None`` reads the bundled sample.
        languages: language folders to read (``None``: every folder holding a split file).
        splits: split names to read (``None``: whichever of train/eval/test are present).
            A split named explicitly must exist for every language read.

    Returns:
        One row per example, columns ``id, intent, slots, utterance, domain, locale,
        decoupled, tokens, language, split, line`` (``line``: 1-based line in its file).

    Raises:
        FileNotFoundError: missing root, language folder, or requested split file.
        ValueError: a malformed line (message names the file and line number).

    Example::

        >>> df = load_mtop(languages=["en"], splits=["eval"])
        >>> len(df), sorted(df.columns)[:3]
        (859, ['decoupled', 'domain', 'id'])
    """
    root = bundled_mtop_root() if root is None else Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MTOP root {root} does not exist or is not a folder")
    if splits is not None:
        splits = [splits] if isinstance(splits, str) else list(splits)
        bad = [s for s in splits if not s or "/" in s]
        if bad or not splits:
            raise ValueError(f"bad split names {splits!r}")
    if languages is None:
        languages = sorted(
            d.name for d in root.iterdir() if d.is_dir() and any((d / f"{s}.txt").is_file() for s in (splits or MTOP_SPLITS))
        )
        if not languages:
            raise FileNotFoundError(f"no language folders with {'/'.join(splits or MTOP_SPLITS)}.txt under {root}")
    else:
        languages = [languages] if isinstance(languages, str) else list(languages)
        if not languages:
            raise ValueError("languages is empty")
    rows: list[dict] = []
    for lang in languages:
        folder = root / lang
        if not folder.is_dir():
            raise FileNotFoundError(f"language folder {folder} does not exist")
        wanted = splits or [s for s in MTOP_SPLITS if (folder / f"{s}.txt").is_file()]
        if not wanted:
            raise FileNotFoundError(f"no {'/'.join(MTOP_SPLITS)}.txt files in {folder}")
        for split in wanted:
            path = folder / f"{split}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"split file {path} does not exist")
            rows.extend(_read_mtop_file(path, lang, split, None))
    if not rows:
        raise ValueError(f"no examples found under {root} for languages {languages}")
    return pd.DataFrame(rows, columns=[*MTOP_COLUMNS, "language", "split", "line"])


def mtop_tasks(df: pd.DataFrame, by: Sequence[str] = ("domain",)) -> list[IntentTask]:
    """Group an MTOP frame into tasks by ``by`` columns; names join the values with ``/``.

    Example::

        >>> df = load_mtop(languages=["en", "de"], splits=["eval"])
        >>> [t.name for t in mtop_tasks(df, by=("domain", "language"))][:2]
        ['alarm/de', 'alarm/en']
    """
    tasks = []
    for key, group in df.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        meta = dict(zip(by, key))
        meta["languages"] = sorted(group["language"].unique().tolist())
        tasks.append(IntentTask("/".join(map(str, key)), group["utterance"].tolist(), group["intent"].tolist(), meta))
    return tasks


def _root_label(root) -> str:
    return "bundled:mtop_sample" if root is None else str(Path(root))


def _build(
    kind: str,
    by,
    root,
    languages,
    splits,
    min_class_count,
    threshold_source,
    num_train,
    seed,
    train_tasks,
    test_tasks,
    extra_info,
) -> MetaSplit:
    df = load_mtop(root, languages=languages, splits=splits)
    tasks = mtop_tasks(df, by=by)
    kept, dropped_classes, dropped_tasks = filter_classes(tasks, min_class_count)
    if len(kept) < 2:
        raise ValueError(
            f"{kind}: min_class_count={min_class_count} leaves {len(kept)} tasks with two or more "
            f"classes (of {len(tasks)}); lower the threshold (see MetaSplit.info of a run with a "
            "lower one for what it drops)"
        )
    if callable(num_train):
        num_train = num_train(len(kept))
    rng = np.random.default_rng(seed)
    order = [kept[i].name for i in rng.permutation(len(kept))]
    left_out = [t for t in tasks if t.name in dropped_tasks]
    train, test = assign_tasks(kept, num_train, train_tasks, test_tasks, order, dropped=left_out, min_class_count=min_class_count)
    n_before = sum(len(t) for t in tasks)
    n_after = sum(len(t) for t in kept)
    info = {
        "dataset": kind,
        "root": _root_label(root),
        "languages": sorted(df["language"].unique().tolist()),
        "splits_read": sorted(df["split"].unique().tolist()),
        "task_by": list(by),
        "min_class_count": int(min_class_count),
        "min_class_count_source": threshold_source,
        "seed": seed if isinstance(seed, (int, type(None))) else repr(seed),
        "num_train": len(train),
        "num_test": len(test),
        "train_tasks": [t.name for t in train],
        "test_tasks": [t.name for t in test],
        "assignment": "given" if (train_tasks or test_tasks) else "seeded permutation",
        "num_examples_read": int(n_before),
        "num_examples_kept": int(n_after),
        "dropped_classes": dropped_classes,
        "dropped_tasks": dropped_tasks,
        "dropped_reason": f"classes with fewer than {min_class_count} examples in their task; tasks left with fewer than 2 classes",
        **extra_info,
    }
    return MetaSplit(train, test, info)


def build_mtop_long(
    root: str | Path | None = None,
    min_class_count: int = PAPER_LONG_MIN_CLASS_COUNT,
    num_train: int = 7,
    seed: int = 0,
    *,
    languages: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
) -> MetaSplit:
    """MTOP-Long: one task per domain, all languages pooled (paper: 11 tasks, 7 + 4).

    Args:
        root: MTOP folder (``None``: bundled sample).
        min_class_count: keep classes with at least this many examples in their task (20).
        num_train: meta-training tasks; the rest meta-test. Which ones: a permutation drawn
            with ``numpy.random.default_rng(seed)``, unless ``train_tasks``/``test_tasks``
            name them (domain names such as ``"alarm"``).
        seed: int or ``numpy.random.Generator``.
        languages, splits: passed to :func:`load_mtop`.

    Example::

        >>> split = build_mtop_long(num_train=8, seed=1)
        >>> len(split.train), len(split.test)
        (8, 3)
    """
    return _build(
        "mtop-long",
        ("domain",),
        root,
        languages,
        splits,
        min_class_count,
        "argument",
        num_train,
        seed,
        train_tasks,
        test_tasks,
        {},
    )


def build_mtop_wide(
    root: str | Path | None = None,
    min_class_count: int | None = None,
    train_fraction: float = 0.8,
    seed: int = 0,
    *,
    languages: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
) -> MetaSplit:
    """MTOP-Wide: one task per domain x language (66 on full MTOP), ~80% meta-training.

    Args:
        root: MTOP folder (``None``: bundled sample).
        min_class_count: keep classes with at least this many examples in their task.
            ``None``: the paper's 50 for a given ``root``, the sample-scale 8 for the bundled
            sample (the paper's 50 would leave at most two classes per sample task).
        train_fraction: share of the remaining tasks used for meta-training,
            ``round(train_fraction * num_tasks)`` (kept within 1 .. num_tasks - 1).
        seed: int or ``numpy.random.Generator`` for the task permutation.
        train_tasks, test_tasks: names such as ``"alarm/de"`` to fix the split by hand.

    Example::

        >>> split = build_mtop_wide(seed=0)
        >>> len(split.train), len(split.test), split.info["min_class_count"]
        (53, 13, 8)
    """
    if min_class_count is None:
        if root is None:
            min_class_count, source = SAMPLE_WIDE_MIN_CLASS_COUNT, "sample-scale default"
        else:
            min_class_count, source = PAPER_WIDE_MIN_CLASS_COUNT, "paper default"
    else:
        source = "argument"
    frac = check_scalar(train_fraction, "train_fraction", float, min_val=0, max_val=1, include_boundaries="neither")

    def num_train(n: int) -> int:  # depends on how many tasks survive the filter
        return min(max(int(round(frac * n)), 1), max(n - 1, 1))

    return _build(
        "mtop-wide",
        ("domain", "language"),
        root,
        languages,
        splits,
        min_class_count,
        source,
        num_train,
        seed,
        train_tasks,
        test_tasks,
        {"train_fraction": float(train_fraction)},
    )
