import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio.dataset import DatasetOptions, load_prepared, prepare_dataset
from studio.errors import ConfigError, DatasetError


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def tickets_csv(tmp_path, rows=None):
    rows = rows or [(f"my parcel {i} has not arrived yet", "shipping") for i in range(10)] + [
        (f"I was charged twice for order {i}", "billing") for i in range(10)
    ]
    body = "id,text,category\n" + "".join(f'{i},"{t}",{label}\n' for i, (t, label) in enumerate(rows))
    return write(tmp_path / "tickets.csv", body)


def test_bundled_tickets_are_detected_and_stratified(samples, tmp_path):
    prepared = prepare_dataset(samples / "support_tickets.csv", tmp_path / "ds")
    report = prepared.report
    assert (report.task, report.text_column, report.label_column) == ("classification", "text", "category")
    assert report.rows_used == 3000 and sum(report.split_sizes.values()) == 3000
    assert len(report.label_counts) == 7
    for split, share in (("test", 0.1), ("validation", 0.1), ("train", 0.8)):
        records = prepared.split(split)
        for label, total in report.label_counts.items():
            count = sum(r["label"] == label for r in records)
            assert abs(count - share * total) <= 1.5, (split, label)
    texts = [set(r["text"] for r in prepared.split(s)) for s in ("train", "validation", "test")]
    assert sum(map(len, texts)) >= len(set().union(*texts))  # each row lands in exactly one split


def test_split_is_seeded(samples, tmp_path):
    a = prepare_dataset(samples / "support_tickets.csv", tmp_path / "a").split("test")
    b = prepare_dataset(samples / "support_tickets.csv", tmp_path / "b").split("test")
    c = prepare_dataset(samples / "support_tickets.csv", tmp_path / "c", DatasetOptions(seed=99)).split("test")
    assert a == b and a != c


def test_faq_pairs_are_causal_prompt_response(samples, tmp_path):
    prepared = prepare_dataset(samples / "shop_faq.jsonl", tmp_path / "faq")
    assert prepared.report.task == "causal_lm"
    assert (prepared.report.prompt_column, prepared.report.response_column) == ("question", "answer")
    assert set(prepared.split("train")[0]) == {"prompt", "response"}
    report = load_prepared(tmp_path / "faq").report
    assert report.rows_used == 311 and "311 rows in 120 groups" in report.split_note  # 120 questions, 2-3 ways each
    assert not any("nearly repeat" in w for w in report.warnings)


def test_txt_paragraphs_and_long_text_chunked(tmp_path):
    long = " ".join(["The warranty covers parts and labour."] * 30)
    path = write(tmp_path / "notes.txt", f"First paragraph\nstill first.\n\nSecond one.\n\n{long}\n")
    prepared = prepare_dataset(path, tmp_path / "out", DatasetOptions(max_chars=200, test_fraction=0.0, validation_fraction=0.0))
    texts = [r["text"] for r in prepared.split("train")]
    assert "First paragraph still first." in texts and "Second one." in texts
    assert all(len(t) <= 200 for t in texts) and len(texts) > 5


def test_parquet_and_user_column_override(tmp_path):
    table = pa.table(
        {"body": [f"text number {i} about delivery" for i in range(12)], "team": ["a", "b", "c"] * 4, "note": ["x"] * 12}
    )
    pq.write_table(table, tmp_path / "d.parquet")
    prepared = prepare_dataset(tmp_path / "d.parquet", tmp_path / "out", DatasetOptions(text_column="body", label_column="team"))
    assert prepared.report.format == "parquet" and prepared.report.labels == ["a", "b", "c"]


def test_windows_1252_file_is_read_with_a_note(tmp_path):
    rows = "".join(f"Café order {i} is late,{'a' if i % 2 else 'b'}\n" for i in range(10))
    path = write(tmp_path / "w.csv", "text,label\n" + rows, encoding="cp1252")
    prepared = prepare_dataset(path, tmp_path / "out")
    assert "Café" in prepared.split("train")[0]["text"]
    assert any("not UTF-8" in w for w in prepared.report.warnings)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 200, "ZIP archive"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG image"),
        (b"text,label\nabc\x00\x00\x01\x02,x\n" * 20, "binary data"),
        (b"text,label\n", "no data rows"),
    ],
)
def test_unusable_files_are_named(tmp_path, content, message):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        prepare_dataset(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".prep-*"))


