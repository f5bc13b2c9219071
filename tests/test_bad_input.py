"""Bad input never gives a wrong answer: each case is refused with a message naming the file and
line, or the key or argument, and what is accepted; or, where the input is legitimate but changes
the answer (repeated texts, left-out tasks), the behaviour is visible in the console and
results.md. Output and cache locations are checked before any compute is spent.

The first tables are data: (what is given, the message it must produce).
"""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from l2l_taskmix import MetaMix, TaskMix
from l2l_taskmix.benchmark import grid, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.datasets import save_feature_split
from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.benchmark.training import train
from l2l_taskmix.cli import main
from l2l_taskmix.data import IntentTask, load_nbest, support_test_split
from l2l_taskmix.features import FeatureTask, featurize_tasks
from l2l_taskmix.files import check_writable
from l2l_taskmix.models import make_model

pytestmark = pytest.mark.usefixtures("one_thread")

#: A folder nobody can create or write, not even root (Linux sysfs).
UNWRITABLE = "/sys/l2l-taskmix-test/out"

# -- configuration files -----------------------------------------------------------------------

CONFIG_CASES = [
    ({"first_order": "nope"}, "first_order == 'nope', must be one of true/false/yes/no/1/0"),
    ({"standardize": "ja"}, "standardize == 'ja', must be one of true/false/yes/no/1/0"),
    ({"hidden": "abc"}, "hidden takes comma-separated ints such as 256,256, got 'abc'"),
    ({"methods": 5}, "methods must be a list, not int"),
    ({"cache_dir": 123}, "cache_dir must be an instance of str, not int"),
    ({"seeds": 1.7}, "seeds must be an instance of int, not float"),
    ({"seeds": 0}, "seeds == 0, must be >= 1"),
    ({"eta": "2"}, "eta must be an instance of float, not str"),
    ({"etaa": 1}, "unknown configuration keys ['etaa']"),
    ({"engine": "jax"}, "engine == 'jax', must be one of 'fast', 'l2l'"),
]


