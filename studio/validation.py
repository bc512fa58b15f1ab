"""What "better" means while training: macro-F1 for classifiers (the loss breaks ties), loss for text generators.

In a job of several processes each measures its part of the validation split and the parts are put together,
so every process reaches the same verdict at the same step.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from sklearn.metrics import f1_score

from studio import ranks
from studio.batches import iter_batches, model_inputs
from studio.losses import next_token_ce

# --------------------------------------------------------------------------- how long


@dataclass
class Validation:
    loss: float
    macro_f1: float | None = None

    @property
    def score(self) -> float:
        """The headline: macro-F1 for classifiers, minus the loss for text generators."""
        return self.macro_f1 if self.macro_f1 is not None else -self.loss

    def key(self) -> tuple[float, float]:
        """Ordered so that larger is better; a macro-F1 tie goes to the lower loss."""
        return (round(self.score, 6), -self.loss)


Validator = Callable[[torch.nn.Module], Validation]


def classification_validator(items: list[dict], batch_size: int, pad_id: int, classes: int) -> Validator:
    """Macro-F1 and cross-entropy of a classifier on encoded validation items."""

    @torch.inference_mode()
    def validate(model: torch.nn.Module) -> Validation:
        losses, predictions, truth = [], [], []
        start, end = ranks.share(len(items))
        for batch in iter_batches(items[start:end], batch_size, pad_id, by_length=True) if end > start else []:
            logits = model(**model_inputs(batch, model.device)).logits.float()
            labels = batch["labels"].to(logits.device)
            losses.append(torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item())
            predictions += logits.argmax(-1).tolist()
            truth += batch["labels"].tolist()
        if ranks.world() > 1:
            parts = ranks.gathered((losses, predictions, truth))
            losses, predictions, truth = ([x for part in parts for x in part[i]] for i in range(3))
        f1 = f1_score(truth, predictions, average="macro", labels=list(range(classes)), zero_division=0)
        return Validation(sum(losses) / max(1, len(truth)), float(f1))

    return validate


def causal_validator(items: list[dict], batch_size: int, pad_id: int, pad_to: int | None) -> Validator:
    """Mean next-token cross-entropy of a text generator on encoded validation items."""

    @torch.inference_mode()
    def validate(model: torch.nn.Module) -> Validation:
        total, weight = 0.0, 0
        start, end = ranks.share(len(items))
        for batch in iter_batches(items[start:end], batch_size, pad_id, pad_to=pad_to) if end > start else []:
            inputs = model_inputs(batch, model.device)
            tokens = int(inputs["attention_mask"][:, 1:].sum())
            total += next_token_ce(model(**inputs).logits, inputs["input_ids"], inputs["attention_mask"]).item() * tokens
            weight += tokens
        total, weight = ranks.total(total), ranks.total(weight)
        return Validation(total / max(1, weight))

    return validate
