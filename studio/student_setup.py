"""Student step: the smaller model that learns, built from the teacher or loaded from the catalog.

setup_student   layer-drop copy of the teacher (or a catalog model), optional vocabulary trim, LoRA or QLoRA
probe_student   text generators: rank the teacher's layers, try candidate depths, keep the smallest that works
merged          the trained student as one plain model (LoRA merged; QLoRA merged into its float base)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import generator, ranks
from studio.batches import iter_batches
from studio.bnb import Bnb4bitSettings, bnb_config, bnb_device, bnb_unsupported
from studio.dataset import PreparedDataset
from studio.distill_config import ENCODER_STUDENT, DistillConfig
from studio.distill_plan import RunPlan
from studio.errors import ConfigError
from studio.models import SAFE_LOAD, auto_class, load_causal_lm, load_classifier, load_tokenizer, save_model
from studio.paths import is_saved
from studio.progress import Progress, ProgressFn, report
from studio.run import RunPaths
from studio.stages import Stage, run_stage
from studio.student import copy_with_layers, layer_drop_student, same_tokenizer, trim_vocabulary
from studio.teacher import resolve_source
from studio.teacher_head import decoder_classifier
from studio.words import Task


def setup_student(
    config: DistillConfig,
    teacher: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    dataset: PreparedDataset,
    run: RunPaths,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Build the student. Returns (model, its tokenizer, kd_mode)."""
    task = dataset.report.task
    # a text generator (or an asked teacher: None) teaches a classifier: the student is a pretrained encoder
    encoder_for_generator = (
        config.student is None and task == Task.CLASSIFICATION and (teacher is None or decoder_classifier(teacher))
    )
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
        student = with_lora(student, config, task)
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
    if not ranks.gathered(is_saved(run.root / "student_base"))[0]:  # the main process's view: all save, or none
        save_model(student, tokenizer, run.root / "student_base")
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


def with_lora(model: PreTrainedModel, config: DistillConfig, task: str) -> PreTrainedModel:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS if task == Task.CLASSIFICATION else TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
    )
    return get_peft_model(model, lora)


def merged(student: torch.nn.Module, config: DistillConfig, run: RunPaths, task: str) -> PreTrainedModel:
    if config.qlora:
        return _merge_into_float_base(student, run, task)
    return student.merge_and_unload() if config.lora else student


def auto_layers(task: str, teacher: PreTrainedModel) -> int:
    """student_layers 0 without a probe: 3 for a classifier, a third of a text generator's layers."""
    return 3 if task == Task.CLASSIFICATION else max(1, teacher.config.num_hidden_layers // 3)


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
