"""A variant on disk: weights in safetensors (or ONNX), the tokenizer, and a manifest that says
how to re-create the model in memory.

    variant.json   name, source, recipe (methods + settings), form, structure, status, notes
    config.json    the transformers config (labels included)
    model.safetensors | model.sparse.safetensors | model.onnx

Forms: 'torch' (plain transformers folder; loads with from_pretrained unless the manifest lists
a pruned structure or sparse weights), 'bnb' (bitsandbytes-quantized transformers folder),
'onnx' (ONNX Runtime graph). ``load_variant`` rebuilds any of them with the same predictions.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, PreTrainedModel

from studio import model_parts as parts
from studio.bnb import bnb_device
from studio.compress.base import WorkingModel
from studio.errors import ConfigError, ModelLoadError
from studio.models import SAFE_LOAD, ModelSource, auto_class, load_tokenizer
from studio.onnx import OnnxModel
from studio.run import VariantManifest, read_manifest
from studio.words import ModelForm

SPARSE_FILE = "model.sparse.safetensors"
SPARSE_MIN_ZEROS = 0.25
"""Store a matrix as bitmask + values only when enough of it is zero to save space."""


# --------------------------------------------------------------------------- sparse weights


def save_sparse(state: dict[str, torch.Tensor], path: Path) -> None:
    """Mostly-zero matrices as a packed bitmask plus their non-zero values; the rest dense."""
    tensors, sparse, seen = {}, {}, set()
    for name, tensor in state.items():
        if tensor.data_ptr() in seen:  # a tied copy (e.g. lm_head = embeddings): the loader re-ties it
            continue
        seen.add(tensor.data_ptr())
        tensor = tensor.detach().contiguous().cpu()
        mask = tensor != 0
        if tensor.dim() == 2 and 1 - mask.float().mean().item() >= SPARSE_MIN_ZEROS:
            tensors[f"{name}::mask"] = torch.from_numpy(np.packbits(mask.flatten().numpy()))
            tensors[f"{name}::values"] = tensor[mask]
            sparse[name] = list(tensor.shape)
        else:
            tensors[name] = tensor
    save_file(tensors, str(path), metadata={"sparse": json.dumps(sparse)})


def load_sparse(path: Path) -> dict[str, torch.Tensor]:
    state = {}
    with safe_open(str(path), framework="pt") as f:
        sparse = json.loads(f.metadata()["sparse"])
        for name, shape in sparse.items():
            values = f.get_tensor(f"{name}::values")
            bits = np.unpackbits(f.get_tensor(f"{name}::mask").numpy())[: int(np.prod(shape))]
            dense = torch.zeros(int(np.prod(shape)), dtype=values.dtype)
            dense[torch.from_numpy(bits.astype(bool))] = values
            state[name] = dense.reshape(shape)
        for key in f.keys():
            if "::" not in key:
                state[key] = f.get_tensor(key)
    return state


# --------------------------------------------------------------------------- save


def save_variant(wm: WorkingModel, folder: Path, manifest: VariantManifest) -> None:
    """Write the variant to a temp folder and rename it into place: never half-written."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if wm.form == ModelForm.ONNX:
            shutil.copy(wm.onnx_file, tmp / "model.onnx")
            wm.hf_config.save_pretrained(tmp)
        else:
            wm.model.save_pretrained(tmp)
        if wm.sparse and wm.form == ModelForm.TORCH:
            save_sparse(wm.model.state_dict(), tmp / SPARSE_FILE)
            for dense in tmp.glob("model*.safetensors"):
                if dense.name != SPARSE_FILE:
                    dense.unlink()
        wm.tokenizer.save_pretrained(tmp)
        if wm.form == ModelForm.ONNX and wm.float_source is not None:  # the pruned/healed float model, for export
            save_variant(wm.float_source, tmp / "float", replace(manifest, name=f"{manifest.name}-float"))
        replace(
            manifest,
            form=wm.form,
            task=wm.task,
            structure=wm.structure,
            sparse=wm.sparse,
            params=wm.params,
            notes=wm.notes,
            recreate=recreate_text(wm),
            dtype=_dtype(wm),
        ).write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _dtype(wm: WorkingModel) -> str:
    """'bfloat16' for a bf16 torch model (it must load as one to stay fast), else 'float32'."""
    if wm.form == ModelForm.TORCH and next(wm.model.parameters()).dtype == torch.bfloat16:
        return "bfloat16"
    return "float32"


