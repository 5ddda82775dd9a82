"""Text front-end: English normalisation (numbers, dates, money, abbreviations) and espeak-ng phonemes -> ids.

Phonemes come from phonemizer's espeak backend (en-us, with stress marks, punctuation kept), one character per
symbol. The symbol table is fixed in code (pad, punctuation, space, the IPA letters espeak en-us emits), so ids
are stable across machines; it is saved with checkpoints via :meth:`TextFrontend.state_dict`.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import warnings
from typing import Any

from ebtk.errors import EbtkError

# ---------------------------------------------------------------------------------------------- numbers

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORD_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def _below_1000(n: int) -> str:
    parts = []
    if n >= 100:
        parts.append(f"{_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        parts.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n > 0 or not parts:
        parts.append(_ONES[n])
    return " ".join(parts)


def number_to_words(n: int) -> str:
    """Cardinal English words for an integer (|n| < 10**15); larger numbers are read digit by digit."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    if n < 1000:
        return _below_1000(n)
    parts = []
    for value, name in _SCALES:
        if n >= value:
            parts.append(f"{_below_1000(n // value)} {name}")
            n %= value
    if n:
        parts.append(_below_1000(n))
    return " ".join(parts)


def ordinal_to_words(n: int) -> str:
    """Ordinal words: 1 -> first, 22 -> twenty-second, 100 -> one hundredth."""
    words = number_to_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORD_IRREGULAR:
        last = _ORD_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_to_words(n: int) -> str:
    """Read a year the way people say it: 1999 -> nineteen ninety-nine, 2005 -> two thousand five, 1900 -> nineteen
    hundred, 2021 -> twenty twenty-one."""
    if 2000 <= n < 2010 or n % 1000 == 0 or not 1000 <= n < 10000:
        return number_to_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    return f"{number_to_words(hi)} {'oh ' if lo < 10 else ''}{number_to_words(lo)}"


def _digits(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s)


# --------------------------------------------------------------------------------------------- patterns

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_MONTH_RE = "|".join(_MONTHS)

