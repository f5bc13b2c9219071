"""The install path of a user who depends on l2l-taskmix: a built wheel in a fresh venv.

Builds the wheel from a copy of the project (nothing is written into the checkout), installs it
into a throwaway venv that has nothing else (no learn2learn), imports the package, runs TaskMix
on plain tensors, and runs ``pip check``. PyTorch comes in with the wheel as a dependency; where
this machine holds the small CPU build of torch 2.13.0 in pip's local wheel folder, it is pinned
to that release to avoid downloading a multi-GB CUDA build (any torch>=2.1 satisfies the wheel).
Also checks the learn2learn helper module's pure parts and that it is idempotent here.
"""

import glob
import io
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tomllib
from pathlib import Path

import pytest

from l2l_taskmix import install_learn2learn

ROOT = Path(__file__).resolve().parent.parent
SMALL_TORCH = "torch==2.13.0" if glob.glob("/opt/wheels/torch-2.13.0*cpu*.whl") else None


def run(*args, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def build_wheel(tmp_path):
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "l2l_taskmix", source / "l2l_taskmix", ignore=ignore)
    dist = tmp_path / "dist"
    done = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source)
    assert done.returncode == 0, done.stderr
    (wheel,) = dist.glob("l2l_taskmix-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_without_learn2learn(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    # --no-compile: no byte-compiling of torch's thousands of modules (Python compiles what it imports)
    install = run(
        python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile", wheel, *([SMALL_TORCH] if SMALL_TORCH else [])
    )
    assert install.returncode == 0, install.stderr[-3000:]

    check = run(python, "-m", "pip", "check")
    assert check.returncode == 0 and "No broken requirements" in check.stdout, check.stdout + check.stderr

    script = textwrap.dedent(
        """
        import importlib.util, sys, warnings
        import torch
        import l2l_taskmix
        from l2l_taskmix import TaskMix, MetaMix, accuracy
        assert importlib.util.find_spec("learn2learn") is None, "learn2learn must not come with the wheel"
        assert not any(m.split(".")[0] in ("learn2learn", "pandas", "transformers", "matplotlib") for m in sys.modules)
        tasks = [(torch.randn(10, 4), torch.arange(10) % 5) for _ in range(3)]
        out = TaskMix(seed=0)(tasks)
        assert len(out) == 6 and out[:3] == tasks and out[3].y.shape == (10,)  # slot labels for integer tasks
        assert TaskMix(labels="soft", seed=0)(tasks)[3].y.shape == (10, 5)
        assert len(MetaMix(TaskMix(seed=0), seed=1)(tasks)) == 6
        assert float(accuracy(torch.eye(5)[torch.arange(10) % 5], out[3].y)) >= 0
        from l2l_taskmix.engine import import_learn2learn
        try:
            import_learn2learn()
        except ModuleNotFoundError as err:
            assert "python -m l2l_taskmix.install_learn2learn" in str(err)
        else:
            raise AssertionError("learn2learn imported")
        import importlib.resources as r
        assert r.files("l2l_taskmix").joinpath("py.typed").is_file()
        assert r.files("l2l_taskmix").joinpath("data/mtop_sample/en/eval.txt").is_file()
        print("ok", l2l_taskmix.__version__)
        """
    )
    used = run(python, "-c", script)
    assert used.returncode == 0, used.stderr[-3000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert used.stdout.strip() == f"ok {version}"

    # the metadata a published package has
    (dist_info,) = (venv / "lib").glob("python3*/site-packages/l2l_taskmix-*.dist-info")
    meta = (dist_info / "METADATA").read_text()
    assert "License-Expression: MIT AND CC-BY-SA-4.0" in meta and "Classifier: Typing :: Typed" in meta
    assert "Project-URL: Paper" in meta and "Provides-Extra: benchmark" in meta
    assert "Requires-Dist: learn2learn" not in meta
    assert len(list((dist_info / "licenses").glob("**/LICENSE"))) == 2

    # the command line says what to install instead of a traceback
    cli = run(venv / "bin" / "l2l-taskmix", "stats", "--dataset", "mtop-long")
    assert cli.returncode == 2 and "pip install 'l2l-taskmix[benchmark]'" in cli.stderr and "Traceback" not in cli.stderr
    helper = run(python, "-m", "l2l_taskmix.install_learn2learn", "--help")
    assert helper.returncode == 0 and "learn2learn 0.2.0" in helper.stdout


def test_the_learn2learn_build_drops_only_the_uninstallable_requirements():
    setup_py = textwrap.dedent(
        """\
        install_requires=[
            'numpy>=1.15.4',
            'gsutil',
            'tqdm',
            "qpth>=0.0.15",
            #  'pytorch_lightning>=1.0.2',
        ],
        """
    )
    patched = install_learn2learn.drop_requirements(setup_py)
    assert "qpth" not in patched and "gsutil" not in patched
    assert "'numpy>=1.15.4'," in patched and "'tqdm'," in patched and "pytorch_lightning" in patched
    with pytest.raises(RuntimeError, match="layout changed"):
        install_learn2learn.drop_requirements("install_requires=['numpy', 'qpth']")


def test_torchvision_pairs_with_the_installed_torch():
    assert install_learn2learn.torchvision_spec("2.14.1") == "torchvision==0.29.*"
    assert install_learn2learn.torchvision_spec("2.9.1+cpu") == "torchvision==0.24.*"
    with pytest.raises(RuntimeError, match="no known torchvision"):
        install_learn2learn.torchvision_spec("3.0.0")


def test_the_set_up_learn2learn_is_recognised_so_a_rerun_does_nothing():
    # make setup built it with this module: a second run must return at once
    assert install_learn2learn.is_installed()
    done = run(sys.executable, "-m", "l2l_taskmix.install_learn2learn")
    assert done.returncode == 0 and "already installed" in done.stdout
    check = run(sys.executable, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout


def test_the_kept_sdist_is_reused_and_a_broken_one_is_fetched_again(tmp_path, monkeypatch):
    kept = tmp_path / install_learn2learn.sdist_name()
    with tarfile.open(kept, "w:gz") as archive:  # a readable sdist already there: no download
        info = tarfile.TarInfo("learn2learn-0.2.0/setup.py")
        archive.addfile(info, io.BytesIO(b""))
    calls = []
    monkeypatch.setattr(install_learn2learn.subprocess, "run", lambda *a, **k: calls.append(a))
    assert install_learn2learn.fetch_sdist(str(tmp_path)) == str(kept) and not calls
    kept.write_bytes(b"not a tar file")  # half-written or foreign: fetched again, into a temporary name

    def download(command, check):
        calls.append(command)
        target = command[command.index("-d") + 1]
        (Path(target) / install_learn2learn.sdist_name()).write_bytes(b"new")

    monkeypatch.setattr(install_learn2learn.subprocess, "run", download)
    install_learn2learn.fetch_sdist(str(tmp_path))
    assert len(calls) == 1 and "--no-deps" in calls[0] and kept.read_bytes() == b"new"
    # only learn2learn as source: --no-binary :all: would build its build requirements (Cython) from source too
    assert calls[0][calls[0].index("--no-binary") + 1] == "learn2learn"
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]  # no temporary left behind


def test_an_installed_learn2learn_still_keeps_its_sdist(tmp_path, monkeypatch):
    monkeypatch.setattr(install_learn2learn, "is_installed", lambda: True)
    kept = []
    monkeypatch.setattr(install_learn2learn, "fetch_sdist", lambda directory, quiet=False: kept.append(directory) or directory)
    install_learn2learn.install(keep_sdist=str(tmp_path))
    assert kept == [str(tmp_path)]


def test_the_wheel_folder_is_per_python_and_platform_under_the_package_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("L2L_TASKMIX_CACHE", str(tmp_path))
    folder = install_learn2learn.wheel_folder()
    assert folder.startswith(str(tmp_path / "wheels")) and sys.implementation.cache_tag in folder and sys.platform in folder
    assert install_learn2learn.wheel_folder(str(tmp_path / "elsewhere")).startswith(str(tmp_path / "elsewhere"))
    assert install_learn2learn.cached_wheel(folder) is None


def fake_install(monkeypatch, tmp_path):
    """install() with every subprocess recorded instead of run (pip, Cython, the import check)."""
    pips, runs = [], []
    monkeypatch.setattr(install_learn2learn, "is_installed", lambda: False)
    monkeypatch.setattr(install_learn2learn, "_pip", lambda *a, constraints=None: pips.append(a))
    monkeypatch.setattr(install_learn2learn, "_import_error", lambda module: None)

    def run(command, check, cwd=None):
        runs.append(command)
        if "wheel" in command:  # pip wheel: make the wheel it would build
            out = Path(command[command.index("-w") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "learn2learn-0.2.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"built")

    monkeypatch.setattr(install_learn2learn.subprocess, "run", run)
    sdist = tmp_path / "sdist"
    sdist.mkdir()
    with tarfile.open(sdist / install_learn2learn.sdist_name(), "w:gz") as archive:
        data = b"install_requires=[\n    'numpy',\n    'qpth>=0.0.15',\n    'gsutil',\n]\n"
        info = tarfile.TarInfo("learn2learn-0.2.0/setup.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return pips, runs, str(sdist)


def test_a_built_wheel_is_kept_and_the_next_environment_installs_it_without_building(tmp_path, monkeypatch):
    pips, runs, sdist = fake_install(monkeypatch, tmp_path)
    wheels = tmp_path / "wheels"
    install_learn2learn.install(quiet=True, keep_sdist=sdist, wheel_dir=str(wheels))
    kept = install_learn2learn.cached_wheel(install_learn2learn.wheel_folder(str(wheels)))
    assert kept is not None and Path(kept).read_bytes() == b"built"
    assert any("Cython.Build.Cythonize" in c for c in runs) and any("wheel" in c for c in runs)
    assert any("cython>=3" in p for p in pips) and pips[-1][-1] == kept  # built, kept, installed from the kept copy
    assert not [p for p in Path(kept).parent.iterdir() if p.name.startswith(".")]  # no temporary left
    pips.clear(), runs.clear()
    install_learn2learn.install(quiet=True, keep_sdist=sdist, wheel_dir=str(wheels))  # a second environment
    assert runs == []  # no Cython, no pip wheel, no download
    assert not any("cython>=3" in p for p in pips) and pips[-1][-1] == kept
    pips.clear(), runs.clear()
    install_learn2learn.install(quiet=True, keep_sdist=sdist, wheel_dir=str(wheels), wheel_cache=False)
    assert any("Cython.Build.Cythonize" in c for c in runs) and pips[-1][-1] != kept  # built anew, the kept one unused
