"""Shared helpers for the speech tests: real speech made on the fly with espeak-ng (no bundled audio)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Would you like a cup of tea before we leave?",
    "Seven silver spoons were found under the old bridge.",
]


def espeak_wav(path: Path, text: str, pitch: int = 50, rate: int = 160) -> np.ndarray:
    """Synthesize `text` with espeak-ng (22 050 Hz) into `path` and return it as float32."""
    from ebtk.tts.audio import load_wav

    subprocess.run(["espeak-ng", "-v", "en-us", "-p", str(pitch), "-s", str(rate), "-w", str(path), text],
                   check=True, capture_output=True)
    return load_wav(path)


SHORT = ["Open the door.", "It is cold today.", "She has three cats.", "We left at noon.", "Call me later!",
         "Tea, or coffee?", "The sky was blue."]


def espeak_corpus(root: Path, texts: list[str] = SHORT) -> Path:
    """An LJSpeech-layout corpus at `root`: utterance u<k> is texts[k] spoken by espeak-ng (pitch and rate
    varied per utterance, about a second each: vocoding is the slow part of the tests that use it)."""
    (root / "wavs").mkdir(parents=True)
    lines = []
    for k, text in enumerate(texts):
        espeak_wav(root / "wavs" / f"u{k}.wav", text, pitch=40 + 3 * k, rate=170 + 4 * k)
        lines.append(f"u{k}|{text}|{text}\n")
    (root / "metadata.csv").write_text("".join(lines))
    return root
