"""A few distillation steps of a tiny pair; run plainly or under torchrun (tests/test_parallel.py).

Writes the student's final weights and the logged losses (rank 0 only) to the path given. A second
argument ``moe`` makes the student an MoE student (4 experts, no router noise, so the two runs see the
same routing): some experts then get no token on one process, and DDP must still see every parameter.
"""

from __future__ import annotations

import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from capgap.measure.fused_loss import HiddenAndHead, fused_distill_loss
from capgap.measure.parallel import (close_distributed, init_distributed, loss_normalizer, mean_over_processes,
                                     shard_batch, wrap_model)

VOCAB, SEQ, GLOBAL_BATCH, STEPS = 96, 16, 4, 3


def tiny_lm(layers: int, width: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=2, vocab_size=VOCAB, n_positions=SEQ,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    batches = []
    for step in range(STEPS):
        tokens = torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ + 1), generator=gen)
        labels = tokens[:, 1:].clone()
        labels[step % GLOBAL_BATCH, : SEQ // 2] = -100  # uneven label counts across ranks
        batches.append((tokens[:, :-1], labels))
    return batches


def main(out_path: str, kind: str = "dense") -> None:
    context = init_distributed("cpu")
    teacher = tiny_lm(2, 48, seed=10).eval()
    lm = tiny_lm(1, 32, seed=20)
    if kind == "moe":
        from capgap.measure.moe import to_moe

        to_moe(lm, 4, seed=0, noise=0.0)
    student = HiddenAndHead(lm)
    model = wrap_model(student, context)
    # SGD, not Adam: Adam turns rounding noise in gradients that are zero in exact arithmetic
    # (the attention key bias) into full-size steps, which says nothing about DDP.
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for tokens, labels in global_batches():
        tokens, labels = shard_batch(tokens, context), shard_batch(labels, context)
        with torch.no_grad():
            teacher_hidden = teacher.transformer(tokens).last_hidden_state
        hidden, head = model(tokens)
        parts = fused_distill_loss(hidden, head, labels, teacher_hidden=teacher_hidden,
                                   teacher_head=teacher.lm_head.weight, normalizer=loss_normalizer(labels, context),
                                   chunk_positions=7)
        parts.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(mean_over_processes(parts.total, context).item())
    if context.is_main:
        torch.save({"state": student.state_dict(), "losses": losses, "world_size": context.world_size}, out_path)
    del model  # the DDP wrapper goes before the process group (see close_distributed)
    close_distributed(context)


if __name__ == "__main__":
    main(*sys.argv[1:3])
