"""Where the attention heads, MLP neurons and layers of a model are, and how to cut them out.

Structured pruning works on two families: BERT-style encoders (query/key/value/output, one key
head per query head) and Llama-style decoders (q/k/v/o projections with grouped key/value heads,
gated MLP). A "head unit" is one key/value head together with the query heads that share it, so
grouped-query attention stays consistent after pruning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from studio.errors import ConfigError


@dataclass
class Attention:
    module: nn.Module
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    o: nn.Linear
    head_dim: int
    units: int
    """Key/value heads; each carries ``group`` query heads."""
    group: int


@dataclass
class Mlp:
    inputs: list[str]
    """Attribute paths of the Linear layers whose output rows are the neurons."""
    output: str
    """Attribute path of the Linear layer whose input columns are the neurons."""
    owner: nn.Module


def layer_list(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "layers", "model.layers"):
        found = _get(base, path)
        if isinstance(found, nn.ModuleList):
            return found
    raise ConfigError(
        [
            f"structured pruning does not know the layers of a {type(model).__name__}; it supports "
            "BERT-style encoders and Llama-style decoders. Use magnitude pruning or quantization instead"
        ]
    )


def set_layer_list(model: nn.Module, layers: nn.ModuleList) -> None:
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "layers", "model.layers"):
        if isinstance(_get(base, path), nn.ModuleList):
            parent_path, _, name = path.rpartition(".")
            setattr(_get(base, parent_path) if parent_path else base, name, layers)
            return


def attention(layer: nn.Module) -> Attention:
    if hasattr(layer, "self_attn"):  # Llama family
        attn = layer.self_attn
        units = attn.k_proj.out_features // attn.head_dim
        return Attention(
            attn, attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, attn.head_dim, units, attn.num_key_value_groups
        )
    attn = layer.attention.self  # BERT family
    head_dim = attn.attention_head_size
    return Attention(
        attn, attn.query, attn.key, attn.value, layer.attention.output.dense, head_dim, attn.query.out_features // head_dim, 1
    )


def mlp(layer: nn.Module) -> Mlp:
    if hasattr(layer, "mlp"):
        return Mlp(["gate_proj", "up_proj"], "down_proj", layer.mlp)
    return Mlp(["intermediate.dense"], "output.dense", layer)


def mlp_width(layer: nn.Module) -> int:
    parts = mlp(layer)
    return _get(parts.owner, parts.output).in_features


def _get(obj: object, path: str) -> object:
    for name in path.split(".") if path else []:
        obj = getattr(obj, name, None)
    return obj


def _set(obj: object, path: str, value: object) -> None:
    parent, _, name = path.rpartition(".")
    setattr(_get(obj, parent) if parent else obj, name, value)


def sliced_linear(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new Linear keeping only output ``rows`` and input ``cols`` of ``linear``."""
    weight = linear.weight.detach()
    weight = weight[rows] if rows is not None else weight
    weight = weight[:, cols] if cols is not None else weight
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None, dtype=weight.dtype, device=weight.device)
    new.weight.data.copy_(weight)
    if linear.bias is not None:
        bias = linear.bias.detach()
        new.bias.data.copy_(bias[rows] if rows is not None else bias)
    return new


def keep_head_units(layer: nn.Module, keep: list[int]) -> None:
    """Keep only the head units at indices ``keep`` (sorted) in this layer's attention."""
    a = attention(layer)
    keep_t = torch.tensor(sorted(keep))
    query_heads = (keep_t[:, None] * a.group + torch.arange(a.group)).flatten()
    q_rows = (query_heads[:, None] * a.head_dim + torch.arange(a.head_dim)).flatten()
    kv_rows = (keep_t[:, None] * a.head_dim + torch.arange(a.head_dim)).flatten()
    a.q, a.k, a.v = sliced_linear(a.q, q_rows), sliced_linear(a.k, kv_rows), sliced_linear(a.v, kv_rows)
    out = sliced_linear(a.o, cols=q_rows)
    if hasattr(layer, "self_attn"):
        layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj = a.q, a.k, a.v
        layer.self_attn.o_proj = out
    else:
        a.module.query, a.module.key, a.module.value = a.q, a.k, a.v
        a.module.num_attention_heads = len(keep)
        a.module.all_head_size = len(keep) * a.head_dim
        layer.attention.output.dense = out


