"""benchmarks/first_run.py on a tiny task table: both paths run from empty caches in a temporary
folder, their times are read off their output, and the tables and records are compared."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import first_run  # noqa: E402


def table(path):
    rows = [
        {"task": f"t{k}", "text": f"{word} request {k} {i}", "intent": word}
        for k in range(5)
        for i in range(8)
        for word in ("alarm", "music")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_both_paths_timed_and_compared(tmp_path):
    data = table(tmp_path / "tasks.jsonl")
    out = tmp_path / "first_run.json"
    command = (
        f"--dataset {data} --num-train 3 --methods mtl,maml --seeds 1 --iterations 4 --eval-every 2 --finetune-steps 3 "
        "--workers 1 --no-progress"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "first_run.py"),
            "--no-setup",
            "--baseline",
            "HEAD",
            "--command",
            command,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["same_table"] and result["same_records"] and result["runs"] == 4 and result["setup"] is None
    assert result["cpu_model"] == first_run.cpu_model() and result["cpu_model"] in out.with_suffix(".md").read_text()
    for name in ("baseline", "new"):
        step = result[name]
        assert step["rc"] == 0 and 0 < step["first_number_s"] <= step["table_s"] <= step["total_s"]
    new = result["new"]
    assert new["first_number_s"] <= new["first_column_s"] <= new["table_s"]  # the paper column came before the table
    assert new["estimate"].startswith("about ") and new["features_s"] >= 0
    assert "| maml" in result["table"] and "Same table: yes" in out.with_suffix(".md").read_text()
    assert Path(result["temporary_folder"]).is_relative_to(tempfile.gettempdir())  # nothing written in the checkout


def test_the_final_table_is_the_one_after_the_title(tmp_path):
    log = tmp_path / "log"
    lines = [
        "data: x",
        "",
        "Paper protocol (final weights), all 2 runs done (the other protocol's runs go on):",
        "",
        "| Method | early |",
        "| --- | ---: |",
        "| maml | 0.1 |",
        "",
        "Average Macro F1 on x (y); z",
        "",
        "| Method | final |",
        "| --- | ---: |",
        "| maml | 0.2 |",
        "",
        "Paper protocol: ...",
    ]
    log.write_text("".join(f"{k:7.1f} {line}\n" for k, line in enumerate(lines)))
    assert first_run.final_table(log) == "| Method | final |\n| --- | ---: |\n| maml | 0.2 |"


def test_times_are_read_off_the_lines(tmp_path):
    script = (
        "import time\n"
        "for line in ['data: features of 1,234 distinct texts ready after 7 s', "
        "'4 runs, 2 at a time; about 1.5 min left (an estimate)',\n"
        "             'paper  maml  seed 0: macro-F1 0.500  (1 s)',\n"
        "             'Paper protocol (final weights), all 1 runs done (the other protocol',\n"
        "             'Average Macro F1 on x', '', '| Method | a |']:\n"
        "    print(line, flush=True); time.sleep(0.05)\n"
    )
    marks = first_run.timed_lines([sys.executable, "-c", script], env=None, log=tmp_path / "log", cwd=tmp_path)
    assert marks["rc"] == 0 and marks["features_s"] == 7.0 and marks["estimate"] == "about 1.5 min"
    assert marks["estimated_at_s"] <= marks["first_number_s"] <= marks["first_column_s"] <= marks["table_s"] <= marks["total_s"]


def test_the_cpu_is_named(tmp_path):
    name = first_run.cpu_model()
    assert isinstance(name, str) and name.strip()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert name in cpuinfo.read_text()  # the processor's own name, not the architecture


def test_runs_with_a_python_without_torch(tmp_path):
    """A first run starts before any set-up: the script itself needs only the standard library."""
    block = "import sys; sys.modules['torch'] = None; import runpy; sys.argv = ['first_run.py', '--help']; "
    block += f"runpy.run_path({str(ROOT / 'benchmarks' / 'first_run.py')!r}, run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--baseline" in done.stdout
