"""The measured columns of a model, in one table: what each is called and how its value reads.

The CLI's tables, the model card, the Compare step and the History step all show measurements from this
table, so a metric is added or renamed in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    """The metric's name in evaluation reports (eval.json, compare.json) and the database."""
    title: str
    """As people read it (card, browser)."""
    short: str
    """For a narrow text table (CLI)."""
    reads: Callable[[float], str]
    """A value as text, with its unit."""

    def text(self, value: object) -> str:
        if value is None:
            return "–"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        return self.reads(value) if isinstance(value, (int, float)) else str(value)


def _mb(v: float) -> str:
    return f"{v / 1e6:.1f} MB"


COLUMNS = [
    Column("macro_f1", "macro-F1", "macro-F1", lambda v: f"{v:.3f}"),
    Column("accuracy", "accuracy", "accuracy", lambda v: f"{v:.1%}"),
    Column("perplexity", "perplexity", "perplexity", lambda v: f"{v:.2f}"),
    Column("rouge_l", "ROUGE-L of its answers", "ROUGE-L", lambda v: f"{v:.3f}"),
    Column("chrf", "chrF of its answers", "chrF", lambda v: f"{v:.1f}"),
    Column("answer_perplexity", "teacher's perplexity of its answers", "answer ppl", lambda v: f"{v:.1f}"),
    Column("degenerate_share", "degenerate answers", "degenerate", lambda v: f"{v:.0%}"),
    Column("fluent", "answers read as language", "fluent", str),
    Column("agreement", "agrees with teacher", "agree", lambda v: f"{v:.1%}"),
    Column("params", "parameters", "params", lambda v: f"{v / 1e6:.2f} M"),
    Column("size_bytes", "size on disk", "size", _mb),
    Column("latency_ms", "latency per request", "ms/item", lambda v: f"{v:.1f} ms"),
    Column("throughput", "requests per second", "per s", lambda v: f"{v:.1f}"),
    Column("generation_tokens_per_s", "tokens written per second", "gen tok/s", lambda v: f"{v:.1f}"),
    Column("peak_load_mb", "memory to load", "load MB", lambda v: f"{v:.0f} MB"),
]
BY_KEY = {c.key: c for c in COLUMNS}


def shown(rows: list[dict], keys: list[str] | None = None) -> list[Column]:
    """The columns (all, or those of ``keys`` in that order) that at least one row has a value for."""
    columns = COLUMNS if keys is None else [BY_KEY[k] for k in keys]
    return [c for c in columns if any(r.get(c.key) is not None for r in rows)]


def scores_text(values: dict[str, float], keys: list[str]) -> str:
    """'accuracy 91.2%, size on disk 90.9 MB': a model's scores in a sentence."""
    return ", ".join(f"{BY_KEY[k].title} {BY_KEY[k].text(values[k])}" for k in keys if values.get(k) is not None)
