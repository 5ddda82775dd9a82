"""The built-in speech corpus: N varied English sentences synthesized offline (flite or espeak-ng), in LJSpeech layout.

Layout written under ``out_dir``: ``metadata.csv`` (``id|text|normalized text``, no quoting), ``wavs/<id>.wav``
(22 050 Hz mono 16-bit, leading/trailing silence trimmed to a 50 ms margin), and ``corpus.json`` recording the
engine and its version, voice(s), variation ranges, every utterance's drawn settings, the seed and n.
Everything random comes from one ``random.Random(seed)``, drawn before any synthesis, so a seed fixes the corpus.

The engine reads the *normalized* text, so audio and the text a model is trained on agree. Default engine: see
``results/tts/engine_choice.md`` (chosen by vocoder resynthesis MCD and DNSMOS).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ebtk.errors import EbtkError
from ebtk.io import atomic_write_text

DEFAULT_ENGINE = "flite"
ENGINES = ("flite", "espeak")
DEFAULT_VOICE = {"flite": "slt", "espeak": "en-us"}
BINARY = {"flite": "flite", "espeak": "espeak-ng"}
# Per-utterance variation ranges (uniform). flite: duration_stretch and F0 target mean in Hz (slt's own is ~170);
# espeak-ng: words per minute (-s) and pitch 0-99 (-p).
VARIATION = {
    "flite": {"duration_stretch": (0.85, 1.2), "int_f0_target_mean": (145.0, 195.0)},
    "espeak": {"speed_wpm": (140, 190), "pitch": (35, 65)},
}
TRIM_TOP_DB = 40.0
TRIM_MARGIN_S = 0.05
PEAK = 0.9
GENERATOR_VERSION = 1

# ------------------------------------------------------------------------------------- sentence grammar

_NAMES = ["Anna", "Peter", "Maria", "James", "Lucy", "Oliver", "Grace", "Henry", "Nora", "Samuel", "Clara",
          "Thomas", "Ruth", "Walter", "Emily", "Arthur", "Alice", "George", "Helen", "Victor"]
_TITLES = ["Mr.", "Mrs.", "Dr.", "Professor", "Captain", "Ms."]
_ADJ = ["old", "small", "quiet", "bright", "heavy", "green", "narrow", "famous", "broken", "warm", "strange",
        "careful", "silver", "empty", "distant", "gentle", "noisy", "golden", "tired", "clever"]
_NOUN = ["house", "river", "garden", "letter", "window", "teacher", "machine", "village", "doctor", "bridge",
         "painting", "market", "captain", "engine", "kitten", "forest", "station", "library", "harbor", "piano",
         "farmer", "lantern", "basket", "mountain", "student", "ticket", "island", "wagon", "tower", "clock"]
_NOUNS = ["houses", "rivers", "letters", "windows", "teachers", "machines", "villages", "bridges", "apples",
          "children", "horses", "boats", "books", "candles", "stones", "birds", "shoes", "coins", "songs", "trees"]
_VERB_PAST = ["found", "painted", "carried", "opened", "visited", "repaired", "watched", "described", "followed",
              "noticed", "cleaned", "borrowed", "measured", "counted", "sold", "bought", "moved", "built"]
_VERB_BASE = ["find", "paint", "carry", "open", "visit", "repair", "watch", "describe", "follow", "clean",
              "borrow", "measure", "count", "sell", "buy", "move", "build", "see"]
_PREP = ["near", "behind", "under", "beside", "across", "inside", "beyond", "above", "along", "around"]
_PLACE = ["the station", "the old mill", "the harbor", "the market square", "the school", "the hill",
          "the north road", "the church", "the bakery", "the museum"]
_TIME = ["yesterday", "this morning", "last winter", "at dawn", "every Sunday", "after dinner", "in the spring",
         "before noon", "late at night", "on Monday"]
_ADV = ["slowly", "quickly", "quietly", "carefully", "suddenly", "happily", "rarely", "often", "almost", "nearly"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _np(r: random.Random) -> str:
    return f"the {r.choice(_ADJ)} {r.choice(_NOUN)}" if r.random() < 0.6 else f"the {r.choice(_NOUN)}"


def _person(r: random.Random) -> str:
    return f"{r.choice(_TITLES)} {r.choice(_NAMES)}" if r.random() < 0.3 else r.choice(_NAMES)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _money(r: random.Random) -> str:
    return f"${r.randint(1, 500)}" + (f".{r.randint(10, 99)}" if r.random() < 0.4 else "")


def _number_phrase(r: random.Random) -> str:
    k = r.randrange(8)
    if k == 0:
        return f"{r.randint(2, 99)} {r.choice(_NOUNS)}"
    if k == 1:
        return _money(r)
    if k == 2:
        return f"in {r.randint(1820, 2030)}"
    if k == 3:
        return f"on {r.choice(_MONTHS)} {r.randint(1, 28)}"
    if k == 4:
        return f"at {r.randint(1, 12)}:{r.choice(['00', '15', '30', '45', '05'])}"
    if k == 5:
        return f"{r.randint(2, 95)}% of the {r.choice(_NOUNS)}"
    if k == 6:
        return f"for the {_ordinal(r.randint(1, 40))} time"
    return f"{r.randint(1, 9)},{r.randint(0, 999):03d} {r.choice(_NOUNS)}"


def _sentence(r: random.Random) -> str:
    k = r.randrange(16)
    if k == 0:
        s = f"{_person(r)} {r.choice(_VERB_PAST)} {_np(r)} {r.choice(_PREP)} {r.choice(_PLACE)}."
    elif k == 1:
        s = f"Did {_person(r)} {r.choice(_VERB_BASE)} {_np(r)} {r.choice(_TIME)}?"
    elif k == 2:
        s = f"{_cap(_np(r))} was {r.choice(_ADV)} {r.choice(_ADJ)}, and nobody knew why."
    elif k == 3:
        s = f"Where is {_np(r)} that {_person(r)} {r.choice(_VERB_PAST)}?"
    elif k == 4:
        s = f"{_cap(r.choice(_TIME))}, {_person(r)} {r.choice(_VERB_PAST)} {_number_phrase(r)}."
    elif k == 5:
        s = f"We {r.choice(_VERB_PAST)} {_number_phrase(r)} {r.choice(_PREP)} {r.choice(_PLACE)}."
    elif k == 6:
        s = f"\"Please {r.choice(_VERB_BASE)} {_np(r)},\" said {_person(r)}."
    elif k == 7:
        s = f"How many {r.choice(_NOUNS)} did you {r.choice(_VERB_BASE)} {r.choice(_TIME)}?"
    elif k == 8:
        s = f"What a {r.choice(_ADJ)} {r.choice(_NOUN)} that was!"
    elif k == 9:
        a, b, c = r.sample(_NOUNS, 3)
        s = f"They sold {a}, {b} and {c} {r.choice(_PREP)} {r.choice(_PLACE)}."
    elif k == 10:
        s = f"{_person(r)} paid {_money(r)} for {_np(r)}; it was worth it."
    elif k == 11:
        s = f"Why would anyone {r.choice(_VERB_BASE)} {r.choice(_NOUNS)} {r.choice(_TIME)}?"
    elif k == 12:
        s = f"{_cap(r.choice(_ADV))}, {_np(r)} {r.choice(_VERB_PAST)} {_np(r)} {r.choice(_PREP)} {_np(r)}."
    elif k == 13:
        s = f"The train leaves at {r.randint(1, 12)}:{r.choice(['10', '20', '35', '50'])}, so don't be late!"
    elif k == 14:
        s = f"In {r.randint(1850, 2024)}, {_person(r)} {r.choice(_VERB_PAST)} {_np(r)} {r.choice(_TIME)}."
    else:
        s = f"Is it true that {_np(r)} {r.choice(_VERB_PAST)} {_np(r)}?"
    return s[0].upper() + s[1:]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def make_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct English sentences of 3–15 words (statements, questions, numbers, punctuation), seeded."""
    r = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise EbtkError(f"cannot make {n} distinct sentences; use a smaller --n")
        s = _sentence(r)
        if 3 <= len(s.split()) <= 15 and s not in seen:
            seen.add(s)
            out.append(s)
    return out


