"""``l2l-taskmix tune``: per-method search spaces, the study on meta-validation tasks only, its
outputs read by ``benchmark --config``, resuming after a kill, and the refusals."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
from l2l_taskmix.benchmark.config import METHOD_FIELDS
from l2l_taskmix.benchmark.datasets import save_feature_split
from l2l_taskmix.benchmark.methods import METHODS, SearchParam
from l2l_taskmix.benchmark.run import run_key
from l2l_taskmix.benchmark.runner import run_benchmark
from l2l_taskmix.benchmark.tune import check_space, run_tune, score_settings
from l2l_taskmix.cli import build_parser, config_from_args, main
from l2l_taskmix.features import FeatureTask

pytestmark = pytest.mark.usefixtures("one_thread")

#: A narrow space for tiny studies: a few iterations, the rates that matter.
SPACE = {
    "maml": (SearchParam("inner_lr", 0.05, 0.5, log=True), SearchParam("iterations", 2, 6, integer=True)),
    "mtl": (SearchParam("outer_lr", 1e-3, 1e-1, log=True), SearchParam("iterations", 2, 6, integer=True)),
}


def tasks(count, seed=0, classes=3, rows=24):
    g = torch.Generator().manual_seed(seed)
    names = [chr(ord("a") + c) for c in range(classes)]
    return [FeatureTask(f"t{seed}-{k}", torch.randn(rows, 8, generator=g), torch.arange(rows) % classes, names) for k in range(count)]


def data(test_seed=1):
    return BenchmarkData(tasks(4), tasks(1, seed=test_seed, classes=4))


def small(**changes):
    base = dict(iterations=4, eval_every=2, batch_size=4, hidden=(8,), val_tasks=1, finetune_steps=3, seeds=2)
    return BenchmarkConfig(**{**base, **changes})


def rows(out):
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def study(out, **kwargs):
    kwargs = {"methods": ["maml", "mtl"], "trials": 3, "data": data(), "space": SPACE, "progress": False, "echo": False, **kwargs}
    return run_tune(kwargs.pop("config", small()), out, **kwargs)


def without_seconds(table):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in table]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """``straight(trials)``: the trials.csv rows of ``study(out, trials=trials)`` run through
    from an empty folder, serially, here; each study runs once for the module (the reference
    several tests compare theirs with)."""
    done = {}

    def get(trials):
        if trials not in done:
            out = tmp_path_factory.mktemp(f"straight-{trials}")
            study(out, trials=trials)
            done[trials] = rows(out)
        return done[trials]

    return get


def test_every_space_names_method_settings_within_their_checks():
    config = BenchmarkConfig()
    for name, method in METHODS.items():
        assert method.space and {p.name for p in method.space} <= set(METHOD_FIELDS), name
        check_space(name, method.space, config)  # both bounds pass each setting's own check
        assert {"finetune_steps", "finetune_lr"} <= {p.name for p in method.space}
    assert {p.name for p in METHODS["transfer"].space} == {"finetune_steps", "finetune_lr"}
    assert {p.name for p in METHODS["maml+taskmix"].space} >= {"inner_lr", "inner_steps", "outer_lr", "iterations", "eta", "num_synthetic"}
    assert "eta" not in {p.name for p in METHODS["maml"].space} and "num_synthetic" not in {p.name for p in METHODS["maml+metamix"].space}
    with pytest.raises(ValueError, match="not a per-method setting"):
        check_space("maml", (SearchParam("hidden", 1, 2, integer=True),), config)
    with pytest.raises(ValueError, match=r"per_method.maml: inner_steps == 0"):
        check_space("maml", (SearchParam("inner_steps", 0, 3, integer=True),), config)


def test_importing_the_package_and_the_benchmark_does_not_load_optuna():
    code = (
        "import sys, l2l_taskmix, l2l_taskmix.benchmark, l2l_taskmix.benchmark.tune, l2l_taskmix.cli;"
        "l2l_taskmix.benchmark.BenchmarkConfig; print('optuna' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_trial_is_the_final_weights_validation_score_per_seed():
    values = score_settings("maml", {"iterations": 3}, small(), data(), seeds=2)
    again = score_settings("maml", {"iterations": 3}, small(eval_every=1), data(), seeds=2)  # eval_every does not matter
    assert len(values) == 2 and values == again and all(0 <= v <= 1 for v in values)
    assert score_settings("maml", {"iterations": 3, "finetune_steps": 30}, small(), data(), seeds=1) != values[:1]
    transfer = score_settings("transfer", {"finetune_steps": 5}, small(), data(), seeds=1)
    assert len(transfer) == 1 and 0 <= transfer[0] <= 1


def test_a_study_writes_its_trials_and_a_best_yaml_that_the_benchmark_uses(tmp_path):
    out = tmp_path / "tune"
    best = study(out)
    table = rows(out)
    assert [r["method"] for r in table].count("maml") == 3 and [r["method"] for r in table].count("mtl") == 3
    assert all(r["state"] == "COMPLETE" and r["seed0"] and r["seed1"] for r in table)
    for r in table:  # the value is the mean over the seeds
        assert float(r["value"]) == pytest.approx((float(r["seed0"]) + float(r["seed1"])) / 2)
    top = max((r for r in table if r["method"] == "maml"), key=lambda r: float(r["value"]))
    assert best["maml"] == {"inner_lr": float(top["inner_lr"]), "iterations": int(top["iterations"])}
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "study.json").read_text())["trials"] == 3

    # benchmark --config best.yaml runs each method at its tuned values (through the run records)
    dataset = tmp_path / "tiny.pt"
    save_feature_split(dataset, data().train, data().test)
    text = (out / "best.yaml").read_text()
    assert text.startswith("# Per-method settings") and "meta-test tasks are never used" in text
    flags = ["--dataset", str(dataset), "--methods", "maml,mtl", "--seeds", "1", "--protocols", "paper"]
    cfg = config_from_args(build_parser().parse_args(["benchmark", "--config", str(out / "best.yaml"), *flags]))
    assert cfg.hidden == (8,) and cfg.val_tasks == 1 and cfg.batch_size == 4  # the study's shared settings
    run_benchmark(cfg, tmp_path / "bench", data=data(), progress=False, echo=False)
    runs = {r["method"]: r for r in json.loads((tmp_path / "bench" / "results.json").read_text())["runs"]}
    for method in ("maml", "mtl"):
        assert runs[method]["curve"][-1]["iteration"] == best[method]["iterations"]
        assert runs[method]["key"] == run_key(cfg.replace(per_method=(), **best[method]), data())


def test_the_meta_test_tasks_are_never_used(tmp_path, straight):
    study(tmp_path / "b", trials=2, data=data(test_seed=9))  # other meta-test features, same class count
    assert without_seconds(straight(2)) == without_seconds(rows(tmp_path / "b"))


def test_a_study_extended_or_resumed_draws_what_an_uninterrupted_one_would(tmp_path, straight):
    study(tmp_path / "grow", trials=2)
    first = rows(tmp_path / "grow")
    study(tmp_path / "grow", trials=4)
    grown = rows(tmp_path / "grow")
    assert without_seconds(grown) == without_seconds(straight(4))
    assert [r["seconds"] for r in grown if r in first] == [r["seconds"] for r in first]  # kept, not run again
    # a lower --trials afterwards: each method's best of its first trials only, the budget
    best = study(tmp_path / "grow", trials=2)
    top = max((r for r in first if r["method"] == "maml"), key=lambda r: float(r["value"]))
    assert best["maml"] == {"inner_lr": float(top["inner_lr"]), "iterations": int(top["iterations"])}
    assert without_seconds(rows(tmp_path / "grow")) == without_seconds(grown)


@pytest.mark.slow
def test_two_workers_give_the_serial_study(tmp_path, straight):
    """With a trial of each method in flight at once, each method's trials still run one after
    another: the study does not depend on the number of workers."""
    study(tmp_path / "two", trials=2, workers=2)
    assert without_seconds(straight(2)) == without_seconds(rows(tmp_path / "two"))


def test_a_resume_under_other_settings_is_refused_naming_them(tmp_path):
    study(tmp_path, trials=1, methods=["maml"])
    with pytest.raises(ValueError, match=r"other settings \(batch_size: 4 there, 5 now\)"):
        study(tmp_path, trials=1, methods=["maml"], config=small(batch_size=5))
    with pytest.raises(ValueError, match="other settings .*seeds"):
        study(tmp_path, trials=1, methods=["maml"], config=small(seeds=1))
    with pytest.raises(ValueError, match="other settings .*space"):
        study(tmp_path, trials=1, methods=["maml"], space={"maml": SPACE["maml"][:1]})


def test_bad_input_is_refused_before_any_trial(tmp_path, capsys):
    with pytest.raises(ValueError, match="trials == 0"):
        study(tmp_path, trials=0)
    with pytest.raises(ValueError, match="val_tasks == 0"):
        study(tmp_path, config=small(val_tasks=0))
    config = tmp_path / "settings.yaml"
    config.write_text("iterations: 4\n")
    for argv, message in [
        (["--trials", "0"], "--trials == 0"),
        (["--val-tasks", "0"], "--val-tasks 0"),
        (["--config", str(config), "--out", str(config)], "is the --config file"),
        (["--seed", "-1"], "--seed == -1"),
    ]:
        assert main(["tune", "--dataset", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_missing_optuna_names_the_extra():
    from l2l_taskmix.cli import missing_dependency_message

    message = missing_dependency_message(ModuleNotFoundError("No module named 'optuna'", name="optuna"), "tune")
    assert "pip install 'l2l-taskmix[tune]'" in message


def test_tune_help_lists_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--trials",
        "--seeds",
        "--seed",
        "--methods",
        "--out",
        "--config",
        "--workers",
        "--threads",
        "--ray",
        "--ray-address",
        "--no-progress",
        "--val-tasks",
    ):
        assert flag in text, flag
    assert "--protocols" not in text


SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_tune import small, study
torch.set_num_threads(1)
study(__import__("pathlib").Path(sys.argv[1]), trials=4, config=small(iterations=4), echo=True)
"""


