"""Issue 31's memory bound, end to end: `ebtk synthesize` on 10 000 characters of plain English stays under
1.5 GB peak RSS (it reached 13.4 GB when the whole mel went through the vocoder at once) and writes the
whole text. Slow (a few minutes of audio to vocode); the speed goal lives in benchmarks/tts_speed.py."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ebtk.tts.bundle import shipped_model_path
from ebtk.tts.corpus import wordnet_sentences

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shipped_model_path() is None, reason="the shipped model is not installed")]


# the real CLI, in a process that reports its own peak RSS (kB on Linux) when it ends
CLI_WITH_PEAK = ("import resource, sys; from ebtk.cli import main; rc = main(sys.argv[1:]); "
                 "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
                 "sys.exit(rc)")


def plain_english(n_chars: int) -> str:
    pool = wordnet_sentences()
    random.Random(0).shuffle(pool)
    out: list[str] = []
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(pool[len(out)])
    return " ".join(out)


def test_ten_thousand_characters_in_bounded_memory(tmp_path):
    text = plain_english(10_000)
    out = tmp_path / "long.wav"
    proc = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, "synthesize", "--text", text, "--out", str(out)],
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    peak_gb = int(proc.stderr.rsplit("PEAK_KB ", 1)[1].split()[0]) / 1024**2
    assert peak_gb <= 1.5, f"peak RSS {peak_gb:.2f} GB"
    wav, sr = sf.read(out)
    assert sr == 22050
    # ~12-16 characters of English per second of speech: the whole text was spoken, not a prefix
    assert len(text) / 20 < wav.size / sr < len(text) / 8
    # no long silent stretch: every 10 s window has speech in it
    windows = wav[: wav.size // (10 * sr) * 10 * sr].reshape(-1, 10 * sr)
    assert (np.sqrt((windows**2).mean(1)) > 0.01).all()
