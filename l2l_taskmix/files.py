"""Writing files so that nothing is ever half-written, and JSON-ready records.

:func:`atomic_write` is the package's one way to write a file: to a temporary file in the same
folder, flushed to disk, then renamed over the target (``os.replace``), so a reader sees the old
file or the whole new one. :func:`to_jsonable` turns a record with NumPy values, paths, tuples
and sets into plain JSON types.

Example::

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from l2l_taskmix.files import atomic_write, to_jsonable
    >>> path = atomic_write(Path(tempfile.mkdtemp()) / "a" / "run.json",
    ...                     json.dumps(to_jsonable({"f1": np.float32(0.5), "hidden": (8, 8)})))
    >>> path.read_text()
    '{"f1": 0.5, "hidden": [8, 8]}'
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "atomic_folder", "check_writable", "to_jsonable", "default_cache_dir", "CACHE_ENV"]

#: The environment variable naming the package's cache folder (features, built wheels).
CACHE_ENV = "L2L_TASKMIX_CACHE"


def default_cache_dir() -> Path:
    """The package's cache folder: ``$L2L_TASKMIX_CACHE`` if set, else ``~/.cache/l2l-taskmix``
    (the feature cache keeps ``features/`` there, ``install_learn2learn`` its built ``wheels/``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "l2l-taskmix"


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; create missing folders.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the
    umask). On any error the temporary file is removed and ``path`` is left as it was; an
    ``OSError`` (a full disk, a folder that is a file) names ``path`` and keeps its type and
    ``errno``.
    """
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write takes text or bytes, not {type(data).__name__}")
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _naming(err, path) from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise
    return path


def atomic_folder(path: str | os.PathLike, files: dict[str, str | bytes], *, replace: bool = False) -> Path:
    """Write a folder of ``files`` (``{name: text or bytes}``) so that it appears whole or not at all.

    The files are written into a temporary folder beside ``path`` and flushed, then the folder
    is renamed to ``path``. An existing ``path`` is an error (``FileExistsError``) unless
    ``replace``; then it is renamed away first and deleted only once the new folder is in
    place, so a failure at any point leaves the old folder or the new one, never a mixture.
    The caller decides what may be replaced.

    Example::

        >>> import tempfile
        >>> folder = atomic_folder(Path(tempfile.mkdtemp()) / "model", {"config.json": "{}"})
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json']
    """
    path = Path(path)
    for name in files:
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"atomic_folder: {name!r} is not a plain file name")
    if path.exists() and not replace:
        raise FileExistsError(f"cannot write {path}: it exists already")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as err:
        raise _naming(err, path) from None
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for name, data in files.items():
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            with open(tmp / name, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rename(path, old / path.name)
        os.rename(tmp, path)
    except BaseException as err:
        if old is not None and (old / path.name).exists() and not path.exists():
            os.rename(old / path.name, path)  # put the old folder back
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` (same type and ``errno``) as ``cannot write PATH: reason``; a folder on the way
    that is a file is named as such."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    reason = f"{blocker} is a file, not a folder" if blocker is not None else (err.strerror or str(err))
    named = type(err)(f"cannot write {path}: {reason}")
    named.errno = err.errno  # (strerror and filename would change how it prints)
    return named


def check_writable(folder: str | os.PathLike, name: str, need_bytes: int = 0) -> Path:
    """Make sure ``folder`` exists (creating it), takes a new file and has ``need_bytes`` free.

    Called before any compute is spent, so that a bad output or cache location fails at once
    with a message naming it (``name``: the flag or argument), not after hours of training.
    Raises ``ValueError`` (an empty path), ``NotADirectoryError``, ``PermissionError`` or
    ``OSError`` (no space).

    Example::

        >>> import tempfile
        >>> check_writable(tempfile.mkdtemp(), "--out").is_dir()
        True
    """
    if not os.fspath(folder).strip():  # Path("") is the current folder: never what was meant
        raise ValueError(f"{name} == {os.fspath(folder)!r}: give a folder")
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"{name} {folder}: {probe} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(f"{name} {folder} is not writable ({err.strerror or err})") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise OSError(f"{name} {folder}: {free / 1e6:.1f} MB free on its disk, {need_bytes / 1e6:.1f} MB needed")
    return folder


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays, paths, tuples and sets made plain JSON types;
    mapping keys become strings."""
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
