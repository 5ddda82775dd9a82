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
    whole, frac = m.group(2).replace(",", ""), m.group(3)
    scale = _MONEY_SCALE.get(m.group(4) or "") or m.group(5)
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


# ------------------------------------------------------------------------ everyday text (issue 35's table)

_UNITS = {  # unit -> (singular, plural); longest first in the pattern so km/h is not read as km
    "km/h": ("kilometer per hour", "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"), "km": ("kilometer", "kilometers"), "kg": ("kilogram", "kilograms"),
    "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"), "ml": ("milliliter", "milliliters"),
    "mg": ("milligram", "milligrams"), "TB": ("terabyte", "terabytes"), "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"), "KB": ("kilobyte", "kilobytes"), "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"), "kHz": ("kilohertz", "kilohertz"), "Hz": ("hertz", "hertz"),
    "ft": ("foot", "feet"), "lbs": ("pound", "pounds"), "lb": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
}
_UNIT_RE = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)\s?(" + "|".join(re.escape(u) for u in
                      sorted(_UNITS, key=len, reverse=True)) + r")(?![\w/])")
_MONEY_SCALE = {"bn": "billion", "mn": "million", "m": "million", "k": "thousand"}
# the words before a Roman numeral read as a cardinal ("World War two", "Chapter four"); after other
# capitalised words a numeral of two or more letters I, V, X is a regnal ordinal ("Henry the eighth")
_ROMAN_CARDINAL = {"War", "Chapter", "Part", "Volume", "Vol", "Act", "Scene", "Book", "Section", "Article", "Phase",
                   "Stage", "Level", "Type", "Class", "Grade", "Round", "Episode", "Title", "Psalm", "Appendix",
                   "Apollo", "Vatican", "Step", "Unit", "Figure", "Table", "Super Bowl"}
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _say_digits(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s if d.isdigit())


def _spell_address(m: re.Match) -> str:
    """A URL read out: h t t p s colon slash slash, w w w, dot, slash, dash."""
    scheme, host, path = m.group(1), m.group(2), m.group(3) or ""
    out = f"{' '.join(scheme)} colon slash slash " if scheme else ""
    out += " dot ".join("w w w" if part.lower() == "www" else part for part in host.split("."))
    for ch, word in (("/", " slash "), (".", " dot "), ("-", " dash "), ("_", " underscore ")):
        path = path.replace(ch, word)
    return out + path


def _email(m: re.Match) -> str:
    return f"{m.group(1).replace('.', ' dot ')} at {m.group(2).replace('.', ' dot ')}"


def _unit(m: re.Match) -> str:
    one, many = _UNITS[m.group(2)]
    return f"{m.group(1)} {one if m.group(1) == '1' else many}"


def _numeric_date(m: re.Match) -> str:
    """m/d/yyyy (US), or d/m/yyyy when the first part cannot be a month; ISO yyyy-mm-dd."""
    if m.group("iso"):
        y, a, b = m.group("iy"), int(m.group("im")), int(m.group("id"))
    else:
        y, a, b = m.group("y"), int(m.group("a")), int(m.group("b"))
    year = year_to_words(int(y)) if len(y) == 4 else ("oh " if y.startswith("0") else "") + number_to_words(int(y))
    if 1 <= a <= 12 and 1 <= b <= 31:
        return f"{_MONTHS[a - 1]} {ordinal_to_words(b)}, {year}"
    if 1 <= b <= 12 and 1 <= a <= 31 and not m.group("iso"):
        return f"the {ordinal_to_words(a)} of {_MONTHS[b - 1]}, {year}"
    return m.group(0)


def _phone(m: re.Match) -> str:
    """Digit by digit, group by group: "five five five, one two three, four five six seven"."""
    groups = [g for g in re.split(r"[\s().-]+", m.group(0)) if g]
    return ", ".join(("plus " + _say_digits(g)) if g.startswith("+") else _say_digits(g) for g in groups)


