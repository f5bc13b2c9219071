"""FewShotIntentClassifier as a scikit-learn estimator (issue 33): its parameters, clone,
pipelines, cross-validation, grid search over the fine-tuning settings, the inputs X and the
labels y it takes, and scikit-learn's own estimator checks.

A tiny model, meta-trained on generated features (8-d, tasks of 3 intents, head of 6 outputs)
and on hashed bags of words (the conftest's encoder), as test_classifier.py's.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import l2l_taskmix
from l2l_taskmix.benchmark import BenchmarkConfig, FewShotIntentClassifier, MetaTrainedModel, meta_train
from l2l_taskmix.benchmark.datasets import BenchmarkData
from l2l_taskmix.features import FeatureTask

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), finetune_steps=10)
CENTRES = 3.0 * torch.randn(6, 8, generator=torch.Generator().manual_seed(7))


def task(g, name, num_classes=3, rows=30):
    y = torch.arange(rows) % num_classes
    return FeatureTask(name, CENTRES[y] + torch.randn(rows, 8, generator=g), y, ["a", "b", "c", "d", "e", "f"][:num_classes])


def model_of(head_width=6):
    g = torch.Generator().manual_seed(0)
    data = BenchmarkData([task(g, f"t{k}") for k in range(3)], [])
    return meta_train(CONFIG, "maml+taskmix", data=data, head_width=head_width, progress=False)


@pytest.fixture(scope="module")
def clf():
    return model_of()


@pytest.fixture(scope="module")
def folder(clf, tmp_path_factory):
    return clf.save_pretrained(tmp_path_factory.mktemp("sk") / "model")


def labelled(n=24, classes=(1, 2, 10), seed=1):
    """Features of ``n`` rows of ``len(classes)`` intents, labelled with ``classes``' values."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(n) % len(classes)
    x = (CENTRES[k] + 0.5 * torch.randn(n, 8, generator=g)).numpy()
    return x, np.asarray(classes)[k.numpy()]


# -- parameters, clone, pickle ---------------------------------------------------------------
def test_parameters_are_stored_as_given_and_clone_works(folder):
    clf = FewShotIntentClassifier(folder, finetune_steps=3, finetune_lr=0.01, device="cpu")
    params = clf.get_params()
    assert params["model"] is folder and params["finetune_steps"] == 3 and params["finetune_lr"] == 0.01
    assert set(params) == {"model", "finetune_steps", "finetune_lr", "encoder", "cache_dir", "cache", "device", "revision", "progress"}
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == params and not hasattr(twin, "classes_")
    assert clf.set_params(finetune_steps=5) is clf and clf.finetune_steps == 5
    # nothing is checked before use (scikit-learn's rule): a bad value is refused by fit, by name
    bad = FewShotIntentClassifier(folder, finetune_steps=-1)
    with pytest.raises(ValueError, match="finetune_steps == -1, must be >= 0"):
        bad.fit(*labelled())
    with pytest.raises(ValueError, match="model is None: give the meta-trained model"):
        FewShotIntentClassifier().fit(*labelled())
    with pytest.raises(TypeError, match="model must be a model folder .* or a MetaTrainedModel, got 3"):
        FewShotIntentClassifier(3).fit(*labelled())


def test_the_in_memory_model_is_a_parameter_too(clf, folder):
    assert isinstance(clf.model, MetaTrainedModel) and "maml+taskmix" in repr(clf)
    x, y = labelled()
    from_memory, from_folder = clone(clf).fit(x, y), FewShotIntentClassifier(folder).fit(x, y)
    np.testing.assert_array_equal(from_memory.predict_proba(x), from_folder.predict_proba(x))


def test_the_practitioners_import_path():
    assert l2l_taskmix.FewShotIntentClassifier is FewShotIntentClassifier
    assert "FewShotIntentClassifier" not in l2l_taskmix.__all__  # a star import stays light
    assert "FewShotIntentClassifier" in dir(l2l_taskmix)


