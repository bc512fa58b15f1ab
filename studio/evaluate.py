"""Evaluate step: every model (teacher, student, later each variant) measured the same way.

Quality on the held-out test split (macro-F1 first, accuracy beside it, per-class precision/recall/F1
and the confusion matrix; or perplexity and, judged by studio.answers, what each model writes to held-out
prompts), agreement with the teacher, parameter count, bytes on disk,
CPU latency at batch 1 and throughput at batch N, and the energy of 1,000 answers (studio.energy).
Classifiers are shown beside the majority-class and TF-IDF baselines, and a model that collapses onto one class
or does not beat them is flagged.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import ranks
from studio.answers import AnswerBook
from studio.asked_teacher import AskedTeacher, TeacherEndpointError, answers_of, scorer_for, shown
from studio.baselines import BASE_TEACHER, add_quality_warnings, evaluate_baselines
from studio.batches import encode_records, iter_batches, model_inputs, prompt_text
from studio.compress.variant import load_variant
from studio.dataset import load_prepared
from studio.energy import Energy, metered
from studio.errors import StudioError
from studio.hand_over import choose_threshold, hybrid_accuracy, share_alone
from studio.load_probe import peak_load_mb
from studio.metrics import ANSWER_TOKENS, LATENCY_SAMPLES, ModelMetrics, agreement, class_scores, median_ms
from studio.models import load_for_task, load_tokenizer
from studio.paths import is_saved
from studio.run import LABELS_ONLY, RunPaths, dataset_folder, read_manifest
from studio.student import copy_with_layers, count_parameters, layer_drop_student
from studio.teacher import resolve_source
from studio.words import Task, VariantStatus

SPEED_SAMPLE = 256
"""Texts a speed is measured on by one process alone, when the measuring pass was shared between processes."""
T = TypeVar("T")


def weights_bytes(folder: str | Path) -> int:
    """Bytes of the weight files (safetensors, ONNX) in a model folder."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".onnx"))


def _on_disk(model: PreTrainedModel) -> int:
    """Bytes of the model's weights as saved (fp32). In a job of several processes the main process saves it
    (the others' figure is not used)."""
    if not ranks.is_main():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return weights_bytes(tmp)


def _classify(model: PreTrainedModel, items: list[dict], batch_size: int, pad: int) -> tuple[list[int], list[float]]:
    """Label index and confidence (top class probability) per item (in a job of several processes, each
    classifies its part of the items)."""

    def part(mine: list[dict]) -> list[tuple[int, float]]:
        said = []
        for batch in iter_batches(mine, batch_size, pad):
            best = model(**model_inputs(batch, model.device)).logits.float().softmax(-1).max(-1)
            said += zip(best.indices.tolist(), best.values.tolist())
        return said

    said = ranks.spread(part, items)
    return [p for p, _ in said], [c for _, c in said]


def _alone(fn: Callable[[], T], unused: T = 0.0) -> T:
    """A speed (and its energy) measured by one process on a quiet machine. In a job of several processes the main
    process measures with every core while the others wait (they get ``unused``: their figure is not used); one
    process: just ``fn()``."""
    if ranks.world() == 1:
        return fn()
    if not ranks.is_main():
        return unused
    threads = torch.get_num_threads()
    torch.set_num_threads(threads * ranks.local_world())
    try:
        with ranks.alone():
            return fn()
    finally:
        torch.set_num_threads(threads)


def _memory(kind: str, folder: Path, task: str = "", labels: list[str] | None = None) -> float | None:
    """Peak memory to load the model (studio.load_probe, a fresh process). In a job of several processes the main
    process measures it (the others' figure is not used)."""
    return peak_load_mb(kind, folder, task, labels) if ranks.is_main() else None


def _tokens_a_second(part: Callable[[list[dict]], list[tuple[float, int, list[int]]]], sample: list[dict]) -> float:
    started = time.perf_counter()
    tokens = sum(t for _, t, _ in part(sample))
    return tokens / (time.perf_counter() - started)


