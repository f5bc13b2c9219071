"""Bad input to the Python API's maths: labels, accuracy, mixing coefficients and the MAML engine.

Each case was once answered with a number (soft labels summing to 1.8 trained on, an accuracy of 3.0,
NaN features from a NaN coefficient); now it is a ``ValueError`` naming what is wrong, and the good
inputs next to them keep their answers.
"""

import learn2learn as l2l
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2l_taskmix import MetaMix, Task, TaskMix, accuracy, mixing
from l2l_taskmix.engine import fast_outer_loss, l2l_outer_loss
from l2l_taskmix.losses import check_soft_labels
from l2l_taskmix.models import IntentClassifier

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])


def task(y, x=X):
    return Task(x=x, y=y, num_support=4)


def soft(value):
    return torch.full((8, 2), float(value))


NAN_ROW = torch.tensor([[float("nan"), 1.0]] * 8)

# -- a Task's labels get the checks an (x, y) pair gets ----------------------------------------------

LABEL_CASES = [
    # name, the tasks' labels, the wrapper, the message
    ("taskmix-rows-of-1.8", soft(0.9), lambda: TaskMix(seed=0), "task 0: soft label rows must sum to 1, row 0 sums to 1.8"),
    ("taskmix-nan", NAN_ROW, lambda: TaskMix(seed=0), "task 0: soft labels contain NaN or infinite values"),
    ("taskmix-negative", torch.tensor([[1.5, -0.5]] * 8), lambda: TaskMix(seed=0), "task 0: soft labels must be non-negative, found -0.5"),
    ("metamix-rows-of-6", soft(3.0), lambda: MetaMix(seed=0), "task 0: soft label rows must sum to 1, row 0 sums to 6"),
    ("metamix-nan", NAN_ROW, lambda: MetaMix(seed=0), "task 0: soft labels contain NaN or infinite values"),
]


@pytest.mark.parametrize("name, y, make, message", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
@pytest.mark.parametrize("form", ["Task", "(x, y)"])
def test_bad_soft_labels_are_refused_as_a_task_or_a_pair(name, y, make, message, form):
    given = [task(y), task(y)] if form == "Task" else [(X, y), (X, y)]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()(given)


def test_good_soft_tasks_still_mix_into_probability_rows():
    y = torch.eye(2)[LABELS]
    tasks = TaskMix(seed=0)([task(y), task(y.flip(1))])
    synthetic = [t for t in tasks if t.is_synthetic]
    assert len(synthetic) == 2
    for t in synthetic:
        assert torch.allclose(t.y.sum(1), torch.ones(8))
    extended = MetaMix(seed=0)([task(y), task(y)])
    assert all(torch.allclose(t.y.sum(1), torch.ones(t.y.shape[0])) for t in extended)


# -- accuracy ----------------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0]])

ACCURACY_CASES = [
    ("target-7-of-2-classes", LOGITS, torch.tensor([7, 0]), "target 7 is outside the 2 classes of the predictions"),
    ("target-minus-1", LOGITS, torch.tensor([-1, 0]), "target -1 is outside the 2 classes of the predictions"),
    ("float-target-out-of-range", LOGITS, torch.tensor([0.0, 2.0]), "target 2 is outside the 2 classes"),
    ("soft-rows-of-3", LOGITS, torch.full((2, 2), 1.5), "accuracy: targets: soft label rows must sum to 1, row 0 sums to 3"),
    ("soft-negative", LOGITS, torch.tensor([[1.5, -0.5], [1.0, 0.0]]), "accuracy: targets: soft labels must be non-negative"),
    ("soft-nan", LOGITS, torch.tensor([[float("nan"), 1.0], [1.0, 0.0]]), "accuracy: targets: soft labels contain NaN"),
    ("empty", torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "accuracy: no predictions (0 rows)"),
    ("nan-logits-targets-1", torch.full((2, 2), float("nan")), torch.tensor([1, 1]), "accuracy: predictions contain NaN"),
    ("nan-logits-targets-0", torch.full((2, 2), float("nan")), torch.tensor([0, 0]), "accuracy: predictions contain NaN"),
    ("bool-targets", LOGITS, torch.tensor([True, False]), "targets must be class indices or soft labels, got dtype torch.bool"),
]


@pytest.mark.parametrize("name, logits, targets, message", ACCURACY_CASES, ids=[c[0] for c in ACCURACY_CASES])
def test_accuracy_refuses_what_it_cannot_score(name, logits, targets, message):
    # these gave 0.5, 0.5, 0.5, 3.0, 1.5, nan, nan, 0.0 and 1.0 (NaN's argmax is 0), 0.5
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        accuracy(logits, targets)


def test_accuracy_keeps_its_answers_on_good_targets():
    assert float(accuracy(LOGITS, torch.tensor([0, 0]))) == 0.5
    assert float(accuracy(LOGITS, torch.tensor([0.0, 1.0]))) == 1.0  # integral floats are class indices
    assert float(accuracy(LOGITS, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))) == 0.75
    masked = torch.tensor([[float("-inf"), 0.0], [0.0, float("-inf")]])  # -inf masks a class; not refused
    assert float(accuracy(masked, torch.tensor([1, 0]))) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**31))
