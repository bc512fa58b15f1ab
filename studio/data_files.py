"""Reading a user's file: its format, its encoding, its rows, streamed (CSV, TSV, JSON Lines, TXT, Parquet).

Nothing is executed or unpickled, and a file that is not what its name says (a spreadsheet, a PDF, mixed
encodings) is refused with what to do. Which columns mean what, and whether the rows are usable, is
``studio.dataset``'s business.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import charset_normalizer

from studio.errors import DatasetError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "txt",
    ".parquet": "parquet",
}
SNIFF_BYTES = 256 * 1024

# Magic numbers of formats people save by mistake under a text extension.
BINARY_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx or Word .docx file is one)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\xd0\xcf\x11\xe0": "an old Excel/Word (.xls/.doc) file",
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "a gzip archive",
    b"SQLite format 3": "an SQLite database",
}


def _sniff_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DatasetError(f"File not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder; give the data file inside it.")
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"'{path.name}' has an extension this studio does not read. "
            "Save it as .csv, .tsv, .jsonl, .txt or .parquet and upload it again."
        )
    return fmt


def detect_encoding(path: Path, sample: bytes, fmt: str) -> str:
    """Return the text encoding of a file, or raise if it is empty or not text at all."""
    if not sample.strip():
        raise DatasetError(f"'{path.name}' is empty. Add rows of data and upload it again.")
    if fmt == "parquet":
        if not sample.startswith(b"PAR1"):
            raise DatasetError(
                f"'{path.name}' is not a valid Parquet file (its first bytes "
                "are wrong). Export it again from the tool that made it."
            )
        return "binary"
    for magic, what in BINARY_MAGIC.items():
        if sample.startswith(magic):
            raise DatasetError(
                f"'{path.name}' is {what}, not a text file, despite its name. "
                "Open it in the program that made it and save or export it as CSV (UTF-8)."
            )
    if sample.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        match = charset_normalizer.from_bytes(sample).best()
        return match.encoding if match else "utf_8"
    if b"\x00" in sample:
        raise DatasetError(
            f"'{path.name}' contains binary data (NUL bytes), so it is not a text file. "
            "Save it as CSV (UTF-8) or JSON Lines and upload it again."
        )
    try:
        sample.decode("utf-8")
        return "utf_8"
    except UnicodeDecodeError as err:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        if err.start >= len(sample) - 4 and len(sample) == SNIFF_BYTES:
            return "utf_8"
    _refuse_mixed_utf8(path, sample)
    match = charset_normalizer.from_bytes(sample).best()
    if match is None:
        raise DatasetError(
            f"The text encoding of '{path.name}' could not be recognised. "
            "Save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
        )
    return match.encoding


def _refuse_mixed_utf8(path: Path, sample: bytes) -> None:
    """A file that is UTF-8 except for some lines (rows pasted from another program) must not be read whole
    in a guessed codepage: its UTF-8 accents would all turn to nonsense. Name the lines to fix instead."""
    lines = sample.split(b"\n")
    if len(sample) == SNIFF_BYTES:
        lines = lines[:-1]  # the last line may be cut in the middle of a character
    utf8_accents, bad = False, []
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
            utf8_accents = utf8_accents or any(byte >= 0x80 for byte in line)
        except UnicodeDecodeError:
            bad.append(number)
    if utf8_accents and bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise DatasetError(
            f"'{path.name}' mixes text encodings: most of it is UTF-8, but line(s) {shown} are "
            "not (probably pasted from a program that saves Latin-1 / Windows-1252). Save the whole "
            "file as UTF-8 (in Excel: 'CSV UTF-8'), or fix those lines, and upload it again."
        )


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    """Decode the file line by line, strictly, so a wrongly encoded line is named exactly."""
    decoder = codecs.getincrementaldecoder("utf_8_sig" if encoding == "utf_8" else encoding)(errors="strict")
    pending, line_no = "", 0
    with path.open("rb") as f:
        for raw in f:
            try:
                pending += decoder.decode(raw)
            except UnicodeDecodeError as err:
                raise DatasetError(
                    f"'{path.name}' is not consistently encoded: line {line_no + 1} cannot be read as "
                    f"{encoding} ({err.reason}). Save the whole file as UTF-8 (in Excel: 'CSV UTF-8') "
                    "and upload it again."
                ) from err
            lines = pending.splitlines(keepends=True)
            pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
            line_no += len(lines)
            yield from lines
    if pending:
        yield pending


def _iter_csv(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    csv.field_size_limit(16 * 1024 * 1024)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if delimiter == ",":
        first = next(_text_lines(path, encoding), "")
        try:
            delimiter = csv.Sniffer().sniff(first, ",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(_text_lines(path, encoding), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DatasetError(f"'{path.name}' has no header row. Put column names (for example: text,label) on the first line.")
    header = [h.strip() for h in header]
    dupes = [h for h, n in Counter(header).items() if n > 1]
    if dupes:
        raise DatasetError(
            f"Column name(s) {', '.join(map(repr, dupes))} appear more than "
            "once in the header. Give every column a different name."
        )
    row_no = 0
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            row_no += 1
            if len(values) != len(header):
                raise DatasetError(
                    f"Row {row_no} (line {reader.line_num}) has {len(values)} fields but the "
                    f"header has {len(header)}. A text with a comma or line break must be in "
                    "double quotes; fix that row or re-export the file as CSV."
                )
            yield row_no, dict(zip(header, values))
    except csv.Error as err:
        raise DatasetError(
            f"Row {row_no + 1} (line {reader.line_num}) of '{path.name}' is "
            f"not valid CSV ({err}). Fix that row or re-export the file."
        ) from err


def _iter_jsonl(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    for line_no, line in enumerate(_text_lines(path, encoding), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if line_no == 1 and stripped.startswith("["):
            raise DatasetError(
                f"'{path.name}' is one JSON array. This studio reads JSON Lines: one "
                'object per line, like {"text": "...", "label": "..."}.'
            )
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"Line {line_no} of '{path.name}' is not valid JSON ({err.msg}). Fix or remove that line."
            ) from err
        if not isinstance(obj, dict):
            raise DatasetError(
                f'Line {line_no} of \'{path.name}\' is not a JSON object. Each line must look like {{"text": "..."}}.'
            )
        yield line_no, {k: "" if v is None else str(v) for k, v in obj.items()}


def _iter_txt(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    """One record per paragraph (blank-line separated), numbered by its first line."""
    lines: list[str] = []
    start = 0
    for line_no, line in enumerate(_text_lines(path, encoding), start=1):
        if line.strip():
            if not lines:
                start = line_no
            lines.append(line.strip())
        elif lines:
            yield start, {"text": " ".join(lines)}
            lines = []
    if lines:
        yield start, {"text": " ".join(lines)}


def _iter_txt_lines(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    """One record per non-empty line: a file of short texts, one a line."""
    for line_no, line in enumerate(_text_lines(path, encoding), start=1):
        if line.strip():
            yield line_no, {"text": line.strip()}


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise DatasetError(
            f"'{path.name}' could not be read as Parquet ({err}). Export it again from the tool that made it."
        ) from err
    row_no = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, {k: "" if v is None else str(v) for k, v in row.items()}


def iter_rows(path: str | Path, txt_lines: bool = False) -> tuple[str, str, Iterator[tuple[int, dict]]]:
    """Stream (row number, {column: text}) from any supported file. A .txt file is one text per paragraph
    (blank-line separated), or with ``txt_lines`` one per line."""
    path = Path(path)
    fmt = detect_format(path)
    encoding = detect_encoding(path, _sniff_bytes(path), fmt)
    readers = {"csv": _iter_csv, "jsonl": _iter_jsonl, "txt": _iter_txt_lines if txt_lines else _iter_txt}
    rows = _iter_parquet(path) if fmt == "parquet" else readers[fmt](path, encoding)
    return fmt, encoding, rows


def load_split(path: str | Path, name: str) -> list[dict]:
    with (Path(path) / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]
