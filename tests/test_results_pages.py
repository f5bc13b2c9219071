"""The documentation's results pages are what benchmarks/readme_figures.py writes from the
committed measurement files, and nothing else."""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "results"


@pytest.fixture(scope="module")
def generator(benchmark_script):
    return benchmark_script("readme_figures")


def test_committed_results_pages_are_the_generator_output(generator):
    """Regenerate with `python benchmarks/readme_figures.py --steps ''` when this fails."""
    pages = generator.render_pages()
    assert sorted(pages) == sorted(p.name for p in PAGES.glob("*.md"))
    for name, text in pages.items():
        assert (PAGES / name).read_text(encoding="utf-8") == text, f"docs/results/{name} is stale"
    assert generator.stale_pages() == []


def test_pages_follow_the_committed_files_not_a_copy_in_the_generator(generator, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    report = results / "readme" / "mtop-long.md"
    text = report.read_text(encoding="utf-8")
    cell = next(line for line in text.splitlines() if line.startswith("| mtl ")).split("|")[2].strip()  # "0.543 ± 0.024"
    report.write_text(text.replace(cell, "0.999 ± 0.001"), encoding="utf-8")
    record = json.loads((results / "readme_figures.json").read_text(encoding="utf-8"))
    record["main"]["started"] = "2031-01-01 00:00 UTC"
    (results / "readme_figures.json").write_text(json.dumps(record), encoding="utf-8")
    pages = generator.render_pages(results)
    assert "0.999 ± 0.001" in pages["sample.md"] and cell not in pages["sample.md"]
    assert "started 2031-01-01 00:00 UTC" in pages["sample.md"] and "2031-01-01 00:00 UTC" in pages["time.md"]
    written = generator.write_pages(tmp_path / "pages", results)
    assert written == sorted(pages)
    assert generator.stale_pages(tmp_path / "pages", results) == []
    assert generator.stale_pages(PAGES, results) == ["sample.md", "time.md"]


def test_every_report_table_row_is_on_its_page(generator):
    """Each committed report the pages quote reaches its page whole, table rows included."""
    pages = generator.render_pages()
    quoted = {
        "mtop-long.md": "sample.md",
        "tables.md": "paper.md",
        "mtop-long-10seeds.md": "seeds.md",
        "mtop-long-10seeds-select.md": "seeds.md",
        "mtop-long-tuned.md": "tuned.md",
    }
    quoted.update({name: "sweeps.md" for _, name, _, _ in generator.SWEEPS})
    for report, page in quoted.items():
        path = ROOT / "benchmarks" / "results" / "readme" / report
        if (
            report not in {"mtop-long.md", "tables.md", "mtop-long-10seeds.md", "mtop-long-10seeds-select.md", "mtop-long-tuned.md"}
            and not path.exists()
        ):
            continue  # a sweep whose report is not committed is left off the page
        rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
        assert rows, report
        assert all(row in pages[page] for row in rows), report
        assert f"`benchmarks/results/readme/{report}`" in pages[page]


def test_sensitivity_page_quotes_the_measurement_and_the_margin_the_outputs_use(generator):
    from l2l_taskmix.benchmark.statistics import ROUNDING_MARGIN

    r = json.loads((ROOT / "benchmarks" / "results" / "sensitivity.json").read_text())
    page = generator.render_pages()["sensitivity.md"]
    assert "machine" in r["perturbations"]  # the main command on another CPU, against the reference
    for name, v in r["perturbations"].items():
        runs, run_shift = (len(v["runs"]), f"{v['max_run_shift']:.4f}") if v["max_run_shift"] is not None else (v["runs_compared"], "n/a")
        row = (
            f"| {name}: {v['how']} | {runs} | {run_shift} | {v['max_mean_shift']:.4f} | {v['max_difference_shift']:.4f} | "
            f"{len(v['flips'])} | {v['flips_with_margin']} |"
        )
        assert row in page, row
    assert f"`l2l_taskmix.benchmark.statistics.ROUNDING_MARGIN`, {ROUNDING_MARGIN:g}) is decided by" in page
    v = json.loads((ROOT / "benchmarks" / "results" / "variance.json").read_text())
    assert v["margin"]["value"] == ROUNDING_MARGIN
    index = generator.render_pages()["index.md"]
    assert "the seed interval holds it" in index if ROUNDING_MARGIN == 0 else f"margin of {ROUNDING_MARGIN}" in index


def test_variance_page_quotes_the_measurement(generator):
    page = generator.render_pages()["variance.md"]
    report = (ROOT / "benchmarks" / "results" / "variance.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows and all(row in page for row in rows)
    assert "chosen on held-out meta-training tasks only" in page


def test_check_flag_fails_on_missing_or_edited_pages_and_runs_nothing(generator, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(generator, "PAGES", tmp_path)
    monkeypatch.setattr(generator.subprocess, "run", lambda *a, **k: pytest.fail("--check ran a step"))
    assert generator.main(["--check"]) == 1
    assert "stale results pages: index.md, sample.md" in capsys.readouterr().out
    generator.write_pages()
    assert generator.main(["--check"]) == 0
    (tmp_path / "seeds.md").write_text("# Seeds\n\nhand-edited\n", encoding="utf-8")
    assert generator.main(["--check"]) == 1
    assert "stale results pages: seeds.md" in capsys.readouterr().out.splitlines()[-1]


def test_tuned_comparison_pairs_each_method_by_seed(generator):
    """tuned - defaults is the mean of per-seed differences, with its t-interval; * only where it excludes 0."""
    default = [
        {"protocol": "paper", "method": m, "seed": k, "macro_f1": f}
        for m, fs in {"maml": [0.50, 0.52, 0.48]}.items()
        for k, f in enumerate(fs)
    ]
    tuned = [{"protocol": "paper", "method": "maml", "seed": k, "macro_f1": f} for k, f in enumerate([0.53, 0.54, 0.52])]
    table = generator.tuned_comparison(default, tuned, ["maml"])
    row = table.splitlines()[2]
    assert row.startswith("| paper | maml | 0.500 ± 0.020 | 0.530 ± 0.010 | +0.030 [+0.005, +0.055]* | 3 |"), row
    same = generator.tuned_comparison(default, default, ["maml"]).splitlines()[2]
    assert "+0.000 [+0.000, +0.000] | 3" in same and "*" not in same  # no difference: not resolved
    assert len(generator.tuned_comparison(default, tuned, ["maml", "mtl"]).splitlines()) == 3  # mtl in neither: no row


def test_a_step_measured_before_the_draws_says_how_its_numbers_differ(generator):
    """Pages quoting a step run before the 8-draw default say it is today's command with --test-draws 1."""
    row = {"command": "l2l-taskmix x", "version": "0.9.0", "seconds": 60, "cpus": 2, "load_before": 1, "load_after": 1}
    old = generator._source("seeds", {"seeds": {**row, "started": "2026-12-02 13:26 UTC"}}, "r.md")
    new = generator._source("main", {"main": {**row, "started": "2026-12-06 11:30 UTC"}}, "r.md")
    assert "`--test-draws 1`" in old and "--steps seeds" in old
    assert "--test-draws" not in new
