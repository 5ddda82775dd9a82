"""The shipped TTS model (`ebtk/data/tts_model.pt`, made by `benchmarks/tts_ship.py`): it loads with
`weights_only=True`, and the per-utterance test metrics it records match a re-evaluation of those utterances.

The recordings are rebuilt from the corpus entries the file carries (flite, deterministic), so neither the
corpus nor any run dir is needed.
"""

from __future__ import annotations

import pytest
import torch

from tts_fixtures import needs_flite

METRICS = ("mcd", "logf0_rmse", "vuv", "dnsmos")
# Observed here (model v2, 2 refinement steps, on another machine than the one that recorded it, with the CPU
# busy): ≤ 2.8e-5 (MCD), ≤ 3.1e-5 (log-F0 RMSE), 0 (V/UV), ≤ 1.8e-4 (DNSMOS of the refined mel, 1.4e-4 to
# 1.8e-4 run to run: float sums in another order, grown by two refinement steps). A CPU that rounds the vocoder
# or WORLD differently may flip one frame's voicing, which moves log-F0 RMSE and V/UV by about 1/frames
# (~3e-3): this test would then fail and say which utterance and metric moved.
TOL = {"mcd": 1e-4, "logf0_rmse": 1e-4, "vuv": 1e-4, "dnsmos": 5e-4}


def _shipped() -> dict:
    from ebtk.tts.bundle import shipped_model_path

    path = shipped_model_path()
    assert path is not None, "no model shipped: run benchmarks/tts_ship.py"
    assert path.stat().st_size <= 30 * 2**20  # the size limit of the package data
    return torch.load(path, map_location="cpu", weights_only=True)


def test_shipped_model_loads_weights_only_and_records_its_evaluation() -> None:
    b = _shipped()
    rec = b["record"]
    assert b["format"] == "ebtk-tts-bundle" and rec["condition"] == "from-text" and rec["split"] == "test"
    assert rec["summary"]["n"] >= 100 and len(rec["utterances"]) == 5
    assert (b["refine"]["steps"], b["refine"]["step_size"]) == (rec["refine"]["steps"], rec["refine"]["step_size"])
    s = rec["summary"]["mcd"]
    assert s["delta_ci95"][0] <= s["delta"] <= s["delta_ci95"][1]
    assert s["delta"] == pytest.approx(s["refined"] - s["hypothesis"], abs=1e-9)  # paired Δ = Δ of the means
    floats = [v for v in b["acoustic"]["state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)  # shipped as fp16 weights


@pytest.mark.slow
@needs_flite
def test_shipped_model_recorded_metrics_match_a_re_evaluation(tmp_path) -> None:
    from ebtk.tts.audio import load_wav, mel_spectrogram
    from ebtk.tts.bundle import Synthesizer
    from ebtk.tts.corpus import resynthesize
    from ebtk.tts.evaluate import EvalUtterance, group_rows, score_systems

    b = _shipped()
    rec = b["record"]
    synth = Synthesizer(b)
    specs = [u["spec"] for u in rec["utterances"]]
    ids, errors = synth.encode_lines([s["text"] for s in specs])
    assert not errors
    utts = []
    for spec, path, ph in zip(specs, resynthesize(specs, tmp_path / "wavs"), ids):
        wav = load_wav(path)
        utts.append(EvalUtterance(id=spec["id"], wav=wav, mel=mel_spectrogram(torch.from_numpy(wav)),
                                  phonemes=torch.tensor(ph, dtype=torch.long)))
    k, eta = rec["refine"]["steps"], rec["refine"]["step_size"]
    sets = group_rows(score_systems(synth, utts, [(k, eta)] if k > 0 else []))
    again = {"hypothesis": sets[("hypothesis", 0, None)],
             "refined": sets[("refined", k, eta)] if k > 0 else sets[("hypothesis", 0, None)]}
    for u in rec["utterances"]:
        uid = u["spec"]["id"]
        for system in ("hypothesis", "refined"):
            for m in METRICS:
                assert again[system][uid][m] == pytest.approx(u[system][m], abs=TOL[m]), (uid, system, m)
