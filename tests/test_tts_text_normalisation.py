"""The text-normalisation case table (tests/text_normalisation_cases.tsv): everyday text read as a speaker would.

ebtk's own normaliser is the one `ebtk synthesize` uses and must pass every case; NeMo's score on the same
table is measured, not asserted, by benchmarks/tts_normaliser.py (results/tts/normaliser.md).
"""

from __future__ import annotations

import pytest

from bench_fixtures import load_benchmark

bench = load_benchmark("tts_normaliser")
CASES = bench.read_cases()


def test_the_table_covers_the_kinds_of_everyday_text():
    kinds = {c["category"] for c in CASES}
    assert len(CASES) >= 60
    assert {"date", "time", "money", "ordinal", "decimal", "percent", "unit", "abbreviation", "roman", "phone",
            "url", "scientific"} <= kinds
    inputs = " ".join(c["input"] for c in CASES)
    for failing in ("3/4/2025", "5pm", "1e6", "Q3", "2^20", "555-123-4567"):  # issue 35's failures
        assert failing in inputs
    assert all(c["expected"] and not any(ch.isdigit() for e in c["expected"] for ch in e) for c in CASES)


def test_readings_are_compared_as_words():
    assert bench.reading_key("One hundred and five-six, Q!") == "one hundred five six q"
    assert bench.reading_key("at five PM, WWW") == bench.reading_key("at five p m, w w w") == "at five p m w w w"
    assert bench.passes("It costs three dollars fifty cents", ["It costs three dollars and fifty cents."])
    assert not bench.passes("fivepm", ["five p m", "five pm"])
    assert not bench.passes("three slash four slash twenty twenty-five", ["March fourth, twenty twenty-five"])


@pytest.mark.parametrize("case", CASES, ids=[f"{c['category']}:{c['input']}" for c in CASES])
def test_ebtk_normaliser_reads_the_case(case):
    from ebtk.tts.text import normalize_text

    out = normalize_text(case["input"])
    assert bench.passes(out, case["expected"]), f"{case['input']!r} -> {out!r}, expected {case['expected'][0]!r}"


def test_the_bundled_grammar_reads_as_before():
    """The new rules leave the built-in grammar's sentences (the shipped model's corpus) as they were read."""
    from ebtk.tts.corpus import grammar_sentences
    from ebtk.tts.text import normalize_text

    got = {s: normalize_text(s) for s in grammar_sentences(400, 0)}
    assert got["Did Ruth buy the gentle student last winter?"] == "Did Ruth buy the gentle student last winter?"
    assert all(not any(ch.isdigit() for ch in v) for v in got.values())
    assert not any(w in v for v in got.values() for w in (" to the power of", " dot ", " slash ", " times ten"))
