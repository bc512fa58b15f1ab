"""Plain-text tables of measured models, for the terminal."""

from __future__ import annotations

from studio import metrics


def per_class_table(per_class: dict[str, dict]) -> str:
    width = max(len("label"), *(len(label) for label in per_class))
    lines = [f"{'label':<{width}}  precision  recall     F1  examples"]
    lines += [
        f"{label:<{width}}  {m['precision']:>9.3f}  {m['recall']:>6.3f}  {m['f1']:>5.3f}  {m['support']:>8}"
        for label, m in per_class.items()
    ]
    return "\n".join(lines)


def format_table(models: list[dict]) -> str:
    """A plain-text table of model metrics (quality, size, speed): the columns any model has a value for."""
    columns = metrics.shown(models)
    extra = [key for key in ("form", "status") if any(m.get(key) is not None for m in models)]
    rows = [["model", *(c.short for c in columns), *({"form": "runs on"}.get(k, k) for k in extra)]]
    rows += [
        [str(m.get("name", "")), *(c.text(m.get(c.key)) for c in columns), *(str(m.get(k) or "–") for k in extra)] for m in models
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
