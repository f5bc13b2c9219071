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


def _timing(its: float, repeats: int = 3) -> dict:
    return {"min_s": 1 / its, "median_s": 1.25 / its, "its_per_s": its, "its_per_s_median": its / 1.25, "repeats": repeats}


def _speed_json(version: str, machine: dict, **parts) -> dict:
    """A small speed.json as benchmarks/speed.py writes it, with made-up figures."""
    setting = {"tasks": 4, "dim": 8, "hidden": [4], "classes": 3, "support": 2, "query": 2, "inner_steps": 1, "dtype": "torch.float32"}
    timings = {"l2l": _timing(2.0), "fast": _timing(7.0), "fast_dense_bmm": _timing(3.0)}
    timings |= {"l2l_first_order": _timing(4.0), "fast_first_order": _timing(9.0)}
    paper = {"available": True, "setting": setting, "timings": timings, "ratio": 3.5, "ratio_medians": 3.5}
    paper |= {"ratio_dense_bmm": 1.5, "ratio_first_order": 2.25, "one_thread_cpu_time": None, "load_average": [0.5, 0, 0]}
    return {
        "machine": {"device": "cpu", "device_name": "x86_64", "cpu_count": 2, "torch_threads": 2, "torch": "2.x", **machine},
        "started": "2031-01-02T03:04:05+0000",
        "version": version,
        "paper": paper,
        "scaling": {"available": True, "rows": [{"tasks": 4, "l2l_its_per_s": 2.0, "fast_its_per_s": 7.0, "ratio": 3.5, "repeats": 3}]},
        "seconds": 60,
        **parts,
    }


