"""Long text is split into pieces: sentences, then clauses, then runs of words; never mid-word, in order."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebtk.errors import EbtkError
from ebtk.tts.segment import CLAUSE_PAUSE, SENTENCE_PAUSE, WORD_PAUSE, split_text


def test_sentences_with_their_pauses():
    pieces = split_text("Open the door. Is it late?  Yes!  \n Go home")
    assert [p.text for p in pieces] == ["Open the door.", "Is it late?", "Yes!", "Go home"]
    assert [p.pause for p in pieces] == [SENTENCE_PAUSE] * 3 + [0.0]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence():
    text = "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today, e.g. for tea. Then he left."
    assert [p.text for p in split_text(text)] == [
        "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today, e.g. for tea.", "Then he left."]


def test_a_long_sentence_is_cut_at_clauses_then_words():
    clause = "the quick brown fox jumps over the lazy dog"
    sentence = ", ".join([clause] * 4) + "."  # 4 clauses of 43 characters
    pieces = split_text(sentence, max_chars=100)
    # clauses are packed while they fit: two per piece
    assert [p.text for p in pieces] == [f"{clause}, {clause},", f"{clause}, {clause}."]
    assert [p.pause for p in pieces] == [CLAUSE_PAUSE, 0.0]
    words = split_text(" ".join(["word"] * 30), max_chars=20)  # no punctuation at all
    assert all(len(p.text) <= 20 for p in words) and {p.pause for p in words[:-1]} == {WORD_PAUSE}
    assert " ".join(p.text for p in words) == " ".join(["word"] * 30)


def test_a_word_longer_than_the_limit_stays_whole():
    long = "x" * 30
    assert [p.text for p in split_text(f"a {long} b", max_chars=10)] == ["a", long, "b"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_an_error(text):
    with pytest.raises(EbtkError, match="empty"):
        split_text(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["alpha", "be", "Dr.", "gamma,", "delta.", "eps!", "z?", "3.5", "—", "x;"]),
                min_size=1, max_size=120), st.integers(min_value=5, max_value=60))
def test_pieces_keep_every_word_in_order_within_the_limit(words, max_chars):
    text = " ".join(words)
    pieces = split_text(text, max_chars=max_chars)
    assert " ".join(p.text for p in pieces).split() == text.split()  # nothing lost, added or reordered
    for p in pieces:
        assert len(p.text) <= max_chars or " " not in p.text  # only a lone over-long word may exceed it
        assert p.text == p.text.strip() and not re.search(r"\s{2}", p.text)
    assert pieces[-1].pause == 0.0 and all(p.pause > 0 for p in pieces[:-1])