@pytest.mark.slow
def test_a_study_killed_mid_trial_resumes_without_repeating_finished_trials(tmp_path, straight):
    """kill -9 while a trial runs, after at least one finished: the rerun keeps the finished trials
    (untouched), runs the interrupted trial's settings again, and ends with the trials of an
    uninterrupted study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    script = tmp_path / "tune_script.py"
    script.write_text(SCRIPT.format(tests=str(__import__("pathlib").Path(__file__).parent)))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed)], stderr=subprocess.DEVNULL)
    deadline, running = time.time() + 180, False
    while time.time() < deadline and not running:
        time.sleep(0.02)
        if (killed / "trials.csv").exists() and (killed / "study.journal").exists():
            storage = JournalStorage(JournalFileBackend(str(killed / "study.journal")))
            states = [t.state for s in storage.get_all_studies() for t in storage.get_all_trials(s._study_id, deepcopy=False)]
            running = optuna.trial.TrialState.RUNNING in states and optuna.trial.TrialState.COMPLETE in states
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert running, "the study finished before a trial could be interrupted"
    before = [r for r in rows(killed) if r["state"] == "COMPLETE"]
    assert 1 <= len(before) < 8
    subprocess.run([sys.executable, str(script), str(killed)], check=True, stderr=subprocess.DEVNULL)
    after = rows(killed)
    assert [r for r in after if r in before] == before  # the finished trials kept as they were (seconds included)
    assert any(r["state"] == "FAIL" for r in after)  # the interrupted one, marked failed and run again
    complete = [r for r in after if r["state"] == "COMPLETE"]

    def points(table):
        drop = ("seconds", "trial", "state")
        return sorted(tuple(sorted((k, v) for k, v in r.items() if k not in drop)) for r in table if r["state"] == "COMPLETE")

    assert len(complete) == 8 and points(after) == points(straight(4))  # the script's study, uninterrupted


def test_the_tune_page_lists_every_space_as_declared():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tune.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| `")}
    declared = {p.name: p for method in METHODS.values() for p in method.space}
    assert set(rows) == set(declared)
    for name, param in declared.items():
        low, _, high = rows[name].split(",")[0].split()
        assert (float(low), float(high)) == (param.low, param.high), (name, rows[name])
        assert ("log scale" in rows[name]) == param.log and (f"step {param.step}" in rows[name]) == bool(param.step), name


def test_settings_that_diverge_score_the_worst_macro_f1_in_a_study():
    from l2l_taskmix.benchmark.tune import DIVERGED

    wild = {"iterations": 3, "inner_lr": 1e12}
    with pytest.raises(FloatingPointError):
        score_settings("maml", wild, small(), data(), seeds=1)
    assert score_settings("maml", wild, small(), data(), seeds=2, diverged=DIVERGED) == [0.0, 0.0]


@pytest.mark.slow
def test_a_study_on_ray_gives_the_serial_trials(tmp_path, local_ray, straight):
    """The trials as Ray tasks (a local instance of 2 CPUs): the serial study's trials."""
    study(tmp_path / "on-ray", trials=2, ray_address="local")  # joins the running instance
    assert without_seconds(straight(2)) == without_seconds(rows(tmp_path / "on-ray"))


