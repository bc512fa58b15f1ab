"""Pruning: unstructured magnitude (zeros, stored sparse) and structured (heads, neurons, layers).

Unstructured pruning makes the file smaller only in a sparse format and does not make dense
matrix products faster. Structured pruning removes whole attention heads, MLP neurons or layers,
so the matrices themselves shrink: that is what makes a model faster on a CPU. What to cut is
chosen by an importance score measured on a few training batches with the run's KD loss:
first-order Taylor (|sum of weight x gradient| over a head or neuron) or plain weight magnitude;
a layer's importance is how much the loss grows when it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from studio import model_parts as parts
from studio.compress.base import RunContext, WorkingModel
from studio.settings import Check, Settings, setting

IMPORTANCE = ("taylor", "magnitude")
TASK_HEADS = {"classifier", "score", "lm_head", "pre_classifier", "pooler"}
"""Output layers left whole: they are small and their outputs are the predictions."""


# --------------------------------------------------------------------------- settings


@dataclass
class MagnitudeSettings(Settings):
    sparsity: float = setting(
        0.5, "Share of weights set to zero, smallest first, across all layers at once. Above ~0.6 quality drops fast."
    )
    include_embeddings: bool = setting(False, "Also prune the token embeddings (small models lean on them; usually leave off).")

    def checks(self) -> list[Check]:
        return [("sparsity", 0 < self.sparsity < 1, "a share above 0 and below 1, e.g. 0.5 for 50%")]


@dataclass
class StructuredSettings(Settings):
    fraction: float = setting(
        0.5, "Share removed in every layer. Each removed share makes that part of the model about that much faster."
    )
    count: int = setting(0, "Exact number removed per layer instead of a share (0 = use fraction).")
    importance: str = setting(
        "taylor",
        "'taylor' (weight x gradient on your data, better choices) or 'magnitude' (weights only, no data).",
        choices=IMPORTANCE,
    )
    calibration_batches: int = setting(8, "Training batches used to score importance.")

    def checks(self) -> list[Check]:
        return [
            ("fraction", 0 < self.fraction < 1, "a share above 0 and below 1, e.g. 0.3 for 30%"),
            ("count", self.count >= 0, "0 (use fraction) or a positive number"),
            ("calibration_batches", 1 <= self.calibration_batches <= 1000, "from 1 to 1000"),
        ]

    def removed(self, total: int) -> int:
        return self.count or round(self.fraction * total)


@dataclass
class LayerSettings(Settings):
    count: int = setting(1, "Whole layers removed, the least important first. Each saves about 1/layers of the time.")
    calibration_batches: int = setting(4, "Training batches used to score how much the loss misses each layer.")

    def checks(self) -> list[Check]:
        return [
            ("count", self.count >= 1, "1 or more layers"),
            ("calibration_batches", 1 <= self.calibration_batches <= 1000, "from 1 to 1000"),
        ]


# --------------------------------------------------------------------------- plan-time checks


def plan_heads(shape: dict, s: StructuredSettings) -> list[str]:
    problems = []
    for units in set(shape["head_units"]):
        cut = s.removed(units)
        if cut >= units:
            problems.append(
                f"prune-heads would remove {cut} of the {units} attention head groups in a layer; "
                f"keep at least one: use count below {units} or a smaller fraction"
            )
        elif cut == 0:
            problems.append(f"prune-heads with fraction {s.fraction} removes no head of {units}; raise the fraction")
    shape["head_units"] = [u - s.removed(u) for u in shape["head_units"]]
    return problems


def plan_neurons(shape: dict, s: StructuredSettings) -> list[str]:
    problems = []
    for width in set(shape["neurons"]):
        cut = s.removed(width)
        if not 0 < cut < width:
            problems.append(f"prune-neurons would remove {cut} of {width} MLP neurons in a layer; choose from 1 to {width - 1}")
    shape["neurons"] = [w - s.removed(w) for w in shape["neurons"]]
    return problems


def plan_layers(shape: dict, s: LayerSettings) -> list[str]:
    layers = len(shape["head_units"])
    if s.count >= layers:
        return [f"prune-layers would remove {s.count} of the model's {layers} layers; choose at most {layers - 1}"]
    shape["head_units"] = shape["head_units"][: layers - s.count]
    shape["neurons"] = shape["neurons"][: layers - s.count]
    return []


# --------------------------------------------------------------------------- unstructured


def prunable_linears(model: nn.Module, include_embeddings: bool = False) -> list[tuple[nn.Module, str]]:
    """Every weight matrix except the task head (and the embeddings unless asked): any architecture."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found = [
        (m, "weight")
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m is not head and not TASK_HEADS & set(name.split("."))
    ]
    if include_embeddings:
        found.append((model.get_input_embeddings(), "weight"))
    return found


