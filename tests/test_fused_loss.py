"""The chunked, fused distillation loss equals the full-logit reference, values and gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from capgap.measure.fused_loss import fused_distill_loss  # noqa: E402
from capgap.measure.teacher_cache import TeacherTopK, teacher_topk  # noqa: E402


def reference_loss(student_logits, teacher_logits, labels, *, alpha, temperature, vocab_size, ignore_index=-100):
    """Full-vocabulary fp32 logits, autograd for gradients: the simplest correct form."""
    try:
        from capgap.measure.loss import distill_loss
    except ImportError:
        s = student_logits[..., :vocab_size].float()
        t = teacher_logits[..., :vocab_size].float()
        valid = labels != ignore_index
        ce = torch.nn.functional.cross_entropy(s[valid], labels[valid])
        kl = torch.nn.functional.kl_div(torch.log_softmax(s[valid] / temperature, -1),
                                        torch.log_softmax(t[valid] / temperature, -1), log_target=True,
                                        reduction="none").sum(-1).mean()
        return alpha * ce + (1 - alpha) * temperature ** 2 * kl, ce, kl
    return distill_loss(student_logits, teacher_logits, labels, alpha=alpha, temperature=temperature,
                        vocab_size=vocab_size, ignore_index=ignore_index)


def make_case(seed=0, batch=3, seq=7, d_s=16, d_t=24, v_s=50, v_t=64, vocab=50, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    h_s = torch.randn(batch, seq, d_s, generator=gen, dtype=torch.float64)
    w_s = torch.randn(v_s, d_s, generator=gen, dtype=torch.float64) * scale / d_s ** 0.5
    h_t = torch.randn(batch, seq, d_t, generator=gen, dtype=torch.float64)
    w_t = torch.randn(v_t, d_t, generator=gen, dtype=torch.float64) * scale / d_t ** 0.5
    labels = torch.randint(0, vocab, (batch, seq), generator=gen)
    labels[0, :2] = -100  # some ignored positions
    return h_s, w_s, h_t, w_t, labels


def grads_of(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.0), (0.0, 2.0), (1.0, 1.0), (0.3, 0.7)])
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_fused_equals_reference_values_and_gradients(alpha, temperature, chunk):
    # Teacher padded larger (64 rows) than the student (50): only the shared 50 count.
    h_s, w_s, h_t, w_t, labels = make_case()
    h_s.requires_grad_(True)
    w_s.requires_grad_(True)
    ref_total, ref_ce, ref_kd = reference_loss(h_s @ w_s.T, h_t @ w_t.T, labels, alpha=alpha,
                                               temperature=temperature, vocab_size=50)
    ref_grads = grads_of(ref_total, h_s, w_s)
    total, ce, kd = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, alpha=alpha,
                                       temperature=temperature, chunk_positions=chunk)
    grads = grads_of(total, h_s, w_s)
    torch.testing.assert_close(total, ref_total.to(total.dtype))
    torch.testing.assert_close(ce, ref_ce.to(ce.dtype))
    torch.testing.assert_close(kd, ref_kd.to(kd.dtype))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_shared_vocab_slicing_ignores_padded_rows():
    # Student padded to 56 rows, teacher to 64, real vocabulary 50: padded rows get no gradient
    # and changing them changes nothing.
    h_s, w_s, h_t, w_t, labels = make_case(v_s=56)
    w_s.requires_grad_(True)
    total, _, _ = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, vocab_size=50)
    (grad_w,) = torch.autograd.grad(total, w_s)
    assert torch.count_nonzero(grad_w[50:]) == 0
    assert torch.count_nonzero(grad_w[:50]) > 0
    w_t2 = w_t.clone()
    w_t2[50:] += 100.0
    w_s2 = w_s.detach().clone()
    w_s2[50:] -= 100.0
    total2, _, _ = fused_distill_loss(h_s, w_s2, labels, teacher_hidden=h_t, teacher_head=w_t2, vocab_size=50)
    torch.testing.assert_close(total2, total.detach())


def test_bf16_autocast_close_to_fp32_and_grads_reach_fp32_weights():
    h_s, w_s, h_t, w_t, labels = (t.float() if t.is_floating_point() else t for t in make_case(seq=40))
    w_s.requires_grad_(True)
    h_s.requires_grad_(True)
    ref_total, _, _ = reference_loss(h_s @ w_s.T, h_t @ w_t.T, labels, alpha=0.5, temperature=1.0, vocab_size=50)
    ref_grads = grads_of(ref_total, h_s, w_s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, _, _ = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, vocab_size=50,
                                         chunk_positions=16)
    grads = grads_of(total, h_s, w_s)
    assert grads[1].dtype == torch.float32
    torch.testing.assert_close(total, ref_total, rtol=2e-2, atol=2e-2)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-3)


def topk_reference(student_logits, top: TeacherTopK, labels, *, alpha, temperature):
    """k+1-bin KL written with autograd: bins are the teacher's top-k tokens and the rest."""
    valid = labels != -100
    s = student_logits[valid].float() / temperature
    log_q = torch.log_softmax(s, -1)
    log_q_top = log_q.gather(-1, top.indices[valid])
    q_rest = 1 - log_q_top.exp().sum(-1)
    p_top = torch.exp(top.values[valid] / temperature - top.logsumexp[valid].unsqueeze(-1))
    p_rest = 1 - p_top.sum(-1)
    kl = (p_top * (p_top.log() - log_q_top)).sum(-1) + p_rest * (p_rest.log() - q_rest.log())
    ce = torch.nn.functional.cross_entropy(student_logits[valid].float(), labels[valid])
    return alpha * ce + (1 - alpha) * temperature ** 2 * kl.mean()


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_topk_teacher_equals_k_plus_one_bin_reference(temperature):
    h_s, w_s, h_t, w_t, labels = make_case()
    h_s.requires_grad_(True)
    w_s.requires_grad_(True)
    top = teacher_topk(h_t, w_t, k=8, vocab_size=50, temperature=temperature, chunk_positions=4)
    ref = topk_reference(h_s @ w_s.T, top, labels, alpha=0.4, temperature=temperature)
    ref_grads = grads_of(ref, h_s, w_s)
    total, _, _ = fused_distill_loss(h_s, w_s, labels, teacher_topk=top, alpha=0.4, temperature=temperature,
                                     chunk_positions=5)
    torch.testing.assert_close(total, ref)
    for got, want in zip(grads_of(total, h_s, w_s), ref_grads):
        torch.testing.assert_close(got, want)


