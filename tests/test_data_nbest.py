"""N-best task tables: format, chronological split, separator wiring, simulated N-best sets."""

import json

import numpy as np
import pandas as pd
import pytest

from l2l_taskmix.data import (
    IntentTask,
    MetaSplit,
    join_hypotheses,
    load_nbest,
    make_nbest,
    read_task_table,
    simulate_nbest,
    task_stats,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def calls(order_values, tasks=("jan", "feb", "mar")):
    rows = []
    for o, t in zip(order_values, tasks):
        for y in ("BILLING", "OUTAGE"):
            for i in range(3):
                rows.append({"task": t, "intent": y, "order": o, "hypotheses": [f"{y.lower()} {t} {i}", f"{y.lower()} {t}{i}"]})
    return rows


class FakeEncoder:
    sep = "[SEP]"


def test_jsonl_hypotheses_joined_with_encoder_separator(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", calls([1, 2, 3]))
    split = load_nbest(p, min_class_count=1, encoder_sep=FakeEncoder(), num_train=2)
    assert split.train[0].texts[0] == "billing jan 0 [SEP] billing jan0"
    assert load_nbest(p, min_class_count=1, num_train=2).train[0].texts[0] == "billing jan 0 </s></s> billing jan0"
    assert load_nbest(p, min_class_count=1, num_train=2, nbest=1).train[0].texts[0] == "billing jan 0"
    assert split.info["separator"] == "[SEP]"


def test_chronology_numbers_timestamps_and_file_order(tmp_path):
    # file order jan, feb, mar; orders say mar is oldest, then jan, then feb
    p = write_jsonl(tmp_path / "n.jsonl", calls([5, 9, 1]))
    split = load_nbest(p, min_class_count=1, num_train=2)
    assert [t.name for t in split.train] == ["mar", "jan"] and [t.name for t in split.test] == ["feb"]
    p = write_jsonl(tmp_path / "t.jsonl", calls(["2024-03-01T10:00:00Z", "2024-01-15", "2024-02-01 08:00"]))
    # jan's rows are stamped March, feb's January, mar's February
    split = load_nbest(p, min_class_count=1, num_train=1)
    assert [t.name for t in split.train] == ["feb"]
    assert [t.name for t in split.test] == ["mar", "jan"]
    rows = calls([0, 0, 0])
    for r in rows:
        del r["order"]
    p = write_jsonl(tmp_path / "f.jsonl", rows)
    split = load_nbest(p, min_class_count=1, num_train=2)
    assert [t.name for t in split.train] == ["jan", "feb"]
    assert split.info["chronology"] == "first appearance in file"


def test_task_time_is_its_earliest_row(tmp_path):
    rows = calls([10, 20, 30])
    rows[-1]["order"] = 0  # one early row makes 'mar' the oldest task
    split = load_nbest(write_jsonl(tmp_path / "c.jsonl", rows), num_train=1, min_class_count=1)
    assert [t.name for t in split.train] == ["mar"]


def test_csv_with_text_and_json_hypotheses(tmp_path):
    df = pd.DataFrame(
        {
            "task": ["a", "a", "b", "b"],
            "intent": ["X", "Y", "X", "Y"],
            "text": ["hello there", "", "", "bye now"],
            "hypotheses": ["", json.dumps(["why", "wy"]), json.dumps(["ex", "eggs"]), ""],
            "id": [1, 2, 3, 4],  # known, not used
        }
    )
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    table = read_task_table(p, encoder_sep="|")
    assert table["text"].tolist() == ["hello there", "why | wy", "ex | eggs", "bye now"]
    assert table["num_hypotheses"].tolist() == [1, 2, 2, 1]
    split = load_nbest(p, min_class_count=1, num_train=1)
    assert (split.train[0].name, split.test[0].name) == ("a", "b")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"task": "a", "intent": "X", "hypotheses": "just a string"}, "list of strings"),
        ({"task": "a", "intent": "X", "hypotheses": ["ok", 3]}, "list of strings"),
        ({"task": "a", "intent": "X", "hypotheses": []}, "hypotheses is empty"),
        ({"task": "a", "intent": "X", "text": "  "}, "empty utterance"),
        ({"task": "a", "intent": "X"}, "exactly one of 'text' or 'hypotheses'"),
        ({"task": "a", "intent": "X", "text": "hi", "hypotheses": ["hi"]}, "exactly one of"),
        ({"task": "", "intent": "X", "text": "hi"}, "missing or empty 'task'"),
        ({"task": "a", "text": "hi"}, "missing or empty 'intent'"),
        ({"task": "a", "intent": 1.0, "text": "hi"}, r"'intent' must be a name, a text or a whole number, got 1\.0 \(float\)"),
        ({"task": ["a"], "intent": "X", "text": "hi"}, r"'task' must be a name, a text or a whole number, got \['a'\] \(list\)"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, bad, message):
    rows = [{"task": "a", "intent": "X", "text": "fine"}, bad]
    p = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=rf"bad\.jsonl:2: .*{message}"):
        read_task_table(p)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_nbest(tmp_path / "none.jsonl")
    (tmp_path / "x.txt").write_text("task\n")
    with pytest.raises(ValueError, match="unknown task-table format"):
        read_task_table(tmp_path / "x.txt")
    (tmp_path / "j.jsonl").write_text('{"task": "a", "intent": "X", "text": "hi"}\n{oops\n')
    with pytest.raises(ValueError, match=r"j\.jsonl:2: not valid JSON"):
        read_task_table(tmp_path / "j.jsonl")
    pd.DataFrame({"task": ["a"], "intent": ["X"], "hypotheses": ["[not json"]}).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(ValueError, match=r"h\.csv:2: hypotheses must be a JSON list"):
        read_task_table(tmp_path / "h.csv")
    rows = calls([1, 2, 3])
    rows[4]["order"] = None
    with pytest.raises(ValueError, match="'order' missing"):
        read_task_table(write_jsonl(tmp_path / "o.jsonl", rows))
    rows[4]["order"] = "not a date"
    with pytest.raises(ValueError, match=r"o\.jsonl:5: order must be a number or an ISO 8601 timestamp, got .not a date."):
        read_task_table(write_jsonl(tmp_path / "o.jsonl", rows))


