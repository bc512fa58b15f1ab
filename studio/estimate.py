"""How long a distillation will take on this machine, said before Start: from measured times, never from a
guess at a model's size.

1. The newest run of this user that finished here with the same teacher and task: its time, scaled by the
   training steps the new run plans over the steps that run planned (StepPlan, as training plans them).
2. No such run yet (classifiers): the teacher's measured training step and forward pass (studio.teacher_cost,
   shown in step 1), at the length the run will fit to the data (read as the run's planner reads it), times the
   steps the run plans and the texts it reads (the teacher's answers, validation, the evaluation). Said as "up
   to": a run often stops early (bench/estimate.py, 3,000 tickets: "up to about 5 min", 153 s taken; from that
   run, 1,500 tickets: 76 s said as "about 1 min", 73 s taken).
3. Neither: None (the Teacher step measures a step in a few seconds).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from studio.batches import encode_records
from studio.dataset import load_prepared
from studio.distill_config import DistillConfig
from studio.distill_plan import fit_max_length
from studio.models import load_tokenizer
from studio.step_plan import StepPlan
from studio.teacher import resolve_source
from studio.teacher_cost import BATCH, LENGTH, Cost
from studio.words import Task

LEARNING_RATE_SEARCH = 1.4
"""The teacher's learning-rate search trains about 1.4x the teacher's steps (teacher_setup)."""
STUDENT_STEP = 0.5
"""A student step costs about half a teacher step (fewer layers; the teacher's answers are cached). Only a
mix of runs with different students relies on it: the same recipe scales by steps alone."""
READS = 2
"""Times each text is read without training, about: the teacher's cached answers, validation and evaluation."""
LENGTH_SAMPLE = 1000
"""Training texts tokenized to find the length a run fits (as studio.distill_plan does with all of them)."""
CAUSAL_TOKENS = 400_000
"""kd_tokens 0 means this many (DistillConfig)."""
CAUSAL_TEXT_TOKENS = 128
"""A text generator's training text, in tokens, for turning a token budget into steps before the data is read."""
TUNE_EPOCHS = 3
"""Passes of the teacher's LoRA on the user's answers (studio.generator.TUNE_EPOCHS)."""


@dataclass(frozen=True)
class PastRun:
    """A finished distillation of this user on this machine."""

    job_id: int
    seconds: float
    texts: int
    """Training texts of its dataset."""
    teacher: str
    task: str
    config: dict
    unlabelled: int = 0
    """Texts without a label in its dataset."""


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str
    rough: bool = False
    """From a measured step, not a finished run: an upper figure, said as one."""

    def words(self) -> str:
        return f"{'up to about' if self.rough else 'about'} {minutes(self.seconds)} on this machine ({self.basis})."


def minutes(seconds: float) -> str:
    """Rounded as a person says it: '40 s', '7 min', '1 h 20 min'."""
    if seconds < 60:
        return f"{max(10, round(seconds, -1)):.0f} s"
    whole = max(1, round(seconds / 60))
    return f"{whole} min" if whole < 60 else f"{whole // 60} h {whole % 60:02d} min"


def training_work(config: DistillConfig, task: str, texts: int, unlabelled: int = 0) -> float:
    """Training steps the run plans, in teacher steps of its batch: what its time grows with. ``unlabelled``: texts
    without a label, which the student (not the teacher) trains on when the run uses them."""
    if task == Task.CAUSAL_LM:
        tokens = config.kd_tokens or CAUSAL_TOKENS
        distil = tokens / (config.batch_size * CAUSAL_TEXT_TOKENS)
        tune = StepPlan.of(texts, config.batch_size, TUNE_EPOCHS).steps
        return tune + STUDENT_STEP * distil
    read = texts + (unlabelled if config.unlabelled else 0)
    student = StepPlan.of(read, config.batch_size, config.epochs, config.min_steps, config.max_steps).steps
    teacher = 0.0
    if config.teacher_epochs:
        teacher = StepPlan.of(texts, config.batch_size, config.teacher_epochs, config.min_steps, config.max_steps).steps
        teacher *= 1.0 if config.teacher_learning_rate else LEARNING_RATE_SEARCH
    return teacher + STUDENT_STEP * student


@functools.lru_cache(maxsize=16)
def fitted_length(teacher: str, dataset_folder: str, labels: tuple[str, ...]) -> int:
    """The max_length a run of ``teacher`` fits to this dataset (studio.distill_plan.fit_max_length)."""
    source = resolve_source(teacher)
    tokenizer = load_tokenizer(source)
    records = load_prepared(dataset_folder).split("train")[:LENGTH_SAMPLE]
    label_ids = {label: i for i, label in enumerate(labels)} if labels else None
    lengths = [len(item["input_ids"]) for item in encode_records(records, tokenizer, 1_000_000, label_ids)]
    return fit_max_length(lengths, getattr(tokenizer, "model_max_length", None))


def estimate(
    config: DistillConfig,
    task: str,
    texts: int,
    past: list[PastRun],
    cost: Cost | None,
    length: Callable[[], int] = lambda: LENGTH,
    rows: int = 0,
    unlabelled: int = 0,
) -> Estimate | None:
    """How long ``config`` takes on ``texts`` training texts (``rows`` in all, read at ``length()`` tokens when
    the run fits its length to the data); ``past`` newest first."""
    work = training_work(config, task, texts, unlabelled)
    asked = config.teacher_training == "ask"  # asking a model costs nothing like training it: never mixed up
    same = [
        p
        for p in past
        if p.teacher == config.teacher
        and p.task == task
        and p.seconds > 0
        and p.texts > 0
        and (p.config.get("teacher_training") == "ask") == asked
    ]
    if same:
        run = same[0]
        then = training_work(DistillConfig.from_dict(run.config), task, run.texts, run.unlabelled)
        seconds = run.seconds * work / then if then else run.seconds
        return Estimate(seconds, f"your run {run.job_id} took {minutes(run.seconds)} for {run.texts:,} training texts")
    if cost is None or task != Task.CLASSIFICATION or asked:
        return None
    scale = (config.max_length or length()) / LENGTH
    training = cost.seconds_per_step * (config.batch_size / BATCH) * scale * work
    reading = cost.seconds_per_read / BATCH * scale * READS * (max(rows, texts) + (unlabelled if config.unlabelled else 0))
    return Estimate(
        math.ceil(training + reading),
        f"often less: every planned step at the teacher's measured pace, {cost.seconds_per_step:.2f} s a step, and "
        "training stops early once it stops improving; after your first run here the estimate comes from that run",
        rough=True,
    )
