"""Measure parts: model shapes and counts, tokenizers, corpora, training determinism, evaluation."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capgap.core.errors import InputError  # noqa: E402
from capgap.measure.corpus import load_corpus  # noqa: E402
from capgap.measure.evaluate import eval_loss, lambada_acc, read_lambada  # noqa: E402
from capgap.measure.models import family_of, load_pretrained, new_model, param_count, parse_spec, rung_config  # noqa: E402
from capgap.measure.students import scratch_student, student_config  # noqa: E402
from capgap.measure.tokenizer import encode, gpt2_tokenizer, train_bpe, vocab_fingerprint  # noqa: E402
from capgap.measure.train import TrainConfig, train  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("family", ["gpt2", "pythia"])
@pytest.mark.parametrize("spec", ["L1-d32", "L2-d64", "L3-d256"])
def test_config_counts_match_the_built_model(family: str, spec: str) -> None:
    model = new_model(rung_config(family, parse_spec(spec), vocab_size=300, seq_len=64), seed=0)
    counts = param_count(model.config)
    assert counts.total == sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel()
    if family == "gpt2":  # tied output layer; position embeddings are not "non-embedding"
        embeddings += model.transformer.wpe.weight.numel()
    else:
        embeddings += model.get_output_embeddings().weight.numel()
    assert counts.nonembed == counts.total - embeddings
    assert family_of(model.config) == family


def test_size_specs_and_heads() -> None:
    assert [parse_spec(s).heads for s in ("L2-d32", "L2-d64", "L4-d128", "L12-d768", "L24-d1024")] == [1, 2, 4, 12, 16]
    for bad in ("L2d64", "L0-d64", "L2-d50", "4x128"):
        with pytest.raises(InputError, match="L<layers>-d<width>"):
            parse_spec(bad)


def test_scratch_student_has_the_pruned_shape_and_target_size() -> None:
    teacher = new_model(rung_config("pythia", parse_spec("L2-d128"), vocab_size=300, seq_len=64), seed=0)
    config = student_config(teacher.config, 150_000)
    assert config.num_hidden_layers == 2 and config.hidden_size % config.num_attention_heads == 0
    student = scratch_student(teacher, 150_000, seed=1)
    assert abs(sum(p.numel() for p in student.parameters()) - 150_000) < 300
    with pytest.raises(InputError, match="not smaller than the teacher"):
        student_config(teacher.config, param_count(teacher.config).total)


def test_checkpoint_round_trip_and_offline_hub_name(tmp_path: Path) -> None:
    model = new_model(rung_config("gpt2", parse_spec("L1-d32"), vocab_size=300, seq_len=32), seed=0)
    model.save_pretrained(tmp_path / "m")
    loaded = load_pretrained(str(tmp_path / "m"), "model")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    with pytest.raises(InputError, match="unreachable"):
        load_pretrained("gpt2-medium", "config")
    with pytest.raises(InputError, match="not found"):
        load_pretrained(str(tmp_path / "missing"), "config")


def test_gpt2_tokenizer_matches_openai_ids() -> None:
    tokenizer = gpt2_tokenizer()
    assert len(tokenizer) == 50257
    assert tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    assert tokenizer.decode(encode(tokenizer, "To be, or not to be\n").tolist()) == "To be, or not to be\n"


def test_trained_bpe_saves_and_reloads(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    text = load_corpus("shakespeare").heldout_text[:50_000]
    tokenizer = train_bpe(text, 400)
    tokenizer.save_pretrained(tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert len(reloaded) == 400 and vocab_fingerprint(reloaded) == vocab_fingerprint(tokenizer)
    assert vocab_fingerprint(tokenizer) != vocab_fingerprint(train_bpe(text, 390))
    sample = text[:2000]
    assert reloaded.decode(encode(reloaded, sample).tolist()) == sample


def test_corpus_split_is_deterministic_disjoint_and_reads_gz_and_folders(tmp_path: Path) -> None:
    words = [f"line {i} " + "x" * (i % 50) for i in range(20_000)]
    (tmp_path / "a.txt").write_text("\n".join(words[:10_000]))
    with gzip.open(tmp_path / "b.txt.gz", "wt") as handle:
        handle.write("\n".join(words[10_000:]))
    first, second = load_corpus(tmp_path), load_corpus(str(tmp_path))
    assert first == second
    assert 0.03 < len(first.heldout_text) / (len(first.train_text) + len(first.heldout_text)) < 0.07
    assert "line 19999" in first.train_text + first.heldout_text  # the .gz file was read
    assert load_corpus(tmp_path / "b.txt.gz").name == "b.txt.gz"
    with pytest.raises(InputError, match="not found"):
        load_corpus(tmp_path / "nope")


def test_training_is_deterministic_under_a_seed_and_learns() -> None:
    ids = torch.tensor([i % 17 for i in range(20_000)])  # a periodic sequence: easy to learn
    config = TrainConfig(tokens=16384, seq_len=32, batch_tokens=512, lr=1e-2, seed=3)

    def trained(seed: int) -> torch.nn.Module:
        model = new_model(rung_config("gpt2", parse_spec("L1-d32"), vocab_size=17, seq_len=32), seed=0)
        train(model, ids, replace(config, seed=seed))
        return model

    untrained = new_model(rung_config("gpt2", parse_spec("L1-d32"), vocab_size=17, seq_len=32), seed=0)
    assert eval_loss(untrained, ids[:2048], seq_len=32) > 0.9 * math.log(17)
    a, b, c = trained(3), trained(3), trained(4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    assert eval_loss(a, ids[:2048], seq_len=32) < 0.5 * math.log(17)


class _Oracle(torch.nn.Module):
    """Logits that put all mass on the next token of the input (shift=1) or on the current one (shift=0)."""

    def __init__(self, vocab: int, shift: int) -> None:
        super().__init__()
        self.vocab, self.shift, self.anchor = vocab, shift, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        target = torch.roll(input_ids, -self.shift, dims=-1)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(target, self.vocab).float() * 20.0)


def test_eval_loss_of_uniform_logits_is_log_vocab() -> None:
    ids = torch.randint(0, 50, (640,))
    uniform = _Oracle(50, 0)
    uniform.forward = lambda input_ids: SimpleNamespace(logits=torch.zeros(*input_ids.shape, 50))  # type: ignore[method-assign]
    assert eval_loss(uniform, ids, seq_len=64) == pytest.approx(math.log(50))


def test_lambada_scores_the_last_word_with_correct_alignment(tmp_path: Path) -> None:
    tokenizer = gpt2_tokenizer()
    path = tmp_path / "lambada.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in
                              ["the cat sat upon the windowsill", "she opened the door and saw Mercutio"]))
    texts = read_lambada(path)
    assert lambada_acc(_Oracle(len(tokenizer), 1), tokenizer, texts, seq_len=64) == 1.0
    assert lambada_acc(_Oracle(len(tokenizer), 0), tokenizer, texts, seq_len=64) == 0.0
    (tmp_path / "bad.jsonl").write_text('{"txt": "x"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        read_lambada(tmp_path / "bad.jsonl")
