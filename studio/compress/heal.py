"""Healing: a short KD run after pruning, on the teacher logits the distillation already cached.

The teacher never runs again: its logits for every training example are in the run's cache.
After unstructured pruning the zeros stay zero (their gradients are masked), so healing does not
undo the sparsity.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

import torch
from torch import nn

from studio import ranks
from studio.compress.base import RunContext, WorkingModel
from studio.distill_config import DistillConfig
from studio.settings import Check, Settings, setting
from studio.stages import run_stage, stage_for


@dataclass
class HealSettings(Settings):
    epochs: int = setting(1, "Passes over the training split, at least. One usually recovers most of what pruning lost.")
    min_steps: int = setting(
        100,
        "Optimizer steps at least, however small the data. Healing stops early when validation stops improving, "
        "and keeps its best validated weights.",
    )
    learning_rate: float = setting(0.0, "0 uses the distillation run's learning rate.")
    temperature: float = setting(0.0, "0 uses the run's KD temperature.")
    alpha: float = setting(-1.0, "Weight of the teacher's soft targets vs labels; -1 uses the run's value.")

    def checks(self) -> list[Check]:
        return [
            ("epochs", 1 <= self.epochs <= 50, "from 1 to 50"),
            ("min_steps", 0 <= self.min_steps <= 100_000, "from 0 to 100000"),
            ("learning_rate", 0 <= self.learning_rate <= 0.1, "0 (the run's) or up to 0.1"),
            ("temperature", self.temperature == 0 or 0.5 <= self.temperature <= 20, "0 (the run's) or 0.5 to 20"),
            ("alpha", self.alpha == -1 or 0 <= self.alpha <= 1, "-1 (the run's) or from 0 to 1"),
        ]


def _keep_zeros(model: nn.Module) -> list:
    """Mask the gradients of weights that are exactly zero, so optimizer steps leave them at zero."""
    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            mask = module.weight.detach() != 0
            if not bool(mask.all()):
                handles.append(module.weight.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device)))
    return handles


def heal(wm: WorkingModel, s: HealSettings, ctx: RunContext) -> WorkingModel:
    run = DistillConfig.from_dict(ctx.settings)
    lr = s.learning_rate or run.learning_rate
    loss_fn = ctx.kd_loss(s.temperature or None, None if s.alpha == -1 else s.alpha)
    handles = _keep_zeros(wm.model) if wm.sparse else []
    # Each heal step starts fresh: a folder left by an earlier heal in this recipe would be "resumed".
    checkpoints = ctx.work_dir / "heal-checkpoints"
    ranks.on_main(lambda: shutil.rmtree(checkpoints, ignore_errors=True))
    torch.manual_seed(run.seed)  # the same recipe heals the same way, whatever ran before it
    wm.model.train()
    label = f"{ctx.variant}#{ctx.step_number}" if ctx.variant else ""  # each heal its own loss curve
    try:
        plan = stage_for(replace(run, min_steps=s.min_steps), ctx.dataset, wm.tokenizer, run.max_length, s.epochs)
        result = run_stage(
            wm.model, plan, loss_fn, run, checkpoints, "heal", lr, ctx.work_dir / "metrics.jsonl", ctx.on_progress, label=label
        )
    finally:
        for handle in handles:
            handle.remove()
    wm.model.to("cpu").eval()  # training may have moved it to a GPU; export and saving expect the CPU
    wm.model.zero_grad(set_to_none=True)
    wm.notes.append(
        f"healed {result.steps} steps of KD on the cached teacher logits (lr {lr:g}), "
        f"kept the best on validation (step {result.best_step})"
    )
    return wm