def prune_magnitude(wm: WorkingModel, s: MagnitudeSettings, ctx: RunContext) -> WorkingModel:
    """Global L1 magnitude pruning to ``s.sparsity``, made permanent (no mask left on the model)."""
    targets = prunable_linears(wm.model, s.include_embeddings)
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=s.sparsity)
    for module, name in targets:
        torch_prune.remove(module, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
    total = sum(m.weight.numel() for m, _ in targets)
    wm.sparse = True
    wm.notes.append(
        f"{zeros / total:.0%} of the layer weights are zero; stored sparse (bitmask + values). "
        "Dense CPU kernels do not skip zeros, so this saves disk, not time."
    )
    return wm


# --------------------------------------------------------------------------- importance


def _element_scores(
    model: nn.Module, wm: WorkingModel, ctx: RunContext, importance: str, batches: int
) -> dict[int, torch.Tensor]:
    """Per weight matrix: |w| (magnitude) or w x dL/dw summed over calibration batches (taylor)."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if importance == "magnitude":
        return {id(w): w.detach().abs() for w in weights}
    sums = {id(w): torch.zeros_like(w) for w in weights}
    loss_fn = ctx.kd_loss()
    was_training = model.training
    model.eval()
    for batch in ctx.calibration_batches(wm.tokenizer, batches):
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        for w in weights:
            if w.grad is not None:
                sums[id(w)] += (w.detach() * w.grad).detach()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return sums


def head_scores(layer: nn.Module, scores: dict[int, torch.Tensor]) -> torch.Tensor:
    a = parts.attention(layer)
    q = scores[id(a.q.weight)].reshape(a.units, -1).sum(1)
    k = scores[id(a.k.weight)].reshape(a.units, -1).sum(1)
    v = scores[id(a.v.weight)].reshape(a.units, -1).sum(1)
    o = scores[id(a.o.weight)].reshape(a.o.out_features, a.units, -1).sum((0, 2))
    return (q + k + v + o).abs()


def neuron_scores(layer: nn.Module, scores: dict[int, torch.Tensor]) -> torch.Tensor:
    m = parts.mlp(layer)
    total = sum(scores[id(parts._get(m.owner, p).weight)].sum(1) for p in m.inputs)
    return (total + scores[id(parts._get(m.owner, m.output).weight)].sum(0)).abs()


def keep_all_but_lowest(values: torch.Tensor, cut: int) -> list[int]:
    """Indices to keep: all but the ``cut`` lowest."""
    return sorted(values.argsort(descending=True)[: len(values) - cut].tolist())


# --------------------------------------------------------------------------- structured


def _prune_per_layer(wm: WorkingModel, s: StructuredSettings, ctx: RunContext, score, keep) -> WorkingModel:
    """Score the units of every layer, keep all but the ``s.removed(...)`` least important."""
    scores = _element_scores(wm.model, wm, ctx, s.importance, s.calibration_batches)
    for layer in parts.layer_list(wm.model):
        values = score(layer, scores)
        keep(layer, keep_all_but_lowest(values, s.removed(len(values))))
    wm.structure = parts.structure_of(wm.model)
    return wm


def prune_heads(wm: WorkingModel, s: StructuredSettings, ctx: RunContext) -> WorkingModel:
    return _prune_per_layer(wm, s, ctx, head_scores, parts.keep_head_units)


def prune_neurons(wm: WorkingModel, s: StructuredSettings, ctx: RunContext) -> WorkingModel:
    return _prune_per_layer(wm, s, ctx, neuron_scores, parts.keep_neurons)


def layer_ablation_losses(wm: WorkingModel, ctx: RunContext, batches: int) -> list[float]:
    """The calibration loss with each layer skipped in turn (higher = that layer matters more)."""
    return parts.skip_each_layer(wm.model, list(ctx.calibration_batches(wm.tokenizer, batches)), ctx.kd_loss())


def prune_layers(wm: WorkingModel, s: LayerSettings, ctx: RunContext) -> WorkingModel:
    losses = layer_ablation_losses(wm, ctx, s.calibration_batches)
    keep = keep_all_but_lowest(torch.tensor(losses), s.count)
    parts.keep_layers(wm.model, keep)
    wm.notes.append(
        f"removed layers {sorted(set(range(len(losses))) - set(keep))} "
        f"(loss without each layer: {', '.join(f'{v:.3f}' for v in losses)})"
    )
    if wm.structure:
        wm.structure = parts.structure_of(wm.model)
    return wm