def test_the_committed_study_has_one_budget_and_a_best_yaml_the_benchmark_reads():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "tune"
    table = rows(folder)
    complete = [r for r in table if r["state"] == "COMPLETE"]
    counts = {m: sum(r["method"] == m for r in complete) for m in METHODS}
    assert len(set(counts.values())) == 1 and min(counts.values()) >= 10, counts  # every method, the same budget
    assert all(r["seed0"] and r["seed1"] for r in complete)
    cfg = config_from_args(build_parser().parse_args(["benchmark", "--config", str(folder / "best.yaml")]))
    for name, method in METHODS.items():
        tuned = dict(dict(cfg.per_method)[name])
        assert set(tuned) == {p.name for p in method.space}, name
        best = max((r for r in complete if r["method"] == name), key=lambda r: float(r["value"]))
        assert all(float(best[k]) == pytest.approx(v) for k, v in tuned.items()), name
    assert json.loads((folder / "study.json").read_text())["seeds"] == 2


def test_a_resume_with_another_sampler_seed_is_refused_naming_it(tmp_path):
    """The sampler's seed decides which settings later trials draw: a resume under another one
    would make a study that no uninterrupted run gives."""
    study(tmp_path, trials=1, methods=["maml"])
    with pytest.raises(ValueError, match=r"other settings \(sampler_seed: 0 there, 1 now\)"):
        study(tmp_path, trials=2, methods=["maml"], seed=1)


