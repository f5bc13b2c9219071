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

import contextlib
import errno
import glob
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_folder",
    "recover_folder",
    "file_lock",
    "folder_lock",
    "check_not_input",
    "check_writable",
    "to_jsonable",
    "default_cache_dir",
    "CACHE_ENV",
]

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


def atomic_folder(
    path: str | os.PathLike, files: dict[str, str | bytes], *, replace: bool = False, check: Callable[[Path], Any] | None = None
) -> Path:
    """Write a folder of ``files`` (``{name: text or bytes}``) so that it appears whole or not at all.

    The files are written into a temporary folder beside ``path`` and flushed; then, holding the
    folder's lock (:func:`folder_lock`), a leftover of a killed swap is put back
    (:func:`recover_folder`), ``check(path)`` is called (it raises to refuse), and the new folder
    is put in place. An existing ``path`` is an error (``FileExistsError``) unless ``replace``;
    then the two folders are exchanged in one step (Linux ``renameat2(RENAME_EXCHANGE)``) and the
    old one deleted, so ``path`` holds the old folder or the new one at every instant. Where the
    exchange is not available, the old folder is renamed to ``.NAME.xxxx.old/NAME`` and the new
    one renamed in: a process killed between the two leaves no ``path``, and the next
    :func:`recover_folder` (every writer, and the commands that read a model folder) puts the old
    one back. The caller decides what may be replaced.

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
    with folder_lock(path):
        recover_folder(path)
        if check is not None:
            check(path)
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
            if path.exists() and _exchange(tmp, path):
                _between_swap_steps()
                if tmp.is_symlink():  # path was a link to a folder: the link, now at tmp (its target stays)
                    tmp.unlink()
                else:
                    shutil.rmtree(tmp, ignore_errors=True)  # the old folder, now at tmp
                return path
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
                os.rename(path, old / path.name)
                _between_swap_steps()
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


def recover_folder(path: str | os.PathLike, *, locked: bool = True) -> bool:
    """Put back a folder that a swap of :func:`atomic_folder` killed half-way left aside:
    where ``path`` is missing and ``.NAME.xxxxxxxx.old/NAME`` exists beside it, rename that
    back (the newest, if several), and delete the temporary folders killed writers left beside
    ``path``. Whether a folder was put back. ``locked``: the caller holds :func:`folder_lock`
    (a writer); with ``False`` (a reader) the lock is taken, only when there is a folder to put
    back.

    Example::

        >>> import tempfile
        >>> parent = Path(tempfile.mkdtemp())
        >>> (parent / ".model.k2x9q7ab.old" / "model").mkdir(parents=True)
        >>> recover_folder(parent / "model"), (parent / "model").is_dir()
        (True, True)
    """
    path = Path(path)
    if not locked:
        if path.exists() or path.is_symlink() or not path.parent.is_dir() or not any(p.suffix == ".old" for p in _leftovers(path)):
            return False
        with folder_lock(path):
            return recover_folder(path)
    if path.exists() or path.is_symlink() or not path.parent.is_dir():
        if path.exists():
            _remove_leftovers(path)
        return False
    kept = [p / path.name for p in _leftovers(path) if p.suffix == ".old" and (p / path.name).is_dir()]
    if not kept:
        _remove_leftovers(path)
        return False
    newest = max(kept, key=lambda p: p.parent.stat().st_mtime)
    os.rename(newest, path)
    _remove_leftovers(path)
    return True


def _remove_leftovers(path: Path) -> None:
    """Delete the ``.NAME.*.tmp`` and ``.NAME.*.old`` folders killed writers left beside ``path``
    (only with the folder's lock held: a live writer's are its own)."""
    for leftover in _leftovers(path):
        shutil.rmtree(leftover, ignore_errors=True)


def _leftovers(path: Path) -> list[Path]:
    """The folders ``.NAME.xxxxxxxx.tmp`` and ``.NAME.xxxxxxxx.old`` (``tempfile.mkdtemp``'s
    names) beside ``path``."""
    name = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    return [p for p in path.parent.glob(f".{glob.escape(path.name)}.*") if name.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _between_swap_steps() -> None:
    """A test hook between the steps of :func:`atomic_folder`'s swap (tests replace it, e.g.
    with a ``kill -9`` of the process); does nothing."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux ``renameat2(..., RENAME_EXCHANGE)``);
    ``False`` where that is not available (another system, an old kernel or C library, a file
    system without it), and nothing was done."""
    global _RENAMEAT2
    if _RENAMEAT2 is None:
        _RENAMEAT2 = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                function = libc.renameat2
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
                _RENAMEAT2 = function
            except (OSError, AttributeError):
                pass
    if _RENAMEAT2 is False:
        return False
    import ctypes

    at_fdcwd, rename_exchange = -100, 2
    if _RENAMEAT2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(error, os.strerror(error), os.fspath(b))


#: ``renameat2`` from the C library: ``None`` until first used, ``False`` where there is none.
_RENAMEAT2: Any = None


@contextlib.contextmanager
def file_lock(lock_path: str | os.PathLike, on_wait: Callable[[], Any] | None = None) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on the file ``lock_path`` (created empty, and left
    there) for the block: a second process asking for it waits (calling ``on_wait()`` first)
    until the first leaves the block. The OS releases the lock when its process dies (``kill
    -9`` included). Where there is no ``flock`` (Windows) or the lock file cannot be made (a
    read-only folder), no lock is taken.

    Example::

        >>> import tempfile
        >>> with file_lock(Path(tempfile.mkdtemp()) / ".run.lock"):
        ...     pass
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock_path = Path(lock_path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def folder_lock(path: str | os.PathLike, on_wait: Callable[[], Any] | None = None) -> contextlib.AbstractContextManager[None]:
    """The lock of the folder ``path`` (:func:`file_lock` on ``.NAME.lock`` beside it, in its
    parent): :func:`atomic_folder` holds it while it checks and replaces ``path``, so two
    writers of one folder take turns, and the second sees what the first wrote."""
    path = Path(path)
    return file_lock(path.parent / f".{path.name}.lock", on_wait)


def check_not_input(out: str | os.PathLike, name: str, inputs: dict[str, Any]) -> None:
    """Refuse an output ``out`` (the flag ``name``) that is one of ``inputs`` (``{flag: path or
    None}``), lies inside one (a file in a model folder) or holds one, so that writing it can
    never destroy what the command reads. Paths are compared resolved, symbolic links
    followed; inputs that do not exist (a hub id, a flag not given) cannot be overwritten and
    are skipped.

    Example::

        >>> import tempfile
        >>> model = Path(tempfile.mkdtemp())
        >>> check_not_input(model / "config.json", "--out", {"--model": model})
        Traceback (most recent call last):
        ...
        ValueError: --out ... lies inside the --model folder ...; write it elsewhere, outside every input
    """
    target = Path(out).expanduser().resolve()
    for flag, given in inputs.items():
        if given is None or not os.fspath(given).strip() or not Path(given).expanduser().exists():
            continue
        source = Path(given).expanduser().resolve()
        if target == source:
            how = f"is the {flag} {'folder' if source.is_dir() else 'file'}"
        elif source in target.parents:
            how = f"lies inside the {flag} folder {given}"
        elif target in source.parents:
            how = f"holds the {flag} {'folder' if source.is_dir() else 'file'} {given}"
        else:
            continue
        raise ValueError(f"{name} {out} {how}; write it elsewhere, outside every input")


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
