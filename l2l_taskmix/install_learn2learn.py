"""Build and install a working learn2learn 0.2.0 into the running Python: ``python -m l2l_taskmix.install_learn2learn``.

learn2learn 0.2.0, the release l2l-taskmix is tested against, is published only as a source
distribution, and on Python 3.11 a plain ``pip install learn2learn`` fails twice over: its
shipped C files do not compile (upstream issue #413), and pip cannot resolve two of its declared
requirements (``qpth``, whose releases need numpy<2 or carry a requirement string that
setuptools rejects, and ``gsutil``). Neither is imported by MAML, the data transforms or the
examples l2l-taskmix supports. This command does, in the running interpreter's environment:

1. install learn2learn's import-time requirements (numpy, scipy, gym, requests, tqdm) and the
   build tools (Cython 3, setuptools, wheel), and a torchvision that matches the installed torch
   when none imports (torch itself is never changed: install it first, e.g.
   ``pip install torch==2.14.1 torchvision==0.29.1``);
2. download learn2learn 0.2.0's sdist from PyPI (only it: its build requirements come as
   wheels), re-cythonize its ``.pyx`` files, and drop ``qpth`` and ``gsutil`` from its declared
   requirements (so that ``pip check`` stays clean and pip can resolve packages that depend on
   learn2learn);
3. build a wheel of it (``pip wheel --no-deps --no-build-isolation``), keep the wheel in the
   package's cache (``$L2L_TASKMIX_CACHE/wheels`` or ``~/.cache/l2l-taskmix/wheels``;
   ``--wheel-dir`` elsewhere), install it and check that ``import learn2learn`` works.

A second environment on the same machine (same Python, same platform) installs the kept wheel
instead of building again: no download, no Cython, no compiler (``--no-wheel-cache`` builds
anew). It is idempotent: when learn2learn 0.2.0 imports and declares neither requirement it
returns at once (``--force`` rebuilds). The project's set-up script (``make setup``) runs it too.

Example (what a user runs; nothing to import)::

    $ pip install l2l-taskmix torch==2.14.1 torchvision==0.29.1
    $ python -m l2l_taskmix.install_learn2learn
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import tempfile

__all__ = [
    "VERSION",
    "DROPPED_REQUIREMENTS",
    "drop_requirements",
    "fetch_sdist",
    "is_installed",
    "sdist_name",
    "torchvision_spec",
    "wheel_folder",
    "cached_wheel",
    "install",
    "main",
]

#: The learn2learn release this command builds.
VERSION = "0.2.0"
#: Declared requirements of learn2learn 0.2.0 that are not needed to import or use it, and that
#: pip cannot install on Python 3.11.
DROPPED_REQUIREMENTS = ("qpth", "gsutil")


def say(message: str) -> None:
    print(f"[install_learn2learn] {message}", flush=True)


def drop_requirements(setup_py: str, names=DROPPED_REQUIREMENTS) -> str:
    """``setup_py`` with the ``install_requires`` entries of ``names`` removed.

    Example::

        >>> drop_requirements("install_requires=[\\n    'tqdm',\\n    'qpth>=0.0.15',\\n]")
        "install_requires=[\\n    'tqdm',\\n]"
    """
    out = setup_py
    for name in names:
        out = re.sub(rf"\n[ \t]*['\"]{re.escape(name)}(?:[<>=!~;][^'\"]*)?['\"],?[ \t]*(?=\n)", "", out)
    missing = [n for n in names if re.search(rf"['\"]{re.escape(n)}(?:[<>=!~;][^'\"]*)?['\"]", out)]
    if missing:
        raise RuntimeError(f"could not remove {missing} from learn2learn's setup.py; its layout changed")
    return out


def is_installed(version: str = VERSION) -> bool:
    """Whether learn2learn ``version`` is installed, imports, and declares none of the dropped
    requirements (a plain PyPI build of it would)."""
    try:
        installed = importlib.metadata.version("learn2learn")
    except importlib.metadata.PackageNotFoundError:
        return False
    requires = importlib.metadata.requires("learn2learn") or []
    declared = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requires}
    if installed != version or declared & set(DROPPED_REQUIREMENTS):
        return False
    return _import_error("learn2learn") is None


def torchvision_spec(torch_version: str) -> str:
    """The torchvision release series built for a torch release (torch 2.x pairs with 0.(x+15)).

    Example::

        >>> torchvision_spec("2.14.1+cu130")
        'torchvision==0.29.*'
    """
    major, minor = (int(p) for p in re.match(r"(\d+)\.(\d+)", torch_version).groups())
    if major != 2:
        raise RuntimeError(f"no known torchvision for torch {torch_version}; install a matching torchvision yourself")
    return f"torchvision==0.{minor + 15}.*"


def _pip(*args: str, constraints: str | None = None) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    if constraints:
        command += ["--constraint", constraints]
    subprocess.run(command, check=True)


def _import_error(module: str) -> str | None:
    """``None`` when ``import module`` works in a fresh interpreter (this environment as it is
    now, not as this process loaded it), else the error it printed."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    return None if done.returncode == 0 else done.stderr


