"""Loading a model: where its files are, and the one safe way every stage loads them.

Safetensors only, never remote code, float32 unless a stage asks otherwise. The catalog (which teachers the
studio offers and how each is found) is ``studio.teacher``; this is what loads one once found.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from studio import ranks
from studio.errors import ModelLoadError
from studio.paths import READY
from studio.words import Task


@dataclass
class ModelSource:
    """Where a model's files are, after resolving what the user typed."""

    name: str
    path: str
    """A local folder, or a hub id when ``is_hub``."""
    is_hub: bool = False
    gguf_file: str | None = None


SAFE_LOAD = {"trust_remote_code": False, "use_safetensors": True, "dtype": torch.float32}


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Save to a temp folder and rename, so a crash never leaves a half-written model. (In a job of several
    processes the main one saves, and the others wait until it is on disk.)"""

    def save() -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / READY).write_text("complete\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    ranks.on_main(save)


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"The tokenizer of '{source.name}' could not be loaded ({err}).") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_classifier(source: ModelSource, labels: list[str]) -> tuple[PreTrainedModel, bool]:
    """Load a sequence classifier for ``labels``.

    Returns (model, ready): ready is True when the model already has a head for exactly these
    labels; otherwise a new head is attached and the model must be fine-tuned first.
    """
    try:
        config = AutoConfig.from_pretrained(source.path, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"'{source.name}' could not be loaded ({err}).") from err
    has_head = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    existing = [config.id2label[i] for i in sorted(config.id2label)] if has_head else []
    ready = has_head and existing == labels
    kwargs = dict(SAFE_LOAD)
    if not ready:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source.path, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"'{source.name}' cannot be used for classification ({err}).") from err
    return model, ready


def load_causal_lm(source: ModelSource) -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(source.path, **SAFE_LOAD)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"'{source.name}' cannot be loaded as a text generator ({err}).") from err


def load_for_task(source: ModelSource, task: str, labels: list[str]) -> PreTrainedModel:
    """The model of a finished run (its classification head already fits ``labels``) for its task."""
    return load_classifier(source, labels)[0] if task == Task.CLASSIFICATION else load_causal_lm(source)


def auto_class(task: str) -> type:
    return AutoModelForSequenceClassification if task == Task.CLASSIFICATION else AutoModelForCausalLM