_ABBREVIATIONS = [  # (regex, replacement); applied in order, case-sensitive
    (r"\bMrs\.", "Missus"), (r"\bMr\.", "Mister"), (r"\bMs\.", "Miz"), (r"\bDr\.", "Doctor"),
    (r"\bProf\.", "Professor"), (r"\bJr\.", "Junior"), (r"\bSr\.", "Senior"), (r"\bCapt\.", "Captain"),
    (r"\bGen\.", "General"), (r"\bGov\.", "Governor"), (r"\bLt\.", "Lieutenant"), (r"\bCol\.", "Colonel"),
    (r"\bSgt\.", "Sergeant"), (r"\bRev\.", "Reverend"), (r"\bHon\.", "Honorable"), (r"\bMt\.", "Mount"),
    (r"\bSt\.(?=\s+[A-Z])", "Saint"), (r"\bSt\.", "Street"), (r"\bAve\.", "Avenue"), (r"\bRd\.", "Road"),
    (r"\bBlvd\.", "Boulevard"), (r"\bCo\.", "Company"), (r"\bCorp\.", "Corporation"), (r"\bInc\.", "Incorporated"),
    (r"\bLtd\.", "Limited"), (r"\bDept\.", "Department"), (r"\bNo\.(?=\s*\d)", "number"),
    (r"\betc\.", "et cetera"), (r"\be\.g\.", "for example"), (r"\bi\.e\.", "that is"), (r"\bvs\.", "versus"),
    (r"\bapprox\.", "approximately"), (r"\bJan\.", "January"), (r"\bFeb\.", "February"), (r"\bAug\.", "August"),
    (r"\bSept?\.", "September"), (r"\bOct\.", "October"), (r"\bNov\.", "November"), (r"\bDec\.", "December"),
    (r"\ba\.m\.", "a m"), (r"\bp\.m\.", "p m"), (r"\bU\.S\.", "U S"), (r"\bkm\b", "kilometers"),
    (r"\bkg\b", "kilograms"),
]
_ABBREVIATIONS_RE = [(re.compile(p), r) for p, r in _ABBREVIATIONS]
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ", "°": " degrees ",
            "×": " times ", "½": " one half ", "¼": " one quarter "}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole, frac, scale = m.group(2).replace(",", ""), m.group(3), m.group(4)
    if scale:  # $2.5 million -> two point five million dollars
        amount = number_to_words(int(whole)) + (f" point {_digits(frac)}" if frac else "")
        return f"{amount} {scale} {many}"
    w = int(whole)
    c = int((frac or "0").ljust(2, "0")[:2])
    parts = []
    if w or not c:
        parts.append(f"{number_to_words(w)} {one if w == 1 else many}")
    if c:
        parts.append(f"{number_to_words(c)} {sub_one if c == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    h, mm = int(m.group(1)), int(m.group(2))
    if mm == 0:
        out = f"{number_to_words(h)} o'clock" if not m.group(3) else number_to_words(h)
    elif mm < 10:
        out = f"{number_to_words(h)} oh {number_to_words(mm)}"
    else:
        out = f"{number_to_words(h)} {number_to_words(mm)}"
    if m.group(3):
        out += " " + " ".join(m.group(3).lower().replace(".", ""))
    return out


def _decade(m: re.Match) -> str:
    words = year_to_words(int(m.group(1)))
    return words + "s" if words.endswith("hundred") else words[:-1] + "ies"  # 1990s / 1900s


def _number(m: re.Match) -> str:
    return _number_str(m.group(0))


def _number_str(s: str) -> str:
    if "." in s:
        whole, frac = s.split(".")
        return f"{number_to_words(int(whole.replace(',', '') or 0))} point {_digits(frac)}"
    if "," in s:
        return number_to_words(int(s.replace(",", "")))
    n = int(s)
    if len(s) > 1 and s.startswith("0"):
        return _digits(s)  # codes like 007 are read digit by digit
    if len(s) == 4 and 1100 <= n <= 2099:
        return year_to_words(n)
    return number_to_words(n)


def normalize_text(text: str) -> str:
    """Expand what espeak would misread or read differently from a speaker into plain words.

    Supported: abbreviations (Mr., Mrs., Dr., St. as Saint/Street, Prof., etc., e.g., i.e., vs., months...),
    money ($5, $5.50, £3, €2 million), percentages, ordinals (1st, 22nd), dates ("3 May" -> "the third of May",
    "May 3" -> "May third"), years (1999, 2021, 1990s), times (3:30 pm), decimals, thousands separators,
    negative numbers and a few symbols (&, +, =, @, #, °). Control characters (NUL, BEL, ESC, ...) count as
    spaces. Whitespace is collapsed; case and punctuation kept.
    """
    # control characters (NUL included: espeak's C API would stop reading at it) are spaces, like tabs
    t = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    t = t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"').replace("–", "-")
    t = re.sub(r"\betc\.(?=\s*$|\s+[A-Z])", "etc. .", t)  # keep the full stop "etc." swallows
    for rx, rep in _ABBREVIATIONS_RE:
        t = rx.sub(rep, t)
    t = re.sub(r"([$£€])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s+(million|billion|trillion|thousand))?\b", _money, t)
    t = re.sub(r"(\d+(?:\.\d+)?)\s?%", lambda m: f"{_number_str(m.group(1))} percent", t)
    t = re.sub(r"\b(\d{1,2}):(\d{2})(?:\s?([AaPp]\.?[Mm]\.?)(?=\W|$))?", _time, t)
    t = re.sub(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b",
               lambda m: f"the {ordinal_to_words(int(m.group(1)))} of {m.group(2)}", t)
    t = re.sub(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*[:.,]?\d)",
               lambda m: f"{m.group(1)} {ordinal_to_words(int(m.group(2)))}", t)
    t = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), t)
    t = re.sub(r"\b((?:1[1-9]|20)\d0)'?s\b", _decade, t)
    t = re.sub(r"(?<![\w.])-(?=\d)", "minus ", t)
    t = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+", _number, t)
    for sym, rep in _SYMBOLS.items():
        t = t.replace(sym, rep)
    t = _keep_known_graphemes(t, text)
    t = re.sub(r"\s+", " ", t).strip()
    return re.sub(r"\s+([,.;:!?])", r"\1", t)


def _keep_known_graphemes(t: str, original: str) -> str:
    """Fold accents (café → cafe) and drop what an English voice cannot read (☃, 日本語), with a warning.

    espeak would otherwise speak such characters by their Unicode names ("snowman", "Chinese letter").
    """
    t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    unknown = sorted({c for c in t if not (c.isascii() or c in _PUNCTUATION or c.isspace())})
    if unknown:
        warnings.warn(f"dropped unknown symbols {unknown!r} from {original!r}", stacklevel=3)
        t = "".join(" " if c in unknown else c for c in t)
    return t


