"""The export's README.md: a model card with YAML metadata. It summarises the data (counts, never rows)."""

from __future__ import annotations

import json
import re

from studio import metrics
from studio.answers import NEW_TOKENS, NO_REPEAT, side_by_side
from studio.words import Task

CARD_COLUMNS = [
    "params",
    "size_bytes",
    "macro_f1",
    "accuracy",
    "perplexity",
    "rouge_l",
    "chrf",
    "answer_perplexity",
    "degenerate_share",
    "agreement",
    "latency_ms",
]


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~])")


def md(value: object) -> str:
    """A user's text (a label, a column name, a path) as plain text in Markdown: one line, every character that
    Markdown or HTML would read as markup escaped, so a label can neither add lines nor links to the card."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))


def _yaml_list(items: list[str]) -> str:
    return "".join(f"\n  - {json.dumps(item)}" for item in items)


def metrics_table(rows: dict[str, dict]) -> str:
    columns = metrics.shown(list(rows.values()), CARD_COLUMNS)
    if not rows or not columns:
        return "No measurements were recorded for this run.\n"
    lines = ["| model | " + " | ".join(c.title for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [c.text(row.get(c.key)) for c in columns]
        lines.append(f"| {md(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def model_card(info: dict) -> str:
    """``info``: name, task, teacher, licence, report (dataset summary), distill, recipe, metrics,
    files, hybrid, notes, runtime, gguf (bundle.gguf_rows)."""
    task = info["task"]
    report = info["report"]
    tags = ["slm-studio", "knowledge-distillation"] + [step["method"] for step in info.get("recipe") or []]
    formats = [f for f in ("onnx", "gguf") if any(path.startswith(f"{f}/") for path in info["files"])]
    tags += formats
    head = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {'text-classification' if task == 'classification' else 'text-generation'}",
    ]
    if info.get("licence"):
        head.append(f"license: {info['licence']}")
        if info["licence"] == "other":
            head.append(f"license_name: {json.dumps(info.get('licence_text') or 'see the teacher')}")
    head += [
        f"tags:{_yaml_list(tags)}",
        f"base_model_relation: {'quantized' if info.get('quantized') else 'finetune'}",
        "---",
        "",
    ]
    what = "sorts texts into one of its labels" if task == Task.CLASSIFICATION else "continues text / answers prompts"
    made = (
        f"the teacher of an SLM Studio distillation (**{md(info['teacher'])}**), as used for the owner's data"
        if info.get("role") == "teacher"
        else f"A small model that {what}, made with SLM Studio by knowledge distillation from the teacher "
        f"**{md(info['teacher'])}** on the owner's own data"
    )
    parts = [
        "\n".join(head),
        f"# {md(info['name'])}\n",
        (made[0].upper() + made[1:]) + ".\n",
        "## Files\n",
        "\n".join(f"- `{path}` — {about}" for path, about in info["files"].items()) + "\n",
        "## Use it\n",
        "```bash\npip install torch transformers"
        + (" onnxruntime" if "onnx" in formats else "")
        + '\npython predict.py "your text here"\n```\n',
        "Or in Python, with nothing but transformers installed:\n",
        "```python\nfrom transformers import AutoModelFor"
        + ("SequenceClassification" if task == Task.CLASSIFICATION else "CausalLM")
        + ", AutoTokenizer\nmodel = AutoModelFor"
        + ("SequenceClassification" if task == Task.CLASSIFICATION else "CausalLM")
        + '.from_pretrained("model")\ntokenizer = AutoTokenizer.from_pretrained("model")\n```\n',
        "## Training data\n",
        _data_summary(report),
        "## How it was made\n",
        f"- Teacher: {md(info['teacher'])}" + (f" (licence: {info['licence']})" if info.get("licence") else ""),
        "- Distillation settings: " + ", ".join(f"{k}={md(v)}" for k, v in sorted(info["distill"].items())),
        ("- Compression: " + " → ".join(_step_text(s) for s in info["recipe"]))
        if info.get("recipe")
        else "- Compression: none (the distilled student as trained)",
        "",
        *([f"- {md(info['plan'])}"] if info.get("plan") else []),
        "",
        "## Measured (held-out test split)\n",
        metrics_table(info["metrics"]),
        _baseline_text(info["metrics"]),
        _per_class_text(info["metrics"].get(info.get("chosen", ""), {}), info.get("chosen", "")),
        _answers_text(info.get("answers"), ["teacher", info.get("chosen", "student")]),
        _gguf_text(info.get("gguf") or []),
        _hybrid_text(info.get("hybrid"), task),
        "## Intended use and limits\n",
        f"- Made for the same kind of texts as its training data ({report.get('rows_used', '?')} rows of the owner's "
        "data). On other topics or styles its answers are less reliable; check it on your own examples first.",
        "- It is smaller and faster than its teacher and usually a little less accurate: see the table above.",
        "- It can be confidently wrong. Keep a person in the loop where a wrong answer matters, or use the "
        "teacher fall-back below the confidence threshold.",
        "- It inherits the teacher's biases and licence terms.",
        *[f"- {note}" for note in info.get("notes", [])],
        "",
    ]
    return "\n".join(parts)


def _baseline_text(rows: dict[str, dict]) -> str:
    """What the baselines are, and every warning a measured model carries."""
    lines = []
    if any(name.endswith("-baseline") for name in rows):
        lines.append(
            "The baselines were fitted on the same training split and measured on the same test split: "
            "majority-baseline always answers the commonest label; tfidf-baseline is TF-IDF of words and "
            "word pairs with logistic regression. Macro-F1 (the mean of each label's F1) is the headline: "
            "it does not flatter a model that ignores rare labels."
        )
    lines += [f"- **Warning: {md(name)}** {md(w)}." for name, row in rows.items() for w in row.get("warnings") or []]
    return "\n".join(lines) + "\n" if lines else ""


def _answers_text(book: dict | None, names: list[str]) -> str:
    """Text generators: what teacher and this model answer to the first held-out prompts, beside the reference."""
    if not book or not book.get("prompts"):
        return ""

    return (
        "\n".join(
            [
                "### What it writes\n",
                f"Greedy answers (up to {NEW_TOKENS} tokens, never repeating a run of {NO_REPEAT} tokens, as "
                "`predict.py` answers) to the first held-out "
                "prompts; the teacher's perplexity of the human reference answers is "
                f"{book['reference_perplexity']:.1f}.\n",
                *answers_table(book, names),
            ]
        )
        + "\n"
    )


def answers_table(book: dict, names: list[str], count: int = 5) -> list[str]:
    """Markdown table lines: prompt, reference and each named model's answer (marked when degenerate)."""

    names = [n for n in dict.fromkeys(names) if n in book.get("by_model", {})]
    lines = ["| prompt | reference | " + " | ".join(md(n) for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    for row in side_by_side(book, count, names):
        lines.append("| " + " | ".join(md(row.get(k, "")) for k in ["prompt", "reference", *names]) + " |")
    return lines


def _gguf_text(rows: list[dict]) -> str:
    """Text generators: each GGUF file's size and how often it predicts the float model's next token."""
    if not rows:
        return ""
    lines = [
        "### The GGUF files against the float model\n",
        f"Each file was loaded back with transformers (which dequantizes it) and run beside the float model in "
        f"`model/` on {rows[0]['prompts']} ({rows[0]['positions']} token positions). Agreement is the share of "
        "those positions where the file's most likely next token is the float model's.\n",
        "| file | weights | size (bytes) | next-token agreement with the float model |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{r['file']}` | {r['weight_type']} | {r['bytes']:,} ({r['bytes'] / 1e6:.3g} MB) | {r['agreement']:.1%} |"
        for r in rows
    ]
    if any(r["weight_type"] == "q4_0" for r in rows):
        lines.append(
            "\nq4_0 keeps the output matrix (the token embedding, when the two are shared) in Q8_0, as llama.cpp keeps "
            "it at higher precision. For llama.cpp's K-quants, which this export cannot write, run "
            "`llama-quantize <the f16 file> out-q4_k_m.gguf Q4_K_M`."
        )
    return "\n".join(lines) + "\n"


def _per_class_text(row: dict, name: str) -> str:
    if not row.get("per_class"):
        return ""
    lines = [f"### {md(name)}, label by label\n", "| label | precision | recall | F1 | test examples |", "|---|---|---|---|---|"]
    lines += [
        f"| {md(label)} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in row["per_class"].items()
    ]
    return "\n".join(lines) + "\n"


def _step_text(step: dict) -> str:
    settings = ", ".join(f"{k}={md(v)}" for k, v in step.items() if k != "method")
    return f"{step['method']}({settings})" if settings else step["method"]


def _data_summary(report: dict) -> str:
    lines = [
        f"- Task: {report.get('task')}; file format {md(report.get('format'))}; "
        f"{report.get('rows_used')} rows used of {report.get('rows_read')} read",
        "- Split (train / validation / test): "
        + " / ".join(str(report.get("split_sizes", {}).get(k, 0)) for k in ("train", "validation", "test")),
    ]
    if report.get("label_counts"):
        lines.append("- Labels (rows): " + ", ".join(f"{md(k)} ({v})" for k, v in sorted(report["label_counts"].items())))
    used = [md(report.get(k)) for k in ("text_column", "label_column", "prompt_column", "response_column") if report.get(k)]
    lines.append(f"- Columns used: {', '.join(used)}. No rows of the data are included in this export.")
    return "\n".join(lines) + "\n"


def _hybrid_text(hybrid: dict | None, task: str) -> str:
    if not hybrid:
        return (
            "## Small model first, teacher when unsure\n\nNot included in this export (export again with the "
            "hybrid option to add the teacher and a confidence threshold).\n"
        )
    lines = [
        "## Small model first, teacher when unsure\n",
        f"`predict.py` asks the student first and hands the input to the teacher (in `teacher/`) when the "
        f"student's confidence is below **{hybrid['threshold']:.4g}** ({hybrid['threshold_source']}; "
        "at 1 the teacher answers everything).\n",
        f"- The student answers **{hybrid['student_share']:.1%}** of inputs alone ({hybrid['measured_on']}).",
    ]
    if task == Task.CLASSIFICATION:
        lines += [
            f"- Accuracy: student alone {hybrid['student_accuracy']:.1%}, hybrid {hybrid['hybrid_accuracy']:.1%}, "
            f"teacher alone {hybrid['teacher_accuracy']:.1%}.",
            "",
            "| threshold (`predict.py --threshold`) | student answers alone | hybrid accuracy |",
            "|---|---|---|",
        ]
        lines += [
            f"| {row['threshold']:.2f} | {row['student_share']:.1%} | {row['hybrid_accuracy']:.1%} |"
            for row in hybrid.get("curve", [])
        ]
    else:
        lines += [
            "- Confidence of a generated answer is the geometric mean of its tokens' probabilities; generated "
            "text has no single right answer, so the hybrid's quality is not scored here.",
            "",
            "| threshold (`predict.py --threshold`) | student answers alone |",
            "|---|---|",
        ]
        lines += [f"| {row['threshold']:.2f} | {row['student_share']:.1%} |" for row in hybrid.get("curve", [])]
    return "\n".join(lines) + "\n"