def test_topk_with_k_equal_vocab_is_the_full_kl():
    h_s, w_s, h_t, w_t, labels = make_case()
    top = teacher_topk(h_t, w_t, k=50, vocab_size=50)
    full = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, alpha=0.0, vocab_size=50)
    cached = fused_distill_loss(h_s, w_s, labels, teacher_topk=top, alpha=0.0, vocab_size=50)
    torch.testing.assert_close(cached.kd, full.kd)


def test_topk_teacher_must_match_temperature():
    h_s, w_s, h_t, w_t, labels = make_case()
    top = teacher_topk(h_t, w_t, k=8, vocab_size=50, temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        fused_distill_loss(h_s, w_s, labels, teacher_topk=top, temperature=2.0)


def test_missing_teacher_is_refused():
    h_s, w_s, _, _, labels = make_case()
    with pytest.raises(ValueError, match="teacher"):
        fused_distill_loss(h_s, w_s, labels, alpha=0.5)


@pytest.mark.slow
def test_compiled_chunks_match_eager():
    h_s, w_s, h_t, w_t, labels = (t.float() if t.is_floating_point() else t for t in make_case(seq=10))
    w_s.requires_grad_(True)
    eager = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, vocab_size=50,
                               chunk_positions=8)
    compiled = fused_distill_loss(h_s, w_s, labels, teacher_hidden=h_t, teacher_head=w_t, vocab_size=50,
                                  chunk_positions=8, compile_chunks=True)
    torch.testing.assert_close(compiled.total, eager.total)
    for got, want in zip(grads_of(compiled.total, w_s), grads_of(eager.total, w_s)):
        torch.testing.assert_close(got, want)


def _tiny_lm(family: str, layers: int, width: int, vocab: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=layers, n_embd=width, n_head=2, vocab_size=vocab, n_positions=16,
                                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                          eos_token_id=0))
    return GPTNeoXForCausalLM(GPTNeoXConfig(num_hidden_layers=layers, hidden_size=width, num_attention_heads=2,
                                            intermediate_size=4 * width, vocab_size=vocab, rotary_pct=0.25,
                                            max_position_embeddings=16, tie_word_embeddings=False,
                                            bos_token_id=0, eos_token_id=0))


@pytest.mark.parametrize("family", ["gpt2", "pythia"])
def test_fast_path_on_real_models_equals_the_logits_path(family):
    # Padded vocabularies of different sizes (104 student, 128 teacher), 100 real tokens shared.
    from capgap.measure.fused_loss import HiddenAndHead, fused_batch_loss

    student = _tiny_lm(family, 1, 32, 104, seed=0)
    teacher = _tiny_lm(family, 2, 48, 128, seed=1).eval()
    tokens = torch.randint(0, 100, (3, 13), generator=torch.Generator().manual_seed(2))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    with torch.no_grad():
        teacher_logits = teacher(input_ids=inputs).logits
    ref = reference_loss(student(input_ids=inputs).logits, teacher_logits, targets, alpha=0.5, temperature=1.0,
                         vocab_size=100)
    ref[0].backward()
    want = {name: p.grad.clone() for name, p in student.named_parameters()}
    student.zero_grad()
    fast = fused_batch_loss(HiddenAndHead(student), teacher, inputs, targets, vocab_size=100)
    fast.total.backward()
    torch.testing.assert_close(fast.total, ref[0])
    for name, p in student.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-4, atol=1e-6, msg=name)
