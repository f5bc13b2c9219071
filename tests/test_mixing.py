"""Property tests of the pure mixing maths."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from l2l_taskmix import mixing

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
lams = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def pair_of_arrays(draw):
    shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 5)))
    a = draw(arrays(np.float32, shape, elements=finite))
    b = draw(arrays(np.float32, shape, elements=finite))
    return torch.from_numpy(a), torch.from_numpy(b)


@given(pair_of_arrays())
def test_lam_one_gives_a_and_lam_zero_gives_b_exactly(ab):
    a, b = ab
    assert torch.equal(mixing.mix(a, b, 1.0), a)
    assert torch.equal(mixing.mix(a, b, 0.0), b)


@given(pair_of_arrays(), lams)
def test_mixed_point_lies_on_segment(ab, lam):
    a, b = ab
    m = mixing.mix(a, b, lam).double()
    a, b = a.double(), b.double()
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    tol = 1e-4 * (1 + torch.maximum(a.abs(), b.abs()))
    assert (m >= lo - tol).all() and (m <= hi + tol).all()
    # and it is the point at fraction (1 - lam) from a towards b
    assert torch.allclose(m, b + lam * (a - b), atol=1e-3, rtol=1e-4)


@given(pair_of_arrays(), lams)
def test_mix_keeps_shape_and_dtype(ab, lam):
    a, b = ab
    out = mixing.mix(a, b, lam)
    assert out.shape == a.shape and out.dtype == a.dtype
    out64 = mixing.mix(a.double(), b.double(), lam)
    assert out64.dtype == torch.float64


@given(
    st.integers(2, 12).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.lists(st.integers(0, c - 1), min_size=1, max_size=10),
            st.lists(st.integers(0, c - 1), min_size=1, max_size=10),
        )
    ),
    lams,
)
def test_soft_labels_are_distributions(args, lam):
    c, la, lb = args
    n = min(len(la), len(lb))
    ya = mixing.one_hot(torch.tensor(la[:n]), c)
    yb = mixing.one_hot(torch.tensor(lb[:n]), c)
    y = mixing.mix(ya, yb, lam)
    assert y.shape == (n, c)
    assert (y >= 0).all() and (y <= 1).all()
    assert torch.allclose(y.sum(1), torch.ones(n), atol=1e-6)


@given(st.integers(2, 5), st.integers(6, 10), lams)
def test_tasks_with_different_class_counts_mix_in_common_space(c_small, c_big, lam):
    C = max(c_small, c_big)
    ya = mixing.one_hot(torch.tensor([c_small - 1]), C)
    yb = mixing.one_hot(torch.tensor([c_big - 1]), C)
    y = mixing.mix(ya, yb, lam)[0]
    assert y.shape == (C,)
    assert y[c_small - 1] == pytest.approx(lam + (1 - lam) * (c_small - 1 == c_big - 1), abs=1e-6)
    assert y[c_big - 1] == pytest.approx(1 - lam, abs=1e-6)


def test_one_hot_rejects_labels_outside_num_classes():
    with pytest.raises(ValueError, match="label 3 is outside num_classes=3"):
        mixing.one_hot(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="label -1"):
        mixing.one_hot(torch.tensor([-1]), 3)
    with pytest.raises(ValueError, match="integers"):
        mixing.one_hot(torch.tensor([0.5]), 3)


@pytest.mark.parametrize(
    "eta, error, match",
    [
        (0, ValueError, r"eta == 0\.0, must be > 0\."),
        (-1, ValueError, r"eta == -1\.0, must be > 0"),
        (float("nan"), ValueError, "eta == nan, must be a finite number"),
        (float("inf"), ValueError, "eta == inf, must be a finite number"),
        ("x", TypeError, "eta must be an instance of float, not str"),
        (None, TypeError, "eta"),
        (True, TypeError, "eta"),
    ],
)
def test_bad_eta_is_rejected(eta, error, match):
    with pytest.raises(error, match=match):
        mixing.sample_lambda(eta, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(error, match=match):
        mixing.check_eta(eta)


def test_check_eta_returns_a_float():
    assert mixing.check_eta(2) == 2.0 and isinstance(mixing.check_eta(2), float)
    assert mixing.check_eta(np.float32(0.5)) == 0.5
    assert mixing.DEFAULT_ETA == 1.0


@given(st.floats(0.05, 20), st.integers(0, 2**31))
@settings(max_examples=25)
def test_fixed_seed_gives_identical_draws(eta, seed):
    a = mixing.sample_lambda(eta, 5, generator=torch.Generator().manual_seed(seed))
    b = mixing.sample_lambda(eta, 5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()
    p1 = mixing.sample_pairs(4, 7, generator=torch.Generator().manual_seed(seed))
    p2 = mixing.sample_pairs(4, 7, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(p1, p2)


@pytest.mark.parametrize("eta", [0.2, 1.0, 2.0, 8.0])
def test_lambda_draws_follow_beta_eta_eta(eta):
    g = torch.Generator().manual_seed(1234)
    draws = mixing.sample_lambda(eta, 4000, generator=g, dtype=torch.float64).numpy()
    result = stats.kstest(draws, stats.beta(eta, eta).cdf)
    assert result.pvalue > 1e-3
    # and it is not some other Beta: a clearly different parameter is rejected
    assert stats.kstest(draws, stats.beta(eta * 4, eta * 4).cdf).pvalue < 1e-6


@given(st.integers(2, 9), st.integers(0, 30), st.integers(0, 2**31))
def test_pairs_are_in_range_and_distinct(num_tasks, num_pairs, seed):
    pairs = mixing.sample_pairs(num_tasks, num_pairs, generator=torch.Generator().manual_seed(seed))
    assert pairs.shape == (num_pairs, 2)
    assert ((pairs >= 0) & (pairs < num_tasks)).all()
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_pairs_are_uniform_over_ordered_pairs():
    pairs = mixing.sample_pairs(4, 24000, generator=torch.Generator().manual_seed(0))
    counts = torch.zeros(4, 4)
    for i, j in pairs.tolist():
        counts[i, j] += 1
    off_diagonal = counts[~torch.eye(4, dtype=torch.bool)].numpy()
    assert stats.chisquare(off_diagonal).pvalue > 1e-3
    assert counts.diagonal().sum() == 0


def test_pairs_need_two_tasks_and_non_negative_count():
    with pytest.raises(ValueError, match="at least two tasks"):
        mixing.sample_pairs(1, 3)
    with pytest.raises(ValueError, match=">= 0"):
        mixing.sample_pairs(3, -1)
    assert mixing.sample_pairs(1, 0).shape == (0, 2)


def test_mix_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="different shapes"):
        mixing.mix(torch.zeros(2, 3), torch.zeros(2, 4), 0.5)


# -- class_layout ----------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 6), min_size=1, max_size=30), st.permutations(list(range(7))))
def test_class_layout_ignores_label_numbers_and_numbers_slots_by_first_appearance(labels, perm):
    y = torch.tensor(labels)
    layout = mixing.class_layout(y)
    renamed = torch.tensor(perm)[y]  # any other numbering of the same classes
    assert torch.equal(layout, mixing.class_layout(renamed))
    firsts = [labels.index(v) for v in dict.fromkeys(labels)]
    assert layout[firsts].tolist() == list(range(len(firsts)))  # slots in order of first appearance
    assert all((layout[i] == layout[j]) == (labels[i] == labels[j]) for i in range(len(labels)) for j in range(len(labels)))


def test_class_layout_bad_input():
    with pytest.raises(ValueError, match="integers"):
        mixing.class_layout(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        mixing.class_layout(torch.zeros(2, 2, dtype=torch.long))
