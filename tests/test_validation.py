"""The one validator (check_scalar), check_choice, make_generator, and the one atomic write."""

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from l2l_taskmix.files import atomic_write, to_jsonable
from l2l_taskmix.validation import check_choice, check_scalar, make_generator


@given(st.integers(-1000, 1000), st.integers(-10, 10))
def test_int_bounds_follow_include_boundaries(x, low):
    for mode, ok in [("both", x >= low), ("left", x >= low), ("right", x > low), ("neither", x > low)]:
        if ok:
            assert check_scalar(x, "n", int, min_val=low, include_boundaries=mode) == x
        else:
            with pytest.raises(ValueError, match=r"^n == "):
                check_scalar(x, "n", int, min_val=low, include_boundaries=mode)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_must_be_finite_and_come_back_as_float(x):
    if math.isfinite(x):
        out = check_scalar(x, "lr", float)
        assert out == x and type(out) is float
    else:
        with pytest.raises(ValueError, match="lr == .*finite"):
            check_scalar(x, "lr", float)


def test_types_are_kept_apart_from_ranges():
    with pytest.raises(TypeError, match="seeds must be an instance of int, not bool"):
        check_scalar(True, "seeds", int)
    with pytest.raises(TypeError, match="eta must be an instance of float, not str"):
        check_scalar("1.0", "eta", float)
    with pytest.raises(TypeError, match="iterations must be an instance of int, not float"):
        check_scalar(2.0, "iterations", int)
    with pytest.raises(ValueError, match=r"fraction == 1.0, must be < 1"):
        check_scalar(1, "fraction", float, min_val=0, max_val=1, include_boundaries="neither")
    assert type(check_scalar(np.int64(3), "n", int)) is int
    assert check_scalar(2, "lr", float) == 2.0 and type(check_scalar(2, "lr", float)) is float
    assert check_scalar(False, "flag", bool) is False
    with pytest.raises(TypeError, match="flag must be an instance of bool, not str"):
        check_scalar("no", "flag", bool)
    assert check_scalar(None, "n", int, allow_none=True) is None
    with pytest.raises(TypeError):
        check_scalar(None, "n", int)
    with pytest.raises(ValueError, match="include_boundaries"):
        check_scalar(1, "n", int, include_boundaries="sometimes")


def test_check_choice_lists_the_choices():
    assert check_choice("l2l", "engine", ("fast", "l2l")) == "l2l"
    with pytest.raises(ValueError, match="engine == 'jax', must be one of 'fast', 'l2l'"):
        check_choice("jax", "engine", ("fast", "l2l"))


def test_make_generator():
    g = torch.Generator().manual_seed(1)
    assert make_generator(g) is g
    a, b = make_generator(seed=7), make_generator(seed=7)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    torch.manual_seed(3)
    c = torch.rand(3, generator=make_generator())
    torch.manual_seed(3)
    assert torch.equal(c, torch.rand(3, generator=make_generator()))  # follows the global seed
    with pytest.raises(ValueError, match="either generator or seed"):
        make_generator(g, seed=1)
    with pytest.raises(TypeError, match="generator must be an instance of torch.Generator, not Generator"):
        make_generator(np.random.default_rng(0))
    with pytest.raises(TypeError, match="seed must be an instance of int, not float"):
        make_generator(seed=1.7)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "x.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "half")
    assert path.read_text() == "new" and sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_to_jsonable():
    record = {"f1": np.float32(0.25), "n": np.int64(3), "hidden": (8, 8), "tags": {"a"}, "path": tmp_path_like(), 1: np.arange(2)}
    text = json.dumps(to_jsonable(record), sort_keys=True)
    assert json.loads(text) == {"f1": 0.25, "n": 3, "hidden": [8, 8], "tags": ["a"], "path": "/tmp/x", "1": [0, 1]}


def tmp_path_like():
    from pathlib import PurePosixPath

    class P(PurePosixPath):
        pass

    return P("/tmp/x")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
