"""How many optimizer steps a training stage plans: what training runs by and what the time estimate counts.
Light on purpose (no torch): the browser's estimate before Start plans with it too."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StepPlan:
    """A training budget in optimizer steps. Epochs alone starve small data: 480 rows at batch 16 for
    3 epochs is 90 steps, too few for a fresh classification head; a floor in steps fixes that, and
    validation with patience stops a long budget as soon as it stops helping."""

    steps: int
    steps_per_epoch: int
    eval_every: int
    """Validate this often (and always at the last step)."""
    patience: int
    """Validations in a row without improvement before stopping; 0 never stops early."""

    @classmethod
    def of(cls, items: int, batch_size: int, epochs: int, min_steps: int = 0, max_steps: int = 0, patience: int = 0) -> StepPlan:
        per_epoch = max(1, math.ceil(items / batch_size))
        steps = max(epochs * per_epoch, min_steps)
        if max_steps:
            steps = min(steps, max_steps)
        # About once an epoch, but at least every 50 steps and at most every 10: tiny data is not
        # validated every step, big data is not left unchecked for hundreds.
        return cls(steps, per_epoch, min(max(per_epoch, 10), 50, steps), patience)

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)
