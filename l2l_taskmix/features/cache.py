"""Featurize tasks once with a frozen encoder and cache the features on disk.

**Cache layout.** ``FeatureCache(root)`` keeps one folder per encoder ``cache_key`` (encoder
name and revision, pooling, max length): ``root/features/<slug>-<hash of key>/``, holding
``encoder.json`` (the full key and ``dim``) and *shards* ``<sha256>.npz``, each a batch of rows
``keys`` (SHA-1 of the exact text, UTF-8) -> ``x`` (float32 features). Features are therefore
cached **per text**: MTOP-Long and MTOP-Wide (and any later split of the same utterances) share
them, and a run only encodes texts it has never seen, written as one new shard.

A shard's file name is the SHA-256 of its bytes; it is written to a temporary file and renamed
(atomic). On reading, a shard whose bytes do not hash to its name (truncated, corrupted) or that
does not parse is reported with a warning, deleted, and its texts are encoded again: it is never
used. A shard that is intact but holds the wrong features (another width than the encoder's, as
``encoder.json`` and the other shards state it; NaN or infinite values; only zeros) was written
so by something (another encoder under the same key, a copied file): it is an error naming the
shard, to be deleted (or the encoder's cache folder) by hand, and nothing is encoded; such
features are refused when cached, too. Root folder: ``cache_dir`` argument, else
``$L2L_TASKMIX_CACHE``, else ``~/.cache/l2l-taskmix``.

Encoders are lazy (see ``l2l_taskmix.features.encoders``): when every text is cached, the encoder model
is never loaded.

Example::

    >>> import tempfile, torch
    >>> from l2l_taskmix.data import IntentTask
    >>> from l2l_taskmix.features import featurize_tasks
    >>> class Toy:                                # any object with cache_key, dim, encode
    ...     cache_key, dim, calls = "toy", 2, 0
    ...     def encode(self, texts, batch_size=None):
    ...         Toy.calls += 1
    ...         return torch.tensor([[len(t), 1.0] for t in texts])
    >>> task = IntentTask("t", ["hi", "hello", "bye"], ["greet", "greet", "bye"])
    >>> d = tempfile.mkdtemp()
    >>> [ft] = featurize_tasks([task], Toy(), cache_dir=d)
    >>> ft.x.shape, ft.y.tolist(), ft.classes
    (torch.Size([3, 2]), [1, 1, 0], ['bye', 'greet'])
    >>> _ = featurize_tasks([task], Toy(), cache_dir=d)   # all cached: encode not called
    >>> Toy.calls
    1
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..files import CACHE_ENV, atomic_write, check_writable, default_cache_dir
from ..validation import check_scalar
from .tasks import FeatureTask

__all__ = [
    "FeatureCache",
    "featurize_tasks",
    "featurize_texts",
    "featurize_split",
    "default_cache_dir",
    "CACHE_ENV",
]

log = logging.getLogger(__name__)


def _text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class FeatureCache:
    """Per-text feature store on disk, one folder per encoder ``cache_key``.

    Example::

        >>> import tempfile, torch
        >>> cache = FeatureCache(tempfile.mkdtemp())
        >>> _ = cache.put("enc-v1", ["a", "b"], torch.ones(2, 3))
        >>> found = cache.get("enc-v1", ["b", "c"])
        >>> sorted(found), found["b"].tolist()
        (['b'], [1.0, 1.0, 1.0])
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def folder(self, cache_key: str) -> Path:
        """Folder holding the features of one encoder configuration."""
        if not isinstance(cache_key, str) or not cache_key:
            raise ValueError(f"cache_key must be a non-empty string, got {cache_key!r}")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key)[:60].strip("_")
        digest = hashlib.sha256(cache_key.encode("utf-8")).hexdigest()[:16]
        return self.root / "features" / f"{slug}-{digest}"

    def shards(self, cache_key: str) -> list[Path]:
        folder = self.folder(cache_key)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))

    def dim(self, cache_key: str) -> int | None:
        """The feature width ``encoder.json`` records for ``cache_key`` (``None``: not recorded)."""
        try:
            dim = json.loads((self.folder(cache_key) / "encoder.json").read_text(encoding="utf-8")).get("dim")
        except (OSError, ValueError, AttributeError):
            return None
        return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None

    def _check_shard(self, path: Path, x: np.ndarray, dim: int | None) -> None:
        """Refuse an intact shard whose features cannot be the encoder's."""
        fix = f"delete it (or the folder {path.parent}) and run again to encode its texts anew"
        if dim is not None and x.shape[1] != dim:
            raise ValueError(
                f"feature cache shard {path} holds features of width {x.shape[1]}, not the {dim} of this "
                f"encoder's cache: it was written by another encoder; {fix}"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"feature cache shard {path} holds NaN or infinite features; {fix}")
        if x.size and not x.any():
            raise ValueError(f"feature cache shard {path} holds only zeros, as no working encoder gives; {fix}")

    def _read_shard(self, path: Path, dim: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """``(keys, x)`` of a verified shard, or None (shard deleted) when it is damaged; an
        intact shard of wrong features (width other than ``dim``, NaN, only zeros) is a
        ``ValueError`` naming it (:meth:`_check_shard`)."""
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != path.stem:
                raise ValueError("checksum mismatch (truncated or corrupted)")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                keys, x = z["keys"], z["x"]
            if keys.ndim != 2 or keys.shape[1] != 20 or x.ndim != 2 or len(x) != len(keys):
                raise ValueError("unexpected array shapes")
        except Exception as e:  # noqa: BLE001 - any damage means: rebuild
            warnings.warn(f"feature cache: discarding damaged shard {path} ({e}); its texts will be encoded again", stacklevel=3)
            try:
                path.unlink()
            except OSError:
                pass
            return None
        self._check_shard(path, x, dim)
        return keys, x

    def get(self, cache_key: str, texts: Sequence[str], dim: int | None = None) -> dict[str, torch.Tensor]:
        """``{text: features}`` for the ``texts`` found in the cache.

        Every shard read must hold features of width ``dim`` (``None``: as ``encoder.json``
        records, else as the first shard read) and be finite and not all zeros; one that is not
        is a ``ValueError`` naming it."""
        wanted = {_text_key(t): t for t in texts}
        found: dict[str, torch.Tensor] = {}
        dim = self._expected_dim(cache_key, dim)
        for path in self.shards(cache_key):
            shard = self._read_shard(path, dim)
            if shard is None:
                continue
            keys, x = shard
            dim = x.shape[1] if dim is None else dim
            for row, k in enumerate(keys):
                t = wanted.get(k.tobytes())
                if t is not None and t not in found:
                    found[t] = torch.from_numpy(x[row].copy())
            if len(found) == len(wanted):
                break
        return found

    def _expected_dim(self, cache_key: str, dim: int | None) -> int | None:
        """``dim`` if given, else what ``encoder.json`` records; an ``encoder.json`` that
        disagrees with the encoder's ``dim`` is an error naming it."""
        recorded = self.dim(cache_key)
        if dim is not None and recorded is not None and int(dim) != recorded:
            meta = self.folder(cache_key) / "encoder.json"
            raise ValueError(
                f"feature cache {meta} records features {recorded} wide for {cache_key!r}, but the encoder's "
                f"are {int(dim)} wide: the encoder changed without changing its cache key; delete the folder "
                f"{meta.parent} and run again"
            )
        return int(dim) if dim is not None else recorded

    def put(self, cache_key: str, texts: Sequence[str], x: torch.Tensor | np.ndarray, dim: int | None = None) -> Path | None:
        """Store features of ``texts`` (rows of ``x``) as one new shard, atomically."""
        texts = list(texts)
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if arr.ndim != 2 or len(arr) != len(texts):
            raise ValueError(f"features of shape {arr.shape} for {len(texts)} texts")
        if not np.isfinite(arr).all():
            raise ValueError("refusing to cache NaN or infinite features")
        if arr.size and not arr.any():
            raise ValueError(f"refusing to cache features of {len(texts)} text(s) that are all zeros (as no working encoder gives)")
        if not texts:
            return None
        recorded = self._expected_dim(cache_key, dim)
        if recorded is not None and arr.shape[1] != recorded:
            raise ValueError(f"refusing to cache features {arr.shape[1]} wide in the cache of {cache_key!r}, whose are {recorded} wide")
        folder = self.folder(cache_key)
        meta = folder / "encoder.json"
        if not meta.exists():
            atomic_write(meta, json.dumps({"cache_key": cache_key, "dim": int(dim or arr.shape[1])}, indent=2).encode())
        keys = np.frombuffer(b"".join(_text_key(t) for t in texts), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, keys=keys.reshape(len(texts), 20), x=arr)
        data = buf.getvalue()
        path = folder / f"{hashlib.sha256(data).hexdigest()}.npz"
        atomic_write(path, data)
        return path

    def compact(self, cache_key: str) -> Path | None:
        """Merge all shards of ``cache_key`` into one (damaged shards are dropped; shards of
        wrong features are an error, as in :meth:`get`)."""
        paths = self.shards(cache_key)
        dim = self._expected_dim(cache_key, None)
        parts = []
        for p in paths:
            shard = self._read_shard(p, dim)
            if shard is not None:
                parts.append(shard)
                dim = shard[1].shape[1] if dim is None else dim
        if not parts:
            return None
        keys = np.concatenate([k for k, _ in parts])
        x = np.concatenate([v for _, v in parts])
        _, first = np.unique(keys, axis=0, return_index=True)
        first = np.sort(first)
        folder = self.folder(cache_key)
        buf = io.BytesIO()
        np.savez(buf, keys=keys[first], x=x[first])
        data = buf.getvalue()
        out = folder / f"{hashlib.sha256(data).hexdigest()}.npz"
        atomic_write(out, data)
        for p in paths:
            if p != out and p.exists():
                p.unlink()
        return out

    def clear(self, cache_key: str) -> None:
        """Delete the cached features of one encoder configuration."""
        import shutil

        folder = self.folder(cache_key)
        if folder.is_dir():
            shutil.rmtree(folder)


#: ``on_progress(done, total)``: distinct texts with features so far, and in all.
OnProgress = Callable[[int, int], None]

#: How many newly encoded texts the cache commits as one shard while encoding continues.
COMMIT_EVERY = 1024


class _Committer:
    """Collects an encoder's finished batches and writes them to the cache every
    ``commit_every`` texts (and at the end), each commit an atomic shard."""

    def __init__(self, store: FeatureCache, key: str, texts: Sequence[str], dim: int, commit_every: int):
        self.store, self.key, self.texts, self.dim, self.commit_every = store, key, texts, dim, commit_every
        self.index: list[int] = []
        self.rows: list[torch.Tensor] = []
        self.committed = 0

    def __call__(self, index: list, features: torch.Tensor) -> None:
        self.index.extend(int(i) for i in index)
        self.rows.append(torch.as_tensor(features, dtype=torch.float32).reshape(len(index), -1))
        if len(self.index) >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        if not self.index:
            return
        x = torch.cat(self.rows)
        if torch.isfinite(x).all():  # a bad batch is caught (and reported) by the caller
            self.store.put(self.key, [self.texts[i] for i in self.index], x, dim=self.dim)
        self.committed += len(self.index)
        self.index, self.rows = [], []


class _Counting:
    """An ``on_batch`` that reports ``(texts done, texts in all)`` after each batch, and hands the
    batch on to ``inner`` (the cache's committer) where there is one."""

    def __init__(self, inner: Any, done: int, total: int, on_progress: OnProgress):
        self.inner, self.done, self.total, self.on_progress = inner, done, total, on_progress

    def __call__(self, index: list, features: torch.Tensor) -> None:
        if self.inner is not None:
            self.inner(index, features)
        self.done += len(index)
        self.on_progress(self.done, self.total)


def _takes_on_batch(encoder: Any) -> bool:
    try:
        return "on_batch" in inspect.signature(encoder.encode).parameters
    except (TypeError, ValueError):
        return False


def featurize_texts(
    texts: Sequence[str],
    encoder: Any,
    cache_dir: str | os.PathLike | None = None,
    *,
    batch_size: int | None = None,
    cache: bool = True,
    commit_every: int = COMMIT_EVERY,
    on_progress: OnProgress | None = None,
) -> torch.Tensor:
    """``FloatTensor[len(texts), encoder.dim]``: the features of ``texts``, each distinct text
    encoded once and cached (arguments as :func:`featurize_tasks`, which uses it).

    Example::

        >>> import tempfile, torch
        >>> class Toy:
        ...     cache_key, dim = "toy", 2
        ...     def encode(self, texts, batch_size=None):
        ...         return torch.tensor([[len(t), 1.0] for t in texts])
        >>> featurize_texts(["hi", "hello", "hi"], Toy(), cache_dir=tempfile.mkdtemp())
        tensor([[2., 1.],
                [5., 1.],
                [2., 1.]])
    """
    if isinstance(texts, str):
        raise ValueError("texts must be a list of utterances, not a single string")
    texts = list(texts)
    if not texts:
        raise ValueError("no utterances to featurize")
    feats = _features(
        list(dict.fromkeys(texts)),
        encoder,
        cache_dir,
        batch_size=batch_size,
        cache=cache,
        commit_every=commit_every,
        on_progress=on_progress,
    )
    return torch.stack([feats[t] for t in texts]).float()


def _features(
    unique: list[str],
    encoder: Any,
    cache_dir: str | os.PathLike | None,
    *,
    batch_size: int | None,
    cache: bool,
    commit_every: int,
    on_progress: OnProgress | None = None,
) -> dict[str, torch.Tensor]:
    """``{text: features}`` of distinct texts, from the cache where there, encoded (and cached) else."""
    if isinstance(encoder, (str, os.PathLike)):
        from .encoders import get_encoder

        encoder = get_encoder(encoder)
    for i, t in enumerate(unique):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"empty utterance among the texts to featurize (#{i})")
    store = FeatureCache(cache_dir) if cache else None
    key = encoder.cache_key
    feats = store.get(key, unique, dim=int(encoder.dim)) if store else {}
    missing = [t for t in unique if t not in feats]
    log.info("features (%s): %d cached, %d to encode", key, len(feats), len(missing))
    if on_progress is not None:
        on_progress(len(feats), len(unique))
    if missing:
        kwargs: dict[str, Any] = {"batch_size": batch_size} if batch_size else {}
        committer = None
        if store:
            # float32 rows plus the shard keys, twice over for the temporary file of a write; then
            # the encoder's own folder, which may be a file where the root is fine
            check_writable(store.root, "cache_dir", need_bytes=2 * len(missing) * (4 * int(encoder.dim) + 20) + 2**20)
            check_writable(store.folder(key), "cache_dir")
            if _takes_on_batch(encoder):
                committer = _Committer(store, key, missing, int(encoder.dim), check_scalar(commit_every, "commit_every", int, min_val=1))
                kwargs["on_batch"] = committer
        if on_progress is not None and _takes_on_batch(encoder):
            kwargs["on_batch"] = _Counting(kwargs.get("on_batch"), len(feats), len(unique), on_progress)
        x = encoder.encode(missing, **kwargs)
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.shape != (len(missing), int(encoder.dim)):
            raise RuntimeError(f"encoder returned shape {tuple(x.shape)}, expected {(len(missing), int(encoder.dim))}")
        if not torch.isfinite(x).all():
            raise RuntimeError("encoder returned NaN or infinite features")
        if committer is not None:
            committer.flush()
            if committer.committed != len(missing):  # an encoder that skipped on_batch calls
                store.put(key, missing, x, dim=int(encoder.dim))
        elif store:
            store.put(key, missing, x, dim=int(encoder.dim))
        feats.update(zip(missing, x))  # every row encoder.dim wide: the cache's shards are checked against it
        if on_progress is not None:
            on_progress(len(unique), len(unique))
    return feats


