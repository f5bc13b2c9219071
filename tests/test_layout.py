"""The package's house rules: imports run one way, down the layers; every docstring example runs.

The layers, bottom to top (docs/design.md draws them):

- base: ``validation``, ``files``, ``markdown``, ``install_learn2learn``, ``cluster`` (no other l2l_taskmix module)
- core, what a learn2learn user imports: ``mixing``, ``losses``, ``metrics``, ``task``, ``samplers``, ``tasksets``,
  ``models``,
  ``engine`` and the package root
- data: ``l2l_taskmix.data`` (raw-text tasks; base only)
- features: ``l2l_taskmix.features`` (encoders, cache, featurized tasks; base and data)
- benchmark: ``l2l_taskmix.benchmark`` (everything below)
- cli: ``l2l_taskmix.cli`` (argument parsing; the benchmark)

Within the list below a module may import only modules listed before it, so there are no
cycles, not even through imports inside functions.
"""

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import l2l_taskmix

PACKAGE = Path(l2l_taskmix.__file__).parent

#: Every module of the package, bottom to top; an import must point up this list.
ORDER = [
    # base
    "l2l_taskmix.validation",
    "l2l_taskmix.files",
    "l2l_taskmix.markdown",
    "l2l_taskmix.install_learn2learn",
    "l2l_taskmix.cluster",
    # core
    "l2l_taskmix.mixing",
    "l2l_taskmix.losses",
    "l2l_taskmix.metrics",
    "l2l_taskmix.task",
    "l2l_taskmix.samplers",
    "l2l_taskmix.tasksets",
    "l2l_taskmix.models",
    "l2l_taskmix.engine",
    "l2l_taskmix",
    # data
    "l2l_taskmix.data.tasks",
    "l2l_taskmix.data.splits",
    "l2l_taskmix.data.stats",
    "l2l_taskmix.data.mtop",
    "l2l_taskmix.data.nbest",
    "l2l_taskmix.data",
    # features
    "l2l_taskmix.features.tasks",
    "l2l_taskmix.features.encoders",
    "l2l_taskmix.features.cache",
    "l2l_taskmix.features.on_ray",
    "l2l_taskmix.features",
    # benchmark
    "l2l_taskmix.benchmark.settings",
    "l2l_taskmix.benchmark.methods",
    "l2l_taskmix.benchmark.config",
    "l2l_taskmix.benchmark.training",
    "l2l_taskmix.benchmark.evaluation",
    "l2l_taskmix.benchmark.statistics",
    "l2l_taskmix.benchmark.store",
    "l2l_taskmix.benchmark.report",
    "l2l_taskmix.benchmark.datasets",
    "l2l_taskmix.benchmark.workers",
    "l2l_taskmix.benchmark.progress",
    "l2l_taskmix.benchmark.run",
    "l2l_taskmix.benchmark.grid",
    "l2l_taskmix.benchmark.runner",
    "l2l_taskmix.benchmark.sweep",
    "l2l_taskmix.benchmark.tune",
    "l2l_taskmix.benchmark.artifact",
    "l2l_taskmix.benchmark.classifier",
    "l2l_taskmix.benchmark.paper",
    "l2l_taskmix.benchmark",
    # cli
    "l2l_taskmix.cli",
]

#: Which layers each layer may import from (its own included).
LAYERS = {
    "base": {"base"},
    "core": {"base", "core"},
    "data": {"base", "data"},
    "features": {"base", "data", "features"},
    "benchmark": {"base", "core", "data", "features", "benchmark"},
    "cli": {"base", "core", "data", "benchmark", "cli"},
}


def layer(module: str) -> str:
    if module in (
        "l2l_taskmix.validation",
        "l2l_taskmix.files",
        "l2l_taskmix.markdown",
        "l2l_taskmix.install_learn2learn",
        "l2l_taskmix.cluster",
    ):
        return "base"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("data", "features", "benchmark", "cli"):
        return parts[1]
    return "core"


def all_modules() -> list[str]:
    found = ["l2l_taskmix"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="l2l_taskmix."):
        found.append(info.name)
    return sorted(found)


def module_path(module: str) -> Path:
    rel = Path(*module.split(".")[1:])
    package = PACKAGE / rel / "__init__.py"
    return package if package.exists() else (PACKAGE / rel).with_suffix(".py")


def imported_modules(module: str) -> set[str]:
    """Every l2l_taskmix module that ``module`` imports, anywhere in the file (functions too).

    ``from . import x`` counts as importing ``x`` where ``x`` is a module, else the package."""
    path = module_path(module)
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    known = set(all_modules())
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "l2l_taskmix"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "l2l_taskmix":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    out.discard(module)
    return out


def test_the_order_lists_every_module():
    assert sorted(ORDER) == all_modules()


@pytest.mark.parametrize("module", ORDER)
def test_imports_point_down(module):
    rank = {m: k for k, m in enumerate(ORDER)}
    for target in sorted(imported_modules(module)):
        assert layer(target) in LAYERS[layer(module)], f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        assert rank[target] < rank[module], f"{module} imports {target}, which is listed after it"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """A control: the parser finds a function-level relative import (as the old cycles used)."""
    assert "l2l_taskmix.benchmark.runner" in imported_modules("l2l_taskmix.cli")  # imported inside _benchmark()
    assert "l2l_taskmix.features" in imported_modules("l2l_taskmix.benchmark.runner")


def test_the_package_root_imports_no_subpackage():
    for target in imported_modules("l2l_taskmix"):
        assert layer(target) in ("base", "core"), target


@pytest.mark.parametrize("module", ORDER)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    """Every docstring example of every module runs and gives what it shows (cwd and the
    feature cache in a temporary folder, so nothing is written elsewhere)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("L2L_TASKMIX_CACHE", str(tmp_path / "cache"))
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(mod) if t.examples and (t.filename or "").startswith(str(PACKAGE))]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed (see the output above)"
    assert result.attempted > 0, f"{module} has no docstring example"
