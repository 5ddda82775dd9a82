"""LJSpeech-layout corpora: the real LJSpeech download or anything in its layout (e.g. `ebtk corpus make`).

Layout: ``metadata.csv`` with ``id|text|normalized`` (2 or 3 fields, ``|``-separated, no quoting: LJSpeech has
bare quotes in its text) and ``wavs/<id>.wav``. Mels are cached on disk as .npy, keyed by the mel settings and by
each wav's size and mtime, so editing a wav or changing the mel recipe never serves a stale mel.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ebtk.errors import EbtkError, one_line
from ebtk.io import atomic_write, atomic_write_text
from ebtk.tts.audio import SAMPLE_RATE, load_wav, mel_settings, mel_spectrogram

UNSEEN = "unseen-words"
"""The held-out split whose every sentence has a word that no training sentence has."""
DEFAULT_SPLITS = {"val": 50, "test": 100, "unseen": 100}
"""The tts task's held-out utterance counts (data.n_val, data.n_test, data.n_unseen)."""


def words(text: str) -> list[str]:
    """The lower-case words of `text` (letters with inner apostrophes; digits and punctuation are not words),
    as a corpus's coverage is counted: "Don't wait, Anna-Maria!" -> ["don't", "wait", "anna", "maria"]."""
    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower())


def vocabulary(texts: list[str]) -> set[str]:
    """The distinct `words` of `texts`."""
    return {w for t in texts for w in words(t)}


@dataclass(frozen=True)
class Utterance:
    """One corpus entry; `normalized` falls back to our text normaliser when the metadata has 2 fields."""

    id: str
    text: str
    normalized: str
    wav_path: Path


