"""Distill step: teacher -> cached logits -> student, read top to bottom.

    setup_teacher   load it; for classification without a head for the user's labels, fine-tune it
    setup_student   layer-drop copy of the teacher (or a catalog model), optional vocab trim, LoRA
    cache_teacher   run the teacher once over the training split and keep its logits on disk
    train_loop      epochs of KD on the cached logits; a checkpoint after each epoch; resumable

Everything lands in one run folder: config.json (written before anything runs), teacher/,
cache/, checkpoints/, student/ and metrics.jsonl (one line per step, append-only).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from studio.batches import encode_records, iter_batches, model_inputs, prompt_text
from studio.dataset import PreparedDataset
from studio.errors import CheckpointError, ConfigError, StopRequested
from studio.losses import causal_kd_loss, classification_kd_loss, next_token_ce
from studio.settings import Check, Settings
from studio.student import layer_drop_student, same_tokenizer, trim_vocabulary
from studio.teacher import SAFE_LOAD, load_causal_lm, load_classifier, load_tokenizer, resolve_source


@dataclass
class DistillConfig(Settings):
    """Settings of one distillation run. Stored as JSON; unknown keys are an error."""

    teacher: str = "minilm-l6"
    """Catalog key, local model folder, or hub id (online only)."""
    student: str | None = None
    """None builds the student from the teacher's layers; else a catalog key or folder."""
    student_layers: int = 3
    """Layers kept from the teacher. Fewer is smaller and faster, but learns less."""
    trim_vocab: bool = True
    """Classification only: drop vocabulary rows the data never uses (halves a small encoder)."""
    temperature: float = 2.0
    """Softens the teacher's distribution; 1-4 is usual. Higher passes on more 'dark knowledge'."""
    alpha: float = 0.5
    """Weight of the teacher's soft targets vs the true labels (0 = labels only, 1 = teacher only)."""
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    """Student learning rate; LoRA usually wants ~5x more than full fine-tuning."""
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 128
    """Tokens read per example; longer texts are cut. Cost grows with it."""
    lora: bool = False
    """Train small LoRA adapters instead of all student weights (merged at the end)."""
    qlora: bool = False
    """QLoRA: keep the student's base weights in 4-bit NF4 while LoRA trains (needs bitsandbytes; implies
    lora). Uses far less memory for big students; on a CPU each step is slower, not faster."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    teacher_epochs: int = 3
    """Classification: epochs to fine-tune a teacher that has no head for your labels."""
    teacher_learning_rate: float = 5e-5
    top_k: int = 32
    """Causal LM: teacher logits kept per position in the cache. More is closer, but larger."""
    seed: int = 13
    threads: int = 0
    """CPU threads; 0 uses every core."""

    def checks(self) -> list[Check]:
        return [
            ("student_layers", 1 <= self.student_layers <= 64, "a whole number from 1 to 64"),
            ("temperature", 0.5 <= self.temperature <= 20, "from 0.5 to 20 (2 is a good start)"),
            ("alpha", 0.0 <= self.alpha <= 1.0, "from 0 to 1"),
            ("epochs", 1 <= self.epochs <= 100, "from 1 to 100"),
            ("batch_size", 1 <= self.batch_size <= 1024, "from 1 to 1024"),
            ("learning_rate", 0 < self.learning_rate <= 0.1, "above 0 and at most 0.1"),
            ("teacher_learning_rate", 0 < self.teacher_learning_rate <= 0.1, "above 0 and at most 0.1"),
            ("weight_decay", 0 <= self.weight_decay <= 1, "from 0 to 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "from 0 to below 1"),
            ("max_length", 8 <= self.max_length <= 8192, "from 8 to 8192"),
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
class Progress:
    """One progress report: stage is 'teacher', 'cache' or 'student'."""

    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float | None = None
    message: str = ""
    global_step: int | None = None
    """Training steps done in this stage, across epochs (what a loss curve's x axis counts)."""
    lr: float | None = None
    restart_step: int | None = None
    """Set once when a training stage starts: the step it starts after (0, or its checkpoint's)."""


ProgressFn = Callable[[Progress], None]


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


class RunPaths:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.teacher = self.root / "teacher"
        self.cache = self.root / "cache" / "teacher_logits.safetensors"
        self.checkpoints = self.root / "checkpoints"
        self.student = self.root / "student"
        self.metrics = self.root / "metrics.jsonl"


def _report(on_progress: ProgressFn | None, progress: Progress) -> None:
    if on_progress is not None:
        on_progress(progress)


# --------------------------------------------------------------------------- teacher


def setup_teacher(config: DistillConfig, dataset: PreparedDataset, run: RunPaths,
                  on_progress: ProgressFn | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load the teacher; a classifier without a head for these labels is fine-tuned first and saved.

    Returns (model, tokenizer, where the teacher lives: its own folder, or run/teacher if fine-tuned).
    """
    if (run.teacher / "studio_ready").exists():
        source = resolve_source(str(run.teacher))
    else:
        source = resolve_source(config.teacher)
    tokenizer = load_tokenizer(source)
    if dataset.report.task == "causal_lm":
        return load_causal_lm(source), tokenizer, source.path
    labels = dataset.report.labels
    model, ready = load_classifier(source, labels)
    if not ready:
        if config.teacher_epochs == 0:
            raise ConfigError(["teacher_epochs is 0, but the teacher has no head for your labels; "
                               "allow at least 1 epoch so it can learn them"])
        items = encode_records(dataset.split("train"), tokenizer, config.max_length, _label_ids(labels))
        train_loop(model, items, _ce_loss, config, run.root / "checkpoints" / "teacher", "teacher",
                   lr=config.teacher_learning_rate, epochs=config.teacher_epochs,
                   pad_id=tokenizer.pad_token_id, metrics=run.metrics, on_progress=on_progress)
        _save_model(model, tokenizer, run.teacher)
        return model, tokenizer, str(run.teacher)
    return model, tokenizer, source.path


def _label_ids(labels: list[str]) -> dict[str, int]:
    return {label: i for i, label in enumerate(labels)}


def _ce_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(**model_inputs(batch, model.device)).logits,
                                             batch["labels"].to(model.device))


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
    if config.student:
        source = resolve_source(config.student)
        student_tok = load_tokenizer(source)
        if task == "classification":
            student, _ = load_classifier(source, dataset.report.labels)
        else:
            student = load_causal_lm(source)
        same = same_tokenizer(tokenizer, student_tok)
        kd_mode = "logits" if task == "classification" or same else "sequence"
    else:
        student, student_tok, kd_mode = layer_drop_student(teacher, config.student_layers), tokenizer, "logits"
    if task == "classification" and config.trim_vocab:
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

    from studio.compress.quantize import Bnb4bitSettings, bnb_config, bnb_device, bnb_unsupported
    from studio.compress.variant import auto_class

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

    from studio.compress.variant import auto_class

    base = auto_class(task).from_pretrained(run.root / "student_base", **SAFE_LOAD)
    float_model = get_peft_model(base, trained.peft_config["default"])
    set_peft_model_state_dict(float_model, get_peft_model_state_dict(trained))
    return float_model.merge_and_unload()


def _with_lora(model: PreTrainedModel, config: DistillConfig, task: str) -> PreTrainedModel:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS if task == "classification" else TaskType.CAUSAL_LM,
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
    pad_to = config.max_length if task == "causal_lm" else None
    with torch.inference_mode():
        for step, batch in enumerate(iter_batches(items, config.batch_size, pad_id, pad_to=pad_to)):
            logits = teacher(**model_inputs(batch, teacher.device)).logits.float().cpu()
            if task == "classification":
                out["logits"].append(logits)
            else:
                values, indices = logits.topk(config.top_k, dim=-1)
                out["top_values"].append(values.half())
                out["top_indices"].append(indices.int())
            _report(on_progress, Progress("cache", 1, 1, step + 1, steps))
    tensors = {k: torch.cat(v) for k, v in out.items() if v}
    meta = json.dumps({"fingerprint": fingerprint}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({**tensors, "meta": torch.tensor(list(meta), dtype=torch.uint8)}, str(tmp))
    os.replace(tmp, path)
    return tensors


# --------------------------------------------------------------------------- training loop


@dataclass
class Position:
    """Where training stands: epochs finished, and batches done in the epoch under way."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def train_loop(model: torch.nn.Module, items: list[dict], loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
               config: DistillConfig, checkpoint_dir: Path, stage: str, *, lr: float, epochs: int, pad_id: int,
               metrics: Path, on_progress: ProgressFn | None = None, pad_to: int | None = None,
               checkpoint_every_s: float | None = None) -> list[float]:
    """Plain epochs of AdamW with linear warmup/decay; resumable from the last checkpoint.

    A checkpoint is saved after each epoch, every `checkpoint_every_s` seconds mid-epoch, and when the
    progress callback raises StopRequested (a cancel: the step under way finishes, is saved, then the
    exception goes on up). Batch order is seeded per epoch, so a resumed epoch skips exactly the batches
    already trained. Returns the wall-clock seconds of each epoch run in this call.
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(items) / config.batch_size)
    total = steps_per_epoch * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)
    at = _load_checkpoint(checkpoint_dir, model, optimizer, scheduler)
    _forget_steps_after(metrics, stage, at.global_step)
    _report(on_progress, Progress(stage, min(at.epoch + 1, epochs), epochs, at.step_in_epoch, steps_per_epoch,
                                  global_step=at.global_step, restart_step=at.global_step))
    model, optimizer = accelerator.prepare(model, optimizer)

    def save(position: Position) -> None:
        _save_checkpoint(checkpoint_dir, accelerator.unwrap_model(model), optimizer, scheduler, position)

    seconds = []
    last_save = time.monotonic()
    with metrics.open("a", encoding="utf-8") as log:
        for epoch in range(at.epoch, epochs):
            model.train()
            started = time.perf_counter()
            skip = at.step_in_epoch if epoch == at.epoch else 0
            batches = iter_batches(items, config.batch_size, pad_id, seed=config.seed + epoch, pad_to=pad_to)
            for step, batch in enumerate(batches):
                if step < skip:
                    continue
                loss = loss_fn(model, batch)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                value, rate = loss.item(), scheduler.get_last_lr()[0]
                global_step = epoch * steps_per_epoch + step + 1
                log.write(json.dumps({"stage": stage, "epoch": epoch + 1, "step": global_step,
                                      "loss": round(value, 6), "lr": rate, "time": time.time()}) + "\n")
                here = Position(epoch, step + 1, global_step)
                try:
                    _report(on_progress, Progress(stage, epoch + 1, epochs, step + 1, steps_per_epoch, value,
                                                  global_step=global_step, lr=rate))
                except StopRequested:
                    log.flush()
                    save(here)
                    raise
                if checkpoint_every_s and time.monotonic() - last_save >= checkpoint_every_s and step + 1 < steps_per_epoch:
                    log.flush()
                    save(here)
                    last_save = time.monotonic()
            log.flush()
            seconds.append(time.perf_counter() - started)
            save(Position(epoch + 1, 0, (epoch + 1) * steps_per_epoch))
            last_save = time.monotonic()
    return seconds


def _forget_steps_after(metrics: Path, stage: str, step: int) -> None:
    """Drop the log lines of steps after the checkpoint: a resumed run trains them again."""
    if not metrics.exists():
        return
    lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not _after(line, stage, step)]
    if len(kept) != len(lines):
        tmp = metrics.with_suffix(".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, metrics)


def _after(line: str, stage: str, step: int) -> bool:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return True  # half a line written as the process died
    return row.get("stage") == stage and row.get("step", 0) > step


def _save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: object, at: Position) -> None:
    target = folder / f"step-{at.global_step}"
    tmp = folder / f".step-{at.global_step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(at)))
    _fsync_folder(tmp)  # on disk before it gets its real name: a power cut leaves it whole or absent
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    _fsync_folder(folder, files=False)
    for old in _checkpoints(folder)[:-2]:  # keep this one and the one before it
        shutil.rmtree(old, ignore_errors=True)


def _fsync_folder(folder: Path, files: bool = True) -> None:
    for path in folder.iterdir() if files else []:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    done = [p for p in folder.glob("step-*") if p.name[5:].isdigit() and (p / "state.json").exists()]
    return sorted(done, key=lambda p: int(p.name[5:]))


def latest_checkpoint(folder: Path) -> Path | None:
    done = _checkpoints(folder)
    return done[-1] if done else None


def _load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: object) -> Position:
    """The newest checkpoint that loads; an unreadable one (e.g. cut short by a crash) falls back to the
    one before it, which is always kept."""
    problems = []
    for checkpoint in reversed(_checkpoints(folder)):
        try:
            load_model(model, str(checkpoint / "model.safetensors"))
            # weights_only: our own file, but never unpickle arbitrary objects.
            state = torch.load(checkpoint / "optimizer.pt", weights_only=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            return Position(**json.loads((checkpoint / "state.json").read_text()))
        except (RuntimeError, OSError, KeyError, ValueError, TypeError) as err:
            problems.append(f"{checkpoint.name}: {err}")
    if problems:
        raise CheckpointError(f"No checkpoint in {folder} matches this run ({'; '.join(problems)}). "
                              "Start a new run, or delete the checkpoints folder to train from the start.")
    return Position()


# --------------------------------------------------------------------------- the whole step


def write_run_config(run: RunPaths, config: DistillConfig, dataset: PreparedDataset, resume: bool) -> None:
    """Resolved config next to the outputs, before anything runs; a resumed run must match it."""
    resolved = {"distill": config.to_dict(), "dataset": str(dataset.path), "task": dataset.report.task,
                "labels": dataset.report.labels}
    if run.config.exists():
        previous = json.loads(run.config.read_text())
        if resume and previous["distill"] != resolved["distill"]:
            changed = sorted(k for k in resolved["distill"] if previous["distill"].get(k) != resolved["distill"][k])
            raise CheckpointError(f"This run was started with other settings ({', '.join(changed)}); "
                                  "resume it with the same settings, or start a new run folder.")
        if not resume:
            raise CheckpointError(f"{run.root} already holds a run. Resume it (--resume) or choose a new folder.")
    run.root.mkdir(parents=True, exist_ok=True)
    run.config.write_text(json.dumps(resolved, indent=2))


def distill(config: DistillConfig, dataset: PreparedDataset, run_dir: str | Path,
            on_progress: ProgressFn | None = None, resume: bool = False,
            checkpoint_every_s: float | None = None) -> DistillResult:
    """Run the whole distillation; with ``resume`` pick up after the last checkpoint.

    Checkpoints come after each epoch, and also every `checkpoint_every_s` seconds within one."""
    run = RunPaths(run_dir)
    write_run_config(run, config, dataset, resume)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or cpu_threads())
    task = dataset.report.task

    teacher, tokenizer, teacher_dir = setup_teacher(config, dataset, run, on_progress)
    (run.root / "teacher.json").write_text(json.dumps({"path": teacher_dir, "name": config.teacher}))
    student, student_tok, kd_mode = setup_student(config, teacher, tokenizer, dataset, run)
    records = dataset.split("train")
    if kd_mode == "sequence":
        _report(on_progress, Progress("cache", 1, 1, 0, 1, message="Teacher and student use different "
                                      "tokenizers: the student learns from text the teacher writes."))
        records = teacher_written(teacher, tokenizer, records, config)

    label_ids = _label_ids(dataset.report.labels) if task == "classification" else None
    teacher_items = encode_records(records, tokenizer, config.max_length, label_ids)
    fingerprint = json.dumps([config.teacher, teacher_dir, dataset.report.split_sizes, config.max_length,
                              config.top_k, task, kd_mode])
    started = time.perf_counter()
    cache = {} if kd_mode == "sequence" else cache_teacher(
        teacher, teacher_items, config, task, tokenizer.pad_token_id, run.cache, fingerprint, on_progress)
    cache_seconds = time.perf_counter() - started
    del teacher

    items = encode_records(records, student_tok, config.max_length, label_ids)
    loss_fn = make_kd_loss(task, cache, config.temperature, config.alpha if kd_mode == "logits" else 0.0)
    seconds = train_loop(student, items, loss_fn, config, run.checkpoints / "student", "student",
                         lr=config.learning_rate, epochs=config.epochs, pad_id=student_tok.pad_token_id,
                         metrics=run.metrics, on_progress=on_progress,
                         pad_to=config.max_length if task == "causal_lm" else None,
                         checkpoint_every_s=checkpoint_every_s)
    if config.qlora:
        student = _merge_into_float_base(student, run, task)
    elif config.lora:
        student = student.merge_and_unload()
    _save_model(student, student_tok, run.student)
    return DistillResult(run.root, task, teacher_dir, run.student, kd_mode, seconds, cache_seconds)


def cpu_threads() -> int:
    """Every core, unless the worker shares them out among parallel jobs (SLM_STUDIO_THREADS)."""
    shared = os.environ.get("SLM_STUDIO_THREADS", "")
    return int(shared) if shared.isdigit() and int(shared) > 0 else os.cpu_count() or 1


def make_kd_loss(task: str, cache: dict, temperature: float, alpha: float) -> Callable:
    """The per-batch loss: soft targets come from the cache by item index, never from the teacher."""

    def classification(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        logits = model(**model_inputs(batch, model.device)).logits
        soft = cache["logits"][batch["index"]].to(model.device) if alpha > 0 else logits.detach()
        return classification_kd_loss(logits, soft, batch["labels"].to(model.device), temperature, alpha)

    def causal(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        inputs = model_inputs(batch, model.device)
        logits = model(**inputs).logits
        if alpha == 0:
            return next_token_ce(logits, inputs["input_ids"], inputs["attention_mask"])
        index = batch["index"]
        return causal_kd_loss(logits, inputs["input_ids"], inputs["attention_mask"],
                              cache["top_values"][index].to(model.device),
                              cache["top_indices"][index].to(model.device), temperature, alpha)

    return classification if task == "classification" else causal


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
                words = record["text"].split()
                written.append({"text": " ".join(words[: max(1, len(words) // 3)]) + " " + answer.strip()})
    tokenizer.padding_side = "right"
    return written
