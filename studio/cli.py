"""Command line: a thin shell over the pipeline modules. Errors become one plain message."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from studio.dataset import DatasetOptions, load_prepared, prepare_dataset
from studio.errors import StudioError
from studio.paths import runs_dir

app = typer.Typer(add_completion=False,
                  help="SLM Studio: distill a big teacher model into a small, fast student on your own data.")
SAMPLES = Path(__file__).resolve().parent / "samples"


@app.callback(invoke_without_command=True)
def welcome(ctx: typer.Context) -> None:
    """With no command: show what is installed and how to start."""
    if ctx.invoked_subcommand is not None:
        return
    from studio.teacher import CATALOG, catalog_status

    typer.echo("SLM Studio (command line; the browser wizard is coming).\n\nOffline teachers:")
    for entry in CATALOG.values():
        typer.echo(f"  {entry.key:14} {entry.task:14} {catalog_status(entry)}")
    typer.echo(f"\nSample data: {SAMPLES / 'support_tickets.csv'}\n             {SAMPLES / 'shop_faq.jsonl'}")
    typer.echo(f"\nTry:\n  python -m studio distill --data {SAMPLES / 'support_tickets.csv'}\n"
               "  python -m studio --help")


def friendly(fn: Callable) -> Callable:
    """Show a StudioError as its message and exit 2, never as a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as err:
            typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@friendly
def catalog() -> None:
    """List the teachers that work offline."""
    from studio.teacher import CATALOG, catalog_status

    for entry in CATALOG.values():
        typer.echo(f"{entry.key:14} {entry.task:14} {entry.params_millions:6.1f}M  {entry.title}")
        typer.echo(f"{'':14} licence: {entry.licence}; {catalog_status(entry)}")


def _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed) -> DatasetOptions:
    return DatasetOptions(task=task, text_column=text_column, label_column=label_column,
                          prompt_column=prompt_column, response_column=response_column,
                          max_chars=max_chars, seed=seed)


Task = Annotated[Optional[str], typer.Option(help="classification or causal_lm; detected when left out.")]
TextCol = Annotated[Optional[str], typer.Option(help="Column with the text (detected when left out).")]
LabelCol = Annotated[Optional[str], typer.Option(help="Column with the label, for classification.")]
PromptCol = Annotated[Optional[str], typer.Option(help="Prompt column of prompt/response pairs.")]
ResponseCol = Annotated[Optional[str], typer.Option(help="Response column of prompt/response pairs.")]
MaxChars = Annotated[int, typer.Option(help="Longest classification text accepted, in characters.")]


@app.command("check-data")
@friendly
def check_data(file: Path, out: Annotated[Optional[Path], typer.Option(help="Where to write the splits.")] = None,
               task: Task = None, text_column: TextCol = None, label_column: LabelCol = None,
               prompt_column: PromptCol = None, response_column: ResponseCol = None,
               max_chars: MaxChars = 10_000, seed: int = 13) -> None:
    """Check a dataset file (CSV, TSV, JSONL, TXT, Parquet) and split it into train/validation/test."""
    out = out or runs_dir() / "datasets" / file.stem
    opts = _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed)
    prepared = prepare_dataset(file, out, opts)
    _print_report(prepared.report)
    typer.echo(f"Splits written to {prepared.path}")


def _print_report(report) -> None:
    cols = ", ".join(f"{k}={v}" for k, v in [("text", report.text_column), ("label", report.label_column),
                                             ("prompt", report.prompt_column), ("response", report.response_column)] if v)
    typer.echo(f"{report.source}: {report.format}, {report.encoding}, task {report.task}, columns {cols}")
    typer.echo(f"rows read {report.rows_read}, used {report.rows_used}; splits {report.split_sizes}")
    if report.label_counts:
        typer.echo("labels: " + ", ".join(f"{k} ({v})" for k, v in report.label_counts.items()))
    for warning in report.warnings:
        typer.secho(f"note: {warning}", fg=typer.colors.YELLOW)


