"""Which columns of a user's file are the text, the label, the prompt and the response, and so which task it is.

The user's choices come first, then the usual names (TEXT_NAMES, ...), then the columns' content: a long
free-text column is the text, a short column with a few distinct values the label. More than one
candidate is a question for the user, never a guess.
"""

from __future__ import annotations

from typing import Protocol

from studio.errors import DatasetError
from studio.words import Task

WHERE = {
    kind: f"the {kind.capitalize()} column choice in the browser's Data step, or --{kind}-column on the command line"
    for kind in ("text", "label")
}
"""Where a user says which column is which: the same words for the browser and the command line."""


class ColumnChoices(Protocol):
    """What the user said about the columns (DatasetOptions has these fields); None means "detect it"."""

    task: str | None
    text_column: str | None
    label_column: str | None
    prompt_column: str | None
    response_column: str | None


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


def detect_columns(columns: list[str], sample: list[dict], opts: ColumnChoices) -> dict:
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
        text = _guess("text", long_cols, WHERE["text"]) if not (prompt and response) else None
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
            label = _guess("label", short, WHERE["label"])
        task = Task.CLASSIFICATION if (label and text) else Task.CAUSAL_LM
    if task == Task.CLASSIFICATION:
        if text is None:
            raise DatasetError(
                "No text column was found. Name it 'text' in the file or say "
                f"which one to use ({WHERE['text']}). Columns: {', '.join(columns)}."
            )
        if label is None:
            raise DatasetError(
                "No label column was found for classification. Name it 'label' "
                f"or say which one to use ({WHERE['label']}). Columns: {', '.join(columns)}."
            )
        if label == text:
            raise DatasetError("The text and label columns are the same column; choose two different ones.")
        return {"task": task, "text_column": text, "label_column": label}
    if prompt and response and not opts.text_column:
        return {"task": task, "prompt_column": prompt, "response_column": response}
    if text is None:
        raise DatasetError(
            "No text column was found. Name it 'text', give prompt and response "
            f"columns, or say which column to use ({WHERE['text']}). Columns: {', '.join(columns)}."
        )
    return {"task": task, "text_column": text}
