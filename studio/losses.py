"""Knowledge-distillation losses: pure functions of tensors, tested without any trainer.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(labels)

The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones when T
changes (Hinton et al., 2015).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over rows (weighted by ``weights`` [N] when given).

    Shapes: student_logits, teacher_logits [N, C] -> scalar.
    """
    return _mean(_kl_rows(student_logits, teacher_logits, temperature), weights)


def _kl_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL per row: [N, C] -> [N]."""
    t = temperature
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none").sum(-1) * t * t


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp(min=1e-12)


NO_LABEL = -1
"""The label of a text the user left unlabelled: it learns from the teacher's soft target alone."""


def classification_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """alpha * T^2 * KL + (1 - alpha) * CE for a labelled row; T^2 * KL alone for a row labelled NO_LABEL (the
    teacher's answer is all it has). With ``class_weights`` each labelled row counts as much as its class's weight
    in both terms (so a rare class is not drowned out by the common one); an unlabelled row counts 1.

    Shapes: logits [N, C], labels [N] (class ids or NO_LABEL), class_weights [C] -> scalar.
    """
    known = labels != NO_LABEL
    safe = labels.clamp(min=0)
    ones = torch.ones_like(safe, dtype=torch.float)
    weights = None if class_weights is None else torch.where(known, class_weights.to(student_logits.device)[safe], ones)
    share = torch.where(known, alpha * ones, ones)  # the teacher's part of each row's loss
    rows = share * _kl_rows(student_logits, teacher_logits, temperature)
    if alpha < 1.0:
        rows = rows + (1.0 - alpha) * known * F.cross_entropy(student_logits, safe, reduction="none")
    return _mean(rows, weights)


def balanced_class_weights(counts: list[int]) -> torch.Tensor:
    """n / (classes * count) per class (scikit-learn's "balanced"): every class weighs the same in all.

    Shapes: counts [C] -> [C]; a class with no examples gets weight 0.
    """
    n, present = sum(counts), sum(1 for c in counts if c)
    return torch.tensor([n / (present * c) if c else 0.0 for c in counts], dtype=torch.float32)


def topk_kd_loss(
    student_logits: torch.Tensor, top_values: torch.Tensor, top_indices: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL from cached top-k teacher logits to the student, averaged over unmasked positions.

    The teacher distribution is its softmax over the k cached logits; the student is normalised
    over the whole vocabulary, so mass it puts outside the teacher's top k is penalised.
    Shapes: student_logits [B, L, V]; top_values, top_indices [B, L, k]; mask [B, L] -> scalar.
    """
    t = temperature
    log_p_teacher = F.log_softmax(top_values.float() / t, dim=-1)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1).gather(-1, top_indices.long())
    per_position = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1.0) * t * t


def next_token_ce(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting token i+1 from position i, over unmasked targets.

    Shapes: logits [B, L, V]; input_ids, mask [B, L] -> scalar.
    """
    targets = input_ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def causal_kd_loss(
    student_logits: torch.Tensor,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    top_values: torch.Tensor,
    top_indices: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * top-k KD + (1 - alpha) * next-token CE. Position i of the cache predicts token i+1.

    Shapes: student_logits [B, L, V]; input_ids, mask [B, L]; top_* [B, L, k] -> scalar.
    """
    predict_mask = mask.clone()
    predict_mask[:, -1] = 0
    predict_mask[:, :-1] *= mask[:, 1:]  # a position whose next token is padding predicts nothing
    loss = alpha * topk_kd_loss(student_logits, top_values, top_indices, predict_mask, temperature)
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * next_token_ce(student_logits, input_ids, mask)
    return loss
