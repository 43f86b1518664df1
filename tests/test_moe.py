"""The MoE layer, its balance loss and its students, on tiny GPT2 and Pythia configs (CPU, seconds)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: E402

from capgap.measure import moe, prune  # noqa: E402
from capgap.measure.models import param_count  # noqa: E402
from capgap.measure.students import make_student  # noqa: E402


def _gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32,
                                      bos_token_id=0, eos_token_id=0)).eval()


def _pythia(seed: int = 0) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                            intermediate_size=128, vocab_size=100, max_position_embeddings=32,
                                            bos_token_id=0, eos_token_id=0)).eval()


FAMILIES = [_gpt2, _pythia]
IDS = torch.randint(0, 100, (3, 16), generator=torch.Generator().manual_seed(1))


def _layer(experts: int = 3, hidden: int = 8) -> moe.MoEMLP:
    torch.manual_seed(0)
    blocks = [torch.nn.Sequential(torch.nn.Linear(hidden, 16), torch.nn.GELU(), torch.nn.Linear(16, hidden))
              for _ in range(experts)]
    return moe.MoEMLP(blocks, hidden).eval()


def test_forward_is_the_top1_mixture_scaled_by_the_gate() -> None:
    layer = _layer()
    x = torch.randn(2, 5, 8)
    flat = x.reshape(-1, 8)
    probs = torch.softmax(flat @ layer.router.weight.T + layer.router.bias, dim=-1)
    expected = torch.stack([probs[t].max() * layer.experts[int(probs[t].argmax())](flat[t]) for t in range(10)])
    assert torch.allclose(layer(x), expected.reshape(2, 5, 8), atol=1e-6)
    assert len({int(c) for c in probs.argmax(-1)}) > 1  # the check saw more than one expert chosen


def test_noise_only_in_training_and_within_its_bounds() -> None:
    layer = _layer()
    x = torch.randn(64, 8)
    clean = torch.log_softmax(x @ layer.router.weight.T + layer.router.bias, dim=-1)
    assert torch.allclose(layer.gate(x).log(), clean, atol=1e-6)  # eval: no noise
    layer.train()
    noisy = layer.gate(x)
    assert not torch.allclose(noisy.log(), clean, atol=1e-6)
    logits = x @ layer.router.weight.T + layer.router.bias
    # softmax(logits * u), u in [1 - eps, 1 + eps]: the log-ratio to expert 0 moves by at most eps of its size
    spread = (noisy.log() - noisy.log()[:, :1]) - (logits - logits[:, :1])
    assert (spread.abs() <= moe.ROUTER_NOISE * (logits.abs() + logits[:, :1].abs()) + 1e-5).all()


def test_balance_loss_is_its_formula_on_a_fixed_routing() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    choice = probs.argmax(-1)  # experts 0, 1, 0, 2: shares 1/2, 1/4, 1/4; mean probs 0.4, 0.375, 0.225
    expected = 3 * (0.4 * 0.5 + 0.375 * 0.25 + 0.225 * 0.25)
    assert moe.balance_loss(probs, choice).item() == pytest.approx(expected) == pytest.approx(1.05)
    uniform = torch.full((6, 3), 1 / 3)
    assert moe.balance_loss(uniform, torch.tensor([0, 1, 2, 0, 1, 2])).item() == pytest.approx(1.0)
    model = moe.to_moe(_gpt2(), 3, seed=0)
    model(input_ids=IDS)
    layers = moe.moe_layers(model)
    assert moe.model_balance_loss(layers).item() == pytest.approx(sum(l.balance.item() for l in layers) / 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_experts_equal_to_the_dense_mlp_reproduce_the_dense_logits(family) -> None:
    dense = family()
    model = moe.to_moe(copy.deepcopy(dense), 4, seed=0)
    blocks = model.base_model.h if hasattr(model.base_model, "h") else model.base_model.layers
    dense_blocks = dense.base_model.h if hasattr(dense.base_model, "h") else dense.base_model.layers
    with torch.no_grad():
        for block, source in zip(blocks, dense_blocks):
            for expert in block.mlp.experts:
                expert.load_state_dict(source.mlp.state_dict())
            # With equal experts the choice is immaterial; a gate of probability 1 makes the mixture the MLP.
            block.mlp.router.weight.zero_()
            block.mlp.router.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 0.0]))
    model.eval()
    assert torch.allclose(model(input_ids=IDS).logits, dense(input_ids=IDS).logits, atol=1e-5)
    # With any router, equal experts give the dense MLP scaled by the chosen gate probability.
    block, source = blocks[0], dense_blocks[0]
    torch.nn.init.normal_(block.mlp.router.weight, std=1.0)
    x = torch.randn(2, 7, 32)
    gate = block.mlp.gate(x.reshape(-1, 32)).max(-1).values.reshape(2, 7, 1)
    assert torch.allclose(block.mlp(x), gate * source.mlp(x), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_the_router_and_every_expert(family) -> None:
    model = moe.to_moe(family(), 4, seed=0).train()
    logits = model(input_ids=IDS).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 100), IDS[:, 1:].reshape(-1))
    (loss + 0.01 * moe.model_balance_loss(moe.moe_layers(model))).backward()
    for layer in moe.moe_layers(model):
        assert layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0
    # Every parameter is in the graph, an expert without tokens too (DDP needs no unused-parameter search).
    assert all(p.grad is not None for p in model.parameters())


def test_an_expert_without_tokens_still_gets_a_zero_gradient() -> None:
    layer = _layer().train()
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.bias.copy_(torch.tensor([30.0, 0.0, 0.0]))  # every token to expert 0
    layer(torch.randn(4, 8)).sum().backward()
    assert layer.experts[0][0].weight.grad.abs().sum() > 0
    assert layer.experts[2][0].weight.grad is not None and layer.experts[2][0].weight.grad.abs().sum() == 0


def test_expert_neurons_share_two_thirds_and_interleave_the_rest() -> None:
    scores = torch.tensor([9.0, 1.0, 8.0, 7.0, 0.5, 6.0, 0.1, 5.0, 4.0, 3.0, 2.0, 0.2])
    kept = [0, 2, 3, 5, 7, 8]  # the six best: a pruned MLP of six neurons
    experts = moe.expert_neurons(kept, scores, 2)
    assert [e[:4] for e in experts] == [[0, 2, 3, 5]] * 2  # the pruned MLP's four best, shared
    # The rest by importance: 7, 8 (the pruned MLP's own), then 9, 10, 1, 4, 11, 6 of the teacher; interleaved.
    assert experts == [[0, 2, 3, 5, 7, 9], [0, 2, 3, 5, 8, 10]]
    assert set(kept) <= set().union(*experts)
    # A teacher too small for disjoint slices: overlapping rotations, every expert still of full width.
    small = moe.expert_neurons([0, 1, 2], torch.tensor([3.0, 2.0, 1.0, 0.5]), 4)
    assert all(len(e) == 3 == len(set(e)) for e in small) and all(e[:2] == [0, 1] for e in small)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_experts_hold_the_pruned_mlp_neurons(family) -> None:
    teacher = family()
    calib = [torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    importance = prune.compute_importance(teacher, calib)
    target = int(0.6 * param_count(teacher.config).total)
    dense = make_student(teacher, target, "pruned", seed=0, calib_batches=calib, importance=importance)
    student = make_student(teacher, target, "pruned", seed=0, calib_batches=calib, importance=importance,
                           kind="moe", experts=4)
    conv1d = teacher.config.model_type == "gpt2"
    fc_in, fc_out = ("c_fc", "c_proj") if conv1d else ("dense_h_to_4h", "dense_4h_to_h")
    report = student.prune_report
    blocks = list(student.base_model.h if conv1d else student.base_model.layers)
    dense_blocks = list(dense.base_model.h if conv1d else dense.base_model.layers)
    for i, (block, source) in enumerate(zip(blocks, dense_blocks)):
        kept = report.kept_neurons[i]
        lists = moe.expert_neurons(kept, importance.neurons[i], 4)
        width = len(kept)
        seen: set[int] = set()
        for expert, neurons in zip(block.mlp.experts, lists):
            assert len(neurons) == width  # every expert has the dense width
            w_in, w_out = getattr(expert, fc_in).weight, getattr(expert, fc_out).weight
            s_in, s_out = getattr(source.mlp, fc_in).weight, getattr(source.mlp, fc_out).weight
            for position, neuron in enumerate(neurons):
                if neuron not in kept:
                    continue
                seen.add(neuron)
                j = kept.index(neuron)
                if conv1d:  # Conv1D: (in, out)
                    assert torch.equal(w_in[:, position], s_in[:, j]) and torch.equal(w_out[position], s_out[j])
                else:
                    assert torch.equal(w_in[position], s_in[j]) and torch.equal(w_out[:, position], s_out[:, j])
            shared = round(2 * width / 3)
            assert set(neurons[:shared]) <= set(kept)
        assert seen == set(kept)  # together the experts hold every neuron of the pruned MLP
        first, second = (getattr(e, fc_in).weight for e in block.mlp.experts[:2])
        assert first.data_ptr() != second.data_ptr()  # independent parameters
    # Attention and embeddings are the dense pruned student's.
    assert torch.equal(student.get_input_embeddings().weight, dense.get_input_embeddings().weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_counts_by_arithmetic_match_the_modules(family) -> None:
    teacher = family()
    student = make_student(teacher, int(0.5 * param_count(teacher.config).total), "scratch", seed=3,
                           calib_batches=[], kind="moe", experts=4)
    total, active = moe.moe_counts(param_count(student.config), student.config, 4)
    assert total.total == sum(p.numel() for p in student.parameters())
    router = sum(layer.router.weight.numel() + layer.router.bias.numel() for layer in moe.moe_layers(student))
    one_expert = sum(sum(p.numel() for p in layer.experts[0].parameters()) for layer in moe.moe_layers(student))
    assert active.total == param_count(student.config).total + router
    assert total.total - active.total == 3 * one_expert


def test_scratch_experts_are_fresh_and_seeded() -> None:
    teacher = _gpt2()
    make = lambda seed: make_student(teacher, 20_000, "scratch", seed=seed, calib_batches=[],  # noqa: E731
                                     kind="moe", experts=3)
    a, b, c = make(0), make(0), make(1)
    experts = moe.moe_layers(a)[0].experts
    assert not torch.equal(experts[0].c_fc.weight, experts[1].c_fc.weight)
    assert torch.equal(experts[0].c_fc.weight, moe.moe_layers(b)[0].experts[0].c_fc.weight)
    assert not torch.equal(experts[0].c_fc.weight, moe.moe_layers(c)[0].experts[0].c_fc.weight)