def featurize_tasks(
    tasks: Sequence[Any],
    encoder: Any,
    cache_dir: str | os.PathLike | None = None,
    *,
    batch_size: int | None = None,
    cache: bool = True,
    commit_every: int = COMMIT_EVERY,
    on_progress: OnProgress | None = None,
) -> list["FeatureTask"]:
    """Features of every task's texts, computed once per text and cached.

    Args:
        tasks: ``IntentTask`` list (or a ``MetaSplit``: its tasks, meta-training first).
        encoder: an ``Encoder`` (or a name for ``get_encoder``); anything with ``cache_key``,
            ``dim`` and ``encode(texts, batch_size=...)`` works.
        cache_dir: cache root (default :func:`default_cache_dir`).
        batch_size: passed to ``encoder.encode``.
        cache: ``False`` encodes everything and touches no files.
        commit_every: with an encoder whose ``encode`` takes ``on_batch`` (the package's do),
            finished batches are committed to the cache every this many texts, so a killed run
            resumes where it stopped. Before encoding, the cache folder is checked for
            writability and free space.
        on_progress: ``on_progress(done, total)`` with the distinct texts that have features
            and how many there are in all: once the cache is read, after each encoded batch (an
            encoder whose ``encode`` takes ``on_batch``) and at the end.

    Returns:
        One :class:`FeatureTask` per task, same order; ``y`` indexes ``task.classes``.
    """
    if hasattr(tasks, "train") and hasattr(tasks, "test"):
        tasks = tasks.tasks
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no tasks to featurize")
    unique = list(dict.fromkeys(t for task in tasks for t in task.texts))
    feats = _features(unique, encoder, cache_dir, batch_size=batch_size, cache=cache, commit_every=commit_every, on_progress=on_progress)
    out = []
    for task in tasks:
        classes = sorted(set(task.intents))
        index = {c: i for i, c in enumerate(classes)}
        x = torch.stack([feats[t] for t in task.texts]).float()
        y = torch.tensor([index[c] for c in task.intents], dtype=torch.long)
        groups = torch.tensor(task.groups(), dtype=torch.long)
        out.append(FeatureTask(task.name, x, y, classes, dict(getattr(task, "meta", {})), groups))
    return out


def featurize_split(
    split: Any, encoder: Any, cache_dir: str | os.PathLike | None = None, **kwargs
) -> tuple[list[FeatureTask], list[FeatureTask]]:
    """``(train_features, test_features)`` of a ``MetaSplit`` (one encoder pass for both)."""
    feats = featurize_tasks(split.tasks, encoder, cache_dir, **kwargs)
    return feats[: len(split.train)], feats[len(split.train) :]