def _roman_value(s: str) -> int | None:
    """The value of a well-formed Roman numeral of I, V, X, L, C (1-399), else None."""
    total = 0
    for i, c in enumerate(s):
        v = _ROMAN_VALUES[c]
        total += -v if i + 1 < len(s) and _ROMAN_VALUES[s[i + 1]] > v else v
    if not 0 < total < 400:
        return None
    canon, n = "", total
    for value, sym in ((100, "C"), (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"),
                       (1, "I")):
        while n >= value:
            canon, n = canon + sym, n - value
    return total if canon == s else None


def _roman(m: re.Match) -> str:
    word, numeral = m.group(1), m.group(2)
    value = _roman_value(numeral)
    if value is None:
        return m.group(0)
    if word.rstrip(".") in _ROMAN_CARDINAL:
        return f"{word} {number_to_words(value)}"
    if len(numeral) >= 2 and set(numeral) <= set("IVX"):
        return f"{word} the {ordinal_to_words(value)}"
    return m.group(0)


_EMAIL_RE = re.compile(r"\b([\w.+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\b")
_URL_RE = re.compile(r"\b(?:(https?)://)?((?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|org|net|edu|gov|io|ai|"
                     r"dev|info|co|uk|de|fr|eu|us))((?:/[\w~%-]+(?:\.[\w~%-]+)*)*/?)(?![\w.]*\w)")
_DATE_RE = re.compile(r"\b(?:(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})|(?P<iso>(?P<iy>\d{4})-(?P<im>\d{2})-"
                      r"(?P<id>\d{2})))\b")
_PHONE_RES = [
    re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[.-]\d{4}\b"),  # (555) 123-4567
    re.compile(r"(?<![\w.])(?:\+\d{1,3}|0\d{2,4})(?:[ .-]\d{2,4}){2,3}\b"),  # +1 415 555 2671, 0800 123 456
    re.compile(r"(?<![\w.-])\d{3}-\d{4}\b(?!-)"),  # 555-1234
]


def _everyday(t: str) -> str:
    """Addresses, units, numeric dates, phone numbers, scientific notation and powers, before the number rules
    read their digits (each leaves plain digits for them where it can)."""
    t = _EMAIL_RE.sub(_email, t)
    t = _URL_RE.sub(_spell_address, t)
    t = _UNIT_RE.sub(_unit, t)
    t = _DATE_RE.sub(_numeric_date, t)
    for rx in _PHONE_RES:
        t = rx.sub(_phone, t)
    t = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?)(\d+)\b",
               lambda m: f"{m.group(1)} times ten to the power of {'minus ' if m.group(2) == '-' else ''}{m.group(3)}",
               t)
    return re.sub(r"(?<![\w.])([\w.]+)\^(-?)(\d+)\b",
                  lambda m: f"{m.group(1)} to the power of {'minus ' if m.group(2) else ''}{m.group(3)}", t)


def normalize_text(text: str) -> str:
    """Expand what espeak would misread or read differently from a speaker into plain words.

    Supported: abbreviations (Mr., Mrs., Dr., St. as Saint/Street, Prof., etc., e.g., i.e., vs., months...),
    money ($5, $5.50, £3, €2 million), percentages, ordinals (1st, 22nd), dates ("3 May" -> "the third of May",
    "May 3" -> "May third", 3/4/2025, 2025-03-04), years (1999, 2021, 1990s), times (3:30 pm, 5pm), decimals,
    thousands separators, negative numbers, ranges (10-20), units (5 kg, 100 km/h, 20°C), Roman numerals
    (World War II, Henry VIII), phone numbers (digit by digit), URLs and e-mail addresses, scientific notation
    (1e6) and powers (2^20), letter-digit codes (Q3) and a few symbols (&, +, =, @, #, °). Control
    characters (NUL, BEL, ESC, ...) count as spaces. Whitespace is collapsed; case and punctuation kept.
    The cases it is held to: tests/text_normalisation_cases.tsv.
    """
    # control characters (NUL included: espeak's C API would stop reading at it) are spaces, like tabs
    t = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    t = t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"').replace("–", "-")
    t = re.sub(r"\betc\.(?=\s*$|\s+[A-Z])", "etc. .", t)  # keep the full stop "etc." swallows
    t = _everyday(t)
    for rx, rep in _ABBREVIATIONS_RE:
        t = rx.sub(rep, t)
    t = re.sub(r"([$£€])\s?(\d[\d,]*)(?:\.(\d+))?(?:(bn|mn|m|k)\b|\s+(million|billion|trillion|thousand)\b|\b)",
               _money, t)
    t = re.sub(r"((?<![\w.])-)?(\d+(?:\.\d+)?)\s?%",
               lambda m: f"{'minus ' if m.group(1) else ''}{_number_str(m.group(2))} percent", t)
    t = re.sub(r"\b(\d{1,2}):(\d{2})(?:\s?([AaPp]\.?[Mm]\.?)(?=\W|$))?", _time, t)
    t = re.sub(r"\b(\d{1,2})\s?([AaPp])\.?\s?[Mm](?!\w)",
               lambda m: f"{number_to_words(int(m.group(1)))} {m.group(2).lower()} m" if 0 < int(m.group(1)) <= 12
               else m.group(0), t)
    t = re.sub(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b",
               lambda m: f"the {ordinal_to_words(int(m.group(1)))} of {m.group(2)}", t)
    t = re.sub(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*[:.,]?\d)",
               lambda m: f"{m.group(1)} {ordinal_to_words(int(m.group(2)))}", t)
    t = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), t)
    t = re.sub(r"\b((?:1[1-9]|20)\d0)'?s\b", _decade, t)
    t = re.sub(r"(?<![\w.,-])(\d{1,4})-(\d{1,4})\b(?![-.,]?\d)", r"\1 to \2", t)  # ranges: 1990-1995, 10-20
    t = re.sub(r"\b([A-Z][a-z]+\.?|Super Bowl)\s+([IVXLC]+)\b(?!['-])", _roman, t)
    t = re.sub(r"\b([A-Z]{1,3})(\d+)\b", r"\1 \2", t)  # Q3, MP3, A4
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