def test_mixed_encoding_names_the_row(tmp_path):
    good = "".join(f"order {i} late,shipping\norder {i} charged,billing\n" for i in range(8000))
    # The first 256 KB are clean UTF-8; the bad bytes come later, as in a file appended to by hand.
    data = ("text,label\n" + good).encode() + "Crème brûlée maker broken,billing\n".encode("latin-1")
    (tmp_path / "mixed.csv").write_bytes(data)
    with pytest.raises(DatasetError, match=r"line 16002 cannot be read as utf_8.*Save the whole file as UTF-8"):
        prepare_dataset(tmp_path / "mixed.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_utf8_file_with_a_few_latin1_lines_is_not_read_in_another_codepage(tmp_path):
    # UTF-8 accents throughout, and one row pasted from a Latin-1 program near the top: read whole as a
    # guessed codepage, every "é" elsewhere would turn into "Ã©" with only a warning.
    rows = [f"Café order {i} is late,{'a' if i % 2 else 'b'}\n".encode() for i in range(40)]
    data = b"text,label\n" + b"".join(rows[:5]) + "Crème brûlée maker broken,a\n".encode("latin-1") + b"".join(rows[5:])
    (tmp_path / "mixed.csv").write_bytes(data)
    with pytest.raises(DatasetError, match=r"mixes text encodings: most of it is UTF-8, but line\(s\) 7 are not"):
        prepare_dataset(tmp_path / "mixed.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_limits_on_what_a_dataset_unpacks_to(tmp_path):
    from studio.data_limits import DatasetLimits

    rows = "".join(f"parcel {i} is late,{'a' if i % 2 else 'b'}\n" for i in range(5000))
    path = write(tmp_path / "t.csv", "text,label\n" + rows)
    with pytest.raises(DatasetError, match="has more than 1,000 rows; this studio takes up to 1,000 per dataset"):
        prepare_dataset(path, tmp_path / "out", limits=DatasetLimits(max_rows=1000))
    with pytest.raises(DatasetError, match="SLM_STUDIO_MAX_DATASET_MB"):
        prepare_dataset(path, tmp_path / "out", limits=DatasetLimits(max_bytes=50_000))
    with pytest.raises(DatasetError, match="does not fit in what is left of your storage"):
        prepare_dataset(path, tmp_path / "out", limits=DatasetLimits(quota_left=10_000))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".prep-*"))
    table = pa.table({"text": ["the same long complaint about a parcel " * 20] * 30_000, "label": ["a", "b"] * 15_000})
    pq.write_table(table, tmp_path / "bomb.parquet")
    assert (tmp_path / "bomb.parquet").stat().st_size < 100_000
    with pytest.raises(DatasetError, match=r"unpacks to more than 16.0 MB, over 50 times its own size"):
        prepare_dataset(tmp_path / "bomb.parquet", tmp_path / "out")
    with pytest.raises(DatasetError, match="has 30,000 rows; this studio takes up to 10,000"):  # refused unread
        prepare_dataset(tmp_path / "bomb.parquet", tmp_path / "out", limits=DatasetLimits(max_rows=10_000))
    assert prepare_dataset(path, tmp_path / "out").report.rows_used == 5000


def test_label_with_one_example_and_long_row_are_all_reported(tmp_path):
    rows = [(f"parcel {i} late", "shipping") for i in range(6)] + [(f"charged {i}", "billing") for i in range(6)]
    rows += [("where is the manual", "docs"), ("x" * 300, "shipping")]
    with pytest.raises(DatasetError) as err:
        prepare_dataset(tickets_csv(tmp_path, rows), tmp_path / "out", DatasetOptions(max_chars=100))
    text = str(err.value)
    assert "label 'docs' has only 1 example(s) (row 13)" in text
    assert "row 14, column 'text': 300 characters" in text
    assert not (tmp_path / "out").exists()


def test_missing_and_ambiguous_columns(tmp_path):
    path = tickets_csv(tmp_path)
    with pytest.raises(DatasetError, match="no column text_column 'body'.*id, text, category"):
        prepare_dataset(path, tmp_path / "out", DatasetOptions(text_column="body"))
    rows = "".join(f'"first long free text number {i}","second long free text number {i}",{i % 2}\n' for i in range(10))
    ambiguous = write(tmp_path / "amb.csv", "a,b,c\n" + rows)
    with pytest.raises(DatasetError, match="More than one column could be the text: a, b"):
        prepare_dataset(ambiguous, tmp_path / "out")


def test_bad_json_lines(tmp_path):
    with pytest.raises(DatasetError, match="one JSON array"):
        prepare_dataset(write(tmp_path / "a.jsonl", json.dumps([{"text": "x"}])), tmp_path / "o")
    lines = '{"text": "ok one", "label": "a"}\n{"text": "broken", "label": \n'
    with pytest.raises(DatasetError, match="Line 2 .* not valid JSON"):
        prepare_dataset(write(tmp_path / "b.jsonl", lines), tmp_path / "o")


