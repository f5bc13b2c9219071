"""Rounding: paired differences are resolved only when their interval, widened by a margin,
excludes 0, and the script's flip-free margin is the smallest at which no perturbed rerun changes
a verdict (constructed cases with known answers); benchmarks/sensitivity.py on a tiny grid; its
figures are the committed measurement's. The margin in use (0) is benchmarks/variance.py's
(tests/test_variance.py)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from l2l_taskmix.benchmark import save_feature_split
from l2l_taskmix.benchmark.report import paired_table, rounding_words
from l2l_taskmix.benchmark.statistics import ROUNDING_MARGIN, ROUNDING_MEAN_SHIFT, paired_differences, seeds_to_resolve
from l2l_taskmix.features import FeatureTask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import sensitivity  # noqa: E402


def runs_of(scores):
    return [{"method": m, "seed": s, "macro_f1": f, "protocol": "paper"} for m, fs in scores.items() for s, f in enumerate(fs)]


# maml+taskmix - maml per seed: 0.03, 0.02, 0.04 -> mean 0.03, std 0.01, 95% half-width 0.0248
CASE = runs_of({"maml": [0.50, 0.52, 0.48], "maml+taskmix": [0.53, 0.54, 0.52]})


@pytest.mark.parametrize("margin, resolved", [(0.0, True), (0.005, True), (0.0052, False), (0.01, False)])
def test_a_difference_is_resolved_only_beyond_the_margin(margin, resolved):
    row = paired_differences(CASE, references=("maml",), margin=margin).iloc[0]
    assert math.isclose(row.ci_low, 0.03 - 0.0248413, abs_tol=1e-6)  # the interval itself does not change
    assert bool(row.resolved) is resolved


def test_the_margin_applies_to_differences_below_zero_too():
    below = runs_of({"maml": [0.53, 0.54, 0.52], "maml+taskmix": [0.50, 0.52, 0.48]})
    assert bool(paired_differences(below, references=("maml",), margin=0.004).iloc[0].resolved)
    assert not bool(paired_differences(below, references=("maml",), margin=0.006).iloc[0].resolved)


def test_the_default_margin_is_none_and_the_table_says_so():
    paired = paired_differences(CASE, references=("maml",))
    assert paired.attrs["margin"] == ROUNDING_MARGIN == 0  # benchmarks/variance.py: the seed interval holds rounding
    text = paired_table(paired)
    assert "the 95% interval excludes 0" in text and "widened" not in text
    assert "rounding margin" not in text
    assert "no margin is added" in rounding_words() and f"{ROUNDING_MEAN_SHIFT:.3f}" in rounding_words()
    widened = paired_table(paired_differences(CASE, references=("maml",), margin=0.004))
    assert "widened by 0.004 on both sides for rounding" in widened and "with the rounding margin" in widened


def test_seeds_to_resolve_counts_beyond_the_margin():
    assert seeds_to_resolve(0.013, delta=0.01) == 9
    assert seeds_to_resolve(0.013, delta=0.01 + 0.005, margin=0.005) == 9
    assert seeds_to_resolve(0.013, delta=0.005, margin=0.005) is None
    assert seeds_to_resolve(0.013, delta=0.02, margin=0.005) == seeds_to_resolve(0.013, delta=0.015, margin=0.0)
    assert seeds_to_resolve(0.013, delta=0.02, margin=0.005) > seeds_to_resolve(0.013, delta=0.02, margin=0.0)


def test_the_flip_free_margin_and_the_mean_shift_are_the_committed_measurements():
    measured = json.loads((ROOT / "benchmarks" / "results" / "sensitivity.json").read_text())
    spread = measured["spread"]
    margin = spread["recommended_margin"]  # the script's own rule; the margin in use is variance.py's (test_variance)
    assert margin == sensitivity.stable_margin(measured["perturbations"]) >= spread["max_difference_shift"]
    assert ROUNDING_MEAN_SHIFT == spread["recommended_mean_shift"] >= spread["max_mean_shift"]
    for name, perturbation in measured["perturbations"].items():
        # every perturbation's shift of every paired difference is within that margin ...
        assert all(abs(d["shift"]) <= margin for d in perturbation["differences"] if not math.isnan(d["shift"])), name
        # ... and at it every perturbed rerun resolves what the reference resolves, and only that
        assert all(
            sensitivity.resolved(*d["reference_ci"], margin) == sensitivity.resolved(d["ci_low"], d["ci_high"], margin)
            for d in perturbation["differences"]
        ), name
        assert perturbation["flips_with_margin"] == 0
    assert any(perturbation["flips"] for perturbation in measured["perturbations"].values())  # at margin 0 some verdicts did flip


def diff(shift, reference_ci, perturbed_ci):
    return {"shift": shift, "reference_ci": list(reference_ci), "ci_low": perturbed_ci[0], "ci_high": perturbed_ci[1]}


@pytest.mark.parametrize(
    "differences, margin",
    [
        ([diff(0.0021, (0.03, 0.05), (0.03, 0.05))], 0.003),  # no flip: the largest shift, rounded up
        ([diff(0.002, (0.004, 0.05), (-0.001, 0.045))], 0.004),  # resolved in the reference only: up to its low end
        ([diff(0.001, (-0.01, 0.03), (0.0065, 0.02))], 0.007),  # resolved in the rerun only (a narrow interval)
        ([diff(-0.001, (-0.05, -0.012), (-0.04, 0.001))], 0.012),  # below 0 as well
        ([diff(0.0, (0.02, 0.04), (0.02, 0.04)), diff(float("nan"), (math.nan, math.nan), (math.nan, math.nan))], 0.0),
    ],
)
def test_stable_margin_is_the_smallest_without_a_flip(differences, margin):
    got = sensitivity.stable_margin({"p": {"differences": differences}})
    assert got == margin
    for d in differences:  # at the margin no verdict differs, 0.001 below it one does
        assert sensitivity.resolved(*d["reference_ci"], got) == sensitivity.resolved(d["ci_low"], d["ci_high"], got)
    if got > max(abs(d["shift"]) for d in differences if not math.isnan(d["shift"])) + 0.001:
        below = round(got - 0.001, 3)
        assert any(
            sensitivity.resolved(*d["reference_ci"], below) != sensitivity.resolved(d["ci_low"], d["ci_high"], below) for d in differences
        )


def test_another_machines_results_are_one_more_perturbation(tmp_path):
    from l2l_taskmix.benchmark.statistics import summarize

    mine = runs_of({"maml": [0.50, 0.52, 0.48], "maml+taskmix": [0.53, 0.54, 0.52]})
    theirs = runs_of({"maml": [0.51, 0.53, 0.49], "maml+taskmix": [0.525, 0.535, 0.515]})  # maml +0.01, taskmix -0.005

    def record(runs):
        return {
            "summary": summarize(runs, ["maml", "maml+taskmix"]).to_dict("records"),
            "paired": paired_differences(runs, ["maml", "maml+taskmix"], references=("maml",), margin=0).to_dict("records"),
            "runs": runs,
        }

    result = {"reference": record(mine), "perturbations": {}}
    shifts = sensitivity.compare_machine(result, record(theirs))
    assert shifts["max_mean_shift"] == pytest.approx(0.01) and shifts["max_run_shift"] is None and shifts["runs_compared"] == 6
    (d,) = shifts["differences"]
    assert d["shift"] == pytest.approx(-0.015) and d["resolved_reference"] and not d["resolved_perturbed"]  # 0.03 -> 0.015, wider
    assert len(shifts["flips"]) == 1
    result["perturbations"]["machine"] = shifts
    margin = sensitivity.finish(result)["spread"]["recommended_margin"]
    assert margin == 0.015 and shifts["flips_with_margin"] == 0
    with pytest.raises(SystemExit, match="does not hold the reference's grid"):
        sensitivity.compare_machine(result, record(runs_of({"mtl": [0.5, 0.6, 0.7], "transfer": [0.5, 0.5, 0.5]})))
    # from the command line, with --report-only; the report names the machine's perturbation
    out = tmp_path / "s.json"
    (tmp_path / "theirs.json").write_text(json.dumps(record(theirs)))
    base = {
        "version": "x",
        "date": "d",
        "machine": "x86_64",
        "cpus": 2,
        "torch": "t",
        "load_before": 0.1,
        "load_after": 0.2,
        "seconds": 1.0,
        "config": {"dataset": "tiny", "methods": ["maml", "maml+taskmix"], "seeds": 3, "protocols": ["paper"]},
        "reference": record(mine),
        "perturbations": {},
    }
    out.write_text(json.dumps(base))
    assert (
        sensitivity.main(["--report-only", "--out", str(out), "--machine", str(tmp_path / "theirs.json"), "--machine-how", "a Xeon"]) == 0
    )
    written = json.loads(out.read_text())
    assert written["perturbations"]["machine"]["how"] == "a Xeon" and written["spread"]["recommended_margin"] == margin
    assert "| machine: a Xeon | 6 | n/a | 0.0100 | 0.0150 |" in out.with_suffix(".md").read_text()


def test_nudge_moves_every_feature_by_one_ulp():
    from l2l_taskmix.benchmark import BenchmarkData

    x = torch.randn(50, 7)
    data = BenchmarkData(
        [FeatureTask("a", x, torch.arange(50) % 2, ["p", "q"])], [FeatureTask("b", x + 1, torch.arange(50) % 2, ["p", "q"])]
    )
    moved = sensitivity.nudge(data)
    for before, after in ((data.train[0].x, moved.train[0].x), (data.test[0].x, moved.test[0].x)):
        up, down = torch.nextafter(before, torch.full_like(before, math.inf)), torch.nextafter(before, torch.full_like(before, -math.inf))
        assert bool(((after == up) | (after == down)).all()) and bool((after != before).all())
        assert 0.3 < float((after == up).float().mean()) < 0.7
    assert torch.equal(moved.train[0].x, sensitivity.nudge(data).train[0].x)  # seeded


@pytest.mark.slow
def test_tiny_grid_two_perturbations_within_the_reported_spread(tmp_path):
    g = torch.Generator().manual_seed(0)

    def task(name):
        return FeatureTask(name, torch.randn(40, 12, generator=g), torch.arange(40) % 4, ["a", "b", "c", "d"])

    path = save_feature_split(tmp_path / "tiny.pt", [task(f"tr{k}") for k in range(4)], [task(f"te{k}") for k in range(2)])
    out = tmp_path / "sensitivity.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sensitivity.py"),
            "--dataset",
            str(path),
            "--methods",
            "maml,maml+taskmix",
            "--seeds",
            "3",
            "--protocols",
            "paper",
            "--iterations",
            "12",
            "--finetune-steps",
            "10",
            "--perturbations",
            "threads,ulp",
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["perturbations"]) == {"threads", "ulp"}
    reference = {(r["protocol"], r["method"]): r["macro_f1_mean"] for r in result["reference"]["summary"]}
    spread = result["spread"]
    for p in result["perturbations"].values():
        assert len(p["runs"]) == 6 and len(p["means"]) == 2
        for m in p["means"]:  # each perturbed table is within the reported spread of the reference
            assert abs(m["perturbed"] - reference[(m["protocol"], m["method"])]) <= spread["max_mean_shift"] + 1e-12
        assert p["max_run_shift"] == max(abs(r["shift"]) for r in p["runs"])
        for d in p["differences"]:
            assert abs(d["shift"]) <= spread["max_difference_shift"] + 1e-12
    margin = spread["recommended_margin"]
    assert margin >= spread["max_difference_shift"] and margin == sensitivity.stable_margin(result["perturbations"])
    for p in result["perturbations"].values():  # at the reported margin both perturbed runs resolve what the reference does
        assert p["flips_with_margin"] == 0
        assert all(d["resolved_with_margin"] == d["reference_resolved_with_margin"] for d in p["differences"])
    assert "## threads" in out.with_suffix(".md").read_text()
    assert (result["config"]["iterations"], result["config"]["finetune_steps"]) == (12, 10)
