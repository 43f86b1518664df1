"""Structured pruning of tiny GPT2 and Pythia (GPT-NeoX) teachers."""

import math

import pytest
import torch
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig,
                          GPTNeoXForCausalLM)

from capgap.core.errors import InputError
from capgap.measure.prune import (MaskImportance, compute_importance, plan_shape, prune_by_sparsity,
                                  prune_to_params)
from capgap.measure.students import student_config
from capgap.sizes.units import count_params

VOCAB, HIDDEN, HEADS, LAYERS, INNER, SEQ = 128, 64, 4, 2, 256, 32
HEAD_DIM = HIDDEN // HEADS
FAMILIES = ("gpt2", "gpt_neox")


def tiny_teacher(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if family == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_head=HEADS, n_layer=LAYERS, n_inner=INNER,
                            n_positions=SEQ, bos_token_id=0, eos_token_id=0)
        return GPT2LMHeadModel(config).eval()
    config = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_attention_heads=HEADS,
                           num_hidden_layers=LAYERS, intermediate_size=INNER, max_position_embeddings=SEQ,
                           bos_token_id=0, eos_token_id=0)
    return GPTNeoXForCausalLM(config).eval()


def batches(n: int = 2, seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (4, SEQ), generator=generator) for _ in range(n)]


def pattern_batch(rows: int, generator: torch.Generator) -> torch.Tensor:
    """Sequences a tiny model can learn: each token is 5 * previous + 3 (mod VOCAB)."""
    start = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    tokens = [start]
    for _ in range(SEQ - 1):
        tokens.append((tokens[-1] * 5 + 3) % VOCAB)
    return torch.cat(tokens, dim=1)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights counted once


@pytest.fixture(scope="module", params=FAMILIES)
def teacher(request):
    return tiny_teacher(request.param)


def test_sparsity_zero_gives_the_teachers_logits_exactly(teacher):
    ids = batches(1, seed=7)[0]
    student = prune_by_sparsity(teacher, 0.0, batches())
    assert student is not teacher
    with torch.no_grad():
        assert torch.equal(student(ids).logits, teacher(ids).logits)
    report = student.prune_report
    assert report.student == report.teacher == count_params(teacher.config.to_dict())


def test_pruning_leaves_the_teacher_untouched(teacher):
    ids = batches(1, seed=7)[0]
    with torch.no_grad():
        before = teacher(ids).logits.clone()
    prune_to_params(teacher, parameter_count(teacher) // 2, batches())
    with torch.no_grad():
        assert torch.equal(teacher(ids).logits, before)  # the importance hooks are gone
    assert not teacher.training


def test_pruned_model_round_trips_through_save_and_from_pretrained(teacher, tmp_path):
    student = prune_to_params(teacher, int(parameter_count(teacher) * 0.45), batches())
    ids = batches(1, seed=7)[0]
    student.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(teacher)
    volatile = {"transformers_version": None, "_name_or_path": None}
    assert loaded.config.to_dict() | volatile == student.config.to_dict() | volatile
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, student.eval()(ids).logits)
    report = student.prune_report
    assert parameter_count(loaded) == report.student.total
    assert report.hidden_size == report.num_heads * HEAD_DIM < HIDDEN
    tied = loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    assert tied == (teacher.config.model_type == "gpt2")  # GPT2 ties wte = lm_head, Pythia does not


@pytest.mark.parametrize("fraction", [0.95, 0.7, 0.5, 0.3, 0.15])
@pytest.mark.parametrize("measure", ["total", "nonembed"])
def test_size_meets_the_target_within_the_stated_tolerance(teacher, fraction, measure):
    full = getattr(count_params(teacher.config.to_dict()), measure)
    target = int(full * fraction)
    student = prune_to_params(teacher, target, batches(1), measure=measure)
    report = student.prune_report
    actual = getattr(report.student, measure)
    assert abs(actual - target) <= report.tolerance
    # The stated tolerance: 2% of the target or one neuron per layer; the plan lands within half a neuron.
    assert report.tolerance == max(math.ceil(0.02 * target), LAYERS * (2 * report.hidden_size + 1))
    assert abs(actual - target) <= LAYERS * (2 * report.hidden_size + 1) // 2 + 1
    assert report.target_params == target and report.measure == measure
    assert parameter_count(student) == report.student.total
    assert len(report.kept_hidden) == report.hidden_size
    assert all(len(k) == report.num_heads for k in report.kept_heads)
    assert all(len(k) == report.intermediate_size for k in report.kept_neurons)


