"""benchmarks/speed.py's FLOP count of the default grid counts every factor it names."""

import torch

from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
from l2l_taskmix.features import FeatureTask


def tiny_data():
    g = torch.Generator().manual_seed(0)

    def task(name):
        return FeatureTask(name, torch.randn(24, 6, generator=g), torch.arange(24) % 3, ["a", "b", "c"])

    return BenchmarkData([task(f"tr{k}") for k in range(4)], [task(f"te{k}") for k in range(2)])


def test_grid_flops_scales_with_iterations_seeds_and_validation_checks(benchmark_script, monkeypatch):
    speed = benchmark_script("speed")
    monkeypatch.setattr(speed, "count_flops", lambda step: 1)  # each counted call: one FLOP
    data = tiny_data()

    def flops(**settings):
        config = BenchmarkConfig(methods=("transfer", "maml", "maml+taskmix"), batch_size=4, hidden=(8,), val_tasks=1, **settings)
        return speed.grid_flops(config, data)

    one = flops(iterations=10, seeds=1, eval_every=5, protocols=("paper",))
    # training: 2 meta-trained methods (transfer trains nothing) x 10 iterations x 1 seed;
    # fine-tuning: 3 methods x 1 seed
    assert one == {"training": 2 * 10, "finetuning": 3, "total": 23}
    more = flops(iterations=30, seeds=3, eval_every=5, protocols=("paper",))
    assert more["training"] == 2 * 30 * 3 and more["finetuning"] == 3 * 3
    select = flops(iterations=10, seeds=2, eval_every=4, protocols=("select",))
    # model selection adds ceil(10 / 4) = 3 validation checks per seed for each trained method
    assert select["training"] == 2 * 10 * 2 and select["finetuning"] == 3 * 2 + 2 * 3 * 2
