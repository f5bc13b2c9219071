"""MTOP loader and the MTOP-Long / MTOP-Wide builders, on real sample lines and broken ones."""

import json
import warnings

import pytest

from l2l_taskmix.data import (
    IntentTask,
    MetaSplit,
    build_mtop_long,
    build_mtop_wide,
    bundled_mtop_root,
    load_mtop,
    mtop_tasks,
)
from l2l_taskmix.data.mtop import SAMPLE_WIDE_MIN_CLASS_COUNT

SAMPLE = bundled_mtop_root()


def real_lines(lang="en", split="eval", domains=None, limit=None):
    lines = (SAMPLE / lang / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    if domains is not None:
        lines = [ln for ln in lines if ln.split("\t")[4] in domains]
    return lines[:limit] if limit else lines


def write_root(root, files):
    """files: {"en/eval.txt": [lines]}"""
    for rel, lines in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def small_root(tmp_path):
    """Real MTOP lines of 4 domains, two languages, eval split + a train split for 'en'."""
    doms = {"alarm", "timer", "news", "recipes"}
    return write_root(
        tmp_path / "mtop",
        {
            "en/eval.txt": real_lines("en", "eval", doms),
            "en/train.txt": real_lines("en", "test", doms),
            "de/eval.txt": real_lines("de", "eval", doms),
        },
    )


# ----------------------------------------------------------------------------- loader


def test_bundled_sample_is_packaged_with_licence():
    assert (SAMPLE / "README.md").read_text().count("CC BY-SA 4.0") >= 1
    assert sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()) == ["de", "en", "es", "fr", "hi", "th"]


def test_load_bundled_sample_real_lines():
    df = load_mtop(languages=["en", "th"], splits=["eval"])
    assert len(df) == 2 * 859
    assert {"id", "intent", "utterance", "domain", "locale", "language", "split"} <= set(df.columns)
    first = df.iloc[0]
    assert (first["id"], first["intent"], first["utterance"], first["domain"], first["locale"]) == (
        "3232333635383732",
        "IN:CREATE_CALL",
        "call Camilla whatsapp video",
        "calling",
        "en_XX",
    )
    assert set(df["language"]) == {"en", "th"} and set(df["split"]) == {"eval"}
    assert df["domain"].nunique() == 11


def test_load_reads_whichever_splits_are_present(small_root):
    df = load_mtop(small_root)
    assert sorted(df["language"].unique()) == ["de", "en"]
    assert set(df.loc[df.language == "en", "split"]) == {"eval", "train"}
    assert set(df.loc[df.language == "de", "split"]) == {"eval"}
    assert len(df) == sum(1 for _ in open(small_root / "en/eval.txt")) + sum(1 for _ in open(small_root / "en/train.txt")) + sum(
        1 for _ in open(small_root / "de/eval.txt")
    )