def test_wrong_field_count_and_extension(tmp_path):
    path = write(tmp_path / "f.csv", "text,label\nfine row,a\nan unquoted, comma,b\n")
    with pytest.raises(DatasetError, match="Row 2 .* has 3 fields but the header has 2"):
        prepare_dataset(path, tmp_path / "o")
    with pytest.raises(DatasetError, match="extension"):
        prepare_dataset(write(tmp_path / "f.xlsx", "x"), tmp_path / "o")


def test_options_report_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        DatasetOptions(task="regression", test_fraction=0.7, max_chars=3)
    assert len(err.value.problems) >= 3


def test_own_test_file_replaces_the_held_out_split_and_is_checked_like_the_main_file(tmp_path):
    main = tmp_path / "train.csv"
    main.write_text("text,label\n" + "".join(f"parcel late {i},delivery\nrefund please {i},billing\n" for i in range(20)))
    own = tmp_path / "test.csv"
    own.write_text("text,label\nwhere is my parcel,delivery\nmoney back,billing\n")
    prepared = prepare_dataset(main, tmp_path / "ds", test_file=own)
    assert prepared.report.split_sizes == {"train": 36, "validation": 4, "test": 2}
    assert prepared.report.own_splits == {"test": "test.csv"}
    assert [r["text"] for r in prepared.split("test")] == ["where is my parcel", "money back"]

    other_label = tmp_path / "other.csv"
    other_label.write_text("text,label\nmy screen broke,hardware\nmoney back,billing\n")
    with pytest.raises(DatasetError, match="label\\(s\\) the training file never uses: hardware"):
        prepare_dataset(main, tmp_path / "ds2", test_file=other_label)
    other_columns = tmp_path / "cols.csv"
    other_columns.write_text("message,category\nwhere is my parcel,delivery\n")
    with pytest.raises(DatasetError, match="does not have the main file's columns"):
        prepare_dataset(main, tmp_path / "ds3", test_file=other_columns)
    assert not (tmp_path / "ds2").exists() and not (tmp_path / "ds3").exists()  # nothing half-written


def test_held_out_rows_that_repeat_training_rows_are_flagged(tmp_path):
    rows = "".join(f"return order {i} please,returns\nwhere is parcel {i + 500} now,delivery\n" for i in range(10, 40))
    clean = prepare_dataset(write(tmp_path / "clean.csv", "text,label\n" + rows), tmp_path / "a")
    assert not any("nearly repeat" in w for w in clean.report.warnings)
    repeated = "".join('"Hi, how do I get a refund?",returns\nHello! where is my parcel?,delivery\n' for _ in range(30))
    leaky = prepare_dataset(write(tmp_path / "leaky.csv", "text,label\n" + repeated), tmp_path / "b")
    said = next(w for w in leaky.report.warnings if "nearly repeat" in w)
    assert said.startswith("6 of the 6 test rows (100%)") and "bring a test file of your own" in said


def test_rephrasings_of_one_question_stay_on_one_side_of_a_generator_split(tmp_path):
    topics = [
        (f"how do I {verb} my {thing}", f"To {verb} the {thing}, open Settings then {verb.title()} {thing}.")
        for verb in ("reset", "clean", "pair", "return", "register", "update")
        for thing in ("kettle", "fryer", "blender", "plug", "vacuum")
    ]
    rows = [
        {"prompt": f"{prefix}{question}?", "response": answer}
        for question, answer in topics
        for prefix in ("", "Hi, ", "Quick question: ", "Please help. ")
    ]
    rows += [{"prompt": "Hi, how do I reset my kettle??", "response": "Hold the button for 10 seconds."}]  # a near repeat
    file = tmp_path / "faq.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in random.Random(3).sample(rows, len(rows))))
    prepared = prepare_dataset(file, tmp_path / "ds")
    sides = {name: {r["response"] for r in prepared.split(name)} for name in ("train", "validation", "test")}
    assert not sides["train"] & sides["test"] and not sides["train"] & sides["validation"]
    assert not any("nearly repeat" in w for w in prepared.report.warnings)
    assert "121 rows in 30 groups" in prepared.report.split_note
    assert 8 <= prepared.report.split_sizes["test"] <= 16 and prepared.report.split_sizes["train"] >= 90
    with_kettle = [
        name for name in sides if any("kettle" in r["prompt"] and "reset" in r["prompt"] for r in prepared.split(name))
    ]
    assert len(with_kettle) == 1  # the near repeat went where its rephrasings went