def _classify_speed(model: PreTrainedModel, items: list[dict], batch_size: int, pad: int) -> tuple[float, Energy | None]:
    """Texts a second over up to SPEED_SAMPLE texts, and the energy of that, alone (the measured pass was shared
    between processes)."""
    sample = items[:SPEED_SAMPLE]

    def run() -> None:
        for batch in iter_batches(sample, batch_size, pad):
            model(**model_inputs(batch, model.device))

    _, seconds, energy = metered(run)
    return len(sample) / seconds, energy


@dataclass
class Validation:
    """The validation split and the teacher's labels of it: what a model's hand-over threshold is chosen on."""

    records: list[dict]
    teacher: list[int]


@torch.inference_mode()
def validation_of(model: PreTrainedModel, tokenizer, records: list[dict], labels: list[str], max_length: int, batch_size: int):
    """The teacher's labels of the validation split (None when the split is empty)."""
    if not records:
        return None
    items = encode_records(records, tokenizer, max_length, {label: i for i, label in enumerate(labels)})
    return Validation(records, _classify(model.eval(), items, batch_size, tokenizer.pad_token_id)[0])


@torch.inference_mode()
def evaluate_classifier(
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    labels: list[str],
    *,
    size_bytes: int,
    max_length: int = 128,
    batch_size: int = 32,
    teacher_predictions: list[int] | None = None,
    params: int | None = None,
    validation: Validation | None = None,
) -> tuple[ModelMetrics, list[int]]:
    """``validation`` (with ``teacher_predictions``): also when this model would ask the teacher (studio.hand_over)."""
    model.eval()
    label_ids = {label: i for i, label in enumerate(labels)}
    items = encode_records(records, tokenizer, max_length, label_ids)
    pad = tokenizer.pad_token_id
    run = lambda batch: model(**model_inputs(batch, model.device)).logits  # noqa: E731
    run(next(iter_batches(items[:batch_size], batch_size, pad)))  # warm-up
    if ranks.world() == 1:  # the pass that answers is the one timed, and its energy read
        (predictions, confidences), seconds, energy = metered(lambda: _classify(model, items, batch_size, pad))
        throughput = len(items) / seconds
    else:  # that pass is shared between the processes: the speed (and energy) is measured alone
        predictions, confidences = _classify(model, items, batch_size, pad)
        throughput, energy = _alone(lambda: _classify_speed(model, items, batch_size, pad), (0.0, None))
    singles = [next(iter_batches([it], 1, pad)) for it in items[:LATENCY_SAMPLES]]
    truth = [it["label"] for it in items]
    metrics = ModelMetrics(
        name=name,
        params=params or count_parameters(model),
        size_bytes=size_bytes,
        latency_ms=_alone(lambda: median_ms(run, singles)),
        throughput=throughput,
        agreement=agreement(predictions, teacher_predictions),
        **class_scores(truth, predictions, labels),
    )
    metrics.add_energy(energy, throughput)
    if validation is not None and teacher_predictions is not None:
        val_items = encode_records(validation.records, tokenizer, max_length, label_ids)
        chosen = choose_threshold(
            list(zip(*_classify(model, val_items, batch_size, pad))), validation.teacher, [it["label"] for it in val_items]
        )
        said = list(zip(predictions, confidences))
        metrics.hand_over_threshold = chosen
        metrics.student_share = share_alone(confidences, chosen)
        metrics.hybrid_accuracy = hybrid_accuracy(said, teacher_predictions, truth, chosen)
    return metrics, predictions


