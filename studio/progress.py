"""Progress records: what a running stage reports, and the callback that takes them.

The pipeline only ever calls ``on_progress(Progress(...))``; the job's reporter turns that into database rows,
the CLI into progress bars. Nothing here imports torch, so either side may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Progress:
    """One progress report from a stage of a job."""

    stage: str
    """What kind of work: 'teacher', 'cache', 'probe', 'student', 'labels-only student', 'heal', 'variant',
    'export'. A fixed word of at most 32 characters; which one of its kind goes in ``label``."""
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float | None = None
    message: str = ""
    global_step: int | None = None
    """Training steps done in this stage, across epochs (what a loss curve's x axis counts)."""
    lr: float | None = None
    restart_step: int | None = None
    """Set once when a training stage starts: the step it starts after (0, or its checkpoint's)."""
    validation: float | None = None
    """The validation score measured at this step (macro-F1, or minus the loss for text generators)."""
    label: str = ""
    """Which one of its kind, e.g. a trial's learning rate ('lr 0.0001') or the variant and step a heal belongs
    to ('int8-heal#2'); each (stage, label) is its own loss curve."""

    item: int = 0
    items: int = 0
    """Progress over several items instead of training steps: variant ``item`` of ``items``, export step 3 of 6
    (0 of 0 for a stage that counts training steps)."""

    @property
    def title(self) -> str:
        """The stage as people read it: 'heal int8-heal#2'."""
        return f"{self.stage} {self.label}".strip()


ProgressFn = Callable[[Progress], None]


def item_progress(stage: str, item: int, items: int, message: str) -> Progress:
    """Item ``item`` of ``items`` has started (a variant, an export step)."""
    return Progress(stage, 1, 1, 0, 1, message=message, item=item, items=items)


def report(on_progress: ProgressFn | None, progress: Progress) -> None:
    if on_progress is not None:
        on_progress(progress)
