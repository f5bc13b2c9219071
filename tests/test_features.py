"""featurize_tasks and the on-disk feature cache: hits, sharing per text, damage detection."""

import os

import pytest
import torch

from l2l_taskmix.data import IntentTask, MetaSplit
from l2l_taskmix.features import (
    CACHE_ENV,
    FeatureCache,
    FeatureTask,
    default_cache_dir,
    featurize_split,
    featurize_tasks,
)
from l2l_taskmix.features.encoders import HFEncoder


class CountingEncoder:
    """Deterministic toy encoder: features from the text's characters; counts texts encoded."""

    def __init__(self, key="toy-v1", dim=4, bad=None):
        self.cache_key, self.dim, self.encoded, self.bad = key, dim, [], bad

    def encode(self, texts, batch_size=None):
        self.encoded.extend(texts)
        rows = [[len(t), sum(map(ord, t)) % 97, t.count(" "), 1.0][: self.dim] for t in texts]
        x = torch.tensor(rows, dtype=torch.float32)
        if self.bad == "nan":
            x[0, 0] = float("nan")
        if self.bad == "shape":
            x = x[:, :2]
        return x


def tasks():
    a = IntentTask("alarm", ["wake me at 7", "stop alarm", "snooze", "wake me at 7"], ["SET", "STOP", "SNOOZE", "SET"], {"domain": "alarm"})
    b = IntentTask("timer", ["timer 5 min", "pause timer", "stop alarm"], ["SET", "PAUSE", "STOP"])
    return [a, b]


def test_features_labels_and_second_run_hits_the_cache(tmp_path):
    enc = CountingEncoder()
    fa, fb = featurize_tasks(tasks(), enc, cache_dir=tmp_path)
    assert enc.encoded == ["wake me at 7", "stop alarm", "snooze", "timer 5 min", "pause timer"]
    assert fa.classes == ["SET", "SNOOZE", "STOP"] and fa.y.tolist() == [0, 2, 1, 0]
    assert fb.classes == ["PAUSE", "SET", "STOP"] and fb.y.tolist() == [1, 0, 2]
    assert fa.x.shape == (4, 4) and fa.dim == 4 and fa.meta == {"domain": "alarm"}
    assert torch.equal(fa.x[0], fa.x[3]) and torch.equal(fa.x[1], fb.x[2])
    assert torch.equal(fa.x, enc.encode(tasks()[0].texts))
    enc2 = CountingEncoder()
    fa2, fb2 = featurize_tasks(tasks(), enc2, cache_dir=tmp_path)
    assert enc2.encoded == []  # everything from the cache
    assert torch.equal(fa2.x, fa.x) and torch.equal(fb2.x, fb.x)


def test_cache_is_per_text_and_per_encoder_key(tmp_path):
    featurize_tasks(tasks()[:1], CountingEncoder(), cache_dir=tmp_path)
    enc = CountingEncoder()
    featurize_tasks(tasks(), enc, cache_dir=tmp_path)  # a different task set, shared texts
    assert enc.encoded == ["timer 5 min", "pause timer"]  # only the new texts
    other = CountingEncoder(key="toy-v2")
    featurize_tasks(tasks(), other, cache_dir=tmp_path)
    assert len(other.encoded) == 5  # another key never reuses toy-v1's features
    assert len(FeatureCache(tmp_path).shards("toy-v1")) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_shard_is_detected_and_rebuilt(tmp_path, damage):
    good = featurize_tasks(tasks(), CountingEncoder(), cache_dir=tmp_path)
    [shard] = FeatureCache(tmp_path).shards("toy-v1")
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # same length, one byte changed inside the feature array
        shard.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        shard.write_bytes(b"not an npz")
    enc = CountingEncoder()
    with pytest.warns(UserWarning, match="discarding damaged shard"):
        again = featurize_tasks(tasks(), enc, cache_dir=tmp_path)
    assert len(enc.encoded) == 5  # rebuilt, not used
    assert all(torch.equal(g.x, a.x) for g, a in zip(good, again))
    # content-addressed: the rebuilt shard has the same bytes, so the same name, as the original
    assert FeatureCache(tmp_path).shards("toy-v1") == [shard] and shard.read_bytes() == data
    enc3 = CountingEncoder()
    featurize_tasks(tasks(), enc3, cache_dir=tmp_path)
    assert enc3.encoded == []  # the rebuilt shard is used next time


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    featurize_tasks(tasks(), CountingEncoder(), cache_dir=tmp_path)
    folder = FeatureCache(tmp_path).folder("toy-v1")
    names = sorted(p.name for p in folder.iterdir())
    assert names[-1] == "encoder.json" and len(names) == 2 and names[0].endswith(".npz")
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    # a stray temp file from a killed writer is ignored
    (folder / ".abc.npz.tmp").write_bytes(b"partial")
    enc = CountingEncoder()
    featurize_tasks(tasks(), enc, cache_dir=tmp_path)
    assert enc.encoded == []


