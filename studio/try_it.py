"""Try a model of a run on one text, as its users will meet it: the label and how sure it is, or the answer it
writes. The Try-it boxes of the browser ask this; the model is found by name like everywhere else
(RunPaths.find_model) and kept loaded for the next text."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from studio.answers import confidences, generate_answers
from studio.errors import ConfigError
from studio.hand_over import hand_over_words
from studio.models import load_for_task, load_tokenizer
from studio.run import RunPaths
from studio.teacher import resolve_source
from studio.words import Task

LONGEST = 4000
"""Characters of one tried text (a classifier reads only its first max_length tokens anyway)."""


@dataclass
class Tried:
    name: str
    label: str | None = None
    confidence: float | None = None
    """The classifier's probability of its label, or how sure a text generator is of its answer (0-1)."""
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    answer: str | None = None
    """A text generator's answer."""
    hand_over: float | None = None
    """The confidence below which the teacher would be asked (measured when the run was evaluated)."""

    def words(self) -> str:
        if self.answer is not None:
            said = f"**{self.name}** writes: {self.answer or '(nothing)'}"
            asked = hand_over_words(self.confidence, self.hand_over, generator=True) if self.confidence is not None else ""
            return f"{said}\n\n{asked}" if asked else said
        others = ", ".join(f"{label} {p:.0%}" for label, p in self.runners_up)
        said = f"**{self.name}** says **{self.label}**, {self.confidence:.0%} sure" + (f" (then {others})" if others else "")
        asked = hand_over_words(self.confidence, self.hand_over)
        return f"{said}. {asked}" if asked else said


@functools.lru_cache(maxsize=3)
def _loaded(folder: str, stamp: int, manifest: bool, task: str, labels: tuple[str, ...]):
    """(model, tokenizer), loaded once per model folder as it is now (a variant made again has a new stamp)."""
    if manifest:
        from studio.compress.variant import load_variant  # the web process starts without peft/bitsandbytes (LAZY)

        made = load_variant(folder)
        return made.model, made.tokenizer
    source = resolve_source(folder)
    return load_for_task(source, task, list(labels)).eval(), load_tokenizer(source)


def hand_over_of(run: RunPaths, name: str) -> float | None:
    """The hand-over threshold evaluation measured for ``name`` (the newest report that has it), if any."""
    reports = sorted(
        (p for p in (run.root / "compare.json", run.root / "eval.json") if p.exists()), key=lambda p: -p.stat().st_mtime
    )
    for path in reports:
        try:
            rows = json.loads(path.read_text()).get("models") or []
        except (OSError, ValueError, AttributeError):
            continue  # a report being rewritten, or damaged: no statement rather than a wrong one
        for row in rows:
            if isinstance(row, dict) and row.get("name") == name and row.get("hand_over_threshold") is not None:
                return float(row["hand_over_threshold"])
    return None


def try_model(run_dir: str | Path, name: str, text: str) -> Tried:
    """``name`` (student, teacher or a variant of the run) on ``text``."""
    text = (text or "").strip()[:LONGEST]
    if not text:
        raise ConfigError(["type a text to try the model on"])
    run = RunPaths(run_dir)
    found = run.find_model(name)
    config = run.read_config()
    task, labels = config["task"], tuple(config.get("labels") or [])
    stamp = found.folder.stat().st_mtime_ns
    model, tokenizer = _loaded(str(found.folder), stamp, found.manifest is not None, task, labels)
    if task == Task.CAUSAL_LM:
        asked = [{"prompt": text}]
        answer = generate_answers(model, tokenizer, asked)[0]
        try:
            sure = confidences(model, tokenizer, asked, [answer])[0] if answer.strip() else None
        except (TypeError, AttributeError, RuntimeError, ValueError):  # a form that cannot score a whole text (ONNX)
            sure = None
        return Tried(name, answer=answer, confidence=sure, hand_over=hand_over_of(run, name))
    encoded = tokenizer([text], truncation=True, max_length=256, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        probabilities = model(**encoded).logits.float().softmax(-1)[0].cpu()
    best = probabilities.topk(min(3, len(labels)))
    ranked = [(labels[i], float(p)) for p, i in zip(best.values.tolist(), best.indices.tolist())]
    return Tried(name, ranked[0][0], ranked[0][1], ranked[1:], hand_over=hand_over_of(run, name))