def test_default_class_threshold_drops_small_classes(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", calls([1, 2, 3]))  # 3 examples per class
    with pytest.warns(UserWarning, match="jan: 0 class"), pytest.raises(ValueError, match="num_train=1 but there are 0 tasks"):
        load_nbest(p, num_train=1)


def test_split_errors(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", calls([1, 2, 3]))
    with pytest.raises(ValueError, match="num_train=7 but there are 3 tasks"):
        load_nbest(p, min_class_count=1)  # the paper's 7 of 11 needs at least 8 tasks
    with pytest.raises(ValueError, match="do not exist.*'apr'"):
        load_nbest(p, min_class_count=1, train_tasks=["jan", "apr"])
    split = load_nbest(p, min_class_count=1, test_tasks=["jan"])
    assert [t.name for t in split.train] == ["feb", "mar"]


def test_join_hypotheses():
    assert join_hypotheses(["a b", " c "], sep="</s></s>") == "a b </s></s> c"
    assert join_hypotheses(["a", "b", "c"], sep="|", nbest=2) == "a | b"
    with pytest.raises(ValueError, match="list of strings"):
        join_hypotheses("a b")


def test_simulate_nbest_is_deterministic_distinct_and_noisy():
    text = "please set an alarm for seven thirty tomorrow morning"
    vocab = ["wake", "timer", "evening", "alarm"]
    a = simulate_nbest(text, 5, np.random.default_rng(1), vocab)
    b = simulate_nbest(text, 5, np.random.default_rng(1), vocab)
    assert a == b and len(a) == 5 and len(set(a)) == 5
    assert all(h.strip() for h in a)
    assert any(h != text for h in a)
    # more noise for lower-ranked hypotheses, on average
    rng = np.random.default_rng(0)
    changed = np.zeros(5)
    for _ in range(200):
        hyps = simulate_nbest(text, 5, rng, vocab, word_error_rate=0.1)
        changed += [len(set(h.split()) ^ set(text.split())) for h in hyps]
    assert changed[-1] > changed[0]
    assert simulate_nbest("hello world", 1, np.random.default_rng(0), word_error_rate=0.0) == ["hello world"]
    with pytest.raises(ValueError):
        simulate_nbest("", 2, np.random.default_rng(0))


def test_make_nbest_from_tasks_roundtrip_and_determinism(tmp_path):
    tasks = [
        IntentTask(
            f"t{k}",
            [f"book a table for {i} people tonight" for i in range(6)] + [f"cancel my order number {i}" for i in range(6)],
            ["BOOK"] * 6 + ["CANCEL"] * 6,
        )
        for k in range(4)
    ]
    p1 = make_nbest(tmp_path / "a.jsonl", tasks, nbest=3, seed=5)
    p2 = make_nbest(tmp_path / "b.jsonl", tasks, nbest=3, seed=5)
    p3 = make_nbest(tmp_path / "c.jsonl", tasks, nbest=3, seed=6)
    assert p1.read_bytes() == p2.read_bytes() != p3.read_bytes()
    rows = [json.loads(line) for line in p1.read_text().splitlines()]
    assert len(rows) == 48 and all(len(r["hypotheses"]) == 3 for r in rows)
    assert [r["order"] for r in rows[::12]] == [0, 1, 2, 3]
    split = load_nbest(p1, min_class_count=1, num_train=3)
    assert [t.name for t in split.train] == ["t0", "t1", "t2"]
    assert split.test[0].texts[0].count("</s></s>") == 2
    csv = make_nbest(tmp_path / "a.csv", tasks, nbest=2, seed=5)
    assert load_nbest(csv, min_class_count=1, num_train=3).to_dict()["num_examples"] == {f"t{k}": 12 for k in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.jsonl", "b.jsonl", "c.jsonl"]  # no temp files


def test_make_nbest_from_bundled_sample_and_table1(tmp_path):
    p = make_nbest(tmp_path / "nbest.jsonl", nbest=2, seed=0)  # bundled sample, English
    everything = load_nbest(p, min_class_count=1)
    assert float(task_stats(everything).loc["all", "mean #examples"]) == pytest.approx(2096 / 11, abs=0.01)
    split = load_nbest(p)  # default: classes with >= 6 examples (5 shots + 1 test)
    assert (len(split.train), len(split.test)) == (7, 4)
    assert int(task_stats(split).loc["all", "#tasks"]) == 11
    assert all(min(t.class_counts().values()) >= 6 for t in split.tasks)
    assert split.info["dropped_classes"] and split.info["min_class_count"] == 6
    with pytest.raises(ValueError, match="nbest == 0, must be >= 1"):
        make_nbest(tmp_path / "x.jsonl", nbest=0)
    with pytest.raises(ValueError, match=r"\.jsonl or \.csv"):
        make_nbest(tmp_path / "x.txt")


def test_module_cli_writes_file(tmp_path, capsys):
    from l2l_taskmix.data.nbest import main

    out = tmp_path / "cli.jsonl"
    assert main(["--out", str(out), "--nbest", "2", "--seed", "1"]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert len(first["hypotheses"]) == 2 and str(out) in capsys.readouterr().out


def test_make_nbest_from_metasplit_keeps_train_first(tmp_path):
    t = [IntentTask(n, ["a b c", "d e f", "g h i", "j k l"], ["X", "X", "Y", "Y"]) for n in "pqr"]
    split = MetaSplit([t[2], t[0]], [t[1]])
    p = make_nbest(tmp_path / "s.jsonl", split, nbest=2, seed=0)
    again = load_nbest(p, min_class_count=1, num_train=2)
    assert [x.name for x in again.train] == ["r", "p"] and again.test[0].name == "q"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_misspelt_split_column_is_refused_not_trained_on(tmp_path, suffix):
    """A task table whose ``split`` is misspelt would meta-train on the test tasks: refused, the
    column and the known ones named, the closest one suggested."""
    rows = [r | {"splt": "test" if r["task"] == "mar" else "train"} for r in calls([1, 2, 3])]
    if suffix == ".jsonl":
        p = write_jsonl(tmp_path / "c.jsonl", rows)
        where = "c.jsonl:1:"
    else:
        p = tmp_path / "c.csv"
        pd.DataFrame(rows).assign(hypotheses=lambda f: f["hypotheses"].map(json.dumps)).to_csv(p, index=False)
        where = "c.csv:1:"
    for read in (read_task_table, lambda path: load_nbest(path, num_train="all", min_class_count=1)):
        with pytest.raises(ValueError) as err:
            read(p)
        message = str(err.value)
        assert where in message and "unknown column(s) 'splt'" in message and "did you mean 'split'?" in message
        assert "task, intent, text, hypotheses, id, order, split, reference" in message


def test_make_nbest_output_reads_back_with_its_reference_column(tmp_path):
    """``make_nbest`` writes a ``reference`` column: a known column, read without complaint."""
    tasks = [IntentTask(t, [f"{y} {t} {i}" for y in "AB" for i in range(2)], [y for y in "AB" for _ in range(2)]) for t in ("a", "b")]
    p = make_nbest(tmp_path / "n.jsonl", tasks, nbest=2)
    assert "reference" in json.loads(p.read_text().splitlines()[0])
    assert sorted(read_task_table(p)["task"].unique()) == ["a", "b"]