# ---------------------------------------------------------------------------------------------- symbols

PAD = "_"
_PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]-\''
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# IPA letters and diacritics espeak-ng en-us can emit (superset, as in VITS/Matcha's table).
_IPA = ("ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃ"
        "ˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘̩ᵻ")
DEFAULT_SYMBOLS: list[str] = [PAD, " ", *_PUNCTUATION, *_LETTERS, *_IPA]
assert len(set(DEFAULT_SYMBOLS)) == len(DEFAULT_SYMBOLS)

_BACKENDS: dict[str, Any] = {}
_BACKEND_LOCK = threading.Lock()


def _backend(language: str):
    """One espeak backend per language per process (initialisation is the slow part)."""
    with _BACKEND_LOCK:
        if language not in _BACKENDS:
            try:
                from phonemizer.backend import EspeakBackend

                _BACKENDS[language] = EspeakBackend(language, with_stress=True, preserve_punctuation=True,
                                                    language_switch="remove-flags", words_mismatch="ignore")
            except RuntimeError as e:  # espeak library missing
                raise EbtkError(f"phonemizer cannot start espeak-ng ({e}); apt-get install espeak-ng") from e
        return _BACKENDS[language]


class TextFrontend:
    """normalize -> espeak IPA phonemes -> symbol ids (pad id 0). Shape: one text -> list[int] of length L."""

    def __init__(self, symbols: list[str] | None = None, language: str = "en-us"):
        self.symbols: list[str] = list(DEFAULT_SYMBOLS if symbols is None else symbols)
        if not self.symbols or self.symbols[0] != PAD:
            raise EbtkError(f"symbol table must start with the pad symbol {PAD!r}")
        self.language = language
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad_id(self) -> int:
        return 0

    def phonemize(self, texts: list[str]) -> list[str]:
        """IPA strings (with stress and punctuation) for already-normalised texts, in one espeak call."""
        if isinstance(texts, str):
            raise EbtkError("phonemize expects a list of texts")
        texts = [re.sub(r"\s+", " ", t).strip() for t in texts]
        todo = [t for t in texts if t]
        if not todo:
            return ["" for _ in texts]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = iter(_backend(self.language).phonemize(todo, strip=True, njobs=1))
        return [re.sub(r"\s+", " ", next(got)).strip() if t else "" for t in texts]

    def _to_ids(self, text: str, phonemes: str) -> list[int]:
        ids, unknown = [], []
        for ch in phonemes:
            if ch in self._ids:
                ids.append(self._ids[ch])
            else:
                unknown.append(ch)
        if unknown:
            warnings.warn(f"dropped unknown symbols {sorted(set(unknown))!r} from {text!r}", stacklevel=3)
        if not any(self.symbols[i] != " " for i in ids):
            raise EbtkError(f"text has no known symbols: {text!r}")
        return ids

    def encode(self, text: str) -> list[int]:
        """normalize -> phonemize -> ids; unknown symbols are dropped with a warning, none left -> EbtkError."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Like :meth:`encode` for many texts with a single phonemizer call."""
        with warnings.catch_warnings(record=True) as dropped:  # held back: an error says it all
            warnings.simplefilter("always")
            phonemes = self.phonemize([normalize_text(t) for t in texts])
            ids = [self._to_ids(t, p) for t, p in zip(texts, phonemes)]
        for w in dropped:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return ids

    def encode_phonemes(self, phonemes: str) -> list[int]:
        """Ids of an IPA string already produced by :meth:`phonemize` (e.g. cached in a dataset)."""
        return self._to_ids(phonemes, phonemes)

    def decode(self, ids: list[int]) -> str:
        """The symbol string for ids (pads dropped); for inspection and tests."""
        return "".join(self.symbols[i] for i in ids if i != 0)

    def state_dict(self) -> dict:
        """Everything needed to rebuild the same id mapping at inference time."""
        return {"symbols": list(self.symbols), "language": self.language, "version": 1}

    @classmethod
    def from_state_dict(cls, d: dict) -> TextFrontend:
        if not isinstance(d, dict) or "symbols" not in d:
            raise EbtkError("text front-end state is missing its symbol table")
        return cls(symbols=list(d["symbols"]), language=d.get("language", "en-us"))
