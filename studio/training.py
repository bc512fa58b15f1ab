"""The training loop every stage shares (teacher fine-tune, KD, healing), read top to bottom.

    StepPlan       how long: a budget in optimizer steps (small data still gets enough of them),
                   how often to validate, how patient to be
    train_loop     AdamW with linear warmup/decay; validates on the validation split, keeps the best
                   weights, stops early when validation stops improving; checkpoints and resumes
    make_kd_loss   the per-batch loss, with the teacher's soft targets read from the logit cache

What "better" means is studio/validation.py; checkpoints are studio/checkpoints.py. A checkpoint (weights,
optimizer, scheduler, position) is written at each validation, every `checkpoint_every_s` seconds, and when
a cancel arrives; a resumed run skips exactly the batches
already trained, and keeps the best weights and the early-stopping count it had.

In a job of N processes (studio/ranks.py) each step's batch is the same global batch as in one process, and
each process trains on its part of its rows; accelerate's DistributedDataParallel averages the gradients, so N
processes take the same steps as one (up to rounding), and a checkpoint from N processes resumes in any number.
Only the main process writes checkpoints and the log and reports progress; a stop is decided by all together.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import get_linear_schedule_with_warmup

from studio import ranks
from studio.batches import iter_batches, model_inputs
from studio.checkpoints import (
    Position,
    load_best,
    load_checkpoint,
    save_best,
    save_checkpoint,
)
from studio.errors import StopRequested
from studio.losses import causal_kd_loss, classification_kd_loss, next_token_ce
from studio.progress import Progress, ProgressFn, report
from studio.step_plan import StepPlan
from studio.validation import Validator
from studio.words import Task


@dataclass
class TrainResult:
    seconds: list[float] = field(default_factory=list)
    """Wall-clock seconds of each epoch run in this call."""
    steps: int = 0
    best_step: int = 0
    best_score: float | None = None
    stopped_early: bool = False


def train_loop(
    model: torch.nn.Module,
    items: list[dict],
    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
    checkpoint_dir: Path,
    stage: str,
    *,
    label: str = "",
    plan: StepPlan,
    lr: float,
    batch_size: int,
    pad_id: int,
    metrics: Path,
    seed: int,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.06,
    validate: Validator | None = None,
    on_progress: ProgressFn | None = None,
    pad_to: int | None = None,
    checkpoint_every_s: float | None = None,
    pause_at: int | None = None,
) -> TrainResult:
    """Train ``plan.steps`` steps (or fewer, stopping early); the model ends with its best validated weights.

    ``pause_at`` stops after that step with a checkpoint, leaving the rest of the schedule for a later call
    (a learning-rate trial runs the first steps of the very schedule its winner then finishes).
    """
    ranks.join()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(plan.steps * warmup_ratio), plan.steps)
    at = load_checkpoint(checkpoint_dir, model, optimizer, scheduler)
    ranks.on_main(lambda: _forget_steps_after(metrics, stage, label, at.global_step))
    per_epoch, epochs = plan.steps_per_epoch, plan.epochs
    done_epochs, in_epoch = divmod(at.global_step, per_epoch)
    report(
        on_progress,
        Progress(
            stage,
            min(done_epochs + 1, epochs),
            epochs,
            in_epoch,
            per_epoch,
            global_step=at.global_step,
            restart_step=at.global_step,
            label=label,
        ),
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    inner = accelerator.unwrap_model(model)
    result = TrainResult()
    last = min(plan.steps, pause_at or plan.steps)

    def save(position: Position) -> None:
        if ranks.is_main():
            save_checkpoint(checkpoint_dir, inner, optimizer, scheduler, position)

    def check(position: Position, log) -> None:
        """Validate, keep the best weights, count towards patience."""
        if validate is None:
            return
        _validation_mode(inner)
        measured = validate(inner)
        inner.train()
        key = list(measured.key())
        if position.best_key is None or key > position.best_key:
            if ranks.is_main():
                save_best(checkpoint_dir, inner, position.global_step)
            position.best_step, position.best_key, position.best_score, position.waited = (
                position.global_step,
                key,
                measured.score,
                0,
            )
        else:
            position.waited += 1
        log.write(
            json.dumps(
                {
                    "stage": stage,
                    "label": label,
                    "step": position.global_step,
                    "validation": round(measured.score, 6),
                    "validation_loss": round(measured.loss, 6),
                    "time": time.time(),
                }
            )
            + "\n"
        )
        said = Progress(
            stage,
            position.epoch + 1,
            epochs,
            position.step_in_epoch,
            per_epoch,
            global_step=position.global_step,
            validation=measured.score,
            label=label,
        )
        stop_together(said, position, log)

    def stop_together(said: Progress, position: Position, log) -> None:
        """Report; a stop asked for (on any process) stops every process here, after saving this step."""
        try:
            report(on_progress, said)
            asked_to_stop = False
        except StopRequested:
            asked_to_stop = True
        if ranks.any_rank(asked_to_stop):  # every process stops after the same step
            log.flush()
            save(position)
            raise StopRequested()

    last_save = time.monotonic()
    with metrics.open("a", encoding="utf-8") if ranks.is_main() else io.StringIO() as log:
        here = at
        while not here.stopped and here.global_step < last:
            epoch = here.global_step // per_epoch
            skip = here.global_step - epoch * per_epoch
            model.train()
            started = time.perf_counter()
            batches = iter_batches(items, batch_size, pad_id, seed=seed + epoch, pad_to=pad_to, by_length=pad_to is None)
            for step, batch in enumerate(batches):
                if step < skip:
                    continue
                rows, weight = my_rows(batch)
                loss = loss_fn(model, rows) * weight
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                value, rate = ranks.total(loss.item()) / ranks.world(), scheduler.get_last_lr()[0]
                here = Position(
                    **{**asdict(here), "epoch": epoch, "step_in_epoch": step + 1, "global_step": here.global_step + 1}
                )
                log.write(
                    json.dumps(
                        {
                            "stage": stage,
                            "label": label,
                            "epoch": epoch + 1,
                            "step": here.global_step,
                            "loss": round(value, 6),
                            "lr": rate,
                            "time": time.time(),
                        }
                    )
                    + "\n"
                )
                said = Progress(
                    stage, epoch + 1, epochs, step + 1, per_epoch, value, global_step=here.global_step, lr=rate, label=label
                )
                stop_together(said, here, log)
                at_end = here.global_step >= plan.steps
                if here.global_step % plan.eval_every == 0 or at_end or here.global_step == pause_at:
                    check(here, log)
                    here.stopped = at_end or bool(plan.patience and here.waited >= plan.patience)
                    log.flush()
                    save(here)
                    last_save = time.monotonic()
                elif checkpoint_every_s and time.monotonic() - last_save >= checkpoint_every_s:
                    log.flush()
                    save(here)
                    last_save = time.monotonic()
                if here.stopped or here.global_step >= last:
                    break
            result.seconds.append(time.perf_counter() - started)
            if not items:  # nothing to train on: never loop forever
                break
    ranks.barrier()  # the best weights are on disk before any process reads them
    if here.stopped:
        load_best(checkpoint_dir, inner, here.best_step)
    result.steps, result.best_step, result.best_score = here.global_step, here.best_step, here.best_score
    result.stopped_early = here.stopped and here.global_step < plan.steps
    return result


def my_rows(batch: dict) -> tuple[dict, float]:
    """This process's part of a global batch, and what its mean loss weighs so that the processes' gradients
    average to the whole batch's (parts differ by a row when the batch does not split evenly). A process left
    without a row runs one with weight 0: every process must take part in each step's gradient exchange."""
    if ranks.world() == 1:
        return batch, 1.0
    n = len(batch["index"])
    start, end = ranks.share(n)
    if end == start:
        return {k: v[:1] for k, v in batch.items()}, 0.0
    return {k: v[start:end] for k, v in batch.items()}, (end - start) * ranks.world() / n