def test_the_folder_is_read_once_per_parameter_value(folder, monkeypatch):
    from l2l_taskmix.benchmark import classifier

    reads = []
    real = classifier.load_model_folder
    monkeypatch.setattr(classifier, "load_model_folder", lambda *a: reads.append(a) or real(*a))
    x, y = labelled()
    clf = FewShotIntentClassifier(str(folder), device="auto").fit(x, y)
    clf.predict(x), clf.predict_proba(x), clf.score(x, y)
    assert len(reads) == 1
    clf.set_params(model=folder)  # another value: read again
    clf.predict(x)
    assert len(reads) == 2


def test_pickle_round_trip(folder):
    x, y = labelled()
    fitted = FewShotIntentClassifier(folder).fit(x, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(x), fitted.predict_proba(x))


# -- y: its values and dtype ------------------------------------------------------------------
def test_integer_labels_stay_integers(folder):
    x, y = labelled(classes=(1, 2, 10))  # as texts they would sort 1, 10, 2
    clf = FewShotIntentClassifier(folder)
    assert clf.fit(x, list(y)) is clf
    assert clf.classes_.tolist() == [1, 2, 10] and clf.classes_.dtype.kind == "i"  # sorted as np.unique sorts
    predicted = clf.predict(x)
    assert predicted.dtype == clf.classes_.dtype
    accuracy = (predicted == y).mean()
    assert accuracy > 0.9  # separated intents: the labels are compared as numbers, not texts
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 3)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], predicted)  # columns follow classes_


def test_text_labels_and_a_series(folder):
    x, y = labelled(classes=("alarm", "music", "weather"))
    clf = FewShotIntentClassifier(folder).fit(x, pd.Series(y))
    assert clf.classes_.tolist() == ["alarm", "music", "weather"]
    assert (clf.predict(x) == y).mean() > 0.9


def test_refused_labels(folder):
    x, _ = labelled(n=4)
    clf = FewShotIntentClassifier(folder)
    for y, match in [
        (["a", 1, "b", 2], "all texts or all whole numbers"),
        ([0.5, 1.5, 0.5, 1.5], "Unknown label type"),
        ([True, False, True, False], "all texts or all whole numbers; it holds True"),
        (np.array([True, False, True, False]), "True/False"),
        (None, "requires y to be passed"),
        (["a", "b", "a", " "], r"y\[3\] is an empty intent"),
        (np.zeros((4, 2)), "one label per row"),
    ]:
        with pytest.raises(ValueError, match=match):
            clf.fit(x, y)


