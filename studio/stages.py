"""A training stage: its data, validation and step budget, and running it through the shared loop.

Used by every stage that trains: the teacher's fine-tune, the student's KD (distill) and healing (compress).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from studio.batches import encode_records, label_index, model_inputs
from studio.dataset import PreparedDataset
from studio.distill_config import DistillConfig
from studio.progress import ProgressFn
from studio.step_plan import StepPlan
from studio.training import TrainResult, train_loop
from studio.validation import Validator, causal_validator, classification_validator
from studio.words import Task


@dataclass
class Stage:
    """One training stage's data and shape: what train_loop needs besides the model and the loss."""

    items: list[dict]
    validate: Validator
    plan: StepPlan
    pad_id: int
    pad_to: int | None


def stage_for(
    config: DistillConfig,
    dataset: PreparedDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    epochs: int,
    records: list[dict] | None = None,
) -> Stage:
    task, labels = dataset.report.task, dataset.report.labels
    label_ids = label_index(labels) if task == Task.CLASSIFICATION else None
    items = encode_records(records if records is not None else dataset.split("train"), tokenizer, max_length, label_ids)
    held_out = encode_records(dataset.split("validation"), tokenizer, max_length, label_ids)
    pad_id, pad_to = tokenizer.pad_token_id, None  # the KD loss cuts the cached logits to each batch's length
    validate = (
        classification_validator(held_out, config.batch_size, pad_id, len(labels))
        if label_ids
        else causal_validator(held_out, config.batch_size, pad_id, pad_to)
    )
    plan = StepPlan.of(len(items), config.batch_size, epochs, config.min_steps, config.max_steps, config.patience)
    return Stage(items, validate, plan, pad_id, pad_to)


def run_stage(
    model: torch.nn.Module,
    stage: Stage,
    loss_fn: Callable,
    config: DistillConfig,
    folder: Path,
    name: str,
    lr: float,
    metrics: Path,
    on_progress: ProgressFn | None,
    checkpoint_every_s: float | None = None,
    pause_at: int | None = None,
    label: str = "",
) -> TrainResult:
    """Train one stage; ``name`` is its kind (Progress.stage), ``label`` which one of that kind."""
    return train_loop(
        model,
        stage.items,
        loss_fn,
        folder,
        name,
        label=label,
        plan=stage.plan,
        lr=lr,
        batch_size=config.batch_size,
        pad_id=stage.pad_id,
        metrics=metrics,
        seed=config.seed,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        validate=stage.validate,
        on_progress=on_progress,
        pad_to=stage.pad_to,
        checkpoint_every_s=checkpoint_every_s,
        pause_at=pause_at,
    )


def stage_summary(plan: StepPlan, result: TrainResult) -> dict:
    return {
        "steps_planned": plan.steps,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_validation": result.best_score,
        "stopped_early": result.stopped_early,
    }


def weighted_ce(weights: list[float] | None) -> Callable[[torch.nn.Module, dict], torch.Tensor]:
    """Cross-entropy on the labels, each class weighed as given (or all alike)."""
    tensor = None if weights is None else torch.tensor(weights)

    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        logits = model(**model_inputs(batch, model.device)).logits
        weight = None if tensor is None else tensor.to(logits.device)
        return torch.nn.functional.cross_entropy(logits, batch["labels"].to(model.device), weight=weight)

    return loss