def _validation_mode(model: torch.nn.Module) -> None:
    """eval() (no dropout), except bitsandbytes 4-bit layers: in eval mode on a CPU with AVX-512 BF16 they repack
    their weights for an inference kernel, mid-training, under the optimizer (and fail on narrow layers)."""
    model.eval()
    for module in model.modules():
        if type(module).__module__.startswith("bitsandbytes") and type(module).__name__.startswith("Linear"):
            module.training = True


def _forget_steps_after(metrics: Path, stage: str, label: str, step: int) -> None:
    """Drop the log lines of steps after the checkpoint: a resumed run trains them again."""
    if not metrics.exists():
        return
    lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not _after(line, stage, label, step)]
    if len(kept) != len(lines):
        tmp = metrics.with_suffix(".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, metrics)


def _after(line: str, stage: str, label: str, step: int) -> bool:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return True  # half a line written as the process died
    return row.get("stage") == stage and row.get("label", "") == label and row.get("step", 0) > step


def cpu_threads(asked: int = 0) -> int:
    """The threads asked for, else every core, unless the worker shares them out among parallel jobs
    (SLM_STUDIO_THREADS); a job of several processes on one machine shares them among its processes."""
    shared = os.environ.get("SLM_STUDIO_THREADS", "")
    cores = asked or (int(shared) if shared.isdigit() and int(shared) > 0 else os.cpu_count() or 1)
    return max(1, cores // ranks.local_world())


def make_kd_loss(task: str, cache: dict, temperature: float, alpha: float, class_weights: list[float] | None = None) -> Callable:
    """The per-batch loss: soft targets come from the cache by item index, never from the teacher."""
    weights = None if class_weights is None else torch.tensor(class_weights)

    def classification(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        logits = model(**model_inputs(batch, model.device)).logits
        soft = cache["logits"][batch["index"]].to(model.device) if alpha > 0 else logits.detach()
        return classification_kd_loss(logits, soft, batch["labels"].to(model.device), temperature, alpha, weights)

    def causal(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        inputs = model_inputs(batch, model.device)
        logits = model(**inputs).logits
        if alpha == 0:
            return next_token_ce(logits, inputs["input_ids"], inputs["attention_mask"])
        index, length = batch["index"], logits.shape[1]  # batches may be shorter than the cached max_length
        return causal_kd_loss(
            logits,
            inputs["input_ids"],
            inputs["attention_mask"],
            cache["top_values"][index, :length].to(model.device),
            cache["top_indices"][index, :length].to(model.device),
            temperature,
            alpha,
        )

    return classification if task == Task.CLASSIFICATION else causal
