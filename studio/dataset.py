"""Dataset step: read a user's file, check it, pick its columns, split it.

Files are streamed row by row (CSV, TSV, JSON Lines, TXT, Parquet), never loaded whole, and
never executed or unpickled. Every problem found names the row and column and says what to do.
The prepared dataset is a folder of JSON Lines files (train / validation / test) plus
``report.json``; it is written to a temporary folder and renamed into place only when complete,
so a failed check leaves nothing half-written behind.

The pieces: reading the file (data_files.py: format, encoding, rows), its columns (columns.py), how big
it may become (data_limits.py), a split without leaks (splits.py); prepare_dataset puts them together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path

from studio.columns import detect_columns
from studio.data_files import iter_rows, load_split
from studio.data_limits import DatasetLimits, check_parquet_size, too_big, too_long, too_many_rows
from studio.errors import DatasetError
from studio.settings import Check, Settings, setting
from studio.splits import few_held_out, leak_warnings, related_groups, split_indices, split_note
from studio.unlabelled import Unlabelled, add_unlabelled_file
from studio.words import Task

DETECT_ROWS = 2000


@dataclass
class DatasetOptions(Settings):
    """How to read and split a dataset. Every field has a default that suits most files."""

    task: str | None = setting(
        None,
        "What the model learns: 'classification' (texts with labels) or 'causal_lm' "
        "(prompts with answers, or plain text); empty detects it from the columns.",
        choices=(Task.CLASSIFICATION, Task.CAUSAL_LM),
    )
    text_column: str | None = setting(None, "Column with the text; empty detects it.")
    label_column: str | None = setting(None, "Column with the label, for classification; empty detects it.")
    prompt_column: str | None = setting(None, "Prompt column of prompt/response pairs; empty detects it.")
    response_column: str | None = setting(None, "Response column of prompt/response pairs; empty detects it.")
    validation_fraction: float = setting(0.1, "Share of rows held out to pick the best epoch. 0.05-0.2 is usual.")
    test_fraction: float = setting(0.1, "Share of rows held out for the final quality figures. Never trained on.")
    seed: int = setting(13, "Random seed of the split.")
    max_chars: int = setting(
        100_000,
        "A classification text longer than this is rejected, as a sign of a wrong "
        "column or a broken file (a long article is fine: the models read its first max_length "
        "tokens, and the run says how many texts were cut).",
    )
    min_examples_per_label: int = setting(3, "A label needs at least one example in training and one to test it on.")
    max_unlabelled: int = setting(
        50_000,
        "Classification: texts without a label kept for the teacher to label (0: none). Past this many the rest are "
        "skipped, and counted.",
    )

    def checks(self) -> list[Check]:
        return [
            ("validation_fraction", 0.0 <= self.validation_fraction < 0.5, "a value from 0 to 0.5 (e.g. 0.1)"),
            ("test_fraction", 0.0 <= self.test_fraction < 0.5, "a value from 0 to 0.5 (e.g. 0.1)"),
            ("max_chars", self.max_chars >= 16, "at least 16"),
            ("min_examples_per_label", self.min_examples_per_label >= 2, "at least 2"),
            ("max_unlabelled", 0 <= self.max_unlabelled <= 1_000_000, "from 0 to 1000000"),
        ]

    def other_problems(self) -> list[str]:
        if self.validation_fraction + self.test_fraction >= 0.6:
            return ["validation_fraction + test_fraction leave too little to train on; keep their sum under 0.6"]
        return []


@dataclass
class DatasetReport:
    """What was found in the file; stored next to the splits as report.json."""

    source: str
    format: str
    encoding: str
    task: Task
    columns: list[str]
    text_column: str | None = None
    label_column: str | None = None
    prompt_column: str | None = None
    response_column: str | None = None
    rows_read: int = 0
    rows_used: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    own_splits: dict[str, str] = field(default_factory=dict)
    """Splits the user brought as files of their own ('test' / 'validation' -> file name), not cut from this one."""
    split_note: str = ""
    """How the split kept related rows together (text generation), in words."""
    unlabelled: int = 0
    """Classification: texts without a label, kept in unlabelled.jsonl for the teacher to label (never a test row)."""
    unlabelled_skipped: int = 0
    """Texts without a label left out: past max_unlabelled, or repeating a validation or test text."""
    unlabelled_file: str = ""
    """The user's second file of texts without a label, by name ('' when none was given)."""
    labelled_by_you: int = 0
    round_of: int = 0
    """Active learning (studio.labelling): the texts labelled in the page, and the job whose questions they answered."""

    @property
    def labels(self) -> list[str]:
        return sorted(self.label_counts)

    def roles(self) -> list[tuple[str, str]]:
        """(role, column) of each column the studio uses: [('text', 'body'), ('label', 'team')]."""
        found = [
            ("text", self.text_column),
            ("label", self.label_column),
            ("prompt", self.prompt_column),
            ("response", self.response_column),
        ]
        return [(role, column) for role, column in found if column]