def test_missing_root_language_and_split(small_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mtop(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="language folder .*fr"):
        load_mtop(small_root, languages=["en", "fr"])
    with pytest.raises(FileNotFoundError, match="de/train.txt"):
        load_mtop(small_root, languages=["en", "de"], splits=["train"])  # de has no train.txt
    assert set(load_mtop(small_root, splits=["train"])["language"]) == {"en"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no language folders"):
        load_mtop(tmp_path / "empty")


def test_wrong_column_count_names_file_and_line(tmp_path):
    lines = real_lines(limit=5)
    lines[3] = "\t".join(lines[3].split("\t")[:6])  # 6 columns
    root = write_root(tmp_path / "m", {"en/eval.txt": lines})
    with pytest.raises(ValueError, match=r"en/eval\.txt:4: expected 8 tab-separated columns.*found 6"):
        load_mtop(root)


def test_extra_column_and_empty_utterance_are_errors(tmp_path):
    lines = real_lines(limit=4)
    lines[1] = lines[1] + "\textra"
    root = write_root(tmp_path / "a", {"en/eval.txt": lines})
    with pytest.raises(ValueError, match=r":2: expected 8 .* found 9"):
        load_mtop(root)
    lines = real_lines(limit=4)
    cols = lines[2].split("\t")
    cols[3] = "   "
    lines[2] = "\t".join(cols)
    root = write_root(tmp_path / "b", {"en/eval.txt": lines})
    with pytest.raises(ValueError, match=r"eval\.txt:3: empty utterance"):
        load_mtop(root)


def test_empty_domain_is_filled_from_intent_mapping(tmp_path):
    cols = real_lines(limit=1)[0].split("\t")
    cols[4] = ""
    root = write_root(tmp_path / "m", {"en/test.txt": ["\t".join(cols)]})
    assert load_mtop(root)["domain"].tolist() == ["calling"]


# ----------------------------------------------------------------------------- builders


def test_mtop_long_on_bundled_sample_matches_paper_shape():
    split = build_mtop_long()
    assert (len(split.train), len(split.test)) == (7, 4)
    assert sorted(t.name for t in split.tasks) == sorted(
        ["alarm", "calling", "event", "messaging", "music", "news", "people", "recipes", "reminder", "timer", "weather"]
    )
    for task in split.tasks:  # every kept class has >= 20 examples, languages pooled
        assert min(task.class_counts().values()) >= 20
        assert task.meta["languages"] == ["de", "en", "es", "fr", "hi", "th"]
    info = split.info
    assert info["min_class_count"] == 20 and info["seed"] == 0
    dropped = sum(len(v) for v in info["dropped_classes"].values())
    assert dropped > 0 and info["num_examples_kept"] < info["num_examples_read"] == 12576
    json.dumps(split.to_dict())  # serializable


def test_split_is_deterministic_given_seed_and_changes_with_it(small_root):
    a = build_mtop_long(small_root, min_class_count=5, num_train=2, seed=3)
    b = build_mtop_long(small_root, min_class_count=5, num_train=2, seed=3)
    assert a.to_dict() == b.to_dict()
    sides = {tuple(t.name for t in build_mtop_long(small_root, min_class_count=5, num_train=2, seed=s).train) for s in range(8)}
    assert len(sides) > 1


def test_named_tasks_and_unknown_task_name(small_root):
    split = build_mtop_long(small_root, min_class_count=5, train_tasks=["alarm", "news"])
    assert [t.name for t in split.train] == ["alarm", "news"]
    assert sorted(t.name for t in split.test) == ["recipes", "timer"]
    assert split.info["assignment"] == "given"
    with pytest.raises(ValueError, match="do not exist.*'sports'"):
        build_mtop_long(small_root, min_class_count=5, test_tasks=["sports"])
    with pytest.raises(ValueError, match="both sides"):
        build_mtop_long(small_root, min_class_count=5, train_tasks=["alarm"], test_tasks=["alarm", "news"])


def test_too_many_train_tasks_is_a_clear_error(small_root):
    with pytest.raises(ValueError, match="num_train=4 but there are 4 tasks"):
        build_mtop_long(small_root, min_class_count=5, num_train=4)


def test_one_class_tasks_are_dropped_with_a_warning_naming_them(small_root):
    with pytest.warns(UserWarning, match=r"news/de: 1 class\(es\) left") as rec:
        split = build_mtop_wide(small_root, min_class_count=15)
    names = {t.name for t in split.tasks}
    assert "news/de" not in names and "news/de" in split.info["dropped_tasks"]
    assert "alarm/en" in names  # en has eval + train lines, enough for several classes
    assert any("news/en" in str(w.message) or "recipes" in str(w.message) for w in rec)


def test_mtop_wide_sample_scale_default_and_paper_default(small_root):
    split = build_mtop_wide()
    assert split.info["min_class_count"] == SAMPLE_WIDE_MIN_CLASS_COUNT
    assert split.info["min_class_count_source"] == "sample-scale default"
    assert len(split.tasks) == 66 and (len(split.train), len(split.test)) == (53, 13)
    assert all(t.name.count("/") == 1 for t in split.tasks)
    assert all(min(t.class_counts().values()) >= SAMPLE_WIDE_MIN_CLASS_COUNT for t in split.tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="min_class_count=50.*leaves 0 tasks"):
            build_mtop_wide(small_root)  # a user folder gets the paper's 50 (too high here)
        paper_on_sample = build_mtop_wide(min_class_count=50)
    # the reason for the sample-scale default: 50 leaves too little of the sample
    assert len(paper_on_sample.tasks) < 20 and len(paper_on_sample.info["dropped_tasks"]) > 40


def test_bad_builder_parameters():
    with pytest.raises(ValueError, match="train_fraction"):
        build_mtop_wide(train_fraction=1.0)
    with pytest.raises(ValueError, match="min_class_count"):
        build_mtop_long(min_class_count=0)


def test_metasplit_save_is_json_and_atomic(tmp_path):
    split = MetaSplit([IntentTask("a", ["x", "y"], ["P", "Q"])], [IntentTask("b", ["z", "w"], ["P", "R"])], {"seed": 1})
    path = split.save(tmp_path / "run" / "split.json")
    data = json.loads(path.read_text())
    assert data["train_tasks"] == ["a"] and data["test_tasks"] == ["b"]
    assert data["info"] == {"seed": 1}
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temp file left


def test_intent_task_validation():
    with pytest.raises(ValueError, match="2 texts but 1 intents"):
        IntentTask("t", ["a", "b"], ["X"])
    with pytest.raises(ValueError, match="empty utterance"):
        IntentTask("t", ["a", " "], ["X", "Y"])
    with pytest.raises(ValueError, match="duplicate task names"):
        MetaSplit([IntentTask("t", ["a"], ["X"])], [IntentTask("t", ["b"], ["Y"])])


def test_mtop_tasks_groups_by_domain_and_language(small_root):
    tasks = mtop_tasks(load_mtop(small_root), by=("domain", "language"))
    assert [t.name for t in tasks] == ["alarm/de", "alarm/en", "news/de", "news/en", "recipes/de", "recipes/en", "timer/de", "timer/en"]
    assert tasks[0].meta == {"domain": "alarm", "language": "de", "languages": ["de"]}