# ------------------------------------------------------------------------------------------- synthesis


@dataclass
class UtteranceSpec:
    """What one utterance was synthesized with (recorded in corpus.json)."""

    id: str
    text: str
    normalized: str
    voice: str
    params: dict


def _check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise EbtkError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    exe = shutil.which(BINARY[engine])
    if exe is None:
        pkg = "flite" if engine == "flite" else "espeak-ng"
        raise EbtkError(f"{BINARY[engine]} not found; install it with: apt-get install {pkg}")
    return exe


def _engine_version(exe: str, engine: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0 if engine == "espeak" else -1].strip() if out.strip() else "unknown"


def _command(exe: str, engine: str, spec: UtteranceSpec, txt: str, wav: str) -> list[str]:
    p = spec.params
    if engine == "flite":
        cmd = [exe, "-voice", spec.voice, "-f", txt, "-o", wav]
        if p:
            cmd[1:1] = ["--setf", f"duration_stretch={p['duration_stretch']}",
                        "--setf", f"int_f0_target_mean={p['int_f0_target_mean']}"]
        return cmd
    cmd = [exe, "-v", spec.voice, "-w", wav, "-f", txt]
    if p:
        cmd[1:1] = ["-s", str(p["speed_wpm"]), "-p", str(p["pitch"])]
    return cmd


