"""The reference distillation loss against hand computation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from capgap.measure.loss import distill_loss  # noqa: E402


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _softmax(row: list[float], tau: float = 1.0) -> list[float]:
    exps = [math.exp(x / tau) for x in row]
    return [e / sum(exps) for e in exps]


def test_kd_is_kl_teacher_to_student_by_hand() -> None:
    student = [[0.0, 1.0, 2.0], [1.0, -1.0, 0.5]]
    teacher = [[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]]
    labels = torch.tensor([2, 0])
    out = distill_loss(torch.tensor(student), torch.tensor(teacher), labels, alpha=0.0)
    forward = sum(_kl(_softmax(t), _softmax(s)) for s, t in zip(student, teacher)) / 2
    reverse = sum(_kl(_softmax(s), _softmax(t)) for s, t in zip(student, teacher)) / 2
    assert out.kd.item() == pytest.approx(forward, rel=1e-6)
    assert abs(forward - reverse) > 1e-2  # the direction is distinguishable on this example
    assert out.total.item() == pytest.approx(forward, rel=1e-6)  # alpha 0: KD only


def test_alpha_one_is_plain_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 11, generator=generator)
    teacher = torch.randn(2, 5, 11, generator=generator)
    labels = torch.randint(0, 11, (2, 5), generator=generator)
    labels[0, 0] = -100
    out = distill_loss(student, teacher, labels, alpha=1.0)
    expected = torch.nn.functional.cross_entropy(student.reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.ce.item() == pytest.approx(expected.item(), rel=1e-6)


def test_mixture_weights_and_temperature_scaling() -> None:
    student = torch.tensor([[0.5, -0.2, 1.5, 0.0]])
    teacher = torch.tensor([[1.0, 2.0, -0.5, 0.3]])
    labels = torch.tensor([1])
    tau = 2.0
    out = distill_loss(student, teacher, labels, alpha=0.3, temperature=tau)
    kd = _kl(_softmax(teacher[0].tolist(), tau), _softmax(student[0].tolist(), tau))
    ce = -math.log(_softmax(student[0].tolist())[1])  # CE at temperature 1
    assert out.kd.item() == pytest.approx(kd, rel=1e-6)
    assert out.ce.item() == pytest.approx(ce, rel=1e-6)
    assert out.total.item() == pytest.approx(0.3 * ce + 0.7 * tau**2 * kd, rel=1e-6)


def test_shared_vocab_slicing_ignores_padding_rows() -> None:
    student = torch.tensor([[0.1, 0.7, -0.3, 9.0, 9.0]])  # last two: padding rows
    teacher = torch.tensor([[1.0, 0.2, 0.4, -5.0]])  # padded differently
    labels = torch.tensor([0])
    out = distill_loss(student, teacher, labels, alpha=0.5, vocab_size=3)
    kd = _kl(_softmax([1.0, 0.2, 0.4]), _softmax([0.1, 0.7, -0.3]))
    ce = -math.log(_softmax([0.1, 0.7, -0.3])[0])
    assert out.kd.item() == pytest.approx(kd, rel=1e-6)
    assert out.ce.item() == pytest.approx(ce, rel=1e-6)


def test_ignored_positions_do_not_count_in_kd() -> None:
    student = torch.tensor([[0.0, 1.0], [3.0, -3.0]])
    teacher = torch.tensor([[1.0, 0.0], [-3.0, 3.0]])
    out = distill_loss(student, teacher, torch.tensor([1, -100]), alpha=0.0)
    assert out.kd.item() == pytest.approx(_kl(_softmax([1.0, 0.0]), _softmax([0.0, 1.0])), rel=1e-6)


def test_no_teacher_is_pretraining() -> None:
    student = torch.tensor([[0.0, 2.0, 1.0]])
    out = distill_loss(student, None, torch.tensor([1]), alpha=0.5)
    assert out.kd.item() == 0.0
    assert out.total.item() == pytest.approx(-math.log(_softmax([0.0, 2.0, 1.0])[1]), rel=1e-6)