class ProgressBars:
    """One tqdm bar per stage and epoch, fed by the pipeline's progress callback."""

    NAMES = {"teacher": "fine-tune teacher", "cache": "cache teacher logits", "student": "distill student",
             "heal": "heal (KD)"}

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.key: tuple | None = None

    def __call__(self, p) -> None:
        if p.message:
            tqdm.write(p.message)
        key = (p.stage, p.epoch)
        if key != self.key:
            self.close()
            label = self.NAMES.get(p.stage, p.stage) + (f" {p.epoch}/{p.epochs}" if p.epochs > 1 else "")
            self.bar, self.key = tqdm(total=p.steps, desc=label, unit="step", file=sys.stderr), key
        self.bar.n = p.step
        if p.loss is not None:
            self.bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@app.command()
@friendly
def distill(
    data: Annotated[Path, typer.Option(help="Dataset file, or a folder made by check-data.")],
    teacher: Annotated[str, typer.Option(help="Catalog key, model folder, or hub id.")] = "minilm-l6",
    student: Annotated[Optional[str], typer.Option(help="Student model; default: built from the teacher's layers.")] = None,
    student_layers: Annotated[int, typer.Option(help="Teacher layers the student keeps.")] = 3,
    epochs: int = 3,
    temperature: Annotated[float, typer.Option(help="KD temperature T (1-4 usual).")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of teacher soft targets vs labels, 0-1.")] = 0.5,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    max_length: int = 128,
    lora: Annotated[bool, typer.Option(help="Train LoRA adapters (merged at the end).")] = False,
    lora_r: int = 8,
    qlora: Annotated[bool, typer.Option(help="QLoRA: LoRA on a 4-bit NF4 copy of the student (needs bitsandbytes).")] = False,
    teacher_epochs: Annotated[int, typer.Option(help="Epochs to fine-tune a teacher on your labels.")] = 3,
    trim_vocab: Annotated[bool, typer.Option(help="Classification: drop unused vocabulary rows.")] = True,
    top_k: Annotated[int, typer.Option(help="Causal LM: teacher logits cached per token.")] = 32,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: a new one in the studio home).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    task: Task = None, text_column: TextCol = None, label_column: LabelCol = None,
    prompt_column: PromptCol = None, response_column: ResponseCol = None,
    max_chars: MaxChars = 10_000, seed: int = 13,
) -> None:
    """Distill a teacher into a smaller student on your data, then evaluate both on the test split."""
    from studio.distill import DistillConfig
    from studio.distill import distill as run_distill
    from studio.evaluate import evaluate_run

    config = DistillConfig(teacher=teacher, student=student, student_layers=student_layers, epochs=epochs,
                           temperature=temperature, alpha=alpha, learning_rate=learning_rate,
                           batch_size=batch_size, max_length=max_length, lora=lora, lora_r=lora_r, qlora=qlora,
                           teacher_epochs=teacher_epochs, trim_vocab=trim_vocab, top_k=top_k, seed=seed)
    if resume and out is None:
        raise typer.BadParameter("--resume needs --out, the run folder to continue.")
    out = out or runs_dir() / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if data.is_dir():
        dataset = load_prepared(data)
    elif resume and (out / "dataset" / "report.json").exists():
        dataset = load_prepared(out / "dataset")
    else:
        opts = _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed)
        dataset = prepare_dataset(data, out / "dataset", opts)
    _print_report(dataset.report)
    bars = ProgressBars()
    try:
        result = run_distill(config, dataset, out, on_progress=bars, resume=resume)
    finally:
        bars.close()
    typer.echo(f"Student saved to {result.student_dir}")
    _print_eval(evaluate_run(out))