def trim_silence(wav: np.ndarray, sr: int, top_db: float = TRIM_TOP_DB, margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """Cut leading/trailing silence (frame RMS below peak RMS − top_db) but keep `margin_s` on each side."""
    frame, hop = 1024, 256
    if wav.size < frame or not np.any(wav):
        return wav
    frames = np.lib.stride_tricks.sliding_window_view(wav, frame)[::hop]
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(db > db.max() - top_db)
    start, end = loud[0] * hop, loud[-1] * hop + frame
    m = int(margin_s * sr)
    return wav[max(0, start - m): min(len(wav), end + m)]


def _synthesize_one(exe: str, engine: str, spec: UtteranceSpec, wav_dir: Path, tmp: Path) -> float:
    """Run the engine, resample to 22 050 Hz, trim, peak-normalise, write; returns the duration in seconds."""
    import soundfile as sf

    from ebtk.tts.audio import SAMPLE_RATE, resample, save_wav

    txt, raw = tmp / f"{spec.id}.txt", tmp / f"{spec.id}.wav"
    txt.write_text(spec.normalized + "\n", encoding="utf-8")
    res = subprocess.run(_command(exe, engine, spec, str(txt), str(raw)), capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0 or not raw.is_file():
        raise EbtkError(f"{engine} failed on {spec.id} ({spec.normalized!r}): {res.stderr.strip()[:200]}")
    wav, sr = sf.read(str(raw), dtype="float32", always_2d=True)
    wav = resample(wav.mean(axis=1), sr, SAMPLE_RATE)
    wav = trim_silence(wav, SAMPLE_RATE)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak < 1e-4:
        raise EbtkError(f"{engine} produced silence for {spec.id} ({spec.normalized!r})")
    wav = wav * (PEAK / peak)
    save_wav(wav_dir / f"{spec.id}.wav", wav, SAMPLE_RATE)
    raw.unlink()
    txt.unlink()
    return len(wav) / SAMPLE_RATE


def _plan(n: int, seed: int, engine: str, voices: list[str], vary: bool) -> list[UtteranceSpec]:
    from ebtk.tts.text import normalize_text

    sentences = make_sentences(n, seed)
    r = random.Random(f"ebtk-corpus-variation-{seed}")
    specs = []
    for i, s in enumerate(sentences):
        voice = r.choice(voices) if len(voices) > 1 else voices[0]
        params: dict = {}
        if vary:
            for k, (lo, hi) in VARIATION[engine].items():
                params[k] = r.randint(lo, hi) if isinstance(lo, int) else round(r.uniform(lo, hi), 3)
        specs.append(UtteranceSpec(f"EB{seed % 1000:03d}-{i + 1:05d}", s, normalize_text(s), voice, params))
    return specs


def make_corpus(out_dir: str | os.PathLike, n: int = 200, seed: int = 0, engine: str = DEFAULT_ENGINE,
                voice: str | None = None, vary: bool = True, workers: int | None = None) -> Path:
    """Synthesize an LJSpeech-layout corpus of `n` utterances into `out_dir` and return its path.

    `voice`: engine voice name (flite: slt/awb/rms/kal; espeak-ng: en-us, en-us+f3, ...), or several separated
    by commas to draw one per utterance; default one voice (flite slt, espeak-ng en-us) so the corpus is
    single-speaker. `vary` draws speaking rate and pitch per utterance. Re-running with identical settings on a
    complete corpus returns at once; a non-empty directory holding anything else is an error.
    """
    if n < 1:
        raise EbtkError(f"--n must be at least 1, got {n}")
    exe = _check_engine(engine)
    voices = [v.strip() for v in (voice or DEFAULT_VOICE[engine]).split(",") if v.strip()]
    out = Path(out_dir)
    settings = {"engine": engine, "voices": voices, "vary": vary, "seed": seed, "n": n,
                "variation": VARIATION[engine] if vary else {}, "generator_version": GENERATOR_VERSION,
                "sample_rate": 22050, "trim_top_db": TRIM_TOP_DB, "trim_margin_s": TRIM_MARGIN_S, "peak": PEAK}
    meta = out / "metadata.csv"
    leftovers_only = out.exists() and all(p.name == "wavs" or p.name.startswith(".synth-") for p in out.iterdir())
    if out.exists() and not leftovers_only:  # an interrupted run (wavs, temp dirs, no metadata) is redone
        info = out / "corpus.json"
        if info.is_file() and meta.is_file():
            old = json.loads(info.read_text())
            if {k: old.get(k) for k in settings} == json.loads(json.dumps(settings)) and all(
                    (out / "wavs" / f"{u['id']}.wav").is_file() for u in old.get("utterances", [])):
                return out
        raise EbtkError(f"{out} exists and is not empty (or holds a different corpus); remove it or pick another")
    specs = _plan(n, seed, engine, voices, vary)
    wav_dir = out / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory(prefix=".synth-", dir=out) as tmp:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = pool.map(lambda s: _synthesize_one(exe, engine, s, wav_dir, Path(tmp)), specs)
            # a bar only on a terminal (disable=None), so logs and tests stay clean
            durations = list(tqdm(jobs, total=len(specs), desc="corpus", unit="utt", disable=None, leave=False))
    elapsed = time.perf_counter() - t0
    lines = "".join(f"{s.id}|{s.text}|{s.normalized}\n" for s in specs)
    atomic_write_text(out / "metadata.csv", lines)
    record = {**settings, "engine_binary": exe, "engine_version": _engine_version(exe, engine),
              "total_seconds": round(sum(durations), 2), "make_seconds": round(elapsed, 2), "workers": workers,
              "utterances": [{**asdict(s), "seconds": round(d, 3)} for s, d in zip(specs, durations)]}
    atomic_write_text(out / "corpus.json", json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return out


def resynthesize(utterances: list[dict], wav_dir: str | os.PathLike, engine: str = DEFAULT_ENGINE) -> list[Path]:
    """Rebuild utterances recorded in a corpus.json (``id``, ``text``, ``normalized``, ``voice``, ``params``)
    as wavs in `wav_dir`, exactly as `make_corpus` made them (same engine, settings, resampling, trimming and
    peak): a few corpus utterances can be scored without making or keeping the whole corpus."""
    exe = _check_engine(engine)
    wav_dir = Path(wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    specs = [UtteranceSpec(u["id"], u["text"], u["normalized"], u["voice"], dict(u.get("params") or {}))
             for u in utterances]
    with tempfile.TemporaryDirectory(prefix=".synth-", dir=wav_dir) as tmp:
        for spec in specs:
            _synthesize_one(exe, engine, spec, wav_dir, Path(tmp))
    return [wav_dir / f"{s.id}.wav" for s in specs]


def builtin_corpus(n: int, seed: int = 0, engine: str = DEFAULT_ENGINE) -> Path:
    """The built-in corpus of `n` utterances in the user cache dir ($EBTK_CACHE_DIR, else
    $XDG_CACHE_HOME/ebtk), made on first use; concurrent first uses each build a private copy and keep
    whichever lands first."""
    from ebtk.tts.dataset import user_cache_dir

    path = user_cache_dir() / f"corpus-{engine}-n{n}-s{seed}"
    if (path / "metadata.csv").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    make_corpus(tmp, n=n, seed=seed, engine=engine)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return path
