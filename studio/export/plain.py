"""The chosen model as a plain Hugging Face folder: loadable with ``AutoModelFor...from_pretrained``
and nothing of ours installed.

Most variants already are one. Two need work: sparse weights are written dense, and structurally
pruned models (fewer heads or MLP neurons in some layers than a config can say) get zero units
added back up to a shape the config describes. Zero units change no prediction, and in the zip
they compress to almost nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import PreTrainedModel

from studio import model_parts as parts
from studio.compress.base import WorkingModel
from studio.errors import ModelLoadError

HF_SUFFIXES = {".json", ".safetensors", ".txt", ".model", ".jinja"}
"""Files a Hugging Face model folder needs; anything else (pickles above all) is never copied."""
OURS = {"variant.json", "recipe.json"}


def copy_hf_folder(source: Path, dest: Path) -> None:
    """Copy a plain model folder's own files (config, safetensors weights, tokenizer)."""
    if not any(source.glob("*.safetensors")):
        raise ModelLoadError(
            f"{source} has no safetensors weights, so it cannot be exported; convert the model to safetensors first."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        if file.is_file() and file.suffix in HF_SUFFIXES and file.name not in OURS:
            shutil.copy2(file, dest / file.name)


def plain_model(wm: WorkingModel) -> tuple[PreTrainedModel, list[str]]:
    """The torch-form model with shapes its config describes (pruned units padded back with zeros)."""
    model, notes = wm.model, []
    if not wm.structure:
        return model, notes
    layers = parts.layer_list(model)
    units = [parts.attention(layer).units for layer in layers]
    neurons = [parts.mlp_width(layer) for layer in layers]
    first = parts.attention(layers[0])
    llama = hasattr(layers[0], "self_attn")
    # Llama configs name the head count and head size apart, so kept heads can shrink the config;
    # BERT derives head size from hidden size / heads, so its head count must stay as it was.
    unit_target = max(units) if llama else model.config.num_attention_heads
    neuron_target = max(neurons)
    for layer, u, n in zip(layers, units, neurons):
        if u < unit_target:
            parts.pad_head_units(layer, unit_target)
        if n < neuron_target:
            parts.pad_neurons(layer, neuron_target)
    model.config.intermediate_size = neuron_target
    if llama:
        model.config.head_dim = first.head_dim
        model.config.num_key_value_heads = unit_target
        model.config.num_attention_heads = unit_target * first.group
    added_units = sum(unit_target - u for u in units)
    added_neurons = sum(neuron_target - n for n in neurons)
    if added_units or added_neurons:
        notes.append(
            f"Layers were pruned unevenly: {added_units} zero head unit(s) and {added_neurons} zero MLP "
            "neuron(s) were added back so the config describes every layer. They change no prediction "
            "and compress to almost nothing in the zip, but the unzipped safetensors file is larger "
            "than the variant's own."
        )
    return model, notes


def same_predictions(
    reference: torch.nn.Module, copy: torch.nn.Module, inputs: dict[str, torch.Tensor], what: str, atol: float = 1e-3
) -> float:
    """Check an exported copy answers like the model it came from; the largest logit difference."""
    with torch.inference_mode():
        want = reference(**inputs).logits.float()
        got = copy(**inputs).logits.float()
    mask = inputs["attention_mask"].bool()
    if want.dim() == 3:  # causal LM: compare real (unpadded) positions only
        want, got = want[mask], got[mask]
    diff = float((want - got).abs().max())
    scale = float(want.abs().max()) or 1.0
    if diff > atol * max(1.0, scale):
        raise ModelLoadError(
            f"The exported {what} answers differently from the model it came from (largest "
            f"logit difference {diff:.4g}). The export was stopped; please report this."
        )
    return diff