def test_accuracy_of_valid_targets_is_a_share(n, classes, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g)
    hard = torch.randint(0, classes, (n,), generator=g)
    soft_targets = torch.softmax(torch.randn(n, classes, generator=g), 1)
    for targets in (hard, soft_targets):
        value = float(accuracy(logits, targets))
        assert 0.0 <= value <= 1.0 + 1e-6


# -- the mixing coefficient ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lam",
    [float("nan"), -0.1, 1.5, torch.tensor([[0.2], [float("nan")]]), torch.tensor([[0.2], [1.01]])],
    ids=["nan", "negative", "above-1", "a-nan-row", "a-row-above-1"],
)
def test_mix_refuses_a_coefficient_outside_0_1(lam):
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"lam == \S+, must be in \[0, 1\]"):
        mixing.mix(a, b, lam)  # a NaN coefficient gave NaN rows


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1), st.integers(0, 3), st.integers(0, 3))
def test_mixed_one_hot_rows_pass_the_soft_label_check(lam, i, j):
    y = mixing.mix(mixing.one_hot(torch.tensor([i]), 4), mixing.one_hot(torch.tensor([j]), 4), lam)
    assert check_soft_labels(y) is y


# -- the MAML engine -----------------------------------------------------------------------------------


@pytest.fixture
def model():
    torch.manual_seed(0)
    return IntentClassifier(4, 2, hidden=(3,))


@pytest.mark.parametrize(
    "y, message",
    [
        (soft(5.0), "task 0: support: soft label rows must sum to 1, row 0 sums to 10"),
        (NAN_ROW, "task 0: support: soft labels contain NaN"),
        (LABELS * 7, "task 0: ys: label 7 is outside num_classes=2"),
    ],
    ids=["rows-of-10", "nan", "integer-label-7"],
)
def test_fast_outer_loss_refuses_labels_that_are_not_probabilities(model, y, message):
    with pytest.raises(ValueError, match=message):
        fast_outer_loss(model, [task(y)], inner_lr=0.1, inner_steps=1)  # rows of 10 were trained on


def test_a_task_with_integer_labels_works_where_one_with_soft_labels_does(model):
    # integer labels once gave IndexError; now they mean their one-hot rows, everywhere
    hard, one_hot = task(LABELS), task(torch.eye(2)[LABELS])
    fast = fast_outer_loss(model, [hard, hard], inner_lr=0.1, inner_steps=2)
    assert torch.allclose(fast, fast_outer_loss(model, [one_hot, one_hot], inner_lr=0.1, inner_steps=2))
    reference = l2l_outer_loss(l2l.algorithms.MAML(model, lr=0.1), [hard, hard], inner_steps=2)
    assert torch.allclose(fast, reference, atol=1e-6)
    assert hard.support[1].tolist() == [0, 0, 1, 1] and hard.query[1].tolist() == [0, 0, 1, 1]
    for made in (MetaMix(seed=0)([hard, hard]), TaskMix(seed=0, labels="soft", num_classes=2)([hard, hard])[2:]):
        for t in made:
            assert t.y.shape[1] == 2 and torch.allclose(t.y.sum(1), torch.ones(t.y.shape[0]))


@pytest.mark.parametrize("labels", ["slot", "soft"])
def test_tasks_of_two_feature_widths_are_named_not_called_other_ways_and_shots(labels):
    """Features of width 4 and 8 once got a message about sampling "the same ways and shots"."""
    a = [torch.randn(6, 4), torch.arange(6) % 3]
    b = [torch.randn(6, 8), torch.arange(6) % 3]
    with pytest.raises(ValueError, match="task 0 has features of width 4 and task 1 8: give every task features of one width"):
        TaskMix(labels=labels)([a, b])
