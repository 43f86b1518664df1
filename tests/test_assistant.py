"""Teacher assistants the MiniDisc way, on tiny models: nested candidates, the sandwich step, scoring, the chain."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: E402

from capgap.commands.cli import main  # noqa: E402
from capgap.measure import prune  # noqa: E402
from capgap.measure.sandwich import (CandidateScore, Sandwich, choose, performance, sandwich_gradients,  # noqa: E402
                                      sandwich_sample, tradeoff, train_sandwich)
from capgap.measure.config import TrainConfig  # noqa: E402
from capgap.measure.loss import distill_loss  # noqa: E402
from capgap.runs.store import RunStore  # noqa: E402

VOCAB, SEQ = 100, 16
SPARSITIES = [("0.3", 0.3), ("0.5", 0.5), ("0.7", 0.7), ("0.85", 0.85)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # the test machine is shared; tiny models gain nothing from threads


def tiny(family: str):
    torch.manual_seed(0)
    if family == "gpt2":  # dropout off: the sandwich and the extracted model must agree to the bit
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=64, n_head=4, n_layer=2, n_inner=128,
                                          n_positions=SEQ, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                          bos_token_id=0, eos_token_id=0)).eval()
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4,
                                            num_hidden_layers=2, intermediate_size=128, max_position_embeddings=SEQ,
                                            bos_token_id=0, eos_token_id=0)).eval()


def ids(rows: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (rows, SEQ), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["gpt2", "gpt_neox"])
def built(request):
    teacher = tiny(request.param)
    importance = prune.compute_importance(teacher, [ids(4), ids(4, seed=2)])
    return teacher, importance, Sandwich(teacher, SPARSITIES, importance)


def test_candidates_are_nested_largest_first(built) -> None:
    _, _, sandwich = built
    sizes = [c.params.total for c in sandwich.candidates]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    for big, small in zip(sandwich.candidates, sandwich.candidates[1:]):
        a, b = big.model.prune_report, small.model.prune_report
        assert set(b.kept_hidden) <= set(a.kept_hidden)
        for layer in range(2):
            assert set(b.kept_heads[layer]) <= set(a.kept_heads[layer])
            assert set(b.kept_neurons[layer]) <= set(a.kept_neurons[layer])
    for i in range(len(sizes) - 1):  # the shared weights themselves: every element of a smaller one is a larger one's
        larger, smaller = sandwich.elements(i), sandwich.elements(i + 1)
        assert all(used <= larger[name] for name, used in smaller.items())
        assert sum(map(len, smaller.values())) < sum(map(len, larger.values()))


def test_sandwich_forward_is_the_extracted_model_and_the_pruned_one(built) -> None:
    teacher, importance, sandwich = built
    x = ids(2, seed=5)
    for index, c in enumerate(sandwich.candidates):
        with torch.no_grad():
            shared = sandwich.logits(index, x)
            extracted = sandwich.extract(index)(input_ids=x).logits
            pruned = prune.prune_by_sparsity(teacher, c.nominal_sparsity, [], importance=importance)(input_ids=x).logits
        assert torch.equal(shared, extracted) and torch.equal(extracted, pruned)


def test_sandwich_gradient_is_the_sum_of_the_sampled_candidates_gradients() -> None:
    teacher = tiny("gpt2")
    sandwich = Sandwich(teacher, SPARSITIES, prune.compute_importance(teacher, [ids(4)]))
    config = TrainConfig(tokens=64, seq_len=SEQ - 1, alpha=0.5)
    batch, chosen = ids(3, seed=7), [0, 2, 3]
    sandwich_gradients(sandwich, teacher, batch, chosen, config)
    got = {n: p.grad.clone() for n, p in sandwich.supernet.named_parameters() if p.grad is not None}
    # The same by hand: each candidate as a standalone model, its gradients scattered back to the teacher's shape.
    want = {n: torch.zeros_like(p) for n, p in sandwich.supernet.named_parameters()}
    with torch.no_grad():
        teacher_logits = teacher(input_ids=batch[:, :-1]).logits
    for index in chosen:
        model = sandwich.extract(index)
        distill_loss(model(input_ids=batch[:, :-1]).logits, teacher_logits, batch[:, 1:], alpha=0.5).total.backward()
        params = dict(model.named_parameters())
        for name, (source, flat, _) in sandwich.candidates[index].sources.items():
            want[source].view(-1).index_add_(0, flat, params[name].grad.reshape(-1))
    assert set(got) == set(want)
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-6), name
    only_in_unsampled = sandwich.elements(1)["transformer.h.0.mlp.c_fc.weight"] - \
        sandwich.elements(2)["transformer.h.0.mlp.c_fc.weight"]
    grad = got["transformer.h.0.mlp.c_fc.weight"].view(-1)
    assert grad[sorted(only_in_unsampled)].abs().sum() > 0  # the largest candidate uses them too


def test_one_sandwich_step_changes_the_weights_of_every_sampled_candidate() -> None:
    teacher = tiny("gpt_neox")
    sandwich = Sandwich(teacher, SPARSITIES, prune.compute_importance(teacher, [ids(4)]))
    before = [dict(sandwich.extract(i).named_parameters()) for i in range(4)]
    config = TrainConfig(tokens=60, seq_len=15, batch_tokens=60, micro_batch=2, lr=1e-2)
    run = train_sandwich(sandwich, teacher, torch.randint(0, VOCAB, (400,)), config, k=1)
    assert run.steps == 1 and len(run.sampled) == 1
    sampled = run.sampled[0]
    assert sampled[0] == 0 and sampled[-1] == 3 and len(sampled) == 3
    for index in sampled:
        after = dict(sandwich.extract(index).named_parameters())
        changed = [name for name in after if not torch.equal(after[name], before[index][name])]
        assert len(changed) == len(after), f"candidate {index}: only {changed} changed"
    assert teacher is not sandwich.supernet
    counts = [c.params.total for c in sandwich.candidates]
    assert run.flops == run.tokens * (2 * sandwich.teacher_params + 6 * sum(counts[i] for i in sampled))


def test_sampling_keeps_the_ends_and_draws_k_distinct_middles() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = [sandwich_sample(6, 2, generator) for _ in range(50)]
    assert all(d[0] == 0 and d[-1] == 5 and len(d) == 4 and len(set(d)) == 4 for d in draws)
    assert {i for d in draws for i in d[1:-1]} == {1, 2, 3, 4}  # uniform over the middle: all of them show up
    assert sandwich_sample(4, 5, generator) == [0, 1, 2, 3] and sandwich_sample(1, 2, generator) == [0]
    assert sandwich_sample(5, 0, generator) == [0, 4]


def test_tradeoff_and_the_choice_is_its_argmax() -> None:
    assert performance(3.0, 3.0) == 1.0 and math.isclose(performance(3.5, 3.0), math.exp(-0.5))
    assert math.isclose(tradeoff(0.8, 0.5, 0.2), 0.9)

    def score(spec: str, loss: float, sparsity: float, lam: float = 0.2) -> CandidateScore:
        m = performance(loss, 3.0)
        return CandidateScore(spec, sparsity, sparsity, 10, 5, loss, m, tradeoff(m, sparsity, lam))

    scores = [score("a", 3.05, 0.3), score("b", 3.1, 0.6), score("c", 3.9, 0.9)]
    ts = [s.tradeoff for s in scores]
    assert choose(scores) == ts.index(max(ts)) == 1
    assert choose([score("a", 3.05, 0.3, lam=0), score("b", 3.2, 0.6, lam=0)]) == 0  # lambda 0: best performance
    assert choose([score("a", 3.0, 0.0, lam=10), score("c", 3.9, 0.9, lam=10)]) == 1  # large lambda: sparsest
    tie = CandidateScore("d", 0.2, 0.2, 10, 5, 3.0, 1.0, 1.0)
    assert choose([CandidateScore("e", 0.5, 0.5, 5, 2, 3.0, 1.0, 1.0), tie]) == 1  # tie: the larger


# -- the command, end to end ----------------------------------------------------

FLAGS = ["--student", "15k", "--candidates", "0.6,0.8", "--tokens", "1k", "--seq-len", "32", "--batch-tokens",
         "512", "--eval-tokens", "1k", "--no-wikitext", "--quiet"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("ladder") / "ladder"
    assert main(["ladder", "train", "--family", "gpt2", "--sizes", "L2-d64", "--tokens", "4k", "--vocab-size", "300",
                 "--seq-len", "32", "--batch-tokens", "512", "--quiet", "--corpus", str(tiny_corpus),
                 "--out", str(out)]) == 0
    return out / "gpt2-L2-d64"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_killed_compare_run_resumes_without_duplicates_and_records_the_chain(teacher_dir, tiny_corpus, tmp_path,
                                                                             capsys, kill_after_first_record) -> None:
    store = tmp_path / "runs.jsonl"
    argv = ["assistant", "--teacher", str(teacher_dir), "--corpus", str(tiny_corpus), "--runs", str(store),
            *FLAGS, "--compare"]
    env = kill_after_first_record(argv, store)
    done = len(_lines(store))
    assert 1 <= done < 7  # 1 assistant + 1 student + 1 direct + 2 x (assistant, student)
    finished = subprocess.run([sys.executable, "-m", "capgap", *argv], env=env, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"runs: {done} already recorded, {7 - done} added" in finished.stdout
    assert "exhaustive search (best of 2" in finished.stdout and "FLOPs / direct" in finished.stdout
    records = RunStore(store).load(strict=True)
    assert len({r.run_id for r in records}) == len(records) == 7

    capsys.readouterr()
    assert main([*argv, "--json"]) == 0  # everything recorded: nothing runs, nothing is written
    out = json.loads(capsys.readouterr().out)
    assert len(_lines(store)) == 7 and out["written"] == [] and out["skipped"] == 7
    for c in out["candidates"]:
        assert math.isclose(c["tradeoff"], c["performance"] + 0.2 * c["sparsity"])
        assert math.isclose(c["performance"], math.exp(out["teacher_loss"] - c["eval_loss"]))
        assert math.isclose(c["sparsity"], 1 - c["params"] / out["teacher_params"])
    assert out["chosen"] == max(out["candidates"], key=lambda c: c["tradeoff"])
    assert out["performance"] == "exp(teacher_loss - eval_loss)" and out["lambda"] == 0.2
    flops = out["flops"]
    assert 0 < flops["scoring"] < flops["one_chain_per_candidate"]
    by_id = {r.run_id: r for r in records}
    assistant, student = by_id[out["run_ids"]["minidisc_assistant"]], by_id[out["run_ids"]["minidisc_student"]]
    assert assistant.student_init == "sandwich" and assistant.extra["scoring_flops"] == flops["scoring"]
    assert assistant.student_params == out["chosen"]["params"] == student.extra["assistant_params"]
    assert student.teacher_params == assistant.student_params > student.student_params
    chain = student.extra["chain"]
    assert [step["role"] for step in chain] == ["teacher", "assistant"]
    assert chain[0]["params"] == out["teacher_params"] and chain[1]["run_id"] == assistant.run_id
    assert (Path(out["checkpoint"]) / "config.json").is_file()
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(out["checkpoint"])
    assert sum(p.numel() for p in loaded.parameters()) == assistant.student_params
    roles = sorted(r.extra["role"] for r in records)
    assert roles == ["direct", "exhaustive-assistant", "exhaustive-assistant", "exhaustive-student",
                     "exhaustive-student", "minidisc-assistant", "minidisc-student"]
    assert [row["relative"] for row in out["rows"]][0] == 1.0
    assert math.isclose(out["rows"][0]["flops"], by_id[out["run_ids"]["direct"]].flops)


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("capgap: error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("change, message", [
    (["--candidates", "0.5,1.5x"], "--candidates size"),
    (["--candidates", "0,0.5"], "out of range"),
    (["--lambda", "-1"], "--lambda"),
    (["--k", "-1"], "--k"),
    (["--student", "50k", "--candidates", "0.8"], "not larger than the student"),
])
def test_bad_input_is_one_line_and_writes_nothing(teacher_dir, tiny_corpus, tmp_path, capsys, change, message) -> None:
    store = tmp_path / "runs.jsonl"
    flags = dict(zip(FLAGS[0:-2:2], FLAGS[1:-2:2]))
    flags.update(dict(zip(change[0::2], change[1::2])))
    argv = ["assistant", "--teacher", str(teacher_dir), "--corpus", str(tiny_corpus), "--runs", str(store),
            *[x for kv in flags.items() for x in kv], "--no-wikitext", "--quiet"]
    assert message in _refused(argv, capsys)
    assert not store.exists()