def sdist_name(version: str = VERSION) -> str:
    """The file name of learn2learn ``version``'s source distribution."""
    return f"learn2learn-{version}.tar.gz"


def wheel_folder(root: str | None = None) -> str:
    """Where this interpreter's learn2learn wheels are kept: one folder per learn2learn version,
    Python and platform (a wheel built here fits any environment of that interpreter: its C
    code uses no NumPy or torch headers)."""
    import platform

    if root is None:
        from .files import default_cache_dir

        root = os.path.join(default_cache_dir(), "wheels")
    return os.path.join(root, f"learn2learn-{VERSION}-{sys.implementation.cache_tag}-{sys.platform}-{platform.machine()}")


def cached_wheel(folder: str) -> str | None:
    """The learn2learn :data:`VERSION` wheel kept in ``folder``, if there is exactly one."""
    found = sorted(glob.glob(os.path.join(folder, f"learn2learn-{VERSION}-*.whl")))
    return found[0] if len(found) == 1 else None


def fetch_sdist(directory: str, quiet: bool = False) -> str:
    """The path of learn2learn :data:`VERSION`'s sdist in ``directory``, downloaded from PyPI
    unless a readable one is there already. The file appears whole or not at all. Only
    learn2learn comes as source: pip reads its metadata with build requirements installed from
    wheels (``--no-binary :all:`` would build those from source too, minutes of Cython)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, sdist_name())
    if os.path.isfile(path) and tarfile.is_tarfile(path):
        return path
    say(f"downloading learn2learn {VERSION}'s source distribution")
    with tempfile.TemporaryDirectory(prefix=".l2l-sdist-", dir=directory) as tmp:
        q = ("-q",) if quiet else ()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                *q,
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                "learn2learn",
                f"learn2learn=={VERSION}",
                "-d",
                tmp,
            ],
            check=True,
        )
        (downloaded,) = glob.glob(os.path.join(tmp, sdist_name()))
        os.replace(downloaded, path)
    return path


def install(
    force: bool = False, quiet: bool = False, keep_sdist: str | None = None, wheel_dir: str | None = None, wheel_cache: bool = True
) -> None:
    """Build and install learn2learn :data:`VERSION` into this interpreter (see the module docs).

    ``keep_sdist``: a folder where learn2learn's sdist is kept (and reused), also when
    learn2learn is already installed; its ``examples/`` are what the project's contract tests run.
    ``wheel_dir``: the root of the kept wheels (default: the package cache's ``wheels/``);
    ``wheel_cache=False`` neither reuses nor keeps one.
    """
    if not force and is_installed():
        say(f"learn2learn {VERSION} is already installed and imports; nothing to do (--force rebuilds)")
        if keep_sdist:
            say(f"its sdist is at {fetch_sdist(keep_sdist, quiet=quiet)}")
        return
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            "[install_learn2learn] torch is not installed; install it first, e.g. pip install torch==2.14.1 torchvision==0.29.1"
        ) from None
    q = ("-q",) if quiet else ()
    kept = wheel_folder(wheel_dir) if wheel_cache else None
    wheel = cached_wheel(kept) if kept else None
    with tempfile.TemporaryDirectory(prefix="l2l-build-") as build:
        constraints = os.path.join(build, "constraints.txt")
        with open(constraints, "w") as f:
            f.write(f"torch=={torch_version}\n")  # never change the user's torch
        tools = () if wheel else ("cython>=3", "setuptools", "wheel")
        say("installing learn2learn's import-time requirements" + ("" if wheel else " and the build tools"))
        _pip(*q, "numpy", "scipy", "gym", "requests", "tqdm", *tools, constraints=constraints)
        if _import_error("torchvision") is not None:
            spec = torchvision_spec(torch_version)
            say(f"installing {spec} to match torch {torch_version} (learn2learn imports torchvision)")
            _pip(*q, spec, constraints=constraints)
        if keep_sdist:
            fetch_sdist(keep_sdist, quiet=quiet)
        if wheel:
            say(f"installing the learn2learn {VERSION} wheel built before: {wheel}")
        else:
            wheel = _build_wheel(build, keep_sdist, q)
            if kept:
                wheel = _keep(wheel, kept)
                say(f"kept the wheel for other environments of this Python: {wheel}")
        _pip(*q, "--no-deps", "--force-reinstall", wheel)
    error = _import_error("learn2learn")
    if error is not None:
        raise SystemExit(f"[install_learn2learn] learn2learn was installed but does not import:\n{error}")
    say(f"ok: learn2learn {importlib.metadata.version('learn2learn')} imports")


def _build_wheel(build: str, keep_sdist: str | None, q: tuple[str, ...]) -> str:
    """A wheel of learn2learn :data:`VERSION` built in ``build``: its sdist re-cythonized, the
    dropped requirements removed from its ``setup.py``."""
    sdist = fetch_sdist(keep_sdist or build, quiet=bool(q))
    with tarfile.open(sdist) as archive:
        archive.extractall(build, filter="data")
    source = os.path.join(build, f"learn2learn-{VERSION}")
    say("re-cythonizing learn2learn/data/*.pyx (its shipped C files do not compile on Python 3.11, upstream #413)")
    pyx = sorted(glob.glob(os.path.join(source, "learn2learn", "data", "*.pyx")))
    subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-q", "-f", "-3", *pyx], check=True, cwd=source)
    setup_py = os.path.join(source, "setup.py")
    with open(setup_py, encoding="utf8") as f:
        text = drop_requirements(f.read())
    with open(setup_py, "w", encoding="utf8") as f:
        f.write(text)
    say(f"building learn2learn {VERSION} (declared {', '.join(DROPPED_REQUIREMENTS)} dropped)")
    wheels = os.path.join(build, "wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--disable-pip-version-check",
            *q,
            "--no-deps",
            "--no-build-isolation",
            source,
            "-w",
            wheels,
        ],
        check=True,
    )
    (wheel,) = glob.glob(os.path.join(wheels, f"learn2learn-{VERSION}-*.whl"))
    return wheel


def _keep(wheel: str, folder: str) -> str:
    """``wheel`` copied into ``folder`` (whole or not at all: a temporary name, then a rename),
    the copy's path; the built wheel where ``folder`` cannot be written."""
    import shutil

    target = os.path.join(folder, os.path.basename(wheel))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".learn2learn-", suffix=".tmp")
        os.close(fd)
        shutil.copyfile(wheel, tmp)
        os.replace(tmp, target)
    except OSError as err:
        say(f"could not keep the wheel in {folder} ({err.strerror or err}); it will be built again next time")
        return wheel
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m l2l_taskmix.install_learn2learn",
        description=f"Build and install learn2learn {VERSION} on this Python (its sdist, re-cythonized; "
        f"declared {' and '.join(DROPPED_REQUIREMENTS)} dropped). Needs torch installed first.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when a working learn2learn is installed")
    parser.add_argument("--quiet", action="store_true", help="pass -q to pip")
    parser.add_argument("--keep-sdist", metavar="DIR", help="keep learn2learn's sdist (its examples/ included) in DIR and reuse it")
    parser.add_argument(
        "--wheel-dir",
        metavar="DIR",
        help="where built wheels are kept and reused [default: $L2L_TASKMIX_CACHE/wheels or ~/.cache/l2l-taskmix/wheels]",
    )
    parser.add_argument("--no-wheel-cache", action="store_true", help="build anew, and keep no wheel")
    args = parser.parse_args(argv)
    try:
        install(
            force=args.force, quiet=args.quiet, keep_sdist=args.keep_sdist, wheel_dir=args.wheel_dir, wheel_cache=not args.no_wheel_cache
        )
    except subprocess.CalledProcessError as err:
        print(f"[install_learn2learn] a step failed: {' '.join(map(str, err.cmd))} (exit {err.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
