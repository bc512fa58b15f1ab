"""Dataset step: read a user's file, check it, pick its columns, split it.

Files are streamed row by row (CSV, TSV, JSON Lines, TXT, Parquet), never loaded whole, and
never executed or unpickled. Every problem found names the row and column and says what to do.
The prepared dataset is a folder of JSON Lines files (train / validation / test) plus
``report.json``; it is written to a temporary folder and renamed into place only when complete,
so a failed check leaves nothing half-written behind.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import charset_normalizer

from studio.errors import DatasetError
from studio.hosting import HostSettings
from studio.settings import Check, Settings, setting
from studio.words import Task

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
DETECT_ROWS = 2000

TEXT_NAMES = (
    "text",
    "body",
    "message",
    "description",
    "content",
    "ticket",
    "sentence",
    "review",
    "document",
    "utterance",
    "comment",
    "complaint",
    "email",
)
LABEL_NAMES = ("label", "category", "class", "intent", "topic", "tag", "target", "department", "queue", "type")
PROMPT_NAMES = ("prompt", "question", "instruction", "input", "query")
RESPONSE_NAMES = ("response", "answer", "output", "completion", "reply")

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

    def checks(self) -> list[Check]:
        return [
            ("validation_fraction", 0.0 <= self.validation_fraction < 0.5, "a value from 0 to 0.5 (e.g. 0.1)"),
            ("test_fraction", 0.0 <= self.test_fraction < 0.5, "a value from 0 to 0.5 (e.g. 0.1)"),
            ("max_chars", self.max_chars >= 16, "at least 16"),
            ("min_examples_per_label", self.min_examples_per_label >= 2, "at least 2"),
        ]

    def other_problems(self) -> list[str]:
        if self.validation_fraction + self.test_fraction >= 0.6:
            return ["validation_fraction + test_fraction leave too little to train on; keep their sum under 0.6"]
        return []


@dataclass(frozen=True)
class DatasetLimits:
    """How much one dataset may become once unpacked and checked: the operator's settings (studio/hosting.py),
    plus what is left of the user's storage quota. A file that would pass one is refused while it is being
    read, before the disk fills, and nothing of it is kept."""

    max_rows: int = HostSettings.max_dataset_rows
    max_bytes: int = HostSettings.max_dataset_mb * 1024 * 1024
    max_expansion: int = HostSettings.max_expansion
    """Times its own size a file may unpack to, beyond EXPANSION_FLOOR (a compressed Parquet file can)."""
    quota_left: int | None = None
    """Bytes the user may still store (None: no quota)."""

    @classmethod
    def from_env(cls, quota_left: int | None = None) -> DatasetLimits:
        settings = HostSettings.from_env()
        return cls(settings.max_dataset_rows, settings.max_dataset_mb * 1024 * 1024, settings.max_expansion, quota_left)

    def byte_limit(self, file_bytes: int) -> tuple[int, str]:
        """(the most bytes the checked copy may take, why that many)."""
        expansion = max(self.max_expansion * file_bytes, EXPANSION_FLOOR)
        reasons = [(self.max_bytes, "setting"), (expansion, "expansion")]
        if self.quota_left is not None:
            reasons.append((max(0, self.quota_left), "quota"))
        return min(reasons)


EXPANSION_FLOOR = 16 * 1024 * 1024


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

    @property
    def labels(self) -> list[str]:
        return sorted(self.label_counts)


@dataclass
class PreparedDataset:
    """A checked, split dataset on disk."""

    path: Path
    report: DatasetReport

    def split(self, name: str) -> list[dict]:
        return load_split(self.path, name)


# --------------------------------------------------------------------------- reading


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


def iter_rows(path: str | Path) -> tuple[str, str, Iterator[tuple[int, dict]]]:
    """Stream (row number, {column: text}) from any supported file."""
    path = Path(path)
    fmt = detect_format(path)
    encoding = detect_encoding(path, _sniff_bytes(path), fmt)
    readers = {"csv": _iter_csv, "jsonl": _iter_jsonl, "txt": _iter_txt}
    rows = _iter_parquet(path) if fmt == "parquet" else readers[fmt](path, encoding)
    return fmt, encoding, rows


# --------------------------------------------------------------------------- columns


def _named(columns: list[str], names: tuple[str, ...]) -> list[str]:
    lowered = {c.lower().strip(): c for c in columns}
    found = [lowered[n] for n in names if n in lowered]
    return found[:1]


def _check_given(columns: list[str], **given: str | None) -> None:
    missing = [f"{flag} '{col}'" for flag, col in given.items() if col and col not in columns]
    if missing:
        raise DatasetError(
            f"The file has no column {', '.join(missing)}. Its columns are: {', '.join(columns)}. Choose one of those."
        )


def _column_stats(sample: list[dict], columns: list[str]) -> dict[str, dict]:
    stats = {}
    for col in columns:
        values = [r.get(col, "").strip() for r in sample]
        filled = [v for v in values if v]
        stats[col] = {
            "filled": len(filled) / max(1, len(values)),
            "avg_len": sum(map(len, filled)) / max(1, len(filled)),
            "distinct": len(set(filled)),
            "numeric": all(v.replace(".", "", 1).lstrip("-").isdigit() for v in filled[:200]),
        }
    return stats


def _guess(kind: str, candidates: list[str], flag: str) -> str | None:
    if len(candidates) > 1:
        raise DatasetError(f"More than one column could be the {kind}: {', '.join(candidates)}. Say which one to use ({flag}).")
    return candidates[0] if candidates else None


def detect_columns(columns: list[str], sample: list[dict], opts: DatasetOptions) -> dict:
    """Choose the task and the columns, from the user's choices first, then names, then content."""
    _check_given(
        columns,
        text_column=opts.text_column,
        label_column=opts.label_column,
        prompt_column=opts.prompt_column,
        response_column=opts.response_column,
    )
    stats = _column_stats(sample, columns)
    n = len(sample)
    text = opts.text_column or next(iter(_named(columns, TEXT_NAMES)), None)
    label = opts.label_column or next(iter(_named(columns, LABEL_NAMES)), None)
    prompt = opts.prompt_column or next(iter(_named(columns, PROMPT_NAMES)), None)
    response = opts.response_column or next(iter(_named(columns, RESPONSE_NAMES)), None)
    taken = {c for c in (text, label, prompt, response) if c}
    long_cols = [c for c in columns if c not in taken and stats[c]["avg_len"] >= 20 and not stats[c]["numeric"]]
    if text is None and not (opts.task == Task.CAUSAL_LM and prompt and response):
        text = _guess("text", long_cols, "--text-column") if not (prompt and response) else None
    task = opts.task
    if task is None:
        if label is None and text:
            short = [
                c
                for c in columns
                if c not in taken | {text}
                and stats[c]["filled"] > 0.9
                and 2 <= stats[c]["distinct"] <= max(2, min(200, n // 2))
                and stats[c]["avg_len"] <= 40
            ]
            label = _guess("label", short, "--label-column")
        task = Task.CLASSIFICATION if (label and text) else Task.CAUSAL_LM
    if task == Task.CLASSIFICATION:
        if text is None:
            raise DatasetError(
                "No text column was found. Name it 'text' in the file or say "
                f"which one to use (--text-column). Columns: {', '.join(columns)}."
            )
        if label is None:
            raise DatasetError(
                "No label column was found for classification. Name it 'label' "
                f"or say which one to use (--label-column). Columns: {', '.join(columns)}."
            )
        if label == text:
            raise DatasetError("The text and label columns are the same column; choose two different ones.")
        return {"task": task, "text_column": text, "label_column": label}
    if prompt and response and not opts.text_column:
        return {"task": task, "prompt_column": prompt, "response_column": response}
    if text is None:
        raise DatasetError(
            "No text column was found. Name it 'text', give prompt and response "
            f"columns, or say which column to use (--text-column). Columns: {', '.join(columns)}."
        )
    return {"task": task, "text_column": text}


# --------------------------------------------------------------------------- checking


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
        if not text or not label:
            skipped.append(row_no)
            return []
        if len(text) > opts.max_chars:
            problems.append(
                f"row {row_no}, column '{cols['text_column']}': {len(text):,} characters, "
                f"over the {opts.max_chars:,} limit. Shorten or split that text, "
                "or raise the limit (--max-chars)."
            )
            return []
        return [{"text": text, "label": label}]
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


def _split_indices(
    labels: list[str] | None, n: int, opts: DatasetOptions, groups: list[int] | None = None
) -> dict[str, list[int]]:
    """Seeded split; stratified by label so every split keeps the class balance, or (``groups``) by whole
    groups of related rows, so no held-out row has a relative in training."""
    if groups is not None:
        return _group_split(groups, opts)
    rng = random.Random(opts.seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        by_label[labels[i] if labels else ""].append(i)
    split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for key in sorted(by_label):
        idx = by_label[key]
        rng.shuffle(idx)
        n_test = round(len(idx) * opts.test_fraction)
        n_val = round(len(idx) * opts.validation_fraction)
        if labels and opts.test_fraction > 0:
            n_test = max(1, n_test)
        if len(idx) - n_test - n_val < 1:
            n_val = max(0, len(idx) - n_test - 1)
        split["test"] += idx[:n_test]
        split["validation"] += idx[n_test : n_test + n_val]
        split["train"] += idx[n_test + n_val :]
    for part in split.values():
        part.sort()
    return split


def _group_split(groups: list[int], opts: DatasetOptions) -> dict[str, list[int]]:
    """Whole groups, in seeded order, fill test, then validation, then train; train always keeps one."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    order = sorted(members)
    random.Random(opts.seed).shuffle(order)
    want = {"test": round(len(groups) * opts.test_fraction), "validation": round(len(groups) * opts.validation_fraction)}
    split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for group in order:
        side = next((name for name in ("test", "validation") if len(split[name]) < want[name]), "train")
        split[side] += members[group]
    if not split["train"]:  # one or two huge groups: training needs something
        side = "validation" if split["validation"] else "test"
        split["train"], split[side] = split[side], []
    for part in split.values():
        part.sort()
    return split


GROUP_LIMIT = 20_000
"""Rows up to which near repeats are found by comparing every pair (beyond it, only identical ones group)."""


def related_groups(pairs: list[tuple[str, str]]) -> list[int]:
    """A group id per (prompt or text, answer) row: rows that share an answer or a prompt, or nearly repeat
    each other (word TF-IDF cosine a little below the leak check's NEAR_REPEAT, for a margin), share a group."""
    threshold = NEAR_REPEAT - 0.05
    parent = list(range(len(pairs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    first: dict[tuple[str, str], int] = {}
    for i, (prompt, answer) in enumerate(pairs):
        for key in (("prompt", _plain(prompt)), ("answer", _plain(answer))):
            if key[1]:
                join(i, first.setdefault(key, i))
    if 1 < len(pairs) <= GROUP_LIMIT:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [f"{prompt} {answer}".strip() for prompt, answer in pairs]
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
        for start in range(0, len(texts), 2_000):
            similar = (vectors[start : start + 2_000] @ vectors.T).tocoo()
            for i, j, value in zip(similar.row, similar.col, similar.data):
                if value >= threshold and start + i != j:
                    join(start + int(i), int(j))
    return [root(i) for i in range(len(pairs))]


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


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
) -> PreparedDataset:
    """Check ``source`` and write its train/validation/test splits to ``out_dir``. A ``test_file`` (or
    ``validation_file``) of the user's own replaces that split; it is checked like the main file and must
    have the same columns and only labels the main file has.

    Raises DatasetError listing every problem found; nothing is written in that case.
    """
    opts, limits = opts or DatasetOptions(), limits or DatasetLimits.from_env()
    own = {name: Path(file) for name, file in (("test", test_file), ("validation", validation_file)) if file}
    opts = replace(opts, **{f"{name}_fraction": 0.0 for name in own})
    source, out_dir = Path(source), Path(out_dir)
    fmt, encoding, rows = iter_rows(source)
    if fmt == "parquet":
        _check_parquet_size(source, limits)
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

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prep-", dir=out_dir.parent))
    try:
        report = _write_checked(source, fmt, encoding, columns, cols, head, rows, tmp, opts, limits)
        for name, file in own.items():
            _add_own_split(tmp, report, name, file, opts, limits)
        if own:
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
    own = _write_checked(file, fmt, encoding, columns, cols, head, rows, sub, replace(fixed, seed=0), limits, held_out=True)
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
        report.warnings += _leak_warnings(folder, name)


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
    held_out: bool = False,
) -> DatasetReport:
    problems: list[str] = []
    skipped: list[int] = []
    labels: list[str] = []
    pairs: list[tuple[str, str]] = []
    label_rows: dict[str, list[int]] = defaultdict(list)
    rows_read = count = written = 0
    max_bytes, why = limits.byte_limit(source.stat().st_size)
    all_path = tmp / "all.jsonl"
    with all_path.open("w", encoding="utf-8") as out:
        for row_no, row in _chain(head, rows):
            rows_read += 1
            if rows_read > limits.max_rows:
                raise DatasetError(_too_many_rows(source, limits))
            for rec in _normalise(row, cols, row_no, opts, problems, skipped):
                line = json.dumps(rec, ensure_ascii=False) + "\n"
                written += len(line.encode("utf-8"))
                if written > max_bytes:
                    raise DatasetError(_too_big(source, max_bytes, why, limits))
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
        raise DatasetError(f"'{source.name}' cannot be used yet ({len(problems)} problem(s)):", problems)

    groups = related_groups(pairs) if pairs and not held_out else None
    split = _split_indices(labels or None, count, opts, groups)
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
        warnings += _leak_warnings(tmp, "test")
    if skipped:
        warnings.append(
            f"{len(skipped)} row(s) with an empty text or label were skipped "
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
        split_note=_split_note(groups) if groups else "",
    )
    (tmp / "report.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report


def _split_note(groups: list[int]) -> str:
    kinds = len(set(groups))
    if kinds == len(groups):
        return ""
    return (
        f"Rows that share an answer or nearly repeat each other were kept on the same side of the split "
        f"({len(groups):,} rows in {kinds:,} groups), so no held-out prompt is a rephrasing of a training one."
    )


NEAR_REPEAT = 0.9
"""Cosine similarity of word TF-IDF vectors at which a held-out row counts as a repeat of a training row."""
LEAK_SAMPLE = (2_000, 50_000)
"""Held-out and training rows compared at most (a seeded sample beyond that): the check stays a few seconds."""


def near_repeats(held_out: list[str], train: list[str], threshold: float = NEAR_REPEAT) -> list[tuple[int, int]]:
    """(held-out index, training index) of each held-out text that nearly repeats a training text: the same
    words give the same vector, so "Hi, how do I cancel?" repeats "How do I cancel?"."""
    if not held_out or not train:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train + held_out)
    similar = vectorizer.transform(held_out) @ vectorizer.transform(train).T
    found = []
    for i in range(similar.shape[0]):
        row = similar.getrow(i)
        if row.nnz and row.data.max() >= threshold:
            found.append((i, int(row.indices[row.data.argmax()])))
    return found


def row_text(record: dict) -> str:
    return " ".join(str(record.get(k, "")) for k in ("text", "prompt", "response") if record.get(k))


def _leak_warnings(folder: Path, name: str) -> list[str]:
    """A warning when held-out rows nearly repeat training rows: scores on them measure memory, not skill."""
    rng = random.Random(0)
    held = [row_text(r) for r in load_split(folder, name)]
    train = [row_text(r) for r in load_split(folder, "train")]
    held_sample = rng.sample(held, min(len(held), LEAK_SAMPLE[0]))
    train_sample = rng.sample(train, min(len(train), LEAK_SAMPLE[1]))
    found = near_repeats(held_sample, train_sample)
    if not found:
        return []
    i, j = found[0]
    share = len(found) / len(held_sample)
    return [
        f"{len(found):,} of the {len(held_sample):,} {name} rows{' checked' if len(held_sample) < len(held) else ''} "
        f'({share:.0%}) nearly repeat a training row (e.g. "{held_sample[i][:80]}" and '
        f'"{train_sample[j][:80]}"), so scores on them measure memory, not skill. Remove the repeats from '
        "your file, or bring a test file of your own."
    ]


def _check_parquet_size(source: Path, limits: DatasetLimits) -> None:
    """A Parquet file says how many rows and bytes it holds: a file over the limits is refused unread."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(source).metadata
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise DatasetError(
            f"'{source.name}' could not be read as Parquet ({err}). Export it again from the tool that made it."
        ) from err
    if meta.num_rows > limits.max_rows:
        raise DatasetError(_too_many_rows(source, limits, meta.num_rows))
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    max_bytes, why = limits.byte_limit(source.stat().st_size)
    if unpacked > max_bytes:
        raise DatasetError(_too_big(source, max_bytes, why, limits))


def _too_many_rows(source: Path, limits: DatasetLimits, rows: int | None = None) -> str:
    has = f"has {rows:,} rows" if rows else f"has more than {limits.max_rows:,} rows"
    return (
        f"'{source.name}' {has}; this studio takes up to {limits.max_rows:,} per dataset (more would not "
        "train in any sensible time here). Keep a sample of the rows, or ask the administrator to raise "
        "SLM_STUDIO_MAX_DATASET_ROWS."
    )


def _too_big(source: Path, max_bytes: int, why: str, limits: DatasetLimits) -> str:
    size, limit = _size(source.stat().st_size), _size(max_bytes)
    if why == "quota":
        return (
            f"'{source.name}' does not fit in what is left of your storage ({limit}). Delete old jobs in "
            "History or old datasets, or ask the administrator to raise SLM_STUDIO_USER_QUOTA_MB."
        )
    if why == "expansion":
        return (
            f"'{source.name}' ({size}) unpacks to more than {limit}, over {limits.max_expansion} times its own "
            "size: such files are made to fill a disk, not to train on. If the data is real, save it as CSV or "
            "JSON Lines (uncompressed) and upload that."
        )
    return (
        f"'{source.name}' unpacks to more than {limit}, the most one dataset may take here. Keep a sample of "
        "the rows, or ask the administrator to raise SLM_STUDIO_MAX_DATASET_MB."
    )


def _size(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB" if n >= 1024**2 else f"{n / 1024:,.1f} KB"


def _chain(head: list, rows: Iterator) -> Iterator:
    yield from head
    yield from rows


def load_prepared(path: str | Path) -> PreparedDataset:
    path = Path(path)
    report_file = path / "report.json"
    if not report_file.exists():
        raise DatasetError(f"{path} is not a prepared dataset (no report.json). Run the dataset step first.")
    report = DatasetReport(**json.loads(report_file.read_text(encoding="utf-8")))
    return PreparedDataset(path, report)


def load_split(path: str | Path, name: str) -> list[dict]:
    with (Path(path) / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]
