"""Log-mels made by another TTS model: the convention check, DTW alignment, and a folder of hypotheses.

A refiner trained by ebtk works on ebtk's mel convention (ebtk.tts.audio, the HiFi-GAN vocoder's): 22 050 Hz,
n_fft = win = 1024, hop 256, 80 Slaney mel bands over 0–8000 Hz, **natural log of the magnitude** mel clamped
at 1e-7. External mels are `<utterance id>.npy` files holding one float array of shape (80, T).

`check_mel` refuses what can be told apart from that convention by the numbers alone (the heuristic is
stated here and tested in tests/test_tts_refine.py):

* shape: not 2-D, or not 80 bands (a (T, 80) array gets a "transpose it" hint); T = 0;
* dtype: not a floating-point array; any NaN or infinity;
* values below ln(1e-7) − 0.1 ≈ −16.2: not ln(clamp(·, 1e-7)) (decibels, another floor, a power mel
  without the clamp);
* values above `CEILING` = 10: ebtk's mel of any waveform in [−1, 1] is at most `max_log_mel()` ≈ 3.2
  (ln(largest mel filter sum × Σ hann window)), and rough models overshoot it (ebtk's flow-matching model
  at 2 Euler steps reached 6.3 on the built-in corpus), but decibels (up to ≈ 28) and linear mels of loud
  audio (up to ≈ 25) go far above;
* a minimum above `MIN_CEILING` = −5: a natural-log mel of speech always has quiet bins (ebtk's recordings
  and models: −16 to −11); a linear (un-logged) mel is never negative, a normalised one rarely below −5;
* the log base, from `band_spread`: the standard deviation over the 80 bands of the loudest fifth of the
  frames (median over those frames). It does not change with the audio's gain or its share of silence,
  but scales with the log: ebtk speech mels measured 2.0–2.4 (flite and espeak-ng voices, loud and quiet,
  with and without silence), their log10 versions 0.86–1.03, their natural-log *power* versions 3.6–4.7.
  Below `SPREAD_MIN` = 1.3 is refused as log10 (or mean/std-normalised), above `SPREAD_MAX` = 3.2 as a
  power mel. The power margin is the narrower one (2.4 vs 3.6).

What cannot be detected from the numbers: another fmax (7600 vs 8000 Hz), another sample rate or hop with
80 bands, HTK instead of Slaney mel filters, a log-magnitude mel with a different clamp above −16, and a
mel of a waveform scaled by a constant (a shift in log space). Such mels pass the check and refine badly;
the guide (docs/guides/refine.md) says how to compute the right mel.

Hypotheses whose frame count differs from the reference's (a model run from text with its own durations)
are aligned by `dtw_align`: DTW on the mel frames, Euclidean frame distance, librosa's default step
pattern (steps (1, 1), (0, 1), (1, 0), all of weight 1, no band constraint); each reference frame gets the
mean of the hypothesis frames the optimal path matches it with, so the aligned hypothesis has the
reference's length and time axis.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebtk.errors import EbtkError
from ebtk.tts.audio import LOG_FLOOR, N_MELS, WIN

SPREAD_MIN = 1.3
"""Smallest accepted `band_spread`: below it a mel is taken for log10 or mean/std-normalised."""
SPREAD_MAX = 3.2
"""Largest accepted `band_spread`: above it a mel is taken for a power (not magnitude) mel."""
CEILING = 10.0
"""Largest accepted value: decibel and linear mels go far above, ebtk's and rough models' log-mels do not."""
MIN_CEILING = -5.0
"""Largest accepted minimum: a natural-log mel of speech always has quieter bins than this."""


def max_log_mel() -> float:
    """The largest value ebtk's log-mel can take for a waveform in [−1, 1], about 3.2.

    It is ln(max_b Σ_f basis[b, f] · Σ_n w[n]), since |STFT| ≤ Σ hann window = WIN / 2 at every bin; the
    messages of `check_mel` quote it to show how far a refused mel is from ebtk's range.

    Returns:
        The bound, in natural-log units.
    """
    from ebtk.tts.audio import mel_basis

    return float(math.log(float(mel_basis().sum(1).max()) * WIN / 2))


def check_mel(mel: Any, source: str | Path) -> np.ndarray:
    """Check that `mel` looks like an ebtk log-mel, so a refiner never silently refines a foreign convention.

    The rules (shape, dtype, finiteness, floor, ceiling, quiet bins, band spread) are those of this module's
    docstring; they catch what the numbers alone can tell apart, not every convention mismatch.

    Args:
        mel: an array-like log-mel, expected (80, T) floating point.
        source: what to name in the message (a file path, or e.g. "the mel").

    Returns:
        `mel` as a float32 numpy array (80, T) (not copied when it already is one).

    Raises:
        EbtkError: the array breaks a rule; the message names `source` and says what the array looks like
            instead (e.g. (T, 80): transpose it; decibels; log10; a power mel).
    """
    a = np.asarray(mel)
    if a.dtype.kind != "f":
        raise EbtkError(f"{source}: a {a.dtype} array; a log-mel is floating point (80, T)")
    if a.ndim != 2 or a.shape[0] != N_MELS:
        hint = "; hint: it looks like (T, 80): save mel.T" if a.ndim == 2 and a.shape[1] == N_MELS else ""
        raise EbtkError(f"{source}: shape {tuple(a.shape)}, expected ({N_MELS}, T): {N_MELS} mel bands by frames"
                        f"{hint}")
    if a.shape[1] == 0:
        raise EbtkError(f"{source}: no frames (shape {tuple(a.shape)})")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise EbtkError(f"{source}: {bad} NaN or infinite value{'s' if bad != 1 else ''}")
    a = a.astype(np.float32, copy=False)
    lo, hi = float(a.min()), float(a.max())
    conv = "ebtk mels are ln(clamp(magnitude mel, 1e-7)) (see docs/guides/refine.md)"
    if lo < LOG_FLOOR - 0.1:
        raise EbtkError(f"{source}: minimum {lo:.1f} is below ln(1e-7) = {LOG_FLOOR:.1f}: not an ebtk log-mel "
                        f"(decibels, or another floor?); {conv}")
    if hi > CEILING:
        raise EbtkError(f"{source}: maximum {hi:.1f} is above {CEILING:g} (audio in [-1, 1] gives at most "
                        f"{max_log_mel():.1f}): decibels or an un-logged mel?; {conv}")
    if lo > MIN_CEILING:
        raise EbtkError(f"{source}: minimum {lo:.1f} is above {MIN_CEILING:g}, no quiet bins (ebtk speech mels reach "
                        f"-11 to -16): an un-logged or normalised mel?; {conv}")
    spread = band_spread(a)
    if spread < SPREAD_MIN:
        raise EbtkError(f"{source}: its loud frames vary by {spread:.2f} across bands (ebtk speech mels: 2.0-2.4, "
                        f"below {SPREAD_MIN} refused): log10 or mean/std-normalised mels?; {conv}")
    if spread > SPREAD_MAX:
        raise EbtkError(f"{source}: its loud frames vary by {spread:.2f} across bands (ebtk speech mels: 2.0-2.4, "
                        f"above {SPREAD_MAX} refused): a power (not magnitude) mel?; {conv}")
    return a


def band_spread(mel: np.ndarray) -> float:
    """A measure of a log-mel's log base that does not depend on the audio's gain or share of silence.

    It is the median, over the loudest fifth of the frames (by mean level, at least one frame), of the
    standard deviation over bands. ebtk speech mels measure 2.0–2.4; `check_mel` refuses values outside
    [`SPREAD_MIN`, `SPREAD_MAX`].

    Args:
        mel: a log-mel (80, T).

    Returns:
        The spread.
    """
    level = mel.mean(0)
    loud = mel[:, level >= np.quantile(level, 0.8)]
    return float(np.median(loud.std(0)))


def read_mel(path: str | Path) -> np.ndarray:
    """Read a `.npy` file holding one log-mel and check it (`check_mel`).

    Args:
        path: the `.npy` file (loaded without pickles).

    Returns:
        The log-mel, float32 numpy (80, T).

    Raises:
        EbtkError: the file is missing, cannot be read as a .npy array, or fails `check_mel`; the message
            names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise EbtkError(f"mel file not found: {p}")
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise EbtkError(f"cannot read {p} as a .npy array: {why}") from None
    return check_mel(a, p)