def user_cache_dir() -> Path:
    """Where caches go when a corpus directory is read-only: $EBTK_CACHE_DIR, else $XDG_CACHE_HOME/ebtk."""
    if os.environ.get("EBTK_CACHE_DIR"):
        return Path(os.environ["EBTK_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ebtk"


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


class LJSpeechCorpus:
    """Read-only view of an LJSpeech-layout directory with cached mels and deterministic splits."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.metadata_path = self.path / "metadata.csv"
        if not self.path.is_dir():
            raise EbtkError(f"corpus directory not found: {self.path}")
        if not self.metadata_path.is_file():
            raise EbtkError(f"corpus has no metadata.csv: {self.metadata_path} (expected LJSpeech layout)")
        self.items: list[Utterance] = self._read_metadata()
        self._by_id = {u.id: u for u in self.items}
        if len(self._by_id) != len(self.items):
            raise EbtkError(f"{self.metadata_path}: duplicate utterance ids")
        self._cache_root: Path | None = None

    def _read_metadata(self) -> list[Utterance]:
        from ebtk.tts.text import normalize_text

        items = []
        with open(self.metadata_path, encoding="utf-8", newline="") as f:
            for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) not in (2, 3):
                    raise EbtkError(f"{self.metadata_path}:{lineno}: expected 'id|text|normalized' (2 or 3 fields), "
                                    f"got {len(row)}")
                uid, text = row[0].strip(), row[1].strip()
                norm = row[2].strip() if len(row) == 3 and row[2].strip() else (normalize_text(text) if text else "")
                items.append(Utterance(uid, text, norm, self.path / "wavs" / f"{uid}.wav"))
        if not items:
            raise EbtkError(f"{self.metadata_path} lists no utterances")
        return items

    # ------------------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.items]

    def __getitem__(self, uid: str) -> Utterance:
        try:
            return self._by_id[uid]
        except KeyError:
            raise EbtkError(f"utterance {uid!r} is not in {self.metadata_path}") from None

    def validate(self, strict: bool = False) -> dict:
        """Check every entry: a non-empty text, an existing and readable wav; returns {'n', 'hours', 'rates'}.

        Raises EbtkError naming the offending file. Wavs at other sample rates are accepted with one warning
        (they are resampled on load), or rejected with ``strict=True``.
        """
        import soundfile as sf

        rates: dict[int, int] = {}
        seconds = 0.0
        for u in self.items:
            if not u.text or not u.normalized:
                raise EbtkError(f"{self.metadata_path}: empty text for utterance {u.id}")
            if not u.wav_path.is_file():
                raise EbtkError(f"missing audio file {u.wav_path} (listed in {self.metadata_path})")
            try:
                info = sf.info(str(u.wav_path))
            except Exception as e:
                raise EbtkError(f"cannot read audio file {u.wav_path}: {one_line(e)}") from e
            if info.frames == 0:
                raise EbtkError(f"audio file {u.wav_path} is empty")
            if strict and info.samplerate != SAMPLE_RATE:
                raise EbtkError(f"{u.wav_path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} (strict)")
            rates[info.samplerate] = rates.get(info.samplerate, 0) + 1
            seconds += info.frames / info.samplerate
        other = {r: c for r, c in rates.items() if r != SAMPLE_RATE}
        if other:
            warnings.warn(f"{self.path}: {sum(other.values())} wav(s) at {sorted(other)} Hz will be resampled to "
                          f"{SAMPLE_RATE} Hz", stacklevel=2)
        return {"n": len(self.items), "hours": seconds / 3600, "rates": rates}

    def wav(self, uid: str) -> np.ndarray:
        """float32 mono waveform at 22 050 Hz (resampled with a warning if stored at another rate)."""
        return load_wav(self[uid].wav_path)

    # ---------------------------------------------------------------------------------------- caching
    @property
    def cache_dir(self) -> Path:
        """`<corpus>/.ebtk_cache`, or a per-corpus folder in the user cache dir if the corpus is read-only."""
        if self._cache_root is None:
            local = self.path / ".ebtk_cache"
            if _writable(local):
                self._cache_root = local
            else:
                key = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:16]
                self._cache_root = user_cache_dir() / "corpora" / f"{self.path.name}-{key}"
                if not _writable(self._cache_root):
                    raise EbtkError(f"no writable cache dir for {self.path}; set EBTK_CACHE_DIR")
        return self._cache_root

    def mel(self, uid: str) -> torch.Tensor:
        """Log-mel (80, F) of an utterance, from the on-disk cache when the wav and mel settings are unchanged."""
        u = self[uid]
        try:
            st = u.wav_path.stat()
        except OSError:
            raise EbtkError(f"missing audio file {u.wav_path}") from None
        settings = hashlib.sha1(json.dumps(mel_settings(), sort_keys=True).encode()).hexdigest()[:12]
        d = self.cache_dir / f"mels-{settings}"
        f = d / f"{uid}-{st.st_size}-{st.st_mtime_ns}.npy"
        if f.is_file():
            try:
                return torch.from_numpy(np.load(f))
            except (OSError, ValueError):
                pass  # corrupt cache entry: recompute
        mel = mel_spectrogram(torch.from_numpy(self.wav(uid))).numpy().astype(np.float32)
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(f"{uid}-*.npy"):
            stale.unlink(missing_ok=True)
        atomic_write(f, lambda fh: np.save(fh, mel))
        return torch.from_numpy(mel)

    # ----------------------------------------------------------------------------------------- splits
    def splits(self, val: float | int = 0.05, test: float | int = 0.05, seed: int = 0,
               unseen: float | int = 0) -> dict[str, list[str]]:
        """Deterministic train/val/test (and, with `unseen` > 0, `UNSEEN`) id lists, written to
        `<corpus>/splits/<name>.txt`.

        `val`/`test`/`unseen` are fractions (< 1) or counts (>= 1); a non-zero fraction gives at least one
        utterance. The unseen-words split is drawn first: whole groups of the sentences sharing a rare word
        (in at most `MAX_UNSEEN_GROUP` sentences), so that each holds a word no training sentence has; val and
        test are then drawn at random from the rest. A training utterance whose words equal a held-out one's
        (a repeated sentence) joins that held-out split, so held-out text never appears in training.
        Split files found without our `splits.json` marker are taken as user-provided and returned as they are.
        Raises EbtkError when the held-out splits leave no training utterance or the corpus has too few
        sentences with rare words for `unseen`.
        """
        n = len(self.items)
        n_val, n_test, n_unseen = (self._count(x, n, name) for x, name in
                                   ((val, "val"), (test, "test"), (unseen, "unseen")))
        if n_val + n_test + n_unseen >= n:
            raise EbtkError(f"val ({n_val}) + test ({n_test}) + unseen ({n_unseen}) leave no training utterances "
                            f"out of {n}")
        params = {"val": val, "test": test, "seed": seed, "ids_sha1": hashlib.sha1("\n".join(self.ids).encode())
                  .hexdigest(), **({"unseen": unseen} if n_unseen else {})}  # markers from before `unseen` match
        names = ("train", "val", "test") + ((UNSEEN,) if n_unseen else ())
        local = self.path / "splits"
        for d in (local, self.cache_dir / "splits"):
            got = self._read_splits(d, params, names)
            if got is not None:
                return got
        ids = sorted(self.ids)
        random.Random(seed).shuffle(ids)
        key = {i: " ".join(words(self[i].normalized)) for i in ids}
        held = {UNSEEN: self._unseen_words(ids, n_unseen)} if n_unseen else {}
        rest = [i for i in ids if i not in set(held.get(UNSEEN, []))]
        held = {"val": rest[:n_val], "test": rest[n_val:n_val + n_test], **held}
        taken = {i for v in held.values() for i in v}
        split_of_text = {key[i]: k for k, v in held.items() for i in v}
        train = []
        for i in ids:
            if i in taken:
                continue
            if key[i] in split_of_text:  # the same sentence as a held-out one
                held[split_of_text[key[i]]].append(i)
            else:
                train.append(i)
        out = {"train": sorted(train), **{k: sorted(v) for k, v in held.items()}}
        d = local if _writable(local) else self.cache_dir / "splits"
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            atomic_write_text(d / f"{name}.txt", "".join(f"{i}\n" for i in out[name]))
        if UNSEEN not in names:  # a stale one from other parameters would read as user-provided
            (d / f"{UNSEEN}.txt").unlink(missing_ok=True)
        atomic_write_text(d / "splits.json", json.dumps(params) + "\n")
        return {k: out[k] for k in names}

    MAX_UNSEEN_GROUP = 3

    def _unseen_words(self, ids: list[str], n: int) -> list[str]:
        """`n` ids (from `ids`, in its order) made of whole groups of the sentences containing a rare word: for
        each sentence in turn, its rarest word's group joins when it has at most MAX_UNSEEN_GROUP sentences and
        fits in what is left to fill. Every sentence with that word is held out, so it is unseen in training."""
        by_word: dict[str, list[str]] = {}
        for i in ids:
            for w in dict.fromkeys(words(self[i].normalized)):
                by_word.setdefault(w, []).append(i)
        out: list[str] = []
        chosen: set[str] = set()
        for i in ids:
            if len(out) == n:
                break
            if i in chosen or not words(self[i].normalized):
                continue
            rare = min(dict.fromkeys(words(self[i].normalized)), key=lambda w: len(by_word[w]))
            group = [j for j in by_word[rare] if j not in chosen]
            if len(by_word[rare]) <= self.MAX_UNSEEN_GROUP and len(group) <= n - len(out):
                out += group
                chosen.update(group)
        if len(out) < n:
            raise EbtkError(f"{self.path}: only {len(out)} sentences have a word rare enough to hold out of training "
                            f"for the {UNSEEN} split of {n}; hint: lower data.n_unseen (0: no such split)")
        return out

    def _read_splits(self, d: Path, params: dict, names: tuple[str, ...]) -> dict[str, list[str]] | None:
        """The split files in `d` when its marker matches `params`; user-provided files (no marker) always
        (with the unseen-words split only when they include one)."""
        marker = d / "splits.json"
        if marker.is_file():
            try:
                if json.loads(marker.read_text()) != params:
                    return None
            except ValueError:
                return None
        else:
            names = ("train", "val", "test") + ((UNSEEN,) if (d / f"{UNSEEN}.txt").is_file() else ())
        files = {k: d / f"{k}.txt" for k in names}
        if not all(f.is_file() for f in files.values()):
            return None
        out = {k: [x.strip() for x in f.read_text().splitlines() if x.strip()] for k, f in files.items()}
        unknown = [i for lst in out.values() for i in lst if i not in self._by_id]
        if unknown:
            raise EbtkError(f"{d}: split lists ids not in metadata.csv, e.g. {unknown[0]!r}")
        return out

    @staticmethod
    def _count(x: float | int, n: int, name: str) -> int:
        if x < 0:
            raise EbtkError(f"{name} split must be >= 0, got {x}")
        if x >= 1:
            return int(x)
        return max(1, round(x * n)) if x > 0 else 0
