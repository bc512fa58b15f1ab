"""Distill step: teacher -> cached logits -> student, read top to bottom.

    plan_run        fit max_length to the data, weigh skewed classes (distill_plan.py; the settings: distill_config.py)
    setup_teacher   load it; for classification without a head for the user's labels, fine-tune it
                    (learning rate chosen on the validation split unless set) (teacher_setup.py)
    setup_student   layer-drop copy of the teacher (or a catalog model), optional vocab trim, LoRA (student_setup.py)
    cache_teacher   run the teacher once over the training split and keep its logits on disk (logit_cache.py)
    train_student   KD on the cached logits, validated, best weights kept (each training stage through
                    stages.py into training.train_loop)

Text generators on the default 'answers' recipe add three steps: the teacher learns the user's answers
(teacher_setup.tune_causal_teacher), writes more of them (student_texts.py), and a depth probe picks the
student's size (student_setup.probe_student; the recipe's pieces are in generator.py).

Everything lands in one run folder (run.py): config.json (written before anything runs), teacher/,
cache/, checkpoints/, student/ and metrics.jsonl (one line per step, append-only).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from studio import ranks
from studio.asked_teacher import answers_of, asked_teacher_of, check_can_answer, teacher_folder
from studio.batches import encode_records, label_index
from studio.dataset import PreparedDataset
from studio.distill_config import ENCODER_STUDENT, DistillConfig, DistillResult
from studio.distill_plan import RunPlan, plan_run, plan_words, record_plan
from studio.errors import ConfigError
from studio.labelling import write_questions
from studio.logit_cache import agreeing_answers, cache_fingerprint, cache_teacher, sure_answers
from studio.models import load_tokenizer, save_model
from studio.progress import Progress, ProgressFn, report
from studio.run import RunPaths, write_run_config
from studio.stages import run_stage, stage_for, stage_summary
from studio.student import copy_with_layers
from studio.student_setup import auto_layers, merged, probe_student, setup_student, with_lora
from studio.student_texts import generator_texts, sequence_kd_texts, token_budget
from studio.teacher import resolve_source
from studio.teacher_setup import setup_teacher, tune_causal_teacher
from studio.training import cpu_threads, make_kd_loss
from studio.words import Task


def distill(
    config: DistillConfig,
    dataset: PreparedDataset,
    run_dir: str | Path,
    on_progress: ProgressFn | None = None,
    resume: bool = False,
    checkpoint_every_s: float | None = None,
    answers_file: Path | None = None,
) -> DistillResult:
    """Run the whole distillation; with ``resume`` pick up after the last checkpoint.

    An asked teacher's answers are kept in ``answers_file`` (by default in the run folder): the job passes one
    file a user, so a re-run asks nothing twice.

    Checkpoints come at each validation, and also every `checkpoint_every_s` seconds between them."""
    run = RunPaths(run_dir)
    write_run_config(run, config, dataset, resume)
    torch.manual_seed(config.seed)
    torch.set_num_threads(cpu_threads(config.threads))
    task = dataset.report.task

    records = dataset.split("train")
    asked = asked_teacher_of(config, dataset) if config.teacher_training == "ask" else None
    if asked is not None and task != Task.CLASSIFICATION:
        raise ConfigError(["teacher_training 'ask' is for classification; a text generator's teacher is trained"])
    if asked is not None and not asked.endpoint:
        check_can_answer(resolve_source(config.teacher).path, config.teacher)  # before anything is set up
    # an asked teacher reads its own prompt: the length to fit is the student's
    plan_tokenizer = load_tokenizer(resolve_source(config.student or ENCODER_STUDENT if asked else config.teacher))
    plan = plan_run(config, dataset, plan_tokenizer, records)
    _keep_what_was_done(run, plan)
    config = replace(config, max_length=plan.max_length)
    record_plan(run, plan)
    report(on_progress, Progress("teacher", 1, 1, 0, 1, message=plan_words(plan)))
    if asked is None:
        teacher, tokenizer, teacher_dir = setup_teacher(config, dataset, run, plan, on_progress)
        base_dir = resolve_source(config.teacher).path
    else:
        teacher, tokenizer, teacher_dir = None, plan_tokenizer, teacher_folder(asked)
        base_dir = teacher_dir
        shots = f"{len(asked.examples)} of your labelled texts as examples" if asked.examples else "no examples"
        plan.asked_teacher = f"{config.teacher}" + (f" at {asked.endpoint}" if asked.endpoint else "") + f" ({shots})"
    answers = task == Task.CAUSAL_LM and config.recipe != "plain"
    if answers:
        teacher, teacher_dir = tune_causal_teacher(teacher, tokenizer, teacher_dir, config, dataset, run, plan, on_progress)
        records = generator_texts(teacher, tokenizer, records, config, dataset, run, plan, on_progress)
    record_plan(run, plan)
    answers_file = Path(answers_file or run.root / "teacher_answers.sqlite")
    run.record_teacher(teacher_dir, config.teacher, base_dir, asked.to_dict() if asked else None, str(answers_file))
    probe = answers and config.student is None and config.student_layers == 0
    if not probe and not config.student_layers:
        config = replace(config, student_layers=auto_layers(task, teacher))
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
            records = sequence_kd_texts(teacher, tokenizer, records, config)

    labelled = records
    if task == Task.CLASSIFICATION and config.unlabelled and kd_mode == "logits" and dataset.report.unlabelled:
        records = records + dataset.split("unlabelled")  # the teacher's answers are all the student has for these
        plan.texts_unlabelled_read = len(records) - len(labelled)
    label_ids = label_index(dataset.report.labels) if task == Task.CLASSIFICATION else None
    texts = len(records) if answers or plan.texts_unlabelled else None
    fingerprint = cache_fingerprint(config, teacher_dir, dataset, kd_mode, texts)
    started = time.perf_counter()
    if kd_mode == "sequence":
        cache = {}
    elif asked is not None:
        # the main process asks (and keeps every answer in the book); the others then read the book
        cache = {"logits": ranks.main_first(lambda: answers_of(asked, records, answers_file, on_progress))}
    else:
        items = encode_records(records, tokenizer, config.max_length, label_ids)
        cache = cache_teacher(teacher, items, config, task, tokenizer.pad_token_id, run.cache, fingerprint, on_progress)
    cache_seconds = time.perf_counter() - started
    asked_about = (records[len(labelled) :], cache["logits"][len(labelled) :]) if plan.texts_unlabelled_read else None
    if plan.texts_unlabelled_read:
        records, cache = sure_answers(records, cache, len(labelled), config.unlabelled_min_confidence)
        plan.texts_unlabelled_sure = len(records) - len(labelled)
        if config.unlabelled_agreement:
            records, cache = agreeing_answers(records, cache, len(labelled), label_ids)
        plan.texts_unlabelled = len(records) - len(labelled)
        record_plan(run, plan)

    stage = stage_for(config, dataset, student_tok, config.max_length, config.epochs, records)
    loss_fn = make_kd_loss(task, cache, config.temperature, config.alpha if kd_mode == "logits" else 0.0, plan.class_weights)
    if answers:
        stage = replace(stage, plan=token_budget(stage, config))
    if probe:
        student = probe_student(teacher, stage, loss_fn, config, run, plan, on_progress)
        config = replace(config, student_layers=student.config.num_hidden_layers)
        baseline = copy_with_layers(teacher, plan.student_layers) if config.labels_only_student else None
        student = with_lora(student, config, task) if config.lora else student
        baseline = with_lora(baseline, config, task) if config.lora and baseline is not None else baseline
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
    if asked_about is not None:  # what the user is asked to label next (studio.labelling)
        ranks.on_main(lambda: write_questions(run.root, *asked_about, student, student_tok, dataset.report.labels, config))
    save_model(merged(student, config, run, task), student_tok, run.student)
    if baseline is not None:  # the labels alone: the texts without one have nothing to teach it
        torch.manual_seed(config.seed)
        alone = (
            stage_for(config, dataset, student_tok, config.max_length, config.epochs, labelled)
            if plan.texts_unlabelled
            else stage
        )
        result = run_stage(
            baseline,
            alone,
            make_kd_loss(task, {}, config.temperature, 0.0, plan.class_weights),
            config,
            run.checkpoints / "labels-only",
            "labels-only student",
            config.learning_rate,
            run.metrics,
            on_progress,
            checkpoint_every_s,
        )
        plan.stages["labels-only student"] = stage_summary(alone.plan, result)
        save_model(merged(baseline, config, run, task), student_tok, run.labels_only)
    record_plan(run, plan)
    return DistillResult(run.root, task, teacher_dir, run.student, kd_mode, trained.seconds, cache_seconds)


def _keep_what_was_done(run: RunPaths, plan: RunPlan) -> None:
    """A resumed run keeps the learning rate it chose and the stages it finished."""
    before = run.read_config().get("plan")
    if before:
        plan.teacher_learning_rate = before.get("teacher_learning_rate")
        plan.learning_rate_trials = before.get("learning_rate_trials") or {}
        plan.stages = before.get("stages") or {}