def test_speed_page_renders_old_and_new_speed_json_and_says_what_was_not_measured(generator, tmp_path):
    """The committed format (0.5.0: no CPU model, no `switch`), today's (a CPU model, `wall` not
    measured, `switch` measured) and missing files: each part is a figure or "not measured"."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "speed.json").write_text(json.dumps(_speed_json("0.5.0", {"load_average_at_start": [1.5, 1, 1]})), encoding="utf-8")
    page = generator.speed_page(old)
    assert "l2l-taskmix 0.5.0, started 2031-01-02 03:04 UTC" in page and "CPU model not recorded" in page
    assert "| second order, iterations/s (best of 3) | 2.00 | 7.00 | **3.50x** |" in page
    assert "load average 1.50 at the start" in page
    assert "| 4 | 2.00 | 7.00 | 3.50x | 3 |" in page  # the scaling row
    assert "`lowrank`) not measured" in page  # a --quick run times no lowrank strategy
    for part in ("taskmix", "features"):
        assert f"Not measured: `python benchmarks/speed.py` without `--skip {part}`." in page
    assert "the profile is left out with `--no-profile`" in page and "GFLOP per iteration" not in page
    assert "| second order, one thread, CPU time per iteration | not measured | not measured | |" in page
    assert "Not measured: `python benchmarks/speed.py --switch`." in page
    assert "Not measured: `python benchmarks/speed.py --wall`" in page
    assert "Not measured: `benchmarks/results/first_run.json` is not there" in page
    assert "Not measured: `benchmarks/results/adapt_predict.json` is not there" in page
    assert "Not measured: `benchmarks/results/scaling.json` is not there" in page

    new = tmp_path / "new"
    new.mkdir()
    switch = {"available": True, "method": "maml+taskmix", "iterations": 5}
    switch["runs"] = {e: [{"seed": 0, "macro_f1": f, "seconds": 3.0, "best_iteration": 5}] for e, f in (("l2l", 0.41), ("fast", 0.42))}
    wall = {"available": False, "why": "opt-in: pass --wall (runs the default benchmark command)"}
    record = _speed_json("0.9.0", {"cpu_model": "Example CPU 9000", "load_average_at_start": [2.25, 1, 1]}, switch=switch, wall=wall)
    (new / "speed.json").write_text(json.dumps(record), encoding="utf-8")
    page = generator.speed_page(new)
    assert "(x86_64; Example CPU 9000)" in page and "CPU model not recorded" not in page.split("## The main command")[0]
    assert "| 0 | 0.4100 | 0.4200 | 3 s | 3 s |" in page
    assert 'The file says: "opt-in: pass --wall (runs the default benchmark command)".' in page

    assert "Not measured: `benchmarks/results/speed.json` is not there" in generator.speed_page(tmp_path)


def test_speed_page_labels_each_timing_with_its_repeats(generator, tmp_path):
    """The first-order pair is timed fewer times than the second-order one: each row says its own count."""
    record = _speed_json("0.9.0", {})
    record["paper"]["timings"] |= {"l2l_first_order": _timing(4.0, repeats=2), "fast_first_order": _timing(9.0, repeats=2)}
    (tmp_path / "speed.json").write_text(json.dumps(record), encoding="utf-8")
    page = generator.speed_page(tmp_path)
    assert "| second order, iterations/s (best of 3) |" in page
    assert "| first order, iterations/s (best of 2) | 4.00 | 9.00 | 2.25x |" in page


def _scaling_json(grid: dict) -> dict:
    """A small scaling.json as benchmarks/scaling.py writes it: the fixed grid only."""
    machine = {"cpu_count": 2, "cuda": None, "torch": "2.x", "load_average_at_start": [1.0, 1, 1]}
    return {"version": "0.9.0", "started": "2031-01-02T03:04:05+0000", "machine": machine, "grid": grid, "seconds": 60}


@pytest.mark.parametrize(
    ("workers", "overhead", "said"),
    [
        ((1, 2), 0.75, "Ray's overhead per run: 0.8 s (1 run in flight against serial)."),
        ((1, 2), 0.0, "Ray's overhead per run: none measurable (1 run in flight took no longer than serial)."),
        ((2, 8), None, "Ray's overhead per run: not measured (no run with 1 in flight)."),
    ],
)
def test_scaling_section_says_what_the_ray_overhead_is(generator, tmp_path, workers, overhead, said):
    """scaling.py records the overhead only with 1 run in flight (`--workers 2` leaves it out) and
    clamps it at 0: the page neither crashes on the first nor calls the clamp a measured 0; each
    `--workers` count has its row (not only 1 and 2)."""
    grid = {"grid": "g", "runs": 4, "serial": {"wall_s": 100.0}, "ray_start_s": 2.0}
    grid |= {f"ray_{w}": {"wall_s": 100.0 / w, "speedup_vs_serial": float(w), "same_table": True} for w in workers}
    if overhead is not None:
        grid["ray_overhead_per_run_s"] = overhead
    (tmp_path / "scaling.json").write_text(json.dumps(_scaling_json(grid)), encoding="utf-8")
    page = generator.speed_page(tmp_path)
    assert said in page
    assert "| Ray, 2 runs in flight | 50 s | 2.00x | yes |" in page
    # every `--workers` count timed has its row, in order
    rows = [line for line in page.splitlines() if line.startswith("| Ray, ")]
    assert [row.split(" run")[0] for row in rows] == [f"| Ray, {w}" for w in workers]


def test_a_speed_page_that_differs_from_the_committed_files_is_stale(generator, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    pages = generator.render_pages()
    paper = json.loads((results / "speed.json").read_text(encoding="utf-8"))["paper"]
    share = paper["flops_per_iteration"]["fast"] / paper["flops_per_iteration"]["l2l"]
    assert f"**{paper['ratio']:.2f}x**" in pages["speed.md"] and f"{share:.0%} of learn2learn's arithmetic" in pages["speed.md"]
    first = json.loads((results / "first_run.json").read_text(encoding="utf-8"))
    now = f"| now | {first['new']['version']} ({first['new_commit'][:7]}) |"
    assert (
        f"{now} {first['new']['first_number_s']:.0f} s | {first['new']['first_column_s']:.0f} s | {first['new']['table_s']:.0f} s |"
        in pages["speed.md"]
    )
    cached = json.loads((results / "adapt_predict.json").read_text(encoding="utf-8"))["measured"]["predict_cached"]
    ms = "{:.0f} ms ({:.0f}-{:.0f})".format(*(1000 * cached[k] for k in ("median_s", "min_s", "max_s")))
    assert f"| predict 500 utterances (features cached) | {ms} | {cached['utterances_per_s']:,.0f} utterances/s |" in pages["speed.md"]
    assert "| Ray, 2 runs in flight | 89 s | 1.82x | yes |" in pages["speed.md"]
    assert "| 1 CPU worker (1 thread each) | 119 min | 40 min | **2.7 h** |" in pages["speed.md"]
    speed = json.loads((results / "speed.json").read_text(encoding="utf-8"))
    speed["paper"]["ratio"] = 6.5
    (results / "speed.json").write_text(json.dumps(speed), encoding="utf-8")
    assert "**6.50x**" in generator.render_pages(results)["speed.md"]
    assert generator.stale_pages(PAGES, results) == ["speed.md"]
    del first["new"]["first_number_s"], first["baseline"]
    (results / "first_run.json").write_text(json.dumps(first), encoding="utf-8")
    page = generator.render_pages(results)["speed.md"]
    assert "| the baseline | | not measured | | | |" in page and f"{now} not measured | {first['new']['first_column_s']:.0f} s |" in page


def test_the_speed_page_quotes_each_committed_measurement_and_docs_speed_copies_none(generator):
    """Every figure of speed.json, first_run.json, adapt_predict.json and scaling.json reaches the
    generated page; the hand-written docs/speed.md holds none of them, only a link."""
    results = ROOT / "benchmarks" / "results"
    speed, first, adapt, scaling = (
        json.loads((results / f"{n}.json").read_text()) for n in ("speed", "first_run", "adapt_predict", "scaling")
    )
    page = generator.render_pages()["speed.md"]
    paper, wall, new, grid = speed["paper"], speed["wall"], first["new"], scaling["grid"]
    figures = [
        f"| {paper['timings']['l2l']['its_per_s']:.2f} | {paper['timings']['fast']['its_per_s']:.2f} | **{paper['ratio']:.2f}x** |",
        f"(`dense`, plain `bmm` batching) {paper['ratio_dense_bmm']:.2f}x",
        *(
            f"| {row['tasks']} | {row['l2l_its_per_s']:.2f} | {row['fast_its_per_s']:.2f} | {row['ratio']:.2f}x |"
            for row in speed["scaling"]["rows"]
        ),
        f"{speed['features']['encoder_path_utt_per_s']:.0f} utterances/s through the package's encoder path",
        f"| {new['first_number_s']:.0f} s | {new['first_column_s']:.0f} s | {new['table_s']:.0f} s |",
        f"took {new['total_s'] - new['estimated_at_s']:.0f} s more",
        f"{first['setup']['total_s']:.0f} s (load {first['setup']['load_before']} before, {first['setup']['load_after']} after)",
        f"{adapt['measured']['predict_cached']['utterances_per_s']:,.0f} utterances/s",
        f"load {adapt['load_before']:.2f} before, {adapt['load_after']:.2f} after",
        f"| Ray, 1 run in flight | {grid['ray_1']['wall_s']:.0f} s | {grid['ray_1']['speedup_vs_serial']:.2f}x | yes |",
        f"{scaling['featurize']['serial_s']:.0f} s serially on 2 threads",
    ]
    if "default" in wall:  # --wall is opt-in: its figures when the committed run measured them
        figures += [
            f"| {wall['default']['wall_s']:.0f} s (2 workers x 1 thread) | {wall['sequential']['wall_s']:.0f} s (1 worker) |",
            f"do {wall['flops']['total'] / 1e12:.1f} TFLOP",
        ]
        assert wall["same_table"]
    else:
        figures.append("Not measured: `python benchmarks/speed.py --wall`")
    for figure in figures:
        assert figure in page, figure
    for source in ("speed", "first_run", "adapt_predict", "scaling"):
        assert f"`benchmarks/results/{source}.json`" in page
    assert first["same_table"] and first["same_records"] and not first["new_tree_dirty"]
    hand = (ROOT / "docs" / "speed.md").read_text(encoding="utf-8")
    assert "(results/speed.md)" in hand
    copied = [
        f"{paper['ratio']:.2f}x",
        f"{paper['timings']['fast']['its_per_s']:.2f}",
        f"{new['table_s']:.0f} s",
        f"{first['setup']['total_s']:.0f} s",
        f"{adapt['measured']['predict_cached']['utterances_per_s']:,.0f}",
        *([f"{wall['default']['wall_s']:.0f} s"] if "default" in wall else []),
        f"{grid['ray_2']['speedup_vs_serial']:.2f}x",
        f"{scaling['featurize']['serial_s']:.0f} s",
    ]
    assert [figure for figure in copied if figure in hand] == []
