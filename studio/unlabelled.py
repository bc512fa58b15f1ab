"""Texts without a label (classification): kept apart in unlabelled.jsonl for the teacher to label.

They are streamed to disk as the file is read, up to ``max_unlabelled`` (the rest are counted and left out),
and after the split a text that repeats a validation or test text is left out too: a student taught the
teacher's answer to a test text would be graded on a text it has learned.

They come from the main file's rows with an empty label, and from a second file of the user's that holds
texts alone (``add_unlabelled_file``); both share the one cap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

from studio.columns import LABEL_NAMES, detect_columns
from studio.data_files import iter_rows
from studio.data_limits import DatasetLimits, check_parquet_size, too_big, too_long, too_many_rows
from studio.errors import DatasetError
from studio.words import Task

FILE = "unlabelled.jsonl"
SAMPLE_ROWS = 2000


def same_text(text: str) -> str:
    """A text as compared for repeats: case and spacing do not make a new text."""
    return re.sub(r"\s+", " ", text).strip().lower()


class Unlabelled:
    def __init__(self, folder: Path, cap: int) -> None:
        self.cap = cap
        self.kept = self.over = self.repeats = 0
        self._raw = folder / f".{FILE}"
        self._out = None

    def add(self, line: str) -> None:
        """One text without a label (its JSON line), kept while under the cap."""
        if self.kept >= self.cap:
            self.over += 1
            return
        if self._out is None:
            self._out = self._raw.open("w", encoding="utf-8")
        self._out.write(line)
        self.kept += 1

    def close(self, folder: Path) -> None:
        """Write unlabelled.jsonl without the texts that repeat a validation or test text of ``folder``."""
        if self._out is None:
            return
        self._out.close()
        held_out = set()
        for name in ("validation", "test"):
            path = folder / f"{name}.jsonl"
            if path.exists():
                with path.open(encoding="utf-8") as f:
                    held_out |= {same_text(json.loads(line)["text"]) for line in f if line.strip()}
        self.kept = 0
        with self._raw.open(encoding="utf-8") as src, (folder / FILE).open("w", encoding="utf-8") as out:
            for line in src:
                if same_text(json.loads(line)["text"]) in held_out:
                    self.repeats += 1
                    continue
                out.write(line)
                self.kept += 1
        self._raw.unlink()

    def warnings(self, cap: int) -> list[str]:
        said = []
        if self.over and not cap:
            said.append(f"{self.over:,} text(s) without a label were left out (unlabelled texts are turned off).")
        elif self.over:
            said.append(
                f"{self.over:,} text(s) without a label past the first {cap:,} were left out (the limit on unlabelled "
                "texts; raise it to use more)."
            )
        if self.repeats:
            said.append(
                f"{self.repeats:,} text(s) without a label repeat a validation or test text and were left out: the "
                "student must not learn the answer to a text it is graded on."
            )
        return said


@dataclass(frozen=True)
class _TextAlone:
    """Column choices for a file of texts alone: its text column is detected as for plain text."""

    task: str | None = Task.CAUSAL_LM
    text_column: str | None = None
    label_column: str | None = None
    prompt_column: str | None = None
    response_column: str | None = None


def _text_column(file: Path, columns: list[str], sample: list[dict], main_text_column: str | None) -> str:
    """The main file's text column when this file has it, else its only column, else the usual detection."""
    if main_text_column in columns:
        return main_text_column
    if len(columns) == 1:
        return columns[0]
    try:
        found = detect_columns(columns, sample, _TextAlone()).get("text_column")
    except DatasetError:
        found = None
    if found is None:
        raise DatasetError(
            f"No text column was found in '{file.name}' (the texts without a label); its columns are: "
            f"{', '.join(columns)}. Name the text column '{main_text_column or 'text'}' as in the main file, "
            "or save the texts as a .txt file, one text per line."
        )
    return found


def add_unlabelled_file(
    file: Path,
    into: Unlabelled,
    main_text_column: str | None,
    main_label_column: str | None,
    max_chars: int,
    limits: DatasetLimits,
) -> list[str]:
    """Add the texts of the user's file of texts without a label (CSV, TSV, JSON Lines, Parquet with a text
    column, or .txt with one text per line) to ``into``, checked like the main file's texts; streamed. Returns
    what to tell the user; raises DatasetError listing every text that cannot be used."""
    fmt, _, rows = iter_rows(file, txt_lines=True)
    if fmt == "parquet":
        check_parquet_size(file, limits)
    head = list(islice(rows, SAMPLE_ROWS))
    if not head:
        raise DatasetError(f"'{file.name}' (the texts without a label) has no texts. Add some, or leave it out.")
    columns = list(head[0][1])
    column = _text_column(file, columns, [row for _, row in head], main_text_column)
    label_columns = [c for c in columns if c != column and (c == main_label_column or c.lower().strip() in LABEL_NAMES)]
    problems: list[str] = []
    empty: list[int] = []
    read = labelled = written = 0
    max_bytes, why = limits.byte_limit(file.stat().st_size)
    for row_no, row in chain(head, rows):
        read += 1
        if read > limits.max_rows:
            raise DatasetError(too_many_rows(file, limits))
        labelled += any(row.get(c, "").strip() for c in label_columns)
        text = row.get(column, "").strip()
        if not text:
            empty.append(row_no)
        elif len(text) > max_chars:
            problems.append(too_long(row_no, column, len(text), max_chars))
        else:
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            written += len(line.encode("utf-8"))
            if written > max_bytes:
                raise DatasetError(too_big(file, max_bytes, why, limits))
            into.add(line)
    if problems:
        said = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise DatasetError(f"'{file.name}' (the texts without a label) cannot be used yet ({said}):", problems)
    said = []
    if empty:
        shown = ", ".join(map(str, empty[:10])) + ("..." if len(empty) > 10 else "")
        said.append(f"{len(empty):,} row(s) of '{file.name}' with an empty text were skipped (rows {shown}).")
    if labelled:
        said.append(
            f"{labelled:,} row(s) of '{file.name}' have a label (column {', '.join(map(repr, label_columns))}); it was "
            "not used: that file is read as texts without a label. Put labelled rows in the main dataset file."
        )
    return said