@app.command()
@friendly
def evaluate(run: Path, before_kd: Annotated[bool, typer.Option(help="Also measure the student before KD.")] = False) -> None:
    """Measure teacher and student of a finished run on its test split."""
    from studio.evaluate import evaluate_run

    _print_eval(evaluate_run(run, before_kd))


def _print_eval(report: dict) -> None:
    typer.echo(format_table(report["models"]))


def format_table(models: list[dict]) -> str:
    """A plain-text table of model metrics (quality, size, speed)."""
    columns = [("name", "model", "{}"), ("accuracy", "accuracy", "{:.4f}"), ("macro_f1", "macro-F1", "{:.4f}"),
               ("perplexity", "perplexity", "{:.2f}"), ("agreement", "agree", "{:.3f}"),
               ("params", "params", "{:,}"), ("size_bytes", "MB", "{:.1f}"),
               ("latency_ms", "ms/item", "{:.2f}"), ("throughput", "per s", "{:.1f}"),
               ("generation_tokens_per_s", "gen tok/s", "{:.1f}"), ("peak_load_mb", "load MB", "{:.1f}"),
               ("form", "runs on", "{}"), ("status", "status", "{}")]
    used = [c for c in columns if any(m.get(c[0]) is not None for m in models)]
    rows = [[c[1] for c in used]]
    for m in models:
        row = []
        for key, _, fmt in used:
            value = m.get(key)
            value = value / 1e6 if key == "size_bytes" and value is not None else value
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(used))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


@app.command()
@friendly
def methods() -> None:
    """List the compression methods and their settings (defaults in brackets)."""
    import dataclasses

    from studio.compress import METHODS

    for method in METHODS.values():
        typer.echo(f"{method.name:14} {method.kind:9} {method.summary}")
        fields = [f"{f.name}={f.default}" for f in dataclasses.fields(method.settings)]
        if fields:
            typer.echo(f"{'':14} {'':9} settings: {', '.join(fields)}")
    typer.echo("\nCombine steps with '+', settings after ':', e.g.  prune-heads:fraction=0.3+heal:epochs=2+int8")


def split_variant(text: str) -> tuple[str | None, str]:
    """'name=recipe' or just 'recipe' (a recipe's own '=' comes after a ':')."""
    head, eq, rest = text.partition("=")
    if eq and ":" not in head and "+" not in head:
        return head.strip(), rest
    return None, text


@app.command()
@friendly
def compress(
    run: Annotated[Path, typer.Argument(help="A finished distillation run folder.")],
    variant: Annotated[list[str], typer.Option("--variant", "-v", help="A recipe, optionally named: "
                                               "'small=prune-heads:fraction=0.5+heal+int8'. Repeat for several.")],
    source: Annotated[str, typer.Option(help="'student', 'teacher', or a variant made earlier.")] = "student",
    evaluate: Annotated[bool, typer.Option(help="Measure teacher, student and all variants afterwards.")] = True,
) -> None:
    """Make compressed variants (quantized, pruned, healed) of a run's student and measure them."""
    from studio.compress.pipeline import compress_many, parse_recipe
    from studio.evaluate import evaluate_all

    recipes = [(name, parse_recipe(text)) for name, text in map(split_variant, variant)]
    bars = ProgressBars()
    try:
        made = compress_many(run, recipes, source=source, on_progress=bars)
    finally:
        bars.close()
    for manifest in made:
        status = manifest["status"] if manifest["status"] == "ok" else f"{manifest['status']}: {manifest.get('reason')}"
        typer.echo(f"{manifest['name']}: {status}")
    if evaluate:
        typer.echo(format_table(evaluate_all(run)["models"]))


@app.command()
@friendly
def show(run: Path) -> None:
    """Print a run's settings and its last evaluation."""
    typer.echo((run / "config.json").read_text())
    if (run / "eval.json").exists():
        _print_eval(json.loads((run / "eval.json").read_text()))


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and shard bars drown out our own progress
    hf_logging.disable_progress_bar()
    app()
