"""What a teacher costs to fine-tune on this machine: measured, not guessed from its size.

A few real training steps (forward, backward, AdamW update over every weight, as the teacher
fine-tune does) on a batch of ``BATCH`` texts of ``LENGTH`` tokens, the first a warm-up not counted;
then a few forward passes alone (what fitting a text generator's head costs: it reads each text
once). The result is kept per machine in the model cache, so the teacher step shows it at once the
next time, and a different machine (or a GPU worker) measures its own.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from studio.models import load_causal_lm, load_classifier
from studio.paths import model_cache_dir
from studio.teacher import resolve_source
from studio.teacher_head import decoder_classifier
from studio.words import Task

BATCH = 16
LENGTH = 128
TIMED_STEPS = 2
MIN_STEPS = 250
"""The fewest steps a default run trains (``DistillConfig.min_steps``), so the least a fine-tune costs."""


@dataclass(frozen=True)
class Cost:
    teacher: str
    task: str
    seconds_per_step: float
    seconds_per_read: float
    """One forward pass over a batch, no training: how a text generator's frozen teacher reads the data."""
    head_only: bool
    """A text generator as a classifier: by default only its head is fitted (teacher_training 'auto')."""
    batch: int
    length: int
    machine: str
    measured_at: str

    @property
    def minimum_minutes(self) -> float:
        return self.seconds_per_step * MIN_STEPS / 60

    @property
    def minutes_per_thousand_texts(self) -> float:
        return self.seconds_per_read * 1000 / self.batch / 60

    def words(self) -> str:
        full = (
            f"{self.seconds_per_step:.2f} s per training step of {self.batch} texts × {self.length} tokens; "
            f"a run trains at least {MIN_STEPS} steps, so a full fine-tune takes at least "
            f"{self.minimum_minutes:.0f} min (longer texts or more data: more)"
        )
        read = (
            f"fitting its head (the default for a text generator) reads each text once: about "
            f"{self.minutes_per_thousand_texts:.1f} min per 1,000 texts of {self.length} tokens"
        )
        said = f"{read}; {full}" if self.head_only else full
        return f"{said[0].upper()}{said[1:]}. Here: {self.machine}, measured {self.measured_at}."


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {device}"


def _store() -> Path:
    return model_cache_dir() / "finetune-costs.json"


def _key(teacher: str, task: str) -> str:
    return f"{teacher}|{task}|{BATCH}x{LENGTH}|{machine()}"


def known_cost(teacher: str, task: str = Task.CLASSIFICATION) -> Cost | None:
    """The cost measured earlier on this machine, if any."""
    try:
        row = json.loads(_store().read_text()).get(_key(teacher, task))
        return Cost(**row) if row else None
    except (OSError, ValueError, TypeError):  # none yet, or written by an older studio: measure again
        return None


def measure_cost(teacher: str, task: str = Task.CLASSIFICATION) -> Cost:
    """Time real training steps of ``teacher`` for ``task`` and remember the result for this machine."""
    source = resolve_source(teacher)
    if task == Task.CLASSIFICATION:
        model = load_classifier(source, ["a", "b", "c"])[0]
    else:
        model = load_causal_lm(source)
    model.train()
    vocab = int(getattr(model.config, "vocab_size", 1000))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(6, min(vocab, 30000)), (BATCH, LENGTH), generator=generator)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 3, (BATCH,), generator=generator) if task == Task.CLASSIFICATION else ids
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    timings = []
    for _ in range(1 + TIMED_STEPS):
        start = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings.append(time.perf_counter() - start)
    model.eval()
    reads = []
    with torch.inference_mode():
        for _ in range(TIMED_STEPS):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            reads.append(time.perf_counter() - start)
    cost = Cost(
        teacher=teacher,
        task=task,
        seconds_per_step=round(sum(timings[1:]) / TIMED_STEPS, 3),
        seconds_per_read=round(sum(reads) / TIMED_STEPS, 3),
        head_only=task == Task.CLASSIFICATION and decoder_classifier(model),
        batch=BATCH,
        length=LENGTH,
        machine=machine(),
        measured_at=time.strftime("%Y-%m-%d"),
    )
    _remember(cost)
    return cost


def _remember(cost: Cost) -> None:
    store = _store()
    try:
        rows = json.loads(store.read_text())
    except (OSError, ValueError):
        rows = {}
    rows[_key(cost.teacher, cost.task)] = asdict(cost)
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, store)