def test_best_yaml_keeps_the_per_method_settings_the_study_ran_under(tmp_path):
    """A setting the input config gave one method (not searched) decided that method's trials:
    best.yaml, which the benchmark reads, gives it too, with the searched ones."""
    config = small().replace(per_method={"maml": {"finetune_steps": 7}, "mtl": {"outer_lr": 0.02}, "maml+taskmix": {"num_synthetic": None}})
    best = study(tmp_path, trials=1, methods=["maml"], config=config)
    cfg = BenchmarkConfig.from_sources(yaml.safe_load((tmp_path / "best.yaml").read_text()))
    assert cfg.for_method("maml").finetune_steps == 7 and cfg.for_method("maml").inner_lr == best["maml"]["inner_lr"]
    assert cfg.for_method("mtl").outer_lr == 0.02  # a method not tuned keeps its section
    assert dict(cfg.per_method)["maml+taskmix"] == (("num_synthetic", None),)  # None (N = T) kept as given


def test_best_yaml_states_the_value_of_the_settings_it_gives_under_a_lowered_budget(tmp_path):
    """With --trials lowered after a longer study, best.yaml gives each method's best of its first
    trials; its header states that trial's value, not the best of every trial in the journal."""
    study(tmp_path, trials=4, methods=["maml"])
    table = [r for r in rows(tmp_path) if r["method"] == "maml"]
    study(tmp_path, trials=1, methods=["maml"])
    text = (tmp_path / "best.yaml").read_text()
    assert f"#   maml: {float(table[0]['value']):.4f}" in text, text
    assert json.loads((tmp_path / "study.json").read_text())["trials"] == 1


