"""Shared fixtures. Data-side fixtures are prefixed ``data_``."""

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# No timing in tests: hypothesis's per-example deadline (200 ms) fails on a loaded machine.
settings.register_profile("l2l-taskmix", deadline=None)
settings.load_profile("l2l-taskmix")

#: Where the user's caches would be written; tests point them at a temporary folder instead.
PRIVATE_CACHES = {"L2L_TASKMIX_CACHE": "features", "MPLCONFIGDIR": "matplotlib"}


def pytest_configure(config):
    """Before collection (matplotlib reads MPLCONFIGDIR when imported): the feature cache and
    matplotlib's cache live in a temporary folder for the session, subprocesses included, so the
    tests never write into ~/.cache."""
    root = Path(tempfile.mkdtemp(prefix="l2l-taskmix-tests-"))
    config._l2l_taskmix_caches = (root, {name: os.environ.get(name) for name in PRIVATE_CACHES})
    for name, folder in PRIVATE_CACHES.items():
        os.environ[name] = str(root / folder)


def pytest_unconfigure(config):
    root, saved = getattr(config, "_l2l_taskmix_caches", (None, {}))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


class BagOfWordsEncoder:
    """Bag of hashed words: an encoder object as featurize_tasks accepts it, with no model."""

    cache_key, dim, sep = "toy-bow", 16, " | "

    def encode(self, texts, batch_size=None):
        out = torch.zeros(len(texts), 16)
        for r, text in enumerate(texts):
            for w in text.split():
                out[r, sum(map(ord, w)) % 16] += 1.0
        return out


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("name")``: the module of ``benchmarks/name.py`` (a script, not a
    package module), loaded once per session."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
            loaded[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded[name])
        return loaded[name]

    return load


@pytest.fixture
def bow_encoder():
    """A :class:`BagOfWordsEncoder` (cache key ``toy-bow``)."""
    return BagOfWordsEncoder()


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray instance with 2 CPUs and a small object store, its files in a temporary folder
    (``--ray``/``ray_address="local"`` joins it rather than starting another)."""
    import ray

    assert not ray.is_initialized()
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield ray
    ray.shutdown()


@contextlib.contextmanager
def torch_threads(n):
    """This process on ``n`` torch threads inside the block, its own count restored after (a
    test that changes it would change the thread count of every test after it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session", name="torch_threads")
def torch_threads_fixture():
    """:func:`torch_threads`, for tests and fixtures: ``with torch_threads(2): ...``."""
    return torch_threads


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: tiny models only pay threading overhead."""
    with torch_threads(1):
        yield


def _build_tiny_xlmr(folder):
    """A tiny random XLM-R (16-d) plus a tokenizer trained on the fly, saved with
    ``save_pretrained`` so it loads through the same ``from_pretrained`` code as a real one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    corpus = [
        "set an alarm for seven",
        "call mom please",
        "what is the weather today",
        "play some music",
        "réveille-moi à sept heures",
        "llama a mamá",
    ] * 10
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=120, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    fast.save_pretrained(folder)
    config = XLMRobertaConfig(
        vocab_size=len(fast),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    import torch

    with torch.random.fork_rng():  # deterministic weights, global RNG left as it was
        torch.manual_seed(0)
        XLMRobertaModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def data_tiny_xlmr_dir(tmp_path_factory):
    """Folder of a tiny random XLM-R model + tokenizer (hidden size 16)."""
    return _build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))