# -- X: what it may be --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    from conftest import BagOfWordsEncoder

    words = {"alarm": "wake me alarm at seven", "music": "play song music loud now", "weather": "rain sunny weather forecast"}
    tasks = []
    encoder = BagOfWordsEncoder()
    for t in range(3):
        texts = [f"{w} {t} {i}" for w in words.values() for i in range(8)]
        tasks.append(FeatureTask(f"client{t}", encoder.encode(texts), torch.arange(24) // 8, sorted(words)))
    clf = meta_train(CONFIG, "maml+taskmix", data=BenchmarkData(tasks, []), encoder=encoder, progress=False)
    clf.set_params(cache=False)
    texts = [f"{w} again {i}" for w in words.values() for i in range(4)]
    return clf, texts, [w for w in words for _ in range(4)]


def test_texts_as_list_array_series_and_one_column_frame(text_model):
    clf, texts, y = text_model
    frame = pd.DataFrame({"text": texts, "intent": y})
    expected = clone(clf).fit(texts, y).predict_proba(texts)
    for X in (texts, np.array(texts, dtype=object), np.array(texts), frame["text"], frame[["text"]]):
        fitted = clone(clf).fit(X, frame["intent"])
        np.testing.assert_array_equal(fitted.predict_proba(X), expected)
        assert len(fitted.predict(X)) == len(texts)


@pytest.mark.parametrize(
    "X, match",
    [
        ("pd.DataFrame({'text': texts, 'more': texts})", r"X is a DataFrame of 2 columns \(text, more\); give its column of utterances"),
        ("np.array([texts, texts]).T", r"X must be utterances .* got an array of shape \(12, 2\) and dtype <U"),
        ("np.arange(12)", r"got an array of shape \(12,\) and dtype int64"),
        ("'one text'", "not a single string"),
        ("[1.5] * 12", r"X\[0\] must be a string or a list of N-best hypotheses"),
        ("__import__('scipy.sparse').sparse.csr_matrix(np.ones((12, 16)))", "sparse input is not supported"),
    ],
)
def test_other_inputs_are_refused(text_model, X, match):
    clf, texts, y = text_model
    X = eval(X, {"pd": pd, "np": np, "texts": texts})
    with pytest.raises((ValueError, TypeError), match=match):
        clone(clf).fit(X, y)


# -- pipelines, cross-validation, grid search -----------------------------------------------------
def test_pipeline(folder):
    x, y = labelled()
    pipe = make_pipeline(FunctionTransformer(np.float32), FewShotIntentClassifier(folder))
    alone = FewShotIntentClassifier(folder).fit(x, y)
    np.testing.assert_array_equal(pipe.fit(x, y).predict_proba(x), alone.predict_proba(x))
    assert pipe.score(x, y) == alone.score(x, y)


def test_cross_val_score_equals_fitting_each_fold(folder):
    x, y = labelled(n=30)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(FewShotIntentClassifier(folder), x, y, cv=cv)
    by_hand = [FewShotIntentClassifier(folder).fit(x[a], y[a]).score(x[b], y[b]) for a, b in cv.split(x, y)]
    assert scores.tolist() == by_hand and len(scores) == 3


def test_grid_search_over_the_fine_tuning_settings(folder):
    x, y = labelled(n=30)
    grid = {"finetune_steps": [0, 5], "finetune_lr": [1e-3, 1e-2]}
    search = GridSearchCV(FewShotIntentClassifier(folder), grid, cv=3).fit(x, y)
    assert len(search.cv_results_["params"]) == 4 and search.best_params_ in search.cv_results_["params"]
    assert search.best_estimator_.finetune_steps == search.best_params_["finetune_steps"]
    # the settings are used: 0 steps leaves the meta-learned weights; more steps move them
    meta = FewShotIntentClassifier(folder).meta_model.state_dict()
    untouched = FewShotIntentClassifier(folder, finetune_steps=0).fit(x, y).model_.state_dict()
    assert all(torch.equal(untouched[k], v) for k, v in meta.items())
    moved = FewShotIntentClassifier(folder, finetune_steps=5, finetune_lr=1e-2).fit(x, y).model_.state_dict()
    assert not torch.equal(moved["head.weight"], meta["head.weight"])


def test_saved_settings_and_labels_load_ready_to_predict(folder, tmp_path):
    x, y = labelled()
    fitted = FewShotIntentClassifier(folder, finetune_steps=3, finetune_lr=0.01).fit(x, y)
    loaded = FewShotIntentClassifier.from_pretrained(fitted.save_pretrained(tmp_path / "m"))
    assert loaded.classes_.tolist() == [1, 2, 10] and loaded.predict(x).dtype.kind == "i"
    np.testing.assert_array_equal(loaded.predict_proba(x), fitted.predict_proba(x))
    assert loaded.config["adaptation"]["finetune_steps"] == 3 and loaded.config["adaptation"]["finetune_lr"] == 0.01
    assert loaded.adapted_["finetune_steps"] == 3


# -- scikit-learn's own checks ------------------------------------------------------------------
#: The checks that cannot apply: a meta-trained model takes features of its encoder's width
#: only (8 here; scikit-learn's checks make data 2 to 10 columns wide) and refuses integer
#: or object arrays as features, since they are no encoder's output.
WIDTH = "the check's data have another width than the model's features (8), which a meta-trained model cannot take"
EXPECTED_FAILED_CHECKS = {
    name: WIDTH
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_classifiers_classes",
        "check_classifiers_train",
        "check_supervised_y_2d",
        "check_decision_proba_consistency",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_estimators_nan_inf",  # NaN is refused (tested); its fit on clean data has another width
    )
} | {
    "check_dtype_object": "a 2-d object array is neither utterances nor features; refused",
    "check_classifier_data_not_an_array": "integer features (and of another width) are no encoder's output; refused",
}


@parametrize_with_checks([model_of()], expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_checks(estimator, check):
    check(estimator)