@dataclass
class PreparedDataset:
    """A checked, split dataset on disk."""

    path: Path
    report: DatasetReport

    def split(self, name: str) -> list[dict]:
        return load_split(self.path, name)


def _chunks(text: str, max_chars: int) -> list[str]:
    """Split a long causal-LM text at sentence or word boundaries."""
    out = []
    while len(text) > max_chars:
        cut = max(text.rfind(". ", 0, max_chars), text.rfind(" ", 0, max_chars))
        cut = cut + 1 if cut > max_chars // 2 else max_chars
        out.append(text[:cut].strip())
        text = text[cut:].strip()
    return out + ([text] if text else [])


def _normalise(row: dict, cols: dict, row_no: int, opts: DatasetOptions, problems: list[str], skipped: list[int]) -> list[dict]:
    if cols["task"] == Task.CLASSIFICATION:
        text = row.get(cols["text_column"], "").strip()
        label = row.get(cols["label_column"], "").strip()
        if not text:
            skipped.append(row_no)
            return []
        if len(text) > opts.max_chars:
            problems.append(too_long(row_no, cols["text_column"], len(text), opts.max_chars))
            return []
        return [{"text": text, "label": label}] if label else [{"text": text}]  # no label: for the teacher to label
    if "prompt_column" in cols:
        prompt = row.get(cols["prompt_column"], "").strip()
        response = row.get(cols["response_column"], "").strip()
        if not prompt or not response:
            skipped.append(row_no)
            return []
        return [{"prompt": prompt, "response": response}]
    text = row.get(cols["text_column"], "").strip()
    if not text:
        skipped.append(row_no)
        return []
    return [{"text": t} for t in _chunks(text, opts.max_chars)]


def _check_labels(label_rows: dict[str, list[int]], opts: DatasetOptions) -> list[str]:
    problems = []
    for label, rows in sorted(label_rows.items()):
        if len(rows) < opts.min_examples_per_label:
            where = ", ".join(map(str, rows[:5]))
            problems.append(
                f"label '{label}' has only {len(rows)} example(s) (row {where}); each label needs "
                f"at least {opts.min_examples_per_label}. Add examples, merge it into a similar "
                "label, or remove those rows."
            )
    if len(label_rows) < 2:
        problems.append(
            f"only one label was found ('{next(iter(label_rows), '')}'); classification needs at least two different labels."
        )
    return problems


