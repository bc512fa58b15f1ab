"""Distill step: teacher -> cached logits -> student, read top to bottom.

    plan_run        fit max_length to the data, weigh skewed classes (studio/distill_plan.py; the settings: distill_config.py)
    setup_teacher   load it; for classification without a head for the user's labels, fine-tune it
                    (learning rate chosen on the validation split unless set)
    setup_student   layer-drop copy of the teacher (or a catalog model), optional vocab trim, LoRA
    cache_teacher   run the teacher once over the training split and keep its logits on disk
    train_student   KD on the cached logits, validated, best weights kept (each training stage through
                    studio/stages.py into studio.training.train_loop)

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
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import generator
from studio.batches import encode_records, iter_batches, label_index, model_inputs, prompt_text, question_of
from studio.bnb import Bnb4bitSettings, bnb_config, bnb_device, bnb_unsupported
from studio.dataset import PreparedDataset
from studio.distill_config import ENCODER_STUDENT, TEACHER_LEARNING_RATES, DistillConfig, DistillResult
from studio.distill_plan import RunPlan, plan_run, plan_words, record_plan
from studio.errors import ConfigError
from studio.models import SAFE_LOAD, auto_class, load_causal_lm, load_classifier, load_tokenizer
from studio.progress import Progress, ProgressFn, report
from studio.run import RunPaths, write_run_config
from studio.stages import Stage, run_stage, stage_for, stage_summary, weighted_ce
from studio.student import copy_with_layers, layer_drop_student, same_tokenizer, trim_vocabulary
from studio.teacher import resolve_source
from studio.teacher_head import decoder_classifier, teach_head
from studio.teacher_head import describe as describe_head
from studio.training import (
    StepPlan,
    causal_validator,
    cpu_threads,
    make_kd_loss,
)
from studio.words import Task

# --------------------------------------------------------------------------- teacher


def setup_teacher(
    config: DistillConfig, dataset: PreparedDataset, run: RunPaths, plan: RunPlan, on_progress: ProgressFn | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
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
            raise ConfigError(
                ["teacher_epochs is 0, but the teacher has no head for your labels; allow at least 1 epoch so it can learn them"]
            )
        finetune_teacher(model, tokenizer, config, dataset, run, plan, on_progress)
        _save_model(model, tokenizer, run.teacher)
        return model, tokenizer, str(run.teacher)
    return model, tokenizer, source.path


def finetune_teacher(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: DistillConfig,
    dataset: PreparedDataset,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> None:
    """Fine-tune a classifier on the labels, validated; the learning rate is searched when not given."""
    stage = stage_for(config, dataset, tokenizer, plan.max_length, config.teacher_epochs)
    loss_fn = weighted_ce(plan.class_weights)
    lr = config.teacher_learning_rate or search_learning_rate(model, stage, loss_fn, config, run, plan, on_progress)
    plan.teacher_learning_rate = lr
    result = run_stage(model, stage, loss_fn, config, run.checkpoints / "teacher", "teacher", lr, run.metrics, on_progress)
    plan.stages["teacher"] = stage_summary(stage.plan, result)


def _head_only(config: DistillConfig, model: PreTrainedModel) -> bool:
    if config.teacher_training == "full":
        return False
    if not decoder_classifier(model):
        if config.teacher_training == "head":
            raise ConfigError(
                [
                    f"teacher_training 'head' needs a text generator as the teacher (its head is one "
                    f"linear layer on the last token); {type(model).__name__} is not one. "
                    "Use 'full' or 'auto'"
                ]
            )
        return False
    return True


def fit_teacher_head(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: DistillConfig,
    dataset: PreparedDataset,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> None:
    """Frozen teacher, fitted head (studio.teacher_head); its training-split logits become the KD cache."""
    label_ids = label_index(dataset.report.labels)
    train = encode_records(dataset.split("train"), tokenizer, config.max_length, label_ids)
    held_out = encode_records(dataset.split("validation"), tokenizer, config.max_length, label_ids)
    key = json.dumps([config.teacher, dataset.report.split_sizes, config.max_length])
    fit = teach_head(
        model,
        train,
        held_out,
        len(label_ids),
        plan.class_weights,
        config.batch_size,
        tokenizer.pad_token_id,
        config.seed,
        run.root / "teacher_features.safetensors",
        key,
        on_progress,
    )
    plan.stages["teacher"] = describe_head(fit)
    write_cache(run.cache, {"logits": fit.train_logits}, cache_fingerprint(config, str(run.teacher), dataset, "logits"))


def search_learning_rate(
    model: PreTrainedModel,
    stage: Stage,
    loss_fn: Callable,
    config: DistillConfig,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> float:
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
        report(
            on_progress,
            Progress(
                "teacher",
                1,
                1,
                0,
                1,
                message=f"trying learning rate {lr:g} for the teacher "
                f"({n} of {len(TEACHER_LEARNING_RATES)}, {trial_steps} steps)",
            ),
        )
        result = run_stage(
            model,
            stage,
            loss_fn,
            config,
            _trial_folder(run, lr),
            "teacher",
            lr,
            run.metrics,
            on_progress,
            pause_at=trial_steps,
            label=f"lr {lr:g}",
        )
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


def setup_student(
    config: DistillConfig, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: PreparedDataset, run: RunPaths
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
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


def _four_bit_base(student: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run: RunPaths, task: str) -> PreTrainedModel:
    """Save the float student (LoRA is merged back into it at the end), reload it in 4-bit NF4."""
    from peft import prepare_model_for_kbit_training

    reason = bnb_unsupported(4)
    if reason:
        raise ConfigError(
            [
                f"qlora needs bitsandbytes 4-bit layers, which cannot run here: {reason}. "
                "Turn qlora off; plain lora works everywhere"
            ]
        )
    if not (run.root / "student_base" / "studio_ready").exists():
        _save_model(student, tokenizer, run.root / "student_base")
    quantized = auto_class(task).from_pretrained(
        run.root / "student_base",
        quantization_config=bnb_config(Bnb4bitSettings()),
        device_map=bnb_device(),
        trust_remote_code=False,
        use_safetensors=True,
    )
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

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS if task == Task.CLASSIFICATION else TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
    )
    return get_peft_model(model, lora)


# --------------------------------------------------------------------------- teacher cache


def cache_teacher(
    teacher: PreTrainedModel,
    items: list[dict],
    config: DistillConfig,
    task: str,
    pad_id: int,
    path: Path,
    fingerprint: str,
    on_progress: ProgressFn | None = None,
) -> dict:
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


def cache_fingerprint(
    config: DistillConfig, teacher_dir: str, dataset: PreparedDataset, kd_mode: str, texts: int | None = None
) -> str:
    """What the cached teacher logits depend on: a change to any of it computes them again."""
    return json.dumps(
        [
            config.teacher,
            teacher_dir,
            dataset.report.split_sizes,
            config.max_length,
            config.top_k,
            dataset.report.task,
            kd_mode,
            config.recipe,
            texts,
        ]
    )


# --------------------------------------------------------------------------- the whole step


def distill(
    config: DistillConfig,
    dataset: PreparedDataset,
    run_dir: str | Path,
    on_progress: ProgressFn | None = None,
    resume: bool = False,
    checkpoint_every_s: float | None = None,
) -> DistillResult:
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
        teacher, teacher_dir = tune_causal_teacher(teacher, tokenizer, teacher_dir, config, dataset, run, plan, on_progress)
        records = generator_texts(teacher, tokenizer, records, config, dataset, run, plan, on_progress)
    record_plan(run, plan)
    run.record_teacher(teacher_dir, config.teacher, base_dir)
    probe = answers and config.student is None and config.student_layers == 0
    if not probe and not config.student_layers:
        config = replace(config, student_layers=_auto_layers(task, teacher))
        run.record_setting("student_layers", config.student_layers)
    student, student_tok, kd_mode = (
        (None, tokenizer, "logits") if probe else setup_student(config, teacher, tokenizer, dataset, run)
    )
    baseline = setup_student(config, teacher, tokenizer, dataset, run)[0] if config.labels_only_student and not probe else None
    if kd_mode == "sequence":
        report(
            on_progress,
            Progress(
                "cache",
                1,
                1,
                0,
                1,
                message="Teacher and student use different tokenizers: the student learns from text the teacher writes.",
            ),
        )
        if not answers:  # the 'answers' recipe's texts are mostly the teacher's already
            records = teacher_written(teacher, tokenizer, records, config)

    label_ids = label_index(dataset.report.labels) if task == Task.CLASSIFICATION else None
    teacher_items = encode_records(records, tokenizer, config.max_length, label_ids)
    fingerprint = cache_fingerprint(config, teacher_dir, dataset, kd_mode, len(records) if answers else None)
    started = time.perf_counter()
    cache = (
        {}
        if kd_mode == "sequence"
        else cache_teacher(teacher, teacher_items, config, task, tokenizer.pad_token_id, run.cache, fingerprint, on_progress)
    )
    cache_seconds = time.perf_counter() - started

    stage = stage_for(config, dataset, student_tok, config.max_length, config.epochs, records)
    loss_fn = make_kd_loss(task, cache, config.temperature, config.alpha if kd_mode == "logits" else 0.0, plan.class_weights)
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
    trained = run_stage(
        student,
        stage,
        loss_fn,
        config,
        run.checkpoints / "student",
        "student",
        config.learning_rate,
        run.metrics,
        on_progress,
        checkpoint_every_s,
    )
    plan.stages["student"] = stage_summary(stage.plan, trained)
    _save_model(_merged(student, config, run, task), student_tok, run.student)
    if baseline is not None:
        torch.manual_seed(config.seed)
        result = run_stage(
            baseline,
            stage,
            make_kd_loss(task, {}, config.temperature, 0.0, plan.class_weights),
            config,
            run.checkpoints / "labels-only",
            "labels-only student",
            config.learning_rate,
            run.metrics,
            on_progress,
            checkpoint_every_s,
        )
        plan.stages["labels-only student"] = stage_summary(stage.plan, result)
        _save_model(_merged(baseline, config, run, task), student_tok, run.labels_only)
    record_plan(run, plan)
    return DistillResult(run.root, task, teacher_dir, run.student, kd_mode, trained.seconds, cache_seconds)


def _auto_layers(task: str, teacher: PreTrainedModel) -> int:
    """student_layers 0 without a probe: 3 for a classifier, a third of a text generator's layers."""
    return 3 if task == Task.CLASSIFICATION else max(1, teacher.config.num_hidden_layers // 3)


# --------------------------------------------------------------------------- text generators: the 'answers' recipe


def tune_causal_teacher(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    teacher_dir: str,
    config: DistillConfig,
    dataset: PreparedDataset,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> tuple[PreTrainedModel, str]:
    """The teacher learns the user's answers (LoRA, studio.generator.tune_teacher), saved as run/teacher."""
    if (run.teacher / "studio_ready").exists():
        return teacher, teacher_dir  # setup_teacher loaded the tuned one
    report(on_progress, Progress("teacher", 1, 1, 0, 1, message="the teacher learns your answers (LoRA)"))
    items = encode_records(dataset.split("train"), tokenizer, plan.max_length)
    held_out = encode_records(dataset.split("validation"), tokenizer, plan.max_length)
    stage = Stage(
        items,
        causal_validator(held_out, config.batch_size, tokenizer.pad_token_id, None),
        StepPlan.of(len(items), config.batch_size, generator.TUNE_EPOCHS, 0, config.max_steps, config.patience),
        tokenizer.pad_token_id,
        None,
    )

    def run_it(model, stage, loss, lr):
        return run_stage(model, stage, loss, config, run.checkpoints / "teacher", "teacher", lr, run.metrics, on_progress)

    tuned, result = generator.tune_teacher(teacher, stage, run_it, make_kd_loss(Task.CAUSAL_LM, {}, 1.0, 0.0))
    plan.stages["teacher"] = stage_summary(stage.plan, result)
    _save_model(tuned, tokenizer, run.teacher)
    shutil.rmtree(run.checkpoints / "teacher", ignore_errors=True)
    return tuned.eval(), str(run.teacher)


def generator_texts(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    config: DistillConfig,
    dataset: PreparedDataset,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> list[dict]:
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


def probe_student(
    teacher: PreTrainedModel,
    stage: Stage,
    loss_fn: Callable,
    config: DistillConfig,
    run: RunPaths,
    plan: RunPlan,
    on_progress: ProgressFn | None,
) -> PreTrainedModel:
    """Rank the teacher's layers, probe the candidate depths, and build the chosen student."""

    def rank() -> list[int]:
        report(on_progress, Progress("student", 1, 1, 0, 1, message="ranking the teacher's layers"))
        sample = random.Random(config.seed).sample(stage.items, min(len(stage.items), 4 * config.batch_size))
        return generator.rank_layers(teacher, list(iter_batches(sample, config.batch_size, stage.pad_id)), loss_fn)

    steps = min(generator.PROBE_STEPS, stage.plan.steps)
    probe_stage = replace(stage, plan=generator.probe_plan(steps, stage.plan.steps_per_epoch))

    def train_probe(model, folder, label):
        torch.manual_seed(config.seed)
        result = run_stage(
            model, probe_stage, loss_fn, config, folder, "probe", config.learning_rate, run.metrics, on_progress, label=label
        )
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


def teacher_written(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    config: DistillConfig,
    max_new_tokens: int = 96,
) -> list[dict]:
    """Sequence-level KD data: the teacher's own answers (or continuations) to each prompt."""
    teacher.eval()
    written = []
    tokenizer.padding_side = "left"
    for start in range(0, len(records), config.batch_size):
        chunk = records[start : start + config.batch_size]
        prompts = [prompt_text(r, tokenizer) for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(teacher.device)
        with torch.inference_mode():
            out = teacher.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for record, answer in zip(chunk, answers):
            if "prompt" in record:
                written.append({"prompt": record["prompt"], "response": answer.strip()})
            else:
                written.append({"text": question_of(record) + " " + answer.strip()})
    tokenizer.padding_side = "right"
    return written