def test_encoder_errors_are_not_cached(tmp_path):
    with pytest.raises(RuntimeError, match="NaN"):
        featurize_tasks(tasks(), CountingEncoder(bad="nan"), cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="expected"):
        featurize_tasks(tasks(), CountingEncoder(bad="shape"), cache_dir=tmp_path)
    assert FeatureCache(tmp_path).shards("toy-v1") == []
    with pytest.raises(ValueError, match="no tasks"):
        featurize_tasks([], CountingEncoder(), cache_dir=tmp_path)


def test_cache_false_and_default_dir(tmp_path, monkeypatch):
    enc = CountingEncoder()
    featurize_tasks(tasks(), enc, cache=False)
    featurize_tasks(tasks(), enc, cache=False)
    assert len(enc.encoded) == 10
    assert CACHE_ENV == "L2L_TASKMIX_CACHE"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    featurize_tasks(tasks(), CountingEncoder())
    assert FeatureCache().shards("toy-v1")[0].is_relative_to(tmp_path / "envcache")
    monkeypatch.delenv(CACHE_ENV)
    assert str(default_cache_dir()) == os.path.join(os.path.expanduser("~"), ".cache", "l2l-taskmix")


def test_compact_merges_shards(tmp_path):
    featurize_tasks(tasks()[:1], CountingEncoder(), cache_dir=tmp_path)
    featurize_tasks(tasks(), CountingEncoder(), cache_dir=tmp_path)
    cache = FeatureCache(tmp_path)
    assert len(cache.shards("toy-v1")) == 2
    cache.compact("toy-v1")
    assert len(cache.shards("toy-v1")) == 1
    assert len(cache.get("toy-v1", tasks()[0].texts + tasks()[1].texts)) == 5


def test_featurize_split_and_feature_task_checks(tmp_path):
    split = MetaSplit(tasks()[:1], tasks()[1:])
    train, test = featurize_split(split, CountingEncoder(), cache_dir=tmp_path)
    assert [t.name for t in train] == ["alarm"] and [t.name for t in test] == ["timer"]
    ft = train[0]
    sub = ft.subset([0, 2])
    assert sub.y.tolist() == [0, 1] and sub.classes == ft.classes
    with pytest.raises(ValueError, match=r"y holds the label 2, but classes has 2 name\(s\) \('a', 'b'\)"):
        FeatureTask("x", torch.zeros(2, 3), torch.tensor([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        FeatureTask("x", torch.full((2, 3), float("nan")), torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="LongTensor"):
        FeatureTask("x", torch.zeros(2, 3), torch.tensor([0.0, 1.0]), ["a", "b"])
    with pytest.raises(ValueError, match="2 rows in x, 3 in y"):
        FeatureTask("x", torch.zeros(2, 3), torch.tensor([0, 1, 1]), ["a", "b"])


def test_second_run_never_loads_the_hf_model(tmp_path, data_tiny_xlmr_dir):
    first = HFEncoder(data_tiny_xlmr_dir, max_length=32, progress=False)
    feats = featurize_tasks(tasks(), first, cache_dir=tmp_path)
    assert first.loaded and feats[0].dim == 16
    second = HFEncoder(data_tiny_xlmr_dir, max_length=32, progress=False)
    again = featurize_tasks(tasks(), second, cache_dir=tmp_path)
    assert not second.loaded and second._tokenizer is None
    assert all(torch.equal(a.x, b.x) for a, b in zip(feats, again))


@pytest.mark.parametrize(
    "module", ["l2l_taskmix.features", "l2l_taskmix.features.cache", "l2l_taskmix.features.tasks", "l2l_taskmix.features.encoders"]
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
