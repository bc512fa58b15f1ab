"""Teacher step: load the teacher and make it an expert on the user's data before anything learns from it.

    setup_teacher          load it; a classifier without a head for the user's labels is fine-tuned (or, for a
                           text generator as classifier, gets a fitted head: studio/teacher_head.py)
    search_learning_rate   when none is set, a short trial of each candidate rate on the validation split
    tune_causal_teacher    a text generator learns the user's answers with LoRA (the 'answers' recipe)

Whatever was trained is saved as run/teacher; a resumed run loads it instead of training again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import generator, ranks
from studio.batches import encode_records, label_index
from studio.dataset import PreparedDataset
from studio.distill_config import TEACHER_LEARNING_RATES, DistillConfig
from studio.distill_plan import RunPlan
from studio.errors import ConfigError
from studio.logit_cache import cache_fingerprint, write_cache
from studio.models import load_causal_lm, load_classifier, load_tokenizer, save_model
from studio.paths import is_saved
from studio.progress import Progress, ProgressFn, report
from studio.run import RunPaths
from studio.stages import Stage, run_stage, stage_for, stage_summary, weighted_ce
from studio.step_plan import StepPlan
from studio.teacher import resolve_source
from studio.teacher_head import decoder_classifier, teach_head
from studio.teacher_head import describe as describe_head
from studio.training import make_kd_loss
from studio.validation import causal_validator
from studio.words import Task


def setup_teacher(
    config: DistillConfig, dataset: PreparedDataset, run: RunPaths, plan: RunPlan, on_progress: ProgressFn | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load the teacher; a classifier without a head for these labels is fine-tuned first and saved.

    Returns (model, tokenizer, where the teacher lives: its own folder, or run/teacher if fine-tuned).
    """
    if is_saved(run.teacher):
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
            save_model(model, tokenizer, run.teacher)
            return model, tokenizer, str(run.teacher)
        if config.teacher_epochs == 0:
            raise ConfigError(
                ["teacher_epochs is 0, but the teacher has no head for your labels; allow at least 1 epoch so it can learn them"]
            )
        finetune_teacher(model, tokenizer, config, dataset, run, plan, on_progress)
        save_model(model, tokenizer, run.teacher)
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
    plan.learning_rate_trials = {f"{lr:g}": scores[lr] for lr in TEACHER_LEARNING_RATES}

    def keep_the_best() -> None:
        shutil.rmtree(run.checkpoints / "teacher", ignore_errors=True)
        shutil.copytree(_trial_folder(run, best), run.checkpoints / "teacher")
        for lr in TEACHER_LEARNING_RATES:
            shutil.rmtree(_trial_folder(run, lr), ignore_errors=True)
        tmp = chosen_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"learning_rate": best, "trials": plan.learning_rate_trials}))
        os.replace(tmp, chosen_file)

    ranks.on_main(keep_the_best)
    return best


def _trial_folder(run: RunPaths, lr: float) -> Path:
    return run.checkpoints / f"teacher-lr-{lr:g}"


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
    if is_saved(run.teacher):
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
    save_model(tuned, tokenizer, run.teacher)
    ranks.on_main(lambda: shutil.rmtree(run.checkpoints / "teacher", ignore_errors=True))
    return tuned.eval(), str(run.teacher)
