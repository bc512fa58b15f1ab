"""What a text-generator student reads, and for how long.

generator_texts     the 'answers' recipe: the user's rows, the tuned teacher's own answers, general text
sequence_kd_texts   a student with another tokenizer: the teacher's written answers (sequence-level KD)
token_budget        the student's steps from a budget in tokens rather than epochs
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import generator, ranks
from studio.batches import prompt_text, question_of
from studio.dataset import PreparedDataset
from studio.distill_config import DistillConfig
from studio.distill_plan import RunPlan
from studio.models import load_causal_lm
from studio.progress import ProgressFn
from studio.run import RunPaths
from studio.stages import Stage
from studio.step_plan import StepPlan
from studio.teacher import resolve_source


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

    def write() -> list[dict]:
        rewriter = None if path.exists() else load_causal_lm(resolve_source(config.teacher))
        return generator.teacher_written(teacher, tokenizer, records, path, on_progress, rewriter)

    # the main process writes them (sampling may differ between devices), the others read its file
    written = ranks.main_first(write)
    share = generator.GENERAL_SHARE
    avoid = {question_of(r).strip().lower() for part in ("train", "validation", "test") for r in dataset.split(part)}
    general = generator.general_text(round((len(records) + len(written)) * share / (1 - share)), config.seed, avoid)
    plan.texts_written, plan.texts_general = len(written), len(general)
    return records + written + general


def sequence_kd_texts(
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


def token_budget(stage: Stage, config: DistillConfig) -> StepPlan:
    """The student's steps from a budget in tokens (kd_tokens), validated as usual."""
    steps = generator.kd_steps(stage.items, config.batch_size, config.kd_tokens or generator.KD_TOKENS)
    if config.max_steps:
        steps = min(steps, config.max_steps)
    per_epoch = stage.plan.steps_per_epoch
    return StepPlan(steps, per_epoch, min(max(per_epoch, 10), 50, steps), config.patience)
