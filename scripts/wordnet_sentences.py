"""Regenerate ebtk's broad-coverage corpus text, ``src/ebtk/data/wordnet_sentences.txt``, from WordNet 3.0.

WordNet's glosses carry quoted example sentences ("she choked with emotion when she spoke about her deceased
husband"). This keeps those of 5-20 words made of letters and simple punctuation only, capitalises them and
ends each with a full stop (or its own ? / !), de-duplicates them and writes them sorted, one per line, next
to WordNet's licence notice (``WORDNET_LICENSE``). Only this script needs the Debian package; ``ebtk corpus
make`` reads the shipped list.

Usage (dev time): ``apt-get install -y wordnet-base && python3 scripts/wordnet_sentences.py``
(``--wordnet DIR`` for another WordNet 3.0 dict dir, ``--out DIR`` for another data dir).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MIN_WORDS, MAX_WORDS = 5, 20
# letters, spaces and simple punctuation; no digits (the grammar share brings numbers), no brackets or quotes
_ALLOWED = re.compile(r"[A-Za-z][A-Za-z ,;:'!?.\-]*")
_QUOTED = re.compile(r'"([^"]+)"')


def clean(example: str) -> str | None:
    """One quoted gloss example as a corpus sentence, or None when it is filtered out."""
    s = re.sub(r"\s+", " ", example).strip().rstrip(",;:- ").strip()
    if not _ALLOWED.fullmatch(s) or "--" in s or " -" in s or "- " in s or "..." in s:
        return None
    words = s.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if any(not re.search(r"[A-Za-z]", w) or w.startswith("'") for w in words):
        return None
    body = s.rstrip(".!?")
    if any(c in body for c in ".!?"):  # more than one sentence, or abbreviations: leave them out
        return None
    end = s[-1] if s[-1] in "!?" else "."
    return body[0].upper() + body[1:] + end


def extract(wordnet_dir: Path) -> list[str]:
    """Every cleaned example of data.{noun,verb,adj,adv}, de-duplicated and sorted."""
    out: set[str] = set()
    for pos in ("noun", "verb", "adj", "adv"):
        with open(wordnet_dir / f"data.{pos}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:  # the licence header
                    continue
                for ex in _QUOTED.findall(line.split("|", 1)[1]):
                    s = clean(ex)
                    if s is not None:
                        out.add(s)
    return sorted(out)


def licence(wordnet_dir: Path) -> str:
    """WordNet's licence notice, as the header of its data files carries it."""
    lines = []
    with open(wordnet_dir / "data.noun", encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "\n".join(lines).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 dict dir (data.noun, ...)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "ebtk" / "data"))
    a = p.parse_args(argv)
    src, out = Path(a.wordnet), Path(a.out)
    if not (src / "data.noun").is_file():
        print(f"error: {src}/data.noun not found; apt-get install -y wordnet-base", file=sys.stderr)
        return 2
    sentences = extract(src)
    notice = ("The sentences in wordnet_sentences.txt are example sentences from the glosses of WordNet 3.0,\n"
              "cleaned by scripts/wordnet_sentences.py (length, characters, capitalisation, full stop).\n\n"
              + licence(src))
    out.mkdir(parents=True, exist_ok=True)
    (out / "wordnet_sentences.txt").write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    (out / "WORDNET_LICENSE").write_text(notice, encoding="utf-8")
    vocab = {w for s in sentences for w in re.findall(r"[a-z]+(?:'[a-z]+)?", s.lower())}
    print(f"{len(sentences)} sentences, {len(vocab)} distinct words -> {out / 'wordnet_sentences.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