@pytest.mark.parametrize("family", FAMILIES)
def test_units_with_no_effect_have_zero_importance_and_are_pruned_first(family):
    teacher = tiny_teacher(family)
    dead_head = {0: 2, 1: 0}  # layer -> head whose output projection is zeroed
    dead_neuron = {0: 17, 1: 200}
    dead_channel = 5  # residual channel no module ever writes
    blocks = teacher.transformer.h if family == "gpt2" else teacher.gpt_neox.layers
    with torch.no_grad():
        for layer, block in enumerate(blocks):
            heads = slice(dead_head[layer] * HEAD_DIM, (dead_head[layer] + 1) * HEAD_DIM)
            if family == "gpt2":  # Conv1D weights are (in, out)
                block.attn.c_proj.weight[heads, :] = 0
                block.mlp.c_proj.weight[dead_neuron[layer], :] = 0
                writers = [block.attn.c_proj, block.mlp.c_proj]
                columns = [w.weight[:, dead_channel] for w in writers]
            else:  # nn.Linear weights are (out, in)
                block.attention.dense.weight[:, heads] = 0
                block.mlp.dense_4h_to_h.weight[:, dead_neuron[layer]] = 0
                writers = [block.attention.dense, block.mlp.dense_4h_to_h]
                columns = [w.weight[dead_channel, :] for w in writers]
            for column, writer in zip(columns, writers):
                column.zero_()
                writer.bias[dead_channel] = 0
        teacher.get_input_embeddings().weight[:, dead_channel] = 0
        if family == "gpt2":
            teacher.transformer.wpe.weight[:, dead_channel] = 0

    importance = compute_importance(teacher, batches())
    for layer in range(LAYERS):
        assert importance.heads[layer, dead_head[layer]] == 0
        assert importance.heads[layer].count_nonzero() == HEADS - 1
        assert importance.neurons[layer, dead_neuron[layer]] == 0
    assert importance.hidden[dead_channel] == 0 and importance.hidden.count_nonzero() == HIDDEN - 1

    student = prune_by_sparsity(teacher, 1 - 0.75 ** 2, batches(), importance=importance)  # keep 3 of 4
    report = student.prune_report
    assert report.num_heads == HEADS - 1 and report.intermediate_size == INNER * 3 // 4
    for layer in range(LAYERS):
        assert dead_head[layer] not in report.kept_heads[layer]
        assert dead_neuron[layer] not in report.kept_neurons[layer]
    assert dead_channel not in report.kept_hidden


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_importance_ranking_keeps_more_of_a_trained_model_than_the_reverse(family):
    teacher = tiny_teacher(family).train()
    generator = torch.Generator().manual_seed(3)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    for _ in range(30):
        ids = pattern_batch(8, generator)
        teacher(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    teacher.eval()
    calib = [pattern_batch(8, generator) for _ in range(2)]
    held_out = pattern_batch(16, generator)
    importance = compute_importance(teacher, calib)
    reverse = MaskImportance(heads=-importance.heads, neurons=-importance.neurons, hidden=-importance.hidden)

    def loss_of(model):
        with torch.no_grad():
            return model(input_ids=held_out, labels=held_out).loss.item()

    target = parameter_count(teacher) // 2
    by_importance = loss_of(prune_to_params(teacher, target, calib, importance=importance))
    by_reverse = loss_of(prune_to_params(teacher, target, calib, importance=reverse))
    assert loss_of(teacher) < by_importance < by_reverse


def test_bfloat16_teacher_gives_a_bfloat16_student():
    teacher = tiny_teacher("gpt_neox").to(torch.bfloat16)
    student = prune_by_sparsity(teacher, 0.5, batches(1))
    assert next(student.parameters()).dtype == torch.bfloat16
    assert torch.isfinite(student(batches(1)[0]).logits.float()).all()


def test_bad_requests_are_refused_with_a_clear_line(teacher):
    total = count_params(teacher.config.to_dict()).total
    with pytest.raises(InputError, match="not smaller than the teacher"):
        prune_to_params(teacher, total, batches(1))
    with pytest.raises(InputError, match="not smaller than the teacher"):
        prune_to_params(teacher, total * 2, batches(1))
    with pytest.raises(InputError, match="smallest prunable"):
        prune_to_params(teacher, 100, batches(1))
    with pytest.raises(InputError, match="measure"):
        plan_shape(teacher, total // 2, measure="embedding")
    with pytest.raises(InputError, match="sparsity"):
        prune_by_sparsity(teacher, 1.0, batches(1))
    with pytest.raises(InputError, match="calibration"):
        prune_by_sparsity(teacher, 0.5, [])
    with pytest.raises(InputError, match="token ids outside"):
        prune_by_sparsity(teacher, 0.5, [torch.full((2, SEQ), VOCAB)])
    wrong = MaskImportance(heads=torch.ones(LAYERS, HEADS + 1), neurons=torch.ones(LAYERS, INNER),
                           hidden=torch.ones(HIDDEN))
    with pytest.raises(InputError, match="another model"):
        prune_by_sparsity(teacher, 0.5, batches(1), importance=wrong)


def embedding_heavy_teacher(family: str) -> torch.nn.Module:
    """A tiny teacher whose embeddings dominate its count (the case whole heads cannot cover)."""
    torch.manual_seed(0)
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=1024, n_embd=64, n_head=2, n_layer=2, n_inner=256,
                                          n_positions=SEQ, bos_token_id=0, eos_token_id=0)).eval()
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=1024, hidden_size=64, num_attention_heads=2,
                                            num_hidden_layers=2, intermediate_size=256, max_position_embeddings=SEQ,
                                            rotary_pct=0.25, bos_token_id=0, eos_token_id=0,
                                            tie_word_embeddings=False)).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_size_between_the_smallest_student_and_the_teacher_is_reachable(family):
    teacher = embedding_heavy_teacher(family)
    total = count_params(teacher.config.to_dict()).total
    importance = compute_importance(teacher, [torch.randint(0, 1024, (2, SEQ))])
    for fraction in (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        target = int(total * fraction)
        student = prune_to_params(teacher, target, [], importance=importance)
        report = student.prune_report
        assert abs(report.student.total - target) <= report.tolerance
        assert parameter_count(student) == report.student.total
        assert report.hidden_size == report.num_heads * report.head_dim
        # A scratch student gets exactly the pruned student's shape.
        fresh = student_config(teacher.config, target)
        assert count_params(fresh.to_dict()) == report.student
        out = student(input_ids=torch.randint(0, 1024, (1, 8))).logits
        assert out.shape == (1, 8, 1024) and torch.isfinite(out).all()


def test_a_cut_head_keeps_its_rotary_channels_and_the_attention_scale():
    teacher = embedding_heavy_teacher("gpt_neox")
    plan = plan_shape(teacher, int(count_params(teacher.config.to_dict()).total * 0.7))
    assert plan.head_dim < 32  # whole heads cannot reach 70% of this teacher
    student = prune_to_params(teacher, int(count_params(teacher.config.to_dict()).total * 0.7),
                              [torch.randint(0, 1024, (2, SEQ))])
    report = student.prune_report
    assert report.kept_head_channels[:8] == list(range(8))  # rotary: 25% of 32 channels, all kept
    assert student.base_model.layers[0].attention.rotary_ndims == 8


def test_sizes_outside_the_reachable_range_are_refused_with_the_range(teacher):
    total = count_params(teacher.config.to_dict()).total
    with pytest.raises(InputError, match=r"reachable from this teacher: \d+ to \d+ total parameters"):
        plan_shape(teacher, 100)
    with pytest.raises(InputError, match=r"reachable from this teacher: \d+ to \d+ total parameters"):
        plan_shape(teacher, total + 1)