@pytest.mark.parametrize(
    "param, message",
    [
        (SearchParam("iterations", 100, 800, integer=True, step=0), r"iterations: step 0 .*positive whole number"),
        (SearchParam("iterations", 100, 800, integer=True, step=-50), r"iterations: step -50 .*positive whole number"),
        (SearchParam("iterations", 100, 820, integer=True, step=50), r"iterations: 820 - 100 is not a multiple of the step 50"),
        (SearchParam("iterations", 100, 800, log=True, integer=True, step=50), r"iterations: a log scale takes no step"),
        (SearchParam("inner_lr", 0.1, 1.0, step=3), r"inner_lr: a step needs integer=True"),
        (SearchParam("inner_steps", 1.5, 5, integer=True), r"inner_steps: the bounds of a whole number must be whole"),
    ],
)
def test_a_search_param_optuna_would_change_or_refuse_is_refused_naming_it(param, message):
    with pytest.raises(ValueError, match=f"the search space of maml: {message}"):
        check_space("maml", (param,), BenchmarkConfig())


def test_a_trial_runs_on_the_config_s_device(monkeypatch):
    """--device reaches the trials (as the benchmark's runs): CUDA asked for where there is none
    is refused naming it, not run on the CPU instead (CUDA hidden, so a GPU machine checks it too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device == 'cuda', but no CUDA GPU"):
        score_settings("maml", {"iterations": 2}, small(device="cuda"), data(), seeds=1)


def test_a_study_s_fingerprint_names_a_gpu_and_not_the_cpu():
    from l2l_taskmix.benchmark.tune import _fingerprint

    cpu = _fingerprint("maml", small(), 2, "d", SPACE["maml"], 0, device="cpu")
    assert "device" not in cpu  # a CPU study's fingerprint does not depend on the flag
    assert _fingerprint("maml", small(), 2, "d", SPACE["maml"], 0, device="cuda:1")["device"] == "cuda"


def test_an_orphan_requeued_before_a_kill_is_not_queued_twice():
    """A process killed between queueing an orphan's settings and failing the orphan leaves both:
    the next resume fails it without queueing its settings a second time (they would run twice
    and take the place of a draw)."""
    import optuna

    from l2l_taskmix.benchmark.tune import _requeue_orphans

    study = optuna.create_study(direction="maximize")
    dist = {"inner_lr": optuna.distributions.FloatDistribution(0.05, 0.5, log=True)}
    orphan = study.ask(dist)
    study.enqueue_trial(dict(orphan.params), user_attrs={"rerun_of": orphan.number})  # the half-done requeue
    _requeue_orphans(optuna, study, ["inner_lr"])
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == orphan.params
    assert study.get_trials()[orphan.number].state == optuna.trial.TrialState.FAIL


def test_a_trial_killed_while_its_settings_were_drawn_is_drawn_again_as_it_would_have_been(tmp_path):
    """A kill inside ``ask`` leaves an orphan with some of its settings: the resume draws the
    trial afresh (as the uninterrupted study drew it), not the orphan's settings plus new draws
    of the others."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from l2l_taskmix.benchmark.tune import STARTUP_TRIALS, _sampler_seed

    study(tmp_path / "straight", trials=2, methods=["maml"])
    killed = tmp_path / "killed"
    study(killed, trials=1, methods=["maml"])
    storage = JournalStorage(JournalFileBackend(str(killed / "study.journal")))
    orphan_study = optuna.load_study(study_name="maml", storage=storage)
    orphan_study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(0, "maml", 1), n_startup_trials=STARTUP_TRIALS, constant_liar=True)
    orphan = orphan_study.ask()
    orphan.suggest_float("inner_lr", 0.05, 0.5, log=True)  # killed here, before "iterations" was drawn
    study(killed, trials=2, methods=["maml"])

    def points(out):
        return [(r["inner_lr"], r["iterations"], r["value"]) for r in rows(out) if r["state"] == "COMPLETE"]

    assert points(killed) == points(tmp_path / "straight")
