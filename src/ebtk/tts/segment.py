"""Split long text into pieces that the acoustic model and the vocoder take one at a time.

Why: the acoustic model was trained on single sentences, and vocoding a whole long text at once makes
memory grow with the text (10 000 characters took 13 GB). Pieces are sentences; a sentence longer than
`max_chars` is cut at clause punctuation (, ; : —), and a clause still too long at word boundaries. Each
piece carries the pause that follows it, so synthesis can join pieces with a short silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ebtk.errors import EbtkError

MAX_CHARS = 250
"""Longest piece in characters: about twice the corpus's longest sentence (20 words)."""
SENTENCE_PAUSE = 0.3
"""Seconds of silence after a sentence."""
CLAUSE_PAUSE = 0.15
"""Seconds of silence after a clause cut (a long sentence cut at , ; : —)."""
WORD_PAUSE = 0.05
"""Seconds of silence after a word cut (a long clause forced apart)."""

# A full stop after these is no sentence end ("Dr. Smith", "e.g. this", "J. Smith").
_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "mt", "inc", "ltd",
           "co", "fig", "approx", "dept", "est", "gen", "gov", "lt", "col", "sgt", "capt", "rev", "u.s", "a.m", "p.m"}
_SENTENCE_END = re.compile(r"""[.!?…]+["')\]]*(?=\s)""")
_CLAUSE_END = re.compile(r"""[,;:—]+["')\]]*(?=\s)""")


@dataclass(frozen=True)
class Piece:
    """One piece of a text: what to speak and the seconds of silence after it.

    Attributes:
        text: the piece's text, whitespace collapsed.
        pause: seconds of silence after it: `SENTENCE_PAUSE`, `CLAUSE_PAUSE` or `WORD_PAUSE`; 0 for the last piece.
    """

    text: str
    pause: float


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start:m.start()].split()
        word = before[-1].lower() if before else ""
        if m.group().startswith(".") and len(m.group()) == 1 and (word in _ABBREV or re.fullmatch(r"[a-z]", word)):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _split_at(text: str, rx: re.Pattern) -> list[str]:
    parts, start = [], 0
    for m in rx.finditer(text):
        parts.append(text[start:m.end()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _words(text: str, max_chars: int) -> list[str]:
    """Greedy runs of whole words of at most `max_chars` (a single longer word stays whole)."""
    out, cur = [], ""
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > max_chars:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return [*out, cur] if cur else out


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Join consecutive parts while they fit in `max_chars` (clauses stay together when they can)."""
    out: list[str] = []
    for p in parts:
        if out and len(out[-1]) + 1 + len(p) <= max_chars:
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return out


def split_text(text: str, max_chars: int = MAX_CHARS) -> list[Piece]:
    """Split `text` into pieces in reading order, each at most `max_chars` characters unless one word is longer.

    Sentences end at . ! ? … (not after a known abbreviation or a single-letter initial) followed by space.
    A longer sentence is cut at clause punctuation (clauses packed together while they fit), a clause still
    too long at word boundaries. Whitespace is collapsed.

    Args:
        text: the text to speak.
        max_chars: the longest piece in characters (≥ 1).

    Returns:
        The `Piece`s; the last one's pause is 0.

    Raises:
        EbtkError: `text` is empty or only whitespace, or `max_chars` < 1.
    """
    if max_chars < 1:
        raise EbtkError(f"max_chars must be ≥ 1, got {max_chars}")
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise EbtkError("the text is empty; hint: give a sentence to speak")
    pieces: list[Piece] = []
    for sentence in _sentences(text):
        if len(sentence) <= max_chars:
            pieces.append(Piece(sentence, SENTENCE_PAUSE))
            continue
        clauses = _pack(_split_at(sentence, _CLAUSE_END), max_chars)
        for c, clause in enumerate(clauses):
            last_clause = c == len(clauses) - 1
            runs = [clause] if len(clause) <= max_chars else _words(clause, max_chars)
            for r, run in enumerate(runs):
                end = r == len(runs) - 1
                pause = (SENTENCE_PAUSE if last_clause else CLAUSE_PAUSE) if end else WORD_PAUSE
                pieces.append(Piece(run, pause))
    pieces[-1] = Piece(pieces[-1].text, 0.0)
    return pieces


__all__ = ["CLAUSE_PAUSE", "MAX_CHARS", "SENTENCE_PAUSE", "WORD_PAUSE", "Piece", "split_text"]