def prepare_dataset(
    source: str | Path,
    out_dir: str | Path,
    opts: DatasetOptions | None = None,
    limits: DatasetLimits | None = None,
    test_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    unlabelled_file: str | Path | None = None,
) -> PreparedDataset:
    """Check ``source`` and write its train/validation/test splits to ``out_dir``. A ``test_file`` (or
    ``validation_file``) of the user's own replaces that split; it is checked like the main file and must
    have the same columns and only labels the main file has. An ``unlabelled_file`` (classification) holds
    texts alone: they join the main file's rows without a label, under the same cap.

    Raises DatasetError listing every problem found; nothing is written in that case.
    """
    opts, limits = opts or DatasetOptions(), limits or DatasetLimits.from_env()
    own = {name: Path(file) for name, file in (("test", test_file), ("validation", validation_file)) if file}
    opts = replace(opts, **{f"{name}_fraction": 0.0 for name in own})
    source, out_dir = Path(source), Path(out_dir)
    fmt, encoding, rows = iter_rows(source)
    if fmt == "parquet":
        check_parquet_size(source, limits)
    if fmt == "txt" and opts.task == Task.CLASSIFICATION:
        raise DatasetError(
            "A .txt file has no labels, so it can only be used for causal-LM "
            "(domain text) training. For classification upload a CSV with text and label columns."
        )

    head: list[tuple[int, dict]] = []
    for item in rows:
        head.append(item)
        if len(head) >= DETECT_ROWS:
            break
    if not head:
        raise DatasetError(f"'{source.name}' has a header but no data rows. Add rows and upload it again.")
    columns = list(head[0][1].keys())
    cols = detect_columns(columns, [r for _, r in head], opts)
    if unlabelled_file and cols["task"] != Task.CLASSIFICATION:
        raise DatasetError(
            f"'{source.name}' is read as text to generate (causal LM), and texts without a label are for "
            "classification: leave the file of texts without a label out, or give a main file with text and label columns."
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prep-", dir=out_dir.parent))
    try:
        unlabelled = Unlabelled(tmp, opts.max_unlabelled)
        report = _write_checked(source, fmt, encoding, columns, cols, head, rows, tmp, opts, limits, unlabelled)
        for name, file in own.items():
            _add_own_split(tmp, report, name, file, opts, limits)
        if unlabelled_file:
            report.unlabelled_file = Path(unlabelled_file).name
            report.warnings += add_unlabelled_file(
                Path(unlabelled_file), unlabelled, report.text_column, report.label_column, opts.max_chars, limits
            )
        unlabelled.close(tmp)  # after every held-out split is written: none of its texts may be kept
        report.unlabelled, report.unlabelled_skipped = unlabelled.kept, unlabelled.over + unlabelled.repeats
        report.warnings += unlabelled.warnings(opts.max_unlabelled)
        report.warnings += few_held_out(report.split_sizes.get("test", 0), report.task)
        (tmp / "report.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedDataset(out_dir, report)


def _add_own_split(
    folder: Path, report: DatasetReport, name: str, file: Path, opts: DatasetOptions, limits: DatasetLimits
) -> None:
    """Check the user's own test (or validation) file against the main one and make it that split."""
    fixed = replace(
        opts,
        task=report.task,
        text_column=report.text_column,
        label_column=report.label_column,
        prompt_column=report.prompt_column,
        response_column=report.response_column,
    )
    fmt, encoding, rows = iter_rows(file)
    head = [item for _, item in zip(range(DETECT_ROWS), rows)]
    if not head:
        raise DatasetError(f"The {name} file '{file.name}' has a header but no data rows. Add rows or leave it out.")
    columns = list(head[0][1].keys())
    try:
        cols = detect_columns(columns, [r for _, r in head], fixed)
    except DatasetError as err:
        raise DatasetError(f"The {name} file '{file.name}' does not have the main file's columns: {err}") from err
    sub = folder / f".{name}"
    sub.mkdir()
    own = _write_checked(file, fmt, encoding, columns, cols, head, rows, sub, replace(fixed, seed=0), limits)
    unknown = sorted(set(own.label_counts) - set(report.label_counts))
    if unknown:
        raise DatasetError(
            f"The {name} file '{file.name}' has label(s) the training file never uses: "
            f"{', '.join(unknown[:10])}. A model cannot learn a label it never saw: add training "
            "rows with them, or remove those rows from the " + name + " file."
        )
    os.replace(sub / "train.jsonl", folder / f"{name}.jsonl")
    shutil.rmtree(sub)
    report.split_sizes[name] = own.rows_used
    report.own_splits[name] = file.name
    report.warnings += [f"{name} file: {w}" for w in own.warnings]
    if name == "test":
        report.warnings += leak_warnings(folder, name)


def _write_checked(
    source: Path,
    fmt: str,
    encoding: str,
    columns: list[str],
    cols: dict,
    head: list,
    rows: Iterator,
    tmp: Path,
    opts: DatasetOptions,
    limits: DatasetLimits,
    unlabelled: Unlabelled | None = None,
) -> DatasetReport:
    """Check every row, split the rows, write the splits to ``tmp``. Rows without a label go to ``unlabelled``;
    without one (a test or validation file of the user's) they are skipped, and the rows are not split."""
    held_out = unlabelled is None
    problems: list[str] = []
    skipped: list[int] = []
    labels: list[str] = []
    pairs: list[tuple[str, str]] = []
    label_rows: dict[str, list[int]] = defaultdict(list)
    rows_read = count = written = 0
    max_bytes, why = limits.byte_limit(source.stat().st_size)
    all_path = tmp / "all.jsonl"
    with all_path.open("w", encoding="utf-8") as out:
        for row_no, row in chain(head, rows):
            rows_read += 1
            if rows_read > limits.max_rows:
                raise DatasetError(too_many_rows(source, limits))
            for rec in _normalise(row, cols, row_no, opts, problems, skipped):
                line = json.dumps(rec, ensure_ascii=False) + "\n"
                written += len(line.encode("utf-8"))
                if written > max_bytes:
                    raise DatasetError(too_big(source, max_bytes, why, limits))
                if cols["task"] == Task.CLASSIFICATION and "label" not in rec:
                    if held_out:  # a test or validation row is only of use with its label
                        skipped.append(row_no)
                    else:
                        unlabelled.add(line)
                    continue
                out.write(line)
                count += 1
                if "label" in rec:
                    labels.append(rec["label"])
                    label_rows[rec["label"]].append(row_no)
                else:
                    pairs.append((rec.get("prompt", rec.get("text", "")), rec.get("response", "")))
    if cols["task"] == Task.CLASSIFICATION and not held_out:  # a test file may hold a label only once
        problems += _check_labels(label_rows, opts)
    if count == 0 and not problems:
        problems.append("no row has text in the chosen column(s); check the column choice")
    if problems:
        said = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise DatasetError(f"'{source.name}' cannot be used yet ({said}):", problems)

    groups = related_groups(pairs) if pairs and not held_out else None
    split = split_indices(labels or None, count, opts, groups)
    owner = {i: name for name, idx in split.items() for i in idx}
    files = {name: (tmp / f"{name}.jsonl").open("w", encoding="utf-8") for name in split}
    with all_path.open(encoding="utf-8") as src:
        for i, line in enumerate(src):
            files[owner[i]].write(line)
    for f in files.values():
        f.close()
    all_path.unlink()

    warnings = []
    if not held_out and split["test"]:
        warnings += leak_warnings(tmp, "test")
    if skipped:
        empty = "text" if cols["task"] == Task.CLASSIFICATION and not held_out else "text or label"
        warnings.append(
            f"{len(skipped)} row(s) with an empty {empty} were skipped "
            f"(rows {', '.join(map(str, skipped[:10]))}{'...' if len(skipped) > 10 else ''})."
        )
    if encoding not in ("utf_8", "ascii", "binary"):
        warnings.append(f"The file was read as {encoding}, not UTF-8; check that accents look right.")
    report = DatasetReport(
        source=source.name,
        format=fmt,
        encoding=encoding,
        task=cols["task"],
        columns=columns,
        text_column=cols.get("text_column"),
        label_column=cols.get("label_column"),
        prompt_column=cols.get("prompt_column"),
        response_column=cols.get("response_column"),
        rows_read=rows_read,
        rows_used=count,
        label_counts=dict(sorted(Counter(labels).items())),
        split_sizes={k: len(v) for k, v in split.items()},
        warnings=warnings,
        split_note=split_note(groups) if groups else "",
    )
    return report


def load_prepared(path: str | Path) -> PreparedDataset:
    path = Path(path)
    report_file = path / "report.json"
    if not report_file.exists():
        raise DatasetError(f"{path} is not a prepared dataset (no report.json). Run the dataset step first.")
    report = DatasetReport(**json.loads(report_file.read_text(encoding="utf-8")))
    return PreparedDataset(path, report)