def test_texts_without_a_label_are_kept_apart_for_the_teacher(samples, tmp_path):
    """Rows with an empty label: unlabelled.jsonl (never a split), capped by max_unlabelled, and never a text the
    student would be graded on; a test file's row without a label is still skipped."""
    from tiny_models import tickets_few_labels

    # 300 labelled, 2,700 without a label, and the first text again without its label
    path = tickets_few_labels(samples, tmp_path / "few.csv", 3000, 300, extra=[{"category": ""}])
    prepared = prepare_dataset(path, tmp_path / "ds")
    report = prepared.report
    assert report.rows_used == 300 and sum(report.split_sizes.values()) == 300
    assert report.unlabelled + report.unlabelled_skipped == 2701
    unlabelled = prepared.split("unlabelled")
    assert len(unlabelled) == report.unlabelled and all(set(r) == {"text"} for r in unlabelled)
    held_out = {r["text"].lower() for name in ("validation", "test") for r in prepared.split(name)}
    assert not held_out & {r["text"].lower() for r in unlabelled}  # never a text it is graded on
    if report.unlabelled_skipped:
        assert any("repeat a validation or test text" in w for w in report.warnings)
    capped = prepare_dataset(path, tmp_path / "capped", DatasetOptions(max_unlabelled=500)).report
    assert capped.unlabelled <= 500 and capped.unlabelled + capped.unlabelled_skipped == 2701
    assert any("past the first 500 were left out" in w for w in capped.warnings)
    off = prepare_dataset(path, tmp_path / "off", DatasetOptions(max_unlabelled=0)).report
    assert off.unlabelled == 0 and any("turned off" in w for w in off.warnings)
    assert not (tmp_path / "off" / "unlabelled.jsonl").exists()


def test_a_second_file_of_texts_without_a_label_joins_the_rows_without_one(tmp_path):
    """A .txt (one text a line) or a CSV of texts alone: checked like the main file's texts, under the same cap,
    never a text of a held-out split; a label in it is not used."""
    rows = [(f"my parcel {i} has not arrived yet", "shipping") for i in range(10)]
    rows += [(f"I was charged twice for order {i}", "billing") for i in range(10)]
    main = tickets_csv(tmp_path, rows + [("can I pay by invoice", ""), ("the box came open", "")])
    test_text = prepare_dataset(main, tmp_path / "plain").split("test")[0]["text"]
    lines = [f"where is my order number {i}" for i in range(5)]
    more = write(tmp_path / "more.txt", "\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + f"\n{test_text.upper()}\n")
    prepared = prepare_dataset(main, tmp_path / "ds", unlabelled_file=more)
    report = load_prepared(tmp_path / "ds").report
    assert (report.unlabelled, report.unlabelled_skipped, report.unlabelled_file) == (7, 1, "more.txt")
    kept = [r["text"] for r in prepared.split("unlabelled")]
    assert set(kept) == {"can I pay by invoice", "the box came open", *lines}  # the test text's repeat left out
    assert any("repeat a validation or test text" in w for w in report.warnings)
    assert report.split_sizes == prepare_dataset(main, tmp_path / "again").report.split_sizes  # labelled rows alone
    own_test = write(tmp_path / "test.csv", f"text,category\n{lines[0]},shipping\n{test_text},billing\n")
    with_own = prepare_dataset(main, tmp_path / "own", test_file=own_test, unlabelled_file=more).report
    assert (with_own.unlabelled, with_own.unlabelled_skipped) == (6, 2)  # both texts of the own test file left out

    capped = prepare_dataset(main, tmp_path / "capped", DatasetOptions(max_unlabelled=4), unlabelled_file=more)
    assert (capped.report.unlabelled, capped.report.unlabelled_skipped) == (4, 4)  # 2 of the main file + 2 of more.txt
    assert [r["text"] for r in capped.split("unlabelled")][:2] == ["can I pay by invoice", "the box came open"]

    table = write(tmp_path / "more.csv", 'id,text,category\n1,"refund, please",billing\n2,,\n3,parcel lost,\n4,box dented,\n')
    report = prepare_dataset(main, tmp_path / "csv", unlabelled_file=table).report
    assert report.unlabelled == 2 + 3  # its label ignored: 'refund, please' is a text without a label here
    assert any("1 row(s) of 'more.csv' with an empty text were skipped (rows 2)" in w for w in report.warnings)
    assert any("1 row(s) of 'more.csv' have a label (column 'category'); it was not used" in w for w in report.warnings)


def test_texts_without_a_label_are_refused_for_generation_and_without_a_text_column(tmp_path):
    more = write(tmp_path / "more.txt", "where is my order\n")
    notes = write(tmp_path / "notes.txt", "First paragraph.\n\nSecond one.\n")
    with pytest.raises(DatasetError, match="texts without a label are for classification"):
        prepare_dataset(notes, tmp_path / "lm", unlabelled_file=more)
    scores = write(tmp_path / "scores.csv", "id,score\n1,5\n2,7\n")
    with pytest.raises(DatasetError, match="No text column was found in 'scores.csv'.*Name the text column 'text'"):
        prepare_dataset(tickets_csv(tmp_path), tmp_path / "cls", unlabelled_file=scores)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["more.txt", "notes.txt", "scores.csv", "tickets.csv"]