@torch.inference_mode()
def evaluate_causal_lm(
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    *,
    size_bytes: int,
    max_length: int = 256,
    batch_size: int = 8,
    teacher_predictions: list[int] | None = None,
    new_tokens: int = ANSWER_TOKENS,
    params: int | None = None,
) -> tuple[ModelMetrics, list[int]]:
    """Perplexity and next-token agreement on the test split, plus generation speed and the energy of 1,000 answers
    (an answer: ``new_tokens`` tokens written at batch 1)."""
    model.eval()
    items = encode_records(records, tokenizer, max_length)

    def part(mine: list[dict]) -> list[tuple[float, int, list[int]]]:
        """(summed loss, tokens, next-token predictions) of each batch"""
        said = []
        for batch in iter_batches(mine, batch_size, tokenizer.pad_token_id):
            inputs = model_inputs(batch, model.device)
            logits = model(**inputs).logits[:, :-1].float()
            targets, mask = inputs["input_ids"][:, 1:], inputs["attention_mask"][:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            said.append((nll[mask].sum().item(), int(mask.sum()), logits.argmax(-1)[mask].tolist()))
        return said

    started = time.perf_counter()
    batches = ranks.spread(part, items)  # in a job of several processes each reads its part of the texts
    throughput = sum(t for _, t, _ in batches) / (time.perf_counter() - started)
    if ranks.world() > 1:  # that pass was shared: the speed is one process's over a sample, alone
        throughput = _alone(lambda: _tokens_a_second(part, items[:SPEED_SAMPLE]))
    total_nll, total_tokens = sum(n for n, _, _ in batches), sum(t for _, t, _ in batches)
    predictions = [p for _, _, said in batches for p in said]
    generation, energy = _alone(lambda: _generation_speed(model, tokenizer, records[:3], new_tokens), (0.0, None))
    metrics = ModelMetrics(
        name=name,
        params=params or count_parameters(model),
        size_bytes=size_bytes,
        latency_ms=1000 / generation if generation else 0.0,  # 0: a process whose speeds are not used
        throughput=throughput,
        perplexity=math.exp(total_nll / max(1, total_tokens)),
        agreement=agreement(predictions, teacher_predictions),
        generation_tokens_per_s=generation,
    )
    metrics.add_energy(energy, generation / new_tokens)
    return metrics, predictions


def _generation_speed(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict], new_tokens: int
) -> tuple[float, Energy | None]:
    """Greedy tokens per second at batch 1 (the chat case), generation forced to full length, and the energy of
    that."""
    prompts = [
        tokenizer(prompt_text(record, tokenizer), return_tensors="pt", add_special_tokens=False).to(model.device)
        for record in records
    ]

    def written(enc) -> int:
        out = model.generate(
            **enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        return out.shape[1] - enc["input_ids"].shape[1]

    if len(prompts) > 1:
        written(prompts[0])  # warms up
    produced, seconds, energy = metered(lambda: sum(written(enc) for enc in prompts[1:] or prompts))
    return produced / max(seconds, 1e-9), energy


def evaluate_run(run_dir: str | Path, include_before_kd: bool = False) -> dict:
    """Measure teacher and student of a finished run on its test split; writes eval.json. In a job of several
    processes every process measures its part of the test split (the answers of text generators too), and speeds are
    measured by the main process alone, with every core; the main process writes the report."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    dataset = load_prepared(dataset_folder(config, run_dir))
    test = dataset.split("test")
    book = AnswerBook(test, dataset.split("train")) if config["task"] == Task.CAUSAL_LM else None
    rows, _, _ = _teacher_and_student(
        run_dir,
        config,
        test,
        measure_memory=False,
        include_before_kd=include_before_kd,
        book=book,
        validation_records=dataset.split("validation"),
    )
    return _write_report(run_dir / "eval.json", config, test, rows, book)


def _write_report(path: Path, config: dict, test: list[dict], rows: list[dict], book: AnswerBook | None = None) -> dict:
    add_quality_warnings(rows)
    report = {
        "task": config["task"],
        "test_examples": len(test),
        "labels": config.get("labels") or [],
        "plan": (config.get("plan") or {}).get("words", ""),
        "models": rows,
    }
    if config.get("training_energy"):  # what the distillation used (studio.jobs.kinds.run_distill)
        report["training_energy"] = config["training_energy"]
    if book is not None:
        report["answers"] = book.report()
    if ranks.is_main():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(path)
    return report


# --------------------------------------------------------------------------- teacher, student and variants


def _measure(
    task: str,
    name: str,
    model,
    tokenizer,
    test: list[dict],
    settings: dict,
    labels: list[str],
    *,
    size_bytes: int,
    params: int | None = None,
    teacher_predictions: list[int] | None = None,
    validation: Validation | None = None,
) -> tuple[ModelMetrics, list[int]]:
    """One model, measured exactly as every other: the single entry point for teacher, student and variants."""
    if task == Task.CLASSIFICATION:
        return evaluate_classifier(
            name,
            model,
            tokenizer,
            test,
            labels,
            size_bytes=size_bytes,
            max_length=settings["max_length"],
            batch_size=settings["batch_size"],
            teacher_predictions=teacher_predictions,
            params=params,
            validation=validation,
        )
    return evaluate_causal_lm(
        name,
        model,
        tokenizer,
        test,
        size_bytes=size_bytes,
        max_length=settings["max_length"],
        teacher_predictions=teacher_predictions,
        params=params,
    )


def _teacher_and_student(
    run_dir: Path,
    config: dict,
    test: list[dict],
    measure_memory: bool,
    include_before_kd: bool = False,
    book: AnswerBook | None = None,
    validation_records: list[dict] | None = None,
) -> tuple[list[dict], list[int], Validation | None]:
    """Rows for teacher (and, for causal LMs, optionally the layer-dropped student before KD) and student,
    plus the teacher's predictions that every other model's agreement is measured against, and (classifiers)
    its labels of ``validation_records``, on which every other model's hand-over threshold is chosen."""

    settings, task, labels = config["distill"], config["task"], config.get("labels") or []
    run = RunPaths(run_dir)
    teacher = run.teacher_info()
    rows, reference, validation = [], None, None
    models = [("teacher", Path(teacher["path"])), ("student", run.student)]
    if teacher.get("asked"):  # asked through a prompt: measured on its answers, not loaded as a classifier
        # the main process asks (every answer kept in the book), the others then read the book
        metrics, reference, validation = ranks.main_first(lambda: _asked_teacher(teacher, test, labels, validation_records or []))
        rows.append(asdict(metrics))
        models = models[1:]
    if task == Task.CAUSAL_LM and teacher.get("base") and teacher["base"] != teacher["path"]:
        models.insert(0, (BASE_TEACHER, Path(teacher["base"])))  # first: it judges every model's answers
    if is_saved(run.labels_only):
        models.append((LABELS_ONLY, run.labels_only))
    for name, folder in models:
        source = resolve_source(str(folder))
        model = load_for_task(source, task, labels)
        # fp32 size: a converted GGUF teacher is cached in bf16, which would flatter it
        fp32 = name in ("teacher", BASE_TEACHER) and task == Task.CAUSAL_LM
        size = _on_disk(model) if fp32 else weights_bytes(folder)
        tokenizer = load_tokenizer(source)
        metrics, predictions = _measure(
            task,
            name,
            model,
            tokenizer,
            test,
            settings,
            labels,
            size_bytes=size,
            teacher_predictions=reference,
            validation=validation,
        )
        if measure_memory:
            metrics.peak_load_mb = _memory("model", folder, task, labels)
        if book is not None:
            book.add(metrics, model, tokenizer)
        rows.append(asdict(metrics))
        if name == "teacher" and include_before_kd and task == Task.CAUSAL_LM:
            dropped = _student_before_kd(model, run.student, settings["student_layers"])
            before, _ = _measure(
                task,
                "student before KD",
                dropped,
                tokenizer,
                test,
                settings,
                labels,
                size_bytes=_on_disk(dropped),
                teacher_predictions=predictions,
            )
            if book is not None:
                book.add(before, dropped, tokenizer)
            rows.append(asdict(before))
            del dropped
        if name == "teacher":
            reference = predictions
            if task == Task.CLASSIFICATION:
                validation = validation_of(
                    model, tokenizer, validation_records or [], labels, settings["max_length"], settings["batch_size"]
                )
        del model
    if task == Task.CLASSIFICATION and ranks.is_main():  # the main process reports; the others measured their part
        train = load_prepared(dataset_folder(config, run_dir)).split("train")
        rows += [asdict(m) for m in evaluate_baselines(train, test, labels, reference)]
    return rows, reference, validation


def _asked_teacher(
    teacher: dict, test: list[dict], labels: list[str], validation_records: list[dict]
) -> tuple[ModelMetrics, list[int], Validation | None]:
    """The asked teacher's row: its answers (kept in the run's answer book) on the test split, and its labels of
    the validation split. Its speed is timed on a few texts asked afresh; a server's size is not known here."""
    asked = AskedTeacher.from_dict(teacher["asked"])
    book = Path(teacher["answers"])
    scorer = scorer_for(asked)
    predicted = answers_of(asked, test, book, scorer=scorer).softmax(-1)
    predictions = predicted.argmax(-1).tolist()
    truth = [labels.index(r["label"]) for r in test]
    prefix, names = asked.prefix(), [shown(label) for label in asked.labels]
    singles = [[asked.suffix(r["text"])] for r in test[:LATENCY_SAMPLES]]
    batch = [asked.suffix(r["text"]) for r in test[:16]]
    note = f"asked through a prompt ({asked.model}" + (f" at {asked.endpoint}; size is the server's" if asked.endpoint else "")
    local, energy = not asked.endpoint, None
    try:
        latency = median_ms(lambda suffixes: scorer(prefix, suffixes, names), singles)
        if local:  # it answers on this machine: the energy is this machine's to read (a server's is not)
            _, seconds, energy = metered(lambda: scorer(prefix, batch, names))
        else:
            started = time.perf_counter()
            scorer(prefix, batch, names)
            seconds = time.perf_counter() - started
        throughput = len(batch) / seconds
    except TeacherEndpointError as err:  # its answers are kept: only its speed needs the server up
        latency, throughput, note = 0.0, 0.0, f"{note}; not timed: {err}"
    metrics = ModelMetrics(
        name="teacher",
        params=count_parameters(scorer.model) if local else 0,
        size_bytes=weights_bytes(teacher["path"]) if local else 0,
        latency_ms=latency,
        throughput=throughput,
        note=note + ")",
        **class_scores(truth, predictions, labels),
    )
    metrics.add_energy(energy, throughput)
    validation = (
        Validation(validation_records, answers_of(asked, validation_records, book, scorer=scorer).argmax(-1).tolist())
        if validation_records
        else None
    )
    return metrics, predictions, validation


def _student_before_kd(teacher: PreTrainedModel, student_dir: Path, layers: int) -> PreTrainedModel:
    """The teacher cut to the student's layers (those the depth probe chose, when it ran), untrained."""
    config = json.loads((student_dir / "config.json").read_text()) if (student_dir / "config.json").exists() else {}
    kept = config.get("studio_kept_layers")
    return copy_with_layers(teacher, kept) if kept else layer_drop_student(teacher, layers)


def evaluate_all(run_dir: str | Path, variants: list[str] | None = None, measure_memory: bool = True) -> dict:
    """Teacher, student and every saved variant (or the ``variants`` named) on the test split.

    Writes compare.json. A variant this machine could not make is listed with its reason.
    """

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    settings, task, labels = config["distill"], config["task"], config.get("labels") or []
    dataset = load_prepared(dataset_folder(config, run_dir))
    test = dataset.split("test")
    book = AnswerBook(test, dataset.split("train")) if task == Task.CAUSAL_LM else None
    rows, reference, validation = _teacher_and_student(
        run_dir, config, test, measure_memory, book=book, validation_records=dataset.split("validation")
    )
    run = RunPaths(run_dir)
    for name in run.variant_names():
        folder = run.variants / name
        manifest = read_manifest(folder)
        if variants is not None and manifest.name not in variants:
            continue
        if not manifest.ok:
            rows.append({"name": manifest.name, "status": manifest.status, "note": manifest.reason})
            continue
        wm, problem = None, None
        try:
            wm = load_variant(folder)
        except (StudioError, RuntimeError, OSError, ValueError) as err:  # e.g. made on a GPU, measured without one
            problem = f"cannot be loaded here: {err}"
        problem = next((p for p in ranks.gathered(problem) if p), None)  # several processes: all measure it, or none
        if problem is not None:
            rows.append({"name": manifest.name, "status": VariantStatus.FAILED, "note": problem})
            continue
        metrics, _ = _measure(
            task,
            manifest.name,
            wm.model,
            wm.tokenizer,
            test,
            settings,
            labels,
            size_bytes=weights_bytes(folder),
            params=wm.params,
            teacher_predictions=reference,
            validation=validation,
        )
        metrics.form, metrics.note = wm.form, "; ".join(wm.notes)
        if measure_memory:
            metrics.peak_load_mb = _memory("variant", folder)
        if book is not None:
            book.add(metrics, wm.model, wm.tokenizer)
        rows.append(asdict(metrics))
        del wm
    return _write_report(run_dir / "compare.json", config, test, rows, book)