def recreate_text(wm: WorkingModel) -> str:
    steps = {
        "onnx": "Open model.onnx with onnxruntime.InferenceSession; inputs input_ids and attention_mask (int64), output logits.",
        "bnb": "AutoModelFor...from_pretrained(folder, device_map='cpu' or 'cuda'); the bitsandbytes "
        "settings are in config.json (quantization_config).",
        "torch": "AutoModelFor...from_pretrained(folder).",
    }
    text = steps[wm.form]
    if wm.structure and wm.form == ModelForm.TORCH:
        text = (
            "Build the model from config.json, shrink each layer to the head units and MLP neurons listed "
            "in 'structure' (studio.model_parts.apply_structure), then load the weights."
        )
    if wm.sparse and wm.form == ModelForm.TORCH:
        text += (
            f" Weights are in {SPARSE_FILE}: for each '<name>::mask' (numpy.packbits of the non-zero "
            "positions) put '<name>::values' at those positions of a zero matrix of the shape in the "
            "file's 'sparse' metadata."
        )
    return text


# --------------------------------------------------------------------------- load


def load_variant(folder: str | Path, onnx_threads: int | None = None) -> WorkingModel:
    """Re-create a saved variant in memory, in the form it was saved (an ONNX one running each call on
    ``onnx_threads`` cores: default all)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    tokenizer = load_tokenizer(ModelSource(folder.name, str(folder)))
    task, form = manifest.task, manifest.form
    if form == ModelForm.ONNX:
        model = OnnxModel(folder / "model.onnx", task, onnx_threads)
    elif form == ModelForm.BNB:
        model = auto_class(task).from_pretrained(folder, device_map=bnb_device(), trust_remote_code=False, use_safetensors=True)
    else:
        model = _load_torch(folder, task, manifest)
    return WorkingModel(
        model,
        tokenizer,
        task,
        manifest.params,
        form,
        manifest.structure,
        manifest.sparse,
        list(manifest.notes),
        folder / "model.onnx" if form == ModelForm.ONNX else None,
        AutoConfig.from_pretrained(folder, trust_remote_code=False),
    )


def _load_torch(folder: Path, task: str, manifest: VariantManifest) -> PreTrainedModel:
    dtype = torch.bfloat16 if manifest.dtype == "bfloat16" else torch.float32
    if not manifest.structure and not manifest.sparse:
        return auto_class(task).from_pretrained(folder, **{**SAFE_LOAD, "dtype": dtype}).eval()
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    model = auto_class(task).from_config(config, dtype=torch.float32)
    if manifest.structure:
        parts.apply_structure(model, manifest.structure)
    if manifest.sparse:
        state = load_sparse(folder / SPARSE_FILE)
    else:
        from safetensors.torch import load_file

        state = {k: v for f in sorted(folder.glob("model*.safetensors")) for k, v in load_file(f).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if getattr(config, "tie_word_embeddings", False):
        missing = [k for k in missing if not k.endswith("lm_head.weight")]  # re-tied below
    if missing or unexpected:
        raise ModelLoadError(
            f"The weights in {folder} do not fit its manifest (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}). The variant is damaged: create it again."
        )
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.to(dtype).eval()


def describe_shape(wm: WorkingModel) -> dict:
    """What plan-time checks need to know about a model before any work runs."""
    try:
        structure = parts.structure_of(wm.model) if wm.form == ModelForm.TORCH else None
    except (ConfigError, AttributeError):  # an architecture we cannot prune structurally
        structure = None
    shape = {"form": wm.form, "structured": bool(wm.structure), "quantized": wm.form != ModelForm.TORCH}
    if structure:
        shape.update(structure)
    return shape
