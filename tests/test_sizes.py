import pytest

from capgap.core.errors import InputError
from capgap.sizes.ladders import KNOWN_LADDERS, get_ladder, read_ladder_csv
from capgap.sizes.units import count_params, distill_flops, format_size, gpt2_config, parse_size

EXACT_TOTALS = {
    "gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200,
    "pythia-70m": 70_426_624, "pythia-160m": 162_322_944, "pythia-410m": 405_334_016,
    "pythia-1b": 1_011_781_632, "pythia-1.4b": 1_414_647_808, "pythia-2.8b": 2_775_208_960,
    "pythia-6.9b": 6_857_302_016, "pythia-12b": 11_846_072_320,
}


@pytest.mark.parametrize("text, expected", [
    ("70M", 70_000_000), ("1.3B", 1_300_000_000), ("350k", 350_000), ("1.3e9", 1_300_000_000),
    ("124439808", 124_439_808), (124439808, 124_439_808), (1.3e9, 1_300_000_000), (" 2.5m ", 2_500_000),
    ("1_000", 1000), ("12b", 12_000_000_000),
])
def test_parse_size_accepts_the_documented_forms(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["1.3X", "", "abc", "-5M", "0", "1.3BB", "nan", "inf", "M"])
def test_parse_size_rejects_with_the_input_quoted(text):
    with pytest.raises(InputError) as info:
        parse_size(text)
    assert repr(text) in str(info.value) or str(text) in str(info.value)


def test_known_ladders_match_the_published_exact_totals():
    counted = {m.name: m.params for ladder in KNOWN_LADDERS.values() for m in ladder}
    assert counted == EXACT_TOTALS


def test_nonembedding_counts_follow_the_pythia_paper():
    pythia = {m.name: m.params_nonembed for m in KNOWN_LADDERS["pythia"]}
    # Pythia paper (Biderman et al. 2023, Table 1) non-embedding counts.
    assert pythia["pythia-70m"] == 18_915_328
    assert pythia["pythia-160m"] == 85_056_000
    assert pythia["pythia-1b"] == 805_736_448
    gpt2 = {m.name: m.params_nonembed for m in KNOWN_LADDERS["gpt2"]}
    # GPT2 small: the 12 blocks + final LayerNorm, without wte and wpe.
    assert gpt2["gpt2"] == 124_439_808 - 50257 * 768 - 1024 * 768


def test_untied_gpt2_head_counts_an_extra_vocab_matrix():
    tied = count_params(gpt2_config(2, 64, 2, vocab_size=100, n_positions=32))
    untied = count_params({**gpt2_config(2, 64, 2, vocab_size=100, n_positions=32), "tie_word_embeddings": False})
    assert untied.total - tied.total == 100 * 64
    assert untied.nonembed == tied.nonembed


def test_unknown_model_type_is_refused():
    with pytest.raises(InputError, match="llama"):
        count_params({"model_type": "llama"})


def test_distill_flops_reproduces_the_minima_figure():
    # MiniMA: 3B student, 6.7B teacher, 126B tokens -> about 4.0e21 FLOPs (DESIGN.md).
    flops = distill_flops(3e9, 6.7e9, 126e9)
    assert flops == pytest.approx(6 * 3e9 * 126e9 + 2 * 6.7e9 * 126e9)
    assert 3.9e21 < flops < 4.1e21
    assert distill_flops(1, 2, 10, teacher_pretrain_tokens=100) == 6 * 10 + 2 * 2 * 10 + 6 * 2 * 100


def test_format_size():
    assert format_size(124_439_808) == "124M"
    assert format_size(1.3e9) == "1.3B"
    assert format_size(350_000) == "350k"


def test_ladder_csv(tmp_path):
    path = tmp_path / "ladder.csv"
    path.write_text("name,params\nbig,1.3B\nsmall,70M\n")
    models = read_ladder_csv(path)
    assert [m.name for m in models] == ["small", "big"]
    assert models[1].params == 1_300_000_000
    bad = tmp_path / "bad.csv"
    bad.write_text("model,size\nx,1\n")
    with pytest.raises(InputError, match="name"):
        read_ladder_csv(bad)
    with pytest.raises(InputError, match="unknown ladder"):
        get_ladder("llama")
    assert get_ladder("none") == []
