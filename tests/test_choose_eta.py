"""benchmarks/choose_eta.py: the default eta is judged on meta-validation scores only."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def choose(benchmark_script):
    return benchmark_script("choose_eta")


def test_summary_names_the_best_mean_and_whether_it_stands_out(choose):
    flat = choose.summarize({"0.5": [0.70, 0.74], "1": [0.72, 0.74], "2": [0.71, 0.73]}, default=1.0)
    assert flat["best"] == "1" and flat["values"]["1"]["mean"] == pytest.approx(0.73)
    assert flat["spread_of_means"] == pytest.approx(0.01) and flat["median_std"] == pytest.approx(0.0141, abs=1e-4)
    assert flat["stands_out"] is False
    steep = choose.summarize({"1": [0.70, 0.71], "4": [0.80, 0.81]}, default=1.0)
    assert steep["best"] == "4" and steep["stands_out"] is True
    one_seed = choose.summarize({"1": [0.7], "2": [0.6]}, default=1.0)
    assert one_seed["median_std"] is None and one_seed["stands_out"] is None


def test_report_quotes_every_score_and_the_verdict(choose):
    result = {
        "command": "python benchmarks/choose_eta.py",
        "date": "2026-01-01 00:00 UTC",
        "version": "x",
        "cpus": 2,
        "load_before": 0.1,
        "load_after": 0.2,
        "seconds": 60.0,
        "seeds": 2,
        **choose.summarize({"1": [0.72, 0.74], "2": [0.71, 0.73]}, default=1.0),
    }
    text = choose.markdown(result)
    assert "| 1 | 0.730 ± 0.014 | 0.720, 0.740 |" in text and "| 2 | 0.720 ± 0.014 | 0.710, 0.730 |" in text
    assert "Best mean: eta = 1. The means span 0.010, less than the median seed-to-seed std (0.014): no value stands out." in text
    assert "Meta-test scores are not used." in text


def test_scores_read_the_validation_score_of_each_run_in_seed_order(choose, tmp_path):
    runs = [{"seed": 1, "val_macro_f1": 0.6, "macro_f1": 0.1}, {"seed": 0, "val_macro_f1": 0.5, "macro_f1": 0.9}]
    (tmp_path / "results.json").write_text(json.dumps({"runs": runs}), encoding="utf-8")
    assert choose.scores(tmp_path) == [0.5, 0.6]  # the validation scores, never macro_f1 (meta-test)


@pytest.mark.parametrize("argv, message", [(["--values", "1,0"], "eta must be > 0"), (["--seeds", "0"], "at least 1")])
def test_bad_arguments_are_refused_before_any_run(choose, argv, message, capsys, monkeypatch):
    monkeypatch.setattr(choose.subprocess, "run", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(SystemExit):
        choose.main(argv)
    assert message in capsys.readouterr().err


def test_committed_measurement_supports_the_default_and_the_docs_quote_it(choose):
    from l2l_taskmix.mixing import DEFAULT_ETA

    r = json.loads((ROOT / "benchmarks" / "results" / "choose_eta.json").read_text(encoding="utf-8"))
    assert r["default"] == DEFAULT_ETA and r["seeds"] >= 2
    # the default is the best mean, or no value stands out of the seed-to-seed noise
    assert float(r["best"]) == DEFAULT_ETA or r["stands_out"] is False
    page = " ".join((ROOT / "docs" / "benchmark.md").read_text(encoding="utf-8").split())
    means = ", ".join(f"{row['mean']:.3f}" for row in r["values"].values())
    assert f"scored {means} mean meta-validation macro-F1" in page
    assert f"(`benchmarks/results/choose_eta.json`, {r['date']}, on a 2-core CPU" in page