def keep_neurons(layer: nn.Module, keep: list[int]) -> None:
    """Keep only MLP neurons at indices ``keep`` in this layer."""
    parts = mlp(layer)
    keep_t = torch.tensor(sorted(keep))
    for path in parts.inputs:
        _set(parts.owner, path, sliced_linear(_get(parts.owner, path), rows=keep_t))
    _set(parts.owner, parts.output, sliced_linear(_get(parts.owner, parts.output), cols=keep_t))
    if hasattr(parts.owner, "intermediate_size"):
        parts.owner.intermediate_size = len(keep)


def padded_linear(linear: nn.Linear, rows: int, cols: int) -> nn.Linear:
    """A larger Linear: ``linear``'s weights in the top-left corner, zeros elsewhere (zero units do nothing)."""
    new = nn.Linear(cols, rows, bias=linear.bias is not None, dtype=linear.weight.dtype, device=linear.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[: linear.out_features, : linear.in_features] = linear.weight
        if linear.bias is not None:
            new.bias.zero_()
            new.bias[: linear.out_features] = linear.bias
    return new


def pad_head_units(layer: nn.Module, units: int) -> None:
    """Grow this layer's attention back to ``units`` head units with all-zero heads.

    A zero head attends uniformly to zero values and its output columns are zero: it adds nothing,
    so predictions stay the same while the shapes become the ones a plain config describes."""
    a = attention(layer)
    q_rows, kv_rows = units * a.group * a.head_dim, units * a.head_dim
    q, k, v = (
        padded_linear(a.q, q_rows, a.q.in_features),
        padded_linear(a.k, kv_rows, a.k.in_features),
        padded_linear(a.v, kv_rows, a.v.in_features),
    )
    out = padded_linear(a.o, a.o.out_features, q_rows)
    if hasattr(layer, "self_attn"):
        layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj = q, k, v, out
    else:
        a.module.query, a.module.key, a.module.value = q, k, v
        a.module.num_attention_heads, a.module.all_head_size = units, units * a.head_dim
        layer.attention.output.dense = out


def pad_neurons(layer: nn.Module, neurons: int) -> None:
    """Grow this layer's MLP back to ``neurons`` with zero neurons (act(0) * 0 adds nothing)."""
    parts = mlp(layer)
    for path in parts.inputs:
        linear = _get(parts.owner, path)
        _set(parts.owner, path, padded_linear(linear, neurons, linear.in_features))
    output = _get(parts.owner, parts.output)
    _set(parts.owner, parts.output, padded_linear(output, output.out_features, neurons))
    if hasattr(parts.owner, "intermediate_size"):
        parts.owner.intermediate_size = neurons


def structure_of(model: nn.Module) -> dict:
    """Head units and MLP neurons per layer: enough to rebuild the shapes before loading weights."""
    layers = layer_list(model)
    return {"head_units": [attention(layer).units for layer in layers], "neurons": [mlp_width(layer) for layer in layers]}


def apply_structure(model: nn.Module, structure: dict) -> None:
    """Shrink a freshly built model to a pruned structure (which units are kept does not matter:
    the saved weights overwrite them)."""
    for layer, units, neurons in zip(layer_list(model), structure["head_units"], structure["neurons"]):
        if units != attention(layer).units:
            keep_head_units(layer, list(range(units)))
        if neurons != mlp_width(layer):
            keep_neurons(layer, list(range(neurons)))


@torch.no_grad()
def skip_each_layer(model: nn.Module, batches: list[dict], loss_fn) -> list[float]:
    """The mean of ``loss_fn(model, batch)`` over ``batches`` with each layer skipped in turn (higher = that
    layer matters more)."""
    losses = []
    for skip in range(len(layer_list(model))):
        trial = copy.deepcopy(model).eval()
        keep_layers(trial, [i for i in range(len(layer_list(trial))) if i != skip])
        losses.append(sum(loss_fn(trial, b).item() for b in batches) / len(batches))
        del trial
    return losses


def keep_layers(model: nn.Module, keep: list[int]) -> None:
    """Keep only the layers at indices ``keep`` (in place; works on already-pruned layers too)."""
    layers = layer_list(model)
    kept = nn.ModuleList([layers[i] for i in sorted(keep)])
    for new_index, layer in enumerate(kept):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index  # the generation cache is indexed by it
    set_layer_list(model, kept)
    config = model.config
    previous = getattr(config, "studio_kept_layers", None) or list(range(config.num_hidden_layers))
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in sorted(keep)]
    config.num_hidden_layers = len(kept)
    config.studio_kept_layers = [previous[i] for i in sorted(keep)]