def dtw_path(hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The optimal DTW path between a hypothesis and a reference log-mel, in time order.

    Euclidean frame distance, librosa's default step pattern (steps (1, 1), (0, 1), (1, 0) of weight 1),
    whole sequences (first frames to last frames).

    Args:
        hyp: the hypothesis log-mel (80, T_h).
        ref: the reference log-mel (80, T_r).

    Returns:
        An integer array (P, 2) of (reference frame, hypothesis frame) pairs.
    """
    import librosa

    _, wp = librosa.sequence.dtw(X=np.ascontiguousarray(ref, dtype=np.float64),
                                 Y=np.ascontiguousarray(hyp, dtype=np.float64), metric="euclidean")
    return wp[::-1]


def dtw_align(hyp: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor) -> np.ndarray:
    """Warp a hypothesis log-mel onto the time axis of its reference, so they can be compared frame by frame.

    Frame t of the result is the mean of the hypothesis frames the DTW path (`dtw_path`) matches with
    reference frame t. Equal lengths are returned as they are (no warping: the frames are taken to be
    aligned already).

    Args:
        hyp: the hypothesis log-mel (80, T_h), numpy or torch.
        ref: the reference log-mel (80, T_r), numpy or torch.

    Returns:
        The aligned hypothesis, float32 numpy (80, T_r).
    """
    h = np.asarray(hyp, dtype=np.float32)
    r = np.asarray(ref, dtype=np.float32)
    if h.shape[1] == r.shape[1]:
        return h
    path = dtw_path(h, r)
    out = np.zeros(r.shape, dtype=np.float64)  # float64 sums: the mean of k identical frames is that frame
    count = np.zeros(r.shape[1], dtype=np.float64)
    np.add.at(out.T, path[:, 0], h.T[path[:, 1]])
    np.add.at(count, path[:, 0], 1.0)
    return (out / count).astype(np.float32)  # every reference frame is on the path at least once


def external_hypotheses(hyp_dir: str | Path, refs: dict[str, torch.Tensor], progress: bool = False) -> dict[str, Any]:
    """Read another model's hypotheses for a corpus, each checked and aligned to its reference.

    The hypotheses are `<hyp_dir>/<id>.npy`, one per utterance; each is checked (`read_mel`) and aligned to
    its reference (`dtw_align` where the lengths differ). Every file is checked before any is aligned, so a
    bad one stops the run before training starts. Hypotheses under half or over twice their reference's
    length get a warning (are they of the right utterances?).

    Args:
        hyp_dir: the folder of `<utterance id>.npy` log-mels (`hypotheses.dir`).
        refs: {utterance id: reference log-mel (80, T_ref)}.
        progress: show progress bars.

    Returns:
        {"hyp": {id: (80, T_ref) fp16 tensor}, "n_aligned": how many needed DTW,
        "length_ratio": mean T_hyp / T_ref}.

    Raises:
        EbtkError: `hyp_dir` is not a folder, or a hypothesis file is missing or bad; the message names
            the first one.
    """
    from tqdm.auto import tqdm

    d = Path(hyp_dir)
    if not d.is_dir():
        raise EbtkError(f"hypotheses.dir={d} is not a folder of <utterance id>.npy log-mels")
    missing = [i for i in refs if not (d / f"{i}.npy").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EbtkError(f"missing hypothesis {d / (missing[0] + '.npy')}{more}: every utterance of the corpus "
                        "needs <id>.npy in hypotheses.dir")
    mels = {i: read_mel(d / f"{i}.npy") for i in tqdm(refs, desc="check hypotheses", disable=not progress,
                                                       leave=False)}
    out: dict[str, torch.Tensor] = {}
    ratios, far = [], 0
    for i, m in tqdm(mels.items(), desc="align hypotheses", disable=not progress, leave=False):
        ref = refs[i].float().numpy()
        ratio = m.shape[1] / ref.shape[1]
        ratios.append(ratio)
        far += not 0.5 <= ratio <= 2.0
        out[i] = torch.from_numpy(dtw_align(m, ref)).half()
    if far:
        warnings.warn(f"{far} hypotheses in {d} are under half or over twice their reference's length: are they "
                      "of the right utterances?", stacklevel=2)
    n_aligned = sum(1 for i, m in mels.items() if m.shape[1] != refs[i].shape[-1])
    return {"hyp": out, "n_aligned": n_aligned, "length_ratio": float(np.mean(ratios)) if ratios else 1.0}


__all__ = ["band_spread", "check_mel", "dtw_align", "dtw_path", "external_hypotheses", "max_log_mel", "read_mel"]
