"""Student step: build a smaller model from the teacher, or load one from the catalog.

A layer-dropped student copies the teacher's embeddings and every k-th layer (DistilBERT-style
initialisation), so it starts close to the teacher instead of from scratch. For classification
the student can also drop the vocabulary rows the user's data never uses: in a small encoder the
embedding table is half of all parameters, and the class logits the student learns from do not
depend on the vocabulary.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from studio import ranks
from studio.errors import ConfigError

LAYER_KEY = re.compile(r"\.(layer|layers|h|block)\.(\d+)\.")


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def select_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers to keep, always the first and the last.

    >>> select_layers(6, 3)
    [0, 2, 5]
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(
            [f"student_layers is {student_layers}; the teacher has {teacher_layers} layers, so choose 1 to {teacher_layers}"]
        )
    if student_layers == 1:
        return [teacher_layers - 1]
    step = (teacher_layers - 1) / (student_layers - 1)
    return sorted({round(i * step) for i in range(student_layers)})


def layer_drop_student(teacher: PreTrainedModel, student_layers: int) -> PreTrainedModel:
    """A copy of ``teacher`` that keeps only ``select_layers(...)`` of its layers."""
    return copy_with_layers(teacher, select_layers(teacher.config.num_hidden_layers, student_layers))


def copy_with_layers(teacher: PreTrainedModel, kept: list[int]) -> PreTrainedModel:
    """A copy of ``teacher`` with only the layers at indices ``kept`` (in order), weights copied."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(kept)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in kept]
    student = type(teacher)(config)
    state = {}
    for key, value in teacher.state_dict().items():
        match = LAYER_KEY.search(key)
        if match:
            index = int(match.group(2))
            if index not in kept:
                continue
            key = f"{key[: match.start(2)]}{kept.index(index)}{key[match.end(2) :]}"
        state[key] = value.detach().clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    tied = set(getattr(student, "_tied_weights_keys", None) or [])
    missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"layer-drop copy is incomplete: missing {missing[:5]}, unexpected {unexpected[:5]}")
    previous = getattr(teacher.config, "studio_kept_layers", None) or list(range(teacher.config.num_hidden_layers))
    student.config.studio_kept_layers = [previous[i] for i in kept]
    return student


def trim_vocabulary(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], out_dir: Path
) -> PreTrainedTokenizerBase | None:
    """Keep only the vocabulary the texts use (plus special and single-character tokens).

    Works for WordPiece tokenizers (BERT family). Words seen in ``texts`` tokenize exactly as
    before; unseen words are spelled with the kept pieces. Returns the new tokenizer, saved in
    ``out_dir``, or None when the tokenizer type is not supported (the model is left unchanged).
    """
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "WordPiece" or model.get_output_embeddings() is not None:
        return None
    vocab: dict[str, int] = spec["model"]["vocab"]
    used: set[int] = set(tokenizer.all_special_ids)
    used.update(i for t, i in vocab.items() if len(t.removeprefix("##")) == 1)
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 512:
            used.update(i for ids in tokenizer(batch)["input_ids"] for i in ids)
            batch = []
    if batch:
        used.update(i for ids in tokenizer(batch)["input_ids"] for i in ids)
    keep = sorted(used)
    new_id = {old: new for new, old in enumerate(keep)}
    token_of = {i: t for t, i in vocab.items()}
    spec["model"]["vocab"] = {token_of[old]: new for new, old in enumerate(keep)}
    for added in spec.get("added_tokens", []):
        added["id"] = new_id[added["id"]]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]

    def save() -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(out_dir)
        Tokenizer.from_str(json.dumps(spec)).save(str(out_dir / "tokenizer.json"))
        (out_dir / "vocab.txt").write_text("".join(token_of[i] + "\n" for i in keep), encoding="utf-8")

    ranks.on_main(save)  # one process writes; every process reads it back
    trimmed = AutoTokenizer.from_pretrained(out_dir, trust_remote_code=False)

    old = model.get_input_embeddings()
    rows = old.weight.detach()[torch.tensor(keep)].clone()
    model.set_input_embeddings(
        torch.nn.Embedding.from_pretrained(rows, freeze=False, padding_idx=new_id.get(tokenizer.pad_token_id))
    )
    model.config.vocab_size = len(keep)
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = new_id[tokenizer.pad_token_id]
    return trimmed


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Logit distillation over tokens needs both models to use one vocabulary."""
    return a.get_vocab() == b.get_vocab()