@pytest.mark.parametrize("values, message", CONFIG_CASES, ids=[next(iter(v)) + "=" + repr(next(iter(v.values()))) for v, _ in CONFIG_CASES])
def test_a_bad_config_file_value_names_the_file_and_key(tmp_path, capsys, values, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(values))
    assert main(["benchmark", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"config file {path}: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(
    "text, value",
    [("no", False), ("No", False), ("false", False), ("0", False), ("yes", True), ("TRUE", True), ("1", True), (True, True), (0, False)],
)
def test_booleans_from_text_are_exactly_true_false_yes_no_1_0(text, value):
    # once, "no" and "false" were silently taken as true
    assert BenchmarkConfig.from_sources({"first_order": text, "standardize": text}).first_order is value


# -- task tables ---------------------------------------------------------------------------------


def rows(tasks=("jan", "feb", "mar"), per_class=4):
    return [
        {"task": t, "intent": y, "text": f"{t} {y} utterance {i}", "order": k}
        for k, t in enumerate(tasks)
        for y in ("book", "cancel")
        for i in range(per_class)
    ]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def bad_order(value):
    def make(tmp_path):
        r = rows()
        r[5]["order"] = value
        return jsonl(tmp_path / "t.jsonl", r)

    return make


def csv_bytes(data):
    def make(tmp_path):
        (tmp_path / "t.csv").write_bytes(data)
        return tmp_path / "t.csv"

    return make


TABLE_CASES = [
    # an order of NaN on one task once dropped the chronology of every task
    ("order-nan", bad_order(float("nan")), r"t\.jsonl:6: order must be a finite number"),
    ("order-nan-text", bad_order("nan"), r"t\.jsonl:6: order must be a finite number"),
    ("order-inf", bad_order("inf"), r"t\.jsonl:6: order must be a finite number"),
    # NaT once made its task the oldest
    ("order-NaT", bad_order("NaT"), r"t\.jsonl:6: order must be a number or an ISO 8601 timestamp, got 'NaT'"),
    ("order-word", bad_order("last tuesday"), r"t\.jsonl:6: order must be a number or an ISO 8601 timestamp"),
    ("order-missing", bad_order(None), r"'order' missing on lines \[6\]"),
    ("not-utf8", csv_bytes(b"task,intent,text\njan,book,ok\njan,book,caf\xe9\n"), r"t\.csv:3: not UTF-8 \(byte 0xe9 at column 13\)"),
    ("empty-csv", csv_bytes(b""), r"t\.csv: the file is empty; a CSV task table starts with a header row"),
    (
        "semicolons",
        csv_bytes(b"task;intent;text\njan;book;hi\n"),
        r"t\.csv:1: the header has no 'task', 'intent', 'text or hypotheses' column .*looks ';'-delimited",
    ),
    ("no-text", csv_bytes(b"task,intent\njan,book\n"), r"t\.csv:1: the header has no 'text or hypotheses' column"),
    (
        "split-value",
        lambda p: jsonl(p / "t.jsonl", [{**r, "split": "dev"} for r in rows()]),
        r"t\.jsonl:1: split must be 'train' or 'test', got 'dev'",
    ),
    (
        "split-mixed",
        lambda p: jsonl(p / "t.jsonl", [{**r, "split": "train" if i else "test"} for i, r in enumerate(rows())]),
        r"task 'jan' has rows with both split values",
    ),
]


@pytest.mark.parametrize("name, make, message", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_a_bad_task_table_names_the_file_and_line(tmp_path, name, make, message):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_nbest(path, num_train=2, min_class_count=1)


def test_the_split_column_decides_meta_train_and_meta_test(tmp_path):
    # the column was once documented but ignored
    r = [{**row, "split": "test" if row["task"] == "jan" else "train"} for row in rows()]
    split = load_nbest(jsonl(tmp_path / "t.jsonl", r), min_class_count=1)
    assert [t.name for t in split.test] == ["jan"] and [t.name for t in split.train] == ["feb", "mar"]
    assert split.info["assignment"] == "split column"
    with pytest.raises(ValueError, match="already assigns the tasks"):
        load_nbest(tmp_path / "t.jsonl", min_class_count=1, train_tasks=["jan"])


def test_timestamps_keep_their_chronology(tmp_path):
    r = rows()
    for row in r:
        row["order"] = {"jan": "2024-03-01", "feb": "2024-01-01T10:00:00Z", "mar": "2024-02-01"}[row["task"]]
    split = load_nbest(jsonl(tmp_path / "t.jsonl", r), num_train=2, min_class_count=1)
    assert [t.name for t in split.train] == ["feb", "mar"] and [t.name for t in split.test] == ["jan"]


# -- repeated texts ------------------------------------------------------------------------------


def test_repeated_texts_never_straddle_a_support_test_split():
    # once, 10 of 110 test rows of a task with every row duplicated were also support rows
    g = np.random.default_rng(0)
    for trial in range(30):
        n = int(g.integers(20, 60))
        texts = np.concatenate([np.arange(9), g.integers(0, n // 2, size=n - 9)])  # many repeats, >= 3 texts per class
        labels = np.array([f"c{t % 3}" for t in texts])
        support, test = support_test_split(labels, shots=2, seed=trial, groups=texts)
        assert not set(texts[support]) & set(texts[test])
        assert sorted(np.concatenate([support, test]).tolist()) == list(range(n))
        assert {c: sum(1 for t in set(texts[support]) if f"c{t % 3}" == c) for c in ("c0", "c1", "c2")} == {"c0": 2, "c1": 2, "c2": 2}


def test_without_repeats_the_split_is_what_it_was():
    # the reference: the split before groups existed (per class, a permutation of its rows)
    def reference(labels, shots, seed):
        labels = np.asarray(labels).astype(str)
        classes, inverse = np.unique(labels, return_inverse=True)
        rng = np.random.default_rng(seed)
        support = np.sort(np.concatenate([rng.permutation(np.flatnonzero(inverse == c))[:shots] for c in range(len(classes))]))
        return support

    g = np.random.default_rng(1)
    for trial in range(30):
        labels = g.integers(0, 4, size=40).astype(str)
        labels[:8] = list("01230123")
        s, _ = support_test_split(labels, shots=1, seed=trial, groups=np.arange(40))
        assert s.tolist() == reference(labels, 1, trial).tolist() == support_test_split(labels, shots=1, seed=trial)[0].tolist()


def test_repeats_are_counted_and_conflicting_labels_reported():
    task = IntentTask("calls", ["hi", "hi", "bye", "stop", "stop", "stop"], ["greet", "greet", "end", "end", "cancel", "end"])
    assert task.duplicates() == {"repeated_rows": 5, "repeated_texts": 2, "conflicting": {"stop": ["cancel", "end"]}}

    class Toy:
        cache_key, dim = "toy", 2

        def encode(self, texts, batch_size=None):
            return torch.tensor([[len(t), 1.0] for t in texts])

    (ft,) = featurize_tasks([task], Toy(), cache=False)
    assert ft.groups.tolist() == [0, 0, 2, 3, 3, 3]


# -- arguments of the Python API -------------------------------------------------------------------


def tiny_tasks(n=4):
    g = torch.Generator().manual_seed(0)
    return [FeatureTask(f"t{k}", torch.randn(24, 6, generator=g), torch.arange(24) % 3, ["a", "b", "c"]) for k in range(n)]


TRAIN_CONFIG = BenchmarkConfig(iterations=2, eval_every=1, batch_size=4, meta_batch_size=None, inner_steps=1, first_order=True, eta=1.0)
TRAIN = dict(loop=TRAIN_CONFIG.loop, maml=TRAIN_CONFIG.maml, mix=TRAIN_CONFIG.mix, progress=False)

API_CASES = [
    (
        "train-seed",
        lambda: train(make_model(6, 3, (8,)), "maml", tiny_tasks(), seed=1.7, **TRAIN),
        TypeError,
        "seed must be an instance of int, not float",
    ),
    ("splits-seed", lambda: make_splits(tiny_tasks(1), shots=2, seed=1.7), TypeError, "seed must be an instance of int"),
    (
        "evaluate-seed",
        lambda: evaluate(
            make_model(6, 3, (8,)), "maml", tiny_tasks(1), make_splits(tiny_tasks(1), shots=2), finetune=FinetuneSettings(1, 1e-3), seed="0"
        ),
        TypeError,
        "seed must be an instance of int, not str",
    ),
    (
        "numpy-generator",
        lambda: TaskMix(generator=np.random.default_rng(0)),
        TypeError,
        "generator must be an instance of torch.Generator, not Generator",
    ),
    ("text-generator", lambda: MetaMix(generator="0"), TypeError, "generator must be an instance of torch.Generator, not str"),
    (
        "int-features",
        lambda: TaskMix(seed=0)([(torch.ones(4, 2, dtype=torch.long), torch.tensor([0, 1, 0, 1]))] * 2),
        TypeError,
        "task 0: features must be floating point, got torch.int64",
    ),
    ("eta", lambda: TaskMix(eta=-1), ValueError, "eta == -1.0, must be > 0"),
    ("num-synthetic", lambda: TaskMix(num_synthetic=2.5), TypeError, "num_synthetic must be an instance of int"),
]


@pytest.mark.parametrize("name, call, error, message", API_CASES, ids=[c[0] for c in API_CASES])
def test_a_bad_api_argument_is_named(name, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# -- output and cache locations, before any compute ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    tasks = tiny_tasks(6)
    save_feature_split(path, tasks[:4], tasks[4:])
    return path


def never_trains(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("compute was spent before the output location was checked")

    monkeypatch.setattr(grid, "run_method", fail)


OUT_CASES = [
    ("out-is-a-file", lambda p: (p / "file").write_text("x") and str(p / "file" / "sub"), "is a file, not a folder"),
    ("out-unwritable", lambda p: UNWRITABLE, "is not writable"),
]


@pytest.mark.parametrize("name, out, message", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_a_bad_out_folder_fails_before_any_run(tiny_pt, tmp_path, capsys, monkeypatch, name, out, message):
    never_trains(monkeypatch)
    assert main(["benchmark", "--dataset", str(tiny_pt), "--out", out(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and message in err and "Traceback" not in err


def test_a_full_disk_fails_before_any_run(tiny_pt, tmp_path, capsys, monkeypatch):
    never_trains(monkeypatch)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    assert main(["benchmark", "--dataset", str(tiny_pt), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "MB free on its disk" in capsys.readouterr().err


def test_an_unwritable_cache_fails_before_encoding():
    calls = []

    class Toy:
        cache_key, dim = "toy", 2

        def encode(self, texts, batch_size=None):
            calls.append(texts)
            return torch.ones(len(texts), 2)

    with pytest.raises(PermissionError, match=f"cache_dir {UNWRITABLE} is not writable"):
        featurize_tasks([IntentTask("t", ["a", "b"], ["x", "y"])], Toy(), cache_dir=UNWRITABLE)
    assert calls == []


def test_check_writable_creates_the_folder(tmp_path):
    assert check_writable(tmp_path / "a" / "b", "--out").is_dir()


def test_an_encoder_that_is_not_on_disk_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("L2L_TASKMIX_CACHE", str(tmp_path / "cache"))
    code = main(["benchmark", "--encoder", "no-such-org/no-such-model", "--out", str(tmp_path / "out"), "--no-progress", "--seeds", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "could not load encoder 'no-such-org/no-such-model'" in err and "Traceback" not in err


def test_ctrl_c_during_start_up_is_a_message_not_a_traceback(capsys, monkeypatch):
    import l2l_taskmix.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["benchmark"]) == 130
    assert "interrupted" in capsys.readouterr().err
    # the console script's own start-up (importing the package) loads no PyTorch yet
    out = subprocess.run(
        [sys.executable, "-c", "import sys, l2l_taskmix, l2l_taskmix.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


# -- what results.md says --------------------------------------------------------------------------


def test_results_md_states_the_configuration_and_what_was_left_out(tmp_path, capsys, bow_encoder):
    # --shots 12 once scored one of two meta-test tasks and said so only on the console
    words = {"book": ["table", "seat", "reserve"], "cancel": ["drop", "undo", "remove"], "hours": ["open", "close", "when"]}
    records = []
    for k, task in enumerate(["jan", "feb", "mar", "apr", "may"]):
        for intent, vocab in words.items():
            size = 2 if (task == "may" and intent != "book") else 8  # may keeps one class: left out
            records += [
                {"task": task, "intent": intent, "text": f"{vocab[i % 4 % 3]} {vocab[(i % 4 + k) % 3]} {i % 4}", "order": k}
                for i in range(size)
            ]
    table = tmp_path / "calls.jsonl"
    jsonl(table, records)
    cfg = BenchmarkConfig(
        dataset=str(table),
        methods=("transfer",),
        seeds=1,
        iterations=2,
        eval_every=1,
        batch_size=4,
        hidden=(8,),
        val_tasks=0,
        finetune_steps=2,
        shots=2,
        num_train=3,
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.warns(UserWarning, match="may"):
        runner.run_benchmark(cfg, tmp_path / "out", progress=False, encoder=bow_encoder)
    captured = capsys.readouterr()
    console = captured.out + captured.err
    md = (tmp_path / "out" / "results.md").read_text()
    assert "task 'may' left out: 1 class(es) left with >= 3 examples" in console
    assert "**Tasks left out** (1)" in md and "`may`: 1 class(es) left with >= 3 examples (need 2)" in md
    assert "Meta-test tasks (1), every one scored: `apr`" in md
    assert "Classes left out (2" in md and "`cancel` (2)" in md
    assert "96 rows in 4 tasks repeat a text" in md and "96 rows in 4 tasks repeat a text" in console  # rows i and i + 4
    assert "(toy-bow features)" in md and "| encoder | toy-bow |" in md  # the encoder object that was used
    assert "| shots | 2 |" in md and "| num_train | 3 |" in md and "Regime: few-shot: 2 support" in md


def test_a_killed_featurization_resumes_without_re_encoding_finished_batches(tmp_path):
    """kill -9 in the middle of encoding; the rerun encodes only what was not committed."""
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from l2l_taskmix.data import IntentTask
        from l2l_taskmix.features import featurize_tasks

        class Dying:
            cache_key, dim = "toy", 2
            def encode(self, texts, batch_size=None, on_batch=None):
                for start in range(0, len(texts), 4):
                    on_batch(list(range(start, min(start + 4, len(texts)))),
                             torch.tensor([[len(t), 1.0] for t in texts[start:start + 4]]))
                    if start == 8:
                        os.kill(os.getpid(), signal.SIGKILL)

        task = IntentTask("t", [f"text number {{i}}" for i in range(20)], ["a", "b"] * 10)
        featurize_tasks([task], Dying(), cache_dir={str(tmp_path)!r}, commit_every=4)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    encoded = []

    class Counting:
        cache_key, dim = "toy", 2

        def encode(self, texts, batch_size=None, on_batch=None):
            encoded.extend(texts)
            return torch.tensor([[len(t), 1.0] for t in texts])

    task = IntentTask("t", [f"text number {i}" for i in range(20)], ["a", "b"] * 10)
    (ft,) = featurize_tasks([task], Counting(), cache_dir=tmp_path)
    assert len(encoded) == 8 and encoded == task.texts[12:]  # 3 batches of 4 were committed before the kill
    assert ft.x[:, 0].tolist() == [float(len(t)) for t in task.texts]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no half-written shard
