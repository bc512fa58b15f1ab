import pytest
import torch
import torch.nn.functional as F

from studio.losses import (
    balanced_class_weights,
    causal_kd_loss,
    classification_kd_loss,
    kd_kl_loss,
    next_token_ce,
    topk_kd_loss,
)


def test_identical_logits_give_zero_kl():
    logits = torch.randn(8, 5)
    assert kd_kl_loss(logits, logits.clone(), temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_t1_alpha1_is_plain_kl():
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    expected = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    got = classification_kd_loss(s, t, torch.zeros(6, dtype=torch.long), temperature=1.0, alpha=1.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_alpha0_is_cross_entropy_and_mix_is_linear():
    s, t, y = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    ce = F.cross_entropy(s, y).item()
    kl = kd_kl_loss(s, t, 2.0).item()
    assert classification_kd_loss(s, t, y, 2.0, 0.0).item() == pytest.approx(ce, rel=1e-5)
    assert classification_kd_loss(s, t, y, 2.0, 0.3).item() == pytest.approx(0.3 * kl + 0.7 * ce, rel=1e-5)


def test_temperature_squared_scaling():
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    raw = F.kl_div(F.log_softmax(s / 4, -1), F.softmax(t / 4, -1), reduction="batchmean").item()
    assert kd_kl_loss(s, t, 4.0).item() == pytest.approx(16 * raw, rel=1e-5)


def test_topk_with_full_vocab_equals_full_kl():
    b, length, v = 2, 5, 7
    student, teacher = torch.randn(b, length, v), torch.randn(b, length, v)
    values, indices = teacher.topk(v, dim=-1)
    mask = torch.ones(b, length)
    got = topk_kd_loss(student, values, indices, mask, 2.0)
    full = kd_kl_loss(student.reshape(-1, v), teacher.reshape(-1, v), 2.0)
    assert got.item() == pytest.approx(full.item(), rel=1e-4)


def test_topk_ignores_masked_positions_and_is_nonnegative():
    student, teacher = torch.randn(1, 4, 9), torch.randn(1, 4, 9)
    values, indices = teacher.topk(3, dim=-1)
    mask = torch.tensor([[1, 1, 0, 0]])
    garbage = student.clone()
    garbage[:, 2:] = 100 * torch.randn(1, 2, 9)
    a = topk_kd_loss(student, values, indices, mask, 1.0)
    b = topk_kd_loss(garbage, values, indices, mask, 1.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    assert a.item() >= 0


def test_next_token_ce_and_causal_mix():
    b, length, v = 2, 6, 11
    logits = torch.randn(b, length, v)
    ids = torch.randint(0, v, (b, length))
    mask = torch.ones(b, length, dtype=torch.long)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, v), ids[:, 1:].reshape(-1))
    assert next_token_ce(logits, ids, mask).item() == pytest.approx(expected.item(), rel=1e-5)
    values, indices = torch.randn(b, length, v).topk(4, dim=-1)
    assert causal_kd_loss(logits, ids, mask, values, indices, 2.0, 0.0).item() == pytest.approx(expected.item(), rel=1e-5)
    assert causal_kd_loss(logits, ids, mask, values, indices, 2.0, 1.0).shape == ()


def test_class_weights_count_each_class_as_its_weight():
    torch.manual_seed(0)
    s, t = torch.randn(6, 3), torch.randn(6, 3)
    y = torch.tensor([0, 0, 0, 0, 1, 2])
    plain = classification_kd_loss(s, t, y, 2.0, 0.5)
    assert classification_kd_loss(s, t, y, 2.0, 0.5, torch.ones(3)).item() == pytest.approx(plain.item(), rel=1e-5)
    # weight 0 for class 0: the loss is that of the other rows alone
    only_rare = classification_kd_loss(s[4:], t[4:], y[4:], 2.0, 0.5)
    zeroed = classification_kd_loss(s, t, y, 2.0, 0.5, torch.tensor([0.0, 1.0, 1.0]))
    assert zeroed.item() == pytest.approx(only_rare.item(), rel=1e-5)
    weights = balanced_class_weights([4, 1, 1, 0])
    assert weights.tolist() == pytest.approx([6 / 12, 6 / 3, 6 / 3, 0.0])  # n / (classes present * count)


def test_a_text_without_a_label_learns_from_the_teacher_alone():
    """A NO_LABEL row: T^2 * KL with weight 1, no cross-entropy; labelled rows as before; class weights only for them."""
    from studio.losses import NO_LABEL, classification_kd_loss, kd_kl_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 2, NO_LABEL, NO_LABEL])
    mixed = classification_kd_loss(student, teacher, labels, 2.0, 0.5)
    labelled = classification_kd_loss(student[:2], teacher[:2], labels[:2], 2.0, 0.5)
    unlabelled = kd_kl_loss(student[2:], teacher[2:], 2.0)
    assert torch.isclose(mixed, (2 * labelled + 2 * unlabelled) / 4)
    # only unlabelled rows: the teacher's target whatever alpha says
    assert torch.isclose(classification_kd_loss(student[2:], teacher[2:], labels[2:], 2.0, 0.0), unlabelled)
    weighted = classification_kd_loss(student, teacher, labels, 2.0, 0.5, torch.tensor([2.0, 1.0, 1.0]))
    parts = torch.stack(
        [classification_kd_loss(student[i : i + 1], teacher[i : i + 1], labels[i : i + 1], 2.0, 0.5) for i in range(4)]
    )
    assert torch.isclose(weighted, (parts * torch.tensor([2.0, 1.0, 1.0, 1.0])).sum() / 5)
